//! Hands out credentials: from the cache when fresh, otherwise through the
//! provider's plugin under the entry's lock (one renewal however many
//! processes ask), serving a still-valid secret when renewal fails, and
//! walking a credential's `fallback` list when it cannot be had at all.
//!
//! A cached secret inside its refresh window with comfortably long to live is
//! served at once and renewed in the background ([`BackgroundRenewal`]); only
//! below that floor (or for a credential renewed `blocking`) does the caller
//! wait for the provider. Failed renewals are recorded beside the entry and
//! back off, so a broken provider is not called by every `get`.

use std::time::Duration;

use keyhelper_core::background;
use keyhelper_core::cache::{CacheEntry, CachedCredential, CredentialCache, Freshness};
use keyhelper_core::catalog::ProviderCatalog;
use keyhelper_core::clock::{Clock, SystemClock};
use keyhelper_core::config::{Config, RefreshMode, Settings};
use keyhelper_core::credential::{Credential, Secret};
use keyhelper_core::duration;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::invocation;
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

/// How a renewal due in the background gets done.
pub trait BackgroundRenewal {
    /// Starts renewing `credential`, cached in `entry`, unless a renewal of it
    /// already runs or the last failure's backoff lasts past `now`.
    fn start(&self, credential: &ResolvedCredential<'_>, entry: &CacheEntry<'_>, now: i64);
}

/// Renews in a detached `keyhelper-full renew-in-background` process, which
/// outlives the caller: what every short-lived command does.
pub struct DetachedRenewal;

impl BackgroundRenewal for DetachedRenewal {
    fn start(&self, credential: &ResolvedCredential<'_>, entry: &CacheEntry<'_>, now: i64) {
        background::start(&invocation::full_executable(), &credential.name, entry, now);
    }
}

/// When a served secret should be looked at again, in unix seconds: its
/// renewal is due from `renew_from`, and past `floor` a caller must wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeTiming {
    /// The start of its refresh window.
    pub renew_from: i64,
    /// The end of the time it may be served while being renewed.
    pub floor: i64,
}

impl ServeTiming {
    fn of(cached: &CachedCredential, refresh_before: i64) -> Self {
        let window = cached.refresh_window(refresh_before);
        Self { renew_from: cached.until() - window, floor: cached.until() - window / 2 }
    }
}

/// A credential and the resolved credential that produced it (another than
/// the one asked for when a fallback served).
#[derive(Debug)]
pub struct Served<'a> {
    /// The credential.
    pub credential: Credential,
    /// Which credential served it, as resolved for this call.
    pub source: ResolvedCredential<'a>,
    /// When to look at it again; `None` when it was not cached.
    pub timing: Option<ServeTiming>,
    /// Whether the cache answered (no provider call).
    pub from_cache: bool,
}

/// One credential from one cache entry (or straight from the provider).
struct Answer {
    credential: Credential,
    timing: Option<ServeTiming>,
    from_cache: bool,
}

/// The cache, the plugins and the configuration, working together.
pub struct CredentialBroker<'a, F: Fetcher = CredentialFetcher> {
    config: &'a Config,
    catalog: &'a ProviderCatalog,
    cache: Option<CredentialCache>,
    fetcher: F,
    clock: &'a dyn Clock,
    renewal: &'a dyn BackgroundRenewal,
}

impl<'a, F: Fetcher> CredentialBroker<'a, F> {
    /// A broker on the system clock that renews in detached processes;
    /// `cache` is `None` when the cache cannot be used.
    pub fn new(
        config: &'a Config,
        catalog: &'a ProviderCatalog,
        cache: Option<CredentialCache>,
        fetcher: F,
    ) -> Self {
        Self { config, catalog, cache, fetcher, clock: &SystemClock, renewal: &DetachedRenewal }
    }

    /// The same broker reading the time from `clock`.
    pub fn with_clock(self, clock: &'a dyn Clock) -> Self {
        Self { clock, ..self }
    }

    /// The same broker doing background renewals with `renewal`.
    pub fn with_renewal(self, renewal: &'a dyn BackgroundRenewal) -> Self {
        Self { renewal, ..self }
    }

    /// The credential cache, when it can be used.
    pub fn cache(&self) -> Option<&CredentialCache> {
        self.cache.as_ref()
    }

    /// The credential called `name`, or the first of its fallbacks that works.
    pub fn get(&self, name: &str, options: GetOptions) -> Result<Served<'a>, Failure> {
        self.get_with_fallbacks(name, options, &mut Vec::new())
    }

    /// Renews the credential `name` now, in the caller's time, if its cache
    /// entry is still `entry_id` (the configuration did not change since the
    /// renewal was asked for) and nobody renewed it meanwhile: what a
    /// background renewer does. A failure is recorded, with its backoff.
    pub fn renew(&self, name: &str, entry_id: &str) -> Result<(), Failure> {
        let credential = resolve(name, self.config, self.catalog)?;
        let cache = self.cache.as_ref().ok_or_else(|| {
            Failure::new(ExitClass::Store, "the credential cache cannot be opened, so nothing is renewed")
        })?;
        let entry = credential.cache_entry(cache);
        if entry.id() != entry_id {
            tracing::debug!("'{name}' now maps to another cache entry; nothing to renew");
            return Ok(());
        }
        let _lock = self.lock(&credential, &entry)?;
        let cached = self.read(&credential, &entry);
        let refresh_before = secs(credential.refresh_before(&self.config.settings));
        let now = self.clock.now();
        if cached
            .as_ref()
            .is_some_and(|c| c.freshness(now, refresh_before, 0, RefreshMode::Background) == Freshness::Fresh)
        {
            return Ok(());
        }
        self.renew_locked(&credential, &entry, cached.as_ref(), 0).map(drop)
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
            Ok(answer) => {
                return Ok(Served {
                    credential: answer.credential,
                    source: credential,
                    timing: answer.timing,
                    from_cache: answer.from_cache,
                });
            }
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

    fn get_one(&self, credential: &ResolvedCredential<'_>, options: GetOptions) -> Result<Answer, Failure> {
        let min_ttl = secs(options.min_ttl);
        let cache = match &self.cache {
            Some(cache) if !options.no_cache => cache,
            _ => {
                let fresh = self.meeting_min_ttl(credential, self.fetch_fresh(credential, None)?, min_ttl)?;
                return Ok(Answer { credential: fresh, timing: None, from_cache: false });
            }
        };
        let settings = &self.config.settings;
        let refresh_before = secs(credential.refresh_before(settings));
        let mode = credential.refresh_mode(settings);
        let entry = credential.cache_entry(cache);
        let serve = |cached: CachedCredential| Answer {
            timing: Some(ServeTiming::of(&cached, refresh_before)),
            credential: cached.credential,
            from_cache: true,
        };
        if let Some(cached) = self.read(credential, &entry) {
            let now = self.clock.now();
            match cached.freshness(now, refresh_before, min_ttl, mode) {
                Freshness::Fresh => return Ok(serve(cached)),
                Freshness::RenewInBackground => {
                    self.renewal.start(credential, &entry, now);
                    return Ok(serve(cached));
                }
                Freshness::RenewNow => {}
            }
        }

        let _lock = self.lock(credential, &entry)?;
        // Whoever held the lock before us may have renewed it already.
        let cached = self.read(credential, &entry);
        let now = self.clock.now();
        if let Some(cached) =
            cached.as_ref().filter(|c| c.freshness(now, refresh_before, min_ttl, mode) == Freshness::Fresh)
        {
            return Ok(serve(cached.clone()));
        }
        let stale = |failure: &dyn std::fmt::Display| -> Option<Answer> {
            let stale = cached.as_ref().filter(|c| c.is_usable(self.clock.now(), min_ttl))?;
            let left = stale.until() - self.clock.now();
            tracing::warn!(
                "{failure}; serving the cached secret, valid for another {}",
                duration::format(Duration::from_secs(left.max(0).unsigned_abs()))
            );
            Some(serve(stale.clone()))
        };
        // After a failed renewal, wait out its backoff on the secret we have.
        if mode == RefreshMode::Background
            && let Some(failures) = entry.renewal_failures().filter(|f| f.backing_off(now))
        {
            let reason = format!(
                "renewing '{}' failed {} ago ({}); next try in {}",
                credential.name,
                duration::format(Duration::from_secs((now - failures.last_at).max(0).unsigned_abs())),
                failures.reason,
                duration::format(Duration::from_secs((failures.next_try_at - now).max(0).unsigned_abs()))
            );
            if let Some(answer) = stale(&reason) {
                return Ok(answer);
            }
        }
        match self.renew_locked(credential, &entry, cached.as_ref(), min_ttl) {
            Ok(answer) => Ok(answer),
            Err(failure) => stale(&failure).ok_or(failure),
        }
    }

    /// Under the entry's lock: asks the provider (renewing `cached` when it
    /// is still usable), caches the answer and clears past failures, or
    /// records the failure; then checks the answer meets `min_ttl` (a secret
    /// shorter than one caller asks for is still cached for the others).
    fn renew_locked(
        &self,
        credential: &ResolvedCredential<'_>,
        entry: &CacheEntry<'_>,
        cached: Option<&CachedCredential>,
        min_ttl: i64,
    ) -> Result<Answer, Failure> {
        let previous = cached.filter(|c| c.is_usable(self.clock.now(), 0)).map(|c| &c.credential);
        let fresh = match self.fetch_fresh(credential, previous) {
            Ok(fresh) => fresh,
            Err(failure) => {
                entry.record_renewal_failure(&failure.to_string(), self.clock.now());
                return Err(failure);
            }
        };
        entry.clear_renewal_failures();
        let Some(cache_until) = self.cache_until(&fresh, credential) else {
            let fresh = self.meeting_min_ttl(credential, fresh, min_ttl)?;
            return Ok(Answer { credential: fresh, timing: None, from_cache: false });
        };
        let stored = CachedCredential {
            name: credential.name.clone(),
            provider: credential.manifest.name.clone(),
            credential: fresh,
            cache_until,
            fetched_at: self.clock.now(),
        };
        if let Err(e) = entry.write(&stored) {
            tracing::warn!("could not cache '{}': {e}", credential.name);
        }
        let refresh_before = secs(credential.refresh_before(&self.config.settings));
        let timing = Some(ServeTiming::of(&stored, refresh_before));
        Ok(Answer {
            credential: self.meeting_min_ttl(credential, stored.credential, min_ttl)?,
            timing,
            from_cache: false,
        })
    }

    /// The cached credential, if any; a corrupt entry is a miss with a warning.
    fn read(&self, credential: &ResolvedCredential<'_>, entry: &CacheEntry<'_>) -> Option<CachedCredential> {
        entry.read().unwrap_or_else(|e| {
            tracing::warn!("{e}; fetching '{}' afresh", credential.name);
            None
        })
    }

    fn lock(
        &self,
        credential: &ResolvedCredential<'_>,
        entry: &CacheEntry<'_>,
    ) -> Result<keyhelper_core::cache::EntryLock, Failure> {
        let timeout = self.config.settings.lock_timeout.unwrap_or(Settings::DEFAULT_LOCK_TIMEOUT);
        entry.lock(timeout).map_err(|e| {
            Failure::new(ExitClass::Store, format!("credential '{}': {e}", credential.name))
                .hint("if no keyhelper is running, `keyhelper cache clear` and retry")
        })
    }

    /// Asks the plugin, renewing `previous` when there is one and the
    /// provider renews better than it fetches.
    fn fetch_fresh(
        &self,
        credential: &ResolvedCredential<'_>,
        previous: Option<&Credential>,
    ) -> Result<Credential, Failure> {
        match previous {
            Some(previous) if credential.manifest.supports_refresh => {
                self.fetcher.refresh(credential, previous)
            }
            _ => self.fetcher.fetch(credential),
        }
    }

    /// `fresh`, if it stays valid at least `min_ttl`.
    fn meeting_min_ttl(
        &self,
        credential: &ResolvedCredential<'_>,
        fresh: Credential,
        min_ttl: i64,
    ) -> Result<Credential, Failure> {
        match fresh.expires_at.map(|expires_at| expires_at - self.clock.now()) {
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
    //! to pass. The provider is scripted and background renewals are recorded
    //! (the tests run them when they choose); the cache is real, in a
    //! temporary directory.

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

    /// Background renewals asked for: credential name and cache entry.
    #[derive(Default)]
    struct RecordedRenewals(RefCell<Vec<(String, String)>>);

    impl BackgroundRenewal for RecordedRenewals {
        fn start(&self, credential: &ResolvedCredential<'_>, entry: &CacheEntry<'_>, _now: i64) {
            self.0.borrow_mut().push((credential.name.clone(), entry.id().to_string()));
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
        renewals: RecordedRenewals,
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
                renewals: RecordedRenewals::default(),
            }
        }

        fn broker(&self) -> CredentialBroker<'_, &ScriptedProvider> {
            let cache = CredentialCache::open(self.cache_dir.clone(), &self.cache_dir.join("key")).unwrap();
            CredentialBroker::new(&self.config, &self.catalog, Some(cache), &self.provider)
                .with_clock(&self.clock)
                .with_renewal(&self.renewals)
        }

        fn get(&self, name: &str, min_ttl: u64) -> Result<String, Failure> {
            let options = GetOptions { min_ttl: Duration::from_secs(min_ttl), no_cache: false };
            self.broker().get(name, options).map(|served| served.credential.secret.expose().to_string())
        }

        /// Runs the background renewals asked for so far, as a renewer would.
        fn run_renewals(&self) -> Vec<Result<(), Failure>> {
            let asked: Vec<_> = self.renewals.0.borrow_mut().drain(..).collect();
            asked.iter().map(|(name, entry)| self.broker().renew(name, entry)).collect()
        }

        fn calls(&self) -> usize {
            self.provider.calls.borrow().len()
        }

        fn renewals_asked(&self) -> usize {
            self.renewals.0.borrow().len()
        }
    }

    const WORK: &str = "[credentials.work]\nprovider = \"azure\"\n";

    #[test]
    fn inside_the_window_the_cached_secret_is_served_and_renewed_in_the_background() {
        let f = Fixture::new(WORK);
        f.provider.will_answer(token("tok-1", Some(START + 3600)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.clock.advance(3600 - 301);
        assert_eq!(f.get("work", 0).unwrap(), "tok-1", "just outside the 5m window");
        assert_eq!((f.calls(), f.renewals_asked()), (1, 0));
        f.clock.advance(2);
        assert_eq!(f.get("work", 0).unwrap(), "tok-1", "inside the window: served at once");
        assert_eq!((f.calls(), f.renewals_asked()), (1, 1), "and a renewal asked for, not made");
        f.provider.will_answer(token("tok-2", Some(START + 7200)));
        assert!(f.run_renewals().iter().all(Result::is_ok));
        assert_eq!(f.get("work", 0).unwrap(), "tok-2");
        assert_eq!((f.calls(), f.renewals_asked()), (2, 0));
    }

    #[test]
    fn below_the_floor_or_when_blocking_the_caller_waits_for_the_provider() {
        let f = Fixture::new(WORK);
        f.provider.will_answer(token("tok-1", Some(START + 3600)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.clock.advance(3600 - 150);
        f.provider.will_answer(token("tok-2", Some(START + 7200)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-2", "150s left: at the floor of a 5m window");
        assert_eq!(f.renewals_asked(), 0);

        let blocking = Fixture::new("[credentials.work]\nprovider = \"azure\"\nrefresh = \"blocking\"\n");
        blocking.provider.will_answer(token("tok-1", Some(START + 3600)));
        assert_eq!(blocking.get("work", 0).unwrap(), "tok-1");
        blocking.clock.advance(3600 - 299);
        blocking.provider.will_answer(token("tok-2", Some(START + 7200)));
        assert_eq!(blocking.get("work", 0).unwrap(), "tok-2", "blocking renews in the window");
        assert_eq!(blocking.renewals_asked(), 0);
    }

    #[test]
    fn a_short_lived_token_has_half_its_life_as_window() {
        let f = Fixture::new(WORK);
        f.provider.will_answer(token("tok-1", Some(START + 300)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.clock.advance(149);
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        assert_eq!(f.renewals_asked(), 0, "a 5-minute token is not renewed all its life");
        f.clock.advance(2);
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        assert_eq!(f.renewals_asked(), 1);
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
    fn failed_renewals_back_off_and_never_outlive_the_secret() {
        let f = Fixture::new(WORK);
        f.provider.will_answer(token("tok-1", Some(START + 3600)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.clock.advance(3600 - 200);
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.provider.will_answer(not_logged_in());
        assert_eq!(f.run_renewals()[0].as_ref().unwrap_err().class, ExitClass::NeedsLogin);
        let entry_failures = || {
            let cache = CredentialCache::open(f.cache_dir.clone(), &f.cache_dir.join("key")).unwrap();
            cache.entries()[0].0.renewal_failures().unwrap()
        };
        assert_eq!(entry_failures().next_try_at, START + 3600 - 200 + 30);
        // Below the floor a caller tries again once the backoff is over; a
        // failure there still serves the secret in hand, and backs off longer.
        f.clock.advance(60);
        f.provider.will_answer(not_logged_in());
        assert_eq!(f.get("work", 0).unwrap(), "tok-1", "140s left: tried, failed, served stale");
        assert_eq!((f.calls(), entry_failures().count), (3, 2));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        assert_eq!(f.calls(), 3, "backing off 60s: no call");
        // At expiry the caller gets the provider's answer and its error.
        f.clock.advance(140);
        f.provider.will_answer(not_logged_in());
        assert_eq!(f.get("work", 0).unwrap_err().class, ExitClass::NeedsLogin);
        assert_eq!(f.calls(), 4);
        // A success clears the record.
        f.provider.will_answer(token("tok-2", Some(START + 9000)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-2");
        let cache = CredentialCache::open(f.cache_dir.clone(), &f.cache_dir.join("key")).unwrap();
        assert!(cache.entries()[0].0.renewal_failures().is_none());
    }

    #[test]
    fn a_renewal_for_an_entry_the_config_no_longer_uses_does_nothing() {
        let f = Fixture::new(WORK);
        f.provider.will_answer(token("tok-1", Some(START + 3600)));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        assert_eq!(f.broker().renew("work", "0123456789abcdef").map_err(|e| e.to_string()), Ok(()));
        assert_eq!(f.calls(), 1);
        f.clock.advance(3600 - 200);
        f.provider.will_answer(token("tok-2", Some(START + 7200)));
        let _ = f.get("work", 0);
        let _ = f.get("work", 0);
        assert_eq!(f.renewals_asked(), 2, "the broker asks; the renewer's claim makes it one");
        let results = f.run_renewals();
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(f.calls(), 2, "the second renewal found the entry renewed");
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
    fn secrets_without_expiry_are_renewed_ahead_of_their_cache_ttl() {
        let f = Fixture::new("[credentials.work]\nprovider = \"azure\"\ncache_ttl = \"10m\"\n");
        f.provider.will_answer(token("tok-1", None));
        assert_eq!(f.get("work", 0).unwrap(), "tok-1");
        f.clock.advance(299);
        assert_eq!((f.get("work", 0).unwrap().as_str(), f.renewals_asked()), ("tok-1", 0));
        f.clock.advance(1);
        assert_eq!((f.get("work", 0).unwrap().as_str(), f.renewals_asked()), ("tok-1", 1));
        f.clock.advance(300);
        f.provider.will_answer(token("tok-2", None));
        assert_eq!(f.get("work", 0).unwrap(), "tok-2", "at the end of its ttl, renewed before serving");
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
        assert_eq!(served.timing, Some(ServeTiming { renew_from: START + 3300, floor: START + 3450 }));
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
