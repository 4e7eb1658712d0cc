//! One proxy worker's keep-alive HTTP/1.1 connections to its upstreams.
//!
//! Each worker thread runs its own single-threaded runtime, so it keeps its
//! own idle connections, per origin, and a request never waits on another
//! thread. A request writes its head and body to its connection and reads
//! the response head itself ([`super::http1`]); the response's body reads
//! the rest from the same connection as the client takes it, and hands the
//! connection back to the idle list once it has read the body's end. No
//! task runs per connection or per request.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Method, Response, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tower_service::Service;

use super::http1::{self, Decoded, ProtocolError, RequestFraming, RequestHead, ResponseFraming};

/// An idle connection unused this long is closed rather than reused: the
/// upstream has probably closed it already.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The most idle connections kept per upstream origin (per worker).
const MAX_IDLE_PER_ORIGIN: usize = 64;
/// A kept request body up to this size goes out in the same write as its head.
const COALESCED_BODY: usize = 64 * 1024;
/// How much a read asks for at least.
const READ_SIZE: usize = 8 * 1024;

/// An error a body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connecting (TCP, TLS) failed.
    #[error(transparent)]
    Connect(BoxError),
    /// Sending or receiving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The upstream closed the connection before its answer.
    #[error("the upstream closed the connection before answering")]
    Closed,
    /// The answer was not HTTP/1.1 the proxy can pass on.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The client's request body failed while it was being sent.
    #[error("reading the request body failed: {0}")]
    RequestBody(hyper::Error),
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

fn default_port(scheme: &Scheme) -> Option<u16> {
    match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// A request body: kept whole (so it can be sent again), or streamed from
/// the client.
pub enum OutgoingBody {
    /// The whole body, at hand.
    Replayable(Bytes),
    /// The client's body, read as it is sent.
    Streaming(Incoming),
}

type Stream = TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>;

/// An open connection to an upstream and what was read from it but not yet
/// used. It is kept boxed: a TLS connection's state is kilobytes, which every
/// move of a request's future or body would copy.
struct Connection {
    io: Stream,
    read: BytesMut,
}

impl Connection {
    /// Reads more into the buffer; `Ok(0)` at the upstream's close.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        self.read.reserve(READ_SIZE);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read)
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Whether an idle connection can carry a request: the upstream has not
    /// closed it or sent anything unasked. Asks the socket's readiness, which
    /// costs no system call while nothing has arrived.
    fn still_open(&self) -> bool {
        let tcp = match self.io.inner() {
            MaybeHttpsStream::Http(tcp) => tcp.inner(),
            MaybeHttpsStream::Https(tls) => tls.inner().get_ref().0.inner().inner(),
        };
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        self.read.is_empty() && tcp.poll_peek(&mut cx, &mut probe).is_pending()
    }
}

/// Idle connections, per origin: a proxy has an origin per credential of
/// its route, a handful, so a list is searched faster than a map is hashed.
type IdleConnections = Arc<Mutex<Vec<(Origin, Vec<(Box<Connection>, Instant)>)>>>;

/// A worker's connections to its upstreams.
pub struct Upstreams {
    connector: HttpsConnector<HttpConnector>,
    idle: IdleConnections,
}

/// An upstream's response, whose body hands its connection back when it ends.
pub type UpstreamResponse = Response<UpstreamBody>;

/// How an exchange on one connection failed.
struct Failed {
    error: UpstreamError,
    /// Whether the request may go again on another connection: the upstream
    /// closed this one (a reused one) before any byte of an answer, and
    /// either refused the request's bytes or the method is idempotent.
    retry: bool,
}

impl Upstreams {
    /// Connections made with `connector` (plain TCP or TLS).
    pub fn new(connector: HttpsConnector<HttpConnector>) -> Self {
        Self { connector, idle: Arc::default() }
    }

    /// Sends a request to `origin`, on an idle connection or a new one. A
    /// reused connection that the upstream had closed is replaced, and the
    /// request sent again when it can be (RFC 9110 §9.2.2).
    pub async fn send(
        &self,
        origin: &Origin,
        head: RequestHead<'_>,
        body: OutgoingBody,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let framing = match &body {
            OutgoingBody::Replayable(bytes) => RequestFraming::Length(bytes.len() as u64),
            OutgoingBody::Streaming(incoming) => {
                incoming.size_hint().exact().map_or(RequestFraming::Chunked, RequestFraming::Length)
            }
        };
        let mut wire = Vec::with_capacity(1024);
        http1::write_request_head(&mut wire, &head, &origin.host, framing);
        let mut body = match body {
            OutgoingBody::Replayable(bytes) if bytes.len() <= COALESCED_BODY => {
                wire.extend_from_slice(&bytes);
                None
            }
            other => Some(other),
        };
        let idempotent = is_idempotent(head.method, head.headers);
        loop {
            let (mut connection, reused) = match self.idle_connection(origin) {
                Some(connection) => (connection, true),
                None => (self.connect(origin).await?, false),
            };
            match exchange(&mut connection, &wire, &mut body, framing, reused, idempotent).await {
                Ok(response) => {
                    let framing = ResponseFraming::of(head.method, &response)?;
                    let sized = matches!(framing, ResponseFraming::Length(_));
                    let returning = response
                        .keep_alive
                        .then(|| Returning { origin: origin.clone(), idle: self.idle.clone() });
                    let body = UpstreamBody { connection: Some(connection), framing, returning };
                    let mut answer = Response::new(body);
                    *answer.status_mut() = response.status;
                    *answer.headers_mut() = response.headers;
                    if !sized {
                        // Chunks override a length (RFC 9112 §6.3); passed
                        // on, it would not describe the body the client gets.
                        answer.headers_mut().remove(hyper::header::CONTENT_LENGTH);
                    }
                    return Ok(answer);
                }
                Err(Failed { retry: true, .. }) => continue,
                Err(Failed { error, .. }) => return Err(error),
            }
        }
    }

    /// An idle connection to `origin` that is still open.
    fn idle_connection(&self, origin: &Origin) -> Option<Box<Connection>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let (_, list) = idle.iter_mut().find(|(known, _)| known.same_as(origin))?;
        while let Some((connection, since)) = list.pop() {
            if since.elapsed() < IDLE_TIMEOUT && connection.still_open() {
                return Some(connection);
            }
        }
        None
    }

    /// A new connection to `origin`.
    async fn connect(&self, origin: &Origin) -> Result<Box<Connection>, UpstreamError> {
        let uri = Uri::builder()
            .scheme(origin.scheme.clone())
            .authority(origin.authority.clone())
            .path_and_query(PathAndQuery::from_static("/"))
            .build()
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx)).await.map_err(UpstreamError::Connect)?;
        let stream = connector.call(uri).await.map_err(UpstreamError::Connect)?;
        Ok(Box::new(Connection { io: TokioIo::new(stream), read: BytesMut::with_capacity(READ_SIZE) }))
    }
}

/// GET, HEAD, OPTIONS, TRACE, PUT and DELETE may be sent twice (RFC 9110
/// §9.2.2), and so may a request its client gave an `Idempotency-Key`.
fn is_idempotent(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) || headers.contains_key("idempotency-key")
}

/// Sends the request on `connection` and reads the final response's head.
/// A streamed body is taken from `body` as it is sent.
async fn exchange(
    connection: &mut Connection,
    wire: &[u8],
    body: &mut Option<OutgoingBody>,
    framing: RequestFraming,
    reused: bool,
    idempotent: bool,
) -> Result<http1::ResponseHead, Failed> {
    let failed = |error: UpstreamError| Failed { error, retry: false };
    // Until a streamed body is taken, the request can still be sent again.
    let streamed = matches!(body, Some(OutgoingBody::Streaming(_)));
    if let Err(e) = connection.io.write_all(wire).await {
        return Err(Failed { error: e.into(), retry: reused });
    }
    match body {
        Some(OutgoingBody::Replayable(bytes)) => {
            connection.io.write_all(bytes).await.map_err(|e| failed(e.into()))?
        }
        Some(OutgoingBody::Streaming(_)) => {
            let Some(OutgoingBody::Streaming(incoming)) = body.take() else { unreachable!() };
            stream_body(connection, incoming, framing).await.map_err(failed)?;
        }
        None => {}
    }
    connection.io.flush().await.map_err(|e| failed(e.into()))?;
    let mut answered = false;
    loop {
        match http1::parse_response_head(&mut connection.read).map_err(|e| failed(e.into()))? {
            Some(head) if head.status == StatusCode::SWITCHING_PROTOCOLS => {
                return Err(failed(
                    ProtocolError("it switches protocols, which the proxy does not carry").into(),
                ));
            }
            Some(head) if head.status.is_informational() => {
                answered = true;
                continue;
            }
            Some(head) => return Ok(head),
            None => {}
        }
        let retry = reused && !answered && connection.read.is_empty() && idempotent && !streamed;
        match connection.fill().await {
            Ok(0) => return Err(Failed { error: UpstreamError::Closed, retry }),
            Ok(_) => {}
            Err(e) => return Err(Failed { error: e.into(), retry }),
        }
    }
}

/// Sends a client's body as it arrives: as is for a known length, in chunks
/// otherwise.
async fn stream_body(
    connection: &mut Connection,
    mut incoming: Incoming,
    framing: RequestFraming,
) -> Result<(), UpstreamError> {
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(UpstreamError::RequestBody)?;
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        if framing == RequestFraming::Chunked {
            connection.io.write_all(format!("{:x}\r\n", data.len()).as_bytes()).await?;
            connection.io.write_all(&data).await?;
            connection.io.write_all(b"\r\n").await?;
        } else {
            connection.io.write_all(&data).await?;
        }
    }
    if framing == RequestFraming::Chunked {
        connection.io.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// Where a connection goes back to once its response has been read.
struct Returning {
    origin: Origin,
    idle: IdleConnections,
}

impl Returning {
    fn put_back(self, connection: Box<Connection>) {
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
            list.push((connection, Instant::now()));
        }
    }
}

/// A response body, read from its connection as it is polled. Once read to
/// its end, the connection becomes idle again (if the upstream keeps it
/// open); dropped before that, or after an error, the connection closes.
pub struct UpstreamBody {
    connection: Option<Box<Connection>>,
    framing: ResponseFraming,
    returning: Option<Returning>,
}

impl UpstreamBody {
    fn ended(&self) -> bool {
        match &self.framing {
            ResponseFraming::Length(left) => *left == 0,
            ResponseFraming::Chunked(decoder) => decoder.is_done(),
            ResponseFraming::UntilClose => self.connection.is_none(),
        }
    }

    /// Hands the connection back, or closes it.
    fn finish(&mut self) {
        if let (Some(connection), Some(returning)) = (self.connection.take(), self.returning.take())
            && connection.read.is_empty()
        {
            returning.put_back(connection);
        }
    }

    fn fail(&mut self, error: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.connection = None;
        self.framing = ResponseFraming::UntilClose;
        Poll::Ready(Some(Err(error.into())))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(connection) = this.connection.as_mut() else { return Poll::Ready(None) };
            let read = &mut connection.read;
            let data = match &mut this.framing {
                ResponseFraming::Length(0) => None,
                ResponseFraming::Length(left) if !read.is_empty() => {
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(read.len());
                    *left -= take as u64;
                    Some(read.split_to(take).freeze())
                }
                ResponseFraming::Chunked(decoder) => match decoder.decode(read) {
                    Ok(Decoded::Data(data)) => Some(data),
                    Ok(Decoded::End) => None,
                    Ok(Decoded::NeedMore) => Some(Bytes::new()),
                    Err(e) => return this.fail(e),
                },
                ResponseFraming::UntilClose if !read.is_empty() => Some(read.split().freeze()),
                _ => Some(Bytes::new()),
            };
            match data {
                None => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Some(data) if !data.is_empty() => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Some(_) => {}
            }
            match std::task::ready!(connection.poll_fill(cx)) {
                Ok(0) if this.framing == ResponseFraming::UntilClose => {
                    this.connection = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(UpstreamError::Closed),
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            ResponseFraming::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.ended() {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream as StdStream};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper_rustls::HttpsConnectorBuilder;
    use rustls::{ClientConfig, RootCertStore};

    use super::*;

    /// A loopback upstream that runs `script` on each connection it accepts
    /// (with the connection's number, from 0); counts its connections.
    fn upstream(
        script: impl Fn(usize, &mut Conversation) + Send + Sync + 'static,
    ) -> (Origin, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin =
            Origin::of(&format!("http://{}", listener.local_addr().unwrap()).parse().unwrap()).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (counter, script) = (accepted.clone(), Arc::new(script));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let number = counter.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                std::thread::spawn(move || {
                    let mut conversation =
                        Conversation { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream };
                    script(number, &mut conversation);
                });
            }
        });
        (origin, accepted)
    }

    struct Conversation {
        reader: BufReader<StdStream>,
        writer: StdStream,
    }

    impl Conversation {
        /// The next request, head and body; `None` at the client's close.
        fn request(&mut self) -> Option<String> {
            let (mut text, mut length) = (String::new(), 0);
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line).ok()? == 0 {
                    return None;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                text.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            self.reader.read_exact(&mut body).ok()?;
            Some(text + &String::from_utf8(body).unwrap())
        }

        fn answer(&mut self, wire: &str) {
            self.writer.write_all(wire.as_bytes()).unwrap();
        }
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    fn upstreams() -> Upstreams {
        let tls =
            ClientConfig::builder().with_root_certificates(RootCertStore::empty()).with_no_client_auth();
        Upstreams::new(
            HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build(),
        )
    }

    /// Sends `body` to `origin` as `method /v1/models` with a bearer credential.
    async fn send(
        upstreams: &Upstreams,
        origin: &Origin,
        method: Method,
        body: OutgoingBody,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let path = PathAndQuery::from_static("/v1/models");
        let (headers, credential) = (HeaderMap::new(), HeaderValue::from_static("Bearer s"));
        let head = RequestHead {
            method: &method,
            path: &path,
            headers: &headers,
            dropped: &[],
            added: &[],
            credential: (&hyper::header::AUTHORIZATION, &credential),
        };
        upstreams.send(origin, head, body).await
    }

    /// Sends a request and reads its answer through: status and body.
    async fn exchange(
        upstreams: &Upstreams,
        origin: &Origin,
        method: Method,
        body: &str,
    ) -> Result<(u16, String), UpstreamError> {
        let body = OutgoingBody::Replayable(Bytes::from(body.to_string()));
        let response = send(upstreams, origin, method, body).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(UpstreamError::Connect)?.to_bytes();
        Ok((status, String::from_utf8(body.to_vec()).unwrap()))
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
    }

    #[test]
    fn a_connection_read_to_its_end_is_reused_whatever_its_body_framing() {
        let (origin, accepted) = upstream(|_, conversation| {
            let answers = [
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nt: 1\r\n\r\n",
                OK,
                "HTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlast",
            ];
            for answer in answers {
                let request = conversation.request().unwrap();
                assert!(request.starts_with("POST /v1/models HTTP/1.1\r\nhost: 127.0.0.1:"), "{request}");
                assert!(
                    request.ends_with("authorization: Bearer s\r\ncontent-length: 4\r\n\r\nbody"),
                    "{request}"
                );
                conversation.answer(answer);
            }
        });
        let upstreams = upstreams();
        let answers = block_on(async {
            let mut answers = Vec::new();
            for _ in 0..4 {
                answers.push(exchange(&upstreams, &origin, Method::POST, "body").await.unwrap());
            }
            answers
        });
        let expected = [(200, "abcde"), (200, "ok"), (204, ""), (200, "last")];
        assert_eq!(answers, expected.map(|(status, body)| (status, body.to_string())));
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection carried all four");
    }

    #[test]
    fn a_body_that_runs_to_the_close_is_read_whole_and_its_connection_not_reused() {
        let (origin, accepted) = upstream(|_, conversation| {
            conversation.request().unwrap();
            conversation.answer("HTTP/1.1 200 OK\r\n\r\nuntil the end");
        });
        let upstreams = upstreams();
        block_on(async {
            for _ in 0..2 {
                let answer = exchange(&upstreams, &origin, Method::GET, "").await.unwrap();
                assert_eq!(answer, (200, "until the end".to_string()));
            }
        });
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_connection_the_upstream_closed_while_idle_is_replaced() {
        let (origin, accepted) = upstream(|_, conversation| {
            conversation.request().unwrap();
            conversation.answer(OK);
        });
        let upstreams = upstreams();
        block_on(async {
            for _ in 0..3 {
                assert_eq!(exchange(&upstreams, &origin, Method::POST, "x").await.unwrap().1, "ok");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "each closed connection was noticed before reuse");
    }

    #[test]
    fn a_request_the_upstream_closed_on_is_resent_only_when_it_may_go_twice() {
        // Each connection answers one request, then takes the next and closes
        // without an answer, as a server timing out an idle connection can.
        let script = |_: usize, conversation: &mut Conversation| {
            conversation.request().unwrap();
            conversation.answer(OK);
            conversation.request();
        };
        let (origin, accepted) = upstream(script);
        let upstreams = upstreams();
        block_on(async {
            assert_eq!(exchange(&upstreams, &origin, Method::GET, "").await.unwrap().1, "ok");
            assert_eq!(exchange(&upstreams, &origin, Method::GET, "").await.unwrap().1, "ok", "resent");
        });
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        let (origin, accepted) = upstream(script);
        block_on(async {
            assert_eq!(exchange(&upstreams, &origin, Method::POST, "pay").await.unwrap().1, "ok");
            let second = exchange(&upstreams, &origin, Method::POST, "pay").await;
            assert!(matches!(second, Err(UpstreamError::Closed)), "a POST is not sent twice: {second:?}");
        });
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_malformed_or_truncated_answer_is_an_error() {
        let (origin, _) = upstream(|number, conversation| {
            conversation.request().unwrap();
            conversation.answer(if number == 0 {
                "NOT HTTP\r\n\r\n"
            } else {
                "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort"
            });
        });
        let upstreams = upstreams();
        block_on(async {
            let malformed = exchange(&upstreams, &origin, Method::GET, "").await;
            assert!(matches!(malformed, Err(UpstreamError::Protocol(_))), "{malformed:?}");
            let truncated = exchange(&upstreams, &origin, Method::GET, "").await;
            assert!(truncated.is_err(), "a body cut short is not passed off as whole: {truncated:?}");
        });
    }

    #[test]
    fn a_streamed_body_of_unknown_length_goes_out_in_chunks() {
        let (origin, _) = upstream(|_, conversation| {
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                conversation.reader.read_line(&mut head).unwrap();
            }
            assert!(
                head.contains("transfer-encoding: chunked\r\n") && !head.contains("content-length"),
                "{head}"
            );
            let mut body = String::new();
            while !body.ends_with("0\r\n\r\n") {
                conversation.reader.read_line(&mut body).unwrap();
            }
            assert_eq!(body, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
            conversation.answer(OK);
        });
        // The client's side: a hyper server whose one request streams its
        // body on to the upstream, and a client that sends that body chunked.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut stream = StdStream::connect(address).unwrap();
            stream
                .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
                .unwrap();
            std::thread::sleep(Duration::from_millis(50));
            stream.write_all(b"6\r\n world\r\n0\r\n\r\n").unwrap();
            let mut answer = String::new();
            BufReader::new(stream).read_line(&mut answer).unwrap();
            answer
        });
        block_on(async {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let upstreams = Arc::new(upstreams());
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let (upstreams, origin) = (upstreams.clone(), origin.clone());
                async move {
                    let body = OutgoingBody::Streaming(request.into_body());
                    send(&upstreams, &origin, Method::POST, body).await
                }
            });
            hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await
                .unwrap();
        });
        assert_eq!(client.join().unwrap(), "HTTP/1.1 200 OK\r\n");
    }

    #[test]
    fn a_length_beside_chunks_is_not_passed_on() {
        let (origin, _) = upstream(|_, conversation| {
            conversation.request().unwrap();
            conversation
                .answer("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 99\r\n\r\n2\r\nhi\r\n0\r\n\r\n");
        });
        let upstreams = upstreams();
        block_on(async {
            let body = OutgoingBody::Replayable(Bytes::new());
            let response = send(&upstreams, &origin, Method::GET, body).await.unwrap();
            assert!(!response.headers().contains_key(hyper::header::CONTENT_LENGTH));
            assert_eq!(&response.into_body().collect().await.unwrap().to_bytes()[..], b"hi");
        });
    }
}
