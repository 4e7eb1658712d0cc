//! The example out-of-tree plugin (`examples/pass`) end to end: built like a
//! third party would build it, installed with the CLI, and fetching a secret
//! from a real password store (Debian's `pass` and `gnupg`) encrypted to a
//! throwaway GPG key made in batch mode.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{Home, stderr, stdout};

/// Builds `examples/pass` for wasm32-wasip2 the way
/// `cargo xtask build-plugins --path examples/pass` does.
fn build_example() -> Vec<u8> {
    let root = support::repo_root();
    let target_dir = root.join("target/plugin-build/external");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(root.join("examples/pass/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .unwrap();
    assert!(status.success(), "building examples/pass failed");
    std::fs::read(target_dir.join("wasm32-wasip2/release/keyhelper_plugin_pass.wasm")).unwrap()
}

fn run_ok(home: &Home, program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = home
        .command(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} is missing ({e}): install pass and gnupg (`cargo xtask test` does)")
        });
    child.stdin.take().unwrap().write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    let output = support::finish(child);
    assert!(output.status.success(), "{program} {args:?}: {}", stderr(&output));
    stdout(&output)
}

#[test]
fn the_pass_example_serves_a_secret_from_a_real_password_store() {
    let home = Home::new("pass");
    let gnupg = home.path().join(".gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    run_ok(
        &home,
        "gpg",
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "keyhelper test <test@keyhelper.invalid>",
            "default",
            "default",
            "never",
        ],
        None,
    );
    run_ok(&home, "pass", &["init", "test@keyhelper.invalid"], None);
    run_ok(
        &home,
        "pass",
        &["insert", "--multiline", "api/openai"],
        Some("sk-from-pass-0123456789\nuser: team\n"),
    );

    let manifest = support::repo_root().join("examples/pass/plugin.toml");
    let install = home.install_plugin("pass.wasm", &build_example(), &manifest);
    assert!(install.status.success(), "{}", stderr(&install));
    assert!(stderr(&install).contains("run `pass show *`"), "{}", stderr(&install));

    home.write_config(
        "[credentials.openai]\nprovider = \"pass\"\nentry = \"api/openai\"\n\n[credentials.nope]\nprovider = \"pass\"\nentry = \"api/nope\"\n",
    );
    let get = home.run(&["get", "openai"]);
    assert_eq!(stdout(&get), "sk-from-pass-0123456789\n", "{}", stderr(&get));
    let missing = home.run(&["get", "nope"]);
    assert_eq!(missing.status.code(), Some(5), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("`api/nope` is not in the password store"), "{}", stderr(&missing));

    // gpg started an agent for this throwaway home; stop it.
    let _ = home.command("gpgconf").args(["--kill", "gpg-agent"]).status();
}
