//! The CLI skeleton end to end: version, help, providers, `get` through a
//! bundled plugin, and one-line errors with documented exit codes.

mod support;

use support::{BoundedRun, Home, stderr, stdout};

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

/// A short command allocates from the system's allocator, whose start-up is
/// cheaper than mimalloc's; only a proxy takes mimalloc (see `proxy`).
#[test]
fn a_short_command_allocates_from_the_system_heap() {
    let output =
        Home::new("cli-heap").keyhelper(&["-v", "list"]).env("MIMALLOC_VERBOSE", "1").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).lines().any(|line| line == "keyhelper: debug: heap: system"),
        "{}",
        stderr(&output)
    );
    // Where the shipped build leaves out mimalloc's constructor, mimalloc
    // does not even start.
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(!stderr(&output).contains("mimalloc:"), "{}", stderr(&output));
    }
}

#[test]
fn providers_lists_each_with_its_capabilities() {
    let out = stdout(&Home::new("cli-providers").run(&["providers"]));
    for expected in [
        "openai — OpenAI (stored API key)",
        "azure — Azure AD (Azure CLI, managed or workload identity, client secret)",
        "read file {env:AZURE_FEDERATED_TOKEN_FILE}",
        "oauth2 — OAuth 2.0 / OpenID Connect",
        "request {origin:issuer}/*",
        "save named secrets (a rotated refresh token) for its own connections",
        "request http://169.254.169.254/metadata/identity/oauth2/token?*",
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
        if *code == 2 {
            // Usage errors keep clap's whole message (see a_first_hour_without_surprises).
            assert!(err.lines().count() > 1, "{args:?}: {err}");
        } else {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
        assert!(err.starts_with("keyhelper: error: "), "{err}");
        assert!(output.stdout.is_empty(), "{args:?} wrote to stdout");
    }
}

/// Found by trying keyhelper as a new user: each now says what is wrong.
#[test]
fn a_first_hour_without_surprises() {
    let home = Home::new("first-hour");
    home.write_config("[credentials.work]\nprovider = \"azure\"\n");
    let usage = |args: &[&str], expected: &[&str]| {
        let output = home.run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        for text in expected {
            assert!(stderr(&output).contains(text), "{args:?}: {text} missing from\n{}", stderr(&output));
        }
    };
    usage(&["gett", "work"], &["unrecognized subcommand 'gett'", "similar subcommand exists: 'get'"]);
    usage(&["get"], &["<NAME>", "Usage: keyhelper get"]);
    usage(&["get", "work", "--format", "yaml"], &["possible values: raw, json"]);

    let missing = home.run(&["--config", "/nonexistent/keyhelper.toml", "list"]);
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("the config file /nonexistent/keyhelper.toml does not exist"));
    let from_env =
        home.keyhelper(&["get", "work"]).env("KEYHELPER_CONFIG", "/nonexistent/k.toml").output_within();
    assert_eq!(from_env.status.code(), Some(3), "{}", stderr(&from_env));

    let nosuch = home.run(&["cache", "clear", "nosuch"]);
    assert_eq!(nosuch.status.code(), Some(5), "{}", stderr(&nosuch));
    assert!(stderr(&nosuch).contains("there is no credential called 'nosuch'"), "{}", stderr(&nosuch));
    assert!(!stderr(&nosuch).contains("error: error:"), "{}", stderr(&nosuch));

    for name in ["1password", "onepassword"] {
        let inspect = home.run(&["plugin", "inspect", name]);
        assert!(inspect.status.success(), "{name}: {}", stderr(&inspect));
        assert!(stdout(&inspect).contains("provider:     1password"), "{}", stdout(&inspect));
    }
    assert!(stdout(&home.run(&["status"])).contains("(1 credential)"));
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

/// What a real bash offers after sourcing `keyhelper completions bash`, for
/// the words typed so far (the last one being completed).
fn bash_completes(home: &Home, words: &[&str]) -> Vec<String> {
    let script = stdout(&home.run(&["completions", "bash"]));
    std::fs::write(home.path().join("completion.bash"), script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
         _clap_complete_keyhelper keyhelper '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        home.path().join("completion.bash").display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let keyhelper_dir = support::keyhelper_exe().parent().unwrap().to_path_buf();
    let mut bash = home.command("bash");
    bash.args(["--norc", "--noprofile", "-c", &program]).env(
        "PATH",
        format!("{}:{}:/usr/local/bin:/usr/bin:/bin", keyhelper_dir.display(), home.bin().display()),
    );
    let output = bash.output_within();
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

#[test]
fn bash_completes_subcommands_flags_and_the_configured_credential_names() {
    let home = Home::new("completions");
    home.write_config(
        "[credentials.work]\nprovider = \"azure\"\n\n[credentials.team-openai]\nprovider = \"openai\"\n",
    );
    let names = bash_completes(&home, &["keyhelper", "get", ""]);
    for expected in ["work", "team-openai", "azure", "anthropic"] {
        assert!(names.contains(&expected.to_string()), "{expected} missing from {names:?}");
    }
    assert_eq!(bash_completes(&home, &["keyhelper", "get", "wo"]), ["work"]);
    assert_eq!(bash_completes(&home, &["keyhelper", "cache", "clear", "team"]), ["team-openai"]);
    let subcommands = bash_completes(&home, &["keyhelper", ""]);
    for expected in ["get", "login", "run", "proxy", "completions"] {
        assert!(subcommands.contains(&expected.to_string()), "{expected} missing from {subcommands:?}");
    }
    assert!(!subcommands.iter().any(|s| s == "renew-in-background" || s == "man-pages"), "{subcommands:?}");
    assert!(bash_completes(&home, &["keyhelper", "get", "--fo"]).contains(&"--format".to_string()));
}

#[test]
fn man_pages_are_written_for_the_command_and_each_subcommand() {
    let home = Home::new("man-pages");
    let dir = home.path().join("man");
    let output = home.run(&["man-pages", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let main = std::fs::read_to_string(dir.join("keyhelper.1")).unwrap();
    assert!(main.starts_with(".ie") || main.contains(".TH keyhelper 1"), "{}", &main[..200.min(main.len())]);
    assert!(main.contains("Print a credential"), "the subcommands are listed");
    for page in ["keyhelper-get.1", "keyhelper-run.1", "keyhelper-proxy.1", "keyhelper-completions.1"] {
        assert!(dir.join(page).exists(), "{page} missing");
    }
    assert!(!dir.join("keyhelper-renew-in-background.1").exists(), "hidden commands have no page");
}

/// `--json` on list, status and providers: one JSON document each, in the
/// shapes the README documents, and never a secret.
#[test]
fn list_status_and_providers_speak_json() {
    let home = Home::new("json-output");
    home.fake_tool(
        "az",
        "#!/bin/sh\necho '{\"accessToken\":\"eyJsecret-json\",\"expires_on\":4102444800}'\n",
    );
    home.write_config("[credentials.work]\nprovider = \"azure\"\n");
    assert!(home.run(&["get", "work"]).status.success());
    let json = |args: &[&str]| -> serde_json::Value {
        let output = home.run(args);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(!stdout(&output).contains("eyJsecret-json"), "a secret in {args:?}");
        serde_json::from_str(&stdout(&output))
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&output)))
    };
    let list = json(&["list", "--json"]);
    assert_eq!(list["credentials"][0]["name"], "work");
    assert_eq!(list["credentials"][0]["provider"], "azure");
    assert_eq!(list["credentials"][0]["cached"]["expires_at"], 4102444800i64);
    assert_eq!(list["stored_secrets"], serde_json::json!([]));
    let status = json(&["status", "--json"]);
    assert_eq!(status["config"]["credentials"], 1);
    assert_eq!(status["cached"][0]["name"], "work");
    assert!(status["cache_dir"].as_str().unwrap().ends_with(".cache/keyhelper/credentials"), "{status}");
    assert!(status["providers_dir"].as_str().unwrap().ends_with(".config/keyhelper/providers"), "{status}");
    let providers = json(&["providers", "--json"]);
    let azure = providers.as_array().unwrap().iter().find(|p| p["name"] == "azure").unwrap();
    assert_eq!(azure["plugin"], "azure");
    assert_eq!(azure["api"], "openai");
    assert!(azure["options"].as_array().unwrap().iter().any(|o| o["name"] == "scope"), "{azure}");
    let anthropic = providers.as_array().unwrap().iter().find(|p| p["name"] == "anthropic").unwrap();
    assert_eq!(anthropic["api"], "anthropic");
}

/// `doctor` with a signed-out `az` (the real tool's message and exit code for
/// `az account show`) and no `op` at all names both fixes and fails; the
/// probe runs only with `--online`.
#[test]
fn doctor_names_each_fix_and_fails_when_a_check_does() {
    let home = Home::new("doctor");
    home.fake_tool(
        "az",
        "#!/bin/sh\ncase \"$*\" in\n  'account show --output none') echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1;;\n  *) echo '{\"accessToken\":\"eyJdoctor\",\"expires_on\":4102444800}';;\nesac\n",
    );
    home.write_config(
        "[credentials.work]\nprovider = \"azure\"\n\n[credentials.vault]\nprovider = \"1password\"\nreference = \"op://Private/OpenAI/credential\"\n\n[credentials.team]\nprovider = \"openai\"\nconnection = \"team\"\n",
    );
    let offline = home.run(&["doctor"]);
    let text = stdout(&offline);
    assert_ne!(offline.status.code(), Some(0), "{text}");
    assert!(text.contains("✓ work: `az` is installed"), "{text}");
    assert!(text.contains("· work: sign-in not checked"), "{text}");
    assert!(text.contains("✗ vault: `op` is not installed"), "{text}");
    assert!(text.contains("fix: install the 1Password CLI (op) and run `op signin`"), "{text}");
    assert!(text.contains("✗ team: no secret is stored for connection 'team' — fix: run `keyhelper login openai --connection team`"), "{text}");

    let online = home.run(&["doctor", "work", "--online"]);
    let text = stdout(&online);
    assert_eq!(online.status.code(), Some(4), "signed out is exit 4: {text}{}", stderr(&online));
    assert!(
        text.contains("✗ work: `az account show --output none` failed: ERROR: Please run 'az login' to setup account. — fix: run `az login`"),
        "{text}"
    );
    assert!(!text.contains("vault"), "only the named credential: {text}");

    let json: serde_json::Value = serde_json::from_str(&stdout(&home.run(&["doctor", "--json"]))).unwrap();
    let failed: Vec<&serde_json::Value> =
        json.as_array().unwrap().iter().filter(|c| c["ok"] == false).collect();
    assert!(failed.iter().any(|c| c["credential"] == "vault" && c["check"] == "tool"), "{json}");
    assert!(!stdout(&home.run(&["doctor", "--json"])).contains("eyJdoctor"));
}

/// A managed-identity Azure credential needs no `az`: doctor does not ask
/// for it (the manifest's `[doctor] when = { method = "az" }`), while an
/// `az` credential in the same home without `az` fails.
#[test]
fn doctor_checks_the_tool_only_where_the_method_uses_it() {
    let home = Home::new("doctor-mi");
    home.write_config(
        "[credentials.mi]\nprovider = \"azure\"\nmethod = \"managed-identity\"\n\n[credentials.cli]\nprovider = \"azure\"\n",
    );
    let mi = home.run(&["doctor", "mi"]);
    let text = stdout(&mi);
    assert_eq!(mi.status.code(), Some(0), "{text}{}", stderr(&mi));
    assert!(!text.contains("`az`") && !text.contains("az login"), "{text}");
    let cli = home.run(&["doctor", "cli"]);
    assert_ne!(cli.status.code(), Some(0));
    assert!(stdout(&cli).contains("✗ cli: `az` is not installed"), "{}", stdout(&cli));
}

/// A provider slower than a second says what keyhelper waits for, once, on
/// a terminal (a real pty, from util-linux `script`); a program reading
/// keyhelper's stderr through a pipe sees nothing.
#[test]
fn a_slow_provider_says_what_it_waits_for_on_a_terminal_only() {
    let home = Home::new("waiting");
    home.fake_tool(
        "az",
        "#!/bin/sh\nsleep 2\necho '{\"accessToken\":\"eyJslow\",\"expires_on\":4102444800}'\n",
    );
    home.write_config("[credentials.work]\nprovider = \"azure\"\n");
    let command = format!("{} get work --no-cache", support::keyhelper_exe().display());
    let on_terminal = home.command("script").args(["-qec", &command, "/dev/null"]).output_within();
    assert!(on_terminal.status.success(), "{}", stderr(&on_terminal));
    let seen = stdout(&on_terminal);
    assert_eq!(seen.matches("keyhelper: waiting for az…").count(), 1, "{seen}");
    assert!(seen.contains("eyJslow"), "{seen}");

    let piped = home.run(&["get", "work", "--no-cache"]);
    assert_eq!(stdout(&piped), "eyJslow\n");
    assert!(stderr(&piped).is_empty(), "{}", stderr(&piped));
}

/// `validate --offline` never runs the provider's tool: it checks the cached
/// secret, or says it cannot.
#[test]
fn validate_offline_never_runs_the_tool() {
    let home = Home::new("validate-offline");
    let calls = home.bin().join("calls");
    home.fake_tool(
        "az",
        &format!(
            "#!/bin/sh\necho call >> '{}'\necho '{{\"accessToken\":\"eyJoffline\",\"expires_on\":4102444800}}'\n",
            calls.display()
        ),
    );
    home.write_config("[credentials.work]\nprovider = \"azure\"\n");
    let count = || std::fs::read_to_string(&calls).map_or(0, |s| s.lines().count());
    let uncached = home.run(&["validate", "work", "--offline"]);
    assert_eq!(uncached.status.code(), Some(5), "{}", stderr(&uncached));
    assert!(
        stderr(&uncached).contains("cannot validate 'work' offline: it is not cached"),
        "{}",
        stderr(&uncached)
    );
    assert_eq!(count(), 0, "az ran");
    assert!(home.run(&["get", "work"]).status.success());
    let cached = home.run(&["validate", "work", "--offline"]);
    assert!(cached.status.success(), "{}", stderr(&cached));
    assert!(stdout(&cached).starts_with("valid: "), "{}", stdout(&cached));
    assert_eq!(count(), 1, "only the get ran az");
}

/// One broken credential entry (an unknown option) breaks only itself: the
/// others are served and listed, and the broken one shows its error.
#[test]
fn a_broken_credential_entry_breaks_only_itself() {
    let home = Home::new("broken-entry");
    home.fake_tool("az", "#!/bin/sh\necho '{\"accessToken\":\"eyJgood\",\"expires_on\":4102444800}'\n");
    home.write_config(
        "[credentials.good]\nprovider = \"azure\"\n\n[credentials.bad]\nprovider = \"azure\"\nscoep = \"x\"\n",
    );
    assert_eq!(stdout(&home.run(&["get", "good"])), "eyJgood\n");
    let bad = home.run(&["get", "bad"]);
    assert_eq!(bad.status.code(), Some(3), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("config.toml:6:1") && stderr(&bad).contains("scoep"), "{}", stderr(&bad));
    let list = home.run(&["list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(stdout(&list).lines().any(|l| l.starts_with("good") && l.contains("azure")), "{}", stdout(&list));
    assert!(
        stdout(&list).lines().any(|l| l.starts_with("bad") && l.contains("broken: ")),
        "{}",
        stdout(&list)
    );
    use std::process::Stdio;
    let mut login = home.keyhelper(&["login", "openai", "--stdin"]);
    login.env("KEYHELPER_SECRET_STORE", "file");
    let mut child =
        login.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"sk-proj-Abc123_def456-GHI789jkl012MNO345pqr678",
    )
    .unwrap();
    let login = support::finish(child);
    assert!(login.status.success(), "{}", stderr(&login));
}
