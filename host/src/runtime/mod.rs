//! The sandboxed plugin runtime: loads provider components (verifying their
//! hash and contract version), caches their compiled form, and calls them in a
//! fresh, limited store with capability-checked host functions.
//!
//! Nothing here runs on a cache hit: the CLI creates a [`PluginRuntime`] only
//! when it must call a plugin.

mod argv_guard;
pub mod artifacts;
pub mod bindings;
pub mod capability;
mod engine;
mod host_calls;
pub mod http;
pub mod outcome;
pub mod sandbox;
pub mod versions;
mod wasi_link;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use keyhelper_core::credential::{Credential, Secret};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre};
use wasmtime::{Engine, Store};
use zeroize::Zeroizing;

use self::artifacts::{ArtifactCache, CompileError};
use self::outcome::{FailureKind, PluginInfo, PluginOption, ProviderFailure, Validation, Verdict};
use self::sandbox::{CallContext, LimitExceeded, PluginState};
use self::versions::{Contract, VersionedPre, latest};
use self::wasi_link::GrowingLinker;

/// The interface every plugin must export, without its version.
const PROVIDER_EXPORT: &str = "keyhelper:provider/provider@";
/// Largest secret a plugin may return.
const MAX_SECRET_LEN: usize = 64 * 1024;
/// Most metadata entries a plugin may return, and the longest key or value.
const MAX_METADATA: (usize, usize) = (32, 1024);

/// Why a plugin could not be loaded or did not complete a call.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The provider ran and reported a failure.
    #[error("{}", .failure.message)]
    Provider {
        /// The provider's failure.
        failure: ProviderFailure,
        /// What the host saw go wrong during the call.
        aftermath: Aftermath,
    },
    /// The plugin's bytes do not have the expected sha256.
    #[error(
        "plugin '{plugin}' failed its integrity check (sha256 {actual}, expected {expected}); it was altered after it was built or installed"
    )]
    Integrity {
        /// Plugin name.
        plugin: String,
        /// The pinned hash.
        expected: String,
        /// The hash of the bytes found.
        actual: String,
    },
    /// The file is not a component of a supported contract version.
    #[error("plugin '{plugin}' {problem}")]
    Incompatible {
        /// Plugin name.
        plugin: String,
        /// What is wrong with it.
        problem: String,
    },
    /// `keyhelper-compile` could not be run (an installation problem).
    #[error("plugin '{plugin}': {problem}")]
    Compiler {
        /// Plugin name.
        plugin: String,
        /// What went wrong, with the fix.
        problem: String,
    },
    /// The plugin was stopped by the sandbox or crashed.
    #[error("plugin '{plugin}' {problem}")]
    Stopped {
        /// Plugin name.
        plugin: String,
        /// What happened.
        problem: String,
    },
}

/// Where a plugin's bytes come from and the hash they must have.
pub struct PluginSource<'a> {
    /// Plugin name, for messages.
    pub name: &'a str,
    /// The component's bytes.
    pub wasm: Cow<'a, [u8]>,
    /// Expected sha256, lowercase hex.
    pub sha256: &'a str,
    /// When the bytes are checked against `sha256`.
    pub check: IntegrityCheck,
}

/// When a plugin's bytes are checked against their pinned sha256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityCheck {
    /// At every load: for files on disk, which can change after install.
    EveryLoad,
    /// Only before compiling them: for bytes embedded in this executable.
    /// The compiled artifact is keyed by the pinned hash and was made from
    /// checked bytes, so altered bytes are never run either way, and a
    /// cache hit does not hash the plugin.
    BeforeCompiling,
}

/// The wasmtime engine, its linkers and the compiled-artifact cache.
pub struct PluginRuntime {
    engine: Engine,
    /// A linker per contract version, made when a plugin of that version is
    /// first loaded (a call needs one, and linking all of them cost every
    /// cold call the other two), with the WASI its plugins import.
    linkers: [Mutex<Option<GrowingLinker>>; versions::SUPPORTED.len()],
    artifacts: ArtifactCache,
    /// The components loaded so far, by the sha256 of their wasm: a process
    /// that calls a plugin again (a proxy renewing) does not load it again,
    /// and a call's end does not unmap its code.
    components: Mutex<HashMap<String, Component>>,
}

impl PluginRuntime {
    /// A runtime that keeps compiled plugins in `artifact_dir` and compiles
    /// them with `keyhelper-compile`, installed beside this executable.
    pub fn new(artifact_dir: PathBuf) -> anyhow::Result<Self> {
        Self::with_artifacts(ArtifactCache::new(artifact_dir, None))
    }

    /// A runtime that compiles plugins with the `keyhelper-compile` at
    /// `compiler` (tests, whose executables do not sit beside it).
    pub fn with_compiler(artifact_dir: PathBuf, compiler: PathBuf) -> anyhow::Result<Self> {
        Self::with_artifacts(ArtifactCache::new(artifact_dir, Some(compiler)))
    }

    fn with_artifacts(artifacts: ArtifactCache) -> anyhow::Result<Self> {
        Ok(Self {
            engine: engine::shared()?,
            linkers: Default::default(),
            artifacts,
            components: Mutex::default(),
        })
    }

    /// `component` (a plugin of `contract`) ready to instantiate: linked
    /// against the contract's `host` interface and the WASI it imports, with
    /// an empty context (Rust std links against it, but there are no files,
    /// sockets, variables, arguments or stdio behind it).
    fn instantiate_pre(
        &self,
        contract: Contract,
        component: &Component,
        incompatible: impl Fn(String) -> PluginError,
    ) -> Result<InstancePre<PluginState>, PluginError> {
        let cannot_link =
            |e: wasmtime::Error| incompatible(format!("cannot be linked: {}", root_message(&e)));
        let mut slot =
            self.linkers[contract.index()].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let linker = match &mut *slot {
            Some(linker) => linker,
            empty => empty.insert(
                GrowingLinker::new(&self.engine, |linker| contract.add_to_linker(linker))
                    .map_err(cannot_link)?,
            ),
        };
        let linker = linker.for_component(&self.engine, component).map_err(cannot_link)?;
        linker.instantiate_pre(component).map_err(|e| {
            incompatible(format!(
                "imports something this keyhelper does not provide ({}); rebuild it against keyhelper:provider@{}",
                root_message(&e),
                versions::SUPPORTED.last().expect("at least one version")
            ))
        })
    }

    /// The plugin's compiled component: the one loaded earlier in this
    /// process, or its artifact, or compiled now (after `check`).
    fn component(
        &self,
        source: &PluginSource<'_>,
        check: impl Fn() -> Result<(), PluginError>,
    ) -> Result<Component, PluginError> {
        if let Some(component) = self.remembered(source.sha256) {
            return Ok(component);
        }
        let component = match self.artifacts.load(&self.engine, source.sha256) {
            Some(component) => component,
            None => {
                if source.check == IntegrityCheck::BeforeCompiling {
                    check()?;
                }
                let plugin = source.name.to_string();
                self.artifacts.compile(&self.engine, source.sha256, &source.wasm).map_err(|e| match e {
                    CompileError::Invalid(problem) => PluginError::Incompatible {
                        plugin,
                        problem: format!("is not a valid component: {problem}"),
                    },
                    e @ CompileError::Compiler { .. } => {
                        PluginError::Compiler { plugin, problem: e.to_string() }
                    }
                })?
            }
        };
        self.remember(source.sha256, &component);
        Ok(component)
    }

    fn remembered(&self, sha256: &str) -> Option<Component> {
        self.components.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(sha256).cloned()
    }

    fn remember(&self, sha256: &str, component: &Component) {
        self.components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(sha256.to_string(), component.clone());
    }

    /// Verifies, compiles (once) and links a plugin.
    pub fn load(&self, source: &PluginSource<'_>) -> Result<LoadedPlugin, PluginError> {
        let plugin = source.name.to_string();
        let incompatible = |problem: String| PluginError::Incompatible { plugin: plugin.clone(), problem };
        let check = || -> Result<(), PluginError> {
            let actual = hex::encode(Sha256::digest(&source.wasm));
            if actual != source.sha256 {
                return Err(PluginError::Integrity {
                    plugin: plugin.clone(),
                    expected: source.sha256.into(),
                    actual,
                });
            }
            check_component_header(&source.wasm).map_err(|p| incompatible(p.into()))
        };
        if source.check == IntegrityCheck::EveryLoad {
            check()?;
        }
        let component = self.component(source, check)?;
        let version = contract_version(&self.engine, &component).map_err(incompatible)?;
        if !versions::SUPPORTED.iter().any(|v| semver_compatible(v, &version)) {
            return Err(incompatible(format!(
                "was built for keyhelper:provider@{version}, which this keyhelper does not support (it supports {}); upgrade keyhelper or rebuild the plugin against a supported version",
                versions::SUPPORTED.join(", ")
            )));
        }
        let contract = Contract::of(&version);
        let pre = self.instantiate_pre(contract, &component, incompatible)?;
        let pre = VersionedPre::new(contract, pre)
            .map_err(|e| incompatible(format!("does not match the plugin world: {}", root_message(&e))))?;
        Ok(LoadedPlugin { name: plugin, engine: self.engine.clone(), pre, api_version: version })
    }
}

/// Tells a component from a core module or a non-wasm file, before compiling.
fn check_component_header(bytes: &[u8]) -> Result<(), &'static str> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(
            "is a core WebAssembly module, not a component; build it for wasm32-wasip2 (`cargo xtask build-plugins --path <crate>`)",
        ),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        _ => Err("is not a WebAssembly component (bad header)"),
    }
}

/// The version of `keyhelper:provider/provider` the component exports.
fn contract_version(engine: &Engine, component: &Component) -> Result<String, String> {
    let exports: Vec<String> =
        component.component_type().exports(engine).map(|(name, _)| name.to_string()).collect();
    exports
        .iter()
        .find_map(|name| name.strip_prefix(PROVIDER_EXPORT).map(str::to_string))
        .ok_or_else(|| {
            format!(
                "is not a keyhelper provider plugin: it does not export keyhelper:provider/provider (it exports: {})",
                if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
            )
        })
}

/// Component-model semver: same major, and for 0.x the same minor.
fn semver_compatible(supported: &str, found: &str) -> bool {
    let parts = |v: &str| v.split('.').take(2).map(str::to_string).collect::<Vec<_>>();
    let (s, f) = (parts(supported), parts(found));
    if s.first().map(String::as_str) == Some("0") { s == f } else { s.first() == f.first() }
}

fn root_message(e: &wasmtime::Error) -> String {
    e.chain().last().map(ToString::to_string).unwrap_or_default()
}

/// A verified, compiled and linked plugin. Each call gets a fresh instance.
pub struct LoadedPlugin {
    name: String,
    engine: Engine,
    pre: VersionedPre,
    api_version: String,
}

impl LoadedPlugin {
    /// The contract version the plugin was built against.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// Asks the plugin to describe itself.
    pub fn describe(&self, ctx: CallContext) -> Result<PluginInfo, PluginError> {
        let (info, _) = self.call(ctx, |store, pre| pre.describe(store), |_| None)?;
        Ok(PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            options: info
                .options
                .into_iter()
                .map(|o| PluginOption {
                    name: o.name,
                    help: o.help,
                    default: o.default,
                    required: o.required,
                })
                .collect(),
            supports_refresh: info.supports_refresh,
        })
    }

    /// Gets a credential.
    pub fn fetch(&self, ctx: CallContext, request: &CallRequest) -> Result<Credential, PluginError> {
        let request = request.to_wit();
        let result = self.call(ctx, |store, pre| pre.fetch(store, &request), returned_secret)?;
        self.credential_result(result)
    }

    /// Renews a credential this plugin returned earlier.
    pub fn refresh(
        &self,
        ctx: CallContext,
        request: &CallRequest,
        previous: &Credential,
    ) -> Result<Credential, PluginError> {
        let request = request.to_wit();
        let previous_wit = latest::Credential {
            secret: previous.secret.expose().to_string(),
            expires_at: previous.expires_at,
            metadata: previous.metadata.clone(),
            headers: previous.headers.clone(),
        };
        let mut ctx = ctx;
        ctx.known_secrets.push(Zeroizing::new(previous.secret.expose().to_string()));
        let result =
            self.call(ctx, |store, pre| pre.refresh(store, &request, &previous_wit), returned_secret)?;
        self.credential_result(result)
    }

    /// Checks a secret's format, and with `live`, with the service.
    pub fn validate(
        &self,
        ctx: CallContext,
        request: &CallRequest,
        secret: &Secret,
        live: bool,
    ) -> Result<Validation, PluginError> {
        let request = request.to_wit();
        let mut ctx = ctx;
        ctx.known_secrets.push(Zeroizing::new(secret.expose().to_string()));
        let (result, aftermath) =
            self.call(ctx, |store, pre| pre.validate(store, &request, secret.expose(), live), |_| None)?;
        let validation = result.map_err(|e| provider_error(e, aftermath))?;
        Ok(Validation {
            verdict: match validation.verdict {
                latest::Verdict::Valid => Verdict::Valid,
                latest::Verdict::Restricted => Verdict::Restricted,
                latest::Verdict::Rejected => Verdict::Rejected,
            },
            message: validation.message,
        })
    }

    fn credential_result(
        &self,
        (result, aftermath): (WitCredentialResult, Aftermath),
    ) -> Result<Credential, PluginError> {
        let credential = result.map_err(|e| provider_error(e, aftermath))?;
        let oversized = |what: &str| PluginError::Stopped {
            plugin: self.name.clone(),
            problem: format!("returned {what}; nothing was used"),
        };
        if credential.secret.is_empty() {
            return Err(oversized("an empty secret"));
        }
        if credential.secret.len() > MAX_SECRET_LEN {
            return Err(oversized(&format!(
                "a secret of {} bytes (the limit is {MAX_SECRET_LEN})",
                credential.secret.len()
            )));
        }
        let (max_entries, max_len) = MAX_METADATA;
        for (what, pairs) in [("metadata", &credential.metadata), ("headers", &credential.headers)] {
            if pairs.len() > max_entries || pairs.iter().any(|(k, v)| k.len() > max_len || v.len() > max_len)
            {
                return Err(oversized(&format!("oversized {what}")));
            }
        }
        if credential.headers.iter().any(|(_, v)| v.contains(credential.secret.as_str())) {
            return Err(oversized("the secret in a header meant for non-secret values"));
        }
        Ok(Credential {
            secret: Secret::new(credential.secret),
            expires_at: credential.expires_at,
            metadata: credential.metadata,
            headers: credential.headers,
        })
    }

    /// Instantiates the plugin in a fresh store, runs `f`, reports what the
    /// sandbox saw (log lines redacted of every secret the call touched,
    /// including `returned_secret` of the result), and turns traps into readable
    /// errors. Returns the result with the host calls the sandbox refused.
    fn call<R>(
        &self,
        ctx: CallContext,
        f: impl FnOnce(&mut Store<PluginState>, &VersionedPre) -> wasmtime::Result<R>,
        returned_secret: impl Fn(&R) -> Option<String>,
    ) -> Result<(R, Aftermath), PluginError> {
        let limits = ctx.limits;
        let mut store = sandbox::new_store(&self.engine, ctx);
        let outcome = f(&mut store, &self.pre);
        let state = store.data_mut();
        if let Some(secret) = outcome.as_ref().ok().and_then(&returned_secret) {
            state.known_secrets.push(Zeroizing::new(secret));
        }
        state.report();
        let result = match outcome {
            Ok(value) => {
                let aftermath = Aftermath {
                    denials: std::mem::take(&mut state.denials),
                    denials_unrecorded: state.denials_unrecorded,
                    store_failure: state.store_failure.take(),
                };
                Ok((value, aftermath))
            }
            Err(e) => Err(self.stopped(&e, state, limits)),
        };
        retire(store);
        result
    }

    fn stopped(&self, error: &wasmtime::Error, state: &PluginState, limits: sandbox::Limits) -> PluginError {
        let out_of_fuel = error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel);
        let problem = match error.downcast_ref::<LimitExceeded>() {
            None if out_of_fuel => format!(
                "was stopped: it used up its CPU budget ({} million wasm instructions, about {}s)",
                limits.fuel() / 1_000_000,
                limits.cpu.as_secs_f32()
            ),
            Some(LimitExceeded::Memory) => {
                format!("was stopped: it tried to use more than {} MiB of memory", limits.memory >> 20)
            }
            Some(LimitExceeded::Deadline) => {
                format!("was stopped: the call ran past its deadline of {}s", limits.call.as_secs_f32())
            }
            None => {
                let stderr = state.redact(&state.stderr_text());
                match stderr.lines().find(|l| l.contains("panicked at")) {
                    Some(_) => format!("panicked: {}", panic_summary(&stderr)),
                    None => format!("crashed: {}", root_message(error)),
                }
            }
        };
        PluginError::Stopped { plugin: self.name.clone(), problem }
    }
}

/// Whether this process ends right after its plugin calls (see
/// [`leave_plugin_memory_to_exit`]).
static MEMORY_LEFT_TO_EXIT: AtomicBool = AtomicBool::new(false);

/// Tells the runtime that this process ends right after its plugin calls
/// (a `get`): what the calls mapped, each spent store (the plugin's linear
/// memory, its instance and resources) and the loaded components' code, is
/// then left for the process's exit to free instead of being unmapped piece
/// by piece (about 3% and 5% of a cold `get`). A process that calls plugins
/// for long (a proxy) never says so.
pub fn leave_plugin_memory_to_exit() {
    MEMORY_LEFT_TO_EXIT.store(true, Ordering::Relaxed);
}

/// Drops `value`, or leaves it to the process's exit (see
/// [`leave_plugin_memory_to_exit`]).
fn retire<T>(value: T) {
    if MEMORY_LEFT_TO_EXIT.load(Ordering::Relaxed) {
        std::mem::forget(value);
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        retire(std::mem::take(self.components.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner)));
        retire(std::mem::take(&mut self.linkers));
    }
}

type WitCredentialResult = Result<latest::Credential, latest::ProviderError>;

fn returned_secret(result: &WitCredentialResult) -> Option<String> {
    result.as_ref().ok().map(|c| c.secret.clone())
}

/// The text of a Rust panic message, on one line.
fn panic_summary(stderr: &str) -> String {
    let mut lines = stderr.lines().skip_while(|l| !l.contains("panicked at"));
    let location = lines.next().unwrap_or_default().trim();
    let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).map(str::trim).collect();
    format!("{} ({})", message.join(" "), location.trim_end_matches(':'))
}

/// What the host saw go wrong during a call that the plugin itself reports
/// only as its own failure.
#[derive(Debug, Default)]
pub struct Aftermath {
    /// Host calls the sandbox refused (the first few, truncated).
    pub denials: Vec<String>,
    /// How many more it refused.
    pub denials_unrecorded: usize,
    /// Why the secret store could not be read, if it could not: the user's
    /// store is at fault (exit 10), not the provider.
    pub store_failure: Option<String>,
}

fn provider_error(e: latest::ProviderError, aftermath: Aftermath) -> PluginError {
    use latest::ProviderError as E;
    let (kind, failure) = match e {
        E::NeedsLogin(f) => (FailureKind::NeedsLogin, f),
        E::NotFound(f) => (FailureKind::NotFound, f),
        E::InvalidConfig(f) => (FailureKind::InvalidConfig, f),
        E::Denied(f) => (FailureKind::Denied, f),
        E::Unavailable(f) => (FailureKind::Unavailable, f),
        E::RateLimited(f) => (FailureKind::RateLimited, f),
    };
    PluginError::Provider {
        failure: ProviderFailure { kind, message: failure.message, hint: failure.hint },
        aftermath,
    }
}

/// The arguments of a call: which credential, its options, and whether a person
/// can answer prompts.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// The credential's name.
    pub credential: String,
    /// Its options, defaults filled in.
    pub options: std::collections::BTreeMap<String, String>,
    /// Whether the caller is interactive.
    pub interactive: bool,
}

impl CallRequest {
    fn to_wit(&self) -> latest::Request {
        latest::Request {
            credential: self.credential.clone(),
            options: self.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            interactive: self.interactive,
        }
    }
}

impl PluginState {
    /// Replaces every secret this call has seen with `[redacted]`.
    fn redact(&self, text: &str) -> String {
        self.known_secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(text.to_string(), |text, secret| text.replace(secret.as_str(), "[redacted]"))
    }

    /// Emits the plugin's log lines (redacted) and the refused host calls.
    fn report(&self) {
        for (level, line) in &self.logs {
            let line = self.redact(line);
            let provider = &self.call.provider;
            match *level {
                tracing::Level::ERROR => tracing::error!(target: "plugin", "{provider}: {line}"),
                tracing::Level::WARN => tracing::warn!(target: "plugin", "{provider}: {line}"),
                tracing::Level::INFO => tracing::info!(target: "plugin", "{provider}: {line}"),
                tracing::Level::DEBUG => tracing::debug!(target: "plugin", "{provider}: {line}"),
                _ => tracing::trace!(target: "plugin", "{provider}: {line}"),
            }
        }
        for denial in &self.denials {
            tracing::warn!("the sandbox refused a request from plugin '{}': {denial}", self.call.provider);
        }
        if self.denials_unrecorded > 0 {
            tracing::warn!(
                "the sandbox refused {} more requests from plugin '{}'",
                self.denials_unrecorded,
                self.call.provider
            );
        }
    }
}
