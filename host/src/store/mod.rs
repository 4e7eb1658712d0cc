//! Long-lived secrets (e.g. OpenAI keys from `keyhelper login`), per provider
//! and connection, in the OS keyring or in keyhelper's encrypted file store.
//! Never in plaintext.

pub mod file;

use std::fmt;

use crate::credential::Secret;
use crate::runtime::sandbox::StoredSecrets;

/// Which stored secret: a provider and a connection name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretId {
    /// The provider, e.g. `openai`.
    pub provider: String,
    /// The connection, e.g. `default`.
    pub connection: String,
}

impl SecretId {
    /// The id of `provider`'s `connection`.
    pub fn new(provider: &str, connection: &str) -> Self {
        Self { provider: provider.into(), connection: connection.into() }
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.connection)
    }
}

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing its files failed.
    #[error("secret store: {0}")]
    Io(#[from] std::io::Error),
    /// Its file could not be decrypted or parsed.
    #[error("secret store file {path} {problem}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

/// A place secrets are kept.
pub trait SecretBackend: Send + Sync {
    /// A short description for `keyhelper status`, e.g. `encrypted file (~/.local/share/keyhelper/secrets)`.
    fn describe(&self) -> String;
    /// The secret with this id.
    fn get(&self, id: &SecretId) -> Result<Option<Secret>, StoreError>;
    /// Stores (or replaces) a secret.
    fn set(&self, id: &SecretId, secret: &Secret) -> Result<(), StoreError>;
    /// Removes a secret; whether there was one.
    fn delete(&self, id: &SecretId) -> Result<bool, StoreError>;
    /// The ids of every stored secret.
    fn list(&self) -> Result<Vec<SecretId>, StoreError>;
}

/// The secret store, over whichever backend is in use.
pub struct SecretStore {
    backend: Box<dyn SecretBackend>,
}

impl SecretStore {
    /// A store over `backend`.
    pub fn new(backend: Box<dyn SecretBackend>) -> Self {
        Self { backend }
    }

    /// The backend in use.
    pub fn backend(&self) -> &dyn SecretBackend {
        self.backend.as_ref()
    }
}

impl StoredSecrets for SecretStore {
    fn read(&self, provider: &str, connection: &str) -> anyhow::Result<Option<Secret>> {
        Ok(self.backend.get(&SecretId::new(provider, connection))?)
    }
}
