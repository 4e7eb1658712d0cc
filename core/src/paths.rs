//! Where keyhelper keeps things, following the XDG base directories on Linux
//! (through `directories`): config in `$XDG_CONFIG_HOME/keyhelper`, secrets in
//! `$XDG_DATA_HOME/keyhelper`, caches in `$XDG_CACHE_HOME/keyhelper`, state in
//! `$XDG_STATE_HOME/keyhelper`.

use std::path::PathBuf;

use crate::failure::{ExitClass, Failure};

/// keyhelper's directories and config file.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// The config file (`--config`, `$KEYHELPER_CONFIG`, or `<config dir>/config.toml`).
    pub config_file: PathBuf,
    /// Whether the config file was named (`--config`, `$KEYHELPER_CONFIG`):
    /// then it must exist.
    pub config_named: bool,
    /// Long-lived data: the encrypted secret store, installed plugins.
    pub data_dir: PathBuf,
    /// Disposable data: compiled plugins, the credential cache.
    pub cache_dir: PathBuf,
    /// The user's own provider manifests, overriding bundled ones by name.
    pub providers_dir: PathBuf,
    /// State that outlives a process but is not data: running proxies.
    pub state_dir: PathBuf,
}

impl Dirs {
    /// The directories for this user; `config_file` overrides the config path.
    pub fn locate(config_file: Option<PathBuf>) -> Result<Self, Failure> {
        let project = directories::ProjectDirs::from("", "", "keyhelper").ok_or_else(|| {
            Failure::new(ExitClass::Config, "cannot find your home directory").hint("set HOME")
        })?;
        let named = config_file.or_else(|| std::env::var_os("KEYHELPER_CONFIG").map(PathBuf::from));
        let config_named = named.is_some();
        let config_file = named.unwrap_or_else(|| project.config_dir().join("config.toml"));
        Ok(Self {
            config_file,
            config_named,
            providers_dir: project.config_dir().join("providers"),
            state_dir: project.state_dir().unwrap_or(project.data_dir()).to_path_buf(),
            data_dir: project.data_dir().to_path_buf(),
            cache_dir: project.cache_dir().to_path_buf(),
        })
    }

    /// Where installed plugins are kept.
    pub fn plugins_dir(&self) -> PathBuf {
        self.data_dir.join("plugins")
    }

    /// Where the user's grants to their own provider manifests are kept.
    pub fn grants_dir(&self) -> PathBuf {
        self.data_dir.join("grants")
    }

    /// Where compiled plugin artifacts are kept.
    pub fn artifact_dir(&self) -> PathBuf {
        self.cache_dir.join("plugins")
    }

    /// Where the file secret store and the cache key are kept.
    pub fn secrets_dir(&self) -> PathBuf {
        self.data_dir.join("secrets")
    }

    /// Where cached credentials (sealed entries, lock files) are kept.
    pub fn credentials_cache_dir(&self) -> PathBuf {
        self.cache_dir.join("credentials")
    }

    /// Where running proxies describe themselves, for `status`.
    pub fn proxies_dir(&self) -> PathBuf {
        self.state_dir.join("proxies")
    }

    /// The key that seals the credential cache.
    pub fn cache_key_file(&self) -> PathBuf {
        self.secrets_dir().join("cache.key")
    }
}
