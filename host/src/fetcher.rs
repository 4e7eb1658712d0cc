//! Fetches a credential through its provider's plugin: finds the plugin,
//! builds the capability grant from the manifest, and calls it in the sandbox.
//! The wasm engine is created here, lazily, and only when a plugin must run.

use std::cell::OnceCell;
use std::sync::Arc;

use crate::bundled;
use crate::credential::{Credential, Secret, Validation};
use crate::failure::{ExitClass, Failure};
use crate::paths::Dirs;
use crate::resolve::ResolvedCredential;
use crate::runtime::capability::CapabilityGrant;
use crate::runtime::sandbox::{CallContext, Limits, StoredSecrets};
use crate::runtime::{CallRequest, LoadedPlugin, PluginRuntime};

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

    /// Asks the credential's provider for a fresh credential.
    pub fn fetch(&self, credential: &ResolvedCredential<'_>) -> Result<Credential, Failure> {
        tracing::debug!("fetching '{}' from provider '{}'", credential.name, credential.manifest.name);
        let plugin = self.load(credential)?;
        plugin
            .fetch(self.context(credential), &self.request(credential))
            .map_err(|e| Failure::from(e).context(format!("credential '{}'", credential.name)))
    }

    /// Asks the credential's provider to renew `previous`, which it returned earlier.
    pub fn refresh(
        &self,
        credential: &ResolvedCredential<'_>,
        previous: &Credential,
    ) -> Result<Credential, Failure> {
        tracing::debug!("renewing '{}' with provider '{}'", credential.name, credential.manifest.name);
        let plugin = self.load(credential)?;
        plugin
            .refresh(self.context(credential), &self.request(credential), previous)
            .map_err(|e| Failure::from(e).context(format!("credential '{}'", credential.name)))
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
        let runtime = PluginRuntime::new(self.dirs.artifact_dir()).map_err(|e| {
            Failure::new(ExitClass::Internal, format!("cannot start the plugin runtime: {e:#}"))
        })?;
        Ok(self.runtime.get_or_init(|| runtime))
    }

    fn load(&self, credential: &ResolvedCredential<'_>) -> Result<LoadedPlugin, Failure> {
        let manifest = credential.manifest;
        let plugin = bundled::find(&manifest.plugin).ok_or_else(|| {
            Failure::new(
                ExitClass::Plugin,
                format!(
                    "provider '{}' needs plugin '{}', which is not installed",
                    manifest.name, manifest.plugin
                ),
            )
        })?;
        Ok(self.runtime()?.load(&plugin.source())?)
    }

    fn context(&self, credential: &ResolvedCredential<'_>) -> CallContext {
        let manifest = credential.manifest;
        // Bundled providers are granted exactly what their manifest declares.
        let grant = CapabilityGrant::new(&manifest.capabilities, &manifest.capabilities, &credential.options);
        CallContext {
            provider: manifest.name.clone(),
            grant,
            secrets: self.secrets.clone(),
            limits: Limits::default(),
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
