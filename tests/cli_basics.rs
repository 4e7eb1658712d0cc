//! The CLI skeleton end to end: version, help, providers, `get` through a
//! bundled plugin, and one-line errors with documented exit codes.

mod support;

use support::{Home, stderr, stdout};

#[test]
fn version_and_help() {
    let home = Home::new("cli-version");
    let output = home.run(&["--version"]);
    assert!(output.status.success());
    assert_eq!(stdout(&output), format!("keyhelper {}\n", env!("CARGO_PKG_VERSION")));
    let help = stdout(&home.run(&["--help"]));
    for command in ["get", "providers"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn providers_lists_each_with_its_capabilities() {
    let out = stdout(&Home::new("cli-providers").run(&["providers"]));
    for expected in [
        "openai — OpenAI (stored API key)",
        "azure — Azure AD (Azure CLI)",
        "run `az account get-access-token [--scope *] [--resource *] [--tenant *] [--subscription *] [--output json]`",
        "1password — 1Password (op CLI)",
        "run `op read * [--account *]`",
        "aws-secrets-manager — AWS Secrets Manager (aws CLI)",
        "read its own stored secrets",
        "request {base_url}/v1/models",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
}

#[test]
fn get_prints_exactly_the_token_through_the_plugin() {
    let home = Home::new("cli-get");
    home.fake_tool(
        "az",
        "#!/bin/sh\necho '{\"accessToken\":\"eyJ0eXAi.payload.sig\",\"expiresOn\":\"2099-12-31 23:00:00.000000\",\"expires_on\":4102441200,\"tenant\":\"t\",\"tokenType\":\"Bearer\"}'\n",
    );
    home.write_config("[credentials.work]\nprovider = \"azure\"\nscope = \"api://my-proxy/.default\"\n");
    let output = home.run(&["get", "work"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "eyJ0eXAi.payload.sig\n");
    assert_eq!(stderr(&output), "");

    let output = home.run(&["get", "work", "-n"]);
    assert_eq!(stdout(&output), "eyJ0eXAi.payload.sig");
    let output = home.run(&["get", "work", "--format", "json"]);
    assert_eq!(stdout(&output), "{\"expires_at\":4102441200,\"token\":\"eyJ0eXAi.payload.sig\"}\n");
}

#[test]
fn errors_are_one_line_with_a_class_exit_code() {
    let home = Home::new("cli-errors");
    home.write_config("[credentials.work]\nprovider = \"azure\"\n");
    let cases: &[(&[&str], i32, &str)] = &[
        (&["get", "wrok"], 5, "no credential or provider is called 'wrok' (did you mean `work`?)"),
        (&["get"], 2, "the following required arguments were not provided"),
        (&["get", "work", "--format", "yaml"], 2, "invalid value 'yaml'"),
        (&["frobnicate"], 2, "unrecognized subcommand 'frobnicate'"),
        (&["get", "work"], 7, "`az` is not installed (not found on PATH) (hint: install the Azure CLI"),
        (&["get", "1password"], 3, "provider '1password' needs the `reference` option"),
    ];
    for (args, code, message) in cases {
        let output = home.run(args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("keyhelper: error: "), "{err}");
        assert!(output.stdout.is_empty(), "{args:?} wrote to stdout");
    }
}

#[test]
fn config_errors_name_the_file_line_and_column() {
    let home = Home::new("cli-config");
    home.write_config("[credentials.work]\nprovider = \"azure\"\nscoep = \"x\"\n");
    let output = home.run(&["get", "work"]);
    assert_eq!(output.status.code(), Some(3));
    let err = stderr(&output);
    let expected = format!("{}:3:1: credential 'work' sets `scoep`", home.config_file().display());
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("did you mean `scope`?"), "{err}");
}

#[test]
fn not_logged_in_az_is_needs_login_with_the_fix() {
    let home = Home::new("cli-az-login");
    home.fake_tool("az", "#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n");
    let output = home.run(&["get", "azure"]);
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(
        stderr(&output),
        "keyhelper: error: credential 'azure': the Azure CLI is not signed in: Please run 'az login' to setup account. (hint: run `az login`)\n"
    );
}
