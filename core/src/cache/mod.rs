//! The credential cache: one encrypted entry per credential (name + provider +
//! options), each with its own lock file, in `$XDG_CACHE_HOME/keyhelper/credentials/`.
//!
//! Reading an entry takes no lock, so a cache hit is one small file read and
//! one decryption. Renewing takes the entry's lock (an OS file lock, released
//! by the kernel when a holder dies), so concurrent processes make one plugin
//! call between them.

mod entry;
mod lock;
mod renewal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use self::entry::{CachedCredential, Freshness};
pub use self::lock::{EntryLock, LockTimeout};
use self::renewal::RenewalFiles;
pub use self::renewal::{RenewalClaim, RenewalFailures};
use crate::private_fs::{self, Durability};
use crate::sealed::SealingKey;

/// Why an entry could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing failed.
    #[error("credential cache: {0}")]
    Io(#[from] std::io::Error),
    /// The entry could not be decrypted or parsed.
    #[error("cache entry {path} {problem}")]
    Corrupt {
        /// The entry file.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The credential cache directory and its key.
pub struct CredentialCache {
    dir: PathBuf,
    key: SealingKey,
}

impl CredentialCache {
    /// The cache in `dir`, encrypted with the key in `key_file` (created on
    /// first use).
    pub fn open(dir: PathBuf, key_file: &Path) -> Result<Self, CacheError> {
        Ok(Self { key: SealingKey::load_or_create(key_file)?, dir })
    }

    /// The entry of the credential `name`, served by `provider` with `options`
    /// (defaults filled in) under the environment variables `env` that change
    /// its answer (name and value of each that is set): any change to them
    /// is another entry.
    pub fn entry(
        &self,
        name: &str,
        provider: &str,
        options: &BTreeMap<String, String>,
        env: &[(String, String)],
    ) -> CacheEntry<'_> {
        CacheEntry { cache: self, id: entry_id(name, provider, options, env) }
    }

    /// The entry with this id (see [`CacheEntry::id`]).
    pub fn entry_by_id(&self, id: &str) -> CacheEntry<'_> {
        CacheEntry { cache: self, id: id.to_string() }
    }

    /// Every readable entry with what it holds, by credential name, for
    /// `status` and `list`.
    pub fn entries(&self) -> Vec<(CacheEntry<'_>, CachedCredential)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut entries: Vec<(CacheEntry<'_>, CachedCredential)> = dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".entry").map(str::to_string))
            .filter_map(|id| {
                let entry = CacheEntry { cache: self, id };
                let cached = entry.read().ok().flatten()?;
                Some((entry, cached))
            })
            .collect();
        entries.sort_by(|(_, a), (_, b)| a.name.cmp(&b.name));
        entries
    }

    /// Removes the entries `matches` selects, and any unreadable entry, with
    /// their renewal records; returns how many. Lock files stay: removing one
    /// under a holder would let a second holder in.
    pub fn clear(&self, matches: impl Fn(&CachedCredential) -> bool) -> Result<usize, CacheError> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return Ok(0) };
        let mut removed = 0;
        for file in dir.filter_map(|e| e.ok()) {
            let Some(id) =
                file.file_name().to_str().and_then(|n| n.strip_suffix(".entry")).map(str::to_string)
            else {
                continue;
            };
            let entry = CacheEntry { cache: self, id };
            if entry.read().ok().flatten().is_none_or(|c| matches(&c)) {
                std::fs::remove_file(file.path())?;
                entry.renewal_files().clear_failures()?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The entry id: a hash of everything that selects the secret.
fn entry_id(
    name: &str,
    provider: &str,
    options: &BTreeMap<String, String>,
    env: &[(String, String)],
) -> String {
    let mut hasher = Sha256::new();
    for part in ["keyhelper-cache-v1", name, provider] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for (key, value) in options {
        hasher.update(key.as_bytes());
        hasher.update([b'=']);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    // Without variables the id is what it was before they counted.
    if !env.is_empty() {
        hasher.update(b"\0env\0");
        for (name, value) in env {
            hasher.update(name.as_bytes());
            hasher.update([b'=']);
            hasher.update(value.as_bytes());
            hasher.update([0]);
        }
    }
    hex::encode(&hasher.finalize()[..16])
}

/// One credential's entry and lock.
pub struct CacheEntry<'a> {
    cache: &'a CredentialCache,
    id: String,
}

impl CacheEntry<'_> {
    /// The entry's id: a hash of the credential's name, provider and options.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn data_path(&self) -> PathBuf {
        self.cache.dir.join(format!("{}.entry", self.id))
    }

    fn purpose(&self) -> String {
        // Binding the id in means an entry copied over another's file fails to open.
        format!("keyhelper credential cache v1 {}", self.id)
    }

    /// The cached credential, if there is one. A corrupt entry is an error the
    /// caller reports and then treats as a miss.
    pub fn read(&self) -> Result<Option<CachedCredential>, CacheError> {
        let path = self.data_path();
        let sealed = match crate::platform::read_file(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let corrupt = |problem: String| CacheError::Corrupt { path: path.display().to_string(), problem };
        let plain = self.cache.key.open(&self.purpose(), &sealed).map_err(|e| corrupt(e.to_string()))?;
        CachedCredential::decode(&plain)
            .map(Some)
            .ok_or_else(|| corrupt("holds data keyhelper cannot read".into()))
    }

    /// Replaces the entry atomically.
    pub fn write(&self, credential: &CachedCredential) -> Result<(), CacheError> {
        let plain = zeroize::Zeroizing::new(credential.encode());
        let sealed = self.cache.key.seal(&self.purpose(), &plain);
        private_fs::write_atomic(&self.data_path(), &sealed, Durability::Disposable)?;
        Ok(())
    }

    /// Takes the entry's lock, waiting at most `timeout` for another holder.
    pub fn lock(&self, timeout: Duration) -> Result<EntryLock, LockTimeout> {
        EntryLock::acquire(&self.cache.dir.join(format!("{}.lock", self.id)), timeout)
    }

    fn renewal_files(&self) -> RenewalFiles {
        RenewalFiles {
            record: self.cache.dir.join(format!("{}.renewal", self.id)),
            claim: self.cache.dir.join(format!("{}.renew", self.id)),
        }
    }

    /// Claims the entry's background renewal, without waiting: `None` when
    /// another process holds the claim.
    pub fn try_claim_renewal(&self) -> std::io::Result<Option<RenewalClaim>> {
        self.renewal_files().try_claim()
    }

    /// The renewal failures since the last success, if any.
    pub fn renewal_failures(&self) -> Option<RenewalFailures> {
        self.renewal_files().read_failures()
    }

    /// Records a failed renewal at `now`; returns the record, with when to try again.
    pub fn record_renewal_failure(&self, reason: &str, now: i64) -> RenewalFailures {
        let files = self.renewal_files();
        let failures = RenewalFailures::after(files.read_failures().as_ref(), reason, now);
        if let Err(e) = files.write_failures(&failures) {
            tracing::warn!("could not record the failed renewal of cache entry {}: {e}", self.id);
        }
        failures
    }

    /// Forgets past failures after a successful renewal.
    pub fn clear_renewal_failures(&self) {
        if let Err(e) = self.renewal_files().clear_failures() {
            tracing::warn!("could not clear the renewal failures of cache entry {}: {e}", self.id);
        }
    }
}
