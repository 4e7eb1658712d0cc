//! `cargo xtask bench session [--lifetimes N]`: replays a Claude-Code-like
//! session against the release executables as they ship. A `keyhelper get`
//! every 200 ms for N token lifetimes (default 4); tokens live 20 s, are
//! renewed 10 s ahead (`refresh_before = "10s"`), and the provider (a fake
//! `az`) takes 1 to 2 s to answer. Prints the p50, p99 and max latency of the
//! gets (whole processes, as the consumer sees them) and the provider calls,
//! against the tokens the session needed, and the gets that started a
//! renewal apart from the others (the last get to start before each provider
//! call began).
//!
//! The cache is filled once before the session starts, as it is after the
//! first call of a working day; the session measures every call after that.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    let filled_by = home.call_starts()?.len();

    let session = LIFETIME * lifetimes;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut starts = Vec::new();
    let mut tokens = BTreeSet::new();
    let mut next = started;
    while started.elapsed() < session {
        starts.push(unix_seconds(SystemTime::now()));
        let (latency, token) = get()?;
        latencies.push(latency);
        tokens.insert(token);
        next += INTERVAL;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    // A renewal started near the end may still be running: let it finish.
    std::thread::sleep(Duration::from_secs(3));
    let provider_starts = home.call_starts()?;
    let calls = provider_starts.len() - filled_by;
    let (renewing, others) = split_renewal_starters(&starts, &latencies, &provider_starts[filled_by..]);

    latencies.sort_unstable();
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
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
        ms(*latencies.last().expect("the session made gets"))
    );
    println!(
        "gets that started a renewal: {}, median {}, max {}; the other gets: p99 {}, max {}",
        renewing.len(),
        ms(percentile(&renewing, 50)),
        ms(percentile(&renewing, 100)),
        ms(percentile(&others, 99)),
        ms(percentile(&others, 100))
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

/// Seconds since the Unix epoch, as `date +%s.%N` prints them.
fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The latencies of the gets that started a renewal (for each provider call,
/// the last get to start before it began) and of the others, each sorted.
fn split_renewal_starters(
    get_starts: &[f64],
    latencies: &[Duration],
    provider_starts: &[f64],
) -> (Vec<Duration>, Vec<Duration>) {
    let starters: BTreeSet<usize> =
        provider_starts.iter().filter_map(|call| get_starts.iter().rposition(|get| get < call)).collect();
    let (mut renewing, mut others): (Vec<_>, Vec<_>) =
        latencies.iter().enumerate().partition(|(i, _)| starters.contains(i));
    renewing.sort_unstable_by_key(|(_, d)| **d);
    others.sort_unstable_by_key(|(_, d)| **d);
    (renewing.into_iter().map(|(_, d)| *d).collect(), others.into_iter().map(|(_, d)| *d).collect())
}

/// The `p`th percentile of sorted `latencies` (zero if there are none).
fn percentile(latencies: &[Duration], p: usize) -> Duration {
    latencies.get(latencies.len().saturating_sub(1) * p / 100).copied().unwrap_or_default()
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
                "#!/bin/sh\ndate +%s.%N >> '{calls}'\nn=$(wc -l < '{calls}')\n\
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

    /// When each provider call began, in Unix seconds.
    fn call_starts(&self) -> Result<Vec<f64>> {
        let text = std::fs::read_to_string(self.dir.join("calls")).context("reading the provider's calls")?;
        text.lines()
            .map(|line| line.parse().with_context(|| format!("a provider call's start: {line:?}")))
            .collect()
    }
}

impl Drop for SessionHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_get_that_started_a_renewal_is_the_last_to_start_before_the_call() {
        let ms = Duration::from_millis;
        let starts = [10.0, 10.2, 10.4, 10.6];
        let latencies = [ms(1), ms(3), ms(2), ms(4)];
        let (renewing, others) = split_renewal_starters(&starts, &latencies, &[10.203, 10.9]);
        assert_eq!(renewing, [ms(3), ms(4)]);
        assert_eq!(others, [ms(1), ms(2)]);
        assert_eq!(percentile(&others, 100), ms(2));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
