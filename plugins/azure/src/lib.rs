//! Azure AD (Entra ID) access tokens, from the Azure CLI (`az account
//! get-access-token`, the default) or, where there is no `az login`: from the
//! machine's managed identity (`method = "managed-identity"`: VMs, App
//! Service, Container Apps), a workload identity's federated token
//! (`method = "workload-identity"`: AKS, GitHub Actions) or a service
//! principal's stored secret (`method = "client-secret"`).
//!
//! With `az`, the user signs in once with `az login`; this provider asks `az`
//! for a token for the configured scope and reports its real expiry
//! (`expires_on`), so the host can cache it and refresh it ahead of time.

mod entra;
mod managed_identity;

use keyhelper_plugin::{Command, Credential, HostError, PluginInfo, Provider, ProviderError, Request};
use serde_json::Value;

/// Azure OpenAI's scope, used when neither `scope` nor `resource` is set.
pub const DEFAULT_SCOPE: &str = "https://cognitiveservices.azure.com/.default";

const INSTALL_HINT: &str = "install the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli";

/// The Azure CLI provider.
pub struct AzureCli;

impl Provider for AzureCli {
    fn describe() -> PluginInfo {
        PluginInfo::new("azure", env!("CARGO_PKG_VERSION"), "Azure AD access tokens from `az account get-access-token` or a managed identity")
            .option("scope", "OAuth scope of the token (default https://cognitiveservices.azure.com/.default unless `resource` is set)", None, false)
            .option("resource", "Azure resource URI, for APIs that want a resource instead of a scope", None, false)
            .option("tenant", "Tenant ID or domain to get the token from", None, false)
            .option("subscription", "Subscription whose tenant issues the token", None, false)
            .option("method", "Where the token comes from: `az` (the Azure CLI), `managed-identity`, `workload-identity` or `client-secret`", Some("az"), false)
            .option("client_id", "Client ID: of a user-assigned managed identity, or the application of a workload identity or client secret", None, false)
            .option("connection", "Name of the stored client secret (method = \"client-secret\": `keyhelper login azure --connection NAME`)", Some("default"), false)
    }

    fn fetch(request: &Request) -> Result<Credential, ProviderError> {
        match request.option("method").unwrap_or("az") {
            "az" => fetch_from_az(request),
            "managed-identity" => managed_identity::fetch(request),
            "workload-identity" => entra::workload_identity(request),
            "client-secret" => entra::client_secret(request),
            other => Err(ProviderError::invalid_config(format!(
                "credential '{}' has method = \"{other}\", which the azure provider does not know",
                request.credential
            ))
            .hint("use method = \"az\", \"managed-identity\", \"workload-identity\" or \"client-secret\"")),
        }
    }
}

keyhelper_plugin::register_provider!(AzureCli);

/// A token from `az account get-access-token`.
fn fetch_from_az(request: &Request) -> Result<Credential, ProviderError> {
    let args = token_args(request)?;
    let output = args.run().map_err(|e| match e {
        HostError::NotInstalled(m) => ProviderError::unavailable(m).hint(INSTALL_HINT),
        other => other.into(),
    })?;
    if !output.success() {
        return Err(classify_failure(&output.stderr_text()));
    }
    parse_token(&output.stdout)
}

/// Builds `az account get-access-token …` for the request's options.
pub fn token_args(request: &Request) -> Result<Command, ProviderError> {
    let scope = request.option("scope");
    let resource = request.option("resource");
    if scope.is_some() && resource.is_some() {
        return Err(ProviderError::invalid_config(format!(
            "credential '{}' sets both `scope` and `resource`",
            request.credential
        ))
        .hint("keep one of them: `scope` for Azure AD v2 scopes, `resource` for v1 resources"));
    }
    let command = Command::new("az").arg("account").arg("get-access-token");
    let command = match resource {
        Some(resource) => command.arg("--resource").arg(resource),
        None => command.arg("--scope").arg(scope.unwrap_or(DEFAULT_SCOPE)),
    };
    Ok(command
        .opt("--tenant", request.option("tenant"))
        .opt("--subscription", request.option("subscription"))
        .arg("--output")
        .arg("json"))
}

/// Reads the token and its expiry from `az`'s JSON output. Never echoes the
/// output back: it contains the token.
pub fn parse_token(stdout: &[u8]) -> Result<Credential, ProviderError> {
    let malformed = |what: &str| {
        ProviderError::unavailable(format!("`az account get-access-token` printed output without {what}"))
            .hint("update the Azure CLI (`az upgrade`); keyhelper needs az 2.31 or later")
    };
    let json: Value = serde_json::from_slice(stdout).map_err(|_| malformed("valid JSON"))?;
    token_with_expiry(
        &json,
        "accessToken",
        &[("token_type", "tokenType"), ("tenant", "tenant"), ("subscription", "subscription")],
    )
    .map_err(|missing| malformed(&missing))
}

/// The token in `json[token_field]`, expiring at `expires_on` (epoch seconds,
/// a number or a string: `az` and the managed identity endpoints give both),
/// with the `(key, field)` pairs of `metadata` that are present; otherwise
/// what is missing.
fn token_with_expiry(
    json: &Value,
    token_field: &str,
    metadata: &[(&str, &str)],
) -> Result<Credential, String> {
    let token = json
        .get(token_field)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("an `{token_field}`"))?;
    let expires_on = match json.get("expires_on") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| "an `expires_on` time".to_string())?;
    let mut credential = Credential::new(token).expires_at(expires_on);
    for (key, field) in metadata {
        if let Some(value) = json.get(*field).and_then(Value::as_str) {
            credential = credential.meta(key, value);
        }
    }
    Ok(credential)
}

/// Maps `az`'s stderr to an error the host can act on.
pub fn classify_failure(stderr: &str) -> ProviderError {
    let message = first_error_line(stderr);
    let login_command = stderr.lines().map(str::trim).find(|l| l.starts_with("az login"));
    let needs_login = login_command.is_some()
        || stderr.contains("az login")
        || stderr.contains("AADSTS700082")
        || stderr.contains("AADSTS50173")
        || stderr.contains("InteractionRequired");
    if needs_login {
        let hint = match login_command {
            Some(cmd) => format!("run `{cmd}`"),
            None => "run `az login`".to_string(),
        };
        return ProviderError::needs_login(format!("the Azure CLI is not signed in: {message}")).hint(hint);
    }
    if stderr.contains("AADSTS65001") || stderr.contains("AADSTS50105") {
        return ProviderError::denied(format!("Azure AD refused the token: {message}"))
            .hint("ask an administrator to grant your account access to this scope");
    }
    if stderr.contains("AADSTS70011") || stderr.contains("AADSTS500011") || stderr.contains("is not a valid")
    {
        return ProviderError::invalid_config(format!("Azure AD rejected the request: {message}"))
            .hint("check the credential's `scope`, `resource` and `tenant`");
    }
    ProviderError::unavailable(format!("`az account get-access-token` failed: {message}"))
}

/// The first meaningful line of `az`'s stderr, without its `ERROR: ` prefix.
fn first_error_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with("WARNING:"))
        .map(|line| line.strip_prefix("ERROR:").unwrap_or(line).trim().to_string())
        .unwrap_or_else(|| "no error message".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhelper_plugin::ProviderError as E;

    fn request(options: &[(&str, &str)]) -> Request {
        Request {
            credential: "work".into(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            interactive: false,
        }
    }

    #[test]
    fn default_scope_and_json_output() {
        let cmd = token_args(&request(&[])).unwrap();
        assert_eq!(cmd.program, "az");
        assert_eq!(cmd.args, ["account", "get-access-token", "--scope", DEFAULT_SCOPE, "--output", "json"]);
    }

    #[test]
    fn resource_tenant_and_subscription_are_passed() {
        let cmd = token_args(&request(&[
            ("resource", "https://management.azure.com/"),
            ("tenant", "contoso.onmicrosoft.com"),
            ("subscription", "sub-1"),
        ]))
        .unwrap();
        assert_eq!(
            cmd.args,
            [
                "account",
                "get-access-token",
                "--resource",
                "https://management.azure.com/",
                "--tenant",
                "contoso.onmicrosoft.com",
                "--subscription",
                "sub-1",
                "--output",
                "json"
            ]
        );
    }

    #[test]
    fn scope_and_resource_together_are_a_config_error() {
        let err = token_args(&request(&[("scope", "a"), ("resource", "b")])).err().unwrap();
        assert!(matches!(err, E::InvalidConfig(_)));
    }

    #[test]
    fn parses_the_real_output_shape() {
        let out = br#"{"accessToken":"eyJ0eXAi.abc.def","expiresOn":"2026-11-24 13:41:07.000000","expires_on":1795527667,"subscription":"0b1f6471-1bf0-4dda-aec3-111122223333","tenant":"72f988bf-86f1-41af-91ab-2d7cd011db47","tokenType":"Bearer"}"#;
        let cred = parse_token(out).unwrap();
        assert_eq!(cred.secret, "eyJ0eXAi.abc.def");
        assert_eq!(cred.expires_at, Some(1795527667));
        assert!(cred.metadata.contains(&("token_type".into(), "Bearer".into())));
    }

    #[test]
    fn malformed_output_never_echoes_the_token() {
        for out in [&b"not json eyJsecret"[..], br#"{"accessToken":"eyJsecret"}"#, br#"{"expires_on":1}"#] {
            let err = parse_token(out).err().unwrap();
            assert!(matches!(err, E::Unavailable(_)));
            assert!(!err.details().message.contains("eyJsecret"));
        }
    }

    #[test]
    fn not_logged_in_needs_login() {
        let err = classify_failure("ERROR: Please run 'az login' to setup account.\n");
        assert!(matches!(err, E::NeedsLogin(_)));
        assert_eq!(err.details().hint.as_deref(), Some("run `az login`"));
    }

    #[test]
    fn interactive_reauth_quotes_az_suggested_command() {
        let stderr = "ERROR: AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication.\nInteractive authentication is needed. Please run:\naz login --scope https://cognitiveservices.azure.com/.default\n";
        let err = classify_failure(stderr);
        assert!(matches!(err, E::NeedsLogin(_)));
        assert_eq!(
            err.details().hint.as_deref(),
            Some("run `az login --scope https://cognitiveservices.azure.com/.default`")
        );
    }

    #[test]
    fn other_failures_are_unavailable_with_the_message() {
        let err =
            classify_failure("WARNING: something\nERROR: The command failed with an unexpected error.\n");
        assert!(matches!(err, E::Unavailable(_)));
        assert!(err.details().message.ends_with("The command failed with an unexpected error."));
    }
}
