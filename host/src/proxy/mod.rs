//! `keyhelper proxy`: a local reverse proxy that puts a fresh credential on
//! every request, for clients that read their API key once at start-up
//! (Aider, opencode, any OpenAI-compatible SDK pointed at a base URL).
//!
//! Each request must carry the proxy's client key (so other local users cannot
//! borrow its credential); the proxy strips it and any other credential
//! header, sets the provider's header with the current secret (through the
//! cache, so refresh-ahead, single flight and fallbacks apply), and streams
//! the request and the response through. An upstream 401 renews the
//! credential once and retries when the request body was small enough to keep.

mod access;
mod credential_source;
mod forward;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use keyhelper_core::failure::{ExitClass, Failure};
use tokio::net::TcpListener;

use self::access::ClientKey;
use self::credential_source::CredentialSource;
use self::forward::Forwarder;
use crate::environment::Environment;

/// How long in-flight requests may run on after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What `keyhelper proxy` was asked to do.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The credential to put on requests.
    pub credential: String,
    /// Where requests go, e.g. `https://api.openai.com`.
    pub upstream: Uri,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The client key clients must send (default: a random one, printed once).
    pub client_key: Option<String>,
    /// Header to put the secret in, instead of the provider's.
    pub header: Option<String>,
    /// What precedes the secret in that header.
    pub header_prefix: Option<String>,
    /// Extra CA certificates (PEM) to trust for the upstream, besides the system's.
    pub upstream_ca: Option<PathBuf>,
}

/// Runs the proxy until SIGINT or SIGTERM.
pub fn serve(env: Environment, options: ProxyOptions) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot start the proxy runtime: {e}")))?;
    runtime.block_on(run(env, options))
}

async fn run(env: Environment, options: ProxyOptions) -> Result<(), Failure> {
    let credentials = CredentialSource::start(env, &options)?;
    let client_key = ClientKey::new(options.client_key.clone());
    let forwarder = Arc::new(Forwarder::new(&options, credentials, client_key.clone())?);
    let listener = TcpListener::bind(options.listen).await.map_err(|e| {
        Failure::new(ExitClass::Usage, format!("cannot listen on {}: {e}", options.listen))
            .hint("choose another address with --listen 127.0.0.1:PORT")
    })?;
    let address = listener.local_addr().map_err(|e| Failure::new(ExitClass::Internal, e.to_string()))?;
    announce(&options, address, &client_key);

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let forwarder = forwarder.clone();
                let service = hyper::service::service_fn(move |request| {
                    let forwarder = forwarder.clone();
                    async move { Ok::<_, std::convert::Infallible>(forwarder.handle(request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("client connection ended: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    eprintln!("keyhelper: proxy stopping; letting requests in flight finish");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        eprintln!("keyhelper: requests still running after {}s were cut off", SHUTDOWN_GRACE.as_secs());
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// Tells the user where the proxy is and what to put in the client's environment.
fn announce(options: &ProxyOptions, address: SocketAddr, client_key: &ClientKey) {
    let base = format!("http://{address}/v1");
    eprintln!(
        "keyhelper: proxying http://{address} → {} with credential '{}'",
        options.upstream, options.credential
    );
    if !address.ip().is_loopback() {
        eprintln!(
            "keyhelper: warning: listening beyond loopback; anyone who can reach {address} and has the client key can use the credential"
        );
    }
    eprintln!("keyhelper: point the client at the proxy (the client key is not the credential):");
    eprintln!("OPENAI_API_BASE={base}");
    eprintln!("OPENAI_BASE_URL={base}");
    eprintln!("OPENAI_API_KEY={}", client_key.expose());
}
