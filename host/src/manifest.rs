//! Provider manifests: what a provider is called, which plugin implements it,
//! what it may do (capabilities), which options it takes, and how its secret is
//! presented (env var, header). The bundled ones come from `providers/`.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::bundled;
use crate::failure::{ExitClass, Failure};
use crate::installed::InstalledPlugins;
use crate::runtime::capability::Capabilities;

/// A provider manifest (`providers/<name>.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderManifest {
    /// The name used in `provider = "…"`.
    pub name: String,
    /// A human-friendly name.
    pub display_name: String,
    /// One line about the provider.
    pub description: String,
    /// The plugin that implements it.
    pub plugin: String,
    /// What the plugin may do.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Options a credential of this provider accepts.
    #[serde(default)]
    pub options: BTreeMap<String, OptionManifest>,
    /// How consumers expect the secret.
    #[serde(default)]
    pub conventions: Conventions,
    /// Caching defaults.
    #[serde(default)]
    pub cache: CachePolicy,
}

/// One option of a provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionManifest {
    /// One line of help.
    pub help: String,
    /// The value used when the credential sets none.
    pub default: Option<String>,
    /// Whether a credential must set it.
    #[serde(default)]
    pub required: bool,
}

/// How tools expect this provider's secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conventions {
    /// The environment variable clients read it from, e.g. `OPENAI_API_KEY`.
    pub env_var: Option<String>,
    /// The HTTP header it goes in, e.g. `Authorization`.
    pub header: Option<String>,
    /// What precedes it in the header, e.g. `Bearer `.
    #[serde(default)]
    pub header_prefix: String,
    /// A regular expression the secret's format matches, for reference.
    pub key_pattern: Option<String>,
}

/// Caching defaults of a provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachePolicy {
    /// How long to keep a secret whose expiry the provider does not report.
    #[serde(default, deserialize_with = "crate::duration::deserialize_opt")]
    pub default_ttl: Option<Duration>,
}

impl ProviderManifest {
    /// Parses a manifest; the error names the problem and its position.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => {
                let (line, column) = crate::config::line_column(text, span.start);
                format!("line {line}, column {column}: {}", e.message().trim())
            }
            None => e.message().trim().to_string(),
        })
    }

    /// The options a credential sets, with the defaults of those it does not.
    pub fn options_with_defaults(&self, set: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut options = set.clone();
        for (name, option) in &self.options {
            if let Some(default) = &option.default {
                options.entry(name.clone()).or_insert_with(|| default.clone());
            }
        }
        options
    }
}

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
    /// A manifest the user wrote in `$XDG_CONFIG_HOME/keyhelper/providers/`,
    /// overriding any provider of the same name; granted what it declares,
    /// since the user wrote it.
    UserManifest(PathBuf),
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
        self.parsed.get_or_init(|| {
            ProviderManifest::parse(self.text).expect("bundled manifests are checked by tests")
        })
    }
}

impl ProviderCatalog {
    /// The providers bundled with this binary.
    pub fn bundled() -> Self {
        let entries = bundled::BUNDLED_MANIFESTS
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
    /// manifests in `user_dir` (`<name>.toml`). A broken user or installed
    /// manifest is an error naming its file.
    pub fn load(installed: &InstalledPlugins, user_dir: &Path) -> Result<Self, Failure> {
        let mut catalog = Self::bundled();
        for plugin in installed.list() {
            let path = plugin.manifest_path();
            let manifest = read_manifest(&path)?;
            catalog.insert(manifest, Origin::Installed { granted: plugin.record.granted });
        }
        let mut user_files: Vec<PathBuf> = match std::fs::read_dir(user_dir) {
            Ok(dir) => dir
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        user_files.sort();
        for path in user_files {
            let manifest = read_manifest(&path)?;
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if manifest.name != stem {
                return Err(Failure::new(
                    ExitClass::Config,
                    format!("provider manifest {} names provider '{}'", path.display(), manifest.name),
                )
                .hint(format!("rename the file to {}.toml, or set name = \"{stem}\"", manifest.name)));
            }
            catalog.insert(manifest, Origin::UserManifest(path));
        }
        Ok(catalog)
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
            Origin::Bundled | Origin::UserManifest(_) => entry.manifest().capabilities.clone(),
        })
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

fn read_manifest(path: &Path) -> Result<ProviderManifest, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(ExitClass::Config, format!("cannot read provider manifest {}: {e}", path.display()))
    })?;
    ProviderManifest::parse(&text).map_err(|e| {
        Failure::new(ExitClass::Config, format!("provider manifest {} is invalid: {e}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_manifest_parses_and_has_its_plugin() {
        assert_eq!(bundled::BUNDLED_MANIFESTS.len(), 4);
        for (name, text) in bundled::BUNDLED_MANIFESTS {
            let manifest = ProviderManifest::parse(text).unwrap();
            assert_eq!(manifest.name, *name, "providers/{name}.toml names itself differently");
            assert!(
                bundled::find(&manifest.plugin).is_some(),
                "{} names a plugin that is not bundled",
                manifest.name
            );
        }
    }

    #[test]
    fn every_bundled_plugin_has_a_manifest() {
        let catalog = ProviderCatalog::bundled();
        for plugin in bundled::BUNDLED_PLUGINS {
            assert!(catalog.all().any(|m| m.plugin == plugin.name), "plugin {} has no manifest", plugin.name);
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

    #[test]
    fn unknown_manifest_keys_are_refused() {
        let err = ProviderManifest::parse("name='x'\ndisplay_name='X'\ndescription='d'\nplugin='x'\nfoo=1\n")
            .unwrap_err();
        assert!(err.contains("foo"), "{err}");
    }
}
