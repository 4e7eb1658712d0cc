//! The command line: argument definitions and dispatch. Each subcommand lives
//! in its own module; all of them report failures the same way (one line on
//! stderr, an exit code per class of failure).

mod cache;
mod docker;
mod export;
mod get;
mod git_credential;
mod list;
mod login;
mod plugin;
mod providers;
mod proxy;
mod run;
mod secret_env;
mod status;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::broker::CredentialBroker;
use crate::cache::CredentialCache;
use crate::config::Config;
use crate::failure::{ExitClass, Failure};
use crate::fetcher::CredentialFetcher;
use crate::installed::InstalledPlugins;
use crate::interaction::CallerHints;
use crate::manifest::ProviderCatalog;
use crate::paths::Dirs;
use crate::store::{SecretStore, StoreChoice};

/// One credential helper for AI coding tools and API clients.
///
/// keyhelper hands out API keys and tokens from Azure AD, 1Password, AWS
/// Secrets Manager or its own store, through sandboxed provider plugins, and
/// caches them until just before they expire.
#[derive(Debug, Parser)]
#[command(name = "keyhelper", version, about, long_about)]
pub struct Cli {
    /// More diagnostics on stderr (-v debug, -vv trace). Never affects stdout.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Config file to use instead of $XDG_CONFIG_HOME/keyhelper/config.toml
    /// (also $KEYHELPER_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// keyhelper's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a credential's secret on stdout (usable as Claude Code's apiKeyHelper).
    Get(get::GetArgs),
    /// List the providers and what each may do.
    Providers,
    /// Store a provider's secret (e.g. an OpenAI API key), read from a masked prompt or stdin.
    Login(login::LoginArgs),
    /// Remove a stored secret.
    Logout(login::LogoutArgs),
    /// Check a credential's secret: its format, and live with the service where the provider can.
    Validate(validate::ValidateArgs),
    /// List configured credentials and stored secrets (never the secrets themselves).
    List,
    /// Run a program with secrets in its environment.
    Run(run::RunArgs),
    /// Serve a local proxy that puts a fresh credential on every request (Aider, opencode, SDKs).
    Proxy(proxy::ProxyArgs),
    /// Print secrets as shell exports, a .env file or JSON.
    Export(export::ExportArgs),
    /// git's credential helper (`credential.helper = !keyhelper git-credential`).
    GitCredential(git_credential::GitCredentialArgs),
    /// Docker's credential helper; `docker-credential-keyhelper` (a symlink) runs this.
    DockerCredential {
        /// get, list, store, erase or version.
        action: String,
    },
    /// Install, list, inspect and remove provider plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Manage the credential cache.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Show where keyhelper keeps things and which secret store is in use.
    Status,
}

/// Everything a command needs to start: directories, providers, configuration.
pub struct Environment {
    /// keyhelper's directories.
    pub dirs: Dirs,
    /// Known providers.
    pub catalog: ProviderCatalog,
}

impl Environment {
    fn new(config_override: Option<PathBuf>) -> Result<Self, Failure> {
        let dirs = Dirs::locate(config_override)?;
        let catalog = ProviderCatalog::load(&InstalledPlugins::new(dirs.plugins_dir()), &dirs.providers_dir)?;
        Ok(Self { dirs, catalog })
    }

    /// Reads and checks the config file.
    pub fn config(&self) -> Result<Config, Failure> {
        Config::load(&self.dirs.config_file, &self.catalog)
    }

    /// The secret store, its backend chosen by `KEYHELPER_SECRET_STORE` or,
    /// failing that, `[settings] secret_store`.
    pub fn store(&self, config: &Config) -> Result<SecretStore, Failure> {
        let choice = match std::env::var("KEYHELPER_SECRET_STORE") {
            Ok(value) => StoreChoice::parse(&value).ok_or_else(|| {
                Failure::new(ExitClass::Config, format!("KEYHELPER_SECRET_STORE is `{value}`"))
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

/// Whether `args` (a whole argv) come from Docker, which runs credential
/// helpers as `docker-credential-<name> <action>` (a symlink to keyhelper).
pub fn invoked_as_docker_helper(args: &[std::ffi::OsString]) -> bool {
    args.first()
        .and_then(|arg0| std::path::Path::new(arg0).file_name())
        .is_some_and(|name| name == "docker-credential-keyhelper")
}

/// Runs the complete keyhelper with the process's arguments; returns its exit
/// code.
pub fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if invoked_as_docker_helper(&args) {
        args.insert(1, "docker-credential".into());
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    crate::logging::init(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("keyhelper: error: {failure}");
            ExitCode::from(failure.class.code())
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let env = Environment::new(cli.config)?;
    let done = |result: Result<(), Failure>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Get(args) => done(get::run(&env, &args)),
        Command::Providers => done(providers::run(&env)),
        Command::Login(args) => done(login::login(&env, &args)),
        Command::Logout(args) => done(login::logout(&env, &args)),
        Command::Validate(args) => done(validate::run(&env, &args)),
        Command::List => done(list::run(&env)),
        Command::Cache(command) => done(cache::run(&env, &command)),
        Command::Plugin(command) => done(plugin::run(&env, &command)),
        Command::Status => done(status::run(&env)),
        Command::Run(args) => run::run(&env, &args),
        Command::Proxy(args) => done(proxy::run(env, args)),
        Command::Export(args) => done(export::run(&env, &args)),
        Command::GitCredential(args) => done(git_credential::run(&env, &args)),
        Command::DockerCredential { action } => Ok(docker::run(&env, &action)),
    }
}

/// `--help` and `--version` print normally; a usage error becomes one line.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(ExitClass::Usage.code())
        } else {
            ExitCode::SUCCESS
        };
    }
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let message = first.strip_prefix("error: ").unwrap_or(first);
    let failure = Failure::new(ExitClass::Usage, message).hint("see `keyhelper --help`");
    eprintln!("keyhelper: error: {failure}");
    ExitCode::from(ExitClass::Usage.code())
}
