//! Renewal off the caller's path, with real processes: a `get` inside the
//! refresh window answers at once from the cache and leaves the renewal to a
//! detached `keyhelper-full renew-in-background`; below the floor it waits.
//! Many callers start one renewal, a killed renewer leaves nothing stuck, a
//! broken provider is not called by every `get`, and the fast path answers
//! exactly what the full path does across every kind of config edit.
//!
//! Time is moved by ageing the cache entry (see `FakeAz::age_entries`), not
//! by waiting; the only waits are for the renewer, bounded and polled.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::fake_az::FakeAz;
use support::{BoundedRun, stderr, stdout};

const WORK: &str = "[credentials.work]\nprovider = \"azure\"\n";

/// The provider's delay: any caller that waited for it took at least this long.
const SLOW: Duration = Duration::from_secs(2);

/// Polls `done` for up to 60 s.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `keyhelper-full get …`: the full path, without the fast one in front.
fn full_get(az: &FakeAz, args: &[&str]) -> std::process::Output {
    let full = support::keyhelper_exe().with_file_name("keyhelper-full");
    az.home.command(full).arg("get").args(args).output_within()
}

/// A slow provider, a token of an hour fetched and then aged to 200 s left:
/// inside the 5m window, above its 150 s floor.
fn in_window(tag: &str) -> FakeAz {
    let az = FakeAz::new(tag, WORK);
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    az.set("delay", &SLOW.as_secs().to_string());
    az.age_entries(3400);
    az
}

#[test]
fn inside_the_window_get_answers_at_once_and_one_renewal_runs() {
    for (path, tag) in [("fast", "renewal-fast"), ("full", "renewal-full")] {
        let az = in_window(tag);
        let start = Instant::now();
        let output = if path == "fast" { az.get(&["work"]) } else { full_get(&az, &["work"]) };
        assert!(start.elapsed() < SLOW, "{path}: the caller waited {:?} for the provider", start.elapsed());
        assert_eq!(stdout(&output), "token-1\n", "{path}: {}", stderr(&output));
        assert!(output.stderr.is_empty(), "{path}: {}", stderr(&output));
        // A second caller meanwhile starts no second renewal.
        assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
        eventually("the renewal wrote token-2", || az.cached_secret("work").as_deref() == Some("token-2"));
        assert_eq!(stdout(&az.get(&["work"])), "token-2\n", "{path}");
        assert_eq!(az.calls(), 2, "{path}: one call to fill, exactly one to renew");
    }
}

#[test]
fn below_the_floor_the_caller_waits_and_gets_the_new_token() {
    let az = in_window("renewal-floor");
    az.age_entries(100); // 100 s left: below the 150 s floor
    let start = Instant::now();
    let output = az.get(&["work"]);
    assert!(start.elapsed() >= SLOW, "it did not wait for the provider");
    assert_eq!(stdout(&output), "token-2\n", "{}", stderr(&output));
    assert_eq!(az.calls(), 2);
}

#[test]
fn blocking_credentials_renew_in_the_window_in_the_foreground() {
    let az =
        FakeAz::new("renewal-blocking", "[credentials.work]\nprovider = \"azure\"\nrefresh = \"blocking\"\n");
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    az.age_entries(3400);
    let output = az.get(&["work"]);
    assert_eq!(stdout(&output), "token-2\n", "{}", stderr(&output));
    assert_eq!(az.calls(), 2, "renewed before answering");
}

#[test]
fn thirty_two_callers_inside_the_window_start_one_renewal() {
    let az = in_window("renewal-race");
    let children: Vec<_> = (0..32).map(|_| az.spawn_get("work")).collect();
    for output in children.into_iter().map(support::finish) {
        assert_eq!(stdout(&output), "token-1\n", "{}", stderr(&output));
    }
    eventually("the renewal wrote token-2", || az.cached_secret("work").as_deref() == Some("token-2"));
    // Let any second renewer that might have started show itself.
    std::thread::sleep(SLOW + Duration::from_secs(1));
    assert_eq!(az.calls(), 2, "32 callers, one renewal");
}

/// `ppid` and `session` of a live process, from `/proc/<pid>/stat`.
fn parent_and_session(pid: i32) -> (i32, i32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    (fields[1].parse().unwrap(), fields[3].parse().unwrap())
}

#[test]
fn the_renewer_outlives_its_caller_in_a_session_of_its_own_and_dies_cleanly() {
    let az = in_window("renewal-sigkill");
    az.set("delay", "30");
    let caller = az.spawn_get("work");
    let caller_pid = i32::try_from(caller.id()).unwrap();
    assert_eq!(stdout(&support::finish(caller)), "token-1\n");
    az.wait_for_calls(2);
    let renewer = az.parent_of_call(2).expect("az recorded its parent");
    let (parent, session) = parent_and_session(renewer);
    assert_ne!(parent, caller_pid, "the renewer is not the caller's child");
    // SAFETY: getsid(0) has no preconditions.
    let ours = unsafe { libc::getsid(0) };
    assert_ne!(session, ours, "the renewer is in a session of its own, not its caller's");
    let running_az = || {
        let running = std::process::Command::new("pgrep")
            .args(["-s", &session.to_string(), "-x", "az"])
            .output_within();
        !running.stdout.is_empty()
    };
    assert!(running_az(), "the renewer's az runs in the renewer's session");
    // SIGKILL mid-renewal: its provider command dies with it, and nothing stays locked or torn.
    // SAFETY: kill(2) on a pid this test's keyhelper started.
    assert_eq!(unsafe { libc::kill(renewer, libc::SIGKILL) }, 0);
    eventually("the killed renewer's az is gone", || !running_az());
    az.set("delay", "0");
    assert_eq!(stdout(&az.get(&["work"])), "token-1\n", "the entry is whole");
    eventually("a new renewal wrote token-3", || az.cached_secret("work").as_deref() == Some("token-3"));
    assert_eq!(stdout(&az.get(&["work"])), "token-3\n");
}

#[test]
fn a_broken_provider_is_not_called_by_every_get_and_status_says_why() {
    let az = in_window("renewal-backoff");
    az.set("mode", "fail");
    az.set("delay", "0");
    for _ in 0..20 {
        let output = az.get(&["work"]);
        assert_eq!(stdout(&output), "token-1\n", "{}", stderr(&output));
    }
    eventually("the renewal failure was recorded", || {
        stdout(&az.home.run(&["status"])).contains("renewal failed")
    });
    for _ in 0..20 {
        assert_eq!(stdout(&az.get(&["work"])), "token-1\n");
    }
    assert_eq!(az.calls(), 2, "one fill, one failed renewal, then backing off");
    let status = stdout(&az.home.run(&["status"]));
    let line = status.lines().find(|l| l.trim_start().starts_with("work")).expect(&status);
    assert!(line.contains("Please run 'az login'") && line.contains("next try in"), "{line}");
    assert!(!status.contains("token-1"), "{status}");
    // At expiry the caller gets the provider's error, as without a cache.
    az.age_entries(200);
    let expired = az.get(&["work"]);
    assert_eq!(expired.status.code(), Some(4), "{}", stderr(&expired));
    assert!(expired.stdout.is_empty());
}

/// The fast path (`keyhelper`) and the full path (`keyhelper-full`) give the
/// same bytes after every kind of config edit, including one that keeps the
/// file's size and puts its modification time back.
#[test]
fn the_fast_path_answers_exactly_what_the_full_path_does() {
    let az = FakeAz::new("renewal-parity", "");
    let config = az.home.config_file();
    let write = |scope: char| {
        let text = format!("[credentials.work]\nprovider = \"azure\"\nscope = \"api://{scope}/.default\"\n");
        let before = std::fs::metadata(&config).ok().and_then(|m| m.modified().ok());
        std::fs::write(&config, text).unwrap();
        before
    };
    let restore_mtime = |mtime: Option<std::time::SystemTime>| {
        let file = std::fs::File::options().write(true).open(&config).unwrap();
        file.set_modified(mtime.unwrap()).unwrap();
    };
    let both = |args: &[&str]| {
        let fast = az.get(args);
        let full = full_get(&az, args);
        assert!(fast.status.success() && full.status.success(), "{}{}", stderr(&fast), stderr(&full));
        assert_eq!(stdout(&fast), stdout(&full), "fast and full paths differ for {args:?}");
        stdout(&fast)
    };
    write('a');
    let a = both(&["work"]);
    assert!(both(&["work", "-n", "--format", "json"]).contains(a.trim()));
    // In place, same size, mtime restored: only the content says it changed.
    let mtime = write('b');
    restore_mtime(mtime);
    let b = both(&["work"]);
    assert_ne!(a, b, "scope b is another entry");
    let mtime = write('a');
    restore_mtime(mtime);
    assert_eq!(both(&["work"]), a, "scope a's entry is still cached");
    // A variable the provider reads changes the answer too.
    let other_profile =
        az.home.keyhelper(&["get", "work"]).env("AZURE_CONFIG_DIR", "/elsewhere").output_within();
    assert_ne!(stdout(&other_profile), a, "another az profile is another entry");
    assert_eq!(both(&["work"]), a);
    assert_eq!(az.calls(), 3);
}

/// A renewer waits for its starter to exit before it starts its program, but
/// a starter that runs on (`run --env` with a long-lived program) holds the
/// renewal back by about a second, not for the program's life.
#[test]
fn a_starter_that_runs_on_holds_its_renewal_back_a_second_at_most() {
    let az = in_window("renewal-starter-runs-on");
    az.set("delay", "0");
    let started = Instant::now();
    let mut run = az
        .home
        .keyhelper(&["run", "--env", "T=work", "--", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the renewal wrote token-2", || az.cached_secret("work").as_deref() == Some("token-2"));
    let waited = started.elapsed();
    assert!(run.try_wait().unwrap().is_none(), "the starter still runs");
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(waited < Duration::from_secs(15), "the renewal waited {waited:?} for a starter that ran on");
    assert_eq!(az.calls(), 2, "one call to fill, one to renew");
}
