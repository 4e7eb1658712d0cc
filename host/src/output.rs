//! How `get` prints a credential for each kind of consumer. Only the secret
//! (or the consumer's JSON around it) goes to stdout.

use std::io::Write;

use clap::ValueEnum;

use crate::credential::Credential;

/// Output formats of `keyhelper get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The secret alone (Claude Code `apiKeyHelper`, Codex).
    Raw,
    /// `{"token": …, "expires_at": …}` with expiry in unix seconds or null.
    Json,
}

/// Renders `credential` in `format`; `newline` ends it with `\n`.
pub fn render(credential: &Credential, format: Format, newline: bool) -> String {
    let mut out = match format {
        Format::Raw => credential.secret.expose().to_string(),
        Format::Json => serde_json::json!({
            "token": credential.secret.expose(),
            "expires_at": credential.expires_at,
        })
        .to_string(),
    };
    if newline {
        out.push('\n');
    }
    out
}

/// Writes the rendered credential to stdout in one write.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::Secret;

    fn credential(expires_at: Option<i64>) -> Credential {
        Credential { secret: Secret::new("sk-abc"), expires_at, metadata: vec![] }
    }

    #[test]
    fn raw_is_the_secret_and_one_newline() {
        assert_eq!(render(&credential(None), Format::Raw, true), "sk-abc\n");
        assert_eq!(render(&credential(None), Format::Raw, false), "sk-abc");
    }

    #[test]
    fn json_has_token_and_expiry() {
        assert_eq!(
            render(&credential(Some(1795527667)), Format::Json, true),
            "{\"expires_at\":1795527667,\"token\":\"sk-abc\"}\n"
        );
        assert_eq!(
            render(&credential(None), Format::Json, false),
            "{\"expires_at\":null,\"token\":\"sk-abc\"}"
        );
    }
}
