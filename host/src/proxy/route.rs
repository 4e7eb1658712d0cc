//! Where a proxied request goes: the credential's own upstream, or, while its
//! quota is gone, the first of its fallbacks of the same API family that
//! still has one, each with its own upstream and secret. The proxy says on
//! stderr when it fails over and when it returns, and keeps the state in a
//! file under the state directory for `keyhelper status` to show.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use hyper::Uri;
use hyper::http::uri::PathAndQuery;
use keyhelper_core::credential::Secret;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::manifest::ApiFamily;
use keyhelper_core::paths::Dirs;
use keyhelper_core::private_fs::{self, Durability};
use keyhelper_core::resolve::{ResolvedCredential, resolve};
use serde::Serialize;

use super::ProxyOptions;
use super::credential_source::{CredentialSource, HeaderChoice};
use super::quota::Exhausted;
use super::upstream::Origin;
use crate::environment::Environment;

/// One credential the proxy may use, with its upstream.
pub struct Backend {
    /// The credential's name.
    pub credential: String,
    /// Where its requests go.
    pub upstream: Uri,
    /// The upstream's scheme and host.
    pub origin: Origin,
    /// Its secret, kept current.
    pub source: CredentialSource,
    /// While its quota is gone: until when, and why.
    out: Mutex<Option<(SystemTime, String)>>,
}

impl Backend {
    /// The path and query a request has at the upstream [`Self::origin`]:
    /// the upstream's path prefix, then the request's path and query.
    pub fn upstream_path(&self, request: &Uri) -> Result<PathAndQuery, String> {
        path_at(&self.upstream, request)
    }
}

/// The credentials a proxy may use for one API family, in order.
pub struct Route {
    /// Their API family.
    pub family: ApiFamily,
    /// How long a rate limit may last before requests move on.
    pub failover_after: Duration,
    backends: Vec<Backend>,
    state: StateFile,
    /// Whether any backend may be out of quota; while none is, a request
    /// takes the backends as they are, without a lock or the time.
    any_out: AtomicBool,
    /// Held while a backend is taken out and while `any_out` is cleared, so
    /// a clearing never hides a new outage.
    marking: Mutex<()>,
}

impl Route {
    /// The credential `options` names and its fallbacks of the same family,
    /// each with a secret source of its own.
    pub fn build(env: &Environment, options: &ProxyOptions) -> Result<Self, Failure> {
        let config = env.config()?;
        let primary = resolve(&options.credential, &config, &env.catalog)?;
        let upstream = match &options.upstream {
            Some(upstream) => upstream.clone(),
            None => upstream_of(&primary, options.allow_insecure_upstream)?,
        };
        check_transport(&upstream, &primary.name, options.allow_insecure_upstream)?;
        let headers = HeaderChoice { name: options.header.clone(), prefix: options.header_prefix.clone() };
        let mut backends = vec![backend(env, &primary.name, upstream, headers)?];
        for name in &primary.fallback {
            let fallback = resolve(name, &config, &env.catalog)?;
            if fallback.api != primary.api {
                tracing::debug!(
                    "fallback '{name}' is for the {} API, not {}",
                    fallback.api.name(),
                    primary.api.name()
                );
                continue;
            }
            let upstream = upstream_of(&fallback, options.allow_insecure_upstream)?;
            backends.push(backend(env, name, upstream, HeaderChoice::default())?);
        }
        let state = StateFile::new(&env.dirs, primary.api);
        let route = Self {
            family: primary.api,
            failover_after: primary.failover_after,
            backends,
            state,
            any_out: AtomicBool::new(false),
            marking: Mutex::new(()),
        };
        route.save();
        Ok(route)
    }

    /// The secrets its credentials hold now: the primary's, which must be
    /// had, and those of the fallbacks that can be had.
    pub async fn current_secrets(&self) -> Result<Vec<Secret>, Failure> {
        let mut secrets = Vec::new();
        for (position, backend) in self.backends.iter().enumerate() {
            match backend.source.current().await {
                Ok(authorization) => secrets.push(authorization.secret.clone()),
                Err(failure) if position == 0 => {
                    return Err(failure.context(format!("credential '{}'", backend.credential)));
                }
                Err(failure) => {
                    tracing::warn!("fallback '{}' cannot be had now: {failure}", backend.credential)
                }
            }
        }
        Ok(secrets)
    }

    /// The backends to try now, in order: those whose quota is not known to
    /// be gone, the primary first. When every one is out, all of them.
    pub fn candidates(&self) -> Vec<&Backend> {
        if !self.any_out.load(Ordering::Acquire) {
            return self.backends.iter().collect();
        }
        let now = SystemTime::now();
        let mut returned = false;
        for backend in &self.backends {
            let mut out = backend.out.lock().expect("route lock");
            if out.as_ref().is_some_and(|(until, _)| *until <= now) {
                *out = None;
                returned = true;
                eprintln!(
                    "keyhelper: proxy: '{}' is back (its quota reset); using it again",
                    backend.credential
                );
            }
        }
        if returned {
            self.save();
        }
        let available: Vec<&Backend> =
            self.backends.iter().filter(|b| b.out.lock().expect("route lock").is_none()).collect();
        if available.len() == self.backends.len() {
            let _marking = self.marking.lock().expect("route lock");
            if self.backends.iter().all(|b| b.out.lock().expect("route lock").is_none()) {
                self.any_out.store(false, Ordering::Release);
            }
        }
        if available.is_empty() { self.backends.iter().collect() } else { available }
    }

    /// Takes `backend` out of the rotation while its quota is gone.
    pub fn mark_exhausted(&self, backend: &Backend, exhausted: &Exhausted) {
        let until = SystemTime::now() + exhausted.reset;
        {
            let _marking = self.marking.lock().expect("route lock");
            *backend.out.lock().expect("route lock") = Some((until, exhausted.reason.clone()));
            self.any_out.store(true, Ordering::Release);
        }
        let next = self.candidates().first().map(|b| b.credential.clone()).unwrap_or_default();
        eprintln!(
            "keyhelper: proxy: failing over from '{}' to '{next}' for {} ({})",
            backend.credential,
            keyhelper_core::duration::format(Duration::from_secs(exhausted.reset.as_secs().max(1))),
            exhausted.reason
        );
        self.save();
    }

    /// Writes the state file; failing to only costs `status` its view.
    fn save(&self) {
        let now = SystemTime::now();
        let unix = |t: SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let credentials = self
            .backends
            .iter()
            .map(|b| {
                let out = b.out.lock().expect("route lock").clone();
                BackendState {
                    credential: b.credential.clone(),
                    upstream: b.upstream.to_string(),
                    out_until: out.as_ref().filter(|(until, _)| *until > now).map(|(until, _)| unix(*until)),
                    reason: out.map(|(_, reason)| reason),
                }
            })
            .collect();
        self.state.write(&RouteState { pid: std::process::id(), api: self.family.name(), credentials });
    }
}

/// What `status` reads of a running proxy.
#[derive(Serialize)]
struct RouteState {
    pid: u32,
    api: &'static str,
    credentials: Vec<BackendState>,
}

#[derive(Serialize)]
struct BackendState {
    credential: String,
    upstream: String,
    out_until: Option<u64>,
    reason: Option<String>,
}

/// `<state dir>/proxies/<pid>-<family>.json`, removed when the proxy stops.
struct StateFile(std::path::PathBuf);

impl StateFile {
    fn new(dirs: &Dirs, family: ApiFamily) -> Self {
        Self(dirs.proxies_dir().join(format!("{}-{}.json", std::process::id(), family.name())))
    }

    fn write(&self, state: &RouteState) {
        let json = serde_json::to_vec_pretty(state).expect("route state serializes");
        if let Err(e) = private_fs::write_atomic(&self.0, &json, Durability::Disposable) {
            tracing::debug!("could not write {}: {e}", self.0.display());
        }
    }
}

impl Drop for StateFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn backend(
    env: &Environment,
    credential: &str,
    upstream: Uri,
    headers: HeaderChoice,
) -> Result<Backend, Failure> {
    let origin = Origin::of(&upstream).ok_or_else(|| {
        Failure::new(ExitClass::Config, format!("the upstream {upstream} of '{credential}' names no host"))
            .hint("e.g. https://api.openai.com")
    })?;
    let source = CredentialSource::start(env.again()?, credential, headers)?;
    Ok(Backend { credential: credential.to_string(), upstream, origin, source, out: Mutex::new(None) })
}

/// `request`'s path and query under `upstream`'s path prefix (none to
/// build when the upstream has no prefix).
fn path_at(upstream: &Uri, request: &Uri) -> Result<PathAndQuery, String> {
    let prefix = upstream.path().trim_end_matches('/');
    let asked = request.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    if prefix.is_empty() {
        return Ok(asked);
    }
    format!("{prefix}{asked}").parse().map_err(|e| format!("keyhelper proxy: bad request path: {e}"))
}

/// The credential's upstream, checked.
fn upstream_of(credential: &ResolvedCredential<'_>, allow_insecure: bool) -> Result<Uri, Failure> {
    let text = credential.upstream.as_deref().ok_or_else(|| {
        Failure::new(
            ExitClass::Config,
            format!("credential '{}' names no upstream to proxy to", credential.name),
        )
        .hint(format!(
            "add upstream = \"https://…\" to [credentials.{}] (the API's base URL), or pass --upstream",
            credential.name
        ))
    })?;
    let upstream: Uri = text.parse().map_err(|e| {
        Failure::new(
            ExitClass::Config,
            format!("credential '{}': upstream `{text}` is not a URL: {e}", credential.name),
        )
    })?;
    check_transport(&upstream, &credential.name, allow_insecure)?;
    Ok(upstream)
}

/// Plain HTTP only to loopback, unless the user said otherwise: a secret
/// must not cross a network in clear.
pub fn check_transport(upstream: &Uri, credential: &str, allow_insecure: bool) -> Result<(), Failure> {
    let loopback = upstream.host().is_some_and(|host| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    });
    match upstream.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback || allow_insecure => Ok(()),
        Some("http") => Err(Failure::new(
            ExitClass::Config,
            format!("credential '{credential}' would be sent in clear text to {upstream}"),
        )
        .hint("use an https:// upstream, or pass --allow-insecure-upstream if the network is yours")),
        _ => Err(Failure::new(ExitClass::Config, format!("the upstream {upstream} is not an http(s) URL"))
            .hint("e.g. https://api.openai.com")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_under_the_upstream_path_prefix_with_their_query() {
        let at = |upstream: &str, request: &str| {
            path_at(&upstream.parse().unwrap(), &request.parse().unwrap()).unwrap().to_string()
        };
        assert_eq!(at("http://127.0.0.1:8080", "/v1/models?limit=2"), "/v1/models?limit=2");
        assert_eq!(at("https://api.openai.com/", "/v1/models"), "/v1/models");
        assert_eq!(
            at(
                "https://myorg.openai.azure.com/openai/",
                "/deployments/gpt/chat/completions?api-version=2024-10-21"
            ),
            "/openai/deployments/gpt/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(at("https://gateway.example/v1", "/"), "/v1/");
    }

    #[test]
    fn clear_text_only_to_loopback_unless_allowed() {
        let ok = |url: &str, allow| check_transport(&url.parse().unwrap(), "c", allow).is_ok();
        assert!(ok("https://api.openai.com", false));
        assert!(ok("http://127.0.0.1:8080", false));
        assert!(ok("http://[::1]:8080/v1", false));
        assert!(ok("http://localhost:4000", false));
        assert!(!ok("http://gateway.internal:4000", false));
        assert!(ok("http://gateway.internal:4000", true));
        assert!(!ok("ftp://x", true));
    }
}
