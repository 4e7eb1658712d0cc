//! Hands out credentials: from the cache when fresh, otherwise through the
//! provider's plugin under the entry's lock (one renewal however many
//! processes ask), serving a still-valid secret when renewal fails, and
//! walking a credential's `fallback` list when it cannot be had at all.

use std::time::Duration;

use crate::cache::{CachedCredential, CredentialCache};
use crate::config::{Config, Settings};
use crate::credential::{Credential, unix_now};
use crate::duration;
use crate::failure::{ExitClass, Failure};
use crate::fetcher::CredentialFetcher;
use crate::manifest::ProviderCatalog;
use crate::resolve::{ResolvedCredential, resolve};

/// What the caller asks of a credential.
#[derive(Debug, Clone, Copy, Default)]
pub struct GetOptions {
    /// The secret must stay valid at least this long (`get --min-ttl`).
    pub min_ttl: Duration,
    /// Skip the cache entirely: neither read nor write it (`get --no-cache`).
    pub no_cache: bool,
}

/// A credential and the name of the configured credential that produced it
/// (another than the one asked for when a fallback served).
#[derive(Debug)]
pub struct Served {
    /// The credential.
    pub credential: Credential,
    /// Which credential served it.
    pub served_by: String,
}

/// The cache, the plugins and the configuration, working together.
pub struct CredentialBroker<'a> {
    config: &'a Config,
    catalog: &'a ProviderCatalog,
    cache: Option<CredentialCache>,
    fetcher: CredentialFetcher,
}

impl<'a> CredentialBroker<'a> {
    /// A broker; `cache` is `None` when the cache cannot be used.
    pub fn new(
        config: &'a Config,
        catalog: &'a ProviderCatalog,
        cache: Option<CredentialCache>,
        fetcher: CredentialFetcher,
    ) -> Self {
        Self { config, catalog, cache, fetcher }
    }

    /// The credential called `name`, or the first of its fallbacks that works.
    pub fn get(&self, name: &str, options: GetOptions) -> Result<Served, Failure> {
        self.get_with_fallbacks(name, options, &mut Vec::new())
    }

    fn get_with_fallbacks(
        &self,
        name: &str,
        options: GetOptions,
        tried: &mut Vec<String>,
    ) -> Result<Served, Failure> {
        tried.push(name.to_string());
        let credential = resolve(name, self.config, self.catalog)?;
        let failure = match self.get_one(&credential, options) {
            Ok(credential) => return Ok(Served { credential, served_by: name.to_string() }),
            Err(failure) => failure,
        };
        if !failure.class.allows_fallback() {
            return Err(failure);
        }
        let mut last = failure;
        for next in &credential.fallback {
            if tried.contains(next) {
                continue;
            }
            tracing::warn!("{last}; trying fallback '{next}'");
            match self.get_with_fallbacks(next, options, tried) {
                Ok(served) => {
                    tracing::warn!("'{name}' was served by its fallback '{}'", served.served_by);
                    return Ok(served);
                }
                Err(failure) if failure.class.allows_fallback() => last = failure,
                Err(failure) => return Err(failure),
            }
        }
        Err(last)
    }

    fn get_one(
        &self,
        credential: &ResolvedCredential<'_>,
        options: GetOptions,
    ) -> Result<Credential, Failure> {
        let min_ttl = secs(options.min_ttl);
        let cache = match &self.cache {
            Some(cache) if !options.no_cache => cache,
            _ => return self.fetch_fresh(credential, None, min_ttl),
        };
        let refresh_before = secs(credential.refresh_before(&self.config.settings));
        let entry = cache.entry(credential);
        let read = || {
            entry.read().unwrap_or_else(|e| {
                tracing::warn!("{e}; fetching '{}' afresh", credential.name);
                None
            })
        };
        if let Some(cached) = read().filter(|c| c.is_fresh(unix_now(), refresh_before, min_ttl)) {
            return Ok(cached.credential);
        }

        let timeout = self.config.settings.lock_timeout.unwrap_or(Settings::DEFAULT_LOCK_TIMEOUT);
        let _lock = entry.lock(timeout).map_err(|e| {
            Failure::new(ExitClass::Store, format!("credential '{}': {e}", credential.name))
                .hint("if no keyhelper is running, `keyhelper cache clear` and retry")
        })?;
        // Whoever held the lock before us may have renewed it already.
        let cached = read();
        if let Some(cached) = cached.as_ref().filter(|c| c.is_fresh(unix_now(), refresh_before, min_ttl)) {
            return Ok(cached.credential.clone());
        }
        let previous = cached.filter(|c| c.is_usable(unix_now(), 0));
        match self.fetch_fresh(credential, previous.as_ref().map(|c| &c.credential), min_ttl) {
            Ok(fresh) => {
                if let Some(cache_until) = cache_until(&fresh, credential) {
                    let stored = CachedCredential {
                        name: credential.name.clone(),
                        provider: credential.manifest.name.clone(),
                        credential: fresh.clone(),
                        cache_until,
                        fetched_at: unix_now(),
                    };
                    if let Err(e) = entry.write(&stored) {
                        tracing::warn!("could not cache '{}': {e}", credential.name);
                    }
                }
                Ok(fresh)
            }
            Err(failure) => match previous.filter(|c| c.is_usable(unix_now(), min_ttl)) {
                Some(stale) => {
                    let left = stale.credential.expires_at.unwrap_or(stale.cache_until) - unix_now();
                    tracing::warn!(
                        "{failure}; serving the cached secret, valid for another {}",
                        duration::format(Duration::from_secs(left.max(0).unsigned_abs()))
                    );
                    Ok(stale.credential)
                }
                None => Err(failure),
            },
        }
    }

    /// Asks the plugin (renewing `previous` when there is one) and checks the
    /// answer meets `min_ttl`.
    fn fetch_fresh(
        &self,
        credential: &ResolvedCredential<'_>,
        previous: Option<&Credential>,
        min_ttl: i64,
    ) -> Result<Credential, Failure> {
        let fresh = match previous {
            Some(previous) => self.fetcher.refresh(credential, previous)?,
            None => self.fetcher.fetch(credential)?,
        };
        match fresh.expires_at {
            Some(expires_at) if expires_at - unix_now() < min_ttl => Err(Failure::new(
                ExitClass::Unavailable,
                format!(
                    "credential '{}': its provider issued a secret valid for {} only, less than --min-ttl",
                    credential.name,
                    duration::format(Duration::from_secs((expires_at - unix_now()).max(0).unsigned_abs()))
                ),
            )
            .hint("ask for a shorter --min-ttl")),
            _ => Ok(fresh),
        }
    }
}

/// Until when a fresh credential may be cached: its expiry, or now plus the
/// credential's `cache_ttl`; `None` (not cached) when it has neither.
fn cache_until(fresh: &Credential, credential: &ResolvedCredential<'_>) -> Option<i64> {
    fresh.expires_at.or_else(|| credential.cache_ttl.map(|ttl| unix_now() + secs(ttl)))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
