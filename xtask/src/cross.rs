//! The other operating systems, checked from Linux (part of `test`):
//!
//! - Windows: both executables cross-built for `x86_64-pc-windows-gnu`
//!   with mingw, then run under Wine against a fresh Wine prefix: `--version`,
//!   a bad config's error, a stored OpenAI key (in the encrypted file and in
//!   the Windows Credential Manager), and an Azure token through a fake
//!   `az.cmd` (found through `PATHEXT`, run through `cmd.exe`): fetched once,
//!   then served from the cache; git's, Docker's and kubectl's helper
//!   protocols; `run --env`; and the long-running parts (`wine_sessions`):
//!   the proxy, and a renewal in the background.
//! - macOS: `cargo clippy --target aarch64-apple-darwin -D warnings`. There
//!   is no macOS SDK here: the C that crates compile (ring) is type-checked
//!   against the stub headers in `.ci/macos-stubs`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};

use crate::shipped::run;
use crate::wine::{WINE, Wine, stderr, stdout, windows_path};
use crate::workspace_root;

/// The Windows target the executables are cross-built for.
pub const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";
/// The macOS target the host is linted for.
pub const MACOS_TARGET: &str = "aarch64-apple-darwin";
/// The packages these checks need, by the program each provides.
pub const CROSS_TOOLS: &[(&str, &str)] =
    &[("x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64"), (WINE, "wine64"), ("clang", "clang")];

/// The packages that the executables are made of.
const PACKAGES: [&str; 8] =
    ["-p", "keyhelper", "-p", "keyhelper-host", "-p", "keyhelper-compile", "-p", "keyhelper-core"];

/// `cargo clippy` for macOS, with the stub headers.
pub fn lint_macos() -> Result<()> {
    ensure_target(MACOS_TARGET)?;
    let stubs = workspace_root().join(".ci").join("macos-stubs");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: clippy for {MACOS_TARGET}");
    run(Command::new(cargo)
        .current_dir(workspace_root())
        .env("CC_aarch64_apple_darwin", "clang")
        .env("CFLAGS_aarch64_apple_darwin", format!("-ffreestanding -nostdlibinc -I{}", stubs.display()))
        .args(["clippy", "--target", MACOS_TARGET, "--bins", "--lib"])
        .args(PACKAGES)
        .args(["--", "-D", "warnings"]))
}

/// Cross-builds the Windows executables and runs them under Wine.
pub fn test_windows() -> Result<()> {
    ensure_target(WINDOWS_TARGET)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: building for {WINDOWS_TARGET}");
    // Warnings are errors in keyhelper's own crates (dependencies' lints are capped).
    let deny_warnings = format!("target.{WINDOWS_TARGET}.rustflags = [\"-D\", \"warnings\"]");
    let cargo_for_windows = |args: &[&str]| {
        let mut command = Command::new(&cargo);
        command.current_dir(workspace_root()).args(args).args([
            "--target",
            WINDOWS_TARGET,
            "--config",
            &deny_warnings,
        ]);
        command
    };
    run(cargo_for_windows(&["build", "--bins"]).args(&PACKAGES[..6]))?;
    run(&mut cargo_for_windows(&["test", "--no-run", "-p", "keyhelper-core"]))?;
    let bin = workspace_root().join("target").join(WINDOWS_TARGET).join("debug");
    build_prng_stand_in(&bin)?;
    std::fs::copy(bin.join("bcryptprimitives.dll"), bin.join("deps").join("bcryptprimitives.dll"))?;
    let wine = Wine::new(&bin)?;
    eprintln!("xtask: running keyhelper-core's unit tests under Wine (the platform layer's among them)");
    let runner = format!("CARGO_TARGET_{}_RUNNER", WINDOWS_TARGET.to_uppercase().replace('-', "_"));
    run(cargo_for_windows(&["test", "-p", "keyhelper-core"]).envs(wine.environment()).env(runner, WINE))?;
    eprintln!("xtask: running the Windows executables under Wine");
    version(&wine)?;
    bad_config(&wine)?;
    stored_key(&wine, "file")?;
    stored_key(&wine, "keyring")?;
    azure_through_az_cmd(&wine)?;
    crate::wine_sessions::background_renewal(&wine)?;
    crate::wine_sessions::proxy(&wine)?;
    eprintln!("xtask: Windows executables pass under Wine");
    Ok(())
}

fn ensure_target(target: &str) -> Result<()> {
    let installed = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| Path::new(String::from_utf8_lossy(&o.stdout).trim()).exists());
    if !installed {
        eprintln!("xtask: installing the {target} target with rustup");
        run(Command::new("rustup").args(["target", "add", target]))?;
    }
    Ok(())
}

/// `bcryptprimitives.dll` beside the executables: see `.ci/wine/`.
fn build_prng_stand_in(bin: &Path) -> Result<()> {
    let source = workspace_root().join(".ci").join("wine").join("bcryptprimitives.c");
    run(Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(bin.join("bcryptprimitives.dll"))
        .arg(source)
        .arg("-ladvapi32"))
}

fn version(wine: &Wine) -> Result<()> {
    let config = wine.write("empty.toml", "")?;
    let output = wine.keyhelper(&config, &["--version"], None)?;
    ensure!(output.status.success(), "keyhelper.exe --version failed: {}", stderr(&output));
    let expected = format!("keyhelper {}", env!("CARGO_PKG_VERSION"));
    ensure!(stdout(&output).trim() == expected, "--version printed {:?}, not {expected:?}", stdout(&output));
    eprintln!("xtask: wine: --version ✓");
    Ok(())
}

fn bad_config(wine: &Wine) -> Result<()> {
    let config = wine.write("bad.toml", "[credentials.work\nprovider = \"azure\"\n")?;
    let output = wine.keyhelper(&config, &["get", "work"], None)?;
    let message = stderr(&output);
    ensure!(
        output.status.code() == Some(3),
        "a bad config exited {:?}, not 3: {message}",
        output.status.code()
    );
    ensure!(stdout(&output).is_empty(), "a bad config printed on stdout: {}", stdout(&output));
    ensure!(
        message.lines().count() == 1 && message.contains("bad.toml:1:"),
        "a bad config's error is not one line naming the file and line: {message:?}"
    );
    eprintln!("xtask: wine: a bad config's error ✓");
    Ok(())
}

/// `login openai --stdin` into `store`, then `get` it.
fn stored_key(wine: &Wine, store: &str) -> Result<()> {
    let key = format!("sk-proj-wine{store}0123456789abcdefghijklmnopqrstuv");
    let config = wine.write(
        &format!("openai-{store}.toml"),
        &format!("[settings]\nsecret_store = \"{store}\"\n\n[credentials.oai]\nprovider = \"openai\"\nconnection = \"{store}\"\n"),
    )?;
    let login =
        wine.keyhelper(&config, &["login", "openai", "--connection", store, "--stdin"], Some(&key))?;
    ensure!(login.status.success(), "login openai into the {store} store failed: {}", stderr(&login));
    let get = wine.keyhelper(&config, &["get", "oai"], None)?;
    ensure!(get.status.success(), "get of a stored key ({store}) failed: {}", stderr(&get));
    ensure!(stdout(&get) == format!("{key}\n"), "get printed {:?}, not the stored key", stdout(&get));
    eprintln!("xtask: wine: a stored OpenAI key in the {store} store ✓");
    Ok(())
}

/// A fake `az.cmd` that prints what `az account get-access-token -o json`
/// prints (azure-cli 2.x) and counts its calls: the first `get` runs it, the
/// second is served from the cache.
fn azure_through_az_cmd(wine: &Wine) -> Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ3aW5lIn0.c2lnbmF0dXJl";
    let expires = now + 3600;
    let json = [
        "{".to_string(),
        format!("  \"accessToken\": \"{token}\","),
        "  \"expiresOn\": \"2099-12-31 23:00:00.000000\",".into(),
        format!("  \"expires_on\": {expires},"),
        "  \"subscription\": \"0b1f6471-1bf0-4dda-aec3-111122223333\",".into(),
        "  \"tenant\": \"72f988bf-86f1-41af-91ab-2d7cd011db47\",".into(),
        "  \"tokenType\": \"Bearer\"".into(),
        "}".into(),
    ];
    let mut script = String::from("@echo off\r\necho %* >> \"%~dp0az.log\"\r\n");
    for line in json {
        script.push_str(&format!("echo {line}\r\n"));
    }
    std::fs::write(wine.dir.join("bin").join("az.cmd"), script)?;
    let config = wine.write(
        "azure.toml",
        "[credentials.work]\nprovider = \"azure\"\n\n[git.\"git.example.com\"]\ncredential = \"work\"\nusername = \"bot\"\n\n[docker.\"registry.example.com\"]\ncredential = \"work\"\nusername = \"00000000-0000-0000-0000-000000000000\"\n",
    )?;
    for call in ["fetched", "cached"] {
        let output = wine.keyhelper(&config, &["get", "work"], None)?;
        ensure!(output.status.success(), "get of an azure credential ({call}) failed: {}", stderr(&output));
        ensure!(stdout(&output) == format!("{token}\n"), "get printed {:?}, not the token", stdout(&output));
    }
    let log = std::fs::read_to_string(wine.dir.join("bin").join("az.log")).context("az.cmd never ran")?;
    let calls: Vec<&str> = log.lines().collect();
    if calls.len() != 1 {
        bail!("az.cmd ran {} times for two gets (the second should be a cache hit): {log}", calls.len());
    }
    ensure!(
        calls[0].trim()
            == "account get-access-token --scope https://cognitiveservices.azure.com/.default --output json",
        "az.cmd got {:?}",
        calls[0]
    );
    eprintln!("xtask: wine: an Azure token through az.cmd, then from the cache ✓");
    helpers(wine, &config, token)
}

/// The same token through git's and Docker's helper protocols, and in a
/// program's environment with `run`.
fn helpers(wine: &Wine, config: &Path, token: &str) -> Result<()> {
    let git =
        wine.keyhelper(config, &["git-credential", "get"], Some("protocol=https\nhost=git.example.com\n\n"))?;
    ensure!(git.status.success(), "git-credential get failed: {}", stderr(&git));
    ensure!(
        stdout(&git).lines().any(|l| l == format!("password={token}"))
            && stdout(&git).contains("username=bot\n"),
        "git-credential get printed {:?}",
        stdout(&git)
    );
    eprintln!("xtask: wine: git's credential helper protocol ✓");

    // Docker runs `docker-credential-keyhelper.exe`, a copy of keyhelper.exe
    // beside keyhelper-full.exe.
    let docker = wine.bin.join("docker-credential-keyhelper.exe");
    std::fs::copy(wine.bin.join("keyhelper.exe"), &docker)?;
    let mut command = wine.command(&docker.to_string_lossy());
    command
        .arg("get")
        .env("KEYHELPER_CONFIG", windows_path(config))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = command.stderr(Stdio::piped()).spawn()?;
    std::io::Write::write_all(&mut child.stdin.take().expect("piped"), b"registry.example.com")?;
    let reply = child.wait_with_output()?;
    ensure!(reply.status.success(), "the docker helper failed: {}", stdout(&reply));
    let expected = serde_json::json!({
        "ServerURL": "registry.example.com",
        "Username": "00000000-0000-0000-0000-000000000000",
        "Secret": token,
    });
    let replied: serde_json::Value = serde_json::from_slice(&reply.stdout)
        .with_context(|| format!("the docker helper replied {:?}", stdout(&reply)))?;
    ensure!(replied == expected, "the docker helper replied {replied}");
    eprintln!("xtask: wine: Docker's credential helper protocol, by the executable's name ✓");

    let mut command = wine.command(&wine.bin.join("keyhelper.exe").to_string_lossy());
    command.args(["get", "work", "--format", "k8s"]).env("KEYHELPER_CONFIG", windows_path(config)).env(
        "KUBERNETES_EXEC_INFO",
        r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
    );
    let kubectl = command.output()?;
    ensure!(kubectl.status.success(), "get --format k8s failed: {}", stderr(&kubectl));
    let credential: serde_json::Value = serde_json::from_slice(&kubectl.stdout)
        .with_context(|| format!("get --format k8s printed {:?}", stdout(&kubectl)))?;
    ensure!(
        credential["kind"] == "ExecCredential"
            && credential["apiVersion"] == "client.authentication.k8s.io/v1"
            && credential["status"]["token"] == token,
        "get --format k8s printed {credential}"
    );
    eprintln!("xtask: wine: kubectl's ExecCredential ✓");

    let run = wine.keyhelper(
        config,
        &["run", "--env", "work", "--", "cmd.exe", "/c", "set", "AZURE_OPENAI_AD_TOKEN"],
        None,
    )?;
    ensure!(run.status.success(), "run --env failed: {}", stderr(&run));
    ensure!(
        stdout(&run).trim_end() == format!("AZURE_OPENAI_AD_TOKEN={token}"),
        "the program run saw {:?}",
        stdout(&run)
    );
    let exit = wine.keyhelper(config, &["run", "--env", "work", "--", "cmd.exe", "/c", "exit", "7"], None)?;
    ensure!(exit.status.code() == Some(7), "run passed on exit code {:?}, not 7", exit.status.code());
    eprintln!("xtask: wine: run --env, passing the program's exit code on ✓");
    Ok(())
}
