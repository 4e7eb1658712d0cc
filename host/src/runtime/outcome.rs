//! What a plugin call answers, in the host's own types (independent of the
//! contract version the plugin was built for), and how a failed call becomes
//! the [`Failure`] the CLI reports.

use keyhelper_core::failure::{ExitClass, Failure};

use super::{Aftermath, PluginError};

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

impl From<ProviderFailure> for Failure {
    fn from(failure: ProviderFailure) -> Self {
        let class = match failure.kind {
            FailureKind::NeedsLogin => ExitClass::NeedsLogin,
            FailureKind::NotFound => ExitClass::NotFound,
            FailureKind::InvalidConfig => ExitClass::Config,
            FailureKind::Denied => ExitClass::Denied,
            FailureKind::Unavailable => ExitClass::Unavailable,
            FailureKind::RateLimited => ExitClass::RateLimited,
        };
        Self { class, message: failure.message, hint: failure.hint }
    }
}

impl From<PluginError> for Failure {
    fn from(error: PluginError) -> Self {
        match error {
            PluginError::Provider { aftermath: Aftermath { store_failure: Some(problem), .. }, .. } => {
                Failure::new(ExitClass::Store, problem)
                    .hint("fix the secret store as the message says; nothing in it was changed")
            }
            PluginError::Provider { failure, .. } => failure.into(),
            PluginError::Integrity { .. } => Failure::new(ExitClass::Plugin, error.to_string())
                .hint("reinstall keyhelper (bundled plugins) or the plugin (`keyhelper plugin install`)"),
            PluginError::Incompatible { .. } => Failure::new(ExitClass::Plugin, error.to_string()),
            PluginError::Compiler { .. } => Failure::new(ExitClass::Internal, error.to_string()),
            PluginError::Stopped { .. } => Failure::new(ExitClass::Plugin, error.to_string())
                .hint("report this to the plugin's author; run with -v for its log"),
        }
    }
}
