//! The cache-hit path of `keyhelper get`, taken by the small `keyhelper`
//! executable before argument parsing, configuration parsing or anything
//! else, because consumers call `get` far more often than secrets change and
//! its start-up time is most of its cost.
//!
//! After a `get` the full path leaves a small note (`hot-<name>` in the cache
//! directory: the entry's id, the credential's `refresh_before`, and a
//! fingerprint of everything that decides which entry a name maps to: the
//! config file, the user's provider manifests, the installed plugins and the
//! bundled manifests). The fast path serves a plain `get NAME [-n] [--format
//! raw|json]` from that entry when the fingerprint still matches and the entry
//! is fresh; in every other case it steps aside and `keyhelper-full` runs, so it
//! can only ever serve what the full path would have served.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::bundled_manifests;
use crate::cache::CredentialCache;
use crate::clock::unix_now;
use crate::failure::ExitClass;
use crate::output::{self, Conventions, Format};
use crate::paths::Dirs;
use crate::private_fs;

const NOTE_VERSION: &str = "keyhelper fast-get note v1";

/// A plain `get` the fast path may serve.
struct PlainGet {
    name: String,
    format: Format,
    newline: bool,
}

/// Serves `args` (the process's whole argv) from the cache if it is a plain
/// `get` of a fresh entry whose note still matches; `None` otherwise.
pub fn try_serve(args: &[OsString]) -> Option<ExitCode> {
    let get = parse(args)?;
    let dirs = Dirs::locate(None).ok()?;
    let note = std::fs::read_to_string(note_path(&dirs, &get.name)).ok()?;
    let mut lines = note.lines();
    if lines.next()? != NOTE_VERSION {
        return None;
    }
    let entry_id = lines.next()?.strip_prefix("entry ")?;
    let refresh_before: i64 = lines.next()?.strip_prefix("refresh_before ")?.parse().ok()?;
    let recorded: Vec<&str> = lines.collect();
    if recorded.join("\n") != fingerprint(&dirs) {
        return None;
    }
    let cache = CredentialCache::open(dirs.credentials_cache_dir(), &dirs.cache_key_file()).ok()?;
    let cached = cache.entry_by_id(entry_id).read().ok()??;
    if cached.name != get.name || !cached.is_fresh(unix_now(), refresh_before, 0) {
        return None;
    }
    let text = output::render(&cached.credential, get.format, &Conventions::default(), get.newline).ok()?;
    Some(match output::print(&text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(ExitClass::Internal.code()),
    })
}

/// Leaves the note that lets later `get`s of `name` take the fast path to
/// entry `entry_id`. Failing to write it only costs speed.
pub fn remember(dirs: &Dirs, name: &str, entry_id: &str, refresh_before: Duration) {
    let note = format!(
        "{NOTE_VERSION}\nentry {entry_id}\nrefresh_before {}\n{}",
        refresh_before.as_secs(),
        fingerprint(dirs)
    );
    if std::fs::read_to_string(note_path(dirs, name)).is_ok_and(|old| old == note) {
        return;
    }
    if let Err(e) = private_fs::write_atomic(&note_path(dirs, name), note.as_bytes()) {
        tracing::debug!("could not write the fast-path note for '{name}': {e}");
    }
}

/// `get NAME`, `-n` and `--format raw|json` in any order, and nothing else.
fn parse(args: &[OsString]) -> Option<PlainGet> {
    let mut args = args.iter().skip(1).map(|a| a.to_str());
    if args.next()?? != "get" {
        return None;
    }
    let mut get = PlainGet { name: String::new(), format: Format::Raw, newline: true };
    while let Some(arg) = args.next() {
        let format = |value: &str| Format::parse(value).filter(|f| matches!(f, Format::Raw | Format::Json));
        match arg? {
            "-n" => get.newline = false,
            "--format" => get.format = format(args.next()??)?,
            other if other.starts_with("--format=") => get.format = format(&other["--format=".len()..])?,
            other if !other.starts_with('-') && get.name.is_empty() => get.name = other.to_string(),
            _ => return None,
        }
    }
    (!get.name.is_empty()).then_some(get)
}

fn note_path(dirs: &Dirs, name: &str) -> std::path::PathBuf {
    dirs.credentials_cache_dir().join(format!("hot-{}", hex::encode(name)))
}

/// Everything that decides which entry a name maps to, one line each.
fn fingerprint(dirs: &Dirs) -> String {
    let mut lines = vec![format!(
        "bundled {} {}",
        env!("CARGO_PKG_VERSION"),
        bundled_manifests::BUNDLED_MANIFESTS_SHA256
    )];
    lines.push(stat_line(&dirs.config_file));
    for dir in [dirs.providers_dir.clone(), dirs.plugins_dir()] {
        lines.push(stat_line(&dir));
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for entry in entries {
            lines.push(stat_line(&entry));
            lines.push(stat_line(&entry.join("manifest.toml")));
        }
    }
    lines.join("\n")
}

/// `path size mtime inode`, or `path -` when it does not exist.
fn stat_line(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{} {} {}.{} {}", path.display(), m.size(), m.mtime(), m.mtime_nsec(), m.ino()),
        Err(_) => format!("{} -", path.display()),
    }
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
