//! `cargo xtask check-artifacts`: what ships is what it should be.
//!
//! - The small `keyhelper` executable, built for release as it ships, must
//!   not contain the CLI parser, the async runtime or the plugin engine, and
//!   must stay small. Its crate's dependencies already keep them out; this
//!   notices if one ever brings them back. A stripped Rust binary still names
//!   the crates its code came from, in the source paths of panic locations
//!   (`…/tokio-1.47.1/src/…`): those paths are what is searched for.
//! - `keyhelper-full`, built alone as it ships, must not link Cranelift:
//!   plugins are compiled by `keyhelper-compile`, and a compiler in the
//!   complete program costs every call that runs a plugin about 1 ms.
//! - The plugin SDK (`keyhelper-plugin`) must package with the WIT contract
//!   it binds, so that a third party can build against a released SDK.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::shipped::{SMALL_PROFILE, ShippedBuild, build_profile};
use crate::workspace_root;

/// Strings whose presence means a crate that must stay out was linked in.
const FORBIDDEN: &[(&str, &str)] = &[
    ("clap_builder", "clap"),
    ("/tokio-", "tokio"),
    ("/wasmtime-", "wasmtime"),
    ("/cranelift-", "Cranelift"),
    ("mimalloc", "mimalloc (keyhelper-full's heap)"),
];

/// The crates of wasmtime's compilers (the runtime itself uses a few small
/// `cranelift-*` data-structure crates, which are not among them).
const COMPILERS: &[&str] =
    &["cranelift-codegen", "wasmtime-internal-cranelift", "winch-codegen", "wasmtime-internal-winch"];

/// The most the small executable may weigh.
const MAX_BYTES: u64 = 2 << 20;

/// The WIT files the SDK package must carry, one per released contract version.
const SDK_WIT: &[&str] =
    &["wit/since_v0.1.0/provider.wit", "wit/since_v0.2.0/provider.wit", "wit/since_v0.3.0/provider.wit"];

/// Runs every check.
pub fn check() -> Result<()> {
    small_executable()?;
    full_without_compiler()?;
    sdk_package()
}

/// Resolves `keyhelper-full`'s dependencies as its release build does (its
/// package alone) and checks that no Cranelift crate is among them.
fn full_without_compiler() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["tree", "--package", "keyhelper-host", "--edges", "normal", "--prefix", "none"])
        .args(["--format", "{p}"])
        .output()
        .context("running cargo tree")?;
    if !output.status.success() {
        bail!("`cargo tree -p keyhelper-host` fails: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let listed = String::from_utf8_lossy(&output.stdout);
    let compilers: std::collections::BTreeSet<&str> = listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| COMPILERS.contains(name))
        .collect();
    if !compilers.is_empty() {
        bail!(
            "keyhelper-full links a compiler ({}); keep wasmtime's `cranelift` feature in compiler/ alone",
            compilers.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    println!("xtask: keyhelper-full links no compiler (Cranelift is in keyhelper-compile)");
    Ok(())
}

/// Builds the release small executable and checks what it links and weighs.
fn small_executable() -> Result<()> {
    let shipped = ShippedBuild::for_host()?;
    build_profile(&["--package", "keyhelper"], SMALL_PROFILE, &shipped)?;
    let exe = shipped.bin_dir(SMALL_PROFILE).join("keyhelper");
    let bytes = std::fs::read(&exe).with_context(|| format!("reading {}", exe.display()))?;
    let mut problems = Vec::new();
    for (needle, what) in FORBIDDEN {
        let count = bytes.windows(needle.len()).filter(|w| w == &needle.as_bytes()).count();
        if count > 0 {
            problems.push(format!("it links {what} ({count} occurrences of `{needle}`)"));
        }
    }
    let size = bytes.len() as u64;
    if size > MAX_BYTES {
        problems.push(format!("it weighs {size} bytes, over the {MAX_BYTES}-byte budget"));
    }
    if !problems.is_empty() {
        bail!(
            "the small keyhelper executable ({}) is no longer small: {}; keep front/ depending on keyhelper-core alone, and keyhelper-core free of clap, tokio and wasmtime",
            exe.display(),
            problems.join("; ")
        );
    }
    println!(
        "xtask: small executable {}: {:.2} MiB (budget {} MiB), no clap, tokio, wasmtime or mimalloc",
        exe.display(),
        size as f64 / f64::from(1 << 20),
        MAX_BYTES >> 20
    );
    Ok(())
}

/// Lists the SDK package's files (`cargo package --list`) and checks the WIT
/// contract is among them.
fn sdk_package() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["package", "--list", "--allow-dirty", "--package", "keyhelper-plugin"])
        .output()
        .context("running cargo package")?;
    if !output.status.success() {
        bail!(
            "`cargo package -p keyhelper-plugin` fails: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let listed = String::from_utf8_lossy(&output.stdout);
    let missing: Vec<&str> =
        SDK_WIT.iter().copied().filter(|wit| !listed.lines().any(|l| l == *wit)).collect();
    if !missing.is_empty() {
        bail!(
            "the keyhelper-plugin package lacks {}; keep the WIT inside plugins/sdk/wit/",
            missing.join(", ")
        );
    }
    println!("xtask: keyhelper-plugin packages with {}", SDK_WIT.join(", "));
    Ok(())
}
