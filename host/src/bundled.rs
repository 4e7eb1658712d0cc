//! What `build.rs` compiled into this binary: the provider manifests of
//! `providers/` and the plugin components of `plugins/`, each plugin with the
//! sha256 it had at build time, so an altered binary is caught at load.

use std::borrow::Cow;

use crate::runtime::PluginSource;

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
        PluginSource { name: self.name, wasm: Cow::Borrowed(self.wasm), sha256: self.sha256 }
    }
}
