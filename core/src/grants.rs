//! The user's grants to their own provider manifests (in
//! `$XDG_CONFIG_HOME/keyhelper/providers/`). A manifest is a third-party
//! artifact wherever it sits: one that asks for nothing beyond keyhelper's
//! bundled provider of the same name needs no grant; anything more needs
//! `keyhelper plugin grant NAME`, recorded here pinned to the sha256 of the
//! manifest's bytes, so an edit to the manifest needs a new grant.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::capabilities::Capabilities;
use crate::private_fs::{self, Durability};
use crate::sources::SourceFiles;

/// A user's grant to one manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestGrant {
    /// The sha256 (hex) of the manifest's bytes when it was granted.
    pub sha256: String,
    /// What was granted.
    pub granted: Capabilities,
}

/// The grants, one JSON file per provider name.
#[derive(Debug, Clone)]
pub struct ManifestGrants {
    dir: PathBuf,
}

impl ManifestGrants {
    /// The grants kept in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// The grant for the manifest of provider `name` whose bytes hash to
    /// `sha256`, read through `sources`; none if there is none or it was
    /// given to other bytes.
    pub fn find(&self, name: &str, sha256: &str, sources: &SourceFiles) -> Option<ManifestGrant> {
        let text = sources.read(&self.path(name)).ok()?;
        serde_json::from_slice::<ManifestGrant>(&text).ok().filter(|grant| grant.sha256 == sha256)
    }

    /// Records `grant` for provider `name`.
    pub fn record(&self, name: &str, grant: &ManifestGrant) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(grant).expect("a grant serializes");
        private_fs::write_atomic(&self.path(name), &json, Durability::Durable)
    }
}

/// The sha256 (hex) of a manifest's bytes, as grants pin it.
pub fn manifest_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_holds_only_for_the_bytes_it_was_given_to() {
        let dir = tempfile::tempdir().unwrap();
        let grants = ManifestGrants::new(dir.path().to_path_buf());
        let sha = manifest_sha256("name = \"x\"\n");
        let grant = ManifestGrant { sha256: sha.clone(), granted: Capabilities::default() };
        grants.record("x", &grant).unwrap();
        let sources = SourceFiles::default();
        assert_eq!(grants.find("x", &sha, &sources), Some(grant));
        assert_eq!(grants.find("x", &manifest_sha256("name = \"x\" # edited\n"), &sources), None);
        assert_eq!(grants.find("y", &sha, &sources), None);
    }
}
