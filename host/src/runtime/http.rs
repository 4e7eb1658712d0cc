//! Sends a plugin's HTTP request (already checked against its grant) and reads
//! the whole response within limits. Redirects are not followed: a redirect to
//! another URL would escape the allow-list, so the plugin sees the 3xx instead.

use std::time::Duration;

use ureq::tls::{RootCerts, TlsConfig};

/// A request to send.
pub struct Request<'a> {
    /// HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// Absolute URL.
    pub url: &'a str,
    /// Header names and values.
    pub headers: &'a [(String, String)],
    /// Request body.
    pub body: Option<&'a [u8]>,
}

/// A response, whatever its status.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names and values (non-UTF-8 values are dropped).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request did not complete in time.
    #[error("request to {0} timed out")]
    TimedOut(String),
    /// The response body was over the limit.
    #[error("response from {0} is larger than {1} bytes")]
    TooLarge(String, usize),
    /// Anything else: DNS, connection, TLS, a malformed request.
    #[error("request to {url} failed: {message}")]
    Failed {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// Sends `request` and waits for the whole response.
pub fn send(request: &Request<'_>, timeout: Duration, max_body: usize) -> Result<Response, HttpError> {
    let failed = |e: ureq::Error| match e {
        ureq::Error::Timeout(_) => HttpError::TimedOut(request.url.into()),
        ureq::Error::BodyExceedsLimit(_) => HttpError::TooLarge(request.url.into(), max_body),
        other => HttpError::Failed { url: request.url.into(), message: other.to_string() },
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(TlsConfig::builder().root_certs(RootCerts::PlatformVerifier).build())
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(request.method).uri(request.url);
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    let http_request = builder
        .body(request.body.unwrap_or_default().to_vec())
        .map_err(|e| HttpError::Failed { url: request.url.into(), message: e.to_string() })?;
    let mut response = agent.run(http_request).map_err(failed)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
        .collect();
    let body = response.body_mut().with_config().limit(max_body as u64).read_to_vec().map_err(failed)?;
    Ok(Response { status, headers, body })
}
