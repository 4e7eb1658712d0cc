//! Building provider plugins into components and reporting what was built.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::toolchain::WASM_TARGET;
use crate::workspace_root;

/// A built component.
pub struct BuiltPlugin {
    /// Its name (crate name without `keyhelper-plugin-`).
    pub name: String,
    /// Where cargo left it.
    pub wasm: PathBuf,
}

/// Builds every cdylib crate under `plugins/`, exactly as `host/build.rs` does
/// (same profile, same target directory, so neither rebuilds the other's work).
pub fn build_workspace_plugins() -> Result<Vec<BuiltPlugin>> {
    let root = workspace_root();
    let mut command = cargo_build(&root.join("Cargo.toml"), &root.join("target").join("plugin-build"));
    command.args(["--profile", "plugin"]);
    for entry in std::fs::read_dir(root.join("plugins"))? {
        let dir = entry?.path();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        if manifest.contains("\"cdylib\"") {
            let name = dir.file_name().expect("a directory has a name").to_string_lossy().into_owned();
            command.args(["--package", &format!("keyhelper-plugin-{name}")]);
        }
    }
    run_build(command)
}

/// Builds the plugin crate in `dir` (in or out of this workspace) for release.
pub fn build_crate(dir: &Path) -> Result<Vec<BuiltPlugin>> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        bail!("{} has no Cargo.toml; --path takes a plugin crate's directory", dir.display());
    }
    let target_dir = workspace_root().join("target").join("plugin-build").join("external");
    let mut command = cargo_build(&manifest, &target_dir);
    command.arg("--release");
    run_build(command)
}

fn cargo_build(manifest: &Path, target_dir: &Path) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args([
            "build",
            "--message-format=json-render-diagnostics",
            "--target",
            WASM_TARGET,
            "--manifest-path",
        ])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .stdout(Stdio::piped());
    command
}

/// Runs the build and collects the `.wasm` artifacts cargo reports.
fn run_build(mut command: Command) -> Result<Vec<BuiltPlugin>> {
    let output = command.output().context("running cargo")?;
    if !output.status.success() {
        bail!("building plugins failed (see cargo's messages above)");
    }
    let mut built = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let files = message["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str());
        for file in files.filter(|f| f.ends_with(".wasm")) {
            let crate_name = message["target"]["name"].as_str().unwrap_or_default().replace('_', "-");
            let name = crate_name.strip_prefix("keyhelper-plugin-").unwrap_or(&crate_name).to_string();
            built.push(BuiltPlugin { name, wasm: PathBuf::from(file) });
        }
    }
    if built.is_empty() {
        bail!("cargo built no .wasm file; a plugin crate needs `crate-type = [\"cdylib\"]`");
    }
    Ok(built)
}

/// Copies the components to `out` as `<name>.wasm` and prints name, size and sha256.
pub fn publish(built: &[BuiltPlugin], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    println!("{:<24} {:>10}  sha256", "plugin", "bytes");
    for plugin in built {
        let bytes =
            std::fs::read(&plugin.wasm).with_context(|| format!("reading {}", plugin.wasm.display()))?;
        let dest = out.join(format!("{}.wasm", plugin.name));
        std::fs::write(&dest, &bytes).with_context(|| format!("writing {}", dest.display()))?;
        println!("{:<24} {:>10}  {}", plugin.name, bytes.len(), hex::encode(Sha256::digest(&bytes)));
    }
    println!("components written to {}", out.display());
    Ok(())
}
