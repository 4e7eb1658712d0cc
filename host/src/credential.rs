//! The values that flow from plugins through the cache to the output formats.

use std::fmt;

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A secret value. Its `Debug` and `Display` never show it, so it cannot leak
/// through a log line, an error or a panic message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

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

/// The kinds of provider failure, each with its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The user must sign in to the provider's tool.
    NeedsLogin,
    /// The secret does not exist.
    NotFound,
    /// The credential's options are wrong.
    InvalidConfig,
    /// The backend, or keyhelper's sandbox, refused access.
    Denied,
    /// The backend or its tool is missing or failed.
    Unavailable,
    /// The backend reported a rate limit or exhausted quota.
    RateLimited,
}

/// A failure reported by a provider plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

/// The verdict of validating a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Valid,
    /// Accepted with limits.
    Restricted,
    /// Refused.
    Rejected,
}

/// The outcome of validating a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// The verdict.
    pub verdict: Verdict,
    /// One line explaining it.
    pub message: String,
}

/// An option a provider accepts, as the plugin describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOption {
    /// Its key in `config.toml`.
    pub name: String,
    /// One line of help.
    pub help: String,
    /// Its default value.
    pub default: Option<String>,
    /// Whether it must be set.
    pub required: bool,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Provider name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Accepted options.
    pub options: Vec<PluginOption>,
    /// Whether `refresh` is better than fetching again.
    pub supports_refresh: bool,
}
