//! The audit log: one whole JSON line per secret served, from the small
//! executable's cache hits as from the full path, never the secret; safe
//! under concurrent processes; off with `[settings] audit = false`; shown by
//! `keyhelper log`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use support::{Home, stderr, stdout};

const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOi.audit-secret.sig";

fn home(tag: &str, settings: &str) -> Home {
    let home = Home::new(tag);
    home.fake_tool(
        "az",
        &format!("#!/bin/sh\necho '{{\"accessToken\":\"{TOKEN}\",\"expires_on\":4102444800}}'\n"),
    );
    home.write_config(&format!("{settings}[credentials.work]\nprovider = \"azure\"\n"));
    home
}

fn audit_lines(home: &Home) -> Vec<serde_json::Value> {
    let path = home.path().join(".local/state/keyhelper/audit.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(!text.contains(TOKEN) && !text.contains("audit-secret"), "the secret is in the audit log");
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"))).collect()
}

#[test]
fn every_secret_served_is_one_line_from_either_executable_and_never_the_secret() {
    let home = home("audit-lines", "");
    assert_eq!(stdout(&home.run(&["get", "work"])), format!("{TOKEN}\n")); // full path: a miss
    assert_eq!(stdout(&home.run(&["get", "work"])), format!("{TOKEN}\n")); // small executable: a hit
    let failed = home.run(&["get", "nosuch"]);
    assert_eq!(failed.status.code(), Some(5));
    let export = home.run(&["export", "T=work"]);
    assert!(export.status.success(), "{}", stderr(&export));

    let lines = audit_lines(&home);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!((lines[0]["mode"].as_str(), lines[0]["cache"].as_str()), (Some("get"), Some("miss")));
    assert_eq!((lines[1]["mode"].as_str(), lines[1]["cache"].as_str()), (Some("get"), Some("hit")));
    for line in &lines[..2] {
        assert_eq!(line["credential"], "work");
        assert_eq!(line["provider"], "azure");
        assert_eq!(line["outcome"], "served");
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
    }
    assert_eq!(lines[2]["credential"], "nosuch");
    assert_eq!(lines[2]["outcome"], "failed (exit 5)");
    assert_eq!(lines[3]["mode"], "export");
    let mode = std::fs::metadata(home.path().join(".local/state/keyhelper/audit.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let shown = stdout(&home.run(&["log"]));
    assert!(shown.lines().nth(1).unwrap().contains("get     work (azure)  cache hit  served"), "{shown}");
    let as_json = stdout(&home.run(&["log", "--json"]));
    assert_eq!(as_json.lines().count(), 4);
    assert!(!shown.contains(TOKEN) && !as_json.contains(TOKEN));
}

#[test]
fn concurrent_gets_leave_one_whole_line_each() {
    let home = home("audit-racers", "");
    assert!(home.run(&["get", "work"]).status.success());
    let racers: Vec<_> = (0..32)
        .map(|_| {
            home.keyhelper(&["get", "work"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for racer in racers {
        let output = support::finish(racer);
        assert_eq!(stdout(&output), format!("{TOKEN}\n"), "{}", stderr(&output));
    }
    let lines = audit_lines(&home);
    assert_eq!(lines.len(), 33, "one line per get, each whole JSON");
    assert!(lines.iter().all(|l| l["credential"] == "work" && l["outcome"] == "served"));
}

#[test]
fn audit_false_turns_it_off_for_both_executables() {
    let home = home("audit-off", "[settings]\naudit = false\n\n");
    assert!(home.run(&["get", "work"]).status.success());
    assert!(home.run(&["get", "work"]).status.success());
    assert!(!home.path().join(".local/state/keyhelper/audit.jsonl").exists());

    // Turned on again, the small executable sees it (the config's bytes changed).
    home.write_config("[credentials.work]\nprovider = \"azure\"\n");
    assert!(home.run(&["get", "work"]).status.success());
    assert!(home.run(&["get", "work"]).status.success());
    assert_eq!(audit_lines(&home).len(), 2);
}

#[test]
fn log_follow_prints_lines_as_they_come() {
    let home = home("audit-follow", "");
    assert!(home.run(&["get", "work"]).status.success());
    let mut follow = home.keyhelper(&["log", "--follow", "--json"]).stdout(Stdio::piped()).spawn().unwrap();
    let lines = support::BoundedLines::new(follow.stdout.take().unwrap());
    assert!(lines.next_line().unwrap().contains("\"cache\":\"miss\""));
    assert!(home.run(&["get", "work"]).status.success());
    assert!(lines.next_line().expect("the new line is followed").contains("\"cache\":\"hit\""));
    follow.kill().unwrap();
    let _ = follow.wait();
}
