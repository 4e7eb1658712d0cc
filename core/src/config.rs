//! The user's configuration file, `config.toml`:
//!
//! ```toml
//! [credentials.work]
//! provider = "azure"                  # a provider from `keyhelper providers`
//! scope = "api://my-proxy/.default"   # that provider's options, snake_case
//! ```
//!
//! The whole file is checked against the provider manifests when it is read,
//! and every problem is reported with its line and column.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::catalog::ProviderCatalog;
use crate::failure::{ExitClass, Failure};
use crate::manifest::ApiFamily;
use crate::sources::SourceFiles;
use crate::suggest::did_you_mean;
use crate::toml_diagnostics::line_column;

/// Keys of a credential table that configure keyhelper rather than the provider.
const RESERVED_KEYS: &[&str] =
    &["provider", "cache_ttl", "refresh_before", "refresh", "fallback", "api", "upstream", "failover_after"];

/// The parsed and checked configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// The `[settings]` table.
    pub settings: Settings,
    /// Configured credentials by name.
    pub credentials: BTreeMap<String, CredentialConfig>,
    /// Credentials whose entry is wrong (an unknown option, a bad value), with
    /// the error: using one fails with it, the others work.
    pub broken: BTreeMap<String, Failure>,
    /// `[git."host"]`: which credential `keyhelper git-credential` hands git for a host.
    pub git: BTreeMap<String, HostBinding>,
    /// `[docker."registry"]`: which credential the Docker helper hands out for a registry.
    pub docker: BTreeMap<String, HostBinding>,
}

/// The `[settings]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where `keyhelper login` stores secrets: `auto`, `keyring` or `file`.
    #[serde(default)]
    pub secret_store: StoreChoice,
    /// How long before expiry a cached secret is renewed (default 5m).
    #[serde(default, deserialize_with = "crate::duration::deserialize_opt")]
    pub refresh_before: Option<Duration>,
    /// How long `get` waits for another keyhelper refreshing the same
    /// credential before giving up (default 90s).
    #[serde(default, deserialize_with = "crate::duration::deserialize_opt")]
    pub lock_timeout: Option<Duration>,
    /// How a secret inside its refresh window is renewed (default background).
    #[serde(default)]
    pub refresh: Option<RefreshMode>,
    /// Whether every secret served is recorded in the audit log (default true).
    #[serde(default)]
    pub audit: Option<bool>,
}

impl Settings {
    /// The default of `refresh_before`: 5 minutes, the common margin of consumers.
    pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(300);
    /// The default of `lock_timeout`: longer than a plugin may run.
    pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(90);

    /// Whether secrets served go to the audit log (`audit`, default true).
    pub fn audits(&self) -> bool {
        self.audit != Some(false)
    }
}

/// How a cached secret inside its refresh window is renewed (`refresh` in
/// `[settings]` or a credential's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefreshMode {
    /// Hand out the cached secret at once and renew it in a process of its
    /// own, as long as it has comfortably long to live.
    #[default]
    Background,
    /// Renew before handing it out; the caller waits for the provider.
    Blocking,
}

impl RefreshMode {
    /// Parses `background` or `blocking`.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Background, Self::Blocking].into_iter().find(|mode| mode.name() == text)
    }

    /// `background` or `blocking`, as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Background => "background",
            Self::Blocking => "blocking",
        }
    }
}

/// Which backend `keyhelper login` stores new secrets in (`secret_store` in
/// `[settings]`, `KEYHELPER_SECRET_STORE` in the environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreChoice {
    /// The OS keyring when one answers, else the encrypted file.
    #[default]
    Auto,
    /// Always the OS keyring.
    Keyring,
    /// Always the encrypted file.
    File,
}

impl StoreChoice {
    /// Parses `auto`, `keyring` or `file`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Self::Auto),
            "keyring" => Some(Self::Keyring),
            "file" => Some(Self::File),
            _ => None,
        }
    }
}

/// One `[credentials.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialConfig {
    /// The provider's name.
    pub provider: String,
    /// Provider options as set in the file (defaults not filled in).
    pub options: BTreeMap<String, String>,
    /// How long to cache a secret whose expiry the provider does not report.
    pub cache_ttl: Option<Duration>,
    /// How long before expiry to renew the secret.
    pub refresh_before: Option<Duration>,
    /// How to renew it inside its refresh window.
    pub refresh: Option<RefreshMode>,
    /// Credentials to try, in order, when this one fails (or, behind the
    /// proxy, when its quota is gone).
    pub fallback: Vec<String>,
    /// The HTTP API its secret is for, instead of its provider's default.
    pub api: Option<ApiFamily>,
    /// The base URL the proxy forwards its requests to.
    pub upstream: Option<String>,
    /// Behind the proxy, a 429 whose reset is later than this moves requests
    /// to the next fallback (default 5s).
    pub failover_after: Option<Duration>,
}

type RawTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    settings: Settings,
    #[serde(default)]
    credentials: BTreeMap<Spanned<String>, Spanned<RawTable>>,
    #[serde(default)]
    git: BTreeMap<String, Spanned<HostBinding>>,
    #[serde(default)]
    docker: BTreeMap<String, Spanned<HostBinding>>,
}

/// A `[git."host"]` or `[docker."registry"]` table: the credential that
/// serves that host, and the username to pair it with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostBinding {
    /// A configured credential, or a provider name.
    pub credential: String,
    /// The username sent with the secret.
    pub username: Option<String>,
}

impl Config {
    /// Reads (through `sources`) and checks `path`; a missing file is an
    /// empty configuration.
    pub fn load(path: &Path, catalog: &ProviderCatalog, sources: &SourceFiles) -> Result<Self, Failure> {
        let text = match sources.read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self { path: path.to_path_buf(), ..Self::default() });
            }
            Err(e) => {
                return Err(Failure::new(ExitClass::Config, format!("cannot read {}: {e}", path.display())));
            }
        };
        Self::parse(&text, path, catalog)
    }

    /// Parses and checks the text of a config file read from `path`.
    pub fn parse(text: &str, path: &Path, catalog: &ProviderCatalog) -> Result<Self, Failure> {
        let at = |span: Option<Range<usize>>, message: String| {
            let location = match span {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    format!("{}:{line}:{column}", path.display())
                }
                None => path.display().to_string(),
            };
            Failure::new(ExitClass::Config, format!("config error at {location}: {message}"))
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_string()))?;
        let mut credentials = BTreeMap::new();
        let mut broken = BTreeMap::new();
        for (name, table) in raw.credentials {
            match parse_credential(name.get_ref(), table.get_ref(), catalog) {
                Ok(credential) => {
                    credentials.insert(name.into_inner(), credential);
                }
                Err((span, message, hint)) => {
                    let failure = at(Some(span.unwrap_or_else(|| name.span())), message);
                    let failure = match hint {
                        Some(hint) => failure.hint(hint),
                        None => failure,
                    };
                    broken.insert(name.into_inner(), failure);
                }
            }
        }
        let mut config =
            Self { path: path.to_path_buf(), settings: raw.settings, credentials, broken, ..Self::default() };
        config.check_fallbacks(catalog).map_err(|m| at(None, m))?;
        for (section, bindings) in [("git", raw.git), ("docker", raw.docker)] {
            for (host, binding) in bindings {
                let span = binding.span();
                let binding = binding.into_inner();
                if !config.names_credential(&binding.credential, catalog) {
                    let known = config.credentials.keys().map(String::as_str).chain(catalog.names());
                    return Err(at(
                        Some(span),
                        format!(
                            "[{section}.\"{host}\"] uses credential '{}', which is neither a credential nor a provider{}",
                            binding.credential,
                            did_you_mean(&binding.credential, known)
                        ),
                    ));
                }
                if section == "docker" && binding.username.is_none() {
                    return Err(at(Some(span), format!("[docker.\"{host}\"] needs a `username`"))
                        .hint("the registry's token username, e.g. \"AWS\" for ECR, \"00000000-0000-0000-0000-000000000000\" for ACR"));
                }
                let table = if section == "git" { &mut config.git } else { &mut config.docker };
                table.insert(host, binding);
            }
        }
        Ok(config)
    }

    /// Whether `name` is a configured credential or a provider.
    fn names_credential(&self, name: &str, catalog: &ProviderCatalog) -> bool {
        self.credentials.contains_key(name) || self.broken.contains_key(name) || catalog.get(name).is_some()
    }

    fn check_fallbacks(&self, catalog: &ProviderCatalog) -> Result<(), String> {
        for (name, credential) in &self.credentials {
            for next in &credential.fallback {
                if !self.names_credential(next, catalog) {
                    let known = self.credentials.keys().map(String::as_str).chain(catalog.names());
                    return Err(format!(
                        "credential '{name}' falls back to '{next}', which is neither a credential nor a provider{}",
                        did_you_mean(next, known)
                    ));
                }
            }
        }
        Ok(())
    }
}

type FieldError = (Option<Range<usize>>, String, Option<String>);

fn parse_credential(
    name: &str,
    table: &RawTable,
    catalog: &ProviderCatalog,
) -> Result<CredentialConfig, FieldError> {
    let get = |key: &str| table.iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v);
    let provider_value = get("provider").ok_or_else(|| {
        (
            None,
            format!("credential '{name}' has no `provider`"),
            Some(format!("add `provider = \"…\"`, one of: {}", catalog.names().join(", "))),
        )
    })?;
    let provider =
        scalar(provider_value).map_err(|m| (Some(provider_value.span()), format!("`provider` {m}"), None))?;
    let manifest = catalog.get(&provider).ok_or_else(|| {
        (
            Some(provider_value.span()),
            format!(
                "credential '{name}' uses provider '{provider}', which does not exist{}",
                did_you_mean(&provider, catalog.names())
            ),
            Some("`keyhelper providers` lists the providers".to_string()),
        )
    })?;
    let duration = |key: &str| -> Result<Option<Duration>, FieldError> {
        get(key)
            .map(|v| {
                let text = scalar(v).map_err(|m| (Some(v.span()), format!("`{key}` {m}"), None))?;
                crate::duration::parse(&text).map_err(|m| (Some(v.span()), format!("`{key}`: {m}"), None))
            })
            .transpose()
    };
    let fallback = match get("fallback") {
        None => Vec::new(),
        Some(v) => match v.get_ref() {
            toml::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    (Some(v.span()), "`fallback` must be a list of credential names".to_string(), None)
                })?,
            _ => {
                return Err((
                    Some(v.span()),
                    "`fallback` must be a list like [\"personal\"]".to_string(),
                    None,
                ));
            }
        },
    };
    let mut options = BTreeMap::new();
    for (key, value) in table.iter().filter(|(k, _)| !RESERVED_KEYS.contains(&k.get_ref().as_str())) {
        let key_name = key.get_ref();
        if !manifest.options.contains_key(key_name) {
            let accepted: Vec<&str> = manifest.options.keys().map(String::as_str).collect();
            return Err((
                Some(key.span()),
                format!(
                    "credential '{name}' sets `{key_name}`, which provider '{provider}' does not take{}",
                    did_you_mean(key_name, accepted.iter().copied())
                ),
                Some(format!("{provider} takes: {}", accepted.join(", "))),
            ));
        }
        let text = if manifest.options[key_name].list { string_list(value) } else { scalar(value) }
            .map_err(|m| (Some(value.span()), format!("`{key_name}` {m}"), None))?;
        options.insert(key_name.clone(), text);
    }
    if let Some((missing, _)) =
        manifest.options.iter().find(|(k, o)| o.required && o.default.is_none() && !options.contains_key(*k))
    {
        return Err((
            None,
            format!("credential '{name}' needs `{missing}` (required by provider '{provider}')"),
            Some(format!("add `{missing} = \"…\"`: {}", manifest.options[missing].help)),
        ));
    }
    Ok(CredentialConfig {
        provider,
        options,
        cache_ttl: duration("cache_ttl")?,
        refresh_before: duration("refresh_before")?,
        refresh: refresh_mode(get("refresh"))?,
        fallback,
        api: api_family(get("api"))?,
        upstream: get("upstream").map(upstream_url).transpose()?,
        failover_after: duration("failover_after")?,
    })
}

/// The `api` key of a credential table.
fn api_family(value: Option<&Spanned<toml::Value>>) -> Result<Option<ApiFamily>, FieldError> {
    let Some(value) = value else { return Ok(None) };
    let invalid = || (Some(value.span()), "`api` must be \"openai\" or \"anthropic\"".to_string(), None);
    let text = value.get_ref().as_str().ok_or_else(invalid)?;
    ApiFamily::parse(text).map(Some).ok_or_else(invalid)
}

/// The `upstream` key of a credential table: an http(s) URL with a host.
fn upstream_url(value: &Spanned<toml::Value>) -> Result<String, FieldError> {
    let invalid = |why: &str| {
        (
            Some(value.span()),
            format!("`upstream` {why}"),
            Some(
                "e.g. upstream = \"https://api.openai.com\" or \"https://myorg.openai.azure.com/openai\""
                    .into(),
            ),
        )
    };
    let text = value.get_ref().as_str().ok_or_else(|| invalid("must be a URL string"))?;
    let url = url::Url::parse(text).map_err(|e| invalid(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("must be an http or https URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid("must be a base URL, without credentials, query or fragment"));
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// The `refresh` key of a credential table.
fn refresh_mode(value: Option<&Spanned<toml::Value>>) -> Result<Option<RefreshMode>, FieldError> {
    let Some(value) = value else { return Ok(None) };
    let invalid =
        || (Some(value.span()), "`refresh` must be \"background\" or \"blocking\"".to_string(), None);
    let text = value.get_ref().as_str().ok_or_else(invalid)?;
    RefreshMode::parse(text).map(Some).ok_or_else(invalid)
}

/// A list option: a TOML array of strings, as the JSON array the plugin reads.
fn string_list(value: &Spanned<toml::Value>) -> Result<String, String> {
    let items: Option<Vec<&str>> = match value.get_ref() {
        toml::Value::Array(items) => items.iter().map(toml::Value::as_str).collect(),
        _ => None,
    };
    match items {
        Some(items) if !items.is_empty() => Ok(serde_json::to_string(&items).expect("strings serialize")),
        _ => Err("must be a non-empty list of strings, like [\"my-cli\", \"get-token\"]".to_string()),
    }
}

/// A string, number or boolean as text.
fn scalar(value: &Spanned<toml::Value>) -> Result<String, String> {
    match value.get_ref() {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("must be a string, number or boolean".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config, or its first error: a syntax error, or a broken credential.
    fn parse(text: &str) -> Result<Config, Failure> {
        let config = Config::parse(text, Path::new("config.toml"), &ProviderCatalog::bundled())?;
        match config.broken.values().next() {
            Some(failure) => Err(failure.clone()),
            None => Ok(config),
        }
    }

    #[test]
    fn one_broken_credential_leaves_the_others_usable() {
        let text = "[credentials.good]\nprovider = \"azure\"\n\n[credentials.bad]\nprovider = \"azure\"\nscoep = \"x\"\n";
        let config = Config::parse(text, Path::new("config.toml"), &ProviderCatalog::bundled()).unwrap();
        assert!(config.credentials.contains_key("good"));
        assert!(config.broken["bad"].message.contains("config.toml:6:1"), "{}", config.broken["bad"]);
        let syntax = Config::parse("[credentials.x\n", Path::new("config.toml"), &ProviderCatalog::bundled());
        assert!(syntax.is_err(), "a TOML syntax error still fails the whole file");
    }

    #[test]
    fn reads_the_documented_shape() {
        let config = parse("[credentials.work]\nprovider = \"azure\"\nscope = \"api://my-proxy/.default\"\ncache_ttl = \"10m\"\nfallback = [\"openai\"]\n").unwrap();
        let work = &config.credentials["work"];
        assert_eq!(work.provider, "azure");
        assert_eq!(work.options["scope"], "api://my-proxy/.default");
        assert_eq!(work.cache_ttl, Some(Duration::from_secs(600)));
        assert_eq!(work.fallback, ["openai"]);
    }

    #[test]
    fn toml_syntax_errors_have_line_and_column() {
        let err = parse("[credentials.work]\nprovider = \"azure\nscope = 1\n").unwrap_err();
        assert_eq!(err.class, ExitClass::Config);
        assert!(err.message.starts_with("config error at config.toml:2:"), "{}", err.message);
    }

    #[test]
    fn unknown_options_point_at_the_key_and_suggest() {
        let err = parse("[credentials.work]\nprovider = \"azure\"\nscoep = \"x\"\n").unwrap_err();
        assert!(err.message.contains("config.toml:3:1"), "{}", err.message);
        assert!(err.message.contains("did you mean `scope`?"), "{}", err.message);
        assert_eq!(
            err.hint.as_deref(),
            Some("azure takes: client_id, connection, method, resource, scope, subscription, tenant")
        );
    }

    #[test]
    fn unknown_provider_suggests() {
        let err = parse("[credentials.k]\nprovider = \"opnai\"\n").unwrap_err();
        assert!(err.message.contains("did you mean `openai`?"), "{}", err.message);
        assert!(err.message.contains("config.toml:2:12"), "{}", err.message);
    }

    #[test]
    fn required_options_and_bad_values_are_reported() {
        let err = parse("[credentials.vault]\nprovider = \"1password\"\n").unwrap_err();
        assert!(err.message.contains("needs `reference`"), "{}", err.message);
        let err = parse("[credentials.w]\nprovider = \"azure\"\ncache_ttl = \"soon\"\n").unwrap_err();
        assert!(
            err.message.contains("config.toml:3:13") && err.message.contains("not a duration"),
            "{}",
            err.message
        );
        let err = parse("[credentials.w]\nprovider = \"azure\"\nfallback = [\"nope\"]\n").unwrap_err();
        assert!(err.message.contains("falls back to 'nope'"), "{}", err.message);
        let err = parse("[credential.w]\nprovider = \"azure\"\n").unwrap_err();
        assert!(err.message.contains("credential"), "{}", err.message);
    }

    #[test]
    fn settings_choose_the_secret_store() {
        assert_eq!(
            parse("[settings]\nsecret_store = \"file\"\n").unwrap().settings.secret_store,
            StoreChoice::File
        );
        assert_eq!(parse("").unwrap().settings.secret_store, StoreChoice::Auto);
        let err = parse("[settings]\nsecret_store = \"vault\"\n").unwrap_err();
        assert!(err.message.contains("config.toml:2:16") && err.message.contains("auto"), "{}", err.message);
    }

    #[test]
    fn refresh_is_background_or_blocking_in_settings_or_a_credential() {
        let config = parse(
            "[settings]\nrefresh = \"blocking\"\n\n[credentials.w]\nprovider = \"azure\"\nrefresh = \"background\"\n",
        )
        .unwrap();
        assert_eq!(config.settings.refresh, Some(RefreshMode::Blocking));
        assert_eq!(config.credentials["w"].refresh, Some(RefreshMode::Background));
        assert!(!config.credentials["w"].options.contains_key("refresh"), "a reserved key, not an option");
        let err = parse("[credentials.w]\nprovider = \"azure\"\nrefresh = \"sometimes\"\n").unwrap_err();
        assert!(
            err.message.contains("config.toml:3:11") && err.message.contains("blocking"),
            "{}",
            err.message
        );
        let err = parse("[settings]\nrefresh = \"eager\"\n").unwrap_err();
        assert!(err.message.contains("config.toml:2:11"), "{}", err.message);
    }

    #[test]
    fn api_upstream_and_failover_are_reserved_keys() {
        let config = parse(
            "[credentials.c]\nprovider = \"openai\"\napi = \"anthropic\"\nupstream = \"https://api.anthropic.com/\"\nfailover_after = \"30s\"\n",
        )
        .unwrap();
        let c = &config.credentials["c"];
        assert_eq!(c.api, Some(ApiFamily::Anthropic));
        assert_eq!(c.upstream.as_deref(), Some("https://api.anthropic.com"));
        assert_eq!(c.failover_after, Some(Duration::from_secs(30)));
        assert!(c.options.is_empty(), "reserved keys are not provider options: {:?}", c.options);
        for (bad, says) in [
            ("api = \"gemini\"", "`api` must be"),
            ("upstream = \"ftp://x\"", "http or https"),
            ("upstream = \"not a url\"", "is not a URL"),
            ("upstream = \"https://user:pw@h/\"", "without credentials"),
        ] {
            let err = parse(&format!("[credentials.c]\nprovider = \"openai\"\n{bad}\n")).unwrap_err();
            assert!(
                err.message.contains(says) && err.message.contains("config.toml:3:"),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn git_and_docker_bindings_name_credentials() {
        let config = parse("[credentials.gh]\nprovider = \"openai\"\n\n[git.\"github.com\"]\ncredential = \"gh\"\n\n[docker.\"registry.example.com\"]\ncredential = \"azure\"\nusername = \"00000000-0000-0000-0000-000000000000\"\n").unwrap();
        assert_eq!(config.git["github.com"].credential, "gh");
        assert_eq!(
            config.docker["registry.example.com"].username.as_deref(),
            Some("00000000-0000-0000-0000-000000000000")
        );
        let err = parse("[git.\"github.com\"]\ncredential = \"gh\"\n").unwrap_err();
        assert!(err.message.contains("uses credential 'gh', which is neither"), "{}", err.message);
        let err = parse("[docker.\"r\"]\ncredential = \"azure\"\n").unwrap_err();
        assert!(err.message.contains("needs a `username`"), "{}", err.message);
    }

    #[test]
    fn missing_file_is_empty() {
        let config = Config::load(
            Path::new("/nonexistent/keyhelper/config.toml"),
            &ProviderCatalog::bundled(),
            &SourceFiles::default(),
        )
        .unwrap();
        assert!(config.credentials.is_empty());
    }
}
