//! The on-disk cache of compiled plugins, so Cranelift runs once per plugin and
//! engine, not once per call.
//!
//! Artifacts are native code that wasmtime loads without checking, so they are
//! only read from a directory this user owns with mode 0700, and only under a
//! name derived from the plugin's sha256 and the engine's compatibility hash.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use keyhelper_core::platform::Exposure;
use keyhelper_core::private_fs::{self, Durability};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_tag: String,
}

impl ArtifactCache {
    /// A cache in `dir` for artifacts of `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_tag = format!("{}-{:016x}", env!("CARGO_PKG_VERSION"), hasher.finish());
        Self { dir, engine_tag }
    }

    /// The path of the artifact for a plugin whose wasm has this sha256.
    fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_tag))
    }

    /// The compiled component of the plugin whose wasm has this sha256, if
    /// there is a usable artifact.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path_for(sha256);
        if !self.is_trusted(&path) {
            return None;
        }
        // SAFETY: the artifact was written by this program (see `store`) into a
        // directory only this user can write, under a name that pins both the
        // source wasm and the engine configuration. wasmtime checks its header.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => {
                tracing::debug!("loaded precompiled plugin {}", path.display());
                Some(component)
            }
            Err(e) => {
                tracing::debug!("recompiling plugin artifact {}: {e}", path.display());
                None
            }
        }
    }

    /// Compiles `wasm` (whose sha256 is `sha256`, checked by the caller) and
    /// stores the artifact for next time.
    pub fn compile(&self, engine: &Engine, sha256: &str, wasm: &[u8]) -> anyhow::Result<Component> {
        let started = std::time::Instant::now();
        let component = Component::new(engine, wasm)?;
        tracing::debug!("compiled plugin {sha256} in {:?}", started.elapsed());
        let path = self.path_for(sha256);
        if let Err(e) = self.store(&path, &component) {
            tracing::debug!("could not store plugin artifact {}: {e}", path.display());
        }
        Ok(component)
    }

    /// Whether `path` is in a private directory and owned by this user.
    fn is_trusted(&self, path: &Path) -> bool {
        private_fs::is_owned(&self.dir, Exposure::Private) && private_fs::is_owned(path, Exposure::ReadOnly)
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        private_fs::write_atomic(path, &component.serialize()?, Durability::Durable)?;
        Ok(())
    }
}
