//! The cache-hit path of `keyhelper get`, taken by the small `keyhelper`
//! executable before argument parsing, configuration parsing or anything
//! else, because consumers call `get` far more often than secrets change and
//! its start-up time is most of its cost.
//!
//! After a `get` the full path leaves a small note (`hot-<name>` in the cache
//! directory): the entry's id, how the credential is renewed, where the config
//! and manifests are, and what decided the answer (see [`crate::sources`]):
//! digests of the very bytes of every file it parsed, the listings of the
//! directories it read, the bundled manifests, and the environment variables
//! that change the answer. The fast path serves a plain `get NAME [-n]
//! [--format raw|json]` from that entry while all of it still holds and the
//! entry needs no renewal before it is served (renewing it in the background
//! when it is due); in every other case it steps aside and `keyhelper-full`
//! runs, so it can only ever serve what the full path would have served.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::audit::{AuditLog, AuditRecord};
use crate::background;
use crate::bundled_manifests;
use crate::cache::{CredentialCache, Freshness};
use crate::clock::unix_now;
use crate::config::RefreshMode;
use crate::failure::ExitClass;
use crate::invocation;
use crate::output::{self, Conventions, Format};
use crate::paths::Dirs;
use crate::plain_get::{self, PlainGet};
use crate::platform;
use crate::private_fs::{self, Durability};
use crate::sources;

const NOTE_VERSION: &str = "keyhelper fast-get note v4";

/// What the full path learned from a `get` that lets the fast path repeat it.
#[derive(Debug, Clone)]
pub struct Remembered<'a> {
    /// The cache entry that served it.
    pub entry_id: &'a str,
    /// The credential's `refresh_before`.
    pub refresh_before: Duration,
    /// How it is renewed.
    pub refresh: RefreshMode,
    /// Whether secrets served are recorded in the audit log.
    pub audit: bool,
    /// What decided the answer: [`crate::sources::SourceFiles::lines`].
    pub sources: Vec<String>,
    /// The environment variables that change the answer.
    pub env: &'a [String],
}

/// Serves `args` (the process's whole argv) from the cache if it is a plain
/// `get` whose note still holds, of an entry that may be served now;
/// `None` otherwise. An entry due for renewal but comfortably valid is served
/// and renewed by a detached `keyhelper-full`. Returns the exit code.
pub fn try_serve(args: &[OsString]) -> Option<u8> {
    let get = parse(args)?;
    let dirs = Dirs::locate(None).ok()?;
    let note = String::from_utf8(platform::read_file(&note_path(&dirs, &get.name)).ok()?).ok()?;
    let mut lines = note.lines();
    if lines.next()? != NOTE_VERSION || lines.next()? != header(&dirs) {
        return None;
    }
    let entry_id = lines.next()?.strip_prefix("entry ")?;
    let refresh_before: i64 = lines.next()?.strip_prefix("refresh_before ")?.parse().ok()?;
    let refresh = RefreshMode::parse(lines.next()?.strip_prefix("refresh ")?)?;
    let audit = match lines.next()? {
        "audit on" => true,
        "audit off" => false,
        _ => return None,
    };
    if !lines.all(sources::still_holds) {
        return None;
    }
    let cache = CredentialCache::open(dirs.credentials_cache_dir(), &dirs.cache_key_file()).ok()?;
    let entry = cache.entry_by_id(entry_id);
    let cached = entry.read().ok()??;
    if cached.name != get.name {
        return None;
    }
    let now = unix_now();
    let renew = match cached.freshness(now, refresh_before, 0, refresh) {
        Freshness::Fresh => false,
        Freshness::RenewInBackground => true,
        Freshness::RenewNow => return None,
    };
    let text = output::render(&cached.credential, get.format, &Conventions::default(), get.newline).ok()?;
    let printed = output::print(&text);
    if audit && printed.is_ok() {
        let record = AuditRecord {
            credential: &get.name,
            provider: Some(&cached.provider),
            mode: "get",
            cache: Some("hit"),
            outcome: "served",
            requests: None,
        };
        if let Err(e) = AuditLog::new(&dirs.state_dir).append(&record) {
            eprintln!("keyhelper: warning: cannot write the audit log: {e}");
        }
    }
    if renew {
        background::start(&invocation::full_executable(), &get.name, &entry, now);
    }
    Some(match printed {
        Ok(()) => 0,
        Err(_) => ExitClass::Internal.code(),
    })
}

/// Leaves the note that lets later `get`s of `name` take the fast path.
/// Failing to write it only costs speed.
pub fn remember(dirs: &Dirs, name: &str, what: &Remembered<'_>) {
    let mut note = format!(
        "{NOTE_VERSION}\n{}\nentry {}\nrefresh_before {}\nrefresh {}\naudit {}\n",
        header(dirs),
        what.entry_id,
        what.refresh_before.as_secs(),
        what.refresh.name(),
        if what.audit { "on" } else { "off" }
    );
    for line in what.sources.iter().cloned().chain(what.env.iter().map(|name| sources::env_line(name))) {
        note.push_str(&line);
        note.push('\n');
    }
    if std::fs::read_to_string(note_path(dirs, name)).is_ok_and(|old| old == note) {
        return;
    }
    if let Err(e) = private_fs::write_atomic(&note_path(dirs, name), note.as_bytes(), Durability::Disposable)
    {
        tracing::debug!("could not write the fast-path note for '{name}': {e}");
    }
}

/// The keyhelper build and the places its configuration is read from: a
/// note written by another version, or for another config file (`--config`,
/// `$KEYHELPER_CONFIG`, `$XDG_CONFIG_HOME`), never applies.
fn header(dirs: &Dirs) -> String {
    let place = |path: &Path| hex::encode(path.to_string_lossy().as_bytes());
    format!(
        "keyhelper {} {} {} {} {}",
        env!("CARGO_PKG_VERSION"),
        bundled_manifests::BUNDLED_MANIFESTS_SHA256,
        place(&dirs.config_file),
        place(&dirs.providers_dir),
        place(&dirs.plugins_dir())
    )
}

/// `get NAME`, `-n` and `--format raw|json` in any order, and nothing else.
fn parse(args: &[OsString]) -> Option<PlainGet> {
    plain_get::parse(args).filter(|get| {
        matches!(get.format, Format::Raw | Format::Json) && get.min_ttl.is_none() && !get.no_cache
    })
}

fn note_path(dirs: &Dirs, name: &str) -> std::path::PathBuf {
    dirs.credentials_cache_dir().join(format!("hot-{}", hex::encode(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("keyhelper").chain(list.iter().copied()).map(OsString::from).collect()
    }

    #[test]
    fn takes_only_plain_gets() {
        let get = parse(&args(&["get", "work", "-n", "--format", "json"])).unwrap();
        assert_eq!((get.name.as_str(), get.format, get.newline), ("work", Format::Json, false));
        assert_eq!(parse(&args(&["get", "--format=raw", "work"])).unwrap().name, "work");
        for other in [
            &["get"][..],
            &["get", "work", "--format", "k8s"],
            &["get", "work", "--min-ttl", "10m"],
            &["get", "work", "--no-cache"],
            &["-v", "get", "work"],
            &["get", "work", "other"],
            &["--config", "x", "get", "work"],
            &["list"],
        ] {
            assert!(parse(&args(other)).is_none(), "{other:?}");
        }
    }
}
