//! `login`, `logout`, rotation, `list`, `status` and `validate` for stored
//! OpenAI keys, on the encrypted file backend, with a mock OpenAI API on
//! loopback for the live checks. Also checks that a stored key never shows
//! up anywhere but `get`'s stdout: not in files, stderr, logs or errors.

mod support;

use std::io::Write;
use std::process::{Output, Stdio};

use support::{BoundedRun, Home, MockHttp, stderr, stdout};

const KEY: &str = "sk-proj-Abc123_def456-GHI789jkl012MNO345pqr678STU901vwx234YZ";
const OTHER_KEY: &str = "sk-svcacct-Zyx987_wvu654-TSR321qpo098NML765kji432HGF109edc";
const REVOKED_KEY: &str = "sk-proj-revoked000000000000000000000000000000000000000000";
const RESTRICTED_KEY: &str = "sk-proj-restricted0000000000000000000000000000000000000000";

fn file_home(tag: &str) -> Home {
    Home::new(tag)
}

fn run_with_stdin(home: &Home, args: &[&str], input: &str) -> Output {
    let mut command = home.keyhelper(args);
    command.env("KEYHELPER_SECRET_STORE", "file");
    support::with_stdin(command, input)
}

fn run(home: &Home, args: &[&str]) -> Output {
    home.keyhelper(args).env("KEYHELPER_SECRET_STORE", "file").output_within()
}

#[test]
fn login_get_rotate_logout_round_trip() {
    let home = file_home("openai-round-trip");
    let login = run_with_stdin(&home, &["login", "openai", "--stdin"], &format!("{KEY}\n"));
    assert!(login.status.success(), "{}", stderr(&login));
    assert!(
        stderr(&login).contains("stored the openai secret for connection 'default' in encrypted file"),
        "{}",
        stderr(&login)
    );
    assert!(login.stdout.is_empty());

    let get = run(&home, &["get", "openai"]);
    assert_eq!(stdout(&get), format!("{KEY}\n"), "{}", stderr(&get));

    let again = run_with_stdin(&home, &["login", "openai", "--stdin"], OTHER_KEY);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("add --force to replace (rotate) it"), "{}", stderr(&again));
    assert_eq!(
        stdout(&run(&home, &["get", "openai"])),
        format!("{KEY}\n"),
        "without --force the key is kept"
    );

    let rotate = run_with_stdin(&home, &["login", "openai", "--stdin", "--force"], OTHER_KEY);
    assert!(rotate.status.success(), "{}", stderr(&rotate));
    assert_eq!(stdout(&run(&home, &["get", "openai"])), format!("{OTHER_KEY}\n"));

    let logout = run(&home, &["logout", "openai"]);
    assert!(logout.status.success(), "{}", stderr(&logout));
    let gone = run(&home, &["get", "openai"]);
    assert_eq!(gone.status.code(), Some(5));
    assert!(stderr(&gone).contains("(hint: run `keyhelper login openai`)"), "{}", stderr(&gone));
    assert_eq!(run(&home, &["logout", "openai"]).status.code(), Some(5));
}

#[test]
fn connections_are_separate_and_listed_by_name_only() {
    let home = file_home("openai-connections");
    home.write_config("[credentials.team]\nprovider = \"openai\"\nconnection = \"team\"\n\n[credentials.mine]\nprovider = \"openai\"\n");
    assert!(
        run_with_stdin(&home, &["login", "openai", "--connection", "team", "--stdin"], KEY).status.success()
    );
    assert!(run_with_stdin(&home, &["login", "openai", "--stdin"], OTHER_KEY).status.success());
    assert_eq!(stdout(&run(&home, &["get", "team"])), format!("{KEY}\n"));
    assert_eq!(stdout(&run(&home, &["get", "mine"])), format!("{OTHER_KEY}\n"));

    let list = run(&home, &["list"]);
    let out = stdout(&list);
    assert!(out.contains("team") && out.contains("secret stored (file, connection 'team')"), "{out}");
    assert!(out.contains("STORED SECRET"), "{out}");
    let status = stdout(&run(&home, &["status"]));
    assert!(status.contains("secret store:    file: encrypted file"), "{status}");
    assert!(status.contains("stored secrets:  2"), "{status}");
    for output in [&list, &run(&home, &["status"])] {
        for key in [KEY, OTHER_KEY] {
            assert!(!stdout(output).contains(key) && !stderr(output).contains(key));
        }
    }
}

#[test]
fn wrong_pastes_are_refused_without_echoing_them() {
    let home = file_home("openai-wrong-paste");
    for (paste, expected) in [
        (format!("OPENAI_API_KEY={KEY}"), "paste only the key after `=`"),
        (format!("Bearer {KEY}"), "`Bearer ` prefix"),
        ("sk-tooshort".to_string(), "too short"),
        ("ghp_0123456789abcdefghijklmnopqrstuvwxyzABCD".to_string(), "starts with `sk-`"),
        ("   \n".to_string(), "the secret is empty"),
    ] {
        let output = run_with_stdin(&home, &["login", "openai", "--stdin"], &paste);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains(&KEY[10..]), "the paste was echoed: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(run(&home, &["get", "openai"]).status.code(), Some(5), "nothing was stored");
}

#[test]
fn login_without_a_terminal_or_stdin_flag_asks_for_stdin() {
    let home = file_home("openai-no-tty");
    let output = home.keyhelper(&["login", "openai"]).stdin(Stdio::null()).output_within();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("pipe it in with --stdin"), "{}", stderr(&output));
}

#[test]
fn providers_with_their_own_tool_have_nothing_to_log_in_to() {
    let output = run_with_stdin(&file_home("openai-azure-login"), &["login", "azure", "--stdin"], KEY);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("gets its secrets from its own tool"), "{}", stderr(&output));
}

#[test]
fn the_key_is_never_in_plaintext_files_logs_or_errors() {
    let home = file_home("openai-leaks");
    assert!(run_with_stdin(&home, &["-vv", "login", "openai", "--stdin"], KEY).status.success());
    assert_eq!(support::files_containing(home.path(), KEY), Vec::<std::path::PathBuf>::new());
    assert_eq!(support::files_containing(home.path(), &KEY[8..30]), Vec::<std::path::PathBuf>::new());
    let get = run(&home, &["-vv", "get", "openai"]);
    assert_eq!(stdout(&get), format!("{KEY}\n"));
    assert!(!stderr(&get).contains(KEY), "{}", stderr(&get));
    assert!(stderr(&get).contains("keyhelper: debug:"), "trace logging was on: {}", stderr(&get));
}

fn mock_openai() -> MockHttp {
    MockHttp::start(|request| {
        if request.path != "/v1/models" {
            return (404, "{}".into());
        }
        match request.header("authorization") {
            Some(v) if v == format!("Bearer {KEY}") => (200, r#"{"object":"list","data":[]}"#.into()),
            Some(v) if v == format!("Bearer {RESTRICTED_KEY}") => {
                (403, r#"{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: api.model.read."}}"#.into())
            }
            _ => (401, r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#.into()),
        }
    })
}

#[test]
fn live_checks_against_the_configured_base_url() {
    let api = mock_openai();
    let home = file_home("openai-live");
    home.write_config(&format!(
        "[credentials.openai]\nprovider = \"openai\"\nbase_url = \"{}\"\n",
        api.base_url
    ));

    let revoked = run_with_stdin(&home, &["login", "openai", "--stdin", "--verify"], REVOKED_KEY);
    assert_eq!(revoked.status.code(), Some(6), "{}", stderr(&revoked));
    assert!(stderr(&revoked).contains("OpenAI rejected the key (invalid_api_key)"), "{}", stderr(&revoked));
    assert_eq!(run(&home, &["get", "openai"]).status.code(), Some(5), "a rejected key is not stored");

    let good = run_with_stdin(&home, &["login", "openai", "--stdin", "--verify"], KEY);
    assert!(good.status.success(), "{}", stderr(&good));
    let validate = run(&home, &["validate", "openai"]);
    assert_eq!(stdout(&validate), "valid: OpenAI accepted the key\n", "{}", stderr(&validate));

    let restricted =
        run_with_stdin(&home, &["login", "openai", "--stdin", "--verify", "--force"], RESTRICTED_KEY);
    assert!(restricted.status.success(), "{}", stderr(&restricted));
    assert!(stderr(&restricted).contains("valid but restricted"), "{}", stderr(&restricted));
    assert!(stdout(&run(&home, &["validate", "openai"])).starts_with("restricted: "));
}

#[test]
fn validate_offline_checks_the_format_only() {
    let home = file_home("openai-offline");
    assert!(run_with_stdin(&home, &["login", "openai", "--stdin"], KEY).status.success());
    let output = run(&home, &["validate", "openai", "--offline"]);
    assert_eq!(stdout(&output), "valid: the key has the format of an OpenAI key\n", "{}", stderr(&output));
}

/// At a terminal (a real pty from util-linux `script`), a paste that fails
/// the format check is asked for again instead of ending the login.
#[test]
fn an_interactive_login_asks_again_after_a_wrong_paste() {
    let home = file_home("openai-reprompt");
    let command = format!("{} login openai", support::keyhelper_exe().display());
    let mut script = home
        .command("script")
        .args(["-qec", &command, "/dev/null"])
        .env("KEYHELPER_SECRET_STORE", "file")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    script.stdin.take().unwrap().write_all(format!("not-a-key\n{KEY}\n").as_bytes()).unwrap();
    let output = support::finish(script);
    let seen = stdout(&output);
    assert!(output.status.success(), "{seen}{}", stderr(&output));
    assert!(seen.contains("starts with `sk-`") && seen.contains("try again"), "{seen}");
    assert_eq!(seen.matches("(input hidden)").count(), 2, "{seen}");
    assert_eq!(stdout(&run(&home, &["get", "openai"])), format!("{KEY}\n"));
}

/// `login --verify` that cannot reach the service says so, and why, and
/// stores nothing.
#[test]
fn login_verify_without_the_service_says_it_could_not_verify() {
    let home = file_home("openai-verify-offline");
    home.write_config("[credentials.team]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n");
    let output = run_with_stdin(&home, &["login", "openai", "--verify", "--stdin"], KEY);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert!(stderr(&output).contains("not stored: the key could not be verified"), "{}", stderr(&output));
    assert!(stderr(&output).contains("log in without --verify"), "{}", stderr(&output));
    assert!(!stderr(&output).contains(&KEY[10..]));
    assert_eq!(run(&home, &["get", "openai"]).status.code(), Some(5), "nothing was stored");
}
