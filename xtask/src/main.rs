//! Build automation for keyhelper, run as `cargo xtask <command>`.
//!
//! - `build-plugins [--path CRATE]… [--out DIR]`: builds provider plugins into
//!   WebAssembly components and prints name, size and sha256.
//! - `test [-- ARGS]`: installs what the test suite needs, then runs fmt,
//!   clippy and every test (with ARGS, `cargo test -p keyhelper ARGS`).
//! - `install`: installs the wasm target and the `keyhelper` executables.
//! - `bench [--runs N]`: benchmarks of the release binary against baselines
//!   measured in the same run; `bench session [--lifetimes N]`: a replayed
//!   Claude-Code-like session across token renewals.
//! - `check-artifacts`: the release `keyhelper` executable links no clap,
//!   tokio or wasmtime and stays under 2 MiB; the plugin SDK packages with
//!   its WIT (both also part of `test`).
//! - `check-layers`: no import cycles between the top-level modules of each
//!   crate, and nothing but the entry points imports the CLI (part of `test`).
//! - `check-windows`: both executables cross-built for Windows and run under
//!   Wine; `check-macos`: clippy for macOS (both part of `test`).

mod artifacts;
mod bench;
mod cross;
mod layers;
mod plugins;
mod proxy_bench;
mod session_bench;
mod shipped;
mod toolchain;
mod wine;
mod wine_sessions;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        bail!(
            "missing command; use build-plugins, test, install, bench, check-artifacts, check-layers, check-windows or check-macos"
        );
    };
    match command.as_str() {
        "build-plugins" => build_plugins(rest),
        "test" => toolchain::test(rest),
        "install" => toolchain::install(),
        "bench" => bench::bench(rest),
        "check-artifacts" => artifacts::check(),
        "check-layers" => layers::check(),
        "check-windows" => cross::test_windows(),
        "check-macos" => cross::lint_macos(),
        other => {
            bail!(
                "unknown command `{other}`; use build-plugins, test, install, bench, check-artifacts, check-layers, check-windows or check-macos"
            )
        }
    }
}

fn build_plugins(args: &[String]) -> Result<()> {
    let mut paths = Vec::new();
    let mut out = workspace_root().join("target").join("plugins");
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--path" => paths.push(PathBuf::from(args.next().context("--path needs a crate directory")?)),
            "--out" => out = PathBuf::from(args.next().context("--out needs a directory")?),
            other => bail!("unknown argument `{other}` (build-plugins takes --path CRATE and --out DIR)"),
        }
    }
    toolchain::ensure_wasm_target()?;
    let built = if paths.is_empty() {
        plugins::build_workspace_plugins()?
    } else {
        paths
            .iter()
            .map(|p| plugins::build_crate(p))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect()
    };
    plugins::publish(&built, &out)
}

/// The repository root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ is in the workspace root").to_path_buf()
}
