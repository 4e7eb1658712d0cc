//! `cargo xtask bench`: times whole `keyhelper` processes (release build)
//! against baselines measured in the same run, and prints medians, p90, peak
//! RSS and ratios. Process-level timing is what a consumer calling the helper
//! sees.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::shipped::ShippedBuild;

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

/// Times several commands in turn, run by run, so the drift of a noisy
/// machine (a VM's neighbours, CPU frequency) hits all alike and their ratios
/// stay meaningful. Each round starts one command later, so that each
/// follows every other equally often: what a process leaves behind (a
/// glibc program's sixty trapped `cpuid`s flush the caches a hypervisor
/// entry flushes) then costs all of them alike, not whichever comes after
/// it. `before` runs ahead of every run, untimed.
fn measure_interleaved<const N: usize>(
    commands: [(&str, &dyn Fn() -> Command); N],
    runs: usize,
    mut before: impl FnMut(),
) -> Result<[Sample; N]> {
    let mut samples = commands.map(|(label, _)| Sample {
        label: label.to_string(),
        times: Vec::with_capacity(runs),
        max_rss_kib: 0,
    });
    for round in 0..runs + 3 {
        for index in (0..N).map(|i| (i + round) % N) {
            let (_, make) = commands[index];
            let sample = &mut samples[index];
            before();
            let (time, rss) = time_once(&mut make())?;
            if round >= 3 {
                sample.times.push(time);
                sample.max_rss_kib = sample.max_rss_kib.max(rss);
            }
        }
    }
    Ok(samples)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
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

/// An isolated HOME with a config, a fake `az` that answers at once, and the
/// AWS CLI against a moto server.
struct BenchHome {
    dir: PathBuf,
    tools: PathBuf,
    moto: Option<std::process::Child>,
    endpoint: String,
}

impl BenchHome {
    fn new(tools: PathBuf) -> Result<Self> {
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
        std::fs::write(dir.join("token.txt"), "eyJ0eXAi.bench.token\n")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let endpoint = format!("http://127.0.0.1:{port}");
        std::fs::write(
            dir.join(".config/keyhelper/config.toml"),
            format!(
                "[credentials.work]\nprovider = \"azure\"\n\n[credentials.aws]\nprovider = \"aws-secrets-manager\"\n\
                 secret_id = \"bench-key\"\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n"
            ),
        )?;
        let moto = Command::new(tools.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting moto_server")?;
        let home = Self { dir, tools, moto: Some(moto), endpoint };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("moto_server did not start");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut create =
            home.aws(&["create-secret", "--name", "bench-key", "--secret-string", "sk-bench-aws-secret"]);
        create.stdout(Stdio::null());
        if !create.status()?.success() {
            bail!("creating the benchmark secret in moto failed");
        }
        Ok(home)
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join(".config"))
            .env("XDG_CACHE_HOME", self.dir.join(".cache"))
            .env("XDG_DATA_HOME", self.dir.join(".local/share"))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env(
                "PATH",
                format!("{}:{}:/usr/bin:/bin", self.dir.join("bin").display(), self.tools.display()),
            );
        command
    }

    /// `aws secretsmanager <args>` against moto.
    fn aws(&self, args: &[&str]) -> Command {
        let mut command = self.command(&self.tools.join("aws"));
        command
            .args(["--endpoint-url", &self.endpoint, "--region", "us-east-1", "secretsmanager"])
            .args(args);
        command
    }

    fn artifact_dir(&self) -> PathBuf {
        self.dir.join(".cache/keyhelper/plugins")
    }

    fn credential_cache(&self) -> PathBuf {
        self.dir.join(".cache/keyhelper/credentials")
    }
}

impl Drop for BenchHome {
    fn drop(&mut self) {
        if let Some(mut moto) = self.moto.take() {
            let _ = moto.kill();
            let _ = moto.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `count` copies of `make()` at once and waits for all; returns the
/// wall time from the first spawn to the last exit.
fn time_concurrent(count: usize, make: &impl Fn() -> Command) -> Result<Duration> {
    let start = Instant::now();
    let children: Vec<_> = (0..count)
        .map(|_| make().stdout(Stdio::null()).stderr(Stdio::null()).spawn())
        .collect::<Result<_, _>>()?;
    for mut child in children {
        if !child.wait()?.success() {
            bail!("a concurrent get failed");
        }
    }
    Ok(start.elapsed())
}

/// Drops `path` from the page cache, so that every executable starts from the
/// state it has after a reboot: read back from disk on first use. Left as the
/// linker (or `cp`) wrote it, a file's cached pages can be mapped in larger
/// or smaller pieces, which changes a short process's time by up to 30%.
fn evict_from_page_cache(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.sync_all()?;
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise on an open descriptor; it only drops clean pages.
    let result = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if result != 0 {
        bail!("posix_fadvise on {} failed: {}", path.display(), std::io::Error::from_raw_os_error(result));
    }
    Ok(())
}

/// `cargo xtask bench [--runs N]`, or `cargo xtask bench session …`.
pub fn bench(args: &[String]) -> Result<()> {
    match args.split_first().map(|(first, rest)| (first.as_str(), rest)) {
        Some(("session", rest)) => return crate::session_bench::bench(rest),
        Some(("proxy", rest)) => return crate::proxy_bench::bench(rest),
        _ => {}
    }
    let runs: usize = match args {
        [flag, n] if flag == "--runs" => n.parse().context("--runs takes a number")?,
        [] => 100,
        _ => bail!("bench takes --runs N, or `session [--lifetimes N]`, or `proxy [--seconds N]`"),
    };
    crate::toolchain::ensure_wasm_target()?;
    let tools = crate::toolchain::ensure_python_tools()?;
    // keyhelper and a baseline built the same way, as keyhelper ships; and
    // the baseline as cargo builds it by default, for comparison.
    let shipped = ShippedBuild::for_host()?;
    let installed = shipped.build_executables()?;
    crate::shipped::build_release(&["-p", "xtask", "--bin", "bench-baseline"], &shipped)?;
    let keyhelper = installed.join("keyhelper");
    let baseline = shipped.bin_dir("release").join("bench-baseline");
    let default_build = ShippedBuild::cargo_default();
    crate::shipped::build_release(&["-p", "xtask", "--bin", "bench-baseline"], &default_build)?;
    let default_baseline = default_build.bin_dir("release").join("bench-baseline");
    let full = installed.join("keyhelper-full");
    for executable in [&keyhelper, &full, &baseline, &default_baseline] {
        evict_from_page_cache(executable)?;
    }
    let home = BenchHome::new(tools)?;
    let slow_runs = (runs / 5).max(10);
    let kh = |args: &[&str]| {
        let mut c = home.command(&keyhelper);
        c.args(args);
        c
    };
    let clear_entries = || {
        let _ = std::fs::remove_dir_all(home.credential_cache());
    };

    let baseline_version = || home.command(&baseline);
    let keyhelper_version = || kh(&["--version"]);
    let [base_version, kh_version] = measure_interleaved(
        [
            ("trivial Rust binary: print a line", &baseline_version),
            ("keyhelper --version", &keyhelper_version),
        ],
        runs,
        || {},
    )?;
    let cat_with = |program: &Path| {
        let mut c = home.command(program);
        c.arg("cat").arg(home.dir.join("token.txt"));
        c
    };
    let baseline_cat = || cat_with(&baseline);
    let default_baseline_cat = || cat_with(&default_baseline);
    let warm_get = || kh(&["get", "work"]);
    // The budget's pair alone: a glibc program run between them (sixty
    // trapped `cpuid`s at its start) would leave both colder than a helper's
    // caller does.
    let [base_cat, warm] = measure_interleaved(
        [
            ("trivial Rust binary: read a small file, print it", &baseline_cat),
            ("keyhelper get work (cache hit)", &warm_get),
        ],
        runs,
        || {},
    )?;
    let [default_base_cat, warm_beside_default] = measure_interleaved(
        [
            ("  the same, cargo's default (dynamic) build", &default_baseline_cat),
            ("  keyhelper get work (cache hit), timed beside it", &warm_get),
        ],
        runs,
        || {},
    )?;
    let fake_az = || home.command(&home.dir.join("bin/az"));
    let uncached_get = || kh(&["get", "work", "--no-cache"]);
    let [az_alone, uncached, cold] = measure_interleaved(
        [
            ("the provider command alone (fake az)", &fake_az),
            ("keyhelper get work --no-cache", &uncached_get),
            ("cold get, precompiled plugin (fills the cache)", &warm_get),
        ],
        runs,
        clear_entries,
    )?;
    let artifacts = home.artifact_dir();
    let compiled = measure(
        "cold get, plugin compiled from .wasm",
        slow_runs,
        || {
            clear_entries();
            let _ = std::fs::remove_dir_all(&artifacts);
        },
        || kh(&["get", "work"]),
    )?;
    let aws_cli = measure(
        "aws secretsmanager get-secret-value (moto)",
        slow_runs,
        || {},
        || home.aws(&["get-secret-value", "--secret-id", "bench-key"]),
    )?;
    let aws_warm = measure("keyhelper get aws (cache hit)", runs, || {}, || kh(&["get", "aws"]))?;
    let concurrency = 64;
    let mut one_cold = Vec::new();
    let mut many_cold = Vec::new();
    for _ in 0..slow_runs.min(20) {
        clear_entries();
        one_cold.push(time_concurrent(1, &|| kh(&["get", "work"]))?);
        clear_entries();
        many_cold.push(time_concurrent(concurrency, &|| kh(&["get", "work"]))?);
    }

    let upstream_port = crate::proxy_bench::start_upstream()?;
    let client_key = "bench-client-key-0123456789";
    let (mut proxy, proxy_address) = crate::proxy_bench::start_proxy({
        let mut proxy = kh(&["proxy", "work", "--upstream", &format!("http://127.0.0.1:{upstream_port}")]);
        proxy.env("KEYHELPER_PROXY_KEY", client_key);
        proxy
    })?;
    let requests = runs * 20;
    let upstream_address = format!("127.0.0.1:{upstream_port}");
    crate::proxy_bench::measure(&upstream_address, "x", 200)?;
    crate::proxy_bench::measure(&proxy_address, client_key, 200)?;
    let direct = crate::proxy_bench::measure(&upstream_address, "x", requests)?;
    let proxied = crate::proxy_bench::measure(&proxy_address, client_key, requests)?;
    let _ = proxy.kill();
    let _ = proxy.wait();

    println!();
    print_table(&[
        &base_version,
        &kh_version,
        &base_cat,
        &warm,
        &default_base_cat,
        &warm_beside_default,
        &az_alone,
        &uncached,
        &compiled,
        &cold,
        &aws_cli,
        &aws_warm,
    ]);
    println!();
    ratio("keyhelper --version / trivial binary", &kh_version, &base_version);
    ratio("warm get / trivial binary reading a file (target <= 1.20)", &warm, &base_cat);
    ratio("  the same, against cargo's default (dynamic) build", &warm_beside_default, &default_base_cat);
    ratio("cold get: compiled from .wasm / precompiled", &compiled, &cold);
    println!(
        "{:<58} {:>10}",
        "cold-call overhead: get --no-cache minus provider (<= 2 ms)",
        ms(uncached.median().saturating_sub(az_alone.median()))
    );
    println!(
        "{:<58} {:>10}",
        "cold get (cache miss, fills cache) minus provider",
        ms(cold.median().saturating_sub(az_alone.median()))
    );
    ratio("aws CLI each time / keyhelper cache hit (target >= 300)", &aws_cli, &aws_warm);
    println!(
        "{:<58} {:>7.1} MB",
        "peak RSS of a warm get (target <= 10 MB)",
        warm.max_rss_kib as f64 / 1024.0
    );
    let us = |d: Duration| format!("{:.0} us", d.as_secs_f64() * 1e6);
    let rps = |t: &[Duration]| t.len() as f64 / t.iter().sum::<Duration>().as_secs_f64();
    let (direct50, direct99) = (percentile(&direct, 50), percentile(&direct, 99));
    let (proxied50, proxied99) = (percentile(&proxied, 50), percentile(&proxied, 99));
    println!(
        "{:<58} p50 {} / p99 {}",
        format!("proxy: direct, {requests} keep-alive GETs"),
        us(direct50),
        us(direct99)
    );
    println!("{:<58} p50 {} / p99 {}", "proxy: through keyhelper proxy", us(proxied50), us(proxied99));
    println!(
        "{:<58} p50 {} / p99 {}",
        "proxy: added latency (target p50 <= 1 ms)",
        us(proxied50.saturating_sub(direct50)),
        us(proxied99.saturating_sub(direct99))
    );
    println!(
        "{:<58} {:.0} req/s vs {:.0} direct",
        "proxy: sequential requests per second",
        rps(&proxied),
        rps(&direct)
    );
    let (one, many) = (percentile(&one_cold, 50), percentile(&many_cold, 50));
    println!(
        "{:<58} {:>10} vs {} ({:.1}x)",
        format!("{concurrency} concurrent cold gets vs one (wall, median)"),
        ms(many),
        ms(one),
        many.as_secs_f64() / one.as_secs_f64()
    );
    Ok(())
}
