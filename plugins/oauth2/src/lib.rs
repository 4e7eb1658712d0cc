//! Access tokens from any OAuth 2.0 / OpenID Connect identity provider, for
//! gateways (LiteLLM, an internal API) that take an IdP token.
//!
//! The token endpoint is `token_url`, or found through OpenID discovery at
//! `issuer` (and then confined to the issuer's host). The grant follows from
//! what the connection holds, in this order:
//! 1. a refresh token (from `keyhelper login oauth2`, a browser or device
//!    sign-in): the refresh grant; a rotated refresh token is saved back;
//! 2. `client_assertion_file` (a Kubernetes or GitHub workload token): client
//!    credentials with that JWT as the client assertion (RFC 7523);
//! 3. a client secret (`keyhelper login oauth2 --stdin`): client credentials.

mod endpoint;

use keyhelper_plugin::oauth2::{ClientAuth, TokenError, TokenRequest};
use keyhelper_plugin::{
    Credential, LogLevel, PluginInfo, Provider, ProviderError, Request, Validation, log, named_secret,
    read_file, save_secret, stored_secret,
};

/// The name a connection's refresh token is stored under.
pub const REFRESH_TOKEN: &str = "refresh_token";

/// The OAuth 2.0 provider.
pub struct OAuth2;

impl Provider for OAuth2 {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "oauth2",
            env!("CARGO_PKG_VERSION"),
            "Access tokens from an OAuth 2.0 / OpenID Connect identity provider",
        )
        .option(
            "issuer",
            "The issuer URL; its OpenID discovery document names the token endpoint",
            None,
            false,
        )
        .option(
            "token_url",
            "The token endpoint, when there is no discovery (or it is on another host)",
            None,
            false,
        )
        .option("client_id", "The client (application) ID registered with the identity provider", None, true)
        .option("scope", "Scopes to ask for, space-separated", None, false)
        .option("audience", "The audience of the token, for identity providers that take one", None, false)
        .option("resource", "The resource indicator (RFC 8707) of the token", None, false)
        .option(
            "client_assertion_file",
            "A file holding a JWT that proves the client (a workload identity token)",
            None,
            false,
        )
        .option("client_auth", "How a stored client secret is sent: basic or post", Some("basic"), false)
        .option(
            "connection",
            "Name of the stored client secret and refresh token (`keyhelper login oauth2 --connection NAME`)",
            Some("default"),
            false,
        )
        .option(
            "redirect_port",
            "Loopback port for `keyhelper login oauth2` (0: any free port)",
            Some("0"),
            false,
        )
    }

    fn validate(_: &Request, secret: &str, _: bool) -> Result<Validation, ProviderError> {
        Ok(if secret.is_empty() || secret.contains(['\n', '\r']) {
            Validation::rejected("a client secret or refresh token is one non-empty line")
        } else {
            Validation::valid("stored as given; the identity provider checks it at the next get")
        })
    }

    fn fetch(request: &Request) -> Result<Credential, ProviderError> {
        let settings = Settings::of(request)?;
        let url = endpoint::token_url(request)?;
        let secret = stored_secret(settings.connection)?;
        if let Some(refresh_token) = named_secret(settings.connection, REFRESH_TOKEN)? {
            return refresh(&settings, &url, secret.as_deref(), &refresh_token);
        }
        if let Some(path) = request.option("client_assertion_file") {
            let bytes = read_file(path)?;
            let assertion = String::from_utf8_lossy(&bytes).trim().to_string();
            if assertion.is_empty() {
                return Err(ProviderError::unavailable(format!("the client assertion file {path} is empty"))
                    .hint("check that the workload identity token is mounted there"));
            }
            let auth = ClientAuth::Assertion { client_id: Some(settings.client_id), assertion: &assertion };
            return client_credentials(&settings, &url, auth)
                .map_err(|e| settings.explain(e, Grant::Assertion));
        }
        let Some(secret) = secret else {
            return Err(ProviderError::needs_login(format!(
                "no client secret or refresh token is stored for oauth2 connection '{}'",
                settings.connection
            ))
            .hint(format!(
                "sign in with `{}`, or store the client secret with `{} --stdin`",
                settings.login(),
                settings.login()
            )));
        };
        let auth = settings.secret_auth(&secret)?;
        client_credentials(&settings, &url, auth).map_err(|e| settings.explain(e, Grant::ClientSecret))
    }
}

keyhelper_plugin::register_provider!(OAuth2);

/// The options every grant uses.
struct Settings<'a> {
    request: &'a Request,
    client_id: &'a str,
    connection: &'a str,
}

/// Which grant failed, for the fix an error names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    ClientSecret,
    Assertion,
    Refresh,
}

impl<'a> Settings<'a> {
    fn of(request: &'a Request) -> Result<Self, ProviderError> {
        Ok(Self {
            request,
            client_id: request.required("client_id")?,
            connection: request.option("connection").unwrap_or("default"),
        })
    }

    /// The `keyhelper login` command for this connection.
    fn login(&self) -> String {
        match self.connection {
            "default" => "keyhelper login oauth2".to_string(),
            other => format!("keyhelper login oauth2 --connection {other}"),
        }
    }

    /// The client's authentication with a stored secret.
    fn secret_auth<'s>(&'s self, secret: &'s str) -> Result<ClientAuth<'s>, ProviderError> {
        let client_id = self.client_id;
        match self.request.option("client_auth").unwrap_or("basic") {
            "basic" => Ok(ClientAuth::Basic { client_id, secret }),
            "post" => Ok(ClientAuth::Post { client_id, secret }),
            other => Err(ProviderError::invalid_config(format!(
                "credential '{}' has client_auth = \"{other}\"",
                self.request.credential
            ))
            .hint("use client_auth = \"basic\" (HTTP Basic) or \"post\" (in the form)")),
        }
    }

    /// Adds `scope`, `audience` and `resource` when set.
    fn with_scope(&self, request: TokenRequest) -> TokenRequest {
        request
            .param_opt("scope", self.request.option("scope"))
            .param_opt("audience", self.request.option("audience"))
            .param_opt("resource", self.request.option("resource"))
    }

    /// A refused token request as a one-line error naming the fix.
    fn explain(&self, error: TokenError, grant: Grant) -> ProviderError {
        let TokenError::Refused { error: code, .. } = &error else { return error.into() };
        let said = error.said();
        let client = self.client_id;
        match (code.as_str(), grant) {
            ("invalid_client", Grant::Assertion) => ProviderError::denied(format!(
                "the identity provider refused the client assertion of '{client}': {said}"
            ))
            .hint("check that it trusts the token in client_assertion_file (issuer, subject, audience)"),
            ("invalid_client" | "unauthorized", _) => {
                ProviderError::needs_login(format!("the identity provider refused client '{client}': {said}"))
                    .hint(format!("store the right client secret: `{} --stdin --force`", self.login()))
            }
            ("invalid_grant", Grant::Refresh) => ProviderError::needs_login(format!(
                "the refresh token of oauth2 connection '{}' was refused (expired or revoked): {said}",
                self.connection
            ))
            .hint(format!("sign in again: `{}`", self.login())),
            ("unauthorized_client", _) => {
                ProviderError::denied(format!("client '{client}' may not use this grant: {said}"))
                    .hint("allow the grant for this client at the identity provider")
            }
            ("invalid_scope", _) => {
                ProviderError::invalid_config(format!("the identity provider refused the scope: {said}"))
                    .hint(format!(
                        "check `scope` (and `audience`, `resource`) of [credentials.{}]",
                        self.request.credential
                    ))
            }
            ("invalid_request" | "invalid_target", _) => {
                ProviderError::invalid_config(format!("the identity provider refused the request: {said}"))
                    .hint(format!("check the options of [credentials.{}]", self.request.credential))
            }
            _ => error.into(),
        }
    }
}

/// The client credentials grant.
fn client_credentials(
    settings: &Settings<'_>,
    url: &str,
    auth: ClientAuth<'_>,
) -> Result<Credential, TokenError> {
    let response = settings.with_scope(TokenRequest::new(url, "client_credentials")).client(auth).send()?;
    Ok(response.credential())
}

/// The refresh grant; a rotated refresh token is saved back. (The host holds
/// the connection's lock from the read of the refresh token to the end of the
/// call, so no other renewal spends the same token meanwhile.)
fn refresh(
    settings: &Settings<'_>,
    url: &str,
    secret: Option<&str>,
    refresh_token: &str,
) -> Result<Credential, ProviderError> {
    let auth = match secret {
        Some(secret) => settings.secret_auth(secret)?,
        None => ClientAuth::Public { client_id: settings.client_id },
    };
    let response = settings
        .with_scope(TokenRequest::new(url, "refresh_token").param("refresh_token", refresh_token))
        .client(auth)
        .send()
        .map_err(|e| settings.explain(e, Grant::Refresh))?;
    if let Some(rotated) = response.refresh_token.as_deref().filter(|new| new != &refresh_token)
        && let Err(e) = save_secret(settings.connection, REFRESH_TOKEN, rotated)
    {
        log(
            LogLevel::Warn,
            &format!(
                "could not save the rotated refresh token ({e:?}); the next renewal may need `{}`",
                settings.login()
            ),
        );
    }
    Ok(response.credential())
}
