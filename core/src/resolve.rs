//! Turns the name given to `keyhelper get` into a provider and its full set of
//! options: a configured credential, or a provider name meaning that provider
//! with its defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cache::{CacheEntry, CredentialCache};
use crate::capabilities::Capabilities;
use crate::catalog::ProviderCatalog;
use crate::config::{Config, RefreshMode, Settings};
use crate::failure::{ExitClass, Failure};
use crate::manifest::{ApiFamily, ProviderManifest};
use crate::suggest::did_you_mean;

/// The variable that chooses the secret store, over `[settings] secret_store`.
pub const SECRET_STORE_VAR: &str = "KEYHELPER_SECRET_STORE";

/// A credential ready to be fetched.
#[derive(Debug, Clone)]
pub struct ResolvedCredential<'a> {
    /// The name asked for.
    pub name: String,
    /// Its provider.
    pub manifest: &'a ProviderManifest,
    /// What the user granted the provider (bundled providers: what they declare).
    pub granted: Capabilities,
    /// Options with defaults filled in.
    pub options: BTreeMap<String, String>,
    /// How long to keep a secret without a reported expiry.
    pub cache_ttl: Option<Duration>,
    /// How long before expiry to renew.
    pub refresh_before: Option<Duration>,
    /// How to renew inside the refresh window.
    pub refresh: Option<RefreshMode>,
    /// Credentials to try next when this one fails.
    pub fallback: Vec<String>,
    /// The HTTP API its secret is for.
    pub api: ApiFamily,
    /// Where the proxy forwards its requests: the credential's `upstream`,
    /// else the value of its provider's upstream option (e.g. `base_url`).
    pub upstream: Option<String>,
    /// Behind the proxy, how long a quota reset may be before requests move
    /// to a fallback.
    pub failover_after: Duration,
}

impl ResolvedCredential<'_> {
    /// How long before expiry its secret is renewed: the credential's own
    /// `refresh_before`, else `[settings]`'s, else 5 minutes.
    pub fn refresh_before(&self, settings: &Settings) -> Duration {
        self.refresh_before.or(settings.refresh_before).unwrap_or(Settings::DEFAULT_REFRESH_BEFORE)
    }

    /// How its secret is renewed inside the refresh window: the credential's
    /// own `refresh`, else `[settings]`'s, else in the background.
    pub fn refresh_mode(&self, settings: &Settings) -> RefreshMode {
        self.refresh.or(settings.refresh).unwrap_or_default()
    }

    /// The environment variables that change its answer: those its provider
    /// may read (declared and granted), and `KEYHELPER_SECRET_STORE` when it
    /// reads stored secrets. Sorted.
    pub fn answer_env(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.manifest.capabilities.env.iter().filter(|n| self.granted.env.contains(n)).cloned().collect();
        if self.manifest.capabilities.stored_secrets && self.granted.stored_secrets {
            names.push(SECRET_STORE_VAR.to_string());
        }
        names.sort();
        names.dedup();
        names
    }

    /// Its entry in `cache`, for the values [`answer_env`](Self::answer_env)
    /// has in this process.
    pub fn cache_entry<'c>(&self, cache: &'c CredentialCache) -> CacheEntry<'c> {
        let env: Vec<(String, String)> = self
            .answer_env()
            .into_iter()
            .filter_map(|name| Some((name.clone(), std::env::var(&name).ok()?)))
            .collect();
        cache.entry(&self.name, &self.manifest.name, &self.options, &env)
    }
}

/// The default of `failover_after`: a reset shorter than this is a rate
/// limit the client waits out itself (SDKs retry 429s).
pub const DEFAULT_FAILOVER_AFTER: Duration = Duration::from_secs(5);

/// The value of the provider's upstream option, without a trailing `/`.
fn upstream_option(manifest: &ProviderManifest, options: &BTreeMap<String, String>) -> Option<String> {
    let option = manifest.upstream_option.as_ref()?;
    Some(options.get(option)?.trim_end_matches('/').to_string())
}

/// Resolves `name` against the configuration, then the provider catalog.
pub fn resolve<'a>(
    name: &str,
    config: &Config,
    catalog: &'a ProviderCatalog,
) -> Result<ResolvedCredential<'a>, Failure> {
    if let Some(failure) = config.broken.get(name) {
        return Err(failure.clone());
    }
    if let Some(credential) = config.credentials.get(name) {
        let manifest = catalog.get(&credential.provider).expect("config checks provider names");
        catalog.check_granted(&credential.provider)?;
        let options = manifest.options_with_defaults(&credential.options);
        return Ok(ResolvedCredential {
            name: name.to_string(),
            manifest,
            granted: catalog.granted(&credential.provider).expect("the provider exists"),
            upstream: credential.upstream.clone().or_else(|| upstream_option(manifest, &options)),
            api: credential.api.unwrap_or(manifest.api),
            failover_after: credential.failover_after.unwrap_or(DEFAULT_FAILOVER_AFTER),
            options,
            cache_ttl: credential.cache_ttl.or(manifest.cache.default_ttl),
            refresh_before: credential.refresh_before,
            refresh: credential.refresh,
            fallback: credential.fallback.clone(),
        });
    }
    if let Some(manifest) = catalog.get(name) {
        catalog.check_granted(name)?;
        if let Some((option, spec)) = manifest.options.iter().find(|(_, o)| o.required && o.default.is_none())
        {
            return Err(Failure::new(
                ExitClass::Config,
                format!("provider '{name}' needs the `{option}` option, so it cannot be used by name alone"),
            )
            .hint(format!(
                "add to {}: [credentials.{name}] provider = \"{name}\" and {option} = \"…\" ({})",
                config.path.display(),
                spec.help
            )));
        }
        let options = manifest.options_with_defaults(&BTreeMap::new());
        return Ok(ResolvedCredential {
            name: name.to_string(),
            manifest,
            granted: catalog.granted(name).expect("the provider exists"),
            upstream: upstream_option(manifest, &options),
            api: manifest.api,
            failover_after: DEFAULT_FAILOVER_AFTER,
            options,
            cache_ttl: manifest.cache.default_ttl,
            refresh_before: None,
            refresh: None,
            fallback: Vec::new(),
        });
    }
    let known = config.credentials.keys().map(String::as_str).chain(catalog.names());
    Err(Failure::new(
        ExitClass::NotFound,
        format!("no credential or provider is called '{name}'{}", did_you_mean(name, known)),
    )
    .hint(format!("`keyhelper list` shows your credentials; add one to {}", config.path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("config.toml"), &ProviderCatalog::bundled()).unwrap()
    }

    #[test]
    fn configured_credentials_win_over_provider_names() {
        let catalog = ProviderCatalog::bundled();
        let cfg = config("[credentials.openai]\nprovider = \"openai\"\nconnection = \"team\"\n");
        let resolved = resolve("openai", &cfg, &catalog).unwrap();
        assert_eq!(resolved.options["connection"], "team");
    }

    #[test]
    fn a_provider_name_means_its_defaults() {
        let catalog = ProviderCatalog::bundled();
        let resolved = resolve("openai", &Config::default(), &catalog).unwrap();
        assert_eq!(resolved.options["connection"], "default");
        assert_eq!(resolved.cache_ttl, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn providers_with_required_options_need_a_credential() {
        let catalog = ProviderCatalog::bundled();
        let err = resolve("1password", &Config::default(), &catalog).unwrap_err();
        assert_eq!(err.class, ExitClass::Config);
        assert!(err.message.contains("`reference`"));
    }

    #[test]
    fn the_upstream_is_the_credentials_or_its_providers_base_url() {
        let catalog = ProviderCatalog::bundled();
        let cfg = config(
            "[credentials.a]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/\"\n\n\
             [credentials.b]\nprovider = \"openai\"\nupstream = \"https://gw.example\"\napi = \"anthropic\"\n\n\
             [credentials.c]\nprovider = \"azure\"\n",
        );
        let a = resolve("a", &cfg, &catalog).unwrap();
        assert_eq!((a.upstream.as_deref(), a.api), (Some("http://127.0.0.1:9"), ApiFamily::OpenAi));
        let b = resolve("b", &cfg, &catalog).unwrap();
        assert_eq!((b.upstream.as_deref(), b.api), (Some("https://gw.example"), ApiFamily::Anthropic));
        assert_eq!(resolve("c", &cfg, &catalog).unwrap().upstream, None, "azure has no default upstream");
        assert_eq!(
            resolve("openai", &cfg, &catalog).unwrap().upstream.as_deref(),
            Some("https://api.openai.com")
        );
        assert_eq!(a.failover_after, DEFAULT_FAILOVER_AFTER);
    }

    #[test]
    fn unknown_names_suggest_the_nearest() {
        let catalog = ProviderCatalog::bundled();
        let cfg = config("[credentials.work-azure]\nprovider = \"azure\"\n");
        let err = resolve("work-azur", &cfg, &catalog).unwrap_err();
        assert_eq!(err.class, ExitClass::NotFound);
        assert!(err.message.contains("did you mean `work-azure`?"), "{}", err.message);
    }
}
