//! The providers this keyhelper knows, by name: the bundled ones, those of
//! installed plugins, and the user's own manifests, each with its origin,
//! which decides what it is granted.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use crate::bundled_manifests;
use crate::capabilities::Capabilities;
use crate::failure::{ExitClass, Failure};
use crate::grants::{ManifestGrants, manifest_sha256};
use crate::installed::InstalledPlugins;
use crate::manifest::ProviderManifest;
use crate::sources::SourceFiles;

/// Where a provider comes from, which decides what it is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into keyhelper; granted what its manifest declares.
    Bundled,
    /// Installed with `keyhelper plugin install`; granted what the user
    /// confirmed at install time.
    Installed {
        /// The capabilities in the install record.
        granted: Capabilities,
    },
    /// A manifest in `$XDG_CONFIG_HOME/keyhelper/providers/`, overriding
    /// any provider of the same name. It is a third-party artifact like any
    /// other: granted what it declares only within the bundled provider's
    /// capabilities, or with the user's grant for its exact bytes.
    UserManifest {
        /// The manifest file.
        path: PathBuf,
        /// Whether it replaces a bundled provider.
        overrides_bundled: bool,
        /// What it asks beyond the bundled provider's capabilities (all it
        /// asks, for a new provider) that the user has not granted.
        ungranted: Capabilities,
    },
}

/// The providers this keyhelper knows: bundled, installed, and the user's own
/// manifests, later ones overriding earlier ones of the same name. Bundled
/// manifests are parsed the first time they are needed, so a `get` parses
/// only its own provider's.
#[derive(Debug)]
pub struct ProviderCatalog {
    entries: Vec<CatalogEntry>,
}

#[derive(Debug)]
struct CatalogEntry {
    name: String,
    text: &'static str,
    parsed: OnceCell<ProviderManifest>,
    origin: Origin,
}

impl CatalogEntry {
    fn manifest(&self) -> &ProviderManifest {
        self.parsed.get_or_init(|| bundled_manifest(self.text))
    }
}

/// A bundled manifest, from the JSON the build made of its TOML.
fn bundled_manifest(json: &str) -> ProviderManifest {
    serde_json::from_str(json).expect("bundled manifests are checked by tests")
}

impl ProviderCatalog {
    /// The providers bundled with this binary.
    pub fn bundled() -> Self {
        let entries = bundled_manifests::BUNDLED_MANIFESTS_JSON
            .iter()
            .map(|(name, text)| CatalogEntry {
                name: name.to_string(),
                text,
                parsed: OnceCell::new(),
                origin: Origin::Bundled,
            })
            .collect();
        Self { entries }
    }

    /// The bundled providers, then those of `installed` plugins, then the
    /// manifests in `user_dir` (`<name>.toml`) with the user's `grants`, read
    /// through `sources`. A broken user or installed manifest is an error
    /// naming its file.
    pub fn load(
        installed: &InstalledPlugins,
        user_dir: &Path,
        grants: &ManifestGrants,
        sources: &SourceFiles,
    ) -> Result<Self, Failure> {
        let mut catalog = Self::bundled();
        for plugin in installed.list_read_by(sources) {
            let path = plugin.manifest_path();
            let manifest = read_manifest(&path, sources)?;
            catalog.insert(manifest, Origin::Installed { granted: plugin.record.granted });
        }
        let user_files =
            sources.list(user_dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml"));
        for path in user_files {
            let (manifest, sha256) = read_manifest_hashed(&path, sources)?;
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if manifest.name != stem {
                return Err(Failure::new(
                    ExitClass::Config,
                    format!("provider manifest {} names provider '{}'", path.display(), manifest.name),
                )
                .hint(format!("rename the file to {}.toml, or set name = \"{stem}\"", manifest.name)));
            }
            let bundled = catalog.bundled_capabilities(&manifest.name);
            let granted = grants.find(&manifest.name, &sha256, sources).map(|grant| grant.granted);
            let within = granted.or(bundled.clone()).unwrap_or_default();
            let ungranted = manifest.capabilities.beyond(&within);
            let origin = Origin::UserManifest { path, overrides_bundled: bundled.is_some(), ungranted };
            catalog.insert(manifest, origin);
        }
        Ok(catalog)
    }

    /// What keyhelper's own provider called `name` declares, if it bundles one.
    fn bundled_capabilities(&self, name: &str) -> Option<Capabilities> {
        let json = bundled_manifests::BUNDLED_MANIFESTS_JSON.iter().find(|(n, _)| *n == name)?.1;
        Some(bundled_manifest(json).capabilities)
    }

    fn insert(&mut self, manifest: ProviderManifest, origin: Origin) {
        self.entries.retain(|e| e.name != manifest.name);
        let parsed = OnceCell::from(manifest);
        let name = parsed.get().expect("just set").name.clone();
        self.entries.push(CatalogEntry { name, text: "", parsed, origin });
        self.entries.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&ProviderManifest> {
        self.entry(name).map(CatalogEntry::manifest)
    }

    /// Where the provider called `name` comes from.
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.entry(name).map(|e| &e.origin)
    }

    /// What the user granted the provider called `name`.
    pub fn granted(&self, name: &str) -> Option<Capabilities> {
        let entry = self.entry(name)?;
        Some(match &entry.origin {
            Origin::Installed { granted } => granted.clone(),
            Origin::Bundled => entry.manifest().capabilities.clone(),
            Origin::UserManifest { ungranted, .. } => entry.manifest().capabilities.beyond(ungranted),
        })
    }

    /// An error when the provider called `name` is a user manifest asking
    /// for capabilities the user has not granted: it is not run until they
    /// are.
    pub fn check_granted(&self, name: &str) -> Result<(), Failure> {
        let Some(Origin::UserManifest { path, ungranted, .. }) = self.origin(name) else {
            return Ok(());
        };
        if ungranted.is_empty() {
            return Ok(());
        }
        Err(Failure::new(
            ExitClass::Denied,
            format!(
                "provider manifest {} asks for what you have not granted ({})",
                path.display(),
                ungranted.describe().join("; ")
            ),
        )
        .hint(format!("review and grant it with `keyhelper plugin grant {name}`, or remove the file")))
    }

    fn entry(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Every provider, by name.
    pub fn all(&self) -> impl Iterator<Item = &ProviderManifest> {
        self.entries.iter().map(CatalogEntry::manifest)
    }

    /// The provider names, for suggestions.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }
}

fn read_manifest(path: &Path, sources: &SourceFiles) -> Result<ProviderManifest, Failure> {
    read_manifest_hashed(path, sources).map(|(manifest, _)| manifest)
}

/// The manifest in `path` and the sha256 of its bytes.
fn read_manifest_hashed(path: &Path, sources: &SourceFiles) -> Result<(ProviderManifest, String), Failure> {
    let text = sources.read_to_string(path).map_err(|e| {
        Failure::new(ExitClass::Config, format!("cannot read provider manifest {}: {e}", path.display()))
    })?;
    let manifest = ProviderManifest::parse(&text).map_err(|e| {
        Failure::new(ExitClass::Config, format!("provider manifest {} is invalid: {e}", path.display()))
    })?;
    Ok((manifest, manifest_sha256(&text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn every_bundled_manifest_parses_under_its_own_name() {
        // Six providers with plugins of their own, eight API-key vendors on the stored-key plugin.
        assert_eq!(bundled_manifests::BUNDLED_MANIFESTS.len(), 14);
        for (name, text) in bundled_manifests::BUNDLED_MANIFESTS {
            let manifest = ProviderManifest::parse(text).unwrap();
            assert_eq!(manifest.name, *name, "providers/{name}.toml names itself differently");
        }
    }

    /// What a call reads, the JSON the build made, means what the TOML says.
    #[test]
    fn every_bundled_manifests_json_is_its_toml() {
        let json = bundled_manifests::BUNDLED_MANIFESTS_JSON;
        assert_eq!(json.len(), bundled_manifests::BUNDLED_MANIFESTS.len());
        for ((name, toml), (json_name, json)) in bundled_manifests::BUNDLED_MANIFESTS.iter().zip(json) {
            assert_eq!(name, json_name);
            let from_toml = format!("{:?}", ProviderManifest::parse(toml).unwrap());
            assert_eq!(format!("{:?}", bundled_manifest(json)), from_toml, "{name}");
        }
    }

    #[test]
    fn defaults_fill_only_unset_options() {
        let catalog = ProviderCatalog::bundled();
        let openai = catalog.get("openai").unwrap();
        let set = BTreeMap::from([("connection".to_string(), "work".to_string())]);
        let filled = openai.options_with_defaults(&set);
        assert_eq!(filled["connection"], "work");
        assert_eq!(filled["base_url"], "https://api.openai.com");
    }
}
