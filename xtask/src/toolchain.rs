//! Installing what builds and tests need, and running the whole test suite.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::shipped::{FULL_PROFILE, SMALL_PROFILE, ShippedBuild, run};
use crate::workspace_root;

/// The target provider plugins are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Python tools the integration tests drive for real (pinned major versions).
const PYTHON_TOOLS: &[&str] = &["awscli==1.*", "moto[server]==5.*", "openai==1.*"];

/// Aider, the AI pair programmer, in a virtualenv of its own: it pins other
/// versions of the packages above.
const AIDER: &[&str] = &["aider-chat==0.86.*"];

/// npm packages the integration tests run for real: a real OpenID Connect
/// server (exact version: the tests' launcher uses its discovery handler).
const NODE_TOOLS: &[&str] = &["oauth2-mock-server@8.2.3"];

/// Programs the integration tests run for real, with the Debian package of each.
const SYSTEM_TOOLS: &[(&str, &str)] = &[
    ("git", "git"),
    ("node", "nodejs"),
    ("npm", "npm"),
    ("dbus-run-session", "dbus"),
    ("gnome-keyring-daemon", "gnome-keyring"),
    ("secret-tool", "libsecret-tools"),
    ("gpg", "gnupg"),
    ("pass", "pass"),
];

/// Installs missing test programs with apt when running as root on Debian or
/// Ubuntu; otherwise says exactly what to install.
fn ensure_system_tools() -> Result<()> {
    let on_path = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = SYSTEM_TOOLS
        .iter()
        .chain(crate::cross::CROSS_TOOLS)
        .filter(|(tool, _)| !on_path(tool))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !(root && on_path("apt-get")) {
        bail!(
            "the tests need these packages: {0}; install them (e.g. `sudo apt-get install {0}`) and retry",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {} with apt-get", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Installs the wasm target with rustup unless rustc already has it.
pub fn ensure_wasm_target() -> Result<()> {
    if wasm_target_installed() {
        return Ok(());
    }
    eprintln!("xtask: installing the {WASM_TARGET} target with rustup");
    let status = Command::new("rustup").args(["target", "add", WASM_TARGET]).status();
    match status {
        Ok(s) if s.success() && wasm_target_installed() => Ok(()),
        Ok(_) => bail!("`rustup target add {WASM_TARGET}` failed; install the target, then retry"),
        Err(e) => bail!(
            "the {WASM_TARGET} target is missing and rustup could not be run ({e}); install the target for your Rust toolchain"
        ),
    }
}

fn wasm_target_installed() -> bool {
    Command::new("rustc")
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| Path::new(String::from_utf8_lossy(&o.stdout).trim()).exists())
}

/// A Python virtualenv under `target/` with the tools the tests use.
pub fn ensure_python_tools() -> Result<PathBuf> {
    ensure_venv("venv", PYTHON_TOOLS)
}

/// A Python virtualenv under `target/` with Aider.
fn ensure_aider() -> Result<PathBuf> {
    ensure_venv("aider", AIDER)
}

/// `target/test-tools/<name>`, a virtualenv with `packages`; returns its `bin`.
fn ensure_venv(name: &str, packages: &[&str]) -> Result<PathBuf> {
    let venv = workspace_root().join("target").join("test-tools").join(name);
    install_once(&venv, packages, || {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages))
    })?;
    Ok(venv.join("bin"))
}

/// Runs `install` for `packages` into `dir` unless the marker file there
/// says they are installed already; then writes the marker.
fn install_once(dir: &Path, packages: &[&str], install: impl FnOnce() -> Result<()>) -> Result<()> {
    let marker = dir.join(".installed");
    let wanted = packages.join(" ");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(());
    }
    eprintln!("xtask: installing {wanted} into {}", dir.display());
    std::fs::create_dir_all(dir)?;
    install()?;
    std::fs::write(&marker, wanted)?;
    Ok(())
}

/// `target/test-tools/node`, an npm prefix with the packages the tests use;
/// returns it.
pub fn ensure_node_tools() -> Result<PathBuf> {
    let prefix = workspace_root().join("target").join("test-tools").join("node");
    install_once(&prefix, NODE_TOOLS, || {
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
            .arg(&prefix)
            .args(NODE_TOOLS))
    })?;
    Ok(prefix)
}

/// `cargo xtask test`: everything CI checks. `cargo xtask test -- ARGS`
/// runs only `cargo test -p keyhelper-host ARGS` (the host and its
/// integration tests, e.g. `--test cache`) after the same preparation and
/// checks.
pub fn test(args: &[String]) -> Result<()> {
    ensure_wasm_target()?;
    ensure_system_tools()?;
    let tools = ensure_python_tools()?;
    let aider = ensure_aider()?;
    let node = ensure_node_tools()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = workspace_root();
    run(Command::new(&cargo).current_dir(&root).args(["fmt", "--all", "--check"]))?;
    run(Command::new(&cargo).current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The example plugin is its own workspace, as a third party's would be.
    let example = root.join("examples/pass/Cargo.toml");
    run(Command::new(&cargo).current_dir(&root).args(["fmt", "--check", "--manifest-path"]).arg(&example))?;
    run(Command::new(&cargo)
        .current_dir(&root)
        .args(["clippy", "--all-targets", "--manifest-path"])
        .arg(&example)
        .args(["--", "-D", "warnings"]))?;
    run(Command::new(&cargo).current_dir(&root).args(["test", "--manifest-path"]).arg(&example))?;
    // The host's integration tests run the executables as they ship; the
    // small one and the plugin compiler belong to other packages, so they are
    // built first, into the same directory (and the host without Cranelift).
    // The other crates (core, plugins, which ship as wasm, and xtask) build
    // as usual.
    let shipped = ShippedBuild::for_host()?;
    run(Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--package", "keyhelper", "--package", "keyhelper-compile"])
        .args(shipped.cargo_args()))?;
    let extra: Vec<&String> = args.iter().skip_while(|a| *a == "--").collect();
    run(Command::new(&cargo)
        .current_dir(&root)
        .env("KEYHELPER_TEST_TOOLS", &tools)
        .env("KEYHELPER_TEST_AIDER", &aider)
        .env("KEYHELPER_TEST_NODE", &node)
        .args(["test", "--package", "keyhelper-host"])
        .args(shipped.cargo_args())
        .args(&extra))?;
    if !extra.is_empty() {
        return Ok(());
    }
    run(Command::new(&cargo).current_dir(&root).args([
        "test",
        "--workspace",
        "--exclude",
        "keyhelper-host",
    ]))?;
    crate::layers::check()?;
    crate::artifacts::check()?;
    crate::cross::test_windows()?;
    crate::cross::lint_macos()
}

/// `cargo xtask install`: the wasm target, then the three executables
/// (`keyhelper` from `front/`, `keyhelper-full` from `host/`,
/// `keyhelper-compile` from `compiler/`) with `cargo install`, built as they
/// ship (see [`ShippedBuild`]) in one shared target directory.
pub fn install() -> Result<()> {
    ensure_wasm_target()?;
    let shipped = ShippedBuild::for_host()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = workspace_root().join("target").join("install");
    for (package, profile) in [("host", FULL_PROFILE), ("compiler", "release"), ("front", SMALL_PROFILE)] {
        run(Command::new(&cargo)
            .current_dir(workspace_root())
            .args(["install", "--locked", "--path", package, "--profile", profile, "--target-dir"])
            .arg(&target_dir)
            .args(shipped.cargo_args()))?;
    }
    install_man_pages()
}

/// Has the installed `keyhelper-full` write its man pages into
/// `$XDG_DATA_HOME/man/man1` (`~/.local/share/man/man1`), where `man` finds
/// them on most systems (not on Windows, which has no `man`).
fn install_man_pages() -> Result<()> {
    if cfg!(windows) {
        println!("xtask: man pages are not installed on Windows (no `man` there); see `keyhelper --help`");
        return Ok(());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).context("HOME is not set")?;
    // Where `cargo install` put the executables: $CARGO_INSTALL_ROOT, else $CARGO_HOME.
    let cargo_home = std::env::var_os("CARGO_INSTALL_ROOT")
        .or_else(|| std::env::var_os("CARGO_HOME"))
        .map_or_else(|| home.join(".cargo"), PathBuf::from);
    let data_home =
        std::env::var_os("XDG_DATA_HOME").map_or_else(|| home.join(".local/share"), PathBuf::from);
    let man_dir = data_home.join("man/man1");
    run(Command::new(cargo_home.join("bin/keyhelper-full")).arg("man-pages").arg(&man_dir))?;
    println!("xtask: man pages in {} (`man keyhelper`)", man_dir.display());
    Ok(())
}
