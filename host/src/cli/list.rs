//! `keyhelper list`: configured credentials and stored secrets, by name only.

use keyhelper_core::catalog::Origin;
use keyhelper_core::clock::unix_now;
use keyhelper_core::failure::Failure;

use std::path::Path;

use serde_json::json;

use super::status::{cached_json, describe_expiry, describe_renewal};
use crate::environment::Environment;

/// Runs `list`.
pub fn run(env: &Environment, json: bool) -> Result<(), Failure> {
    let config = env.config()?;
    let store = env.store(&config)?;
    let stored = store.list()?;
    let cache = env.cache();
    let cached = cache.as_ref().map(|cache| cache.entries()).unwrap_or_default();
    let now = unix_now();
    // A connection's main secret, or any named one (an OAuth refresh token).
    let is_stored = |provider: &str, connection: &str| {
        stored.iter().find(|(id, _)| id.of_connection(provider, connection)).map(|(_, backend)| *backend)
    };
    let mut out = String::new();
    let mut rows = Vec::new();
    if config.credentials.is_empty() && config.broken.is_empty() {
        out.push_str(&format!("no credentials configured in {}\n", config.path.display()));
    } else {
        out.push_str(&format!("{:<24} {:<22} {}\n", "CREDENTIAL", "PROVIDER", "STATE"));
    }
    for (name, credential) in &config.credentials {
        let manifest = env.catalog.get(&credential.provider).expect("config checks provider names");
        let state = if manifest.uses_stored_secret(&manifest.options_with_defaults(&credential.options)) {
            let connection = credential.options.get("connection").map_or("default", String::as_str);
            match is_stored(&manifest.name, connection) {
                Some(backend) => format!("secret stored ({backend}, connection '{connection}')"),
                None => format!(
                    "no secret stored: run `keyhelper login {} --connection {connection}`",
                    manifest.name
                ),
            }
        } else {
            format!("from {}", manifest.display_name)
        };
        let found = cached.iter().find(|(_, cached)| cached.name == *name);
        rows.push(json!({
            "name": name,
            "provider": credential.provider,
            "source": state,
            "cached": found.map(|(entry, cached)| cached_json(entry, cached)),
        }));
        let state = match found {
            Some((entry, cached)) => format!(
                "{state}; cached, {}{}",
                describe_expiry(cached, now),
                describe_renewal(entry.renewal_failures().as_ref(), now)
            ),
            None => state,
        };
        out.push_str(&format!("{name:<24} {:<22} {state}\n", credential.provider));
    }
    for (name, failure) in &config.broken {
        rows.push(json!({ "name": name, "provider": null, "error": failure.to_string() }));
        out.push_str(&format!("{name:<24} {:<22} broken: {failure}\n", "?"));
    }
    let own: Vec<(&str, &Path, bool, bool)> = env
        .catalog
        .names()
        .into_iter()
        .filter_map(|provider| match env.catalog.origin(provider)? {
            Origin::UserManifest { path, overrides_bundled, ungranted } => {
                Some((provider, path.as_path(), *overrides_bundled, ungranted.is_empty()))
            }
            _ => None,
        })
        .collect();
    if json {
        let document = json!({
            "credentials": rows,
            "stored_secrets": stored.iter().map(|(id, backend)| json!({
                "provider": id.provider, "connection": id.connection, "name": id.name,
                "backend": backend.to_string(),
            })).collect::<Vec<_>>(),
            "own_manifests": own.iter().map(|(provider, path, overrides, granted)| json!({
                "provider": provider, "path": path, "overrides_bundled": overrides, "granted": granted,
            })).collect::<Vec<_>>(),
        });
        return super::print_json(&document);
    }
    let own_manifests: Vec<String> = own
        .iter()
        .map(|(provider, path, overrides_bundled, granted)| {
            format!(
                "{provider:<24} {}{}{}",
                path.display(),
                if *overrides_bundled { " (overrides the bundled one)" } else { "" },
                if *granted {
                    String::new()
                } else {
                    format!("; not granted: run `keyhelper plugin grant {provider}`")
                }
            )
        })
        .collect();
    if !own_manifests.is_empty() {
        out.push_str(&format!("\n{:<24} {}\n", "PROVIDER", "YOUR MANIFEST"));
        for line in own_manifests {
            out.push_str(&format!("{line}\n"));
        }
    }
    if !stored.is_empty() {
        out.push_str(&format!("\n{:<24} {:<22} {}\n", "STORED SECRET", "PROVIDER", "BACKEND"));
        for (id, backend) in &stored {
            let name = match &id.name {
                Some(name) => format!("{} ({name})", id.connection),
                None => id.connection.clone(),
            };
            out.push_str(&format!("{name:<24} {:<22} {backend}\n", id.provider));
        }
    }
    print!("{out}");
    Ok(())
}
