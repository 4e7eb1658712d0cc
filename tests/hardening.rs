//! Faults a security review found, each driven as its attacker would: a
//! hostile provider output, a hostile local client, a careless config.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::{Home, stderr, stdout};

fn with_stdin(mut command: Command, input: &str) -> Output {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    support::finish(child)
}

/// A home whose `work` credential comes from a fake `az` answering `token`
/// (a JSON string body, escapes allowed).
fn home_with_az_token(tag: &str, token_json: &str, extra_config: &str) -> Home {
    let home = Home::new(tag);
    home.fake_tool(
        "az",
        &format!(
            "#!/bin/sh\ncat <<'JSON'\n{{\"accessToken\":\"{token_json}\",\"expires_on\":4102444800,\"tokenType\":\"Bearer\"}}\nJSON\n"
        ),
    );
    home.write_config(&format!("[credentials.work]\nprovider = \"azure\"\n{extra_config}"));
    home
}

/// A secret with a newline would write extra lines (`host=`, `username=`)
/// into git's credential protocol; real git must get no injected attribute.
#[test]
fn git_never_receives_lines_injected_by_a_secret() {
    let home = home_with_az_token(
        "git-injection",
        r"eyJpart\nhost=attacker.example\nusername=evil",
        "\n[git.\"git.example.com\"]\ncredential = \"work\"\n",
    );
    std::fs::write(
        home.path().join(".gitconfig"),
        format!("[credential]\n\thelper = \"!{} git-credential\"\n", support::keyhelper_exe().display()),
    )
    .unwrap();
    let mut git = home.command("git");
    git.args(["credential", "fill"]).env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_TERMINAL_PROMPT", "0");
    let fill = with_stdin(git, "protocol=https\nhost=git.example.com\n\n");
    assert!(!fill.status.success(), "git got no credential: {}", stdout(&fill));
    assert!(!stdout(&fill).contains("attacker") && !stdout(&fill).contains("evil"), "{}", stdout(&fill));
    assert!(
        stderr(&fill).contains("line break"),
        "keyhelper's one line reaches git's stderr: {}",
        stderr(&fill)
    );
    assert!(!stderr(&fill).contains("eyJpart"), "the secret is never quoted: {}", stderr(&fill));

    let direct =
        with_stdin(home.keyhelper(&["git-credential", "get"]), "protocol=https\nhost=git.example.com\n\n");
    assert_eq!(direct.status.code(), Some(2), "{}", stderr(&direct));
    assert!(direct.stdout.is_empty());

    // --format env is line-based too; JSON keeps the secret whole.
    let env = home.run(&["get", "work", "--format", "env"]);
    assert_eq!(env.status.code(), Some(2), "{}", stderr(&env));
    assert!(env.stdout.is_empty());
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&home.run(&["get", "work", "--format", "json"]))).unwrap();
    assert_eq!(json["token"], "eyJpart\nhost=attacker.example\nusername=evil");
}
