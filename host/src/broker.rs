//! Hands out credentials: from the cache when fresh, otherwise through the
//! provider's plugin under the entry's lock (one renewal however many
//! processes ask), serving a still-valid secret when renewal fails, and
//! walking a credential's `fallback` list when it cannot be had at all.

use std::time::Duration;

use keyhelper_core::cache::{CachedCredential, CredentialCache};
use keyhelper_core::catalog::ProviderCatalog;
use keyhelper_core::clock::{Clock, SystemClock};
use keyhelper_core::config::{Config, Settings};
use keyhelper_core::credential::{Credential, Secret};
use keyhelper_core::duration;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::resolve::{ResolvedCredential, resolve};

use crate::fetcher::{CredentialFetcher, Fetcher};

/// What the caller asks of a credential.
#[derive(Debug, Clone, Copy, Default)]
pub struct GetOptions {
    /// The secret must stay valid at least this long (`get --min-ttl`).
    pub min_ttl: Duration,
    /// Skip the cache entirely: neither read nor write it (`get --no-cache`).
    pub no_cache: bool,
}

/// A credential and the resolved credential that produced it (another than
/// the one asked for when a fallback served).
#[derive(Debug)]
pub struct Served<'a> {
    /// The credential.
    pub credential: Credential,
    /// Which credential served it, as resolved for this call.
    pub source: ResolvedCredential<'a>,
}

/// The cache, the plugins and the configuration, working together.
pub struct CredentialBroker<'a, F: Fetcher = CredentialFetcher> {
    config: &'a Config,
    catalog: &'a ProviderCatalog,
    cache: Option<CredentialCache>,
    fetcher: F,
    clock: &'a dyn Clock,
}

impl<'a, F: Fetcher> CredentialBroker<'a, F> {
    /// A broker on the system clock; `cache` is `None` when the cache cannot be used.
    pub fn new(
        config: &'a Config,
        catalog: &'a ProviderCatalog,
        cache: Option<CredentialCache>,
        fetcher: F,
    ) -> Self {
        Self { config, catalog, cache, fetcher, clock: &SystemClock }
    }

    /// The same broker reading the time from `clock`.
    pub fn with_clock(self, clock: &'a dyn Clock) -> Self {
        Self { clock, ..self }
    }

    /// The credential cache, when it can be used.
    pub fn cache(&self) -> Option<&CredentialCache> {
        self.cache.as_ref()
    }

    /// The credential called `name`, or the first of its fallbacks that works.
    pub fn get(&self, name: &str, options: GetOptions) -> Result<Served<'a>, Failure> {
        self.get_with_fallbacks(name, options, &mut Vec::new())
    }

    /// Drops the cached copy of `name`'s secret if it is `rejected` (a server
    /// refused it), so the next [`get`](Self::get) fetches a new one.
    pub fn forget_rejected(&self, name: &str, rejected: &Secret) {
        if let Some(cache) = &self.cache
            && let Err(e) = cache.clear(|entry| entry.name == name && entry.credential.secret == *rejected)
        {
            tracing::warn!("could not drop the rejected secret of '{name}' from the cache: {e}");
        }
    }

    fn get_with_fallbacks(
        &self,
        name: &str,
        options: GetOptions,
        tried: &mut Vec<String>,
    ) -> Result<Served<'a>, Failure> {
        tried.push(name.to_string());
        let credential = resolve(name, self.config, self.catalog)?;
        let failure = match self.get_one(&credential, options) {
            Ok(fresh) => return Ok(Served { credential: fresh, source: credential }),
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
                    tracing::warn!("'{name}' was served by its fallback '{}'", served.source.name);
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
        let entry = credential.cache_entry(cache);
        let read = || {
            entry.read().unwrap_or_else(|e| {
                tracing::warn!("{e}; fetching '{}' afresh", credential.name);
                None
            })
        };
        let now = || self.clock.now();
        if let Some(cached) = read().filter(|c| c.is_fresh(now(), refresh_before, min_ttl)) {
            return Ok(cached.credential);
        }

        let timeout = self.config.settings.lock_timeout.unwrap_or(Settings::DEFAULT_LOCK_TIMEOUT);
        let _lock = entry.lock(timeout).map_err(|e| {
            Failure::new(ExitClass::Store, format!("credential '{}': {e}", credential.name))
                .hint("if no keyhelper is running, `keyhelper cache clear` and retry")
        })?;
        // Whoever held the lock before us may have renewed it already.
        let cached = read();
        if let Some(cached) = cached.as_ref().filter(|c| c.is_fresh(now(), refresh_before, min_ttl)) {
            return Ok(cached.credential.clone());
        }
        let previous = cached.filter(|c| c.is_usable(now(), 0));
        match self.fetch_fresh(credential, previous.as_ref().map(|c| &c.credential), min_ttl) {
            Ok(fresh) => {
                if let Some(cache_until) = self.cache_until(&fresh, credential) {
                    let stored = CachedCredential {
                        name: credential.name.clone(),
                        provider: credential.manifest.name.clone(),
                        credential: fresh.clone(),
                        cache_until,
                        fetched_at: now(),
                    };
                    if let Err(e) = entry.write(&stored) {
                        tracing::warn!("could not cache '{}': {e}", credential.name);
                    }
                }
                Ok(fresh)
            }
            Err(failure) => match previous.filter(|c| c.is_usable(now(), min_ttl)) {
                Some(stale) => {
                    let left = stale.credential.expires_at.unwrap_or(stale.cache_until) - now();
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

    /// Asks the plugin (renewing `previous` when there is one and the provider
    /// renews better than it fetches) and checks the answer meets `min_ttl`.
    fn fetch_fresh(
        &self,
        credential: &ResolvedCredential<'_>,
        previous: Option<&Credential>,
        min_ttl: i64,
    ) -> Result<Credential, Failure> {
        let fresh = match previous {
            Some(previous) if credential.manifest.supports_refresh => {
                self.fetcher.refresh(credential, previous)?
            }
            _ => self.fetcher.fetch(credential)?,
        };
        let left = fresh.expires_at.map(|expires_at| expires_at - self.clock.now());
        match left {
            Some(left) if left < min_ttl => Err(Failure::new(
                ExitClass::Unavailable,
                format!(
                    "credential '{}': its provider issued a secret valid for {} only, less than --min-ttl",
                    credential.name,
                    duration::format(Duration::from_secs(left.max(0).unsigned_abs()))
                ),
            )
            .hint("ask for a shorter --min-ttl")),
            _ => Ok(fresh),
        }
    }

    /// Until when a fresh credential may be cached: its expiry, or now plus the
    /// credential's `cache_ttl`; `None` (not cached) when it has neither.
    fn cache_until(&self, fresh: &Credential, credential: &ResolvedCredential<'_>) -> Option<i64> {
        fresh.expires_at.or_else(|| credential.cache_ttl.map(|ttl| self.clock.now() + secs(ttl)))
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    //! The broker's rules on a clock the tests move: no test waits for time
    //! to pass. The provider is scripted; the cache is real, in a temporary
    //! directory.

    use std::cell::RefCell;
    use std::path::Path;
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    struct TestClock(AtomicI64);

    impl Clock for TestClock {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl TestClock {
        fn advance(&self, seconds: i64) {
            self.0.fetch_add(seconds, Ordering::SeqCst);
        }
    }

    /// Answers each call with the next scripted result; records the calls.
    #[derive(Default)]
    struct ScriptedProvider {
        answers: RefCell<Vec<Result<Credential, Failure>>>,
        calls: RefCell<Vec<String>>,
    }

    impl ScriptedProvider {
        fn will_answer(&self, answer: Result<Credential, Failure>) {
            self.answers.borrow_mut().push(answer);
        }

        fn next(&self, what: String) -> Result<Credential, Failure> {
            self.calls.borrow_mut().push(what);
            let mut answers = self.answers.borrow_mut();
            assert!(!answers.is_empty(), "an unexpected provider call");
            answers.remove(0)
        }
    }

    impl Fetcher for &ScriptedProvider {
        fn fetch(&self, credential: &ResolvedCredential<'_>) -> Result<Credential, Failure> {
            self.next(format!("fetch {}", credential.name))
        }

        fn refresh(
            &self,
            credential: &ResolvedCredential<'_>,
            previous: &Credential,
        ) -> Result<Credential, Failure> {
            self.next(format!("refresh {} {}", credential.name, previous.secret.expose()))
        }
    }

    fn token(secret: &str, expires_at: Option<i64>) -> Result<Credential, Failure> {
        Ok(Credential { secret: Secret::new(secret), expires_at, metadata: vec![], headers: vec![] })
    }

    fn not_logged_in() -> Result<Credential, Failure> {
        Err(Failure::new(ExitClass::NeedsLogin, "Please run 'az login' to setup account."))
    }

    const START: i64 = 1_800_000_000;

    struct Fixture {
        _dir: tempfile::TempDir,
        config: Config,
        catalog: ProviderCatalog,
        cache_dir: std::path::PathBuf,
        clock: TestClock,
        provider: ScriptedProvider,
    }

    impl Fixture {
        fn new(config: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let catalog = ProviderCatalog::bundled();
            let config = Config::parse(config, Path::new("config.toml"), &catalog).unwrap();
            Self {
                cache_dir: dir.path().join("credentials"),
                _dir: dir,
                config,
                catalog,
                clock: TestClock(AtomicI64::new(START)),
                provider: ScriptedProvider::default(),
            }
        }

        fn broker(&self) -> CredentialBroker<'_, &ScriptedProvider> {
            let cache = CredentialCache::open(self.cache_dir.clone(), &self.cache_dir.join("key")).unwrap();
            CredentialBroker::new(&self.config, &self.catalog, Some(cache), &self.provider)
                .with_clock(&self.clock)
        }

        fn get(&self, name: &str, min_ttl: u64) -> Result<String, Failure> {
            let options = GetOptions { min_ttl: Duration::from_secs(min_ttl), no_cache: false };
            self.broker().get(name, options).map(|served| served.credential.secret.expose().to_string())
        }

        fn calls(&self) -> usize {
            self.provider.calls.borrow().len()
        }
    }

    const WORK: &str = "[credentials.work]\nprovider = \"azure\"\n";

    #[test]
    fn a_fresh_entry_is_served_until_the_refresh_window() {
        let f = Fixture::new(WORK);
        f.provider.will_answer(token("tok-1", Some(START + 3600)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.clock.advance(3600 - 301);
        assert_eq!(f.get("work", 0).unwrap(), "tok-1", "just outside the 5m window");
        assert_eq!(f.calls(), 1);
        f.clock.advance(2);
        f.provider.will_answer(token("tok-2", Some(START + 7200)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-2", "inside the window: renewed");
        assert_eq!(f.calls(), 2);
    }

    #[test]
    fn an_expired_secret_is_never_served() {
        let f = Fixture::new(WORK);
        f.provider.will_answer(token("tok-1", Some(START + 600)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.clock.advance(600);
        f.provider.will_answer(not_logged_in());
        let err = f.get("work", 0).unwrap_err();
        assert_eq!(err.class, ExitClass::NeedsLogin, "{err}");
    }

    #[test]
    fn a_failed_renewal_serves_the_still_valid_secret() {
        let f = Fixture::new(WORK);
        f.provider.will_answer(token("tok-1", Some(START + 600)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.clock.advance(400);
        f.provider.will_answer(not_logged_in());
        assert_eq!(f.get("work", 0).unwrap(), "tok-1", "200s left: stale on error");
        f.provider.will_answer(not_logged_in());
        assert_eq!(f.get("work", 300).unwrap_err().class, ExitClass::NeedsLogin, "but not for --min-ttl 5m");
    }

    #[test]
    fn min_ttl_renews_early_and_refuses_a_shorter_secret() {
        let f = Fixture::new(WORK);
        f.provider.will_answer(token("tok-1", Some(START + 1200)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        assert_eq!(f.get("work", 600).unwrap(), "tok-1", "20m left satisfies 10m");
        f.provider.will_answer(token("tok-2", Some(START + 3600)));
        assert_eq!(f.get("work", 1800).unwrap(), "tok-2");
        f.provider.will_answer(token("tok-3", Some(START + 600)));
        let err = f.get("work", 7200).unwrap_err();
        assert_eq!(err.class, ExitClass::Unavailable);
        assert!(err.message.contains("less than --min-ttl"), "{err}");
    }

    #[test]
    fn secrets_without_expiry_live_for_their_cache_ttl() {
        let f = Fixture::new("[credentials.work]\nprovider = \"azure\"\ncache_ttl = \"10m\"\n");
        f.provider.will_answer(token("tok-1", None));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.clock.advance(599);
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.clock.advance(1);
        f.provider.will_answer(token("tok-2", None));
        assert_eq!(f.get("work", 0).unwrap(), "tok-2");
    }

    #[test]
    fn fallbacks_serve_and_name_themselves_once_resolved() {
        let f = Fixture::new(
            "[credentials.team]\nprovider = \"azure\"\nfallback = [\"personal\"]\n\n\
             [credentials.personal]\nprovider = \"azure\"\nscope = \"api://personal/.default\"\n",
        );
        f.provider.will_answer(not_logged_in());
        f.provider.will_answer(token("personal-tok", Some(START + 3600)));
        let served = f.broker().get("team", GetOptions::default()).unwrap();
        assert_eq!(served.credential.secret.expose(), "personal-tok");
        assert_eq!(served.source.name, "personal");
        assert_eq!(served.source.options["scope"], "api://personal/.default");
        assert_eq!(*f.provider.calls.borrow(), ["fetch team", "fetch personal"]);
    }

    #[test]
    fn a_rejected_secret_is_forgotten_and_fetched_again() {
        let f = Fixture::new(WORK);
        f.provider.will_answer(token("tok-1", Some(START + 3600)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.broker().forget_rejected("work", &Secret::new("another"));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1", "only the rejected secret is dropped");
        f.broker().forget_rejected("work", &Secret::new("tok-1"));
        f.provider.will_answer(token("tok-2", Some(START + 3600)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-2");
    }
}
