//! `keyhelper login` and `logout`: store and remove a provider's long-lived
//! secrets. The secret is read from a masked prompt or stdin, never from argv.

use std::io::{IsTerminal, Read};

use clap::Args;
use keyhelper_core::capabilities::Capabilities;
use keyhelper_core::config::Config;
use keyhelper_core::credential::Secret;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::manifest::ProviderManifest;
use keyhelper_core::resolve::{DEFAULT_FAILOVER_AFTER, ResolvedCredential};
use keyhelper_core::suggest::did_you_mean;

use super::sign_in::SignIn;
use crate::environment::Environment;
use crate::runtime::outcome::Verdict;
use crate::runtime::sandbox::StoredSecrets;
use crate::runtime::sandbox::is_valid_connection_name;
use crate::store::{BackendKind, SecretId, SecretStore};

/// The connection used when none is named.
const DEFAULT_CONNECTION: &str = "default";

/// Arguments of `keyhelper login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The provider, e.g. `openai`.
    pub provider: String,
    /// Name of this secret, to keep several (e.g. `work`, `personal`).
    #[arg(long, default_value = DEFAULT_CONNECTION, value_parser = connection_name)]
    pub connection: String,
    /// Replace (rotate) a secret already stored for this connection.
    #[arg(long)]
    pub force: bool,
    /// Read the secret from stdin instead of prompting.
    #[arg(long)]
    pub stdin: bool,
    /// Also check the secret live with the service before storing it.
    #[arg(long)]
    pub verify: bool,
    /// oauth2: sign in with a code entered on another device (RFC 8628)
    /// instead of this machine's browser.
    #[arg(long, conflicts_with_all = ["stdin", "refresh_token"])]
    pub device: bool,
    /// oauth2: the secret given is a refresh token, not the client secret.
    #[arg(long)]
    pub refresh_token: bool,
}

/// Arguments of `keyhelper logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The provider, e.g. `openai`.
    pub provider: String,
    /// Which stored secret.
    #[arg(long, default_value = DEFAULT_CONNECTION, value_parser = connection_name)]
    pub connection: String,
}

/// A `--connection` value: no `/`, `#` or control characters.
fn connection_name(text: &str) -> Result<String, String> {
    if is_valid_connection_name(text) {
        Ok(text.to_string())
    } else {
        Err("a connection name has 1 to 128 characters and no `/`, `#` or control characters".into())
    }
}

/// The name a connection's OAuth refresh token is stored under.
const REFRESH_TOKEN: &str = "refresh_token";

/// Runs `login`.
pub fn login(env: &Environment, args: &LoginArgs) -> Result<(), Failure> {
    let config = env.config()?;
    let manifest = storing_provider(env, &args.provider)?;
    let store = env.store(&config)?;
    let granted = env.catalog.granted(&manifest.name).expect("the provider exists");
    let credential = credential_for_connection(&config, manifest, granted, &args.connection);
    if !manifest.login.applies_to(&credential.options) {
        return Err(own_tool(&manifest.name)
            .hint("configure the credential first: only some of its methods use a stored secret (see `keyhelper providers`)"));
    }
    let connection = SecretId::new(&manifest.name, &args.connection);
    let sign_in = manifest.login.oauth2_sign_in;
    if (args.device || args.refresh_token) && !sign_in {
        return Err(Failure::new(
            ExitClass::Usage,
            format!(
                "--device and --refresh-token are for OAuth sign-in; provider '{}' has none",
                manifest.name
            ),
        )
        .hint("drop the option"));
    }
    if sign_in && !args.stdin && !args.refresh_token {
        return sign_in_and_store(env, &store, &credential, &connection, args.device);
    }
    let id = if args.refresh_token { connection.named(REFRESH_TOKEN) } else { connection };
    if !args.force && store.get(&id)?.is_some() {
        return Err(Failure::new(
            ExitClass::Usage,
            format!("a secret is already stored for {} connection '{}'", manifest.name, args.connection),
        )
        .hint("add --force to replace (rotate) it, or choose another --connection"));
    }
    let fetcher = env.fetcher(&config)?;
    let mut secret = read_secret(manifest, &args.connection, args.stdin)?;
    // At a terminal, a paste that fails the format check is asked for again.
    let mut attempts = 1;
    while !args.stdin && attempts < MAX_PROMPTS {
        let format = fetcher.validate(&credential, &secret, false)?;
        if format.verdict != Verdict::Rejected {
            break;
        }
        eprintln!("keyhelper: {}; try again", format.message);
        secret = read_secret(manifest, &args.connection, false)?;
        attempts += 1;
    }
    let validation = fetcher.validate(&credential, &secret, args.verify).map_err(|failure| {
        if args.verify && failure.class == ExitClass::Unavailable {
            Failure::new(ExitClass::Unavailable, format!("not stored: the key could not be verified: {}", failure.message))
                .hint("check the network (or the credential's base_url), or log in without --verify: the format was checked")
        } else {
            failure
        }
    })?;
    match validation.verdict {
        Verdict::Rejected if args.verify => {
            return Err(Failure::new(ExitClass::Denied, format!("not stored: {}", validation.message)));
        }
        Verdict::Rejected => {
            return Err(Failure::new(ExitClass::Usage, format!("not stored: {}", validation.message)));
        }
        Verdict::Restricted => tracing::warn!("{}", validation.message),
        Verdict::Valid => tracing::info!("{}", validation.message),
    }
    let backend = stored_under_lock(&store, &id, &secret)?;
    forget_cached(env, &manifest.name);
    eprintln!(
        "keyhelper: stored the {} {} for connection '{}' in {}",
        manifest.name,
        if args.refresh_token { "refresh token" } else { "secret" },
        args.connection,
        store.describe(backend)
    );
    Ok(())
}

/// Signs a person in with OAuth 2.0 and stores the refresh token.
fn sign_in_and_store(
    env: &Environment,
    store: &SecretStore,
    credential: &ResolvedCredential<'_>,
    connection: &SecretId,
    device: bool,
) -> Result<(), Failure> {
    let client_secret = store.get(connection)?;
    let sign_in = SignIn {
        credential: &credential.name,
        options: &credential.options,
        client_secret: client_secret.as_ref(),
    };
    let refresh_token = sign_in.run(device)?;
    let backend = stored_under_lock(store, &connection.named(REFRESH_TOKEN), &refresh_token)?;
    forget_cached(env, &connection.provider);
    eprintln!(
        "keyhelper: signed in; stored the refresh token of {} connection '{}' in {}",
        connection.provider,
        connection.connection,
        store.describe(backend)
    );
    Ok(())
}

/// Stores `secret` under `id` holding its connection's lock, which renewals
/// that rotate the connection's secrets hold too: a renewal finishing at the
/// same moment cannot save its rotated token over this one.
fn stored_under_lock(store: &SecretStore, id: &SecretId, secret: &Secret) -> Result<BackendKind, Failure> {
    let _lock = store.lock_connection(&id.provider, &id.connection).map_err(|e| {
        Failure::new(ExitClass::Store, format!("cannot lock connection '{}': {e}", id.connection))
    })?;
    Ok(store.set(id, secret)?)
}

/// How many times an interactive `login` asks for a secret that fails the
/// format check.
const MAX_PROMPTS: u32 = 3;

/// Runs `logout`.
pub fn logout(env: &Environment, args: &LogoutArgs) -> Result<(), Failure> {
    let config = env.config()?;
    let manifest = storing_provider(env, &args.provider)?;
    let store = env.store(&config)?;
    if store.delete_connection(&SecretId::new(&manifest.name, &args.connection))? {
        forget_cached(env, &manifest.name);
        eprintln!("keyhelper: removed the {} secrets of connection '{}'", manifest.name, args.connection);
        Ok(())
    } else {
        Err(Failure::new(
            ExitClass::NotFound,
            format!("no secret is stored for {} connection '{}'", manifest.name, args.connection),
        )
        .hint("`keyhelper list` shows the stored secrets"))
    }
}

/// Drops cached copies of this provider's secrets, so the next `get` serves
/// the new (or no) secret.
fn forget_cached(env: &Environment, provider: &str) {
    if let Some(cache) = env.cache()
        && let Err(e) = cache.clear(|entry| entry.provider == provider)
    {
        tracing::warn!("could not clear cached {provider} secrets: {e}");
    }
}

/// The provider, which must keep its secrets in keyhelper's store.
fn storing_provider<'a>(env: &'a Environment, name: &str) -> Result<&'a ProviderManifest, Failure> {
    let manifest = env.catalog.get(name).ok_or_else(|| {
        Failure::new(
            ExitClass::NotFound,
            format!("no provider is called '{name}'{}", did_you_mean(name, env.catalog.names())),
        )
        .hint("`keyhelper providers` lists the providers")
    })?;
    if !manifest.capabilities.stored_secrets {
        return Err(own_tool(name)
            .hint("sign in with that tool instead (e.g. `az login`, `op signin`, `aws sso login`)"));
    }
    Ok(manifest)
}

/// The error for a provider that keeps no secret in keyhelper's store.
fn own_tool(name: &str) -> Failure {
    Failure::new(
        ExitClass::Usage,
        format!("provider '{name}' gets its secrets from its own tool; keyhelper stores nothing for it"),
    )
}

/// The options of the configured credential that uses this connection (its
/// `base_url`, say), or the provider's defaults.
fn credential_for_connection<'a>(
    config: &Config,
    manifest: &'a ProviderManifest,
    granted: Capabilities,
    connection: &str,
) -> ResolvedCredential<'a> {
    let configured = config.credentials.iter().find(|(_, c)| {
        c.provider == manifest.name
            && c.options.get("connection").map_or(DEFAULT_CONNECTION, String::as_str) == connection
    });
    let mut options = configured.map(|(_, c)| c.options.clone()).unwrap_or_default();
    options.insert("connection".into(), connection.into());
    ResolvedCredential {
        name: configured.map_or_else(|| manifest.name.clone(), |(name, _)| name.clone()),
        manifest,
        granted,
        options: manifest.options_with_defaults(&options),
        cache_ttl: None,
        refresh_before: None,
        refresh: None,
        fallback: Vec::new(),
        api: manifest.api,
        upstream: None,
        failover_after: DEFAULT_FAILOVER_AFTER,
    }
}

/// Reads the secret from stdin or a masked prompt on the terminal, trimmed of
/// surrounding whitespace (a pasted newline, say).
fn read_secret(manifest: &ProviderManifest, connection: &str, from_stdin: bool) -> Result<Secret, Failure> {
    let raw = if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::new(ExitClass::Usage, format!("cannot read the secret from stdin: {e}")))?;
        text
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(ExitClass::Usage, "no terminal to prompt for the secret on")
                .hint("pipe it in with --stdin (never pass a secret as an argument)"));
        }
        rpassword::prompt_password(format!(
            "{} secret for connection '{connection}' (input hidden): ",
            manifest.display_name
        ))
        .map_err(|e| {
            Failure::new(ExitClass::Usage, format!("cannot read the secret from the terminal: {e}"))
        })?
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Failure::new(ExitClass::Usage, "the secret is empty; nothing was stored"));
    }
    Ok(Secret::new(trimmed))
}
