//! The audit log: one JSON line per secret served (`get`, the helper
//! protocols, `run`, and the proxy per fetch), in
//! `$XDG_STATE_HOME/keyhelper/audit.jsonl` (0600): when, which credential,
//! which provider, how it was asked for, whether the cache answered, and the
//! outcome — never the secret or any part of it.
//!
//! Each line is written by one `write` on a file opened for appending, so
//! concurrent processes never interleave or lose lines. Past
//! [`AuditLog::DEFAULT_MAX_BYTES`] the file is renamed to `audit.jsonl.1`
//! (replacing the previous one) by whoever holds the rotation lock; a writer
//! still holding the old file appends its line there, so none is lost.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::clock::unix_now;
use crate::private_fs;
use crate::rfc3339;

/// What one line records.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    /// The credential asked for.
    pub credential: &'a str,
    /// Its provider, when it resolved.
    pub provider: Option<&'a str>,
    /// How it was asked for: `get`, `git`, `docker`, `run`, `export`, `proxy`.
    pub mode: &'a str,
    /// `hit` or `miss`; `None` when the cache was not involved.
    pub cache: Option<&'a str>,
    /// `served`, or `failed: <why, one line>` (a message never holds a secret).
    pub outcome: &'a str,
    /// For the proxy: the requests served with this credential since its last line.
    pub requests: Option<u64>,
}

/// One line of the log, its fields in this order.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    credential: &'a str,
    provider: Option<&'a str>,
    mode: &'a str,
    cache: Option<&'a str>,
    outcome: &'a str,
    pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<u64>,
}

/// The audit log of one user.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
}

impl AuditLog {
    /// Size past which the log is rotated.
    pub const DEFAULT_MAX_BYTES: u64 = 4 << 20;

    /// The log in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self { path: state_dir.join("audit.jsonl"), max_bytes: Self::DEFAULT_MAX_BYTES }
    }

    /// The same log, rotated past `max_bytes`.
    pub fn with_max_bytes(self, max_bytes: u64) -> Self {
        Self { max_bytes, ..self }
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file it was last rotated into.
    pub fn rotated_path(&self) -> PathBuf {
        self.path.with_extension("jsonl.1")
    }

    /// Appends `record` as one line. An audit log that cannot be written is
    /// reported by the caller, never fatal to serving the secret.
    pub fn append(&self, record: &AuditRecord<'_>) -> std::io::Result<()> {
        let line = Line {
            time: rfc3339::format(unix_now()),
            credential: record.credential,
            provider: record.provider,
            mode: record.mode,
            cache: record.cache,
            outcome: record.outcome,
            pid: std::process::id(),
            requests: record.requests,
        };
        let mut bytes = serde_json::to_vec(&line).expect("an audit line serializes");
        bytes.push(b'\n');
        let mut file = private_fs::open_append(&self.path)?;
        // One write: appends of whole lines never interleave.
        let written = file.write(&bytes)?;
        if written != bytes.len() {
            return Err(std::io::Error::other("the audit line was cut short"));
        }
        if file.metadata()?.len() > self.max_bytes {
            self.rotate(&file);
        }
        Ok(())
    }

    /// Renames the full log aside, once, whoever else is writing.
    fn rotate(&self, written: &File) {
        let Ok(lock) = private_fs::open_lock_file(&self.path.with_extension("lock")) else { return };
        if lock.try_lock().is_err() {
            return; // another process is rotating it
        }
        // Rotate only the file this process wrote to, if no one has yet.
        let same = File::open(&self.path).is_ok_and(|now| private_fs::same_file(&now, written));
        if same {
            let _ = std::fs::rename(&self.path, self.rotated_path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(credential: &str) -> AuditRecord<'_> {
        AuditRecord {
            credential,
            provider: Some("azure"),
            mode: "get",
            cache: Some("hit"),
            outcome: "served",
            requests: None,
        }
    }

    #[test]
    fn lines_are_whole_json_objects_and_rotation_keeps_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path()).with_max_bytes(1000);
        for i in 0..40 {
            log.append(&record(&format!("cred-{i}"))).unwrap();
        }
        let mut seen = Vec::new();
        for path in [log.rotated_path(), log.path().to_path_buf()] {
            // The last append may have just rotated the current file away.
            for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(value["mode"], "get");
                seen.push(value["credential"].as_str().unwrap().to_string());
            }
        }
        // Rotated at least once; the last rotation's file and the current
        // one hold the most recent lines, in order, none cut.
        assert!(seen.len() < 40 && seen.len() >= 5, "{}", seen.len());
        assert_eq!(seen.last().unwrap(), "cred-39");
        let numbers: Vec<u32> = seen.iter().map(|s| s[5..].parse().unwrap()).collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    }
}
