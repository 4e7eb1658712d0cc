//! The OS keyring backend, through the `keyring` crate: the Secret Service
//! (GNOME Keyring, KWallet) over D-Bus on Linux, the Keychain on macOS, the
//! Credential Manager on Windows. Entries
//! are service `keyhelper`, account `<provider>/<connection>`.

use std::sync::OnceLock;

use keyhelper_core::credential::Secret;
use keyhelper_core::platform;

use super::{SecretBackend, SecretId, StoreError};

const SERVICE: &str = "keyhelper";

/// Secrets in the OS keyring.
pub struct KeyringBackend {
    available: OnceLock<bool>,
}

impl KeyringBackend {
    /// The keyring of this session.
    pub fn new() -> Self {
        Self { available: OnceLock::new() }
    }

    /// Whether a keyring answers here (asked once per process).
    pub fn is_available(&self) -> bool {
        *self.available.get_or_init(|| {
            if !platform::keyring_may_answer() {
                return false;
            }
            matches!(
                keyring::Entry::new(SERVICE, "keyhelper-probe").and_then(|e| e.get_password()),
                Ok(_) | Err(keyring::Error::NoEntry)
            )
        })
    }

    fn entry(id: &SecretId) -> Result<keyring::Entry, StoreError> {
        keyring::Entry::new(SERVICE, &id.to_string()).map_err(keyring_error)
    }
}

impl Default for KeyringBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn keyring_error(error: keyring::Error) -> StoreError {
    StoreError::Keyring(error.to_string())
}

impl SecretBackend for KeyringBackend {
    fn describe(&self) -> String {
        format!("OS keyring ({}, service \"{SERVICE}\")", platform::KEYRING_NAME)
    }

    fn get(&self, id: &SecretId) -> Result<Option<Secret>, StoreError> {
        match Self::entry(id)?.get_password() {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error(e)),
        }
    }

    fn set(&self, id: &SecretId, secret: &Secret) -> Result<(), StoreError> {
        Self::entry(id)?.set_password(secret.expose()).map_err(keyring_error)
    }

    fn delete(&self, id: &SecretId) -> Result<bool, StoreError> {
        match Self::entry(id)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(keyring_error(e)),
        }
    }
}
