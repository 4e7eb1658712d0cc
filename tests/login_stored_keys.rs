//! API-key vendors that are manifests only (`providers/anthropic.toml` and
//! the others, all served by the generic `stored-key` plugin): `login`
//! checks each vendor's key format, `get` serves the stored key, and
//! `validate` asks the vendor's API the way its manifest says (checked
//! against a loopback mock of Anthropic's `GET /v1/models`).

mod support;

use std::process::Output;

use support::{BoundedRun, Home, MockHttp, stderr, stdout};

const ANTHROPIC_KEY: &str = "sk-ant-api03-Abc123_def456-GHI789jkl012MNO345pqr678STU901vwx234YZ-AA";

fn run_with_stdin(home: &Home, args: &[&str], input: &str) -> Output {
    let mut command = home.keyhelper(args);
    command.env("KEYHELPER_SECRET_STORE", "file");
    support::with_stdin(command, input)
}

fn run(home: &Home, args: &[&str]) -> Output {
    home.keyhelper(args).env("KEYHELPER_SECRET_STORE", "file").output_within()
}

#[test]
fn anthropic_keys_are_checked_stored_served_and_verified_with_its_headers() {
    let home = Home::new("anthropic-login");
    let wrong =
        run_with_stdin(&home, &["login", "anthropic", "--stdin"], "sk-proj-Abc123_def456-GHI789jkl012MNO345");
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("anthropic API keys start with `sk-ant-`"), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("https://console.anthropic.com/settings/keys"), "{}", stderr(&wrong));
    assert!(!stderr(&wrong).contains("Abc123_def456"), "the paste was echoed: {}", stderr(&wrong));
    assert_eq!(stderr(&wrong).lines().count(), 1, "{}", stderr(&wrong));

    let login = run_with_stdin(&home, &["login", "anthropic", "--stdin"], ANTHROPIC_KEY);
    assert!(login.status.success(), "{}", stderr(&login));
    assert_eq!(stdout(&run(&home, &["get", "anthropic"])), format!("{ANTHROPIC_KEY}\n"));

    let api = MockHttp::start(|request| {
        let authentic = request.header("x-api-key") == Some(ANTHROPIC_KEY)
            && request.header("anthropic-version") == Some("2023-06-01")
            && request.header("authorization").is_none();
        match (request.path.as_str(), authentic) {
            ("/v1/models", true) => (200, r#"{"data":[{"id":"claude-sonnet-4-5"}]}"#.into()),
            _ => (401, r#"{"type":"error","error":{"type":"authentication_error"}}"#.into()),
        }
    });
    home.write_config(&format!(
        "[credentials.claude]\nprovider = \"anthropic\"\nbase_url = \"{}\"\n",
        api.base_url
    ));
    let validate = run(&home, &["validate", "claude"]);
    assert_eq!(stdout(&validate), "valid: anthropic accepted the key\n", "{}", stderr(&validate));
    let formats = stdout(&run(&home, &["get", "claude", "--format", "headers"]));
    assert_eq!(formats, format!("{{\"x-api-key\":\"{ANTHROPIC_KEY}\"}}\n"));
    assert_eq!(
        stdout(&run(&home, &["get", "claude", "--format", "env"])),
        format!("ANTHROPIC_API_KEY={ANTHROPIC_KEY}\n")
    );
}

/// Each vendor shipped as a manifest only: a key of its documented shape is
/// stored and served; one of another vendor's shape is refused where the
/// vendor documents a prefix.
#[test]
fn every_manifest_only_vendor_stores_and_serves_its_keys() {
    let home = Home::new("vendor-keys");
    for (vendor, key, foreign) in [
        ("mistral", "Abcdefghijklmnopqrstuvwxyz012345", None),
        (
            "groq",
            "gsk_Abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN",
            Some("sk-Abcdefghijklmnopqrstuvwxyz"),
        ),
        ("gemini", "AIzaSyAbcdefghijklmnopqrstuvwxyz0123456", Some("gsk_Abcdefghijklmnopqrstuvwxyz")),
        ("deepseek", "sk-0123456789abcdef0123456789abcdef", Some("AIzaSyAbcdefghijklmnopqrstuvwxyz01")),
        (
            "openrouter",
            "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            Some("sk-0123456789abcdef0123456789abcdef"),
        ),
        ("together", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", None),
        (
            "xai",
            "xai-Abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef01",
            Some("sk-Abcdefghijklmnopqrstuvwxyz"),
        ),
    ] {
        if let Some(foreign) = foreign {
            let refused = run_with_stdin(&home, &["login", vendor, "--stdin"], foreign);
            assert_eq!(refused.status.code(), Some(2), "{vendor}: {}", stderr(&refused));
            assert!(stderr(&refused).contains("API keys start with"), "{vendor}: {}", stderr(&refused));
        }
        let login = run_with_stdin(&home, &["login", vendor, "--stdin"], key);
        assert!(login.status.success(), "{vendor}: {}", stderr(&login));
        assert_eq!(stdout(&run(&home, &["get", vendor])), format!("{key}\n"), "{vendor}");
    }
    let providers = stdout(&run(&home, &["providers"]));
    for vendor in ["anthropic", "mistral", "groq", "gemini", "deepseek", "openrouter", "together", "xai"] {
        assert!(providers.contains(&format!("{vendor} — ")), "{vendor} missing from\n{providers}");
    }
}
