//! Installing what builds and tests need, and running the whole test suite.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// The target provider plugins are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Python tools the integration tests drive for real (pinned major versions).
const PYTHON_TOOLS: &[&str] = &["awscli==1.*", "moto[server]==5.*", "openai==1.*"];

/// Programs the integration tests run for real, with the Debian package of each.
const SYSTEM_TOOLS: &[(&str, &str)] = &[
    ("git", "git"),
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
    let missing: Vec<&str> =
        SYSTEM_TOOLS.iter().filter(|(tool, _)| !on_path(tool)).map(|(_, package)| *package).collect();
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
    let venv = workspace_root().join("target").join("test-tools").join("venv");
    let bin = venv.join("bin");
    let marker = venv.join(".installed");
    let wanted = PYTHON_TOOLS.join(" ");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(bin);
    }
    eprintln!("xtask: installing {wanted} into {}", venv.display());
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(bin.join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PYTHON_TOOLS))?;
    std::fs::write(&marker, wanted)?;
    Ok(bin)
}

/// `cargo xtask test`: everything CI checks. `cargo xtask test -- ARGS`
/// runs only `cargo test -p keyhelper ARGS` (the host and its integration
/// tests, e.g. `--test cache`) after the same preparation and checks.
pub fn test(args: &[String]) -> Result<()> {
    ensure_wasm_target()?;
    ensure_system_tools()?;
    let tools = ensure_python_tools()?;
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
    // The host and its integration tests run the executables as they ship;
    // the other crates (plugins, which ship as wasm, and xtask) build as usual.
    let extra: Vec<&String> = args.iter().skip_while(|a| *a == "--").collect();
    run(Command::new(&cargo)
        .current_dir(&root)
        .env("KEYHELPER_TEST_TOOLS", &tools)
        .args(["test", "--package", "keyhelper"])
        .args(ShippedBuild::for_host()?.cargo_args())
        .args(&extra))?;
    if !extra.is_empty() {
        return Ok(());
    }
    run(Command::new(&cargo).current_dir(&root).args(["test", "--workspace", "--exclude", "keyhelper"]))
}

/// `cargo xtask install`: the wasm target, then `cargo install --path host`
/// built as it ships (see [`ShippedBuild`]).
pub fn install() -> Result<()> {
    ensure_wasm_target()?;
    let shipped = ShippedBuild::for_host()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(workspace_root())
        .args(["install", "--locked", "--path", "host"])
        .args(shipped.cargo_args()))
}

/// How the `keyhelper` executable is built for users, and so for the tests
/// and benchmarks too.
///
/// On Linux with glibc it is linked statically and position-dependent: no
/// dynamic loader, no libraries to map, no relocations to apply at start,
/// which halves the cost of every cache hit. glibc resolves host names from
/// /etc/hosts and DNS itself; only optional NSS modules are loaded at run time.
/// The flags go through `--target`, so cargo keeps them off build scripts and
/// proc-macros, which cannot be static. Elsewhere the build is cargo's default.
pub struct ShippedBuild {
    /// The host triple, when it is built static.
    static_target: Option<String>,
}

impl ShippedBuild {
    /// The shipped build for the machine we run on.
    pub fn for_host() -> Result<Self> {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let output =
            Command::new(&rustc).arg("-vV").output().with_context(|| format!("running {rustc} -vV"))?;
        let version = String::from_utf8_lossy(&output.stdout);
        let host = version
            .lines()
            .find_map(|line| line.strip_prefix("host: "))
            .with_context(|| format!("`{rustc} -vV` printed no host triple"))?;
        let static_target = host.ends_with("-linux-gnu").then(|| host.to_string());
        Ok(Self { static_target })
    }

    /// cargo's default build, whatever the host.
    pub fn cargo_default() -> Self {
        Self { static_target: None }
    }

    /// Arguments for `cargo build|test|install`.
    pub fn cargo_args(&self) -> Vec<String> {
        let Some(target) = &self.static_target else {
            return Vec::new();
        };
        let flags = r#"["-C", "target-feature=+crt-static", "-C", "relocation-model=static"]"#;
        vec![
            "--target".into(),
            target.clone(),
            "--config".into(),
            format!("target.{target}.rustflags = {flags}"),
        ]
    }

    /// Where cargo puts binaries built with [`Self::cargo_args`] in `profile`.
    pub fn bin_dir(&self, profile: &str) -> PathBuf {
        let target = workspace_root().join("target");
        match &self.static_target {
            Some(triple) => target.join(triple).join(profile),
            None => target.join(profile),
        }
    }
}

fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command.status().with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}
