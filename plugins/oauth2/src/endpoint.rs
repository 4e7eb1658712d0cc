//! Where the token endpoint is: `token_url`, or the `token_endpoint` of the
//! issuer's OpenID discovery document, which must be on the issuer's host
//! (the manifest grants requests only there).

use keyhelper_plugin::oauth2::is_secure_url;
use keyhelper_plugin::{HostError, HttpRequest, ProviderError, Request};
use serde_json::Value;

/// The token endpoint of the request's identity provider.
pub fn token_url(request: &Request) -> Result<String, ProviderError> {
    if let Some(url) = request.option("token_url") {
        secure(request, "token_url", url)?;
        return Ok(url.to_string());
    }
    let Some(issuer) = request.option("issuer") else {
        return Err(ProviderError::invalid_config(format!(
            "credential '{}' sets neither `issuer` nor `token_url`",
            request.credential
        ))
        .hint("add `issuer = \"https://…\"` (OpenID discovery) or `token_url = \"https://…/token\"`"));
    };
    secure(request, "issuer", issuer)?;
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let check = "check `issuer`, or set `token_url` instead";
    let response =
        HttpRequest::get(url.clone()).header("Accept", "application/json").send().map_err(|e| match e {
            HostError::Failed(m) | HostError::TimedOut(m) => {
                ProviderError::unavailable(format!("OpenID discovery at {url} failed: {m}")).hint(check)
            }
            other => other.into(),
        })?;
    if response.status != 200 {
        return Err(ProviderError::unavailable(format!(
            "OpenID discovery at {url} answered {}",
            response.status
        ))
        .hint(check));
    }
    let endpoint = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|json| json.get("token_endpoint")?.as_str().map(str::to_string))
        .ok_or_else(|| {
            ProviderError::unavailable(format!("the discovery document at {url} names no token_endpoint"))
                .hint(check)
        })?;
    if origin(&endpoint) != origin(issuer) {
        return Err(ProviderError::invalid_config(format!(
            "the token endpoint {endpoint} is not on the issuer's host"
        ))
        .hint(format!(
            "if you trust it, set `token_url = \"{endpoint}\"` in [credentials.{}]",
            request.credential
        )));
    }
    Ok(endpoint)
}

/// `Ok` for an https URL, or plain http to a loopback address.
fn secure(request: &Request, option: &str, url: &str) -> Result<(), ProviderError> {
    if is_secure_url(url) {
        Ok(())
    } else {
        Err(ProviderError::invalid_config(format!(
            "`{option}` of credential '{}' is not https: secrets would travel in the clear",
            request.credential
        ))
        .hint("use an https:// URL (plain http only for a loopback address)"))
    }
}

/// `scheme://authority` of a URL, lowercased.
fn origin(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else { return lower };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(options: &[(&str, &str)]) -> Request {
        Request {
            credential: "gateway".into(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            interactive: false,
        }
    }

    #[test]
    fn an_explicit_token_url_needs_no_discovery() {
        let r = request(&[("token_url", "https://idp.example.com/oauth/token")]);
        assert_eq!(token_url(&r).unwrap(), "https://idp.example.com/oauth/token");
        assert!(matches!(token_url(&request(&[])), Err(ProviderError::InvalidConfig(_))));
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(origin("https://IdP.example.com/realms/x"), "https://idp.example.com");
        assert_ne!(origin("https://idp.example.com:8443/t"), origin("https://idp.example.com/t"));
    }
}
