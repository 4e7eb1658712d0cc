//! `cargo xtask bench session [--lifetimes N]`: replays a Claude-Code-like
//! session against the release executables as they ship. A `keyhelper get`
//! every 200 ms for N token lifetimes (default 4); tokens live 20 s, are
//! renewed 10 s ahead (`refresh_before = "10s"`), and the provider (a fake
//! `az`) takes 1 to 2 s to answer. Prints the p50, p99 and max latency of the
//! gets (whole processes, as the consumer sees them) and the provider calls,
//! against the tokens the session needed.
//!
//! The cache is filled once before the session starts, as it is after the
//! first call of a working day; the session measures every call after that.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::shipped::ShippedBuild;

/// How long each token lives.
const LIFETIME: Duration = Duration::from_secs(20);
/// The credential's `refresh_before`, in seconds; its refresh window is
/// `min(refresh_before, lifetime / 2)`.
const REFRESH_BEFORE_SECS: u64 = 10;
/// The interval between two gets.
const INTERVAL: Duration = Duration::from_millis(200);

/// Runs the session benchmark.
pub fn bench(args: &[String]) -> Result<()> {
    let lifetimes: u32 = match args {
        [flag, n] if flag == "--lifetimes" => n.parse().context("--lifetimes takes a number")?,
        [] => 4,
        _ => bail!("bench session takes only --lifetimes N"),
    };
    let shipped = ShippedBuild::for_host()?;
    let keyhelper = shipped.build_executables()?.join("keyhelper");
    let home = SessionHome::new()?;

    let get = || -> Result<(Duration, String)> {
        let start = Instant::now();
        let output = home.command(&keyhelper).args(["get", "work"]).stderr(Stdio::inherit()).output()?;
        let elapsed = start.elapsed();
        if !output.status.success() {
            bail!("a get failed ({})", output.status);
        }
        Ok((elapsed, String::from_utf8_lossy(&output.stdout).trim().to_string()))
    };
    get()?; // fill the cache
    let filled_by = home.calls();

    let session = LIFETIME * lifetimes;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut tokens = BTreeSet::new();
    let mut next = started;
    while started.elapsed() < session {
        let (latency, token) = get()?;
        latencies.push(latency);
        tokens.insert(token);
        next += INTERVAL;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    // A renewal started near the end may still be running: let it finish.
    std::thread::sleep(Duration::from_secs(3));
    let calls = home.calls() - filled_by;

    latencies.sort_unstable();
    let at = |p: usize| latencies[(latencies.len() - 1) * p / 100];
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    println!(
        "session: {} gets every {} ms over {:.0} s ({lifetimes} lifetimes of {} s tokens, refresh_before {REFRESH_BEFORE_SECS}s, provider 1-2 s)",
        latencies.len(),
        INTERVAL.as_millis(),
        session.as_secs_f64(),
        LIFETIME.as_secs()
    );
    println!(
        "get latency: p50 {}, p99 {}, max {} (targets: p99 <= 2 ms, max <= 20 ms)",
        ms(at(50)),
        ms(at(99)),
        ms(*latencies.last().expect("the session made gets"))
    );
    // Every renewal yields a token the session then serves, but the last one,
    // which may land after the final get. Renewing ahead, a token is served
    // from its issue to the start of its window, so the session needs one per
    // `LIFETIME - window`.
    let renewals_served = tokens.len().saturating_sub(1);
    let window = Duration::from_secs(REFRESH_BEFORE_SECS).min(LIFETIME / 2);
    let needed = session.as_secs().div_ceil((LIFETIME - window).as_secs());
    println!(
        "provider calls during the session: {calls}; tokens served: {} ({renewals_served} renewals used, so {} wasted); token lifetimes crossed: {lifetimes}; tokens it needs, each renewed {} s before it expires: {needed}",
        tokens.len(),
        calls.saturating_sub(renewals_served + 1),
        window.as_secs()
    );
    Ok(())
}

/// A temporary home with the slow fake `az` and the session's config.
struct SessionHome {
    dir: PathBuf,
}

impl SessionHome {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("keyhelper-session-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin"))?;
        std::fs::create_dir_all(dir.join(".config/keyhelper"))?;
        let az = dir.join("bin/az");
        std::fs::write(
            &az,
            format!(
                "#!/bin/sh\necho call >> '{calls}'\nn=$(wc -l < '{calls}')\n\
                 sleep \"$(awk 'BEGIN {{ srand(); printf \"%.2f\", 1 + rand() }}')\"\n\
                 echo \"{{\\\"accessToken\\\":\\\"token-$n\\\",\\\"expires_on\\\":$(( $(date +%s) + {life} )),\\\"tokenType\\\":\\\"Bearer\\\"}}\"\n",
                calls = dir.join("calls").display(),
                life = LIFETIME.as_secs()
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755))?;
        std::fs::write(
            dir.join(".config/keyhelper/config.toml"),
            format!(
                "[credentials.work]\nprovider = \"azure\"\nrefresh_before = \"{REFRESH_BEFORE_SECS}s\"\n"
            ),
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

    fn calls(&self) -> usize {
        std::fs::read_to_string(self.dir.join("calls")).map_or(0, |s| s.lines().count())
    }
}

impl Drop for SessionHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
