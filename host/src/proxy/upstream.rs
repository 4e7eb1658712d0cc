//! One proxy worker's keep-alive HTTP/1 connections to its upstreams.
//!
//! Each worker thread runs its own single-threaded runtime, so it keeps its
//! own idle connections, per origin, and a request never waits on another
//! thread. A connection goes back to the idle list when the response's body
//! has been read to its end, from the body itself: no task is spawned per
//! request (hyper-util's pooled client spawns one to wait for that moment,
//! which cost every request a task and a wake-up). A request that a reused
//! connection closed before it was sent is sent again on a new connection.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::forward::ProxyBody;

/// An idle connection unused this long is closed rather than reused: the
/// upstream has probably closed it already.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The most idle connections kept per upstream origin (per worker).
const MAX_IDLE_PER_ORIGIN: usize = 64;

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connecting (TCP, TLS) failed.
    #[error(transparent)]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The exchange on the connection failed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Where connections go: scheme and authority, and the `Host` header that
/// names them.
#[derive(Debug, Clone)]
pub struct Origin {
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
}

impl Origin {
    /// The origin of an absolute URL; none if it has no scheme or host.
    pub fn of(url: &Uri) -> Option<Self> {
        let (scheme, authority) = (url.scheme()?.clone(), url.authority()?.clone());
        let host = match authority.port_u16() {
            Some(port) if Some(port) != default_port(&scheme) => format!("{}:{port}", authority.host()),
            _ => authority.host().to_string(),
        };
        let host = HeaderValue::from_str(&host).ok()?;
        Some(Self { scheme, authority, host })
    }

    fn same_as(&self, other: &Origin) -> bool {
        self.scheme == other.scheme && self.authority == other.authority
    }
}

/// Idle connections, per origin: a proxy has an origin per credential of
/// its route, a handful, so a list is searched faster than a map is hashed.
type IdleConnections = Arc<Mutex<Vec<(Origin, Vec<(SendRequest<ProxyBody>, Instant)>)>>>;

/// A worker's connections to its upstreams.
pub struct Upstreams {
    connector: HttpsConnector<HttpConnector>,
    idle: IdleConnections,
}

/// An upstream's response, whose body hands its connection back when it ends.
pub type UpstreamResponse = Response<UpstreamBody>;

impl Upstreams {
    /// Connections made with `connector` (plain TCP or TLS).
    pub fn new(connector: HttpsConnector<HttpConnector>) -> Self {
        Self { connector, idle: Arc::default() }
    }

    /// Sends `request` (whose URI is in origin form: path and query) to
    /// `origin`, on an idle connection or a new one, with `Host` set.
    pub async fn send(
        &self,
        origin: &Origin,
        mut request: Request<ProxyBody>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        request.headers_mut().insert(header::HOST, origin.host.clone());
        loop {
            let (mut sender, reused) = match self.idle_connection(origin).await {
                Some(sender) => (sender, true),
                None => (self.connect(origin).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let (head, body) = response.into_parts();
                    let returning =
                        Some(Returning { sender, origin: origin.clone(), idle: self.idle.clone() });
                    let body = UpstreamBody { body, returning, ended: false };
                    return Ok(Response::from_parts(head, body));
                }
                Err(mut failed) => match failed.take_message() {
                    // Closed before a byte was sent: safe to send again.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(failed.into_error().into()),
                },
            }
        }
    }

    /// An idle connection to `origin` that is ready for a request.
    async fn idle_connection(&self, origin: &Origin) -> Option<SendRequest<ProxyBody>> {
        loop {
            let (mut sender, since) = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let (_, list) = idle.iter_mut().find(|(known, _)| known.same_as(origin))?;
                list.pop()?
            };
            if since.elapsed() < IDLE_TIMEOUT && sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// A new connection to `origin`, its task on this worker.
    async fn connect(&self, origin: &Origin) -> Result<SendRequest<ProxyBody>, UpstreamError> {
        let uri = Uri::builder()
            .scheme(origin.scheme.clone())
            .authority(origin.authority.clone())
            .path_and_query(PathAndQuery::from_static("/"))
            .build()
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx)).await.map_err(UpstreamError::Connect)?;
        let stream = connector.call(uri).await.map_err(UpstreamError::Connect)?;
        let (sender, connection) = http1::handshake(stream).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("upstream connection ended: {e}");
            }
        });
        Ok(sender)
    }
}

fn default_port(scheme: &Scheme) -> Option<u16> {
    match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The connection a response came on, to be put back once its body ended.
struct Returning {
    sender: SendRequest<ProxyBody>,
    origin: Origin,
    idle: IdleConnections,
}

impl Returning {
    fn put_back(self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let position = match idle.iter().position(|(known, _)| known.same_as(&self.origin)) {
            Some(position) => position,
            None => {
                idle.push((self.origin, Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[position].1;
        if list.len() < MAX_IDLE_PER_ORIGIN {
            list.push((self.sender, Instant::now()));
        }
    }
}

/// A response body from an upstream. Read to its end (or empty), its
/// connection becomes idle again when it is dropped; dropped before that, or
/// after an error, the connection closes (a response not read through
/// leaves the connection unable to carry another).
pub struct UpstreamBody {
    body: Incoming,
    returning: Option<Returning>,
    /// Whether reading returned the end (a chunked body's `is_end_stream`
    /// stays false).
    ended: bool,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.ended = true,
            Poll::Ready(Some(Err(_))) => self.returning = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if (self.ended || self.body.is_end_stream())
            && let Some(returning) = self.returning.take()
        {
            returning.put_back();
        }
    }
}
