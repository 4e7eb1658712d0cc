//! Long-lived secrets (e.g. OpenAI keys from `keyhelper login`), per provider
//! and connection, in the OS keyring or in keyhelper's encrypted file store.
//! Never in plaintext.
//!
//! An index (`index.json`, names only) records which backend holds each
//! secret, so a secret stays readable when the preferred backend changes, and
//! `list` works on keyrings that cannot enumerate.

pub mod file;
pub mod keyring;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use keyhelper_core::config::StoreChoice;
use keyhelper_core::credential::Secret;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::private_fs::{self, Durability};
use serde::{Deserialize, Serialize};

use crate::runtime::sandbox::{ConnectionGuard, StoredSecrets, is_valid_secret_name};

/// Which stored secret: a provider, a connection name, and which of the
/// connection's secrets — its main one (the key `keyhelper login` stores), or
/// a named one a plugin saved (e.g. `refresh_token`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretId {
    /// The provider, e.g. `openai`.
    pub provider: String,
    /// The connection, e.g. `default`.
    pub connection: String,
    /// The secret's name within the connection; `None` for its main secret.
    pub name: Option<String>,
}

impl SecretId {
    /// The id of `provider`'s `connection`'s main secret.
    pub fn new(provider: &str, connection: &str) -> Self {
        Self { provider: provider.into(), connection: connection.into(), name: None }
    }

    /// The id of the secret called `name` of the same connection.
    pub fn named(&self, name: &str) -> Self {
        Self { name: Some(name.into()), ..self.clone() }
    }

    /// Whether this is one of the secrets (main or named) of `provider`'s
    /// `connection`.
    pub fn of_connection(&self, provider: &str, connection: &str) -> bool {
        self.provider == provider && self.connection == connection
    }

    fn parse(text: &str) -> Option<Self> {
        let (provider, connection) = text.split_once('/')?;
        match connection.rsplit_once('#') {
            Some((connection, name)) if is_valid_secret_name(name) => {
                Some(Self::new(provider, connection).named(name))
            }
            _ => Some(Self::new(provider, connection)),
        }
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.connection)?;
        match &self.name {
            Some(name) => write!(f, "#{name}"),
            None => Ok(()),
        }
    }
}

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing its files failed.
    #[error("secret store: {0}")]
    Io(#[from] std::io::Error),
    /// A file could not be decrypted or parsed.
    #[error("secret store file {path} {problem}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The OS keyring refused or failed.
    #[error("OS keyring: {0}")]
    Keyring(String),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        let hint = match &error {
            StoreError::Io(_) => "check the permissions of keyhelper's data directory",
            StoreError::Corrupt { .. } => {
                "move the file aside (nothing was overwritten) and run `keyhelper login` again"
            }
            StoreError::Keyring(_) => {
                "unlock the keyring, or use the encrypted file store: secret_store = \"file\" in [settings] or KEYHELPER_SECRET_STORE=file"
            }
        };
        Failure::new(ExitClass::Store, error.to_string()).hint(hint)
    }
}

/// The kinds of backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The OS keyring (Secret Service, macOS Keychain, Windows Credential Manager).
    Keyring,
    /// keyhelper's encrypted file.
    File,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Keyring => "keyring",
            Self::File => "file",
        })
    }
}

/// A place secrets are kept.
pub trait SecretBackend: Send + Sync {
    /// Where, for `keyhelper status`.
    fn describe(&self) -> String;
    /// The secret with this id.
    fn get(&self, id: &SecretId) -> Result<Option<Secret>, StoreError>;
    /// Stores (or replaces) a secret.
    fn set(&self, id: &SecretId, secret: &Secret) -> Result<(), StoreError>;
    /// Removes a secret; whether there was one.
    fn delete(&self, id: &SecretId) -> Result<bool, StoreError>;
}

/// The secret store: the index plus both backends.
pub struct SecretStore {
    dir: PathBuf,
    choice: StoreChoice,
    file: file::FileBackend,
    keyring: keyring::KeyringBackend,
}

impl SecretStore {
    /// The store in `dir` (`$XDG_DATA_HOME/keyhelper/secrets`).
    pub fn new(dir: PathBuf, choice: StoreChoice) -> Self {
        Self {
            file: file::FileBackend::new(dir.clone()),
            keyring: keyring::KeyringBackend::new(),
            dir,
            choice,
        }
    }

    /// The backend new secrets go to, and why.
    pub fn preferred(&self) -> (BackendKind, &'static str) {
        match self.choice {
            StoreChoice::Keyring => (BackendKind::Keyring, "forced by secret_store / KEYHELPER_SECRET_STORE"),
            StoreChoice::File => (BackendKind::File, "forced by secret_store / KEYHELPER_SECRET_STORE"),
            StoreChoice::Auto if self.keyring.is_available() => {
                (BackendKind::Keyring, "an OS keyring answered")
            }
            StoreChoice::Auto => (BackendKind::File, "no OS keyring answered"),
        }
    }

    /// A description of a backend, for `status`.
    pub fn describe(&self, kind: BackendKind) -> String {
        self.backend(kind).describe()
    }

    fn backend(&self, kind: BackendKind) -> &dyn SecretBackend {
        match kind {
            BackendKind::Keyring => &self.keyring,
            BackendKind::File => &self.file,
        }
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    fn read_index(&self) -> Result<BTreeMap<String, BackendKind>, StoreError> {
        let path = self.index_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| StoreError::Corrupt {
                path: path.display().to_string(),
                problem: "is not valid JSON".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs `f` on the index under an exclusive lock, then saves the index.
    fn with_index<R>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, BackendKind>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let lock = private_fs::open_lock_file(&self.dir.join("lock"))?;
        lock.lock()?;
        let mut index = self.read_index()?;
        let result = f(&mut index)?;
        let bytes = serde_json::to_vec_pretty(&index).expect("an index of names serializes");
        private_fs::write_atomic(&self.index_path(), &bytes, Durability::Durable)?;
        Ok(result)
    }

    /// The secret stored under `id`, from whichever backend holds it.
    pub fn get(&self, id: &SecretId) -> Result<Option<Secret>, StoreError> {
        match self.read_index()?.get(&id.to_string()) {
            Some(kind) => self.backend(*kind).get(id),
            None => Ok(None),
        }
    }

    /// Stores `secret` under `id` in the preferred backend (removing any copy
    /// in the other one); returns the backend used.
    pub fn set(&self, id: &SecretId, secret: &Secret) -> Result<BackendKind, StoreError> {
        let (kind, _) = self.preferred();
        self.with_index(|index| {
            self.backend(kind).set(id, secret)?;
            if let Some(old) = index.insert(id.to_string(), kind).filter(|old| *old != kind) {
                self.backend(old).delete(id)?;
            }
            Ok(kind)
        })
    }

    /// Removes the secret under `id`; whether there was one.
    pub fn delete(&self, id: &SecretId) -> Result<bool, StoreError> {
        self.with_index(|index| match index.remove(&id.to_string()) {
            Some(kind) => {
                self.backend(kind).delete(id)?;
                Ok(true)
            }
            None => Ok(false),
        })
    }

    /// Every stored secret's id and backend (names only).
    pub fn list(&self) -> Result<Vec<(SecretId, BackendKind)>, StoreError> {
        Ok(self
            .read_index()?
            .into_iter()
            .filter_map(|(id, kind)| Some((SecretId::parse(&id)?, kind)))
            .collect())
    }

    /// Removes a connection's main secret and every named one; whether there
    /// was any.
    pub fn delete_connection(&self, id: &SecretId) -> Result<bool, StoreError> {
        let mut removed = false;
        for (stored, _) in self.list()? {
            if stored.of_connection(&id.provider, &id.connection) {
                removed |= self.delete(&stored)?;
            }
        }
        Ok(removed)
    }
}

impl StoredSecrets for SecretStore {
    fn read(&self, provider: &str, connection: &str, name: Option<&str>) -> anyhow::Result<Option<Secret>> {
        let id = SecretId { name: name.map(Into::into), ..SecretId::new(provider, connection) };
        Ok(self.get(&id)?)
    }

    fn save(&self, provider: &str, connection: &str, name: &str, secret: &Secret) -> anyhow::Result<()> {
        self.set(&SecretId::new(provider, connection).named(name), secret)?;
        Ok(())
    }

    fn lock_connection(&self, provider: &str, connection: &str) -> anyhow::Result<ConnectionGuard> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(SecretId::new(provider, connection).to_string().as_bytes());
        let path = self.dir.join("connections").join(format!("{}.lock", hex::encode(&digest[..16])));
        let file = private_fs::open_lock_file(&path)?;
        file.lock()?;
        Ok(Box::new(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_follows_the_secret_across_backends() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path().to_path_buf(), StoreChoice::File);
        let id = SecretId::new("openai", "default");
        assert_eq!(store.set(&id, &Secret::new("sk-one")).unwrap(), BackendKind::File);
        assert_eq!(store.get(&id).unwrap(), Some(Secret::new("sk-one")));
        assert_eq!(store.list().unwrap(), vec![(id.clone(), BackendKind::File)]);
        let index = std::fs::read_to_string(dir.path().join("index.json")).unwrap();
        assert!(!index.contains("sk-one"), "the index holds names only");
        assert!(store.delete(&id).unwrap());
        assert!(!store.delete(&id).unwrap());
        assert_eq!(store.get(&id).unwrap(), None);
    }
}
