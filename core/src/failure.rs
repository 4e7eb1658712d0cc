//! The one error type the CLI reports: a class (which fixes the exit code), a
//! one-line message and an optional hint. Every layer's errors convert into it
//! (the host's plugin and store errors where they are defined).

use std::fmt;

/// Classes of failure, each with a documented exit code (see README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// 1: an unexpected internal or I/O error.
    Internal,
    /// 2: bad command-line usage.
    Usage,
    /// 3: the configuration or a provider option is wrong.
    Config,
    /// 4: the user must sign in to the provider's tool.
    NeedsLogin,
    /// 5: the credential or secret does not exist.
    NotFound,
    /// 6: access was refused, by the backend or by the sandbox.
    Denied,
    /// 7: the backend or its tool is missing or failing.
    Unavailable,
    /// 8: the backend reported a rate limit or exhausted quota.
    RateLimited,
    /// 9: a plugin is invalid, was altered, crashed or hit a sandbox limit.
    Plugin,
    /// 10: the secret store or the credential cache could not be used.
    Store,
}

impl ExitClass {
    /// Whether a credential failing this way should hand over to its fallback:
    /// the user must sign in, the secret is missing, or the backend is down or
    /// rate limited. Configuration errors, denials and broken plugins are not
    /// papered over.
    pub fn allows_fallback(self) -> bool {
        matches!(self, Self::NeedsLogin | Self::NotFound | Self::Unavailable | Self::RateLimited)
    }

    /// The process exit code for this class.
    pub fn code(self) -> u8 {
        match self {
            Self::Internal => 1,
            Self::Usage => 2,
            Self::Config => 3,
            Self::NeedsLogin => 4,
            Self::NotFound => 5,
            Self::Denied => 6,
            Self::Unavailable => 7,
            Self::RateLimited => 8,
            Self::Plugin => 9,
            Self::Store => 10,
        }
    }
}

/// A failure to report on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which class, hence which exit code.
    pub class: ExitClass,
    /// What went wrong, on one line.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Failure {
    /// A failure without a hint.
    pub fn new(class: ExitClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into(), hint: None }
    }

    /// Adds what to do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the message with context, e.g. the credential's name.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the parts contain.
        let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        write!(f, "{}", one_line(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {})", one_line(hint))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_the_hint() {
        let f = Failure::new(ExitClass::NeedsLogin, "not signed in:\nPlease run\taz login")
            .hint("run `az login`\n");
        assert_eq!(f.to_string(), "not signed in: Please run az login (hint: run `az login`)");
    }

    #[test]
    fn exit_codes_are_distinct() {
        use ExitClass::*;
        let all =
            [Internal, Usage, Config, NeedsLogin, NotFound, Denied, Unavailable, RateLimited, Plugin, Store];
        let mut codes: Vec<u8> = all.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
