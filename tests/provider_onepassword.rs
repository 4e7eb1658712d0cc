//! The 1Password provider end to end, with a fake `op` on PATH reproducing
//! the real CLI 2.x: `op read` prints the field and a newline; errors are
//! `[ERROR] YYYY/MM/DD HH:MM:SS <message>` on stderr with exit code 1.

mod support;

use support::{BoundedRun, Home, stderr, stdout};

const SECRET: &str = "sk-proj-onepassword-secret-value-0123456789abcdefghij";

fn fake_op(home: &Home, body: &str) {
    let log = home.bin().join("op.log");
    home.fake_tool(
        "op",
        &format!(
            "#!/bin/sh\n{{ echo \"argv: $*\"; env | sed 's/^/env: /'; }} >> '{}'\n{body}\n",
            log.display()
        ),
    );
}

fn configure(home: &Home) {
    home.write_config(
        "[credentials.vault]\nprovider = \"1password\"\nreference = \"op://Private/OpenAI/credential\"\n",
    );
}

#[test]
fn reads_the_field_trimming_only_the_newline() {
    let home = Home::new("op-success");
    fake_op(&home, &format!("printf '  {SECRET}\\n'"));
    configure(&home);
    let output = home.run(&["get", "vault", "-n"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("  {SECRET}"));
    let log = std::fs::read_to_string(home.bin().join("op.log")).unwrap();
    assert!(log.contains("argv: read op://Private/OpenAI/credential\n"), "{log}");
}

#[test]
fn passes_the_declared_op_variables_and_nothing_else() {
    let home = Home::new("op-env");
    fake_op(&home, &format!("echo {SECRET}"));
    configure(&home);
    let output = home
        .keyhelper(&["get", "vault"])
        .env("OP_SERVICE_ACCOUNT_TOKEN", "ops_service_account_token")
        .env("GITHUB_TOKEN", "ghp_must_not_reach_op")
        .output_within();
    assert!(output.status.success(), "{}", stderr(&output));
    let log = std::fs::read_to_string(home.bin().join("op.log")).unwrap();
    assert!(log.contains("env: OP_SERVICE_ACCOUNT_TOKEN=ops_service_account_token"), "{log}");
    assert!(!log.contains("ghp_must_not_reach_op"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("argv:") && l.contains("ops_service")), "{log}");
}

#[test]
fn op_errors_map_to_exit_codes() {
    let cases = [
        (
            "You are not currently signed in. Please run `op signin --help` for instructions",
            4,
            "run `op signin`",
        ),
        (
            "could not read secret 'op://Private/OpenAI/credential': could not get item Private/OpenAI: \"OpenAI\" isn't an item in the \"Private\" vault. Specify the item with its UUID, name, or domain.",
            5,
            "isn't an item in the",
        ),
        ("invalid secret reference 'op://Private': too few segments", 3, "invalid secret reference"),
        ("connecting to desktop app: read: connection reset by peer", 7, "connecting to desktop app"),
    ];
    for (message, code, expected) in cases {
        let home = Home::new("op-errors");
        fake_op(&home, &format!("cat >&2 <<'STDERR'\n[ERROR] 2026/11/24 12:00:00 {message}\nSTDERR\nexit 1"));
        configure(&home);
        let output = home.run(&["get", "vault"]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("2026/11/24 12:00:00"), "the timestamp is noise: {err}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn an_empty_field_is_not_found() {
    let home = Home::new("op-empty");
    fake_op(&home, "echo");
    configure(&home);
    let output = home.run(&["get", "vault"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
}

#[test]
fn a_missing_op_says_how_to_install_it() {
    let home = Home::new("op-missing");
    configure(&home);
    let output = home.run(&["get", "vault"]);
    assert_eq!(output.status.code(), Some(7));
    assert!(stderr(&output).contains("install the 1Password CLI"), "{}", stderr(&output));
}

#[test]
fn a_field_that_is_not_text_is_refused() {
    let home = Home::new("op-binary");
    fake_op(&home, "printf 'sk-\\377\\376binary\\n'");
    configure(&home);
    let output = home.run(&["get", "vault"]);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert!(stderr(&output).contains("the 1Password field is not UTF-8 text"), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
}
