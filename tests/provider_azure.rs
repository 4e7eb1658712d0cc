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
