//! What a cache entry holds, and when it may be served.

use serde::{Deserialize, Serialize};

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

    /// Whether to serve it without renewing: it must outlive both the refresh
    /// margin and the caller's minimum lifetime. A secret without a known
    /// expiry is served until `cache_until`.
    pub fn is_fresh(&self, now: i64, refresh_before: i64, min_ttl: i64) -> bool {
        match self.credential.expires_at {
            Some(expires_at) => now + refresh_before.max(min_ttl) < expires_at,
            None => now < self.cache_until,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(expires_at: Option<i64>, cache_until: i64) -> CachedCredential {
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
            fetched_at: 0,
        }
    }

    #[test]
    fn round_trips() {
        let entry = cached(Some(5000), 5000);
        assert_eq!(CachedCredential::decode(&entry.encode()), Some(entry));
        assert_eq!(CachedCredential::decode(b"{\"v\":2}"), None);
    }

    #[test]
    fn freshness_keeps_the_refresh_margin_and_min_ttl() {
        let entry = cached(Some(1000), 1000);
        assert!(entry.is_fresh(600, 300, 0));
        assert!(!entry.is_fresh(700, 300, 0), "inside the refresh window");
        assert!(!entry.is_fresh(600, 300, 600), "--min-ttl longer than what is left");
        assert!(entry.is_usable(700, 0), "still valid for stale-on-error");
        assert!(!entry.is_usable(1000, 0), "never past expiry");
        assert!(!entry.is_usable(700, 400));
    }

    #[test]
    fn ttl_entries_are_served_until_their_ttl() {
        let entry = cached(None, 1000);
        assert!(entry.is_fresh(999, 300, 3600), "no known expiry: the refresh margin does not apply");
        assert!(!entry.is_fresh(1000, 0, 0));
    }
}
