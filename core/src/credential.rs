//! The values that flow from plugins through the cache to the output formats.

use std::fmt;

use zeroize::Zeroize;

/// A secret value. Its `Debug` and `Display` never show it, so it cannot leak
/// through a log line, an error or a panic message by accident, and its
/// memory is overwritten with zeros when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the few places that must hand it out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A credential returned by a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The secret.
    pub secret: Secret,
    /// When it stops working, in unix seconds, if the provider knows.
    pub expires_at: Option<i64>,
    /// Non-secret facts about it.
    pub metadata: Vec<(String, String)>,
    /// Non-secret HTTP headers to send along with the secret.
    pub headers: Vec<(String, String)>,
}
