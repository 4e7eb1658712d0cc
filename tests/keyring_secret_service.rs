//! The keyring backend against a real Secret Service: GNOME Keyring in a
//! private D-Bus session (`dbus-run-session`), unlocked with a throwaway
//! password, checked with libsecret's `secret-tool`.

mod support;

use std::process::Command;

use support::{BoundedRun, Home};

const KEY: &str = "sk-proj-SecretService0123456789abcdefghijklmnopqrstuvwxyz";

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output_within().status.success()
}

#[test]
fn login_get_and_logout_through_gnome_keyring() {
    for tool in ["dbus-run-session", "gnome-keyring-daemon", "secret-tool"] {
        assert!(
            have(tool),
            "{tool} is missing: install dbus, gnome-keyring and libsecret-tools (`cargo xtask test` does)"
        );
    }
    let home = Home::new("secret-service");
    let runtime_dir = home.path().join("runtime");
    std::fs::create_dir_all(home.path().join(".cache")).unwrap();
    std::fs::create_dir_all(&runtime_dir).unwrap();
    std::fs::set_permissions(&runtime_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let script = r#"
        set -e
        eval "$(printf 'throwaway\n' | gnome-keyring-daemon --unlock --components=secrets)"
        echo "== status"; keyhelper status
        printf '%s' "$KEY" | keyhelper login openai --stdin
        echo "== get"; keyhelper get openai
        echo "== lookup"; secret-tool lookup service keyhelper username openai/default; echo
        echo "== list"; keyhelper list
        keyhelper logout openai
        echo "== after logout"; secret-tool lookup service keyhelper username openai/default || echo "(none)"
        keyhelper get openai || echo "get exit $?"
    "#;
    let output = home
        .command("dbus-run-session")
        .args(["--", "sh", "-c", script])
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        .env("PATH", format!("{}:/usr/bin:/bin", support::keyhelper_exe().parent().unwrap().display()))
        .env("KEY", KEY)
        .output_within();
    let out = support::stdout(&output);
    let err = support::stderr(&output);
    assert!(output.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("secret store:    keyring: OS keyring (Secret Service"), "{out}");
    assert!(out.contains("(an OS keyring answered)"), "{out}");
    assert!(err.contains("stored the openai secret for connection 'default' in OS keyring"), "{err}");
    let section = |name: &str| {
        out.split(&format!("== {name}\n"))
            .nth(1)
            .unwrap_or_default()
            .split("== ")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(section("get"), format!("{KEY}\n"));
    assert_eq!(section("lookup"), format!("{KEY}\n"), "the secret is in the Secret Service");
    assert!(section("list").contains("default                  openai                 keyring"), "{out}");
    assert!(section("after logout").starts_with("(none)"), "{out}");
    assert!(out.contains("get exit 5"), "{out}");
    assert!(support::files_containing(home.path(), KEY).is_empty(), "the key is in a plaintext file");
}
