//! This user's keyhelper: its directories and the providers it knows, and the
//! objects every command builds from them (configuration, secret store,
//! credential cache, broker). The CLI and the proxy both start from here.

use std::path::PathBuf;
use std::sync::Arc;

use keyhelper_core::audit::{AuditLog, AuditRecord};
use keyhelper_core::cache::CredentialCache;
use keyhelper_core::catalog::ProviderCatalog;
use keyhelper_core::config::{Config, StoreChoice};
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::grants::ManifestGrants;
use keyhelper_core::installed::InstalledPlugins;
use keyhelper_core::paths::Dirs;
use keyhelper_core::resolve::SECRET_STORE_VAR;
use keyhelper_core::sources::SourceFiles;

use crate::broker::{CredentialBroker, Served};
use crate::fetcher::CredentialFetcher;
use crate::interaction::CallerHints;
use crate::store::SecretStore;

/// Everything a command needs to start: directories and providers.
pub struct Environment {
    /// keyhelper's directories.
    pub dirs: Dirs,
    /// Known providers.
    pub catalog: ProviderCatalog,
    /// Every file read to learn them and the configuration, for the fast
    /// path's note.
    pub sources: SourceFiles,
}

impl Environment {
    /// This user's environment; `config_override` replaces the config file's path.
    pub fn new(config_override: Option<PathBuf>) -> Result<Self, Failure> {
        let dirs = Dirs::locate(config_override)?;
        let sources = SourceFiles::default();
        let installed = InstalledPlugins::new(dirs.plugins_dir());
        let grants = ManifestGrants::new(dirs.grants_dir());
        let catalog = ProviderCatalog::load(&installed, &dirs.providers_dir, &grants, &sources)?;
        Ok(Self { dirs, catalog, sources })
    }

    /// Another environment for the same user and config file, for a thread
    /// of its own.
    pub fn again(&self) -> Result<Self, Failure> {
        Self::new(Some(self.dirs.config_file.clone()))
    }

    /// Reads and checks the config file.
    pub fn config(&self) -> Result<Config, Failure> {
        if self.dirs.config_named && !self.dirs.config_file.exists() {
            return Err(Failure::new(
                ExitClass::Config,
                format!("the config file {} does not exist", self.dirs.config_file.display()),
            )
            .hint("create it, or name another with --config PATH or KEYHELPER_CONFIG"));
        }
        Config::load(&self.dirs.config_file, &self.catalog, &self.sources)
    }

    /// The secret store, its backend chosen by `KEYHELPER_SECRET_STORE` or,
    /// failing that, `[settings] secret_store`.
    pub fn store(&self, config: &Config) -> Result<SecretStore, Failure> {
        let choice = match std::env::var(SECRET_STORE_VAR) {
            Ok(value) => StoreChoice::parse(&value).ok_or_else(|| {
                Failure::new(ExitClass::Config, format!("{SECRET_STORE_VAR} is `{value}`"))
                    .hint("set it to auto, keyring or file")
            })?,
            Err(_) => config.settings.secret_store,
        };
        Ok(SecretStore::new(self.dirs.secrets_dir(), choice))
    }

    /// The credential cache, or `None` (with a warning) when it cannot be
    /// opened; keyhelper then works without it.
    pub fn cache(&self) -> Option<CredentialCache> {
        match CredentialCache::open(self.dirs.credentials_cache_dir(), &self.dirs.cache_key_file()) {
            Ok(cache) => Some(cache),
            Err(e) => {
                tracing::warn!("{e}; continuing without the credential cache");
                None
            }
        }
    }

    /// Appends `record` to the audit log unless `[settings] audit = false`;
    /// a log that cannot be written is a warning, never a failure.
    pub fn audit(&self, config: &Config, record: &AuditRecord<'_>) {
        if !config.settings.audits() {
            return;
        }
        if let Err(e) = AuditLog::new(&self.dirs.state_dir).append(record) {
            tracing::warn!("cannot write the audit log: {e}");
        }
    }

    /// Records `served` (for `credential`, asked for as `mode`) in the audit log.
    pub fn audit_served(&self, config: &Config, asked: &str, mode: &str, served: &Served<'_>) {
        let record = AuditRecord {
            credential: asked,
            provider: Some(&served.source.manifest.name),
            mode,
            cache: Some(if served.from_cache { "hit" } else { "miss" }),
            outcome: "served",
            requests: None,
        };
        self.audit(config, &record);
    }

    /// Records that `asked` (as `mode`) could not be served.
    pub fn audit_failed(&self, config: &Config, asked: &str, mode: &str, failure: &Failure) {
        let outcome = format!("failed (exit {})", failure.class.code());
        let record = AuditRecord {
            credential: asked,
            provider: None,
            mode,
            cache: None,
            outcome: &outcome,
            requests: None,
        };
        self.audit(config, &record);
    }

    /// A broker over this user's configuration, cache and plugins.
    pub fn broker<'a>(&'a self, config: &'a Config) -> Result<CredentialBroker<'a>, Failure> {
        Ok(CredentialBroker::new(config, &self.catalog, self.cache(), self.fetcher(config)?))
    }

    /// A fetcher that reads stored secrets from this user's store.
    pub fn fetcher(&self, config: &Config) -> Result<CredentialFetcher, Failure> {
        let store = Arc::new(self.store(config)?);
        Ok(CredentialFetcher::new(self.dirs.clone(), store, CallerHints::from_process().is_interactive()))
    }
}
