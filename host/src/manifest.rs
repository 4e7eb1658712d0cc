//! Provider manifests: what a provider is called, which plugin implements it,
//! what it may do (capabilities), which options it takes, and how its secret is
//! presented (env var, header). The bundled ones come from `providers/`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::bundled;
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
        toml::from_str(text).map_err(|e| e.message().to_string())
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

/// The providers this keyhelper knows.
#[derive(Debug, Clone)]
pub struct ProviderCatalog {
    manifests: Vec<ProviderManifest>,
}

impl ProviderCatalog {
    /// The providers bundled with this binary.
    pub fn bundled() -> Self {
        let manifests = bundled::BUNDLED_MANIFESTS
            .iter()
            .map(|text| ProviderManifest::parse(text).expect("bundled manifests are checked by tests"))
            .collect();
        Self { manifests }
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&ProviderManifest> {
        self.manifests.iter().find(|m| m.name == name)
    }

    /// Every provider, by name.
    pub fn all(&self) -> impl Iterator<Item = &ProviderManifest> {
        self.manifests.iter()
    }

    /// The provider names, for suggestions.
    pub fn names(&self) -> Vec<&str> {
        self.manifests.iter().map(|m| m.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_manifest_parses_and_has_its_plugin() {
        assert_eq!(bundled::BUNDLED_MANIFESTS.len(), 4);
        for text in bundled::BUNDLED_MANIFESTS {
            let manifest = ProviderManifest::parse(text).unwrap();
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
