//! `keyhelper proxy` and `keyhelper run --proxy`: a local reverse proxy that
//! puts a fresh credential on every request, for clients that read their API
//! key once at start-up (Aider, opencode, Codex, Claude Code, any OpenAI- or
//! Anthropic-compatible SDK pointed at a base URL).
//!
//! Each request must carry the proxy's client key (so other local users cannot
//! borrow its credential); the proxy strips it and any other credential
//! header, sets the provider's header with the current secret (through the
//! cache, so refresh-ahead, single flight and fallbacks apply), and streams
//! the request and the response through. An upstream 401 renews the
//! credential once and retries; an exhausted quota moves the request to the
//! credential's next fallback of the same API family ([`route`]).

mod access;
mod credential_source;
mod forward;
mod http1;
mod quota;
mod route;
mod upstream;
mod watchdog;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::Uri;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use keyhelper_core::credential::Secret;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::manifest::ApiFamily;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use self::access::ClientKey;
use self::forward::Forwarder;
use self::route::Route;
use self::watchdog::Activity;
use crate::environment::Environment;

/// How long in-flight requests may run on after the proxy is told to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What a proxy is asked to do.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The credential to put on requests (its fallbacks of the same API
    /// family take over when its quota is gone).
    pub credential: String,
    /// Where requests go, instead of the credential's own `upstream`.
    pub upstream: Option<Uri>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The key clients must send.
    pub client_key: ClientKey,
    /// Header to put the secret in, instead of the provider's.
    pub header: Option<String>,
    /// What precedes the secret in that header.
    pub header_prefix: Option<String>,
    /// Extra CA certificates (PEM) to trust for the upstream, besides the system's.
    pub upstream_ca: Option<PathBuf>,
    /// Whether plain HTTP to a non-loopback upstream is allowed.
    pub allow_insecure_upstream: bool,
    /// What one client, or many, may hold.
    pub limits: ConnectionLimits,
}

/// Bounds on what clients may hold, so a slow or greedy local process
/// cannot take the proxy from the others.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// The default connection limit (room for the proxy benchmark's 64).
    pub const MAX_CONNECTIONS: usize = 512;
    /// The default header timeout.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { max_connections: Self::MAX_CONNECTIONS, header_timeout: Self::HEADER_TIMEOUT }
    }
}

/// How long accepting pauses after an error such as running out of file
/// descriptors (EMFILE), instead of retrying at once and spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A proxy listening on its own thread, as `keyhelper run --proxy` uses it:
/// it stops, letting requests in flight finish, when dropped.
pub struct RunningProxy {
    /// Where it listens.
    pub address: SocketAddr,
    /// The API family it serves.
    pub family: ApiFamily,
    /// The secrets its credentials hold now, which the program it serves
    /// must not be given by any other way either.
    pub secrets: Vec<Secret>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningProxy {
    /// The variables that point a client of its API family at it.
    pub fn client_env(&self, client_key: &ClientKey) -> BTreeMap<&'static str, String> {
        client_env(self.family, self.address, client_key)
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The variables that point a client of `family` at a proxy on `address`:
/// OpenAI SDKs take the base URL with `/v1`, Anthropic's without, and an
/// Anthropic client gets only `ANTHROPIC_AUTH_TOKEN`, never also
/// `ANTHROPIC_API_KEY` (clients refuse both).
pub fn client_env(
    family: ApiFamily,
    address: SocketAddr,
    client_key: &ClientKey,
) -> BTreeMap<&'static str, String> {
    let key = client_key.expose().to_string();
    match family {
        ApiFamily::OpenAi => {
            let base = format!("http://{address}/v1");
            BTreeMap::from([
                ("OPENAI_API_BASE", base.clone()),
                ("OPENAI_BASE_URL", base),
                ("OPENAI_API_KEY", key),
            ])
        }
        ApiFamily::Anthropic => BTreeMap::from([
            ("ANTHROPIC_BASE_URL", format!("http://{address}")),
            ("ANTHROPIC_AUTH_TOKEN", key),
        ]),
    }
}

/// Runs the proxy until SIGINT or SIGTERM, announcing it on stderr (or, with
/// `json`, as one JSON object on stdout).
pub fn serve(env: Environment, options: ProxyOptions, json: bool) -> Result<(), Failure> {
    let route = Arc::new(Route::build(&env, &options)?);
    let family = route.family;
    let workers = Workers::start(&options, &route)?;
    let runtime = acceptor_runtime()?;
    runtime.block_on(async {
        let listener = listen(options.listen).await?;
        let address = listener.local_addr().map_err(|e| Failure::new(ExitClass::Internal, e.to_string()))?;
        announce(&options, family, address, json);
        workers.accept_until(listener, shutdown_signal()).await;
        Ok(())
    })
}

/// Starts a proxy on threads of its own and returns once it listens and
/// holds its credential's secret (so a credential that cannot be had fails
/// here, before anything relies on the proxy).
pub fn start(env: Environment, options: ProxyOptions) -> Result<RunningProxy, Failure> {
    let route = Arc::new(Route::build(&env, &options)?);
    let family = route.family;
    let runtime = acceptor_runtime()?;
    let secrets = runtime.block_on(route.current_secrets())?;
    let workers = Workers::start(&options, &route)?;
    let listener = runtime.block_on(listen(options.listen))?;
    let address = listener.local_addr().map_err(|e| Failure::new(ExitClass::Internal, e.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("keyhelper-proxy-{}", family.name()))
        .spawn(move || {
            runtime.block_on(workers.accept_until(listener, async {
                let _ = stopped.await;
            }))
        })
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot start the proxy thread: {e}")))?;
    Ok(RunningProxy { address, family, secrets, stop: Some(stop), thread: Some(thread) })
}

/// A runtime for the accepting loop alone.
fn acceptor_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot start the proxy runtime: {e}")))
}

async fn listen(address: SocketAddr) -> Result<TcpListener, Failure> {
    TcpListener::bind(address).await.map_err(|e| {
        Failure::new(ExitClass::Usage, format!("cannot listen on {address}: {e}"))
            .hint("choose another address with --listen 127.0.0.1:PORT")
    })
}

/// One single-threaded runtime per core, each serving the connections it is
/// handed with its own upstream connection pool: a request and its upstream
/// exchange never wake another thread (a multi-threaded runtime spent a
/// sixth of its time in those wake-ups under load).
struct Workers {
    handoff: Vec<tokio::sync::mpsc::UnboundedSender<Handed>>,
    /// How many connections each worker holds now.
    loads: Vec<Arc<AtomicUsize>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    slots: Arc<Semaphore>,
    limits: ConnectionLimits,
}

/// A connection handed to a worker, with the slot it holds until it ends.
struct Handed {
    stream: std::net::TcpStream,
    slot: Slot,
}

/// A connection's place: one of the limit's, and one in its worker's load.
struct Slot {
    _permit: OwnedSemaphorePermit,
    load: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.load.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    fn start(options: &ProxyOptions, route: &Arc<Route>) -> Result<Self, Failure> {
        let count = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
        let (mut handoff, mut threads, mut loads) = (Vec::new(), Vec::new(), Vec::new());
        for index in 0..count {
            let forwarder = Arc::new(Forwarder::new(options, route.clone(), options.client_key.clone())?);
            let (send, receive) = tokio::sync::mpsc::unbounded_channel::<Handed>();
            let header_timeout = options.limits.header_timeout;
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
                    Failure::new(ExitClass::Internal, format!("cannot start the proxy runtime: {e}"))
                })?;
            let thread = std::thread::Builder::new()
                .name(format!("keyhelper-proxy-worker-{index}"))
                .spawn(move || runtime.block_on(serve_connections(receive, forwarder, header_timeout)))
                .map_err(|e| {
                    Failure::new(ExitClass::Internal, format!("cannot start a proxy thread: {e}"))
                })?;
            handoff.push(send);
            threads.push(thread);
            loads.push(Arc::new(AtomicUsize::new(0)));
        }
        let slots = Arc::new(Semaphore::new(options.limits.max_connections));
        Ok(Self { handoff, loads, threads, slots, limits: options.limits })
    }

    /// Accepts connections, handing each to the worker holding the fewest
    /// (the next in turn among equals), until `stop` completes; then lets
    /// the workers finish what is in flight. Clients that reconnect now and
    /// then would otherwise leave one worker with more than its share.
    async fn accept_until(self, listener: TcpListener, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut next = 0;
        let mut told_full = false;
        loop {
            let slot = match self.slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    if !std::mem::replace(&mut told_full, true) {
                        eprintln!(
                            "keyhelper: proxy: {} connections open, the limit; new ones wait (raise it with --max-connections)",
                            self.limits.max_connections
                        );
                    }
                    tokio::select! {
                        slot = self.slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                        () = &mut stop => break,
                    }
                }
            };
            tokio::select! {
                accepted = listener.accept() => match accepted.and_then(|(stream, _)| stream.into_std()) {
                    Ok(stream) => {
                        let count = self.handoff.len();
                        let worker = (0..count)
                            .map(|offset| (next + offset) % count)
                            .min_by_key(|&worker| self.loads[worker].load(Ordering::Relaxed))
                            .unwrap_or(0);
                        self.loads[worker].fetch_add(1, Ordering::Relaxed);
                        let slot = Slot { _permit: slot, load: self.loads[worker].clone() };
                        let _ = self.handoff[worker].send(Handed { stream, slot });
                        next = (worker + 1) % count;
                    }
                    Err(e) => {
                        tracing::warn!("accepting a connection failed: {e}; pausing");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                () = &mut stop => break,
            }
        }
        drop(listener);
        drop(self.handoff);
        for thread in self.threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// A worker: serves each connection it is handed, until the acceptor stops,
/// then lets requests in flight finish (for at most [`SHUTDOWN_GRACE`]).
async fn serve_connections(
    mut handed: tokio::sync::mpsc::UnboundedReceiver<Handed>,
    forwarder: Arc<Forwarder>,
    header_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    while let Some(Handed { stream, slot }) = handed.recv().await {
        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { continue };
        let _ = stream.set_nodelay(true);
        let (forwarder, activity) = (forwarder.clone(), Arc::new(Activity::default()));
        let watched = activity.clone();
        let service = hyper::service::service_fn(move |request| {
            let (forwarder, counted) = (forwarder.clone(), activity.arrived());
            async move {
                let response = forwarder.handle(request).await;
                Ok::<_, std::convert::Infallible>(response.map(|body| counted.answered(body)))
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            tokio::select! {
                biased;
                ended = connection => if let Err(e) = ended {
                    tracing::debug!("client connection ended: {e}");
                },
                () = watched.idle_for(header_timeout) => {
                    tracing::debug!("closing a client connection that sent no request for {header_timeout:?}");
                }
            }
            drop(slot);
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        eprintln!("keyhelper: requests still running after {}s were cut off", SHUTDOWN_GRACE.as_secs());
    }
}

async fn shutdown_signal() {
    keyhelper_core::platform::stop_requested().await;
    eprintln!("keyhelper: proxy stopping; letting requests in flight finish");
}

/// Tells the user where the proxy is and what to put in the client's
/// environment: on stderr, or as one JSON object on stdout.
fn announce(options: &ProxyOptions, family: ApiFamily, address: SocketAddr, json: bool) {
    let env = client_env(family, address, &options.client_key);
    if json {
        let object = serde_json::json!({
            "listen": address.to_string(),
            "credential": options.credential,
            "api": family.name(),
            "env": env,
        });
        println!("{object}");
        return;
    }
    eprintln!(
        "keyhelper: proxying http://{address} for credential '{}' ({} API)",
        options.credential,
        family.name()
    );
    if !address.ip().is_loopback() {
        eprintln!(
            "keyhelper: warning: listening beyond loopback; anyone who can reach {address} and has the client key can use the credential"
        );
    }
    eprintln!("keyhelper: point the client at the proxy (the client key is not the credential):");
    for (name, value) in env {
        eprintln!("{name}={value}");
    }
}
