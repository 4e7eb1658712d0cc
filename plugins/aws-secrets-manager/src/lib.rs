//! Secrets from AWS Secrets Manager through the AWS CLI
//! (`aws secretsmanager get-secret-value`).
//!
//! The whole `SecretString` (or the decoded `SecretBinary`) is the secret, or one
//! field of it when `json_key` is set. `secret_id` also accepts the
//! `secret-id:json-key:version-stage:version-id` shorthand used by ECS and
//! CodeBuild.

use base64::Engine as _;
use keyhelper_plugin::{Command, Credential, HostError, PluginInfo, Provider, ProviderError, Request};
use serde_json::Value;

const INSTALL_HINT: &str =
    "install the AWS CLI: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html";

/// The AWS Secrets Manager provider.
pub struct AwsSecretsManager;

impl Provider for AwsSecretsManager {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "aws-secrets-manager",
            env!("CARGO_PKG_VERSION"),
            "Secrets from AWS Secrets Manager via the aws CLI",
        )
        .option(
            "secret_id",
            "Secret name or ARN; also secret-id:json-key:version-stage:version-id",
            None,
            true,
        )
        .option("json_key", "Hand out this field of a JSON secret instead of the whole secret", None, false)
        .option("version_stage", "Version stage, e.g. AWSCURRENT or AWSPREVIOUS", None, false)
        .option("version_id", "Version ID", None, false)
        .option("region", "AWS region (default: the CLI's configuration)", None, false)
        .option("profile", "AWS CLI profile", None, false)
        .option(
            "endpoint_url",
            "Endpoint URL, for VPC endpoints or a local test server",
            None,
            false,
        )
    }

    fn fetch(request: &Request) -> Result<Credential, ProviderError> {
        let target = SecretTarget::from_request(request)?;
        let output = target.command(request).run().map_err(|e| match e {
            HostError::NotInstalled(m) => ProviderError::unavailable(m).hint(INSTALL_HINT),
            other => other.into(),
        })?;
        if !output.success() {
            return Err(classify_failure(
                &output.stderr_text(),
                &target.secret_id,
                request.option("profile"),
            ));
        }
        parse_secret(&output.stdout, target.json_key.as_deref())
    }
}

keyhelper_plugin::register_provider!(AwsSecretsManager);

/// Which secret, version and field to read.
#[derive(Debug, PartialEq, Eq)]
pub struct SecretTarget {
    /// Name or ARN.
    pub secret_id: String,
    /// Field of a JSON secret.
    pub json_key: Option<String>,
    /// Version stage.
    pub version_stage: Option<String>,
    /// Version ID.
    pub version_id: Option<String>,
}

impl SecretTarget {
    /// Reads the options, expanding the `id:json-key:stage:version` shorthand.
    /// Explicit options win over shorthand parts.
    pub fn from_request(request: &Request) -> Result<Self, ProviderError> {
        let raw = request.required("secret_id")?;
        // An ARN has 7 colon-separated parts before any shorthand; a name has 1.
        let fixed = if raw.starts_with("arn:") { 7 } else { 1 };
        let parts: Vec<&str> = raw.split(':').collect();
        if parts.len() < fixed || parts.len() > fixed + 3 {
            return Err(ProviderError::invalid_config(format!(
                "secret_id `{raw}` is not a secret name, an ARN, or name:json-key:version-stage:version-id"
            ))
            .hint("secret names cannot contain `:`; check the ARN"));
        }
        let extra = |i: usize| parts.get(fixed + i).filter(|s| !s.is_empty()).map(|s| s.to_string());
        let pick = |name: &str, i: usize| request.option(name).map(str::to_string).or_else(|| extra(i));
        Ok(Self {
            secret_id: parts[..fixed].join(":"),
            json_key: pick("json_key", 0),
            version_stage: pick("version_stage", 1),
            version_id: pick("version_id", 2),
        })
    }

    /// `aws secretsmanager get-secret-value …` for this target.
    pub fn command(&self, request: &Request) -> Command {
        Command::new("aws")
            .arg("secretsmanager")
            .arg("get-secret-value")
            .arg("--secret-id")
            .arg(&self.secret_id)
            .opt("--version-stage", self.version_stage.as_deref())
            .opt("--version-id", self.version_id.as_deref())
            .opt("--region", request.option("region"))
            .opt("--profile", request.option("profile"))
            .opt("--endpoint-url", request.option("endpoint_url"))
            .arg("--output")
            .arg("json")
    }
}

/// Reads the secret from the CLI's JSON, picking `json_key` when given. Never
/// echoes secret content in an error.
pub fn parse_secret(stdout: &[u8], json_key: Option<&str>) -> Result<Credential, ProviderError> {
    let malformed = || {
        ProviderError::unavailable(
            "`aws secretsmanager get-secret-value` printed output keyhelper could not read (expected JSON with SecretString or SecretBinary)",
        )
    };
    let json: Value = serde_json::from_slice(stdout).map_err(|_| malformed())?;
    let text = match (
        json.get("SecretString").and_then(Value::as_str),
        json.get("SecretBinary").and_then(Value::as_str),
    ) {
        (Some(text), _) => text.to_string(),
        (None, Some(b64)) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| malformed())?;
            String::from_utf8(bytes).map_err(|_| {
                ProviderError::invalid_config("the secret's SecretBinary is not UTF-8 text")
                    .hint("keyhelper hands out text secrets; store it as SecretString or as base64 text")
            })?
        }
        (None, None) => return Err(malformed()),
    };
    let secret = match json_key {
        None => text,
        Some(key) => pick_json_key(&text, key)?,
    };
    let mut credential = Credential::new(secret);
    for (meta, field) in [("arn", "ARN"), ("name", "Name"), ("version_id", "VersionId")] {
        if let Some(value) = json.get(field).and_then(Value::as_str) {
            credential = credential.meta(meta, value);
        }
    }
    Ok(credential)
}

fn pick_json_key(text: &str, key: &str) -> Result<String, ProviderError> {
    let object: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|_| {
        ProviderError::invalid_config(format!("json_key `{key}` is set but the secret is not a JSON object"))
            .hint("remove json_key to use the whole secret")
    })?;
    match object.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => {
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            Err(ProviderError::not_found(format!(
                "the secret has no key `{key}` (its keys: {})",
                keys.join(", ")
            )))
        }
        Some(other) => Ok(other.to_string()),
    }
}

/// Maps the CLI's stderr (`An error occurred (Code) when calling …`) to an error kind.
pub fn classify_failure(stderr: &str, secret_id: &str, profile: Option<&str>) -> ProviderError {
    let message =
        stderr.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no error message").to_string();
    let code = stderr
        .split_once("An error occurred (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(code, _)| code);
    let sso_login = match profile {
        Some(p) => format!("run `aws sso login --profile {p}`"),
        None => "run `aws sso login`".to_string(),
    };
    let sso_expired = stderr.contains("aws sso login")
        || stderr.contains("Error when retrieving token from sso")
        || stderr.contains("SSO session associated with this profile has expired");
    if sso_expired {
        return ProviderError::needs_login(format!("the AWS SSO session has expired: {message}"))
            .hint(sso_login);
    }
    match code {
        Some("ResourceNotFoundException") => {
            ProviderError::not_found(format!("AWS Secrets Manager has no secret `{secret_id}`"))
                .hint("check secret_id, region and profile (`aws secretsmanager list-secrets`)")
        }
        Some("AccessDeniedException") | Some("AccessDenied") => {
            ProviderError::denied(format!("AWS denied reading `{secret_id}`: {message}"))
                .hint("grant secretsmanager:GetSecretValue (and kms:Decrypt) on the secret")
        }
        Some("ExpiredTokenException")
        | Some("UnrecognizedClientException")
        | Some("InvalidClientTokenId") => {
            ProviderError::needs_login(format!("the AWS credentials are expired or invalid: {message}"))
                .hint(format!("refresh your AWS credentials ({sso_login} for SSO profiles)"))
        }
        Some("ThrottlingException") | Some("TooManyRequestsException") => {
            ProviderError::rate_limited(format!("AWS is throttling requests: {message}"))
        }
        Some("DecryptionFailure") => {
            ProviderError::denied(format!("AWS could not decrypt `{secret_id}`: {message}"))
                .hint("grant kms:Decrypt on the secret's KMS key")
        }
        Some("InvalidRequestException") | Some("InvalidParameterException") => {
            ProviderError::invalid_config(format!("AWS rejected the request: {message}"))
                .hint("check version_stage and version_id, and that the secret is not scheduled for deletion")
        }
        _ if stderr.contains("Unable to locate credentials") => {
            ProviderError::needs_login("the AWS CLI has no credentials")
                .hint("run `aws configure` or `aws sso login`, or set AWS_PROFILE")
        }
        _ if stderr.contains("Could not connect to the endpoint URL")
            || stderr.contains("Connect timeout") =>
        {
            ProviderError::unavailable(format!("AWS is unreachable: {message}"))
        }
        _ => ProviderError::unavailable(format!("`aws secretsmanager get-secret-value` failed: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhelper_plugin::ProviderError as E;

    fn request(options: &[(&str, &str)]) -> Request {
        Request {
            credential: "prod".into(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            interactive: false,
        }
    }

    #[test]
    fn shorthand_expands_for_names_and_arns() {
        let t = SecretTarget::from_request(&request(&[("secret_id", "openai-key:api_key:AWSPREVIOUS:")]))
            .unwrap();
        assert_eq!(
            t,
            SecretTarget {
                secret_id: "openai-key".into(),
                json_key: Some("api_key".into()),
                version_stage: Some("AWSPREVIOUS".into()),
                version_id: None
            }
        );
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-key-feJBGc";
        let t =
            SecretTarget::from_request(&request(&[("secret_id", &format!("{arn}:api_key::v1"))])).unwrap();
        assert_eq!(t.secret_id, arn);
        assert_eq!(
            (t.json_key.as_deref(), t.version_stage.as_deref(), t.version_id.as_deref()),
            (Some("api_key"), None, Some("v1"))
        );
        let t = SecretTarget::from_request(&request(&[("secret_id", arn)])).unwrap();
        assert_eq!((t.secret_id.as_str(), t.json_key), (arn, None));
    }

    #[test]
    fn explicit_options_win_over_shorthand() {
        let t = SecretTarget::from_request(&request(&[("secret_id", "k:a"), ("json_key", "b")])).unwrap();
        assert_eq!(t.json_key.as_deref(), Some("b"));
    }

    #[test]
    fn command_has_every_option() {
        let req = request(&[
            ("secret_id", "k"),
            ("region", "eu-west-1"),
            ("profile", "dev"),
            ("endpoint_url", "http://127.0.0.1:5000"),
            ("version_stage", "AWSCURRENT"),
        ]);
        let cmd = SecretTarget::from_request(&req).unwrap().command(&req);
        assert_eq!(
            cmd.args,
            [
                "secretsmanager",
                "get-secret-value",
                "--secret-id",
                "k",
                "--version-stage",
                "AWSCURRENT",
                "--region",
                "eu-west-1",
                "--profile",
                "dev",
                "--endpoint-url",
                "http://127.0.0.1:5000",
                "--output",
                "json"
            ]
        );
    }

    #[test]
    fn reads_string_json_key_and_binary() {
        let out = br#"{"ARN":"arn:x","Name":"openai-key","VersionId":"v","SecretString":"{\"api_key\":\"sk-1\",\"n\":3}","VersionStages":["AWSCURRENT"]}"#;
        assert_eq!(parse_secret(out, None).unwrap().secret, r#"{"api_key":"sk-1","n":3}"#);
        assert_eq!(parse_secret(out, Some("api_key")).unwrap().secret, "sk-1");
        assert_eq!(parse_secret(out, Some("n")).unwrap().secret, "3");
        let missing = parse_secret(out, Some("nope")).err().unwrap();
        assert!(matches!(missing, E::NotFound(_)));
        assert!(!missing.details().message.contains("sk-1"));
        let bin = br#"{"Name":"b","SecretBinary":"c2stYmluYXJ5"}"#;
        assert_eq!(parse_secret(bin, None).unwrap().secret, "sk-binary");
    }

    #[test]
    fn maps_cli_errors() {
        let not_found = "\nAn error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: Secrets Manager can't find the specified secret.\n";
        assert!(matches!(classify_failure(not_found, "x", None), E::NotFound(_)));
        let denied = "An error occurred (AccessDeniedException) when calling the GetSecretValue operation: User is not authorized";
        assert!(matches!(classify_failure(denied, "x", None), E::Denied(_)));
        let sso = "Error when retrieving token from sso: Token has expired and refresh failed";
        let err = classify_failure(sso, "x", Some("dev"));
        assert!(matches!(err, E::NeedsLogin(_)));
        assert_eq!(err.details().hint.as_deref(), Some("run `aws sso login --profile dev`"));
        assert!(matches!(
            classify_failure(
                "Unable to locate credentials. You can configure credentials by running \"aws configure\".",
                "x",
                None
            ),
            E::NeedsLogin(_)
        ));
    }
}
