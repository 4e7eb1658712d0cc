//! The Docker credential-helper protocol, spoken when keyhelper is run as
//! `docker-credential-keyhelper <action>` (a symlink to it) or as
//! `keyhelper docker-credential <action>`.
//!
//! - `get`: the server URL on stdin; `{"ServerURL","Username","Secret"}` on
//!   stdout for a registry in `[docker."<registry>"]`, else exactly
//!   `credentials not found in native keychain` and exit 1.
//! - `list`: `{"<registry>": "<username>", …}`.
//! - `erase`: drops the cached secret. `store`: refused (keyhelper hands out
//!   secrets from their source; configure the registry instead).
//! - `version`.
//!
//! Errors go to stdout with a non-zero exit, as Docker reads them there.

use std::io::Read;

use keyhelper_core::config::{Config, HostBinding};
use keyhelper_core::failure::Failure;

use zeroize::Zeroizing;

use crate::broker::GetOptions;
use crate::environment::Environment;

/// What `get` answers, borrowing the secret rather than copying it.
#[derive(serde::Serialize)]
struct DockerCredential<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Secret")]
    secret: &'a str,
}

/// The protocol's "nothing stored for this server" message.
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// Runs one protocol action; returns the exit code.
pub fn run(env: &Environment, action: &str) -> u8 {
    let mut input = String::new();
    if matches!(action, "get" | "erase" | "store") {
        let _ = std::io::stdin().read_to_string(&mut input);
    }
    match respond(env, action, input.trim()) {
        Ok(mut reply) => {
            reply.push('\n');
            match keyhelper_core::output::print(&reply) {
                Ok(()) => 0,
                Err(_) => 1,
            }
        }
        Err(failure) => {
            println!("{failure}");
            1
        }
    }
}

/// The reply to `action` (for `get`, it holds the secret: zeroed when dropped).
fn respond(env: &Environment, action: &str, input: &str) -> Result<Zeroizing<String>, Failure> {
    let config = env.config()?;
    match action {
        "get" => {
            let Some((url, binding)) = find(&config, input) else {
                return Err(Failure::new(keyhelper_core::failure::ExitClass::NotFound, NOT_FOUND));
            };
            let served = env.broker(&config)?.get(&binding.credential, GetOptions::default())?;
            env.audit_served(&config, &binding.credential, "docker", &served);
            let reply = DockerCredential {
                server_url: url,
                username: binding.username.as_deref().unwrap_or_default(),
                secret: served.credential.secret.expose(),
            };
            Ok(Zeroizing::new(serde_json::to_string(&reply).expect("strings serialize")))
        }
        "list" => {
            let map: serde_json::Map<String, serde_json::Value> = config
                .docker
                .iter()
                .map(|(url, b)| (url.clone(), b.username.clone().unwrap_or_default().into()))
                .collect();
            Ok(Zeroizing::new(serde_json::Value::Object(map).to_string()))
        }
        "erase" => {
            if let (Some((_, binding)), Some(cache)) = (find(&config, input), env.cache()) {
                let _ = cache.clear(|entry| entry.name == binding.credential);
            }
            Ok(Zeroizing::new(String::new()))
        }
        "store" => Err(Failure::new(
            keyhelper_core::failure::ExitClass::Usage,
            "keyhelper does not store Docker credentials; add a [docker.\"<registry>\"] table to its config.toml",
        )),
        "version" => Ok(Zeroizing::new(format!("keyhelper {}", env!("CARGO_PKG_VERSION")))),
        other => Err(Failure::new(
            keyhelper_core::failure::ExitClass::Usage,
            format!("unknown action `{other}`; use get, list, store, erase or version"),
        )),
    }
}

/// The configured registry for a server URL: an exact match (ignoring the
/// scheme and a trailing `/`), else the same host.
fn find<'a>(config: &'a Config, server_url: &str) -> Option<(&'a String, &'a HostBinding)> {
    let normalize = |url: &str| {
        let url = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).unwrap_or(url);
        url.trim_end_matches('/').to_string()
    };
    let host = |url: &str| normalize(url).split('/').next().unwrap_or_default().to_string();
    let wanted = normalize(server_url);
    config
        .docker
        .iter()
        .find(|(url, _)| normalize(url) == wanted)
        .or_else(|| config.docker.iter().find(|(url, _)| host(url) == host(server_url)))
}
