//! Renewing an entry in the background: who may (a claim: an OS lock taken
//! without waiting, so many callers start one renewal) and when to try again
//! after a failure (a record beside the entry, with exponential backoff, so a
//! broken provider is not called by every `get`).

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::private_fs::{self, Durability};

/// The wait after the first failed renewal; it doubles with each failure.
pub const FIRST_BACKOFF: i64 = 30;
/// The longest wait between renewal attempts.
pub const MAX_BACKOFF: i64 = 300;

/// The renewal failures of an entry since its last successful renewal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalFailures {
    /// How many renewals in a row failed.
    pub count: u32,
    /// When the last one failed, in unix seconds.
    pub last_at: i64,
    /// Why, on one line (a provider's message; never a secret).
    pub reason: String,
    /// No background renewal starts before this time.
    pub next_try_at: i64,
}

impl RenewalFailures {
    /// The record after one more failure at `now`.
    pub fn after(previous: Option<&Self>, reason: &str, now: i64) -> Self {
        let count = previous.map_or(0, |p| p.count).saturating_add(1);
        let backoff = FIRST_BACKOFF.saturating_mul(1 << (count - 1).min(16)).min(MAX_BACKOFF);
        let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
        Self { count, last_at: now, reason, next_try_at: now + backoff }
    }

    /// Whether a renewal should wait at `now`.
    pub fn backing_off(&self, now: i64) -> bool {
        now < self.next_try_at
    }
}

/// Where an entry's renewal state is kept.
pub(super) struct RenewalFiles {
    /// The failure record (JSON, 0600).
    pub record: PathBuf,
    /// The lock a background renewal holds for its whole run.
    pub claim: PathBuf,
}

impl RenewalFiles {
    pub(super) fn read_failures(&self) -> Option<RenewalFailures> {
        serde_json::from_slice(&std::fs::read(&self.record).ok()?).ok()
    }

    pub(super) fn write_failures(&self, failures: &RenewalFailures) -> std::io::Result<()> {
        let json = serde_json::to_vec(failures).expect("a failure record serializes");
        private_fs::write_atomic(&self.record, &json, Durability::Disposable)
    }

    pub(super) fn clear_failures(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.record) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub(super) fn try_claim(&self) -> std::io::Result<Option<RenewalClaim>> {
        RenewalClaim::try_take(&self.claim)
    }
}

/// The right to renew an entry in the background, held until dropped (or,
/// handed to a renewer process, until that process exits or dies).
#[derive(Debug)]
pub struct RenewalClaim {
    file: File,
}

impl RenewalClaim {
    fn try_take(path: &Path) -> std::io::Result<Option<Self>> {
        let file = private_fs::open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// The claim inherited from the process that took it (see
    /// [`crate::platform::spawn_renewer`]).
    pub fn inherited(file: File) -> Self {
        Self { file }
    }

    /// The locked file, to hand to a renewer process.
    pub fn into_file(self) -> File {
        self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_30s_to_5m() {
        let mut record = None;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let next = RenewalFailures::after(record.as_ref(), "ERROR: Please run\n'az login'", 1000);
            waits.push(next.next_try_at - 1000);
            record = Some(next);
        }
        assert_eq!(waits, [30, 60, 120, 240, 300, 300, 300]);
        let record = record.unwrap();
        assert_eq!((record.count, record.reason.as_str()), (7, "ERROR: Please run 'az login'"));
        assert!(record.backing_off(1299) && !record.backing_off(1300));
    }

    #[test]
    fn one_claim_at_a_time_and_free_again_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.renew");
        let first = RenewalClaim::try_take(&path).unwrap().expect("free at first");
        assert!(RenewalClaim::try_take(&path).unwrap().is_none(), "claimed already");
        drop(first);
        assert!(RenewalClaim::try_take(&path).unwrap().is_some());
    }
}
