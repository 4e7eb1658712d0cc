//! How `get` prints a credential for each kind of consumer. Only the secret
//! (or the consumer's JSON around it) goes to stdout.

use std::io::Write;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::credential::Credential;
use crate::failure::{ExitClass, Failure};
use crate::rfc3339;

/// How tools expect this provider's secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conventions {
    /// The environment variable clients read it from, e.g. `OPENAI_API_KEY`.
    pub env_var: Option<String>,
    /// The HTTP header it goes in, e.g. `Authorization`.
    pub header: Option<String>,
    /// What precedes it in the header, e.g. `Bearer `.
    #[serde(default)]
    pub header_prefix: String,
    /// A regular expression the secret's format matches, for reference.
    pub key_pattern: Option<String>,
}

/// Output formats of `keyhelper get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The secret alone (Claude Code `apiKeyHelper`, Codex).
    Raw,
    /// `{"token": …, "expires_at": …}` with expiry in unix seconds or null.
    Json,
    /// `{"token": …, "headers": {…}}` (Claude Desktop / Cowork `inferenceCredentialHelper`).
    Cowork,
    /// A JSON object of HTTP headers (Claude Code `headersHelper`, `otelHeadersHelper`).
    Headers,
    /// `NAME=value`, with the provider's environment variable.
    Env,
    /// A `client.authentication.k8s.io/v1` ExecCredential (kubectl exec plugins).
    K8s,
    /// AWS `credential_process` JSON (Version 1), for a secret holding AWS keys.
    Aws,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 7] =
        [Self::Raw, Self::Json, Self::Cowork, Self::Headers, Self::Env, Self::K8s, Self::Aws];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Json => "json",
            Self::Cowork => "cowork",
            Self::Headers => "headers",
            Self::Env => "env",
            Self::K8s => "k8s",
            Self::Aws => "aws",
        }
    }

    /// One line on who reads it, for `--help`.
    pub fn help(self) -> &'static str {
        match self {
            Self::Raw => "The secret alone (Claude Code apiKeyHelper, Codex)",
            Self::Json => "{\"token\": …, \"expires_at\": …} with expiry in unix seconds or null",
            Self::Cowork => {
                "{\"token\": …, \"headers\": {…}} (Claude Desktop / Cowork inferenceCredentialHelper)"
            }
            Self::Headers => "A JSON object of HTTP headers (Claude Code headersHelper, otelHeadersHelper)",
            Self::Env => "NAME=value, with the provider's environment variable",
            Self::K8s => "A client.authentication.k8s.io/v1 ExecCredential (kubectl exec plugins)",
            Self::Aws => "AWS credential_process JSON (Version 1), for a secret holding AWS keys",
        }
    }

    /// The format called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.name() == name)
    }
}

/// The headers a consumer sends: the provider's credential header (e.g.
/// `Authorization: Bearer …`) and any the provider added to the credential.
fn headers(credential: &Credential, conventions: &Conventions) -> Map<String, Value> {
    let name = conventions.header.clone().unwrap_or_else(|| "Authorization".to_string());
    let prefix = if conventions.header.is_none() { "Bearer " } else { conventions.header_prefix.as_str() };
    let mut headers: Map<String, Value> =
        credential.headers.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
    headers.insert(name, format!("{prefix}{}", credential.secret.expose()).into());
    headers
}

/// Renders `credential` in `format` using the provider's `conventions`;
/// `newline` ends it with `\n`. The text holds the secret: it is zeroed when
/// dropped.
pub fn render(
    credential: &Credential,
    format: Format,
    conventions: &Conventions,
    newline: bool,
) -> Result<Zeroizing<String>, Failure> {
    let secret = credential.secret.expose();
    let mut out = match format {
        Format::Raw => secret.to_string(),
        Format::Json => json!({ "token": secret, "expires_at": credential.expires_at }).to_string(),
        Format::Cowork => json!({ "token": secret, "headers": headers(credential, conventions) }).to_string(),
        Format::Headers => Value::Object(headers(credential, conventions)).to_string(),
        Format::Env => {
            let name = conventions.env_var.as_deref().ok_or_else(|| {
                Failure::new(ExitClass::Usage, "this provider names no environment variable for its secret")
                    .hint("use `keyhelper run --env NAME=credential` or `export NAME=$(keyhelper get …)`")
            })?;
            refuse_line_breaks(secret, "--format env")?;
            format!("{name}={secret}")
        }
        Format::K8s => {
            let mut status = Map::new();
            status.insert("token".into(), secret.into());
            if let Some(expires_at) = credential.expires_at {
                status.insert("expirationTimestamp".into(), rfc3339::format(expires_at).into());
            }
            json!({
                "apiVersion": "client.authentication.k8s.io/v1",
                "kind": "ExecCredential",
                "status": status,
            })
            .to_string()
        }
        Format::Aws => aws_credential_process(credential)?,
    };
    if newline {
        out.push('\n');
    }
    Ok(Zeroizing::new(out))
}

/// Refuses a secret holding CR, LF or NUL for a line-based output (`what`),
/// where it would end its line and inject others (`host=` into git's
/// credential protocol, a second variable into `--format env`). JSON and
/// quoted outputs carry such secrets safely. Never quotes the secret.
pub fn refuse_line_breaks(secret: &str, what: &str) -> Result<(), Failure> {
    if !secret.contains(['\r', '\n', '\0']) {
        return Ok(());
    }
    Err(Failure::new(
        ExitClass::Usage,
        format!("the secret holds a line break or NUL, which {what} cannot carry without injecting lines"),
    )
    .hint("use a JSON output (`--format json`, the docker helper) or `keyhelper run --env`"))
}

/// `credential_process` output from a secret that is a JSON object with
/// `AccessKeyId` and `SecretAccessKey` (and optionally `SessionToken`,
/// `Expiration`, `AccountId`). Never quotes the secret in an error.
fn aws_credential_process(credential: &Credential) -> Result<String, Failure> {
    let not_keys = |what: &str| {
        Failure::new(ExitClass::Usage, format!("--format aws needs a secret holding AWS keys, but {what}"))
            .hint("store a JSON object with AccessKeyId and SecretAccessKey (and SessionToken, Expiration)")
    };
    let object: Map<String, Value> = serde_json::from_str(credential.secret.expose())
        .map_err(|_| not_keys("this secret is not a JSON object"))?;
    let field = |name: &str| object.get(name).and_then(Value::as_str);
    let (Some(access_key), Some(secret_key)) = (field("AccessKeyId"), field("SecretAccessKey")) else {
        return Err(not_keys("this secret lacks AccessKeyId or SecretAccessKey"));
    };
    let mut out = Map::new();
    out.insert("Version".into(), 1.into());
    out.insert("AccessKeyId".into(), access_key.into());
    out.insert("SecretAccessKey".into(), secret_key.into());
    for optional in ["SessionToken", "AccountId"] {
        if let Some(value) = field(optional) {
            out.insert(optional.into(), value.into());
        }
    }
    let expiration = field("Expiration").map(str::to_string).or(credential.expires_at.map(rfc3339::format));
    if let Some(expiration) = expiration {
        out.insert("Expiration".into(), expiration.into());
    }
    Ok(Value::Object(out).to_string())
}

/// Writes the rendered credential to stdout, straight to the descriptor:
/// std's stdout buffer would keep a copy of it.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.flush()?;
    crate::platform::write_to_stdout(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::Secret;

    #[test]
    fn formats_parse_their_names() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.name()), Some(format));
        }
        assert_eq!(Format::parse("yaml"), None);
    }

    fn credential(secret: &str, expires_at: Option<i64>) -> Credential {
        Credential { secret: Secret::new(secret), expires_at, metadata: vec![], headers: vec![] }
    }

    fn openai() -> Conventions {
        Conventions {
            env_var: Some("OPENAI_API_KEY".into()),
            header: Some("Authorization".into()),
            header_prefix: "Bearer ".into(),
            key_pattern: None,
        }
    }

    fn render_ok(c: &Credential, format: Format, conventions: &Conventions) -> String {
        render(c, format, conventions, false).unwrap().to_string()
    }

    #[test]
    fn raw_and_json() {
        let c = credential("sk-abc", Some(1795527667));
        assert_eq!(render(&c, Format::Raw, &openai(), true).unwrap().as_str(), "sk-abc\n");
        assert_eq!(render_ok(&c, Format::Raw, &openai()), "sk-abc");
        assert_eq!(render_ok(&c, Format::Json, &openai()), r#"{"expires_at":1795527667,"token":"sk-abc"}"#);
        assert_eq!(
            render_ok(&credential("x", None), Format::Json, &openai()),
            r#"{"expires_at":null,"token":"x"}"#
        );
    }

    #[test]
    fn headers_cowork_and_env_follow_the_manifest() {
        let c = credential("sk-abc", None);
        assert_eq!(render_ok(&c, Format::Headers, &openai()), r#"{"Authorization":"Bearer sk-abc"}"#);
        assert_eq!(
            render_ok(&c, Format::Cowork, &openai()),
            r#"{"headers":{"Authorization":"Bearer sk-abc"},"token":"sk-abc"}"#
        );
        assert_eq!(render_ok(&c, Format::Env, &openai()), "OPENAI_API_KEY=sk-abc");
        let azure_key =
            Conventions { header: Some("api-key".into()), header_prefix: String::new(), ..openai() };
        assert_eq!(render_ok(&c, Format::Headers, &azure_key), r#"{"api-key":"sk-abc"}"#);
        assert!(render(&c, Format::Env, &Conventions::default(), false).is_err());
    }

    #[test]
    fn line_based_output_refuses_line_breaks_and_never_echoes_them() {
        for bad in ["sk-abc\nEVIL=1", "sk-abc\rx", "sk\0abc"] {
            let err = render(&credential(bad, None), Format::Env, &openai(), false).unwrap_err();
            assert_eq!(err.class, ExitClass::Usage);
            assert!(!err.to_string().contains("sk-abc") && !err.to_string().contains("EVIL"), "{err}");
            let json: Value =
                serde_json::from_str(&render_ok(&credential(bad, None), Format::Json, &openai())).unwrap();
            assert_eq!(json["token"], bad, "JSON keeps a multi-line secret intact");
        }
        assert!(refuse_line_breaks("sk-abc", "git").is_ok());
    }

    #[test]
    fn k8s_exec_credential_has_the_v1_required_fields() {
        let out: Value =
            serde_json::from_str(&render_ok(&credential("tok", Some(1795527667)), Format::K8s, &openai()))
                .unwrap();
        assert_eq!(out["apiVersion"], "client.authentication.k8s.io/v1");
        assert_eq!(out["kind"], "ExecCredential");
        assert_eq!(out["status"]["token"], "tok");
        assert_eq!(out["status"]["expirationTimestamp"], "2026-11-24T13:41:07Z");
    }

    #[test]
    fn aws_needs_keys_and_never_echoes_the_secret() {
        let keys = credential(
            r#"{"AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"wJalr","SessionToken":"tok"}"#,
            Some(1795527667),
        );
        let out: Value = serde_json::from_str(&render_ok(&keys, Format::Aws, &openai())).unwrap();
        assert_eq!(out["Version"], 1);
        assert_eq!(out["AccessKeyId"], "AKIAEXAMPLE");
        assert_eq!(out["SessionToken"], "tok");
        assert_eq!(out["Expiration"], "2026-11-24T13:41:07Z");
        for bad in ["sk-not-json", r#"{"AccessKeyId":"AKIA"}"#] {
            let err = render(&credential(bad, None), Format::Aws, &openai(), false).unwrap_err();
            assert!(!err.to_string().contains(bad), "{err}");
        }
    }
}
