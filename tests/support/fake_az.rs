//! A fake `az` (see `provider_azure.rs` for the output it reproduces) whose
//! behaviour is steered through files in its `bin/`: `mode` (`fail` makes it
//! answer "not logged in"), `ttl` (token lifetime, seconds), `delay` (seconds
//! to sleep first). Every call appends a line to `calls` and its parent's
//! pid (the keyhelper that ran it) to `parents`; the token it prints is
//! `token-<call number>`.

use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use keyhelper_core::cache::CredentialCache;

use super::Home;

/// A user whose `az` is the fake.
pub struct FakeAz {
    /// The user.
    pub home: Home,
}

impl FakeAz {
    /// A home with the fake `az` and `config` as its config file.
    pub fn new(tag: &str, config: &str) -> Self {
        let home = Home::new(tag);
        let dir = home.bin();
        home.fake_tool(
            "az",
            &format!(
                r#"#!/bin/sh
d='{dir}'
echo call >> "$d/calls"
echo "$PPID" >> "$d/parents"
n=$(wc -l < "$d/calls")
if [ "$(cat "$d/mode" 2>/dev/null)" = fail ]; then
  echo "ERROR: Please run 'az login' to setup account." >&2
  exit 1
fi
sleep "$(cat "$d/delay" 2>/dev/null || echo 0)"
ttl=$(cat "$d/ttl" 2>/dev/null || echo 3600)
now=$(date +%s)
echo "{{\"accessToken\":\"token-$n\",\"expires_on\":$((now + ttl)),\"tokenType\":\"Bearer\"}}"
"#,
                dir = dir.display()
            ),
        );
        home.write_config(config);
        Self { home }
    }

    /// Sets a knob (`mode`, `ttl`, `delay`).
    pub fn set(&self, knob: &str, value: &str) {
        std::fs::write(self.home.bin().join(knob), value).unwrap();
    }

    /// How many times `az` was run.
    pub fn calls(&self) -> usize {
        std::fs::read_to_string(self.home.bin().join("calls")).map_or(0, |s| s.lines().count())
    }

    /// The pid of the process that ran `az` the `n`th time (from 1).
    pub fn parent_of_call(&self, n: usize) -> Option<i32> {
        let parents = std::fs::read_to_string(self.home.bin().join("parents")).ok()?;
        parents.lines().nth(n - 1)?.trim().parse().ok()
    }

    /// Waits (at most 60 s) until `az` has been run `n` times.
    pub fn wait_for_calls(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.calls() < n {
            assert!(Instant::now() < deadline, "az was run {} times, not {n}", self.calls());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `keyhelper get <args>`.
    pub fn get(&self, args: &[&str]) -> Output {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        self.home.run(&all)
    }

    /// `keyhelper get <name>`, started.
    pub fn spawn_get(&self, name: &str) -> Child {
        self.home.keyhelper(&["get", name]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// The cache entry files.
    pub fn entry_files(&self) -> Vec<PathBuf> {
        let dir = self.home.path().join(".cache/keyhelper/credentials");
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| Some(e.ok()?.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "entry"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Moves every cached secret `seconds` into the past (fetched, expiry and
    /// cache deadline alike), through keyhelper's own cache code: what waiting
    /// that long would do, without the wait.
    pub fn age_entries(&self, seconds: i64) {
        let home = self.home.path();
        let cache = CredentialCache::open(
            home.join(".cache/keyhelper/credentials"),
            &home.join(".local/share/keyhelper/secrets/cache.key"),
        )
        .unwrap();
        let entries = cache.entries();
        assert!(!entries.is_empty(), "nothing is cached to age");
        for (entry, mut cached) in entries {
            cached.fetched_at -= seconds;
            cached.cache_until -= seconds;
            cached.credential.expires_at = cached.credential.expires_at.map(|t| t - seconds);
            entry.write(&cached).unwrap();
        }
    }

    /// The secret the cache holds for `name` now.
    pub fn cached_secret(&self, name: &str) -> Option<String> {
        let home = self.home.path();
        let cache = CredentialCache::open(
            home.join(".cache/keyhelper/credentials"),
            &home.join(".local/share/keyhelper/secrets/cache.key"),
        )
        .ok()?;
        let (_, cached) = cache.entries().into_iter().find(|(_, c)| c.name == name)?;
        Some(cached.credential.secret.expose().to_string())
    }
}
