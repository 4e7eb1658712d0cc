//! API keys stored with `keyhelper login <provider>`, for any vendor whose
//! manifest gives the rest as option defaults: the key's prefix, where and
//! how to check it live. One plugin serves Anthropic, Mistral, Groq, Gemini
//! and the others; adding a vendor is a manifest, not code.

use keyhelper_plugin::{Credential, HttpRequest, PluginInfo, Provider, ProviderError, Request, Validation};

const DEFAULT_CONNECTION: &str = "default";
/// Shorter pastes are surely cut off; real keys of every vendor are longer.
const MIN_LEN: usize = 20;

/// The generic stored-key provider.
pub struct StoredKey;

impl Provider for StoredKey {
    fn describe() -> PluginInfo {
        PluginInfo::new("stored-key", env!("CARGO_PKG_VERSION"), "API keys stored with `keyhelper login`")
            .option(
                "connection",
                "Name of the stored key (`keyhelper login PROVIDER --connection NAME`)",
                Some(DEFAULT_CONNECTION),
                false,
            )
            .option("base_url", "API base URL: for the live check, and where the proxy forwards", None, false)
            .option("vendor", "The provider's name, as `keyhelper login` takes it", None, true)
            .option(
                "key_prefix",
                "What every key of this vendor starts with (none: not checked)",
                None,
                false,
            )
            .option("keys_url", "Where to create a key", None, false)
            .option("verify_path", "Path under base_url that answers 200 to a valid key", None, false)
            .option("auth_header", "Header that carries the key", Some("Authorization"), false)
            .option("auth_prefix", "What precedes the key in that header", None, false)
            .option("extra_header", "One more header the live check sends, as `Name: value`", None, false)
    }

    fn fetch(request: &Request) -> Result<Credential, ProviderError> {
        let connection = request.option("connection").unwrap_or(DEFAULT_CONNECTION);
        let vendor = request.required("vendor")?;
        match keyhelper_plugin::stored_secret(connection)? {
            Some(key) => Ok(Credential::new(key).meta("connection", connection)),
            None => Err(ProviderError::not_found(format!(
                "no {vendor} key is stored for connection '{connection}'"
            ))
            .hint(login_hint(vendor, connection))),
        }
    }

    fn validate(request: &Request, secret: &str, live: bool) -> Result<Validation, ProviderError> {
        let vendor = request.required("vendor")?;
        if let Err(problem) = check_format(secret, vendor, request.option("key_prefix")) {
            let problem = match request.option("keys_url") {
                Some(url) => format!("{problem}; create one at {url}"),
                None => problem,
            };
            return Ok(Validation::rejected(problem));
        }
        let (Some(base_url), Some(path), true) =
            (request.option("base_url"), request.option("verify_path"), live)
        else {
            return Ok(Validation::valid(format!("the key has the format of {vendor}'s keys")));
        };
        let header = request.option("auth_header").unwrap_or("Authorization");
        let prefix = request.option("auth_prefix").unwrap_or("");
        let mut check = HttpRequest::get(format!("{}{path}", base_url.trim_end_matches('/')))
            .header(header, format!("{prefix}{secret}"));
        if let Some((name, value)) = request.option("extra_header").and_then(|h| h.split_once(':')) {
            check = check.header(name.trim(), value.trim());
        }
        let response = check.send()?;
        Ok(interpret(vendor, response.status))
    }
}

keyhelper_plugin::register_provider!(StoredKey);

fn login_hint(vendor: &str, connection: &str) -> String {
    if connection == DEFAULT_CONNECTION {
        format!("run `keyhelper login {vendor}`")
    } else {
        format!("run `keyhelper login {vendor} --connection {connection}`")
    }
}

/// Checks that `key` looks like a key of `vendor`, explaining the usual
/// wrong pastes. Never includes the key in the explanation.
pub fn check_format(key: &str, vendor: &str, prefix: Option<&str>) -> Result<(), String> {
    if let Some((name, _)) = key
        .split_once('=')
        .filter(|(name, _)| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    {
        return Err(format!("that looks like a whole `{name}=…` line; paste only the key after `=`"));
    }
    if key.to_ascii_lowercase().starts_with("bearer ") {
        return Err("that includes the `Bearer ` prefix; paste only the key".to_string());
    }
    if key.starts_with(['"', '\'']) || key.ends_with(['"', '\'']) {
        return Err("that includes quotes; paste the key without them".to_string());
    }
    if let Some(prefix) = prefix.filter(|p| !key.starts_with(*p)) {
        return Err(format!("{vendor} API keys start with `{prefix}`"));
    }
    if let Some(bad) = key.chars().find(|c| !(c.is_ascii_graphic())) {
        let what =
            if bad.is_whitespace() { "whitespace".to_string() } else { format!("the character {bad:?}") };
        return Err(format!("{vendor} API keys contain no {what}; was it pasted with something else?"));
    }
    if key.len() < MIN_LEN {
        return Err(format!(
            "that is too short ({} characters) to be one of {vendor}'s API keys; was it cut off?",
            key.len()
        ));
    }
    Ok(())
}

/// What the live check's status says about the key.
pub fn interpret(vendor: &str, status: u16) -> Validation {
    match status {
        200..=299 => Validation::valid(format!("{vendor} accepted the key")),
        401 => Validation::rejected(format!("{vendor} rejected the key (HTTP 401); create a new one")),
        403 => Validation::restricted(format!("{vendor} accepted the key but refused the check (HTTP 403)")),
        429 => Validation::valid(format!(
            "the key is valid, but the {vendor} account is rate limited or out of quota"
        )),
        other => {
            Validation::rejected(format!("the live check got HTTP {other} from {vendor}; try again later"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhelper_plugin::Verdict;

    #[test]
    fn the_prefix_and_the_usual_wrong_pastes_are_explained_without_the_key() {
        let key = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789";
        assert_eq!(check_format(key, "anthropic", Some("sk-ant-")), Ok(()));
        assert_eq!(check_format("0123456789abcdef0123456789abcdef", "together", None), Ok(()));
        for (paste, expect) in [
            ("sk-proj-abcdefghijklmnopqrstuvwxyz0123".to_string(), "start with `sk-ant-`"),
            (format!("ANTHROPIC_API_KEY={key}"), "ANTHROPIC_API_KEY"),
            (format!("Bearer {key}"), "Bearer"),
            (format!("'{key}'"), "quotes"),
            (format!("{key} x"), "whitespace"),
            ("sk-ant-short".to_string(), "too short"),
        ] {
            let error = check_format(&paste, "anthropic", Some("sk-ant-")).unwrap_err();
            assert!(error.contains(expect), "{error}");
            assert!(!error.contains("abcdefghij"), "the error must not contain the key: {error}");
        }
    }

    #[test]
    fn live_check_statuses() {
        assert_eq!(interpret("x", 200).verdict, Verdict::Valid);
        assert_eq!(interpret("x", 401).verdict, Verdict::Rejected);
        assert_eq!(interpret("x", 403).verdict, Verdict::Restricted);
        assert_eq!(interpret("x", 500).verdict, Verdict::Rejected);
    }
}
