//! One lock file per cache entry, locked with the OS's advisory file lock
//! (`flock`): the kernel releases it when the holder exits or is killed, so a
//! crashed keyhelper never blocks the next one.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::private_fs;

/// A held entry lock; released on drop.
pub struct EntryLock {
    _file: File,
}

/// The lock was not acquired in time.
#[derive(Debug, thiserror::Error)]
pub enum LockTimeout {
    /// Another process held it for longer than the bound.
    #[error("another keyhelper has been renewing this credential for over {}s", .0.as_secs())]
    Waited(Duration),
    /// The lock file could not be opened.
    #[error("cannot open the cache lock file: {0}")]
    Io(#[from] std::io::Error),
}

impl EntryLock {
    /// Locks `path` (creating it 0600), polling for up to `timeout`.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<Self, LockTimeout> {
        let file = private_fs::open_lock_file(path)?;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(LockTimeout::Waited(timeout)),
                Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
            }
        }
    }
}
