//! `keyhelper status`: where keyhelper keeps things and which secret store is
//! in use. Never shows a secret.

use std::time::Duration;

use keyhelper_core::cache::{CacheEntry, CachedCredential, RenewalFailures};
use keyhelper_core::clock::unix_now;
use keyhelper_core::duration;
use keyhelper_core::failure::Failure;
use keyhelper_core::platform;
use serde_json::{Value, json};

use crate::environment::Environment;

/// "expires in 42m", "cached for 13m more (no expiry known)" or "expired".
pub fn describe_expiry(entry: &CachedCredential, now: i64) -> String {
    let left = |until: i64| duration::format(Duration::from_secs((until - now).max(0).unsigned_abs()));
    match entry.credential.expires_at {
        Some(expires_at) if expires_at > now => format!("expires in {}", left(expires_at)),
        Some(_) => "expired".to_string(),
        None if entry.cache_until > now => {
            format!("cached for {} more (no expiry known)", left(entry.cache_until))
        }
        None => "stale".to_string(),
    }
}

/// "; renewal failed 2m ago (reason); next try in 30s", or nothing.
pub fn describe_renewal(failures: Option<&RenewalFailures>, now: i64) -> String {
    let Some(failures) = failures else { return String::new() };
    let ago = duration::format(Duration::from_secs((now - failures.last_at).max(0).unsigned_abs()));
    let next = if failures.backing_off(now) {
        format!(
            "next try in {}",
            duration::format(Duration::from_secs((failures.next_try_at - now).unsigned_abs()))
        )
    } else {
        "next try when it is asked for".to_string()
    };
    let times =
        if failures.count > 1 { format!(" ({} times in a row)", failures.count) } else { String::new() };
    format!("; renewal failed {ago} ago{times}: {}; {next}", failures.reason)
}

/// A cached entry as `list --json` and `status --json` show it: its times,
/// never its secret.
pub fn cached_json(entry: &CacheEntry<'_>, cached: &CachedCredential) -> Value {
    let failures = entry.renewal_failures();
    json!({
        "expires_at": cached.credential.expires_at,
        "cache_until": cached.cache_until,
        "fetched_at": cached.fetched_at,
        "renewal_failure": failures.map(|f| json!({
            "count": f.count, "last_at": f.last_at, "reason": f.reason, "next_try_at": f.next_try_at,
        })),
    })
}

/// Runs `status`.
pub fn run(env: &Environment, json: bool) -> Result<(), Failure> {
    let config = env.config()?;
    let store = env.store(&config)?;
    let (backend, why) = store.preferred();
    let stored = store.list()?;
    if json {
        let cache = env.cache();
        let entries = cache.as_ref().map(|cache| cache.entries()).unwrap_or_default();
        let document = json!({
            "config": { "path": config.path, "credentials": config.credentials.len() },
            "secret_store": { "backend": backend.to_string(), "description": store.describe(backend), "why": why },
            "stored_secrets": stored.len(),
            "plugin_cache": env.dirs.artifact_dir(),
            "cache_dir": env.dirs.credentials_cache_dir(),
            "providers_dir": env.dirs.providers_dir,
            "cached": entries.iter().map(|(entry, cached)| {
                let mut value = cached_json(entry, cached);
                value["name"] = json!(cached.name);
                value["provider"] = json!(cached.provider);
                value
            }).collect::<Vec<_>>(),
            "proxies": running_proxy_states(&env.dirs.proxies_dir()),
        });
        return super::print_json(&document);
    }
    let mut out = String::new();
    out.push_str(&format!(
        "config:          {} ({} credential{})\n",
        config.path.display(),
        config.credentials.len(),
        if config.credentials.len() == 1 { "" } else { "s" }
    ));
    out.push_str(&format!("secret store:    {backend}: {} ({why})\n", store.describe(backend)));
    out.push_str(&format!("stored secrets:  {}\n", stored.len()));
    out.push_str(&format!("plugin cache:    {}\n", env.dirs.artifact_dir().display()));
    out.push_str(&format!("secret cache:    {}\n", env.dirs.credentials_cache_dir().display()));
    out.push_str(&format!("your providers:  {}\n", env.dirs.providers_dir.display()));
    let cache = env.cache();
    let entries = cache.as_ref().map(|cache| cache.entries()).unwrap_or_default();
    out.push_str(&format!("cached secrets:  {}\n", entries.len()));
    let now = unix_now();
    for (entry, cached) in &entries {
        out.push_str(&format!(
            "  {:<22} {:<20} {}{}\n",
            cached.name,
            cached.provider,
            describe_expiry(cached, now),
            describe_renewal(entry.renewal_failures().as_ref(), now)
        ));
    }
    out.push_str(&running_proxies(&env.dirs.proxies_dir(), now));
    print!("{out}");
    Ok(())
}

/// The states of the proxies running now, as they describe themselves in
/// the state directory (a file left by one that died is removed).
fn running_proxy_states(dir: &std::path::Path) -> Vec<Value> {
    let mut states = Vec::new();
    for path in std::fs::read_dir(dir).into_iter().flatten().filter_map(|e| Some(e.ok()?.path())) {
        let Some(state) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            continue;
        };
        let pid = state["pid"].as_u64().and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
        if !platform::process_is_running(pid) {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        states.push(state);
    }
    states
}

/// The proxies running now, one block each.
fn running_proxies(dir: &std::path::Path, now: i64) -> String {
    let mut out = String::new();
    for state in running_proxy_states(dir) {
        let pid = state["pid"].as_u64().unwrap_or(0);
        out.push_str(&format!("proxy (pid {pid}, {} API):\n", state["api"].as_str().unwrap_or("?")));
        for backend in state["credentials"].as_array().into_iter().flatten() {
            let name = backend["credential"].as_str().unwrap_or("?");
            let upstream = backend["upstream"].as_str().unwrap_or("?");
            let line = match backend["out_until"].as_i64() {
                Some(until) if until > now => format!(
                    "  {name:<22} {upstream}: failed over for {} more ({})",
                    duration::format(Duration::from_secs((until - now).unsigned_abs())),
                    backend["reason"].as_str().unwrap_or("quota gone")
                ),
                _ => format!("  {name:<22} {upstream}: in use"),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}
