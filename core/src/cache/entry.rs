//! What a cache entry holds, and when it may be served.

use serde::{Deserialize, Serialize};

use crate::config::RefreshMode;
use crate::credential::{Credential, Secret};

/// A cached credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCredential {
    /// The credential's name (for `status` and `cache clear NAME`).
    pub name: String,
    /// Its provider.
    pub provider: String,
    /// The credential as the provider returned it.
    pub credential: Credential,
    /// When the entry stops being served, in unix seconds: the provider's
    /// expiry, or fetch time plus `cache_ttl` when the provider gave none.
    pub cache_until: i64,
    /// When it was fetched, in unix seconds.
    pub fetched_at: i64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    v: u32,
    name: String,
    provider: String,
    secret: String,
    expires_at: Option<i64>,
    metadata: Vec<(String, String)>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    cache_until: i64,
    fetched_at: i64,
}

impl CachedCredential {
    /// Serializes for sealing.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&Stored {
            v: 1,
            name: self.name.clone(),
            provider: self.provider.clone(),
            secret: self.credential.secret.expose().to_string(),
            expires_at: self.credential.expires_at,
            metadata: self.credential.metadata.clone(),
            headers: self.credential.headers.clone(),
            cache_until: self.cache_until,
            fetched_at: self.fetched_at,
        })
        .expect("a cache entry serializes")
    }

    /// Parses an unsealed entry.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let s: Stored = serde_json::from_slice(bytes).ok().filter(|s: &Stored| s.v == 1)?;
        Some(Self {
            name: s.name,
            provider: s.provider,
            credential: Credential {
                secret: Secret::new(s.secret),
                expires_at: s.expires_at,
                metadata: s.metadata,
                headers: s.headers,
            },
            cache_until: s.cache_until,
            fetched_at: s.fetched_at,
        })
    }

    /// When it stops being served: the provider's expiry, or `cache_until`
    /// for a secret without one.
    pub fn until(&self) -> i64 {
        self.credential.expires_at.unwrap_or(self.cache_until)
    }

    /// How long before [`until`](Self::until) it is renewed:
    /// `min(refresh_before, lifetime / 2)`, so that a short-lived secret is
    /// not renewed all its life.
    pub fn refresh_window(&self, refresh_before: i64) -> i64 {
        refresh_before.min((self.until() - self.fetched_at).max(0) / 2)
    }

    /// What to do with it at `now` for a caller that needs it valid at least
    /// `min_ttl` seconds (which does not apply to a secret without a known
    /// expiry: only the cache decided its lifetime).
    pub fn freshness(&self, now: i64, refresh_before: i64, min_ttl: i64, mode: RefreshMode) -> Freshness {
        let min_ttl = if self.credential.expires_at.is_some() { min_ttl } else { 0 };
        let left = self.until() - now;
        let window = self.refresh_window(refresh_before);
        if left > window && left > min_ttl {
            Freshness::Fresh
        } else if mode == RefreshMode::Background && left > min_ttl.max(window / 2) {
            Freshness::RenewInBackground
        } else {
            Freshness::RenewNow
        }
    }

    /// Whether it may still be served when renewing it failed: it has not
    /// expired and outlives the caller's minimum lifetime. Never past expiry.
    pub fn is_usable(&self, now: i64, min_ttl: i64) -> bool {
        match self.credential.expires_at {
            Some(expires_at) => now + min_ttl < expires_at,
            None => now < self.cache_until,
        }
    }
}

/// What to do with a cached secret now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Outside its refresh window: serve it.
    Fresh,
    /// Inside its window with comfortably long to live
    /// (`max(min_ttl, window / 2)`): serve it, and renew it in the background.
    RenewInBackground,
    /// Renew it before serving: below that floor, past expiry, or in the
    /// window of a credential renewed `blocking`.
    RenewNow,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(fetched_at: i64, expires_at: Option<i64>, cache_until: i64) -> CachedCredential {
        CachedCredential {
            name: "work".into(),
            provider: "azure".into(),
            credential: Credential {
                secret: Secret::new("tok"),
                expires_at,
                metadata: vec![("tenant".into(), "t".into())],
                headers: vec![("OpenAI-Project".into(), "proj_1".into())],
            },
            cache_until,
            fetched_at,
        }
    }

    use Freshness::*;
    use RefreshMode::*;

    #[test]
    fn round_trips() {
        let entry = cached(0, Some(5000), 5000);
        assert_eq!(CachedCredential::decode(&entry.encode()), Some(entry));
        assert_eq!(CachedCredential::decode(b"{\"v\":2}"), None);
    }

    #[test]
    fn the_window_is_the_margin_or_half_the_lifetime() {
        assert_eq!(cached(0, Some(3600), 3600).refresh_window(300), 300);
        assert_eq!(cached(0, Some(300), 300).refresh_window(300), 150, "a 5-minute token");
        assert_eq!(cached(1000, None, 1600).refresh_window(300), 300, "cache_ttl entries too");
    }

    #[test]
    fn a_secret_in_its_window_is_renewed_in_the_background_until_the_floor() {
        // An hour-long token, a 5-minute window, a floor at 2.5 minutes.
        let entry = cached(0, Some(3600), 3600);
        assert_eq!(entry.freshness(3299, 300, 0, Background), Fresh);
        assert_eq!(entry.freshness(3300, 300, 0, Background), RenewInBackground);
        assert_eq!(entry.freshness(3449, 300, 0, Background), RenewInBackground);
        assert_eq!(entry.freshness(3450, 300, 0, Background), RenewNow, "at the floor");
        assert_eq!(entry.freshness(3600, 300, 0, Background), RenewNow, "expired");
        assert_eq!(entry.freshness(3300, 300, 0, Blocking), RenewNow, "blocking renews in the window");
        assert_eq!(entry.freshness(3299, 300, 0, Blocking), Fresh);
    }

    #[test]
    fn min_ttl_raises_the_bar() {
        let entry = cached(0, Some(3600), 3600);
        assert_eq!(entry.freshness(2000, 300, 1200, Background), Fresh, "1600s left satisfies 20m");
        assert_eq!(entry.freshness(2400, 300, 1800, Background), RenewNow, "1200s left: not 30m");
        assert_eq!(entry.freshness(3300, 300, 200, Background), RenewInBackground);
        assert_eq!(entry.freshness(3300, 300, 299, Background), RenewInBackground);
        assert_eq!(entry.freshness(3300, 300, 300, Background), RenewNow, "300s left is not more than 300s");
        assert!(entry.is_usable(3300, 0));
        assert!(!entry.is_usable(3600, 0), "never past expiry");
        assert!(!entry.is_usable(3300, 300));
    }

    #[test]
    fn entries_without_expiry_follow_their_ttl_and_ignore_min_ttl() {
        let entry = cached(0, None, 3600);
        assert_eq!(entry.freshness(3000, 300, 7200, Background), Fresh);
        assert_eq!(entry.freshness(3300, 300, 7200, Background), RenewInBackground);
        assert_eq!(entry.freshness(3600, 300, 0, Background), RenewNow);
        assert!(entry.is_usable(3599, 7200));
    }
}
