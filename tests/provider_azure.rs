//! The Azure provider end to end, with a fake `az` on PATH that reproduces the
//! real CLI's output (azure-cli `profile/custom.py`, 2.x): the JSON of
//! `az account get-access-token -o json` on success, and on failure its
//! `ERROR: …` stderr with exit code 1. The fake also records its argv and
//! environment so the tests can check what keyhelper passed.

mod support;

use support::{BoundedRun, Home, stderr, stdout};

const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly9teS1wcm94eSJ9.c2lnbmF0dXJl";

/// A fake `az` that logs argv and env to `az.log` next to it, then behaves as `body`.
fn fake_az(home: &Home, body: &str) {
    let log = home.bin().join("az.log");
    home.fake_tool(
        "az",
        &format!(
            "#!/bin/sh\n{{ echo \"argv: $*\"; env | sed 's/^/env: /'; }} >> '{}'\n{body}\n",
            log.display()
        ),
    );
}

fn az_log(home: &Home) -> String {
    std::fs::read_to_string(home.bin().join("az.log")).unwrap_or_default()
}

fn logged_in_az(home: &Home) {
    fake_az(
        home,
        &format!(
            "cat <<'JSON'\n{{\n  \"accessToken\": \"{TOKEN}\",\n  \"expiresOn\": \"2099-12-31 23:00:00.000000\",\n  \"expires_on\": 4102441200,\n  \"subscription\": \"0b1f6471-1bf0-4dda-aec3-111122223333\",\n  \"tenant\": \"72f988bf-86f1-41af-91ab-2d7cd011db47\",\n  \"tokenType\": \"Bearer\"\n}}\nJSON"
        ),
    );
}

#[test]
fn success_prints_the_token_and_passes_the_options() {
    let home = Home::new("azure-success");
    logged_in_az(&home);
    home.write_config(
        "[credentials.work]\nprovider = \"azure\"\nscope = \"api://my-proxy/.default\"\ntenant = \"contoso.onmicrosoft.com\"\n",
    );
    let output = home.run(&["get", "work", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{{\"expires_at\":4102441200,\"token\":\"{TOKEN}\"}}\n"));
    let log = az_log(&home);
    assert!(
        log.contains("argv: account get-access-token --scope api://my-proxy/.default --tenant contoso.onmicrosoft.com --output json"),
        "{log}"
    );
}

#[test]
fn az_gets_a_minimal_environment() {
    let home = Home::new("azure-env");
    logged_in_az(&home);
    let output = home
        .keyhelper(&["get", "azure"])
        .env("AZURE_CONFIG_DIR", "/tmp/azure-profile")
        .env("OPENAI_API_KEY", "sk-must-not-reach-az")
        .env("AWS_SECRET_ACCESS_KEY", "must-not-reach-az")
        .output_within();
    assert!(output.status.success(), "{}", stderr(&output));
    let log = az_log(&home);
    let names: Vec<&str> =
        log.lines().filter_map(|l| l.strip_prefix("env: ")).filter_map(|l| l.split('=').next()).collect();
    // `PWD` and `SHLVL` are set by the fake's own /bin/sh.
    let mut names: Vec<&str> = names.into_iter().filter(|n| !matches!(*n, "PWD" | "SHLVL" | "_")).collect();
    names.sort_unstable();
    assert_eq!(names, ["AZURE_CONFIG_DIR", "HOME", "PATH"], "{log}");
}

#[test]
fn not_logged_in_exits_4_with_the_fix() {
    let home = Home::new("azure-login");
    fake_az(&home, "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1");
    let output = home.run(&["get", "azure"]);
    assert_eq!(output.status.code(), Some(4));
    assert!(stderr(&output).contains("(hint: run `az login`)"), "{}", stderr(&output));
}

#[test]
fn an_unknown_resource_is_a_config_error() {
    let home = Home::new("azure-not-found");
    fake_az(
        &home,
        "echo \"ERROR: AADSTS500011: The resource principal named api://nope was not found in the tenant named Contoso. This can happen if the application has not been installed by the administrator of the tenant.\" >&2\nexit 1",
    );
    home.write_config("[credentials.nope]\nprovider = \"azure\"\nscope = \"api://nope/.default\"\n");
    let output = home.run(&["get", "nope"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("AADSTS500011"), "{}", stderr(&output));
}

#[test]
fn malformed_output_is_an_error_that_never_echoes_it() {
    let home = Home::new("azure-malformed");
    fake_az(&home, &format!("echo 'accessToken: {TOKEN}'"));
    let output = home.run(&["-vv", "get", "azure"]);
    assert_eq!(output.status.code(), Some(7));
    let err = stderr(&output);
    assert!(err.contains("printed output without valid JSON"), "{err}");
    assert!(!err.contains(TOKEN), "the token leaked into stderr: {err}");
    assert!(output.stdout.is_empty());
}

#[test]
fn the_token_never_reaches_stderr_even_at_trace_level() {
    let home = Home::new("azure-verbose");
    logged_in_az(&home);
    let output = home.run(&["-vv", "get", "azure"]);
    assert!(output.status.success());
    assert_eq!(stdout(&output), format!("{TOKEN}\n"));
    assert!(!stderr(&output).contains(TOKEN), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("running `az account get-access-token"),
        "trace shows the command: {}",
        stderr(&output)
    );
}

/// A managed identity endpoint on loopback that answers like Azure's (App
/// Service: `expires_on` as a string of epoch seconds) and records each
/// request's path and identity headers.
fn identity_endpoint() -> (support::MockHttp, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = support::MockHttp::start(move |request| {
        log.lock().unwrap().push(format!(
            "{} {} metadata={:?} identity-header={:?}",
            request.method,
            request.path,
            request.header("metadata"),
            request.header("x-identity-header")
        ));
        if request.path.contains("client_id=unknown") {
            return (400, r#"{"error":"invalid_request","error_description":"Identity not found"}"#.into());
        }
        (
            200,
            format!(
                r#"{{"access_token":"{TOKEN}","expires_on":"4102441200","resource":"https://cognitiveservices.azure.com","token_type":"Bearer","client_id":"11111111-2222-3333-4444-555555555555"}}"#
            ),
        )
    });
    (server, seen)
}

#[test]
fn managed_identity_through_app_services_endpoint_never_runs_az() {
    let home = Home::new("azure-mi-app-service");
    logged_in_az(&home);
    home.write_config("[credentials.work]\nprovider = \"azure\"\nmethod = \"managed-identity\"\n");
    let (server, seen) = identity_endpoint();
    let output = home
        .keyhelper(&["get", "work", "--format", "json"])
        .env("IDENTITY_ENDPOINT", format!("{}/msi/token", server.base_url))
        .env("IDENTITY_HEADER", "8d1c2a4e-header-secret")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{{\"expires_at\":4102441200,\"token\":\"{TOKEN}\"}}\n"));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "GET /msi/token?resource=https%3A%2F%2Fcognitiveservices.azure.com&api-version=2019-08-01 metadata=None identity-header=Some(\"8d1c2a4e-header-secret\")"
        ]
    );
    assert_eq!(az_log(&home), "", "az must not run for a managed identity");
}

#[test]
fn managed_identity_through_imds_with_a_user_assigned_client_id() {
    let home = Home::new("azure-mi-imds");
    home.write_config(
        "[credentials.work]\nprovider = \"azure\"\nmethod = \"managed-identity\"\nscope = \"https://management.azure.com/.default\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\n\n[credentials.nobody]\nprovider = \"azure\"\nmethod = \"managed-identity\"\nclient_id = \"unknown\"\n",
    );
    let (server, seen) = identity_endpoint();
    let get =
        |name: &str| home.keyhelper(&["get", name]).env("IMDS_ENDPOINT", &server.base_url).output().unwrap();
    let output = get("work");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{TOKEN}\n"));
    assert_eq!(
        seen.lock().unwrap()[0],
        "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com&client_id=11111111-2222-3333-4444-555555555555 metadata=Some(\"true\") identity-header=None"
    );
    let missing = get("nobody");
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    let message = stderr(&missing);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("no managed identity with client ID unknown") && message.contains("client_id"),
        "{message}"
    );
}

#[test]
fn managed_identity_elsewhere_is_a_clear_error_and_an_unknown_method_names_the_known_ones() {
    let home = Home::new("azure-mi-none");
    home.write_config(
        "[credentials.work]\nprovider = \"azure\"\nmethod = \"managed-identity\"\n\n[credentials.odd]\nprovider = \"azure\"\nmethod = \"magic\"\n",
    );
    // Nothing listens on this loopback port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let output =
        home.keyhelper(&["get", "work"]).env("IMDS_ENDPOINT", format!("http://{closed}")).output().unwrap();
    assert!(!output.status.success());
    assert!(stdout(&output).is_empty());
    let message = stderr(&output);
    assert!(
        message.contains("no managed identity endpoint answered") && message.contains("method = \"az\""),
        "{message}"
    );
    let odd = home.run(&["get", "odd"]);
    assert_eq!(odd.status.code(), Some(3), "{}", stderr(&odd));
    assert!(
        stderr(&odd).contains("method = \"magic\"") && stderr(&odd).contains("managed-identity"),
        "{}",
        stderr(&odd)
    );
}

/// Entra ID's token endpoint on loopback: records each request (method,
/// path, form body) and answers a token, or `AADSTS` refusals for the
/// client secret `wrong` and the federated token `eyJ.untrusted.sig`.
fn entra_endpoint() -> (support::MockHttp, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = support::MockHttp::start(move |request| {
        log.lock().unwrap().push(format!("{} {} {}", request.method, request.path, request.body));
        if request.body.contains("client_secret=wrong") {
            return (401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 1"}"#.into());
        }
        if request.body.contains("client_assertion=eyJ.untrusted.sig") {
            return (400, r#"{"error":"invalid_client","error_description":"AADSTS70021: No matching federated identity record found for presented assertion."}"#.into());
        }
        (
            200,
            format!(
                r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"{TOKEN}"}}"#
            ),
        )
    });
    (server, seen)
}

#[test]
fn workload_identity_presents_the_federated_token_without_az() {
    let home = Home::new("azure-workload-identity");
    logged_in_az(&home);
    home.write_config("[credentials.ci]\nprovider = \"azure\"\nmethod = \"workload-identity\"\n");
    let (server, seen) = entra_endpoint();
    let token_file = home.path().join("azure-identity-token");
    let get = |assertion: &str| {
        std::fs::write(&token_file, format!("{assertion}\n")).unwrap();
        home.keyhelper(&["get", "ci", "--no-cache"])
            .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
            .env("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
            .env("AZURE_TENANT_ID", "contoso-tenant")
            .env("AZURE_AUTHORITY_HOST", format!("{}/", server.base_url))
            .output()
            .unwrap()
    };
    let output = get("eyJ.federated.sig");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{TOKEN}\n"));
    assert_eq!(
        seen.lock().unwrap()[0],
        "POST /contoso-tenant/oauth2/v2.0/token grant_type=client_credentials&scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default&client_id=11111111-2222-3333-4444-555555555555&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJ.federated.sig"
    );
    assert_eq!(az_log(&home), "", "az must not run for a workload identity");

    let refused = get("eyJ.untrusted.sig");
    assert_eq!(refused.status.code(), Some(6), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("AADSTS70021") && message.contains("federated credential"), "{message}");
    assert!(!message.contains("eyJ.untrusted.sig"), "the token is never quoted: {message}");

    let unset = home.run(&["get", "ci"]);
    assert_eq!(unset.status.code(), Some(3), "{}", stderr(&unset));
    assert!(stderr(&unset).contains("needs AZURE_FEDERATED_TOKEN_FILE"), "{}", stderr(&unset));
}

#[test]
fn a_service_principal_secret_is_stored_with_login_and_sent_in_the_form() {
    let home = Home::new("azure-client-secret");
    home.write_config(
        "[credentials.sp]\nprovider = \"azure\"\nmethod = \"client-secret\"\ntenant = \"contoso-tenant\"\nclient_id = \"app-1\"\nconnection = \"sp\"\nscope = \"https://management.azure.com/.default\"\n\n[credentials.cli]\nprovider = \"azure\"\n",
    );
    let (server, seen) = entra_endpoint();
    let list = stdout(&home.run(&["list"]));
    assert!(list.contains("no secret stored: run `keyhelper login azure --connection sp`"), "{list}");
    assert!(!list.contains("login azure --connection default"), "az credentials store nothing: {list}");
    let default_login = support::with_stdin(home.keyhelper(&["login", "azure", "--stdin"]), "x");
    assert_eq!(default_login.status.code(), Some(2), "az's own login, as before: {}", stderr(&default_login));
    assert!(stderr(&default_login).contains("gets its secrets from its own tool"));

    let get = || {
        home.keyhelper(&["get", "sp", "--no-cache"])
            .env("AZURE_AUTHORITY_HOST", &server.base_url)
            .output()
            .unwrap()
    };
    let missing = get();
    assert_eq!(missing.status.code(), Some(4), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("keyhelper login azure --connection sp --stdin"),
        "{}",
        stderr(&missing)
    );

    let login = support::with_stdin(
        home.keyhelper(&["login", "azure", "--connection", "sp", "--stdin"]),
        "sp~secret.value",
    );
    assert!(login.status.success(), "{}", stderr(&login));
    let output = get();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{TOKEN}\n"));
    assert_eq!(
        seen.lock().unwrap()[0],
        "POST /contoso-tenant/oauth2/v2.0/token grant_type=client_credentials&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&client_id=app-1&client_secret=sp%7Esecret.value"
    );

    let rotate = support::with_stdin(
        home.keyhelper(&["login", "azure", "--connection", "sp", "--stdin", "--force"]),
        "wrong",
    );
    assert!(rotate.status.success(), "{}", stderr(&rotate));
    let refused = get();
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("AADSTS7000215") && message.contains("--stdin --force"), "{message}");
}
