//! A keyhelper provider for `pass`, the standard Unix password store: the
//! secret is the first line of `pass show <entry>`, as pass's own convention
//! (and `pass -c`) has it.

use keyhelper_plugin::{Command, Credential, HostError, PluginInfo, Provider, ProviderError, Request};

/// The pass provider.
pub struct Pass;

impl Provider for Pass {
    fn describe() -> PluginInfo {
        PluginInfo::new("pass", env!("CARGO_PKG_VERSION"), "Secrets from the pass password store").option(
            "entry",
            "The entry in the store, e.g. `api/openai`",
            None,
            true,
        )
    }

    fn fetch(request: &Request) -> Result<Credential, ProviderError> {
        let entry = request.required("entry")?;
        let output = Command::new("pass").arg("show").arg(entry).run().map_err(|e| match e {
            HostError::NotInstalled(m) => {
                ProviderError::unavailable(m).hint("install pass: https://www.passwordstore.org/")
            }
            other => other.into(),
        })?;
        if !output.success() {
            return Err(classify_failure(&output.stderr_text(), entry));
        }
        first_line(&output.stdout_text(), entry).map(|secret| Credential::new(secret).meta("entry", entry))
    }
}

keyhelper_plugin::register_provider!(Pass);

/// The first line of an entry: the password, by pass's convention.
pub fn first_line(text: &str, entry: &str) -> Result<String, ProviderError> {
    match text.lines().next() {
        Some(line) if !line.is_empty() => Ok(line.to_string()),
        _ => Err(ProviderError::not_found(format!("the pass entry `{entry}` has an empty first line"))),
    }
}

/// Maps pass's and gpg's stderr to an error the host can act on.
pub fn classify_failure(stderr: &str, entry: &str) -> ProviderError {
    let first = stderr.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no error message");
    if stderr.contains("is not in the password store") {
        ProviderError::not_found(format!("`{entry}` is not in the password store"))
            .hint("`pass ls` lists the entries")
    } else if stderr.contains("password store is empty") || stderr.contains("Try \"pass init\"") {
        ProviderError::needs_login("the password store is not set up").hint("run `pass init <gpg-id>`")
    } else if stderr.contains("decryption failed") || stderr.contains("No secret key") {
        ProviderError::denied(format!("gpg could not decrypt `{entry}`: {first}"))
            .hint("the entry is encrypted to a key you do not have in your GnuPG keyring")
    } else {
        ProviderError::unavailable(format!("`pass show` failed: {first}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_the_first_line() {
        assert_eq!(first_line("sk-secret\nuser: me\n", "x").unwrap(), "sk-secret");
        assert!(first_line("\nrest", "x").is_err());
    }

    #[test]
    fn maps_pass_errors() {
        let missing = classify_failure("Error: api/nope is not in the password store.\n", "api/nope");
        assert!(matches!(missing, ProviderError::NotFound(_)));
        let undecryptable = classify_failure("gpg: decryption failed: No secret key\n", "api/x");
        assert!(matches!(undecryptable, ProviderError::Denied(_)));
    }
}
