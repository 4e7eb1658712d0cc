//! Forwards one request: checks the client key, swaps credentials, streams
//! the bodies, retries once with a renewed credential on an upstream 401, and
//! replays it to the next credential of its route when the upstream says the
//! quota is gone (only when no byte of the answer has reached the client and
//! the request body was kept: up to 1 MiB).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Response, StatusCode};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use keyhelper_core::failure::{ExitClass, Failure};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::ProxyOptions;
use super::access::{self, ClientKey};
use super::credential_source::Authorization;
use super::http1::RequestHead;
use super::quota;
use super::route::{Backend, Route};
use super::upstream::{BoxError, OutgoingBody, UpstreamError, UpstreamResponse, Upstreams};

/// A response body for the client.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Request bodies up to this size are kept so a request can be retried after
/// an upstream 401; larger ones stream through without a retry.
const REPLAYABLE_BODY: u64 = 1 << 20;

/// Headers that carry a credential: the client's are never passed on (they
/// are left out when the request is written upstream).
const CREDENTIAL_HEADERS: [HeaderName; 4] =
    [header::AUTHORIZATION, access::API_KEY, access::X_API_KEY, header::PROXY_AUTHORIZATION];

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not
/// the message. Named, not spelled, so removing them parses no name. (A
/// request's `Host` is replaced when it is sent upstream.)
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The proxy's request handler.
pub struct Forwarder {
    upstreams: Upstreams,
    route: Arc<Route>,
    client_key: ClientKey,
}

impl Forwarder {
    /// A forwarder along `route` over TLS (the platform's roots, or
    /// `--upstream-ca`) or plain HTTP, with keep-alive connections.
    pub fn new(options: &ProxyOptions, route: Arc<Route>, client_key: ClientKey) -> Result<Self, Failure> {
        let tls = tls_config(options)?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Self { upstreams: Upstreams::new(connector), route, client_key })
    }

    /// Handles one client request; every failure becomes a JSON error response.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ProxyBody> {
        if !self.client_key.admits(request.headers()) {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "keyhelper proxy: missing or wrong client key; send the client key the proxy printed at start-up",
            );
        }
        let (mut parts, body) = request.into_parts();
        keep_end_to_end(&mut parts.headers);
        // No Content-Length and no Transfer-Encoding means no body (RFC 9112 §6.3).
        let length = match parts.headers.get(header::CONTENT_LENGTH) {
            Some(value) => value.to_str().ok().and_then(|v| v.parse::<u64>().ok()),
            None if parts.headers.contains_key(header::TRANSFER_ENCODING) => None,
            None => Some(0),
        };
        let body = match length {
            Some(0) => OutgoingBody::Replayable(Bytes::new()),
            Some(n) if n <= REPLAYABLE_BODY => match body.collect().await {
                Ok(collected) => OutgoingBody::Replayable(collected.to_bytes()),
                Err(e) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        &format!("keyhelper proxy: reading the request failed: {e}"),
                    );
                }
            },
            _ => OutgoingBody::Streaming(body),
        };
        let replay = match &body {
            OutgoingBody::Replayable(bytes) => Some(bytes.clone()),
            OutgoingBody::Streaming(_) => None,
        };
        let mut body = Some(body);
        let candidates = self.route.candidates();
        for (position, backend) in candidates.iter().enumerate() {
            let outgoing = match (&replay, body.take()) {
                (Some(bytes), _) => OutgoingBody::Replayable(bytes.clone()),
                (None, Some(streaming)) => streaming,
                (None, None) => break,
            };
            let response = match self.through(backend, &parts, outgoing, replay.as_ref()).await {
                Ok(response) => response,
                Err(early) => return early,
            };
            let last = position + 1 == candidates.len();
            if last || !quota::worth_reading(self.route.family, response.status()) {
                tracing::debug!(
                    "{} {} → {} via '{}'",
                    parts.method,
                    parts.uri.path(),
                    response.status(),
                    backend.credential
                );
                return pass_back(response);
            }
            let (head, error_body) = match read_error_body(response).await {
                Ok(read) => read,
                Err(early) => return early,
            };
            let verdict = quota::judge(
                self.route.family,
                head.status,
                &head.headers,
                &error_body,
                self.route.failover_after,
                std::time::SystemTime::now(),
            );
            match verdict {
                Some(exhausted) if replay.is_some() => self.route.mark_exhausted(backend, &exhausted),
                Some(_) => {
                    eprintln!(
                        "keyhelper: proxy: '{}' is out of quota, but the request body was over {} MiB, so it was not kept to replay to a fallback; the client gets the 429",
                        backend.credential,
                        REPLAYABLE_BODY >> 20
                    );
                    return rebuilt(head, error_body);
                }
                None => return rebuilt(head, error_body),
            }
        }
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "quota_exhausted",
            "keyhelper proxy: every credential of this route is out of quota",
        )
    }

    /// Sends the request to `backend`, renewing its credential and retrying
    /// once on a 401 when the body was kept. Every failure is already the
    /// response to give.
    async fn through(
        &self,
        backend: &Backend,
        parts: &hyper::http::request::Parts,
        body: OutgoingBody,
        replay: Option<&Bytes>,
    ) -> Result<UpstreamResponse, Response<ProxyBody>> {
        let path = backend
            .upstream_path(&parts.uri)
            .map_err(|message| error_response(StatusCode::BAD_REQUEST, "bad_request", &message))?;
        let authorization =
            backend.source.current().await.map_err(|f| credential_error(&backend.credential, &f))?;
        let first = self.send(backend, parts, &path, body, &authorization).await;
        let response = match (first, replay) {
            (Ok(response), Some(bytes)) if response.status() == StatusCode::UNAUTHORIZED => {
                tracing::info!(
                    "upstream refused '{}' on {}; renewing it and retrying once",
                    backend.credential,
                    parts.uri.path()
                );
                let renewed = backend
                    .source
                    .renew_after_rejection(&authorization.secret)
                    .await
                    .map_err(|f| credential_error(&backend.credential, &f))?;
                match renewed {
                    Some(renewed) => {
                        let body = OutgoingBody::Replayable(bytes.clone());
                        self.send(backend, parts, &path, body, &renewed).await
                    }
                    None => {
                        tracing::info!(
                            "'{}' was already renewed after a 401 and its provider gives the same secret; the 401 goes to the client",
                            backend.credential
                        );
                        Ok(response)
                    }
                }
            }
            (first, _) => first,
        };
        response.map_err(|e| {
            error_response(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                &format!(
                    "keyhelper proxy: cannot reach the upstream {}: {}",
                    backend.upstream,
                    root_cause(&e)
                ),
            )
        })
    }

    async fn send(
        &self,
        backend: &Backend,
        parts: &hyper::http::request::Parts,
        path: &PathAndQuery,
        body: OutgoingBody,
        authorization: &Authorization,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let head = RequestHead {
            method: &parts.method,
            path,
            headers: &parts.headers,
            dropped: &CREDENTIAL_HEADERS,
            added: &authorization.extra,
            credential: (&authorization.name, &authorization.value),
        };
        self.upstreams.send(&backend.origin, head, body).await
    }
}

/// Reads an error response's body (at most [`quota::MAX_ERROR_BODY`]) to
/// judge it; a larger one cannot be a quota error and is reported as a 502.
async fn read_error_body(
    response: UpstreamResponse,
) -> Result<(hyper::http::response::Parts, Bytes), Response<ProxyBody>> {
    let (head, body) = response.into_parts();
    match http_body_util::Limited::new(body, quota::MAX_ERROR_BODY).collect().await {
        Ok(collected) => Ok((head, collected.to_bytes())),
        Err(e) => Err(error_response(
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            &format!("keyhelper proxy: the upstream's error answer could not be read: {e}"),
        )),
    }
}

/// A response whose body was read, given back as it came.
fn rebuilt(mut head: hyper::http::response::Parts, body: Bytes) -> Response<ProxyBody> {
    keep_end_to_end(&mut head.headers);
    head.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(head, Full::new(body).map_err(|never| match never {}).boxed())
}

/// The upstream's response, its body streamed as it arrives.
fn pass_back(response: UpstreamResponse) -> Response<ProxyBody> {
    let (mut head, body) = response.into_parts();
    keep_end_to_end(&mut head.headers);
    Response::from_parts(head, body.boxed())
}

/// Removes the hop-by-hop headers (and those `Connection` names), which
/// describe one connection, not the message.
fn keep_end_to_end(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the names finds that out, where
    // removing each in turn would look up every one of them.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named_in_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named_in_connection) {
        headers.remove(name);
    }
}

/// The answer when the proxy cannot get `credential` (say, `az` is signed
/// out): 502 when its provider's tool is failing, 503 otherwise, with the
/// message and its fix; and one stderr line for whoever runs the proxy, once
/// per distinct message so a busy client does not flood it. Never a 401: the
/// client's key is fine, and a client would take a 401 for its own fault.
fn credential_error(credential: &str, failure: &Failure) -> Response<ProxyBody> {
    static LAST_SAID: Mutex<String> = Mutex::new(String::new());
    let line = format!("keyhelper: proxy: cannot get '{credential}': {failure}");
    let mut last = LAST_SAID.lock().unwrap_or_else(|e| e.into_inner());
    if *last != line {
        eprintln!("{line}");
        *last = line;
    }
    let status = match failure.class {
        ExitClass::Unavailable => StatusCode::BAD_GATEWAY,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    error_response(
        status,
        "credential_unavailable",
        &format!("keyhelper proxy: cannot get '{credential}': {failure}"),
    )
}

/// An OpenAI-style JSON error body.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body =
        serde_json::json!({ "error": { "message": message, "type": "keyhelper_proxy", "code": code } })
            .to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed())
        .expect("a static response is valid")
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// TLS to the upstream: the platform's trust store, or only `--upstream-ca`
/// when given (a private CA for a corporate gateway, or a test's).
fn tls_config(options: &ProxyOptions) -> Result<ClientConfig, Failure> {
    let tls_error =
        |e: String| Failure::new(ExitClass::Config, format!("cannot set up TLS for the upstream: {e}"));
    match &options.upstream_ca {
        None => {
            use rustls_platform_verifier::ConfigVerifierExt;
            ClientConfig::with_platform_verifier().map_err(|e| tls_error(e.to_string()))
        }
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_error(format!("{}: {e}", path.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
            for cert in certs {
                roots.add(cert).map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
            }
            Ok(ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
        }
    }
}
