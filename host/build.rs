//! Builds the bundled provider plugins (every cdylib crate under `plugins/`)
//! into WebAssembly components and generates the code that embeds them, with
//! their sha256, into `keyhelper-full`. (Their manifests, in `providers/`,
//! are embedded by keyhelper-core.)
//!
//! The plugins are built by a nested `cargo build --target wasm32-wasip2` into
//! their own target directory (`target/plugin-build`, shared with
//! `cargo xtask build-plugins`), so the host build never waits on itself.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const WASM_TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.parent().expect("host/ lives in the workspace root").to_path_buf();
    for watched in ["plugins", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let plugins = plugin_crates(&root.join("plugins"));
    check_wasm_target();
    let target_dir = root.join("target").join("plugin-build");
    build(&root, &target_dir, &plugins);

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let mut code = String::from(
        "/// Provider plugins compiled into this binary.\npub static BUNDLED_PLUGINS: &[BundledPlugin] = &[\n",
    );
    for name in &plugins {
        let built = target_dir
            .join(WASM_TARGET)
            .join(PROFILE)
            .join(format!("keyhelper_plugin_{}.wasm", name.replace('-', "_")));
        let bytes = fs::read(&built).unwrap_or_else(|e| panic!("reading {}: {e}", built.display()));
        let embedded = out_dir.join(format!("{name}.wasm"));
        fs::write(&embedded, &bytes).expect("writing into OUT_DIR");
        let sha256 = hex::encode(Sha256::digest(&bytes));
        writeln!(
            code,
            "    BundledPlugin {{ name: {name:?}, wasm: include_bytes!({:?}), sha256: {sha256:?} }},",
            embedded.display().to_string()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    fs::write(out_dir.join("bundled.rs"), code).expect("writing into OUT_DIR");
}

/// Directory names of the crates under `plugins/` that build a cdylib.
fn plugin_crates(plugins_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(plugins_dir)
        .expect("plugins/ exists")
        .filter_map(Result::ok)
        .filter(|entry| {
            fs::read_to_string(entry.path().join("Cargo.toml")).is_ok_and(|toml| toml.contains("\"cdylib\""))
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn check_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if !libdir.is_some_and(|dir| dir.exists()) {
        panic!(
            "the {WASM_TARGET} target is not installed, and keyhelper's bundled plugins are built for it; \
             run `rustup target add {WASM_TARGET}` (or `cargo xtask build-plugins`, which installs it)"
        );
    }
}

fn build(root: &Path, target_dir: &Path, plugins: &[String]) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--quiet", "--target", WASM_TARGET, "--profile", PROFILE, "--target-dir"])
        .arg(target_dir);
    for name in plugins {
        command.args(["--package", &format!("keyhelper-plugin-{name}")]);
    }
    // What cargo sets for this build script describes the host build, not the
    // nested wasm one (clippy's wrapper, host RUSTFLAGS, cc's TARGET…).
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "TARGET",
        "HOST",
        "OPT_LEVEL",
        "DEBUG",
        "PROFILE",
        "OUT_DIR",
        "NUM_JOBS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    let output = command.output().expect("running cargo for the plugins");
    if !output.status.success() {
        panic!("building the bundled plugins failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
}
