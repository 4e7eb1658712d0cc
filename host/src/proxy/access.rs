//! The proxy's client key: what a client must send as its API key, so the
//! proxy serves only the programs it was started for, not every local user.

use std::sync::Arc;

use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use hyper::HeaderMap;
use hyper::header::{self, HeaderName};

/// Azure OpenAI's key header.
pub const API_KEY: HeaderName = HeaderName::from_static("api-key");
/// Anthropic's key header.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The key clients authenticate to the proxy with.
#[derive(Clone)]
pub struct ClientKey(Arc<str>);

impl ClientKey {
    /// `given`, or a fresh random key (256 bits from the OS).
    pub fn new(given: Option<String>) -> Self {
        let key = given.unwrap_or_else(|| {
            let mut bytes = [0u8; 32];
            OsRng.fill_bytes(&mut bytes);
            format!("kh-proxy-{}", hex::encode(bytes))
        });
        Self(key.into())
    }

    /// The key, to print once at start-up.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the request carries the key, as `Authorization: Bearer`, `api-key` or `x-api-key`.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let offered = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let bearer = offered(&header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        [bearer, offered(&API_KEY), offered(&X_API_KEY)]
            .into_iter()
            .flatten()
            .any(|candidate| constant_time_eq(candidate.trim().as_bytes(), self.0.as_bytes()))
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKey(<redacted>)")
    }
}

/// Compares without stopping at the first difference, so response timing does
/// not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_key_in_any_of_the_usual_headers_only() {
        let key = ClientKey::new(Some("kh-proxy-test".into()));
        let with = |name: &str, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
            headers
        };
        assert!(key.admits(&with("authorization", "Bearer kh-proxy-test")));
        assert!(key.admits(&with("api-key", "kh-proxy-test")));
        assert!(key.admits(&with("x-api-key", "kh-proxy-test")));
        assert!(!key.admits(&with("authorization", "Bearer kh-proxy-tesT")));
        assert!(!key.admits(&with("authorization", "kh-proxy-test")));
        assert!(!key.admits(&HeaderMap::new()));
    }

    #[test]
    fn random_keys_differ() {
        assert_ne!(ClientKey::new(None).expose(), ClientKey::new(None).expose());
        assert_eq!(ClientKey::new(None).expose().len(), "kh-proxy-".len() + 64);
    }
}
