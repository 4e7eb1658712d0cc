//! The encrypted file store: one sealed file holding every secret, its key in
//! a separate 0600 file, both in a 0700 directory. Writers are serialised by
//! the [`SecretStore`](super::SecretStore)'s lock.

use std::collections::BTreeMap;
use std::path::PathBuf;

use keyhelper_core::credential::Secret;
use keyhelper_core::private_fs::{self, Durability};
use keyhelper_core::sealed::SealingKey;
use zeroize::Zeroize;

use super::{SecretBackend, SecretId, StoreError};

const PURPOSE: &str = "keyhelper secret store v1";

/// Secrets in `<dir>/secrets.sealed`, keyed by `<dir>/secrets.key`.
pub struct FileBackend {
    dir: PathBuf,
}

impl FileBackend {
    /// A file store in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn data_path(&self) -> PathBuf {
        self.dir.join("secrets.sealed")
    }

    fn key(&self) -> Result<SealingKey, StoreError> {
        Ok(SealingKey::load_or_create(&self.dir.join("secrets.key"))?)
    }

    fn read_all(&self) -> Result<SecretMap, StoreError> {
        let path = self.data_path();
        let sealed = match private_fs::read_private(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SecretMap::default()),
            Err(e) => return Err(e.into()),
        };
        let corrupt = |problem: String| StoreError::Corrupt { path: path.display().to_string(), problem };
        let plain = self.key()?.open(PURPOSE, &sealed).map_err(|e| corrupt(e.to_string()))?;
        serde_json::from_slice(&plain)
            .map(SecretMap)
            .map_err(|_| corrupt("holds data keyhelper cannot read".into()))
    }

    fn write_all(&self, secrets: &BTreeMap<String, String>) -> Result<(), StoreError> {
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(secrets).expect("a map of strings serializes"));
        private_fs::write_atomic(&self.data_path(), &self.key()?.seal(PURPOSE, &plain), Durability::Durable)?;
        Ok(())
    }

    fn modify<R>(&self, f: impl FnOnce(&mut BTreeMap<String, String>) -> R) -> Result<R, StoreError> {
        let mut secrets = self.read_all()?;
        let result = f(&mut secrets.0);
        self.write_all(&secrets.0)?;
        Ok(result)
    }
}

/// The store's secrets by id, zeroed when dropped.
#[derive(Default)]
struct SecretMap(BTreeMap<String, String>);

impl Drop for SecretMap {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            value.zeroize();
        }
    }
}

impl SecretBackend for FileBackend {
    fn describe(&self) -> String {
        format!("encrypted file ({})", self.data_path().display())
    }

    fn get(&self, id: &SecretId) -> Result<Option<Secret>, StoreError> {
        Ok(self.read_all()?.0.remove(&id.to_string()).map(Secret::new))
    }

    fn set(&self, id: &SecretId, secret: &Secret) -> Result<(), StoreError> {
        self.modify(|secrets| {
            secrets.insert(id.to_string(), secret.expose().to_string());
        })
    }

    fn delete(&self, id: &SecretId) -> Result<bool, StoreError> {
        self.modify(|secrets| secrets.remove(&id.to_string()).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhelper_core::platform::Exposure;

    /// A fresh directory, and the path of the store inside it (not yet created).
    fn temp_dir() -> (tempfile::TempDir, PathBuf) {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("secrets");
        (base, dir)
    }

    #[test]
    fn round_trip_rotate_and_delete() {
        let (_base, dir) = temp_dir();
        let store = FileBackend::new(dir.clone());
        let id = SecretId::new("openai", "default");
        assert_eq!(store.get(&id).unwrap(), None);
        store.set(&id, &Secret::new("sk-first")).unwrap();
        store.set(&SecretId::new("openai", "team"), &Secret::new("sk-team")).unwrap();
        store.set(&id, &Secret::new("sk-second")).unwrap();
        assert_eq!(store.get(&id).unwrap(), Some(Secret::new("sk-second")));
        assert_eq!(store.get(&SecretId::new("openai", "team")).unwrap(), Some(Secret::new("sk-team")));
        assert!(store.delete(&id).unwrap());
        assert!(!store.delete(&id).unwrap());
        assert_eq!(store.get(&id).unwrap(), None);
    }

    #[test]
    fn files_are_private_and_never_plaintext() {
        let (_base, dir) = temp_dir();
        let store = FileBackend::new(dir.clone());
        store.set(&SecretId::new("openai", "default"), &Secret::new("sk-plaintext-check-value")).unwrap();
        assert!(private_fs::is_owned(&dir, Exposure::Private));
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert!(private_fs::is_owned(&path, Exposure::Private), "{}", path.display());
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(10).any(|w| w == b"plaintext-"),
                "{} holds the secret in plaintext",
                path.display()
            );
        }
    }

    #[test]
    fn a_corrupt_store_is_an_error_not_a_panic_and_is_left_alone() {
        let (_base, dir) = temp_dir();
        let store = FileBackend::new(dir.clone());
        store.set(&SecretId::new("openai", "default"), &Secret::new("sk-x")).unwrap();
        std::fs::write(dir.join("secrets.sealed"), b"garbage").unwrap();
        let err = store.get(&SecretId::new("openai", "default")).unwrap_err();
        assert!(err.to_string().contains("secrets.sealed"), "{err}");
        assert!(store.set(&SecretId::new("openai", "x"), &Secret::new("sk-y")).is_err());
        assert_eq!(std::fs::read(dir.join("secrets.sealed")).unwrap(), b"garbage", "no data is overwritten");
    }
}
