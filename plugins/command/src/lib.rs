//! A token from any command the user configures (`command = ["my-auth-cli",
//! "get-token"]`): run exactly as written, no shell. Its output is the token
//! (`format = "text"`), or a JSON object holding it in `token_field`, with
//! its expiry in `expiry_field` (RFC 3339 or unix seconds). The host bounds
//! the command by the credential's `timeout` and `max_output`.

use keyhelper_plugin::{Command, Credential, PluginInfo, Provider, ProviderError, Request};
use serde_json::Value;

/// The command provider.
pub struct CommandProvider;

impl Provider for CommandProvider {
    fn describe() -> PluginInfo {
        PluginInfo::new("command", env!("CARGO_PKG_VERSION"), "A token from a command you configure")
            .option("command", "The command line, a list: [\"my-auth-cli\", \"get-token\"]", None, true)
            .option("format", "text (the output is the token) or json", Some("text"), false)
            .option(
                "token_field",
                "For json: the field holding the token (a.b for nested)",
                Some("access_token"),
                false,
            )
            .option(
                "expiry_field",
                "For json: the field holding its expiry (RFC 3339 or unix seconds)",
                None,
                false,
            )
            .option("env", "Environment variables the command may see, a list", None, false)
            .option("timeout", "How long the command may run", Some("30s"), false)
            .option("max_output", "The most bytes it may print", Some("65536"), false)
    }

    fn fetch(request: &Request) -> Result<Credential, ProviderError> {
        let argv: Vec<String> = serde_json::from_str(request.required("command")?)
            .map_err(|_| ProviderError::invalid_config("`command` must be a list of strings"))?;
        let Some((program, args)) = argv.split_first() else {
            return Err(ProviderError::invalid_config("`command` is empty"));
        };
        let output = args.iter().fold(Command::new(program.as_str()), |c, a| c.arg(a.as_str())).run()?;
        if !output.success() {
            let stderr = output.stderr_text();
            let last =
                stderr.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("no message on stderr");
            let code = output.exit_code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
            return Err(ProviderError::unavailable(format!("`{program}` failed ({code}): {}", masked(last))));
        }
        let stdout = output.stdout_text();
        match request.option("format").unwrap_or("text") {
            "text" => {
                let token = stdout.trim();
                if token.is_empty() {
                    return Err(ProviderError::unavailable(format!("`{program}` printed no token")));
                }
                Ok(Credential::new(token))
            }
            "json" => from_json(
                program,
                &stdout,
                request.option("token_field").unwrap_or("access_token"),
                request.option("expiry_field"),
            ),
            other => Err(ProviderError::invalid_config(format!("`format` is `{other}`; use text or json"))),
        }
    }
}

keyhelper_plugin::register_provider!(CommandProvider);

/// `line` with every word that looks like a token — 24 or more characters
/// of the sets tokens are made of (Base64, hex, JWTs), with a digit —
/// replaced: a tool may print its token on stderr as it fails, and the
/// line is shown to the user.
pub fn masked(line: &str) -> String {
    let looks_like_token = |word: &str| {
        word.len() >= 24
            && word.bytes().any(|b| b.is_ascii_digit())
            && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b))
    };
    line.split(' ')
        .map(|word| if looks_like_token(word) { "[redacted]" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The token (and expiry) in a command's JSON output. Never quotes the output.
pub fn from_json(
    program: &str,
    stdout: &str,
    token_field: &str,
    expiry_field: Option<&str>,
) -> Result<Credential, ProviderError> {
    let json: Value = serde_json::from_str(stdout).map_err(|_| {
        ProviderError::unavailable(format!("`{program}` did not print JSON (format = \"json\")"))
    })?;
    let field = |path: &str| path.split('.').try_fold(&json, |value, key| value.get(key));
    let token = field(token_field).and_then(Value::as_str).filter(|t| !t.is_empty()).ok_or_else(|| {
        ProviderError::unavailable(format!("`{program}`'s JSON has no string `{token_field}`"))
            .hint("set token_field to the field that holds the token")
    })?;
    let mut credential = Credential::new(token);
    if let Some(expiry_field) = expiry_field {
        let expires_at = match field(expiry_field) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse::<i64>().ok().or_else(|| rfc3339_seconds(s)),
            _ => None,
        }
        .ok_or_else(|| {
            ProviderError::unavailable(format!(
                "`{program}`'s JSON has no `{expiry_field}` holding an RFC 3339 time or unix seconds"
            ))
        })?;
        credential = credential.expires_at(expires_at);
    }
    Ok(credential)
}

/// Unix seconds of an RFC 3339 time (`2026-12-02T03:17:00Z`, with optional
/// fraction and `+hh:mm` offset).
pub fn rfc3339_seconds(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => (&time[..at], &time[at..]),
        None => return None,
    };
    let mut hms = clock.split(':');
    let (hour, minute) = (hms.next()?.parse::<i64>().ok()?, hms.next()?.parse::<i64>().ok()?);
    let second = hms.next()?.split('.').next()?.parse::<i64>().ok()?;
    let offset_seconds = match offset {
        "Z" | "z" => 0,
        signed => {
            let sign = if signed.starts_with('-') { -1 } else { 1 };
            let (h, m) = signed[1..].split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days since the epoch (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_like_words_in_a_failure_line_are_masked() {
        assert_eq!(
            masked("error: token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln rejected"),
            "error: token [redacted] rejected"
        );
        assert_eq!(
            masked("error: session expired, run my-auth-cli login"),
            "error: session expired, run my-auth-cli login"
        );
        assert_eq!(masked("see https://idp.example.com/device"), "see https://idp.example.com/device");
    }

    #[test]
    fn rfc3339_times_and_offsets() {
        assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_seconds("2026-12-02T03:17:00Z"), Some(1_796_181_420));
        assert_eq!(rfc3339_seconds("2026-12-02T04:17:00.123+01:00"), Some(1_796_181_420));
        assert_eq!(rfc3339_seconds("2000-02-29T12:00:00-00:30"), Some(951_827_400));
        assert_eq!(rfc3339_seconds("tomorrow"), None);
        assert_eq!(rfc3339_seconds("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn json_fields_nested_and_expiry_forms() {
        let out = r#"{"data":{"token":"tok"},"exp":"2026-12-02T03:17:00Z","n":1796181420}"#;
        let c = from_json("cli", out, "data.token", Some("exp")).unwrap();
        assert_eq!((c.secret.as_str(), c.expires_at), ("tok", Some(1_796_181_420)));
        assert_eq!(from_json("cli", out, "data.token", Some("n")).unwrap().expires_at, Some(1_796_181_420));
        assert!(from_json("cli", out, "missing", None).is_err());
        let not_json = from_json("cli", "secret-ish text", "t", None).err().unwrap();
        assert!(!format!("{not_json:?}").contains("secret-ish"));
    }
}
