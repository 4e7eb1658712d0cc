//! What decided a command's answer, in a form a later process can check
//! cheaply: every file it read (by a digest of the very bytes it parsed),
//! every directory it listed (by the names it saw), and the environment
//! variables that change the answer (by a digest of their values).
//!
//! The fast path serves a cached secret only while all of these are exactly
//! as the full path saw them, so an edit made at any moment, even one that
//! keeps a file's size and restores its mtime, is never missed.
//!
//! A file's line also carries the stamp of the version read (device, inode,
//! size, modification and change times: git's stat data, from the `fstat`
//! before the read), unless it had changed in the last seconds before. While
//! a file's stamp is unchanged the fast path trusts it without reading the
//! file: opening, reading and hashing the config was a tenth of a cache
//! hit's time. When the stamp differs (or there is none), it compares the
//! content's digest, so a file merely touched still holds.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::platform;

/// The files and directories read so far, in the order they were read.
#[derive(Debug, Default)]
pub struct SourceFiles {
    lines: Mutex<Vec<String>>,
}

impl SourceFiles {
    /// Reads `path`, remembering what was read (or that it was absent).
    pub fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.read_as_of(path, SystemTime::now())
    }

    /// [`Self::read`], the time being `now`.
    fn read_as_of(&self, path: &Path, now: SystemTime) -> std::io::Result<Vec<u8>> {
        let result = platform::read_file_stamped(path, now);
        let line = match &result {
            Ok((bytes, stamp)) => file_line(path, &digest(bytes), stamp.as_deref()),
            Err(e) => file_line(path, &unreadable(e.kind()), None),
        };
        self.record(line);
        result.map(|(bytes, _)| bytes)
    }

    /// Reads `path` as UTF-8 text, remembering what was read.
    pub fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        String::from_utf8(self.read(path)?)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// The entries of `dir`, sorted (none when it cannot be read),
    /// remembering the names seen.
    pub fn list(&self, dir: &Path) -> Vec<PathBuf> {
        let listed = list_dir(dir);
        self.record(dir_line(dir, listed.as_deref()));
        listed.unwrap_or_default()
    }

    /// Every line recorded, in order.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("the source log is never poisoned").clone()
    }

    fn record(&self, line: String) {
        self.lines.lock().expect("the source log is never poisoned").push(line);
    }
}

/// The line for the environment variable `name` as this process sees it.
pub fn env_line(name: &str) -> String {
    let value = std::env::var_os(name);
    let digest = value.map_or_else(|| "unset".to_string(), |v| digest(v.as_encoded_bytes()));
    format!("env {name} {digest}")
}

/// Whether `line` (from [`SourceFiles::lines`] or [`env_line`]) still holds.
pub fn still_holds(line: &str) -> bool {
    let mut parts = line.splitn(3, ' ');
    let (Some(kind), Some(name), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let path = || hex::decode(name).ok().and_then(|bytes| String::from_utf8(bytes).ok()).map(PathBuf::from);
    let now = match kind {
        "file" => return path().is_some_and(|path| file_holds(&path, line)),
        "dir" => match path() {
            Some(path) => dir_line(&path, list_dir(&path).as_deref()),
            None => return false,
        },
        "env" => env_line(name),
        _ => return false,
    };
    now == line
}

/// Whether the file `line` recorded is still the version it was: by its
/// stamp when it has one that still matches, else by its content.
fn file_holds(path: &Path, line: &str) -> bool {
    let mut fields = line.split(' ').skip(2);
    let (Some(state), stamp, None) = (fields.next(), fields.next(), fields.next()) else {
        return false;
    };
    if stamp.is_some_and(|stamp| platform::current_stamp(path).as_deref() == Some(stamp)) {
        return true;
    }
    let now = match platform::read_file(path) {
        Ok(bytes) => digest(&bytes),
        Err(e) => unreadable(e.kind()),
    };
    now == state
}

/// `file <path> <state> [<stamp>]`: the state is the content's digest,
/// `absent` or `unreadable-<why>`.
fn file_line(path: &Path, state: &str, stamp: Option<&str>) -> String {
    match stamp {
        Some(stamp) => format!("file {} {state} {stamp}", encode_path(path)),
        None => format!("file {} {state}", encode_path(path)),
    }
}

/// The state of a file that could not be read.
fn unreadable(kind: std::io::ErrorKind) -> String {
    match kind {
        std::io::ErrorKind::NotFound => "absent".to_string(),
        kind => format!("unreadable-{kind:?}"),
    }
}

fn dir_line(dir: &Path, listed: Option<&[PathBuf]>) -> String {
    let state = match listed {
        Some(entries) => {
            let names: Vec<String> = entries
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            digest(names.join("\0").as_bytes())
        }
        None => "absent".to_string(),
    };
    format!("dir {} {state}", encode_path(dir))
}

fn list_dir(dir: &Path) -> Option<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).ok()?.filter_map(|e| Some(e.ok()?.path())).collect();
    entries.sort();
    Some(entries)
}

/// Paths may hold spaces or newlines; lines may not.
fn encode_path(path: &Path) -> String {
    hex::encode(path.to_string_lossy().as_bytes())
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_holds_until_its_file_changes_even_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config with space.toml");
        std::fs::write(&file, "a = 1\n").unwrap();
        let sources = SourceFiles::default();
        assert_eq!(sources.read(&file).unwrap(), b"a = 1\n");
        let line = sources.lines().pop().unwrap();
        assert!(still_holds(&line));
        // Same size, and the modification time put back.
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::fs::write(&file, "a = 2\n").unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
        assert!(!still_holds(&line));
        std::fs::remove_file(&file).unwrap();
        assert!(!still_holds(&line));
        assert!(SourceFiles::default().read(&file).is_err());
    }

    /// The line recorded for reading `file` as if at `now`.
    fn read_line_as_of(file: &Path, now: SystemTime) -> String {
        let sources = SourceFiles::default();
        sources.read_as_of(file, now).unwrap();
        sources.lines().pop().unwrap()
    }

    #[test]
    fn a_settled_file_is_known_by_its_stamp_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "a = 1\n").unwrap();
        if platform::current_stamp(&file).is_none() {
            return; // this platform keeps no stamps (Windows): content decides, as tested below
        }
        let later = SystemTime::now() + std::time::Duration::from_secs(10);
        let line = read_line_as_of(&file, later);
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "a stamp after the digest: {line}");
        // The stamp alone decides while it matches: a wrong digest still holds.
        let wrong_digest = format!("{} {} {} {}", fields[0], fields[1], "0".repeat(64), fields[3]);
        assert!(still_holds(&wrong_digest));
        // Rewritten in place with its size and modification time put back:
        // its change time moved, and its content is what decides.
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::fs::write(&file, "a = 2\n").unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
        assert!(!still_holds(&line));
        assert!(!still_holds(&wrong_digest));
    }

    #[test]
    fn a_file_changed_just_before_it_was_read_has_no_stamp_and_a_touch_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "a = 1\n").unwrap();
        let line = read_line_as_of(&file, SystemTime::now());
        assert_eq!(line.split(' ').count(), 3, "no stamp for a file changed this instant: {line}");
        let settled = read_line_as_of(&file, SystemTime::now() + std::time::Duration::from_secs(10));
        // Touched: other times, the same content.
        let file_handle = std::fs::File::options().write(true).open(&file).unwrap();
        file_handle.set_modified(SystemTime::now() + std::time::Duration::from_secs(60)).unwrap();
        assert!(still_holds(&line) && still_holds(&settled));
    }

    #[test]
    fn absent_files_and_directory_listings_are_recorded_too() {
        let dir = tempfile::tempdir().unwrap();
        let sources = SourceFiles::default();
        assert!(sources.list(&dir.path().join("providers")).is_empty());
        let _ = sources.read(&dir.path().join("config.toml"));
        let lines = sources.lines();
        assert!(lines.iter().all(|l| still_holds(l)), "{lines:?}");
        std::fs::create_dir(dir.path().join("providers")).unwrap();
        assert!(!still_holds(&lines[0]), "the directory appeared");
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        assert!(!still_holds(&lines[1]), "the file appeared");
    }

    #[test]
    fn environment_lines_follow_the_variable() {
        // A variable no other test touches.
        let name = "KEYHELPER_SOURCES_TEST_VARIABLE";
        let line = env_line(name);
        assert!(line.ends_with(" unset") && still_holds(&line));
        // SAFETY: no other thread reads or writes this variable.
        unsafe { std::env::set_var(name, "prod") };
        assert!(!still_holds(&line));
        assert!(still_holds(&env_line(name)));
        assert!(!env_line(name).contains("prod"), "values are digested, never written");
        unsafe { std::env::remove_var(name) };
    }

    #[test]
    fn malformed_lines_never_hold() {
        for line in ["", "file", "file zz abc", "what 00 11", "dir"] {
            assert!(!still_holds(line), "{line:?}");
        }
    }
}
