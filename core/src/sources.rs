//! What decided a command's answer, in a form a later process can check
//! cheaply: every file it read (by a digest of the very bytes it parsed),
//! every directory it listed (by the names it saw), and the environment
//! variables that change the answer (by a digest of their values).
//!
//! The fast path serves a cached secret only while all of these are exactly
//! as the full path saw them, so an edit made at any moment, even one that
//! keeps a file's size and restores its mtime, is never missed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// The files and directories read so far, in the order they were read.
#[derive(Debug, Default)]
pub struct SourceFiles {
    lines: Mutex<Vec<String>>,
}

impl SourceFiles {
    /// Reads `path`, remembering what was read (or that it was absent).
    pub fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let result = std::fs::read(path);
        self.record(file_line(path, result.as_ref().map(Vec::as_slice).map_err(std::io::Error::kind)));
        result
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
        "file" => match path() {
            Some(path) => file_line(&path, std::fs::read(&path).as_deref().map_err(std::io::Error::kind)),
            None => return false,
        },
        "dir" => match path() {
            Some(path) => dir_line(&path, list_dir(&path).as_deref()),
            None => return false,
        },
        "env" => env_line(name),
        _ => return false,
    };
    now == line
}

fn file_line(path: &Path, read: Result<&[u8], std::io::ErrorKind>) -> String {
    let state = match read {
        Ok(bytes) => digest(bytes),
        Err(std::io::ErrorKind::NotFound) => "absent".to_string(),
        Err(kind) => format!("unreadable-{kind:?}"),
    };
    format!("file {} {state}", encode_path(path))
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
