//! Fetches a credential through its provider's plugin: finds the plugin,
//! builds the capability grant from the manifest, and calls it in the sandbox.
//! The wasm engine is created here, lazily, and only when a plugin must run.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::Arc;
use std::time::Instant;

use keyhelper_core::credential::{Credential, Secret};
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::installed::InstalledPlugins;
use keyhelper_core::paths::Dirs;
use keyhelper_core::resolve::ResolvedCredential;

use crate::bundled;
use crate::runtime::capability::CapabilityGrant;
use crate::runtime::outcome::Validation;
use crate::runtime::sandbox::{CallContext, Limits, StoredSecrets};
use crate::runtime::{CallRequest, IntegrityCheck, LoadedPlugin, PluginError, PluginRuntime, PluginSource};
use crate::waiting::WaitingNotice;

/// Where fresh credentials come from: the provider's plugin, in the product
/// ([`CredentialFetcher`]), a script in the broker's tests.
pub trait Fetcher {
    /// Asks the credential's provider for a fresh credential.
    fn fetch(&self, credential: &ResolvedCredential<'_>) -> Result<Credential, Failure>;

    /// Asks the credential's provider to renew `previous`, which it returned earlier.
    fn refresh(
        &self,
        credential: &ResolvedCredential<'_>,
        previous: &Credential,
    ) -> Result<Credential, Failure>;
}

/// Calls provider plugins on behalf of the CLI.
pub struct CredentialFetcher {
    dirs: Dirs,
    secrets: Arc<dyn StoredSecrets>,
    interactive: bool,
    runtime: OnceCell<PluginRuntime>,
}

impl CredentialFetcher {
    /// A fetcher reading stored secrets from `secrets`.
    pub fn new(dirs: Dirs, secrets: Arc<dyn StoredSecrets>, interactive: bool) -> Self {
        Self { dirs, secrets, interactive, runtime: OnceCell::new() }
    }

    /// Asks the credential's provider whether `secret` is well-formed and, with
    /// `live`, accepted by the service.
    pub fn validate(
        &self,
        credential: &ResolvedCredential<'_>,
        secret: &Secret,
        live: bool,
    ) -> Result<Validation, Failure> {
        let plugin = self.load(credential)?;
        plugin
            .validate(self.context(credential), &self.request(credential), secret, live)
            .map_err(|e| Failure::from(e).context(format!("credential '{}'", credential.name)))
    }

    fn runtime(&self) -> Result<&PluginRuntime, Failure> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let started = Instant::now();
        let runtime = PluginRuntime::new(self.dirs.artifact_dir()).map_err(|e| {
            Failure::new(ExitClass::Internal, format!("cannot start the plugin runtime: {e:#}"))
        })?;
        tracing::debug!("plugin runtime ready in {:?}", started.elapsed());
        Ok(self.runtime.get_or_init(|| runtime))
    }

    fn load(&self, credential: &ResolvedCredential<'_>) -> Result<LoadedPlugin, Failure> {
        let name = &credential.manifest.plugin;
        if let Some(plugin) = bundled::find(name) {
            let runtime = self.runtime()?;
            let started = Instant::now();
            let loaded = runtime.load(&plugin.source())?;
            tracing::debug!("loaded plugin '{name}' in {:?}", started.elapsed());
            return Ok(loaded);
        }
        let installed = InstalledPlugins::new(self.dirs.plugins_dir()).get(name).ok_or_else(|| {
            Failure::new(
                ExitClass::Plugin,
                format!(
                    "provider '{}' needs plugin '{name}', which is not installed",
                    credential.manifest.name
                ),
            )
            .hint("install it with `keyhelper plugin install <plugin.wasm>`")
        })?;
        let wasm = std::fs::read(installed.wasm_path()).map_err(|e| {
            Failure::new(ExitClass::Plugin, format!("cannot read plugin '{name}': {e}"))
                .hint("reinstall it with `keyhelper plugin install`")
        })?;
        let source = PluginSource {
            name,
            wasm: Cow::Owned(wasm),
            sha256: &installed.record.sha256,
            check: IntegrityCheck::EveryLoad,
        };
        self.runtime()?.load(&source).map_err(|e| match e {
            e @ PluginError::Integrity { .. } => Failure::from(e)
                .hint(format!("plugin '{name}' changed since it was installed; review and reinstall it with `keyhelper plugin install`")),
            other => other.into(),
        })
    }

    fn context(&self, credential: &ResolvedCredential<'_>) -> CallContext {
        let manifest = credential.manifest;
        let grant = CapabilityGrant::new(&manifest.capabilities, &credential.granted, &credential.options);
        CallContext {
            provider: manifest.name.clone(),
            grant,
            secrets: self.secrets.clone(),
            limits: limits_for(credential),
            known_secrets: Vec::new(),
        }
    }

    fn request(&self, credential: &ResolvedCredential<'_>) -> CallRequest {
        CallRequest {
            credential: credential.name.clone(),
            options: credential.options.clone(),
            interactive: self.interactive,
        }
    }
}

impl Fetcher for CredentialFetcher {
    fn fetch(&self, credential: &ResolvedCredential<'_>) -> Result<Credential, Failure> {
        tracing::debug!("fetching '{}' from provider '{}'", credential.name, credential.manifest.name);
        let plugin = self.load(credential)?;
        let started = Instant::now();
        let _notice = WaitingNotice::start(waited_for(credential));
        let fetched = plugin
            .fetch(self.context(credential), &self.request(credential))
            .map_err(|e| Failure::from(e).context(format!("credential '{}'", credential.name)));
        tracing::debug!("provider '{}' answered in {:?}", credential.manifest.name, started.elapsed());
        fetched
    }

    fn refresh(
        &self,
        credential: &ResolvedCredential<'_>,
        previous: &Credential,
    ) -> Result<Credential, Failure> {
        tracing::debug!("renewing '{}' with provider '{}'", credential.name, credential.manifest.name);
        let plugin = self.load(credential)?;
        let _notice = WaitingNotice::start(waited_for(credential));
        plugin
            .refresh(self.context(credential), &self.request(credential), previous)
            .map_err(|e| Failure::from(e).context(format!("credential '{}'", credential.name)))
    }
}

/// What a fetch of `credential` waits for: its provider's program, else the
/// provider.
fn waited_for(credential: &ResolvedCredential<'_>) -> String {
    match credential.granted.exec.first() {
        Some(exec) => exec.command.clone(),
        None => credential.manifest.display_name.clone(),
    }
}

/// The host's limits, tightened by the options the manifest names for that
/// (never loosened: a longer timeout than the host's is the host's).
fn limits_for(credential: &ResolvedCredential<'_>) -> Limits {
    let mut limits = Limits::default();
    let named = &credential.manifest.process_limits;
    let option = |name: &Option<String>| name.as_ref().and_then(|n| credential.options.get(n));
    if let Some(timeout) = option(&named.timeout_option).and_then(|v| keyhelper_core::duration::parse(v).ok())
    {
        limits.process.timeout = limits.process.timeout.min(timeout);
    }
    if let Some(max) = option(&named.max_output_option).and_then(|v| v.parse::<usize>().ok()) {
        limits.process.max_output = limits.process.max_output.min(max);
    }
    limits
}
