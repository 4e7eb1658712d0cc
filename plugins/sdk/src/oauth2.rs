//! Requests to an OAuth 2.0 token endpoint (RFC 6749 §3.2), for plugins that
//! speak to an identity provider themselves: a form-encoded POST with the
//! client's authentication, and the token or error response it answers.
//!
//! ```ignore
//! use keyhelper_plugin::oauth2::{ClientAuth, TokenRequest};
//!
//! let token = TokenRequest::new(token_url, "client_credentials")
//!     .param_opt("scope", request.option("scope"))
//!     .client(ClientAuth::Basic { client_id, secret: &secret })
//!     .send()?;
//! ```

use serde_json::Value;

use crate::{Credential, HostError, HttpRequest, ProviderError, now};

/// `client_assertion_type` of a JWT client assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How a client proves who it is to the token endpoint.
#[derive(Debug, Clone, Copy)]
pub enum ClientAuth<'a> {
    /// A public client: only its id, in the form.
    Public {
        /// The client id.
        client_id: &'a str,
    },
    /// `client_secret_basic`: HTTP Basic with the id and secret.
    Basic {
        /// The client id.
        client_id: &'a str,
        /// The client secret.
        secret: &'a str,
    },
    /// `client_secret_post`: the id and secret in the form.
    Post {
        /// The client id.
        client_id: &'a str,
        /// The client secret.
        secret: &'a str,
    },
    /// A signed JWT (RFC 7523), e.g. a Kubernetes or GitHub workload token.
    Assertion {
        /// The client id, when the server wants it besides the assertion.
        client_id: Option<&'a str>,
        /// The JWT.
        assertion: &'a str,
    },
}

/// A request to a token endpoint.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    url: String,
    form: Vec<(String, String)>,
    authorization: Option<String>,
}

impl TokenRequest {
    /// A request for `grant_type` to the endpoint at `url`.
    pub fn new(url: impl Into<String>, grant_type: &str) -> Self {
        Self { url: url.into(), form: vec![("grant_type".into(), grant_type.into())], authorization: None }
    }

    /// Adds a form parameter.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.form.push((name.into(), value.into()));
        self
    }

    /// Adds a form parameter when the value is present and not empty.
    pub fn param_opt(self, name: &str, value: Option<&str>) -> Self {
        match value.filter(|v| !v.is_empty()) {
            Some(value) => self.param(name, value),
            None => self,
        }
    }

    /// Authenticates the client.
    pub fn client(mut self, auth: ClientAuth<'_>) -> Self {
        match auth {
            ClientAuth::Public { client_id } => self.param("client_id", client_id),
            ClientAuth::Basic { client_id, secret } => {
                // RFC 6749 §2.3.1: each part form-encoded before Base64.
                let pair = format!("{}:{}", form_encode(client_id), form_encode(secret));
                self.authorization = Some(format!("Basic {}", base64(pair.as_bytes())));
                self
            }
            ClientAuth::Post { client_id, secret } => {
                self.param("client_id", client_id).param("client_secret", secret)
            }
            ClientAuth::Assertion { client_id, assertion } => self
                .param_opt("client_id", client_id)
                .param("client_assertion_type", JWT_BEARER)
                .param("client_assertion", assertion),
        }
    }

    /// The form body, `application/x-www-form-urlencoded`.
    pub fn body(&self) -> String {
        self.form
            .iter()
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The HTTP request this makes.
    pub fn http(&self) -> HttpRequest {
        let request = HttpRequest::post(self.url.clone(), self.body())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json");
        match &self.authorization {
            Some(value) => request.header("Authorization", value.clone()),
            None => request,
        }
    }

    /// Sends the request and reads the answer.
    pub fn send(&self) -> Result<TokenResponse, TokenError> {
        let response = self.http().send().map_err(TokenError::Host)?;
        TokenResponse::parse(response.status, &response.body)
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Its lifetime in seconds, when the server says.
    pub expires_in: Option<i64>,
    /// A refresh token, when the server issues (or rotates) one.
    pub refresh_token: Option<String>,
    /// Usually `Bearer`.
    pub token_type: Option<String>,
    /// The scope granted, when it differs from the one asked for.
    pub scope: Option<String>,
}

/// Why a token request failed.
#[derive(Debug, Clone)]
pub enum TokenError {
    /// The host did not complete the request (denied, unreachable, timed out).
    Host(HostError),
    /// The server refused (RFC 6749 §5.2): `error` is its code, e.g.
    /// `invalid_client`, `invalid_grant`.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error code, or `http_<status>` when the body had none.
        error: String,
        /// The server's `error_description`, shortened to one line.
        description: Option<String>,
    },
    /// The server answered 200 without a usable token.
    Malformed(String),
}

impl TokenResponse {
    /// Reads a token endpoint's answer. Never quotes a successful body: it
    /// holds the token.
    pub fn parse(status: u16, body: &[u8]) -> Result<Self, TokenError> {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let text = |field: &str| json.as_ref()?.get(field)?.as_str().map(str::to_string);
        if !(200..300).contains(&status) {
            return Err(TokenError::Refused {
                status,
                error: text("error").map(|e| one_line(&e, 64)).unwrap_or_else(|| format!("http_{status}")),
                description: text("error_description").map(|d| one_line(&d, 240)),
            });
        }
        let Some(json) = json.as_ref().filter(|j| j.is_object()) else {
            return Err(TokenError::Malformed("the token endpoint did not answer a JSON object".into()));
        };
        let access_token = text("access_token").filter(|t| !t.is_empty()).ok_or_else(|| {
            TokenError::Malformed("the token endpoint answered without an access_token".into())
        })?;
        let expires_in = match json.get("expires_in") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(Self {
            access_token,
            expires_in,
            refresh_token: text("refresh_token").filter(|t| !t.is_empty()),
            token_type: text("token_type"),
            scope: text("scope"),
        })
    }

    /// The access token as a credential: its expiry from `expires_in`,
    /// `token_type` and `scope` as metadata.
    pub fn credential(&self) -> Credential {
        let mut credential = Credential::new(self.access_token.clone());
        if let Some(seconds) = self.expires_in {
            credential = credential.expires_at(now().saturating_add(seconds));
        }
        if let Some(kind) = &self.token_type {
            credential = credential.meta("token_type", kind.clone());
        }
        if let Some(scope) = &self.scope {
            credential = credential.meta("scope", scope.clone());
        }
        credential
    }
}

impl TokenError {
    /// The server's words: `error: description`, for a message.
    pub fn said(&self) -> String {
        match self {
            Self::Refused { error, description: Some(d), .. } => format!("{error}: {d}"),
            Self::Refused { error, .. } => error.clone(),
            Self::Malformed(what) => what.clone(),
            Self::Host(e) => format!("{e:?}"),
        }
    }
}

impl From<TokenError> for ProviderError {
    /// A general mapping; providers usually match the codes they can name a
    /// fix for first.
    fn from(error: TokenError) -> Self {
        match &error {
            TokenError::Host(e) => e.clone().into(),
            TokenError::Malformed(what) => ProviderError::unavailable(what.clone()),
            TokenError::Refused { status: 429, .. } => {
                ProviderError::rate_limited(format!("the token endpoint is rate limiting: {}", error.said()))
            }
            TokenError::Refused { status, .. } if *status >= 500 => {
                ProviderError::unavailable(format!("the token endpoint failed ({status}): {}", error.said()))
            }
            TokenError::Refused { .. } => {
                ProviderError::denied(format!("the token endpoint refused: {}", error.said()))
            }
        }
    }
}

/// Whether secrets may be sent to `url`: https, or plain http only to a
/// loopback address (a local test server, a sidecar).
pub fn is_secure_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let authority =
        lower.split_once("://").map_or("", |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
    if authority.contains('@') {
        // userinfo: `http://localhost:1@evil.example/` is not loopback.
        return false;
    }
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|prefix| {
        lower.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
    });
    lower.starts_with("https://") || loopback
}

/// `text` encoded for `application/x-www-form-urlencoded`.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Standard Base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The first line of `text`, at most `max` characters, control characters
/// (terminal escapes) replaced: it is the server's text, shown to a person.
fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    let mut shown: String = line.chars().take(max).map(|c| if c.is_control() { '?' } else { c }).collect();
    if line.chars().nth(max).is_some() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_forms_and_basic_credentials_as_rfc_6749_says() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(base64(b"kh-cli:s3cr%3Aet"), "a2gtY2xpOnMzY3IlM0FldA==");
        assert_eq!(base64(b"ab"), "YWI=");
        let request = TokenRequest::new("https://idp/token", "client_credentials")
            .param_opt("scope", Some("read write"))
            .param_opt("audience", None)
            .client(ClientAuth::Basic { client_id: "kh-cli", secret: "s3cr:et" });
        assert_eq!(request.body(), "grant_type=client_credentials&scope=read+write");
        let http = request.http();
        assert!(http.headers.contains(&("Authorization".into(), "Basic a2gtY2xpOnMzY3IlM0FldA==".into())));
        let assertion = TokenRequest::new("https://idp/token", "client_credentials")
            .client(ClientAuth::Assertion { client_id: Some("app"), assertion: "e.y.j" });
        assert_eq!(
            assertion.body(),
            "grant_type=client_credentials&client_id=app&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=e.y.j"
        );
    }

    #[test]
    fn secrets_go_over_https_or_to_loopback_only() {
        assert!(is_secure_url("https://login.example.com/realms/x"));
        assert!(is_secure_url("http://127.0.0.1:8080"));
        assert!(is_secure_url("http://localhost/realms"));
        assert!(!is_secure_url("http://localhost.evil.com"));
        assert!(!is_secure_url("http://idp.example.com"));
        assert!(!is_secure_url("http://localhost:1@evil.example/token"));
    }

    #[test]
    fn reads_tokens_and_errors_without_quoting_a_token() {
        let ok = TokenResponse::parse(
            200,
            br#"{"access_token":"eyJ.a.b","token_type":"Bearer","expires_in":"3599","refresh_token":"rt-1"}"#,
        )
        .unwrap();
        assert_eq!((ok.expires_in, ok.refresh_token.as_deref()), (Some(3599), Some("rt-1")));
        let refused =
            TokenResponse::parse(400, br#"{"error":"invalid_grant","error_description":"expired\nmore"}"#)
                .unwrap_err();
        assert_eq!(refused.said(), "invalid_grant: expired");
        let escaped = TokenResponse::parse(400, "{\"error\":\"bad\\u001b[31m\"}".as_bytes()).unwrap_err();
        assert_eq!(escaped.said(), "bad?[31m", "terminal escapes never reach the terminal");
        let bare = TokenResponse::parse(502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(bare.said(), "http_502");
        let malformed = TokenResponse::parse(200, br#"{"access_token":""}"#).unwrap_err();
        assert!(!malformed.said().contains("eyJ"));
    }
}
