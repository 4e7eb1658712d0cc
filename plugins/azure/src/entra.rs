//! Tokens straight from Microsoft Entra ID's token endpoint, without `az`:
//! `method = "workload-identity"` (a federated token file, as AKS and GitHub
//! Actions provide: `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`,
//! `AZURE_TENANT_ID`, `AZURE_AUTHORITY_HOST`) and `method = "client-secret"`
//! (a service principal's secret, stored with `keyhelper login azure --stdin`).
//! Both are the client credentials grant against
//! `{authority}{tenant}/oauth2/v2.0/token`.

use keyhelper_plugin::oauth2::{ClientAuth, TokenError, TokenRequest, is_secure_url};
use keyhelper_plugin::{Credential, ProviderError, Request, env_var, read_file, stored_secret};

use super::DEFAULT_SCOPE;

/// Entra ID's public cloud, unless `AZURE_AUTHORITY_HOST` names another.
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";

/// A token for a workload identity: the federated token file is the client
/// assertion.
pub fn workload_identity(request: &Request) -> Result<Credential, ProviderError> {
    let missing = |name: &str| {
        ProviderError::invalid_config(format!("method = \"workload-identity\" needs {name}, which is not set"))
            .hint("run where workload identity is set up (AKS, or azure/login in GitHub Actions), or use another method")
    };
    let file = env_var("AZURE_FEDERATED_TOKEN_FILE")?.ok_or_else(|| missing("AZURE_FEDERATED_TOKEN_FILE"))?;
    let client_id = match request.option("client_id") {
        Some(id) => id.to_string(),
        None => env_var("AZURE_CLIENT_ID")?.ok_or_else(|| missing("AZURE_CLIENT_ID (or `client_id`)"))?,
    };
    let tenant = match request.option("tenant") {
        Some(tenant) => tenant.to_string(),
        None => env_var("AZURE_TENANT_ID")?.ok_or_else(|| missing("AZURE_TENANT_ID (or `tenant`)"))?,
    };
    let assertion = String::from_utf8_lossy(&read_file(&file)?).trim().to_string();
    if assertion.is_empty() {
        return Err(ProviderError::unavailable(format!("the federated token file {file} is empty"))
            .hint("check that the workload identity token is mounted there"));
    }
    let authority = authority()?;
    let auth = ClientAuth::Assertion { client_id: Some(&client_id), assertion: &assertion };
    token(request, &authority, &tenant, auth)
        .map_err(|e| explain(e, &client_id, Method::WorkloadIdentity, request))
}

/// A token for a service principal with a stored client secret.
pub fn client_secret(request: &Request) -> Result<Credential, ProviderError> {
    let client_id = request.required("client_id")?;
    let tenant = request.required("tenant")?;
    let connection = request.option("connection").unwrap_or("default");
    let secret = stored_secret(connection)?.ok_or_else(|| {
        ProviderError::needs_login(format!("no client secret is stored for azure connection '{connection}'"))
            .hint(format!("store it: `{} --stdin`", login(connection)))
    })?;
    let authority = authority()?;
    let auth = ClientAuth::Post { client_id, secret: &secret };
    token(request, &authority, tenant, auth).map_err(|e| explain(e, client_id, Method::ClientSecret, request))
}

#[derive(Clone, Copy)]
enum Method {
    WorkloadIdentity,
    ClientSecret,
}

/// The client credentials grant at the tenant's v2.0 endpoint.
fn token(
    request: &Request,
    authority: &str,
    tenant: &str,
    auth: ClientAuth<'_>,
) -> Result<Credential, TokenError> {
    let scope = match (request.option("scope"), request.option("resource")) {
        (Some(scope), _) => scope.to_string(),
        (None, Some(resource)) => format!("{}/.default", resource.trim_end_matches('/')),
        (None, None) => DEFAULT_SCOPE.to_string(),
    };
    let url = format!("{authority}{tenant}/oauth2/v2.0/token");
    let response = TokenRequest::new(url, "client_credentials").param("scope", &scope).client(auth).send()?;
    Ok(response.credential())
}

/// `AZURE_AUTHORITY_HOST` with a trailing `/`, or the public cloud's: https,
/// or plain http only to a loopback address.
fn authority() -> Result<String, ProviderError> {
    let host = env_var("AZURE_AUTHORITY_HOST")?.filter(|h| !h.is_empty());
    let host = host.unwrap_or_else(|| DEFAULT_AUTHORITY.to_string());
    if !is_secure_url(&host) {
        return Err(ProviderError::invalid_config(format!("AZURE_AUTHORITY_HOST ({host}) is not https"))
            .hint("use an https:// authority such as https://login.microsoftonline.com/"));
    }
    Ok(format!("{}/", host.trim_end_matches('/')))
}

fn login(connection: &str) -> String {
    match connection {
        "default" => "keyhelper login azure".to_string(),
        other => format!("keyhelper login azure --connection {other}"),
    }
}

/// Entra ID's refusal (an `AADSTS…` code in its description) as one line
/// naming the fix.
fn explain(error: TokenError, client_id: &str, method: Method, request: &Request) -> ProviderError {
    let TokenError::Refused { error: code, description, .. } = &error else { return error.into() };
    let said = error.said();
    let aadsts = description.as_deref().unwrap_or_default();
    let credential = &request.credential;
    if aadsts.contains("AADSTS700016") || aadsts.contains("AADSTS90002") || aadsts.contains("AADSTS900023") {
        return ProviderError::invalid_config(format!(
            "Entra ID does not know this application or tenant: {said}"
        ))
        .hint(format!("check `client_id` and `tenant` of [credentials.{credential}]"));
    }
    match (code.as_str(), method) {
        ("invalid_client" | "unauthorized_client", Method::ClientSecret) => ProviderError::needs_login(format!(
            "Entra ID refused the client secret of application {client_id}: {said}"
        ))
        .hint(format!(
            "store a valid secret: `{} --stdin --force`",
            login(request.option("connection").unwrap_or("default"))
        )),
        ("invalid_client" | "unauthorized_client", Method::WorkloadIdentity) => ProviderError::denied(format!(
            "Entra ID refused the federated token for application {client_id}: {said}"
        ))
        .hint("check the application's federated credential (issuer, subject, audience api://AzureADTokenExchange)"),
        ("invalid_scope", _) => ProviderError::invalid_config(format!("Entra ID refused the scope: {said}"))
            .hint(format!("check `scope` or `resource` of [credentials.{credential}]")),
        _ => error.into(),
    }
}
