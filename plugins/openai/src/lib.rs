//! OpenAI API keys stored with `keyhelper login openai`, one per named
//! connection, with a tolerant format check and a live check against
//! `GET {base_url}/v1/models`.

use keyhelper_plugin::{Credential, HttpRequest, PluginInfo, Provider, ProviderError, Request, Validation};

/// Prefixes of OpenAI secret keys, longest first.
const PREFIXES: &[&str] = &["sk-svcacct-", "sk-admin-", "sk-proj-", "sk-"];
/// The shortest key accepted. Real keys run from 51 to ~160 characters; the
/// check is deliberately loose so a new key format is not refused.
const MIN_LEN: usize = 40;
const DEFAULT_CONNECTION: &str = "default";

/// The OpenAI stored-key provider.
pub struct OpenAi;

impl Provider for OpenAi {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "openai",
            env!("CARGO_PKG_VERSION"),
            "OpenAI API keys stored with `keyhelper login openai`",
        )
        .option(
            "connection",
            "Name of the stored key (`keyhelper login openai --connection NAME`)",
            Some(DEFAULT_CONNECTION),
            false,
        )
        .option("base_url", "API base URL for the live check", Some("https://api.openai.com"), false)
    }

    fn fetch(request: &Request) -> Result<Credential, ProviderError> {
        let connection = request.option("connection").unwrap_or(DEFAULT_CONNECTION);
        match keyhelper_plugin::stored_secret(connection)? {
            Some(key) => Ok(Credential::new(key).meta("connection", connection)),
            None => Err(ProviderError::not_found(format!(
                "no OpenAI key is stored for connection '{connection}'"
            ))
            .hint(login_hint(connection))),
        }
    }

    fn validate(request: &Request, secret: &str, live: bool) -> Result<Validation, ProviderError> {
        if let Err(problem) = check_format(secret) {
            return Ok(Validation::rejected(problem));
        }
        if !live {
            return Ok(Validation::valid("the key has the format of an OpenAI key"));
        }
        let base_url = request.option("base_url").unwrap_or("https://api.openai.com").trim_end_matches('/');
        let response = HttpRequest::get(format!("{base_url}/v1/models"))
            .header("Authorization", format!("Bearer {secret}"))
            .send()?;
        Ok(interpret_models_response(response.status, &response.body))
    }
}

keyhelper_plugin::register_provider!(OpenAi);

fn login_hint(connection: &str) -> String {
    if connection == DEFAULT_CONNECTION {
        "run `keyhelper login openai`".to_string()
    } else {
        format!("run `keyhelper login openai --connection {connection}`")
    }
}

/// Checks that `key` looks like an OpenAI secret key, explaining the usual
/// wrong pastes. Never includes the key in the explanation.
pub fn check_format(key: &str) -> Result<(), String> {
    if let Some((name, _)) = key
        .split_once('=')
        .filter(|(name, _)| name.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !name.is_empty())
    {
        return Err(format!("that looks like a whole `{name}=…` line; paste only the key after `=`"));
    }
    if key.starts_with("Bearer ") || key.starts_with("bearer ") {
        return Err("that includes the `Bearer ` prefix; paste only the key".to_string());
    }
    if key.starts_with(['"', '\'']) || key.ends_with(['"', '\'']) {
        return Err("that includes quotes; paste the key without them".to_string());
    }
    let Some(prefix) = PREFIXES.iter().find(|p| key.starts_with(**p)) else {
        return Err("an OpenAI API key starts with `sk-` (or `sk-proj-`, `sk-svcacct-`, `sk-admin-`); find it at https://platform.openai.com/api-keys".to_string());
    };
    if let Some(bad) = key.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        let what =
            if bad.is_whitespace() { "whitespace".to_string() } else { format!("the character {bad:?}") };
        return Err(format!(
            "an OpenAI API key contains only letters, digits, `-` and `_`, but this one contains {what}; was it pasted with something else?"
        ));
    }
    if key.len() < MIN_LEN {
        return Err(format!(
            "that is too short for an OpenAI API key ({} characters after `{prefix}`); was it cut off?",
            key.len() - prefix.len()
        ));
    }
    Ok(())
}

/// What a `GET /v1/models` response says about the key.
pub fn interpret_models_response(status: u16, body: &[u8]) -> Validation {
    let body = String::from_utf8_lossy(body);
    match status {
        200..=299 => Validation::valid("OpenAI accepted the key"),
        401 => {
            let code = if body.contains("invalid_api_key") { " (invalid_api_key)" } else { "" };
            Validation::rejected(format!(
                "OpenAI rejected the key{code}; create a new one at https://platform.openai.com/api-keys"
            ))
        }
        403 => Validation::restricted("the key is valid but restricted (it lacks the scope to list models)"),
        429 => Validation::valid("the key is valid, but the account is rate limited or out of quota"),
        other => {
            Validation::rejected(format!("the live check got HTTP {other} from /v1/models; try again later"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhelper_plugin::Verdict;

    fn key(prefix: &str, len: usize) -> String {
        format!("{prefix}{}", "aB3_-x".repeat(40).chars().take(len).collect::<String>())
    }

    #[test]
    fn accepts_every_key_family_at_any_realistic_length() {
        for prefix in ["sk-", "sk-proj-", "sk-svcacct-", "sk-admin-"] {
            for len in [48, 100, 156] {
                assert_eq!(check_format(&key(prefix, len)), Ok(()), "{prefix} {len}");
            }
        }
    }

    #[test]
    fn explains_wrong_pastes_without_echoing_the_key() {
        let k = key("sk-proj-", 100);
        for (paste, expect) in [
            (format!("OPENAI_API_KEY={k}"), "OPENAI_API_KEY"),
            (format!("Bearer {k}"), "Bearer"),
            (format!("\"{k}\""), "quotes"),
            (format!("{k} {k}"), "whitespace"),
            ("sk-short".to_string(), "too short"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123456789ABCD".to_string(), "starts with `sk-`"),
        ] {
            let err = check_format(&paste).unwrap_err();
            assert!(err.contains(expect), "{err}");
            assert!(!err.contains(&k[8..]), "the error must not contain the key");
        }
    }

    #[test]
    fn live_check_statuses() {
        assert_eq!(interpret_models_response(200, b"{}").verdict, Verdict::Valid);
        let rejected = interpret_models_response(401, br#"{"error":{"code":"invalid_api_key"}}"#);
        assert_eq!(rejected.verdict, Verdict::Rejected);
        assert!(rejected.message.contains("invalid_api_key"));
        assert_eq!(interpret_models_response(403, b"missing scopes").verdict, Verdict::Restricted);
    }
}
