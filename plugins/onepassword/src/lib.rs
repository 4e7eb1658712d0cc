//! Secrets from 1Password through its CLI (`op read <reference>`).
//!
//! `op` prints the field's value with one trailing newline, which is removed;
//! nothing else is trimmed. Errors arrive on stderr as
//! `[ERROR] 2026/11/24 12:00:00 <message>` and are mapped to actionable kinds.

use keyhelper_plugin::{Command, Credential, HostError, PluginInfo, Provider, ProviderError, Request};

const INSTALL_HINT: &str = "install the 1Password CLI: https://developer.1password.com/docs/cli/get-started/";
const SIGNIN_HINT: &str =
    "run `op signin` (or unlock the 1Password app with CLI integration on), or set OP_SERVICE_ACCOUNT_TOKEN";

/// The 1Password CLI provider.
pub struct OnePasswordCli;

impl Provider for OnePasswordCli {
    fn describe() -> PluginInfo {
        PluginInfo::new("1password", env!("CARGO_PKG_VERSION"), "Secrets from 1Password via `op read`")
            .option("reference", "Secret reference, op://vault/item[/section]/field", None, true)
            .option(
                "account",
                "Account shorthand, sign-in address or ID (default: op's own choice)",
                None,
                false,
            )
    }

    fn fetch(request: &Request) -> Result<Credential, ProviderError> {
        let command = read_command(request)?;
        let output = command.run().map_err(|e| match e {
            HostError::NotInstalled(m) => ProviderError::unavailable(m).hint(INSTALL_HINT),
            other => other.into(),
        })?;
        if !output.success() {
            return Err(classify_failure(&output.stderr_text(), request.interactive));
        }
        let secret = strip_trailing_newline(&output.stdout)?;
        if secret.is_empty() {
            return Err(ProviderError::not_found(format!(
                "the field at {} is empty",
                request.required("reference")?
            )));
        }
        Ok(Credential::new(secret).meta("reference", request.required("reference")?))
    }
}

keyhelper_plugin::register_provider!(OnePasswordCli);

/// Builds `op read [--account A] <reference>`.
pub fn read_command(request: &Request) -> Result<Command, ProviderError> {
    let reference = request.required("reference")?;
    if !reference.starts_with("op://") {
        return Err(ProviderError::invalid_config(format!(
            "credential '{}' has reference `{reference}`, which is not a secret reference",
            request.credential
        ))
        .hint(
            "use the form op://vault/item/field (1Password: right-click a field → Copy Secret Reference)",
        ));
    }
    Ok(Command::new("op").arg("read").opt("--account", request.option("account")).arg(reference))
}

/// Removes the one newline `op read` adds, and nothing else.
pub fn strip_trailing_newline(stdout: &[u8]) -> Result<String, ProviderError> {
    let text = std::str::from_utf8(stdout).map_err(|_| {
        ProviderError::unavailable("the 1Password field is not UTF-8 text")
            .hint("keyhelper hands out text secrets; store this one as text")
    })?;
    let text = text.strip_suffix('\n').map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
    Ok(text.to_string())
}

/// Maps `op`'s `[ERROR] <date> <time> <message>` stderr to an error kind.
pub fn classify_failure(stderr: &str, interactive: bool) -> ProviderError {
    let message = error_message(stderr);
    let lower = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if has(&[
        "not currently signed in",
        "account is not signed in",
        "no accounts configured",
        "session expired",
        "authentication required",
        "signin",
        "sign in",
    ]) {
        let hint = if interactive {
            SIGNIN_HINT.to_string()
        } else {
            format!("{SIGNIN_HINT}; keyhelper was called without a terminal, so op could not prompt")
        };
        return ProviderError::needs_login(format!("1Password CLI is not signed in: {message}")).hint(hint);
    }
    if has(&["authorization prompt dismissed", "authorization timeout", "user cancelled"]) {
        return ProviderError::needs_login(format!("1Password access was not approved: {message}"))
            .hint("approve the 1Password app's prompt, then try again");
    }
    if has(&[
        "invalid secret reference",
        "invalid character in secret reference",
        "too few segments",
        "too many segments",
    ]) {
        return ProviderError::invalid_config(format!("1Password rejected the reference: {message}"))
            .hint("use the form op://vault/item/field");
    }
    if has(&[
        "isn't a vault",
        "isn't an item",
        "isn't a field",
        "could not find",
        "no item found",
        "not found",
    ]) {
        return ProviderError::not_found(format!("1Password has no such secret: {message}"))
            .hint("check the reference with `op item get <item> --vault <vault>`");
    }
    if has(&["too many requests", "rate limit", "(429)"]) {
        return ProviderError::rate_limited(format!("1Password is rate limiting: {message}"));
    }
    if has(&["unauthorized", "forbidden", "(403)", "(401)", "not have permission", "aren't authorized"]) {
        return ProviderError::denied(format!("1Password refused access: {message}"))
            .hint("ask a vault admin for access, or check OP_SERVICE_ACCOUNT_TOKEN's permissions");
    }
    ProviderError::unavailable(format!("`op read` failed: {message}"))
}

/// The message of the first `[ERROR]` line without its date and time, or the
/// first non-empty line.
fn error_message(stderr: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("[ERROR]"))
        .or_else(|| stderr.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("no error message");
    let Some(rest) = line.strip_prefix("[ERROR]") else { return line.to_string() };
    let mut words = rest.trim_start().splitn(3, ' ');
    let (date, time, message) = (words.next(), words.next(), words.next());
    let looks_like_timestamp = date.is_some_and(|d| d.len() == 10 && d.as_bytes()[4] == b'/')
        && time.is_some_and(|t| t.len() == 8 && t.as_bytes()[2] == b':');
    if looks_like_timestamp { message.unwrap_or_default().to_string() } else { rest.trim().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhelper_plugin::ProviderError as E;

    fn request(options: &[(&str, &str)]) -> Request {
        Request {
            credential: "vault".into(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            interactive: false,
        }
    }

    #[test]
    fn builds_op_read_with_account() {
        let cmd = read_command(&request(&[
            ("reference", "op://Private/OpenAI/credential"),
            ("account", "my.1password.com"),
        ]))
        .unwrap();
        assert_eq!(cmd.args, ["read", "--account", "my.1password.com", "op://Private/OpenAI/credential"]);
    }

    #[test]
    fn reference_is_required_and_checked() {
        assert!(matches!(read_command(&request(&[])).err().unwrap(), E::InvalidConfig(_)));
        assert!(matches!(
            read_command(&request(&[("reference", "Private/OpenAI")])).err().unwrap(),
            E::InvalidConfig(_)
        ));
    }

    #[test]
    fn trims_exactly_one_newline() {
        assert_eq!(strip_trailing_newline(b"  sk-abc \n").unwrap(), "  sk-abc ");
        assert_eq!(strip_trailing_newline(b"line1\nline2\n\n").unwrap(), "line1\nline2\n");
        assert_eq!(strip_trailing_newline(b"sk-abc\r\n").unwrap(), "sk-abc");
        assert_eq!(strip_trailing_newline(b"sk-abc").unwrap(), "sk-abc");
    }

    #[test]
    fn maps_op_errors() {
        let cases = [
            (
                "[ERROR] 2026/11/24 12:00:00 You are not currently signed in. Please run `op signin --help` for instructions",
                "needs-login",
            ),
            ("[ERROR] 2026/11/24 12:00:00 account is not signed in", "needs-login"),
            (
                "[ERROR] 2026/11/24 12:00:00 could not read secret 'op://Private/Nope/password': could not get item Private/Nope: \"Nope\" isn't an item in the \"Private\" vault. Specify the item with its UUID, name, or domain.",
                "not-found",
            ),
            (
                "[ERROR] 2026/11/24 12:00:00 could not read secret 'op://Nope/x/y': \"Nope\" isn't a vault in this account. Specify the vault with its ID or name.",
                "not-found",
            ),
            (
                "[ERROR] 2026/11/24 12:00:00 invalid secret reference 'op://x': too few segments",
                "invalid-config",
            ),
            ("[ERROR] 2026/11/24 12:00:00 authorization prompt dismissed, please try again", "needs-login"),
            ("[ERROR] 2026/11/24 12:00:00 connecting to desktop app: read: connection reset", "unavailable"),
        ];
        for (stderr, expected) in cases {
            let kind = match classify_failure(stderr, false) {
                E::NeedsLogin(_) => "needs-login",
                E::NotFound(_) => "not-found",
                E::InvalidConfig(_) => "invalid-config",
                E::Denied(_) => "denied",
                E::Unavailable(_) => "unavailable",
                E::RateLimited(_) => "rate-limited",
            };
            assert_eq!(kind, expected, "{stderr}");
        }
    }

    #[test]
    fn error_message_drops_the_timestamp() {
        assert_eq!(
            error_message("[ERROR] 2026/11/24 12:00:00 account is not signed in\n"),
            "account is not signed in"
        );
    }
}
