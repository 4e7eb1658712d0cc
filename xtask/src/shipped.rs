//! How the keyhelper executables are built as they ship, and running the
//! cargo commands xtask is made of.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// How the keyhelper executables are built for users, and so for the tests
/// and benchmarks too.
///
/// On Linux with glibc it is linked statically and position-independent
/// (static-pie, so ASLR holds): no dynamic loader and no libraries to map at
/// start, which takes a third off every cache hit. glibc resolves host names from
/// /etc/hosts and DNS itself; only optional NSS modules are loaded at run time.
/// The flags go through `--target`, so cargo keeps them off build scripts and
/// proc-macros, which cannot be static. Elsewhere the build is cargo's default.
///
/// Their cryptography asks the CPU nothing: chacha20 uses SSE2 (every
/// x86_64 has it; the cache's cipher and the RNG wasmtime-wasi seeds for
/// each plugin call alike) and poly1305 its portable code, chosen with the `--cfg`s
/// those crates read, and the small executable's SHA-256 is portable too
/// (keyhelper-core's `portable-sha256`). Each crate's feature probe is two
/// `cpuid` instructions, and on a virtual machine each traps to the
/// hypervisor (7 µs on the development VM): 44 µs a cache hit does not need.
///
/// Where glibc is 2.36 or newer, its relative relocations are also packed
/// (`-z pack-relative-relocs`, DT_RELR): a static-pie relocates itself before
/// `main`, and `keyhelper-full` has 37,000 relocations: stored as RELA they are
/// 900 KB that every start reads, as RELR 9 KB (measured: a cold `get` 0.6 ms
/// faster).
///
/// mimalloc is built without the constructor that starts it before `main`
/// in every process (`-DMI_PRIM_HAS_PROCESS_ATTACH`): only a proxy allocates
/// from it, and starts it then (`platform::ProcessHeap`); a cold `get` no
/// longer reads its settings files and environment variables for nothing.
pub struct ShippedBuild {
    /// The host triple, when it is built static.
    static_target: Option<String>,
    /// Whether the static executables pack their relocations (DT_RELR).
    pack_relocations: bool,
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
        let pack_relocations = static_target.is_some() && glibc_reads_relr();
        Ok(Self { static_target, pack_relocations })
    }

    /// cargo's default build, whatever the host.
    pub fn cargo_default() -> Self {
        Self { static_target: None, pack_relocations: false }
    }

    /// Arguments for `cargo build|test|install`.
    pub fn cargo_args(&self) -> Vec<String> {
        let Some(target) = &self.static_target else {
            return Vec::new();
        };
        // Static, but still position-independent (static-pie): the address
        // space keeps its randomisation (ASLR).
        // getrandom 0.4 (wasmtime-wasi's RNG) looks its system call's libc
        // wrapper up with `dlsym`, which a static executable cannot answer, and
        // falls back to polling /dev/random and reading /dev/urandom at every
        // plugin call; told the wrapper is there, it calls it.
        let mut flags =
            vec!["-C", "target-feature=+crt-static", "--cfg", "getrandom_backend=\"linux_getrandom\""];
        if self.pack_relocations {
            flags.extend(["-C", "link-arg=-Wl,-z,pack-relative-relocs"]);
        }
        if target.starts_with("x86_64-") {
            // chacha20 0.9 (the cache's AEAD) and 0.10 (wasmtime-wasi's RNG)
            // name the choice differently.
            flags.extend([
                "--cfg",
                "chacha20_force_sse2",
                "--cfg",
                "chacha20_backend=\"sse2\"",
                "--cfg",
                "poly1305_force_soft",
            ]);
        }
        let quoted: Vec<String> = flags.iter().map(|f| format!("{f:?}")).collect();
        vec![
            "--target".into(),
            target.clone(),
            "--config".into(),
            format!("target.{target}.rustflags = [{}]", quoted.join(", ")),
            // mimalloc without the constructor that starts it in every
            // process: keyhelper-full starts it when a proxy chooses it
            // (`platform::ProcessHeap`); a cold `get` saves 0.1 ms.
            "--config".into(),
            format!("env.CFLAGS_{} = \"-DMI_PRIM_HAS_PROCESS_ATTACH\"", target.replace('-', "_")),
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

/// Whether this machine's glibc is 2.36 or newer, the first whose static-pie
/// start-up applies packed relative relocations (DT_RELR); its binutils
/// (2.38 or newer) write them.
fn glibc_reads_relr() -> bool {
    let Ok(output) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().strip_prefix("glibc ").unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}

/// Runs `command`; an error names it when it cannot start or fails.
pub fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command.status().with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// The profile the small `keyhelper` executable ships with (`[profile.small]`).
pub const SMALL_PROFILE: &str = "small";

/// The profile `keyhelper-full` ships with (`[profile.full]`: fat LTO).
pub const FULL_PROFILE: &str = "full";

/// `cargo build --profile <profile>` of `selection`, as `build` says.
pub fn build_profile(selection: &[&str], profile: &str, build: &ShippedBuild) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(["build", "--quiet", "--profile", profile])
        .args(selection)
        .args(build.cargo_args())
        .status()?;
    if !status.success() {
        bail!("building {} ({profile}) failed", selection.join(" "));
    }
    Ok(())
}

/// `cargo build --release` of `selection`, as `build` says.
pub fn build_release(selection: &[&str], build: &ShippedBuild) -> Result<()> {
    build_profile(selection, "release", build)
}

impl ShippedBuild {
    /// Builds the three executables as they ship (`keyhelper-compile` for
    /// release, `keyhelper-full` and `keyhelper` each with its own profile,
    /// each alone so that Cranelift stays out of `keyhelper-full`) and puts
    /// fresh copies of them side by side, as `cargo xtask install` does;
    /// returns that directory.
    pub fn build_executables(&self) -> Result<PathBuf> {
        build_profile(&["-p", "keyhelper-host", "--bin", "keyhelper-full"], FULL_PROFILE, self)?;
        build_release(&["-p", "keyhelper-compile"], self)?;
        build_profile(&["-p", "keyhelper", "--bin", "keyhelper"], SMALL_PROFILE, self)?;
        let dir = workspace_root().join("target").join("shipped");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (profile, name) in
            [(FULL_PROFILE, "keyhelper-full"), ("release", "keyhelper-compile"), (SMALL_PROFILE, "keyhelper")]
        {
            let built = self.bin_dir(profile).join(name);
            let copy = dir.join(name);
            let _ = std::fs::remove_file(&copy);
            std::fs::copy(&built, &copy).with_context(|| format!("copying {}", built.display()))?;
        }
        Ok(dir)
    }
}
