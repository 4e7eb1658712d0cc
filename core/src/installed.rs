//! Plugins installed with `keyhelper plugin install`, each in its own
//! directory under `$XDG_DATA_HOME/keyhelper/plugins/<name>/`: the component
//! (`plugin.wasm`), its provider manifest (`manifest.toml`) and the install
//! record (`record.json`: version, source, sha256, and the capabilities the
//! user granted). The recorded sha256 is checked at every load.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::capabilities::Capabilities;
use crate::private_fs::{self, Durability};
use crate::sources::SourceFiles;

/// What was installed, from where, and what the user granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRecord {
    /// The plugin's (and its provider's) name.
    pub name: String,
    /// The plugin's version, as it describes itself.
    pub version: String,
    /// The contract version it was built against.
    pub api_version: String,
    /// Where it was installed from.
    pub source: String,
    /// sha256 of `plugin.wasm`, checked at every load.
    pub sha256: String,
    /// When, in unix seconds.
    pub installed_at: i64,
    /// The capabilities the user granted.
    pub granted: Capabilities,
}

/// An installed plugin's files.
#[derive(Debug, Clone)]
pub struct InstalledPlugin {
    /// Its directory.
    pub dir: PathBuf,
    /// Its install record.
    pub record: InstallRecord,
}

impl InstalledPlugin {
    /// The component file.
    pub fn wasm_path(&self) -> PathBuf {
        self.dir.join("plugin.wasm")
    }

    /// The provider manifest file.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.toml")
    }
}

/// The directory of installed plugins.
pub struct InstalledPlugins {
    dir: PathBuf,
}

impl InstalledPlugins {
    /// The installed plugins in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Every installed plugin with a readable record, by name. A directory
    /// without one (an interrupted install) is skipped.
    pub fn list(&self) -> Vec<InstalledPlugin> {
        self.list_read_by(&SourceFiles::default())
    }

    /// [`list`](Self::list), reading through `sources`.
    pub fn list_read_by(&self, sources: &SourceFiles) -> Vec<InstalledPlugin> {
        let mut plugins: Vec<InstalledPlugin> =
            sources.list(&self.dir).iter().filter_map(|dir| read_plugin(dir, sources)).collect();
        plugins.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        plugins
    }

    /// The installed plugin called `name`.
    pub fn get(&self, name: &str) -> Option<InstalledPlugin> {
        read_plugin(&self.dir.join(name), &SourceFiles::default())
    }

    /// Installs (or replaces) a plugin: the files are written to a fresh
    /// directory that then replaces the old one by rename, so a plugin is
    /// always either wholly the old or wholly the new.
    pub fn install(
        &self,
        record: &InstallRecord,
        wasm: &[u8],
        manifest: &str,
    ) -> std::io::Result<InstalledPlugin> {
        private_fs::ensure_dir(&self.dir)?;
        // A private directory of its own, removed if anything below fails.
        let staging = tempfile::Builder::new().prefix(".staging-").tempdir_in(&self.dir)?;
        private_fs::write_atomic(&staging.path().join("plugin.wasm"), wasm, Durability::Durable)?;
        private_fs::write_atomic(
            &staging.path().join("manifest.toml"),
            manifest.as_bytes(),
            Durability::Durable,
        )?;
        let json = serde_json::to_vec_pretty(record).expect("a record serializes");
        private_fs::write_atomic(&staging.path().join("record.json"), &json, Durability::Durable)?;
        let target = self.dir.join(&record.name);
        let old = self.dir.join(format!(".old-{}-{}", record.name, std::process::id()));
        if target.exists() {
            std::fs::rename(&target, &old)?;
        }
        std::fs::rename(staging.keep(), &target)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(InstalledPlugin { dir: target, record: record.clone() })
    }

    /// Removes the plugin called `name`; whether it was installed.
    pub fn remove(&self, name: &str) -> std::io::Result<bool> {
        let dir = self.dir.join(name);
        if read_plugin(&dir, &SourceFiles::default()).is_none() {
            return Ok(false);
        }
        std::fs::remove_dir_all(dir)?;
        Ok(true)
    }
}

fn read_plugin(dir: &Path, sources: &SourceFiles) -> Option<InstalledPlugin> {
    let bytes = sources.read(&dir.join("record.json")).ok()?;
    let record: InstallRecord = serde_json::from_slice(&bytes).ok()?;
    (dir.file_name()?.to_str()? == record.name).then(|| InstalledPlugin { dir: dir.to_path_buf(), record })
}
