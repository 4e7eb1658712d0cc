//! The per-call state of a plugin instance and the limits that fence it in:
//! an empty WASI context (no files, no sockets, no env, no args, no stdio), a
//! memory cap, a CPU budget kept with wasmtime's fuel (wasm instructions,
//! each host call charged too), and a wall-clock deadline checked whenever
//! the plugin calls the host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyhelper_core::capabilities::Capabilities;
use keyhelper_core::credential::Secret;
use keyhelper_core::platform::process::ProcessLimits;
use wasmtime::{CallHook, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};
use zeroize::Zeroizing;

use super::capability::CapabilityGrant;

/// Fuel a plugin gets per second of its CPU budget. wasmtime charges about
/// one unit per wasm instruction; an empty loop burns 10^9 of them in 0.2 s
/// on the 2-core development VM, code that touches memory and calls
/// functions takes longer per instruction, so a second of budget is at most
/// about a second of CPU. A provider's own work (building arguments, parsing
/// a tool's JSON) takes well under a million.
pub const FUEL_PER_CPU_SECOND: u64 = 1_000_000_000;

/// Fuel each call into the host costs on top of the guest's own, so that a
/// plugin looping on cheap host calls (the clock, a refused request) also
/// meets its budget.
const FUEL_PER_HOST_CALL: u64 = 10_000;

/// Bytes of a plugin's own stderr (e.g. a panic message) kept for diagnostics.
const STDERR_CAPACITY: usize = 16 * 1024;

/// Resource limits of one plugin call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time for the whole call, host calls included: each program
    /// or request the plugin starts gets at most what is left of it.
    pub call: Duration,
    /// Guest CPU time, kept as fuel ([`FUEL_PER_CPU_SECOND`]): the guest's
    /// instructions, and a fixed charge per host call.
    pub cpu: Duration,
    /// Linear memory, in bytes.
    pub memory: usize,
    /// Limits on programs the plugin runs.
    pub process: ProcessLimits,
    /// Longest HTTP request, headers to body.
    pub http_timeout: Duration,
    /// Largest HTTP response body.
    pub http_max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            call: Duration::from_secs(60),
            cpu: Duration::from_secs(5),
            memory: 64 << 20,
            process: ProcessLimits { timeout: Duration::from_secs(60), max_output: 1 << 20 },
            http_timeout: Duration::from_secs(30),
            http_max_body: 4 << 20,
        }
    }
}

/// Whether `name` may name one of a connection's secrets besides its main
/// one: 1 to 64 lowercase letters, digits and `_`.
pub fn is_valid_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `name` may name a connection: 1 to 128 characters, none of them
/// `/` or `#` (which separate the parts of a stored secret's id) or a
/// control character.
pub fn is_valid_connection_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && !name.chars().any(|c| c == '/' || c == '#' || c.is_control())
}

/// Reads secrets stored with `keyhelper login`, and saves the named secrets a
/// plugin keeps (a rotated refresh token), on behalf of a plugin.
pub trait StoredSecrets: Send + Sync {
    /// The secret stored for `provider` under `connection`: its main one, or
    /// the one called `name`.
    fn read(&self, provider: &str, connection: &str, name: Option<&str>) -> anyhow::Result<Option<Secret>>;
    /// Saves (or replaces) the secret called `name` of `connection`.
    fn save(&self, provider: &str, connection: &str, name: &str, secret: &Secret) -> anyhow::Result<()>;
    /// Waits for, and holds until the guard is dropped, the lock of
    /// `provider`'s `connection`, so that two processes never use the same
    /// rotating refresh token at once.
    fn lock_connection(&self, provider: &str, connection: &str) -> anyhow::Result<ConnectionGuard>;
}

/// Holds a connection's lock while it lives.
pub type ConnectionGuard = Box<dyn std::any::Any + Send>;

/// Everything a call needs beyond the plugin itself.
#[derive(Clone)]
pub struct CallContext {
    /// The provider name, which scopes stored-secret access.
    pub provider: String,
    /// What the plugin may do in this call.
    pub grant: CapabilityGrant,
    /// Where stored secrets come from.
    pub secrets: Arc<dyn StoredSecrets>,
    /// Resource limits.
    pub limits: Limits,
    /// Secrets the host handed the plugin for this call (e.g. the credential to
    /// refresh): refused in argv and redacted from logs.
    pub known_secrets: Vec<Zeroizing<String>>,
}

impl CallContext {
    /// A context that grants nothing and stores no secrets: for calls that
    /// need nothing outside the sandbox, like `describe()`.
    pub fn granting_nothing(provider: &str) -> Self {
        struct NoSecrets;
        impl StoredSecrets for NoSecrets {
            fn read(&self, _: &str, _: &str, _: Option<&str>) -> anyhow::Result<Option<Secret>> {
                Ok(None)
            }
            fn save(&self, _: &str, _: &str, _: &str, _: &Secret) -> anyhow::Result<()> {
                anyhow::bail!("no secret store in this call")
            }
            fn lock_connection(&self, _: &str, _: &str) -> anyhow::Result<ConnectionGuard> {
                anyhow::bail!("no secret store in this call")
            }
        }
        let nothing = Capabilities::default();
        Self {
            provider: provider.to_string(),
            grant: CapabilityGrant::new(&nothing, &nothing, &Default::default()),
            secrets: Arc::new(NoSecrets),
            limits: Limits::default(),
            known_secrets: Vec::new(),
        }
    }
}

impl Limits {
    /// The fuel of the CPU budget.
    pub fn fuel(&self) -> u64 {
        let fuel = self.cpu.as_secs_f64() * FUEL_PER_CPU_SECOND as f64;
        fuel as u64
    }
}

/// Why the host stopped a plugin (running out of fuel is wasmtime's own
/// `Trap::OutOfFuel`).
#[derive(Debug, thiserror::Error)]
pub enum LimitExceeded {
    /// The guest tried to grow its memory past the cap.
    #[error("memory limit")]
    Memory,
    /// The call, host calls included, ran past its wall-clock deadline.
    #[error("deadline")]
    Deadline,
}

/// The data of a plugin's store.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    memory_limit: usize,
    pub(super) call: CallContext,
    started: Instant,
    /// Capability checks that failed, reported to the user after the call
    /// (the first few, truncated).
    pub(super) denials: Vec<String>,
    /// How many more failed beyond those recorded.
    pub(super) denials_unrecorded: usize,
    /// Why reading the secret store failed, if it did.
    pub(super) store_failure: Option<String>,
    /// Log lines from the plugin, redacted and emitted after the call.
    pub(super) logs: Vec<(tracing::Level, String)>,
    /// Secrets the plugin has seen in this call: never allowed in argv, always
    /// redacted from its logs.
    pub(super) known_secrets: Vec<Zeroizing<String>>,
    /// Named secrets saved in this call.
    pub(super) saves: usize,
    /// The lock of the connection whose rotating secrets this call uses.
    pub(super) connection_lock: Option<(String, ConnectionGuard)>,
}

impl PluginState {
    /// Fresh state for one call.
    pub fn new(call: CallContext) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let known_secrets = call.known_secrets.clone();
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory_limit: call.limits.memory,
            call,
            started: Instant::now(),
            denials: Vec::new(),
            denials_unrecorded: 0,
            store_failure: None,
            logs: Vec::new(),
            known_secrets,
            saves: 0,
            connection_lock: None,
        }
    }

    /// What the plugin wrote to its stderr (a Rust panic message lands here).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    /// What is left of the call's wall-clock budget, or an error once it is spent.
    pub(super) fn time_left(&self) -> Result<Duration, String> {
        let left = self.call.limits.call.saturating_sub(self.started.elapsed());
        if left.is_zero() {
            Err(format!("the plugin call ran past its deadline of {}s", self.call.limits.call.as_secs_f32()))
        } else {
            Ok(left)
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl ResourceLimiter for PluginState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(LimitExceeded::Memory.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A store for one call, with the memory limiter, the CPU budget and the
/// deadline installed. Every call into the host (the contract's functions,
/// WASI's, wasmtime's own such as growing memory) is charged
/// [`FUEL_PER_HOST_CALL`] and stops the plugin once the call's deadline has
/// passed; between host calls the guest runs on its fuel alone, so no
/// thread needs to watch it.
pub fn new_store(engine: &wasmtime::Engine, call: CallContext) -> Store<PluginState> {
    let fuel = call.limits.fuel();
    let mut store = Store::new(engine, PluginState::new(call));
    store.limiter(|state| state);
    store.set_fuel(fuel).expect("the engine consumes fuel");
    store.call_hook(|mut ctx, hook| {
        if !matches!(hook, CallHook::CallingHost) {
            return Ok(());
        }
        let state = ctx.data();
        if state.started.elapsed() > state.call.limits.call {
            return Err(LimitExceeded::Deadline.into());
        }
        let left = ctx.get_fuel()?;
        ctx.set_fuel(left.saturating_sub(FUEL_PER_HOST_CALL))
    });
    store
}
