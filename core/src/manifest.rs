//! Provider manifests: what a provider is called, which plugin implements it,
//! what it may do (capabilities), which options it takes, and how its secret is
//! presented (env var, header). The bundled ones come from `providers/`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::capabilities::Capabilities;
use crate::output::Conventions;
use crate::toml_diagnostics;

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
    /// Whether the plugin's `refresh` renews a credential better than a new
    /// `fetch` (it must agree with the plugin's own `describe()`).
    #[serde(default)]
    pub supports_refresh: bool,
    /// The HTTP API family its secrets are for, unless a credential says
    /// otherwise (`api = "…"`).
    #[serde(default)]
    pub api: ApiFamily,
    /// The option holding the API's base URL, which is then where the proxy
    /// forwards unless a credential sets `upstream` (e.g. `base_url`).
    pub upstream_option: Option<String>,
    /// What `keyhelper doctor` may check, and the fixes it names.
    #[serde(default)]
    pub doctor: DoctorManifest,
    /// Options that tighten the limits on the programs the plugin runs.
    #[serde(default)]
    pub process_limits: ProcessLimitsManifest,
    /// Which credentials use a secret stored with `keyhelper login`.
    #[serde(default)]
    pub login: LoginManifest,
}

/// Which of a provider's credentials use a stored secret, for a provider
/// that has other ways to its secret too (azure's `az`, oauth2's client
/// assertion file). `list`, `doctor` and `login` follow it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginManifest {
    /// Options that must have these values (defaults filled in), e.g.
    /// `{ method = "client-secret" }`.
    #[serde(default)]
    pub when: BTreeMap<String, String>,
    /// Options that, when set, mean no stored secret is needed, e.g.
    /// `["client_assertion_file"]`.
    #[serde(default)]
    pub unless_set: Vec<String>,
    /// Whether `keyhelper login` without `--stdin` signs a person in with
    /// OAuth 2.0 (a browser, or `--device`) and stores the refresh token,
    /// using the credential's `issuer`, `client_id` and `scope`.
    #[serde(default)]
    pub oauth2_sign_in: bool,
}

impl LoginManifest {
    /// Whether a credential with `options` (defaults filled in) is one that
    /// `keyhelper login` stores a secret for, by `when`.
    pub fn applies_to(&self, options: &BTreeMap<String, String>) -> bool {
        self.when.iter().all(|(option, value)| options.get(option) == Some(value))
    }
}

/// Options whose values bound a provider's commands (the `command`
/// provider's `timeout` and `max_output`). They can only tighten the host's
/// own limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessLimitsManifest {
    /// An option holding a duration (`"30s"`): the longest a command may run.
    pub timeout_option: Option<String>,
    /// An option holding a number of bytes: the most a command may print.
    pub max_output_option: Option<String>,
}

/// What `keyhelper doctor` checks for a provider that runs a tool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoctorManifest {
    /// A harmless command that succeeds only when the tool is signed in
    /// (e.g. `["az", "account", "show"]`); run only with `doctor --online`,
    /// and only if its program is one the provider is granted to run.
    #[serde(default)]
    pub probe: Vec<String>,
    /// The fix when the probe fails (e.g. "run `az login`").
    pub probe_fix: Option<String>,
    /// The fix when the provider's tool is not installed.
    pub install_fix: Option<String>,
    /// Options that must have these values (defaults filled in) for the tool
    /// and probe checks to apply, e.g. `{ method = "az" }`: a provider with
    /// another way to its secret does not need its tool then.
    #[serde(default)]
    pub when: BTreeMap<String, String>,
}

impl DoctorManifest {
    /// Whether the tool and probe checks apply to a credential with `options`.
    pub fn applies_to(&self, options: &BTreeMap<String, String>) -> bool {
        self.when.iter().all(|(option, value)| options.get(option) == Some(value))
    }
}

/// The HTTP APIs keyhelper's proxy speaks for a client: how the client is
/// pointed at it, and how the upstream says a quota is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize)]
pub enum ApiFamily {
    /// OpenAI's API and those compatible with it: Azure OpenAI, gateways,
    /// LiteLLM, local servers.
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic's Messages API.
    #[serde(rename = "anthropic")]
    Anthropic,
}

impl ApiFamily {
    /// `openai` or `anthropic`, as written in config.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// Parses `openai` or `anthropic`.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::OpenAi, Self::Anthropic].into_iter().find(|family| family.name() == text)
    }
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
    /// Whether it is a list of strings (`command = ["my-cli", "token"]`); the
    /// plugin receives it as a JSON array.
    #[serde(default)]
    pub list: bool,
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
        toml::from_str(text).map_err(|e| toml_diagnostics::describe_parse_error(text, &e))
    }

    /// Whether a credential with `options` (defaults filled in) gets its
    /// secret from keyhelper's store (`keyhelper login`).
    pub fn uses_stored_secret(&self, options: &BTreeMap<String, String>) -> bool {
        self.capabilities.stored_secrets
            && self.login.applies_to(options)
            && !self.login.unless_set.iter().any(|option| options.get(option).is_some_and(|v| !v.is_empty()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_section_says_which_credentials_use_a_stored_secret() {
        let manifest = ProviderManifest::parse(
            "name='x'\ndisplay_name='X'\ndescription='d'\nplugin='x'\n[capabilities]\nstored_secrets=true\n\
             [login]\nwhen={ method='secret' }\nunless_set=['assertion_file']\n",
        )
        .unwrap();
        let options = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(manifest.uses_stored_secret(&options(&[("method", "secret")])));
        assert!(!manifest.uses_stored_secret(&options(&[("method", "cli")])));
        assert!(!manifest.uses_stored_secret(&options(&[("method", "secret"), ("assertion_file", "/t")])));
    }

    #[test]
    fn unknown_manifest_keys_are_refused() {
        let err = ProviderManifest::parse("name='x'\ndisplay_name='X'\ndescription='d'\nplugin='x'\nfoo=1\n")
            .unwrap_err();
        assert!(err.contains("foo"), "{err}");
        assert!(err.starts_with("line 5, column 1"), "{err}");
    }
}
