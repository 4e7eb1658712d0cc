//! `cargo xtask bench`: times whole `keyhelper` processes (release build)
//! against baselines measured in the same run, and prints medians, p90, peak
//! RSS and ratios. Process-level timing is what a consumer calling the helper
//! sees.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// One measured command: wall-time samples and the largest peak RSS seen.
struct Sample {
    label: String,
    times: Vec<Duration>,
    max_rss_kib: i64,
}

impl Sample {
    fn median(&self) -> Duration {
        percentile(&self.times, 50)
    }
}

fn percentile(times: &[Duration], p: usize) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted[(sorted.len() - 1) * p / 100]
}

/// Runs `command` once; returns wall time and peak RSS (KiB).
fn time_once(command: &mut Command) -> Result<(Duration, i64)> {
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let start = Instant::now();
    let child = command.spawn().with_context(|| format!("starting {command:?}"))?;
    let pid = i32::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: wait4 on our own child's pid with valid out-pointers; `rusage`
    // is plain data, zero-initialised.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    if waited != pid {
        bail!("waiting for {command:?} failed");
    }
    let exit = std::process::ExitStatus::from_raw(status);
    if !exit.success() {
        bail!("{command:?} failed with {exit}");
    }
    Ok((elapsed, usage.ru_maxrss))
}

/// Times `make()` `runs` times (after 3 warm-up runs), calling `before` ahead
/// of every run outside the timed section.
fn measure(label: &str, runs: usize, mut before: impl FnMut(), make: impl Fn() -> Command) -> Result<Sample> {
    for _ in 0..3 {
        before();
        time_once(&mut make())?;
    }
    let mut sample = Sample { label: label.to_string(), times: Vec::with_capacity(runs), max_rss_kib: 0 };
    for _ in 0..runs {
        before();
        let (time, rss) = time_once(&mut make())?;
        sample.times.push(time);
        sample.max_rss_kib = sample.max_rss_kib.max(rss);
    }
    Ok(sample)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn print_table(samples: &[&Sample]) {
    println!("{:<58} {:>10} {:>10} {:>10}", "command (median of runs)", "median", "p90", "peak RSS");
    for s in samples {
        println!(
            "{:<58} {:>10} {:>10} {:>7.1} MB",
            s.label,
            ms(s.median()),
            ms(percentile(&s.times, 90)),
            s.max_rss_kib as f64 / 1024.0
        );
    }
}

fn ratio(label: &str, a: &Sample, b: &Sample) {
    println!("{label:<58} {:>9.2}x", a.median().as_secs_f64() / b.median().as_secs_f64());
}

/// An isolated HOME with a config and a fake `az` that answers at once.
struct BenchHome {
    dir: PathBuf,
}

impl BenchHome {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("keyhelper-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin"))?;
        std::fs::create_dir_all(dir.join(".config/keyhelper"))?;
        let az = dir.join("bin/az");
        std::fs::write(
            &az,
            "#!/bin/sh\necho '{\"accessToken\":\"eyJ0eXAi.bench.token\",\"expires_on\":4102444800,\"tokenType\":\"Bearer\"}'\n",
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755))?;
        std::fs::write(
            dir.join(".config/keyhelper/config.toml"),
            "[credentials.work]\nprovider = \"azure\"\n",
        )?;
        Ok(Self { dir })
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join(".config"))
            .env("XDG_CACHE_HOME", self.dir.join(".cache"))
            .env("XDG_DATA_HOME", self.dir.join(".local/share"))
            .env("PATH", format!("{}:/usr/bin:/bin", self.dir.join("bin").display()));
        command
    }

    fn artifact_dir(&self) -> PathBuf {
        self.dir.join(".cache/keyhelper/plugins")
    }
}

impl Drop for BenchHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cargo xtask bench [--runs N]`.
pub fn bench(args: &[String]) -> Result<()> {
    let runs: usize = match args {
        [flag, n] if flag == "--runs" => n.parse().context("--runs takes a number")?,
        [] => 100,
        _ => bail!("bench takes only --runs N"),
    };
    crate::toolchain::ensure_wasm_target()?;
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "keyhelper",
            "-p",
            "xtask",
            "--bin",
            "keyhelper",
            "--bin",
            "bench-baseline",
        ])
        .status()?;
    if !status.success() {
        bail!("building the release binaries failed");
    }
    let keyhelper = root.join("target/release/keyhelper");
    let baseline = root.join("target/release/bench-baseline");
    let home = BenchHome::new()?;
    let compile_runs = (runs / 4).max(10);

    let base_version =
        measure("bench-baseline version (trivial Rust binary)", runs, || {}, || home.command(&baseline))?;
    let kh_version = measure(
        "keyhelper --version",
        runs,
        || {},
        || {
            let mut c = home.command(&keyhelper);
            c.arg("--version");
            c
        },
    )?;
    let az_alone =
        measure("fake az alone (answers at once)", runs, || {}, || home.command(&home.dir.join("bin/az")))?;
    let get = || {
        let mut c = home.command(&keyhelper);
        c.args(["get", "work"]);
        c
    };
    let artifacts = home.artifact_dir();
    let compiled = measure(
        "keyhelper get, plugin compiled from .wasm each run",
        compile_runs,
        || {
            let _ = std::fs::remove_dir_all(&artifacts);
        },
        get,
    )?;
    let precompiled = measure("keyhelper get, precompiled plugin artifact", runs, || {}, get)?;

    println!();
    print_table(&[&base_version, &kh_version, &az_alone, &compiled, &precompiled]);
    println!();
    ratio("keyhelper --version / trivial binary", &kh_version, &base_version);
    ratio("get: compile from .wasm / precompiled artifact", &compiled, &precompiled);
    println!(
        "{:<58} {:>10}",
        "get (precompiled) overhead over the provider command",
        ms(precompiled.median().saturating_sub(az_alone.median()))
    );
    Ok(())
}
