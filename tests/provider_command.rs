//! The `command` provider: a token from the user's own tool (the
//! opencode seed's "my-auth-cli get-token"), run exactly as configured with
//! no shell, as text or JSON with an expiry, within the credential's timeout
//! and output cap, seeing only the variables it lists.

mod support;

use support::{BoundedRun, Home, stderr, stdout};

fn home(tag: &str, script: &str, credential: &str) -> Home {
    let home = Home::new(tag);
    home.fake_tool("my-auth-cli", script);
    home.write_config(&format!("[credentials.gateway]\nprovider = \"command\"\n{credential}"));
    home
}

fn calls(home: &Home) -> usize {
    std::fs::read_to_string(home.path().join("calls")).map_or(0, |s| s.lines().count())
}

#[test]
fn json_with_an_expiry_is_cached_until_then() {
    let home = home(
        "command-json",
        "#!/bin/sh\necho \"$*\" >> \"$HOME/calls\"\necho '{\"data\":{\"token\":\"gw-token-1\"},\"expires\":\"2100-01-01T00:00:00Z\"}'\n",
        "command = [\"my-auth-cli\", \"get-token\", \"--audience\", \"litellm\"]\nformat = \"json\"\ntoken_field = \"data.token\"\nexpiry_field = \"expires\"\n",
    );
    for _ in 0..3 {
        assert_eq!(stdout(&home.run(&["get", "gateway"])), "gw-token-1\n");
    }
    assert_eq!(calls(&home), 1, "cached until its expiry");
    assert_eq!(
        std::fs::read_to_string(home.path().join("calls")).unwrap(),
        "get-token --audience litellm\n",
        "exactly the configured arguments, options included"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&home.run(&["get", "gateway", "--format", "json"]))).unwrap();
    assert_eq!(json["expires_at"], 4_102_444_800i64);
}

#[test]
fn text_is_the_token_and_cache_ttl_caches_it() {
    let home = home(
        "command-text",
        "#!/bin/sh\necho call >> \"$HOME/calls\"\nprintf '  plain-token-2\\n'\n",
        "command = [\"my-auth-cli\"]\ncache_ttl = \"1h\"\n",
    );
    assert_eq!(stdout(&home.run(&["get", "gateway"])), "plain-token-2\n");
    assert_eq!(stdout(&home.run(&["get", "gateway"])), "plain-token-2\n");
    assert_eq!(calls(&home), 1);
}

#[test]
fn a_failing_command_shows_the_last_line_of_its_stderr() {
    let home = home(
        "command-fails",
        "#!/bin/sh\necho 'contacting idp' >&2\necho 'error: session expired, run my-auth-cli login' >&2\nexit 3\n",
        "command = [\"my-auth-cli\", \"get-token\"]\n",
    );
    let get = home.run(&["get", "gateway"]);
    assert_eq!(get.status.code(), Some(7), "{}", stderr(&get));
    assert!(get.stdout.is_empty());
    assert!(
        stderr(&get)
            .contains("`my-auth-cli` failed (exit code 3): error: session expired, run my-auth-cli login"),
        "{}",
        stderr(&get)
    );
    assert_eq!(stderr(&get).lines().count(), 1, "{}", stderr(&get));
}

#[test]
fn a_token_the_command_prints_on_stderr_as_it_fails_is_not_shown() {
    let home = home(
        "command-fails-loudly",
        "#!/bin/sh\necho 'error: refusing token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig0123 (expired)' >&2\nexit 1\n",
        "command = [\"my-auth-cli\", \"get-token\"]\n",
    );
    let get = home.run(&["get", "gateway"]);
    assert_eq!(get.status.code(), Some(7), "{}", stderr(&get));
    assert!(stderr(&get).contains("error: refusing token [redacted] (expired)"), "{}", stderr(&get));
    assert!(!stderr(&get).contains("eyJ"), "{}", stderr(&get));
}

#[test]
fn the_timeout_and_the_output_cap_stop_the_command() {
    let slow = home(
        "command-slow",
        "#!/bin/sh\nsleep 30\necho late\n",
        "command = [\"my-auth-cli\"]\ntimeout = \"1s\"\n",
    );
    let started = std::time::Instant::now();
    let get = slow.run(&["get", "gateway"]);
    assert_ne!(get.status.code(), Some(0));
    assert!(stderr(&get).contains("did not finish within 1s"), "{}", stderr(&get));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "stopped after {:?}", started.elapsed());

    let chatty = home(
        "command-chatty",
        "#!/bin/sh\nexec yes\n",
        "command = [\"my-auth-cli\"]\nmax_output = \"1024\"\n",
    );
    let get = chatty.run(&["get", "gateway"]);
    assert_ne!(get.status.code(), Some(0));
    assert!(stderr(&get).contains("printed more than 1024 bytes"), "{}", stderr(&get));
}

#[test]
fn the_command_sees_only_the_variables_it_lists_and_runs_nothing_else() {
    let home = home(
        "command-env",
        "#!/bin/sh\necho \"${IDP_TENANT:-none}/${OTHER_SECRET:-none}\"\n",
        "command = [\"my-auth-cli\"]\nenv = [\"IDP_TENANT\"]\n",
    );
    let get = home
        .keyhelper(&["get", "gateway"])
        .env("IDP_TENANT", "contoso")
        .env("OTHER_SECRET", "leak")
        .output_within();
    assert_eq!(stdout(&get), "contoso/none\n", "{}", stderr(&get));

    // Another command line than the configured one is not granted: a bad
    // `command` value is a config error, not a way around the grant.
    home.write_config("[credentials.gateway]\nprovider = \"command\"\ncommand = \"my-auth-cli\"\n");
    let bad = home.run(&["get", "gateway"]);
    assert_eq!(bad.status.code(), Some(3), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("must be a non-empty list of strings"), "{}", stderr(&bad));
}
