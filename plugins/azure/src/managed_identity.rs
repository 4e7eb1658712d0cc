//! Tokens from an Azure managed identity, without `az`: the App Service /
//! Container Apps endpoint when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are
//! set, otherwise the VM's instance metadata service (IMDS), at
//! `IMDS_ENDPOINT` when set (as Azure's SDKs honour it) or its fixed
//! link-local address. Nothing here runs unless a credential chooses
//! `method = "managed-identity"`.

use keyhelper_plugin::{Credential, HostError, HttpRequest, ProviderError, Request, env_var};
use serde_json::Value;

/// IMDS's fixed address on every Azure VM.
pub const IMDS: &str = "http://169.254.169.254";

/// The resource Azure OpenAI's tokens are for.
const DEFAULT_RESOURCE: &str = "https://cognitiveservices.azure.com";

const WHERE: &str = "run keyhelper where a managed identity is assigned (an Azure VM, App Service or Container Apps), or use method = \"az\"";

/// Gets a token for the request's resource from the managed identity.
pub fn fetch(request: &Request) -> Result<Credential, ProviderError> {
    let http = token_request(request)?;
    let response = http.send().map_err(|e| match e {
        HostError::Failed(m) | HostError::TimedOut(m) => {
            ProviderError::unavailable(format!("no managed identity endpoint answered: {m}")).hint(WHERE)
        }
        other => other.into(),
    })?;
    parse_response(response.status, &response.body, request.option("client_id"))
}

/// The request for a token: App Service's endpoint if the environment names
/// one, else IMDS.
pub fn token_request(request: &Request) -> Result<HttpRequest, ProviderError> {
    let resource = percent_encode(&resource(request)?);
    let client_id = request
        .option("client_id")
        .map(|id| format!("&client_id={}", percent_encode(id)))
        .unwrap_or_default();
    if let (Some(endpoint), Some(header)) = (env_var("IDENTITY_ENDPOINT")?, env_var("IDENTITY_HEADER")?) {
        return Ok(HttpRequest::get(format!(
            "{endpoint}?resource={resource}&api-version=2019-08-01{client_id}"
        ))
        .header("X-IDENTITY-HEADER", header));
    }
    let base = env_var("IMDS_ENDPOINT")?.unwrap_or_else(|| IMDS.to_string());
    Ok(HttpRequest::get(format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}{client_id}",
        base.trim_end_matches('/')
    ))
    .header("Metadata", "true"))
}

/// The resource to ask for: `resource`, or `scope` without `/.default`.
fn resource(request: &Request) -> Result<String, ProviderError> {
    match (request.option("resource"), request.option("scope")) {
        (Some(_), Some(_)) => Err(ProviderError::invalid_config(format!(
            "credential '{}' sets both `scope` and `resource`",
            request.credential
        ))
        .hint("keep one of them")),
        (Some(resource), None) => Ok(resource.to_string()),
        (None, Some(scope)) => Ok(scope.trim_end_matches("/.default").to_string()),
        (None, None) => Ok(DEFAULT_RESOURCE.to_string()),
    }
}

/// Reads the token from a managed identity endpoint's answer. Never echoes
/// the body back: on success it holds the token.
pub fn parse_response(
    status: u16,
    body: &[u8],
    client_id: Option<&str>,
) -> Result<Credential, ProviderError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if status != 200 {
        let said = json
            .as_ref()
            .and_then(|j| j.get("error_description").or_else(|| j.get("message")).or_else(|| j.get("error")))
            .and_then(Value::as_str)
            .unwrap_or("no explanation")
            .to_string();
        return Err(match status {
            400 | 404 if said.contains("dentity not found") || said.contains("No managed identity") => {
                let which = client_id.map_or("no managed identity is assigned here".to_string(), |id| {
                    format!("no managed identity with client ID {id} is assigned here")
                });
                ProviderError::invalid_config(format!(
                    "the managed identity endpoint answered {status}: {which}"
                ))
                .hint(
                    "assign a managed identity to this VM or app, or set `client_id` to a user-assigned one",
                )
            }
            401 | 403 => ProviderError::denied(format!("the managed identity endpoint refused: {said}")),
            429 => {
                ProviderError::rate_limited(format!("the managed identity endpoint is rate limiting: {said}"))
            }
            _ => {
                ProviderError::unavailable(format!("the managed identity endpoint answered {status}: {said}"))
            }
        });
    }
    let malformed = |what: &str| {
        ProviderError::unavailable(format!("the managed identity endpoint answered without {what}"))
    };
    let json = json.ok_or_else(|| malformed("valid JSON"))?;
    let metadata = [("token_type", "token_type"), ("resource", "resource"), ("client_id", "client_id")];
    super::token_with_expiry(&json, "access_token", &metadata).map_err(|missing| malformed(&missing))
}

/// `text` with everything but RFC 3986's unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_resources_for_the_query() {
        assert_eq!(
            percent_encode("https://cognitiveservices.azure.com"),
            "https%3A%2F%2Fcognitiveservices.azure.com"
        );
    }

    #[test]
    fn parses_the_endpoints_answer() {
        let body = br#"{"access_token":"eyJ0eXAi.mi.sig","expires_on":"1795527667","resource":"https://cognitiveservices.azure.com","token_type":"Bearer","client_id":"11111111-2222-3333-4444-555555555555"}"#;
        let credential = parse_response(200, body, None).unwrap();
        assert_eq!(credential.secret, "eyJ0eXAi.mi.sig");
        assert_eq!(credential.expires_at, Some(1795527667));
        assert!(credential.metadata.contains(&("token_type".into(), "Bearer".into())));
    }

    #[test]
    fn explains_a_missing_identity_and_never_echoes_a_token() {
        let body = br#"{"error":"invalid_request","error_description":"Identity not found"}"#;
        let error = parse_response(400, body, Some("abc")).err().unwrap();
        assert!(matches!(error, ProviderError::InvalidConfig(_)));
        assert!(error.details().message.contains("client ID abc"), "{}", error.details().message);
        let error = parse_response(200, br#"{"access_token":"eyJsecret"}"#, None).err().unwrap();
        assert!(!error.details().message.contains("eyJsecret"));
    }
}
