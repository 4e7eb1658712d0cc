//! `keyhelper login oauth2`: a person signs in with their identity provider,
//! and keyhelper keeps the refresh token it gets. In a browser, with the
//! authorization code flow, PKCE (RFC 7636) and a loopback redirect
//! (RFC 8252); or with `--device`, the device flow (RFC 8628), for machines
//! without a browser. The endpoints come from the issuer's OpenID discovery
//! document. Runs in the host, not the plugin: it listens on a port, opens a
//! browser and waits for a person, none of which a plugin may do.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use keyhelper_core::credential::Secret;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::platform;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::runtime::capability::origin;
use crate::runtime::http;

/// How long a person has to finish signing in in the browser.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest a device code is waited for (identity providers give 15 minutes).
const DEVICE_CODE_TIMEOUT: Duration = Duration::from_secs(1800);
/// The longest wait between two polls of the device flow, in seconds.
const MAX_POLL_INTERVAL: u64 = 60;
/// How long one request to the loopback listener may take to arrive.
const REDIRECT_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for one request to the identity provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read from the identity provider.
const MAX_BODY: usize = 1 << 20;
/// `grant_type` of the device flow.
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What a sign-in needs: the credential's options and, for a confidential
/// client, its stored secret.
pub struct SignIn<'a> {
    /// The credential's name, for messages.
    pub credential: &'a str,
    /// Its options, defaults filled in.
    pub options: &'a BTreeMap<String, String>,
    /// The client secret stored for the connection, if any.
    pub client_secret: Option<&'a Secret>,
}

/// The endpoints of the issuer's discovery document this needs.
struct Endpoints {
    authorization: Option<String>,
    device: Option<String>,
    token: String,
}

impl SignIn<'_> {
    /// Signs in (browser, or device flow) and returns the refresh token.
    pub fn run(&self, device: bool) -> Result<Secret, Failure> {
        let endpoints = self.discover()?;
        let tokens = if device { self.device_flow(&endpoints)? } else { self.browser_flow(&endpoints)? };
        let refresh = tokens.get("refresh_token").and_then(Value::as_str).filter(|t| !t.is_empty());
        refresh.map(Secret::new).ok_or_else(|| {
            Failure::new(ExitClass::Denied, "the identity provider signed you in but issued no refresh token")
                .hint(format!(
                    "ask for one: add `offline_access` to `scope` of [credentials.{}] (and allow refresh tokens for the client)",
                    self.credential
                ))
        })
    }

    fn option(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn client_id(&self) -> Result<&str, Failure> {
        self.option("client_id").ok_or_else(|| {
            Failure::new(ExitClass::Config, format!("credential '{}' has no `client_id`", self.credential))
                .hint(format!("add `client_id = \"…\"` to [credentials.{}]", self.credential))
        })
    }

    /// The endpoints, from `{issuer}/.well-known/openid-configuration`.
    fn discover(&self) -> Result<Endpoints, Failure> {
        let issuer = self.option("issuer").ok_or_else(|| {
            Failure::new(
                ExitClass::Config,
                format!(
                    "signing in needs the `issuer` of credential '{}' (for OpenID discovery)",
                    self.credential
                ),
            )
            .hint("add `issuer = \"https://…\"`, or store a client secret or refresh token with --stdin")
        })?;
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let json = self.request("GET", &url, &[], None)?.1;
        let endpoint = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_string);
        let token = match self.option("token_url") {
            Some(token_url) => token_url.to_string(),
            None => endpoint("token_endpoint").ok_or_else(|| {
                Failure::new(
                    ExitClass::Unavailable,
                    format!("the discovery document at {url} names no token_endpoint"),
                )
                .hint("set `token_url`")
            })?,
        };
        // As the plugin does: a discovered token endpoint must be on the
        // issuer's origin, or the user names it with `token_url`.
        if self.option("token_url").is_none() && origin(&token) != origin(issuer) {
            return Err(Failure::new(
                ExitClass::Config,
                format!("the token endpoint {} is not on the issuer's host", printable(&token, 200)),
            )
            .hint(format!("if you trust it, set `token_url` to it in [credentials.{}]", self.credential)));
        }
        Ok(Endpoints {
            authorization: endpoint("authorization_endpoint"),
            device: endpoint("device_authorization_endpoint"),
            token,
        })
    }

    /// Sends a request to the identity provider; its status and JSON answer.
    fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<(u16, Value), Failure> {
        require_secure(url)?;
        let mut all = vec![("Accept".to_string(), "application/json".to_string())];
        all.extend_from_slice(headers);
        let request = http::Request { method, url, headers: &all, body };
        let response = http::send(&request, HTTP_TIMEOUT, MAX_BODY).map_err(|e| {
            Failure::new(ExitClass::Unavailable, e.to_string()).hint("check the network and `issuer`")
        })?;
        let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if method == "GET" && response.status != 200 {
            return Err(Failure::new(ExitClass::Unavailable, format!("{url} answered {}", response.status))
                .hint("check `issuer`"));
        }
        Ok((response.status, json))
    }

    /// A form POST with the client's authentication (`client_auth`).
    fn post_form(&self, url: &str, params: &[(&str, &str)]) -> Result<(u16, Value), Failure> {
        let client_id = self.client_id()?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(params);
        let mut headers = vec![("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string())];
        match (self.client_secret, self.option("client_auth").unwrap_or("basic")) {
            (Some(secret), "post") => {
                form.append_pair("client_id", client_id).append_pair("client_secret", secret.expose());
            }
            (Some(secret), _) => {
                let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair =
                    zeroize::Zeroizing::new(format!("{}:{}", encode(client_id), encode(secret.expose())));
                headers.push(("Authorization".into(), format!("Basic {}", STANDARD.encode(pair.as_bytes()))));
            }
            (None, _) => {
                form.append_pair("client_id", client_id);
            }
        }
        let body = zeroize::Zeroizing::new(form.finish());
        self.request("POST", url, &headers, Some(body.as_bytes()))
    }

    /// `scope`, `audience` and `resource`, those the credential sets.
    fn scope_params(&self) -> Vec<(&'static str, &str)> {
        ["scope", "audience", "resource"].into_iter().filter_map(|n| Some((n, self.option(n)?))).collect()
    }

    /// The identity provider's answer to a form POST, or its error as one line.
    fn tokens(&self, url: &str, params: &[(&str, &str)]) -> Result<Value, Failure> {
        let (status, json) = self.post_form(url, params)?;
        if status == 200 {
            return Ok(json);
        }
        Err(refused(&json, status))
    }

    /// Authorization code + PKCE through the browser and a loopback redirect.
    fn browser_flow(&self, endpoints: &Endpoints) -> Result<Value, Failure> {
        let authorize = endpoints.authorization.as_deref().ok_or_else(|| {
            Failure::new(
                ExitClass::Unavailable,
                "the identity provider offers no browser sign-in (no authorization_endpoint)",
            )
            .hint("try --device, or store a refresh token with --refresh-token --stdin")
        })?;
        let port: u16 = self.option("redirect_port").unwrap_or("0").parse().map_err(|_| {
            Failure::new(ExitClass::Config, "`redirect_port` is not a port number")
                .hint("use 0 for any free port")
        })?;
        let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
            Failure::new(
                ExitClass::Unavailable,
                format!("cannot listen on 127.0.0.1:{port} for the sign-in: {e}"),
            )
            .hint("choose another `redirect_port`, or 0")
        })?;
        let redirect_uri =
            format!("http://127.0.0.1:{}/callback", listener.local_addr().map_or(port, |a| a.port()));
        let verifier = random_token(32);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_token(16);
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", self.client_id()?)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        query.extend_pairs(self.scope_params());
        let separator = if authorize.contains('?') { '&' } else { '?' };
        let url = format!("{authorize}{separator}{}", query.finish());
        require_secure(&url)?;
        eprintln!("keyhelper: sign in in your browser; if it does not open, go to:\n  {url}");
        open_browser(&url);
        let code = wait_for_code(&listener, &state)?;
        self.tokens(
            &endpoints.token,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", &verifier),
            ],
        )
    }

    /// The device flow: a code the person enters on another device.
    fn device_flow(&self, endpoints: &Endpoints) -> Result<Value, Failure> {
        let url = endpoints.device.as_deref().ok_or_else(|| {
            Failure::new(
                ExitClass::Unavailable,
                "the identity provider offers no device sign-in (no device_authorization_endpoint)",
            )
            .hint("sign in in a browser: run the same command without --device")
        })?;
        let json = self.tokens(url, &self.scope_params())?;
        let field = |name: &str| json.get(name).and_then(Value::as_str);
        let (Some(device_code), Some(user_code)) = (field("device_code"), field("user_code")) else {
            return Err(Failure::new(
                ExitClass::Unavailable,
                "the device sign-in answer lacks device_code or user_code",
            ));
        };
        let verification = field("verification_uri").or_else(|| field("verification_url")).unwrap_or(url);
        eprintln!(
            "keyhelper: to sign in, open {} and enter the code {}",
            printable(verification, 200),
            printable(user_code, 32)
        );
        if let Some(complete) = field("verification_uri_complete") {
            eprintln!("keyhelper: or open {}", printable(complete, 300));
        }
        let seconds = |name: &str, default: u64| json.get(name).and_then(Value::as_u64).unwrap_or(default);
        let mut interval = Duration::from_secs(seconds("interval", 5).clamp(1, MAX_POLL_INTERVAL));
        let lifetime = Duration::from_secs(seconds("expires_in", 900)).min(DEVICE_CODE_TIMEOUT);
        let deadline = Instant::now() + lifetime;
        loop {
            std::thread::sleep(interval.min(deadline.saturating_duration_since(Instant::now())));
            if Instant::now() >= deadline {
                return Err(Failure::new(
                    ExitClass::NeedsLogin,
                    "the device code expired before the sign-in finished",
                )
                .hint("run the same command again"));
            }
            let (status, json) = self.post_form(
                &endpoints.token,
                &[("grant_type", DEVICE_CODE_GRANT), ("device_code", device_code)],
            )?;
            if status == 200 {
                return Ok(json);
            }
            match json.get("error").and_then(Value::as_str) {
                Some("authorization_pending") => {}
                Some("slow_down") => {
                    interval = (interval + Duration::from_secs(5)).min(Duration::from_secs(MAX_POLL_INTERVAL))
                }
                _ => return Err(refused(&json, status)),
            }
        }
    }
}

/// The identity provider's error answer as one line naming the fix.
fn refused(json: &Value, status: u16) -> Failure {
    let error = printable(json.get("error").and_then(Value::as_str).unwrap_or("no error code"), 64);
    let description = json
        .get("error_description")
        .and_then(Value::as_str)
        .and_then(|d| d.lines().next())
        .map(|d| format!(": {}", printable(d, 240)))
        .unwrap_or_default();
    let message = format!("the identity provider refused the sign-in ({status} {error}{description})");
    let hint = match error.as_str() {
        "invalid_client" | "unauthorized_client" => {
            "check `client_id`, and store the client secret with `keyhelper login oauth2 --stdin --force` if the client has one"
        }
        "access_denied" => "the sign-in was declined; run the command again to retry",
        "expired_token" => "the code expired; run the command again",
        "invalid_scope" => "check `scope`",
        _ => "check the credential's `issuer`, `client_id` and `scope`",
    };
    Failure::new(ExitClass::Denied, message).hint(hint)
}

/// Text from the identity provider, safe to print: at most `max`
/// characters, control characters (terminal escapes) replaced.
fn printable(text: &str, max: usize) -> String {
    let mut shown: String = text.chars().take(max).map(|c| if c.is_control() { '?' } else { c }).collect();
    if text.chars().nth(max).is_some() {
        shown.push('…');
    }
    shown
}

/// `Ok` for https, or plain http to a loopback address.
fn require_secure(url: &str) -> Result<(), Failure> {
    let parsed = url::Url::parse(url).map_err(|e| {
        Failure::new(ExitClass::Config, format!("{url} is not a URL: {e}")).hint("check `issuer`")
    })?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback) {
        Ok(())
    } else {
        Err(Failure::new(
            ExitClass::Config,
            format!("{url} is not https: the sign-in would travel in the clear"),
        )
        .hint("use an https:// issuer (plain http only for a loopback address)"))
    }
}

/// `bytes` random bytes from the OS, URL-safe Base64.
fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// Opens `url` with `$BROWSER` if set, else the platform's opener. Failing
/// is fine: the URL is printed too.
fn open_browser(url: &str) {
    let (program, args) = match std::env::var("BROWSER") {
        Ok(browser) if !browser.trim().is_empty() => (browser, Vec::new()),
        _ => (platform::URL_OPENER.0.to_string(), platform::URL_OPENER.1.to_vec()),
    };
    let started = Command::new(&program)
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = started {
        tracing::debug!("could not start {program}: {e}");
    }
}

/// Waits for the browser to come back to the loopback redirect, and returns
/// the authorization code once `state` matches.
fn wait_for_code(listener: &TcpListener, state: &str) -> Result<String, Failure> {
    listener.set_nonblocking(true).map_err(|e| Failure::new(ExitClass::Internal, e.to_string()))?;
    let deadline = Instant::now() + SIGN_IN_TIMEOUT;
    while Instant::now() < deadline {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => {
                return Err(Failure::new(
                    ExitClass::Unavailable,
                    format!("the sign-in listener failed: {e}"),
                ));
            }
        };
        if let Some(answer) = answer_redirect(stream, state) {
            return answer;
        }
    }
    Err(Failure::new(ExitClass::NeedsLogin, "nobody finished the sign-in within 5 minutes")
        .hint("run the command again"))
}

/// Reads one request to the loopback listener. `None` for a request that is
/// not the redirect (a favicon, say); otherwise the code or why there is none.
fn answer_redirect(mut stream: TcpStream, state: &str) -> Option<Result<String, Failure>> {
    let line = read_request_line(&stream)?;
    let target = line.split_whitespace().nth(1)?.to_string();
    let Some(query) = target.strip_prefix("/callback") else {
        respond(&mut stream, "404 Not Found", "Not found.");
        return None;
    };
    let params: BTreeMap<String, String> =
        url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes()).into_owned().collect();
    if params.get("state").map(String::as_str) != Some(state) {
        // Not this sign-in's answer (a stale tab, or someone else): refuse
        // it and keep waiting for the real one.
        respond(
            &mut stream,
            "400 Bad Request",
            "This sign-in does not belong to the keyhelper waiting here.",
        );
        tracing::warn!("ignored a request to the sign-in listener with another state");
        return None;
    }
    if let Some(error) = params.get("error") {
        respond(&mut stream, "400 Bad Request", "The sign-in failed; see the terminal.");
        let json =
            serde_json::json!({ "error": error, "error_description": params.get("error_description") });
        return Some(Err(refused(&json, 400)));
    }
    let Some(code) = params.get("code").filter(|c| !c.is_empty()) else {
        respond(&mut stream, "400 Bad Request", "The sign-in answer had no code.");
        return Some(Err(Failure::new(
            ExitClass::Denied,
            "the browser came back without an authorization code",
        )));
    };
    respond(&mut stream, "200 OK", "Signed in to keyhelper. You can close this tab.");
    Some(Ok(code.clone()))
}

/// The request line of one request to the listener, if it arrives whole
/// within [`REDIRECT_READ_TIMEOUT`] (a client trickling bytes cannot hold
/// the listener).
fn read_request_line(stream: &TcpStream) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    let deadline = Instant::now() + REDIRECT_READ_TIMEOUT;
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\n") && line.len() < 8192 {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        stream.set_read_timeout(Some(left)).ok()?;
        if (&*stream).read(&mut byte).ok()? == 0 {
            return None;
        }
        line.push(byte[0]);
    }
    String::from_utf8(line).ok()
}

/// A tiny HTML answer to the browser.
fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    let body = format!("<!doctype html><title>keyhelper</title><p>{text}</p>\n");
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(require_secure("https://idp.example.com/authorize").is_ok());
        assert!(require_secure("http://127.0.0.1:8080/token").is_ok());
        assert!(require_secure("http://localhost/token").is_ok());
        assert!(require_secure("http://idp.example.com/token").is_err());
    }

    #[test]
    fn server_text_is_printed_bounded_and_without_escapes() {
        assert_eq!(printable("bad\u{1b}[31mred", 64), "bad?[31mred");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(origin("https://IdP.example.com/realms/x").as_deref(), Some("https://idp.example.com"));
        assert_ne!(origin("https://oauth2.googleapis.com/token"), origin("https://accounts.google.com"));
    }

    #[test]
    fn the_pkce_challenge_is_the_s256_of_the_verifier() {
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(random_token(32).len(), 43);
        assert_ne!(random_token(16), random_token(16));
    }
}
