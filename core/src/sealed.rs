//! Authenticated encryption of keyhelper's files at rest (the file secret store
//! and the credential cache) with XChaCha20-Poly1305 from RustCrypto, a random
//! 192-bit nonce per write, and a purpose label bound in as associated data so
//! a blob cannot be moved from one role to another.

use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use zeroize::Zeroizing;

use crate::private_fs;

/// Format version byte at the start of every sealed blob.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// A 256-bit key for sealing and opening blobs.
pub struct SealingKey(XChaCha20Poly1305);

/// Why a blob could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Too short or of an unknown format version.
    #[error("not a keyhelper sealed file (truncated or unknown format)")]
    Malformed,
    /// Authentication failed: altered, corrupt, or sealed with another key.
    #[error("could not be decrypted (corrupt, altered, or written with another key)")]
    Undecryptable,
}

impl SealingKey {
    /// Loads the key in `path`, creating a random one (0600, in a 0700
    /// directory) if there is none. A concurrent creator may win the race;
    /// then its key is used. A key file open to other users is refused.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match private_fs::read_private(path).map(Zeroizing::new) {
            Ok(bytes) if bytes.len() == 32 => return Ok(Self::from_bytes(&bytes)),
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is not a keyhelper key file (wrong length)",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        private_fs::create_new(path, key.as_slice())?;
        let bytes = Zeroizing::new(private_fs::read_private(path)?);
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        Self(XChaCha20Poly1305::new(Key::from_slice(bytes)))
    }

    /// Encrypts `plaintext` for `purpose`.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .0
            .encrypt(&nonce, Payload { msg: plaintext, aad: purpose.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts a blob sealed for `purpose`.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(OpenError::Malformed);
        }
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        self.0
            .decrypt(nonce, Payload { msg: &sealed[1 + NONCE_LEN..], aad: purpose.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let sealed = key().seal("cache", b"sk-secret-value");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(&key().open("cache", &sealed).unwrap()[..], b"sk-secret-value");
    }

    #[test]
    fn refuses_altered_truncated_misfiled_or_foreign_blobs() {
        let sealed = key().seal("cache", b"value");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(matches!(key().open("cache", &altered), Err(OpenError::Undecryptable)));
        assert!(matches!(key().open("cache", &sealed[..20]), Err(OpenError::Malformed)));
        assert!(matches!(key().open("store", &sealed), Err(OpenError::Undecryptable)));
        assert!(matches!(
            SealingKey::from_bytes(&[8u8; 32]).open("cache", &sealed),
            Err(OpenError::Undecryptable)
        ));
    }

    #[test]
    fn creates_a_private_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/key");
        let sealed = SealingKey::load_or_create(&path).unwrap().seal("p", b"x");
        assert!(crate::private_fs::is_owned(&path, crate::platform::Exposure::Private));
        assert_eq!(&SealingKey::load_or_create(&path).unwrap().open("p", &sealed).unwrap()[..], b"x");
    }
}
