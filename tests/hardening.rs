//! Faults a security review found, each driven as its attacker would: a
//! hostile provider output, a hostile local client, a careless config.

mod support;

use std::process::Stdio;

use support::{Home, stderr, stdout, with_stdin};

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

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A sealing key or secret store that other users can read is refused, with
/// the `chmod 600` that fixes it, instead of being used.
#[test]
fn keys_and_stores_open_to_other_users_are_refused() {
    const KEY: &str = "sk-proj-Abc123_def456-GHI789jkl012MNO345pqr678STU901vwx234YZ";
    let home = Home::new("exposed-store");
    let run = |args: &[&str], input: Option<&str>| {
        let mut command = home.keyhelper(args);
        command.env("KEYHELPER_SECRET_STORE", "file");
        match input {
            Some(input) => with_stdin(command, input),
            None => support::finish(command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()),
        }
    };
    assert!(run(&["login", "openai", "--stdin"], Some(KEY)).status.success());
    let secrets = home.path().join(".local/share/keyhelper/secrets");
    for file in ["secrets.key", "secrets.sealed"] {
        chmod(&secrets.join(file), 0o644);
        let get = run(&["get", "openai", "--no-cache"], None);
        assert_eq!(get.status.code(), Some(10), "{file}: {}", stderr(&get));
        assert!(get.stdout.is_empty());
        assert!(
            stderr(&get).contains(&format!("chmod 600 {}", secrets.join(file).display())),
            "{}",
            stderr(&get)
        );
        assert!(!stderr(&get).contains(KEY));
        assert_eq!(stderr(&get).lines().count(), 1, "one line: {}", stderr(&get));
        chmod(&secrets.join(file), 0o600);
        assert_eq!(stdout(&run(&["get", "openai", "--no-cache"], None)), format!("{KEY}\n"));
    }

    // The cache key: the cache is not used (neither served from nor written
    // with a key others may hold), and the warning names the fix.
    let home = home_with_az_token("exposed-cache-key", "eyJcached", "");
    assert!(home.run(&["get", "work"]).status.success());
    let key = home.path().join(".local/share/keyhelper/secrets/cache.key");
    chmod(&key, 0o640);
    let calls_before = std::fs::read_dir(home.path().join(".cache/keyhelper/credentials")).unwrap().count();
    let get = home.run(&["get", "work"]);
    assert_eq!(stdout(&get), "eyJcached\n", "{}", stderr(&get));
    assert!(stderr(&get).contains("chmod 600"), "{}", stderr(&get));
    assert!(stderr(&get).contains("continuing without the credential cache"), "{}", stderr(&get));
    let entries_after = std::fs::read_dir(home.path().join(".cache/keyhelper/credentials")).unwrap().count();
    assert_eq!(calls_before, entries_after, "nothing new was written with the exposed key");
}

/// keyhelper holds secrets in memory: it must never write them to a core
/// dump. Checked from the program `run` starts, which inherits keyhelper's
/// limit (the test harness's hard limit is higher: only keyhelper lowered it).
#[test]
fn keyhelper_never_dumps_core() {
    let home = home_with_az_token("no-core-dumps", "eyJcore", "");
    let run =
        home.run(&["run", "-e", "T=work", "--", "sh", "-c", "grep 'Max core file size' /proc/self/limits"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let fields: Vec<String> = stdout(&run).split_whitespace().map(str::to_string).collect();
    assert_eq!(fields[4..6], ["0", "0"], "soft and hard core size limits: {}", stdout(&run));
}

/// Whether `pid` is gone (or a zombie waiting for a parent that will reap it).
fn is_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
}

fn wait_for_file(path: &std::path::Path) -> u32 {
    let deadline = std::time::Instant::now() + support::CHILD_TIMEOUT;
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()) {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// SIGTERM or SIGINT to keyhelper while its provider runs stops the provider's
/// whole process tree, not only the command itself; SIGKILL, which cannot be
/// caught, still stops the command (its parent-death signal).
#[test]
fn stopping_keyhelper_stops_everything_its_provider_started() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGKILL] {
        let home = Home::new("stop-tree");
        home.fake_tool(
            "az",
            "#!/bin/sh\nsleep 300 &\necho $! > \"$HOME/grandchild.pid\"\necho $$ > \"$HOME/az.pid\"\nwait\n",
        );
        home.write_config("[credentials.work]\nprovider = \"azure\"\n");
        let mut get =
            home.keyhelper(&["get", "work"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let az = wait_for_file(&home.path().join("az.pid"));
        let grandchild = wait_for_file(&home.path().join("grandchild.pid"));
        // SAFETY: signals the child process this test started.
        unsafe { libc::kill(get.id() as libc::pid_t, signal) };
        support::wait_within(&mut get);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let caught = signal != libc::SIGKILL;
        while !(is_gone(az) && (!caught || is_gone(grandchild))) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(is_gone(az), "signal {signal}: az ({az}) outlived keyhelper");
        if !caught {
            // SAFETY: cleans up the `sleep` only a caught signal could reach.
            unsafe { libc::kill(grandchild as libc::pid_t, libc::SIGKILL) };
            continue;
        }
        assert!(is_gone(grandchild), "signal {signal}: what az started ({grandchild}) outlived keyhelper");
    }
}
