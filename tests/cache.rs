//! The credential cache with real processes: single flight across 32 racing
//! `keyhelper get`s, a holder killed mid-refresh, refresh-ahead, `--min-ttl`,
//! stale-on-error, fallbacks and corrupt entries. (Expiry itself, which would
//! take waiting here, is tested on an injected clock in the broker's tests.)
//!
//! The provider is a fake `az` ([`support::fake_az`]). Tests that need a
//! secret inside its refresh window age the cache entry instead of waiting.

mod support;

use std::fs::File;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use support::fake_az::FakeAz;
use support::{BoundedRun, stderr, stdout};

const WORK: &str = "[credentials.work]\nprovider = \"azure\"\n";

fn race(az: &FakeAz, processes: usize) -> Vec<Output> {
    let children: Vec<Child> = (0..processes).map(|_| az.spawn_get("work")).collect();
    children.into_iter().map(support::finish).collect()
}

#[test]
fn thirty_two_cold_gets_make_one_provider_call() {
    let az = FakeAz::new("cache-race-cold", WORK);
    az.set("delay", "0.3");
    let outputs = race(&az, 32);
    for output in &outputs {
        assert!(output.status.success(), "{}", stderr(output));
        assert_eq!(stdout(output), "token-1\n");
    }
    assert_eq!(az.calls(), 1, "exactly one az call for 32 processes");
}

/// `refresh = "blocking"`: every caller inside the window waits for the
/// renewal, as before background renewal existed.
const BLOCKING: &str = "[credentials.work]\nprovider = \"azure\"\nrefresh = \"blocking\"\n";

#[test]
fn thirty_two_blocking_gets_inside_the_refresh_window_make_one_provider_call() {
    let az = FakeAz::new("cache-race-refresh", BLOCKING);
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    az.age_entries(3400); // 200s left: inside the 5m window
    az.set("delay", "0.3");
    let outputs = race(&az, 32);
    for output in &outputs {
        assert_eq!(stdout(output), "token-2\n", "{}", stderr(output));
    }
    assert_eq!(az.calls(), 2, "one call to fill, one to renew");
}

#[test]
fn a_holder_killed_mid_refresh_does_not_block_the_next_get() {
    let az = FakeAz::new("cache-sigkill", WORK);
    az.set("delay", "5");
    let mut holder = az.spawn_get("work");
    let deadline = Instant::now() + Duration::from_secs(10);
    while az.calls() == 0 {
        assert!(Instant::now() < deadline, "the first get never called az");
        std::thread::sleep(Duration::from_millis(20));
    }
    holder.kill().unwrap(); // SIGKILL
    support::wait_within(&mut holder);
    az.set("delay", "0");
    let start = Instant::now();
    let output = az.get(&["work"]);
    assert_eq!(stdout(&output), "token-2\n", "{}", stderr(&output));
    assert!(start.elapsed() < Duration::from_secs(3), "the next get waited {:?}", start.elapsed());
}

#[test]
fn a_fresh_entry_is_served_without_the_provider() {
    let az = FakeAz::new("cache-hit", WORK);
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    let hit = az.home.run(&["-vv", "get", "work"]);
    assert_eq!(stdout(&hit), "token-1\n");
    assert_eq!(az.calls(), 1);
    let log = stderr(&hit);
    assert!(!log.contains("plugin"), "a cache hit loaded a plugin: {log}");
    assert!(!log.contains("token-1"), "{log}");
}

#[test]
fn a_blocking_entry_inside_the_refresh_window_is_renewed_unless_the_margin_is_shorter() {
    let az = FakeAz::new("cache-refresh-ahead", BLOCKING);
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    az.age_entries(3400);
    assert_eq!(stdout(&az.get(&["work"])), "token-2\n", "200s left is inside the default 5m margin");

    let relaxed = FakeAz::new(
        "cache-refresh-margin",
        "[settings]\nrefresh_before = \"1m\"\nrefresh = \"blocking\"\n\n[credentials.work]\nprovider = \"azure\"\n",
    );
    assert_eq!(stdout(&relaxed.get(&["work"])), "token-1\n");
    relaxed.age_entries(3400);
    assert_eq!(stdout(&relaxed.get(&["work"])), "token-1\n", "outside a 1m margin");
    assert_eq!(relaxed.calls(), 1);
}

#[test]
fn min_ttl_renews_or_fails_clearly() {
    let az = FakeAz::new("cache-min-ttl", WORK);
    az.set("ttl", "1200");
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    assert_eq!(stdout(&az.get(&["work", "--min-ttl", "10m"])), "token-1\n", "20m left satisfies 10m");
    az.set("ttl", "3600");
    assert_eq!(stdout(&az.get(&["work", "--min-ttl", "30m"])), "token-2\n");
    az.set("ttl", "600");
    let short = az.get(&["work", "--min-ttl", "2h"]);
    assert_eq!(short.status.code(), Some(7), "{}", stderr(&short));
    assert!(stderr(&short).contains("less than --min-ttl"), "{}", stderr(&short));
    assert!(short.stdout.is_empty());
}

#[test]
fn a_failed_blocking_refresh_serves_the_still_valid_secret_with_a_warning() {
    let az = FakeAz::new("cache-stale", BLOCKING);
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    az.age_entries(3400);
    az.set("mode", "fail");
    let output = az.get(&["work"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "token-1\n");
    assert!(stderr(&output).contains("serving the cached secret, valid for another"), "{}", stderr(&output));
}

#[test]
fn fallbacks_are_tried_in_order_and_stderr_says_which_served() {
    let config = "[credentials.team-proxy]\nprovider = \"azure\"\nfallback = [\"broken\", \"personal\"]\n\n\
                  [credentials.broken]\nprovider = \"1password\"\nreference = \"op://Private/missing/credential\"\n\n\
                  [credentials.personal]\nprovider = \"azure\"\nscope = \"api://personal/.default\"\n";
    let az = FakeAz::new("cache-fallback", config);
    az.set("mode", "fail");
    // `personal` uses az too: make only the team scope fail.
    let script = std::fs::read_to_string(az.home.bin().join("az")).unwrap().replace(
        "if [ \"$(cat \"$d/mode\" 2>/dev/null)\" = fail ]",
        "if [ \"$(cat \"$d/mode\" 2>/dev/null)\" = fail ] && ! echo \"$*\" | grep -q personal",
    );
    az.home.fake_tool("az", &script);
    let output = az.get(&["team-proxy"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "token-2\n");
    let err = stderr(&output);
    let tried_broken = err.find("trying fallback 'broken'").expect(&err);
    let tried_personal = err.find("trying fallback 'personal'").expect(&err);
    assert!(tried_broken < tried_personal, "{err}");
    assert!(err.contains("'team-proxy' was served by its fallback 'personal'"), "{err}");
}

#[test]
fn configuration_errors_do_not_fall_back() {
    let config = "[credentials.primary]\nprovider = \"azure\"\nscope = \"a\"\nresource = \"b\"\nfallback = [\"azure\"]\n";
    let az = FakeAz::new("cache-no-fallback", config);
    let output = az.get(&["primary"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(!stderr(&output).contains("fallback"), "{}", stderr(&output));
    assert_eq!(az.calls(), 0);
}

#[test]
fn corrupt_truncated_or_undecryptable_entries_are_misses_with_a_warning() {
    let az = FakeAz::new("cache-corrupt", WORK);
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    let entry = az.entry_files().pop().expect("an entry was written");
    let sealed = std::fs::read(&entry).unwrap();
    let mut flipped = sealed.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let damages: [(&str, Vec<u8>); 3] = [
        ("garbage", b"not a cache entry".to_vec()),
        ("truncated", sealed[..10].to_vec()),
        ("altered", flipped),
    ];
    for (n, (what, bytes)) in damages.into_iter().enumerate() {
        std::fs::write(&entry, bytes).unwrap();
        let output = az.get(&["work"]);
        assert!(output.status.success(), "{what}: {}", stderr(&output));
        assert_eq!(stdout(&output), format!("token-{}\n", n + 2), "{what}");
        assert!(stderr(&output).contains("fetching 'work' afresh"), "{what}: {}", stderr(&output));
        assert_eq!(
            stdout(&az.get(&["work"])),
            format!("token-{}\n", n + 2),
            "{what}: the entry was rewritten"
        );
    }
    // A different cache key makes every entry undecryptable.
    std::fs::remove_file(az.home.path().join(".local/share/keyhelper/secrets/cache.key")).unwrap();
    let output = az.get(&["work"]);
    assert_eq!(stdout(&output), "token-5\n", "{}", stderr(&output));
}

#[test]
fn no_cache_and_cache_clear() {
    let az = FakeAz::new("cache-bypass", WORK);
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    assert_eq!(stdout(&az.get(&["work", "--no-cache"])), "token-2\n");
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n", "--no-cache does not write the cache");
    let clear = az.home.run(&["cache", "clear"]);
    assert_eq!(stderr(&clear), "keyhelper: removed 1 cached secret\n");
    assert_eq!(stdout(&az.get(&["work"])), "token-3\n");
}

#[test]
fn status_and_list_show_expiry_but_never_the_secret() {
    let az = FakeAz::new("cache-status", WORK);
    az.set("ttl", "3000");
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    let status = az.home.run(&["status"]);
    let out = stdout(&status);
    assert!(out.contains("cached secrets:  1"), "{out}");
    let line = out.lines().find(|l| l.trim_start().starts_with("work")).expect(&out);
    assert!(
        line.contains("azure") && (line.contains("expires in 49m") || line.contains("expires in 50m")),
        "{out}"
    );
    let list = stdout(&az.home.run(&["list"]));
    assert!(list.contains("cached, expires in"), "{list}");
    for text in [out, list, stderr(&status)] {
        assert!(!text.contains("token-1"), "{text}");
    }
}

#[test]
fn waiting_longer_than_the_bound_is_a_clear_error() {
    let az = FakeAz::new(
        "cache-lock-timeout",
        "[settings]\nlock_timeout = \"1s\"\n\n[credentials.work]\nprovider = \"azure\"\n",
    );
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    az.home.run(&["cache", "clear"]);
    let dir = az.home.path().join(".cache/keyhelper/credentials");
    let lock_path = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.extension().is_some_and(|e| e == "lock"))
        .expect("the entry's lock file stays after `cache clear`");
    let held = File::options().write(true).open(&lock_path).unwrap();
    held.lock().unwrap();
    let start = Instant::now();
    let output = az.get(&["work"]);
    assert_eq!(output.status.code(), Some(10), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("another keyhelper has been renewing this credential for over 1s"),
        "{}",
        stderr(&output)
    );
    assert!(start.elapsed() < Duration::from_secs(10), "waited {:?} for a 1s bound", start.elapsed());
    drop(held);
    assert_eq!(stdout(&az.get(&["work"])), "token-2\n");
}

#[test]
fn repeated_plain_gets_are_served_and_config_changes_are_never_missed() {
    let az = FakeAz::new(
        "cache-fast-path",
        "[credentials.work]\nprovider = \"azure\"\nscope = \"api://a/.default\"\n",
    );
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    for _ in 0..3 {
        assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&az.get(&["work", "-n", "--format", "json"]).stdout).unwrap();
    assert_eq!(json["token"], "token-1");
    assert_eq!(az.calls(), 1);

    // The `keyhelper` executable serves those hits itself: a copy of it with
    // no `keyhelper-full` beside it still does, and fails clearly otherwise.
    let alone = az.home.path().join("front-alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(support::keyhelper_exe(), alone.join("keyhelper")).unwrap();
    let front = |args: &[&str]| az.home.command(alone.join("keyhelper")).args(args).output_within();
    assert_eq!(stdout(&front(&["get", "work"])), "token-1\n");
    let miss = front(&["get", "work", "--min-ttl", "2h"]);
    assert_eq!(miss.status.code(), Some(1));
    assert!(stderr(&miss).contains("keyhelper-full must sit beside keyhelper"), "{}", stderr(&miss));
    assert_eq!(az.calls(), 1);

    // Another scope is another entry: the old note must not serve it.
    az.home.write_config("[credentials.work]\nprovider = \"azure\"\nscope = \"api://b/.default\"\n");
    assert_eq!(stdout(&az.get(&["work"])), "token-2\n");
    az.home.write_config("[credentials.work]\nprovider = \"azure\"\nscope = \"api://a/.default\"\n");
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n", "scope a's entry is still cached");

    // A user manifest that changes the options (a default tenant) changes the entry too.
    let bundled = std::fs::read_to_string(support::repo_root().join("providers/azure.toml")).unwrap();
    let dir = az.home.path().join(".config/keyhelper/providers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("azure.toml"),
        bundled.replace("[options.tenant]\n", "[options.tenant]\ndefault = \"contoso\"\n"),
    )
    .unwrap();
    assert_eq!(stdout(&az.get(&["work"])), "token-3\n");
    assert_eq!(az.calls(), 3);
}
