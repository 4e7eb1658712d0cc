//! The plugin components of `plugins/`, compiled into this binary by
//! `build.rs`, each with the sha256 it had at build time, so an altered binary
//! is caught at load. (Their manifests are embedded by keyhelper-core.)

use std::borrow::Cow;

use crate::runtime::{IntegrityCheck, PluginSource};

/// A plugin embedded in the binary.
#[derive(Debug)]
pub struct BundledPlugin {
    /// The plugin's name (its crate directory under `plugins/`).
    pub name: &'static str,
    /// The component's bytes.
    pub wasm: &'static [u8],
    /// Its sha256 when it was built.
    pub sha256: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The bundled plugin called `name`.
pub fn find(name: &str) -> Option<&'static BundledPlugin> {
    BUNDLED_PLUGINS.iter().find(|p| p.name == name)
}

impl BundledPlugin {
    /// The plugin as a source to load, pinned to its build-time hash.
    pub fn source(&self) -> PluginSource<'static> {
        PluginSource {
            name: self.name,
            wasm: Cow::Borrowed(self.wasm),
            sha256: self.sha256,
            check: IntegrityCheck::BeforeCompiling,
        }
    }
}

#[cfg(test)]
mod tests {
    use keyhelper_core::catalog::ProviderCatalog;

    use super::*;

    #[test]
    fn bundled_plugins_and_manifests_pair_up() {
        let catalog = ProviderCatalog::bundled();
        for manifest in catalog.all() {
            assert!(find(&manifest.plugin).is_some(), "{} names a plugin that is not bundled", manifest.name);
        }
        for plugin in BUNDLED_PLUGINS {
            assert!(catalog.all().any(|m| m.plugin == plugin.name), "plugin {} has no manifest", plugin.name);
        }
    }
}
