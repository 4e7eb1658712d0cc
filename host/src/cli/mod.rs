//! The command line: argument definitions and dispatch. Each subcommand lives
//! in its own module; all of them report failures the same way (one line on
//! stderr, an exit code per class of failure).

mod cache;
mod completions;
mod docker;
mod doctor;
mod export;
mod get;
mod git_credential;
mod list;
mod log;
mod login;
mod plugin;
mod providers;
mod proxy;
mod renew;
mod run;
mod secret_env;
mod sign_in;
mod status;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::{invocation, plain_get};

use crate::environment::Environment;

/// One credential helper for AI coding tools and API clients.
///
/// keyhelper hands out API keys and tokens from Azure AD, 1Password, AWS
/// Secrets Manager or its own store, through sandboxed provider plugins, and
/// caches them until just before they expire.
#[derive(Debug, Parser)]
#[command(name = "keyhelper", version, about, long_about)]
pub struct Cli {
    /// Options of every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The options every subcommand takes.
#[derive(Debug, Default, clap::Args)]
pub struct GlobalArgs {
    /// More diagnostics on stderr (-v debug, -vv trace). Never affects stdout.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Config file to use instead of $XDG_CONFIG_HOME/keyhelper/config.toml
    /// (also $KEYHELPER_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// Parses a command line: a plain `keyhelper get …` without clap
/// ([`plain_get`]), the rest (and whatever it leaves) with [`Cli`].
fn parse(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    if let Some(get) = plain_get::parse(&args) {
        return Ok(Cli { global: GlobalArgs::default(), command: Command::Get(get.into()) });
    }
    Cli::try_parse_from(args)
}

/// `--json`, for the commands that can print one JSON document instead of text.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct JsonArg {
    /// Print one JSON document on stdout instead of text (shapes: README, "Machine-readable output").
    #[arg(long)]
    pub json: bool,
}

/// Prints `value` as one line of JSON.
fn print_json(value: &serde_json::Value) -> Result<(), Failure> {
    keyhelper_core::output::print(&format!("{value}\n"))
        .map_err(|e| Failure::new(ExitClass::Internal, e.to_string()))
}

/// keyhelper's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a credential's secret on stdout (usable as Claude Code's apiKeyHelper).
    Get(get::GetArgs),
    /// List the providers and what each may do.
    Providers(JsonArg),
    /// Store a provider's secret (e.g. an OpenAI API key), read from a masked prompt or stdin.
    Login(login::LoginArgs),
    /// Remove a stored secret.
    Logout(login::LogoutArgs),
    /// Check a credential's secret: its format, and live with the service where the provider can.
    Validate(validate::ValidateArgs),
    /// List configured credentials and stored secrets (never the secrets themselves).
    List(JsonArg),
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
    /// Show the audit log: every secret served, when, how and from where (never the secret).
    Log(log::LogArgs),
    /// Check that each credential can be served: its tool, its sign-in, its stored secret, its grants.
    Doctor(doctor::DoctorArgs),
    /// Show where keyhelper keeps things and which secret store is in use.
    Status(JsonArg),
    /// Print a script that gives your shell completions for keyhelper (with your credential names).
    Completions(completions::CompletionsArgs),
    /// Write man pages into a directory (`cargo xtask install` installs them).
    #[command(name = "man-pages", hide = true)]
    ManPages(completions::ManPagesArgs),
    /// Renew one cached credential (started, detached, by `get` when it is due).
    #[command(name = "renew-in-background", hide = true)]
    RenewInBackground(renew::RenewArgs),
}

/// Runs the complete keyhelper with the process's arguments (`argv[0]`
/// first); returns its exit code.
pub fn main(mut args: Vec<std::ffi::OsString>) -> u8 {
    keyhelper_core::platform::forbid_core_dumps();
    completions::answer_if_asked();
    if invocation::invoked_as_docker_helper(&args) {
        args.insert(1, "docker-credential".into());
    }
    let cli = match parse(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    crate::logging::init(cli.global.verbose);
    tracing::debug!("heap: {}", keyhelper_core::platform::heap_in_use());
    match run(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("keyhelper: error: {failure}");
            failure.class.code()
        }
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let env = Environment::new(cli.global.config)?;
    let done = |result: Result<(), Failure>| result.map(|()| 0);
    match cli.command {
        Command::Get(args) => done(get::run(&env, &args)),
        Command::Providers(args) => done(providers::run(&env, args.json)),
        Command::Login(args) => done(login::login(&env, &args)),
        Command::Logout(args) => done(login::logout(&env, &args)),
        Command::Validate(args) => done(validate::run(&env, &args)),
        Command::List(args) => done(list::run(&env, args.json)),
        Command::Cache(command) => done(cache::run(&env, &command)),
        Command::Plugin(command) => done(plugin::run(&env, &command)),
        Command::Status(args) => done(status::run(&env, args.json)),
        Command::Run(args) => run::run(&env, &args),
        Command::Proxy(args) => done(proxy::run(env, args)),
        Command::Export(args) => done(export::run(&env, &args)),
        Command::GitCredential(args) => done(git_credential::run(&env, &args)),
        Command::DockerCredential { action } => Ok(docker::run(&env, &action)),
        Command::RenewInBackground(args) => done(renew::run(&env, &args)),
        Command::Completions(args) => done(completions::run(&args)),
        Command::Doctor(args) => doctor::run(&env, &args),
        Command::Log(args) => done(log::run(&env, &args)),
        Command::ManPages(args) => done(completions::man_pages(&args)),
    }
}

/// `--help` and `--version` print normally; a usage error becomes one line.
fn usage_error(error: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitClass::Usage.code()
        } else {
            0
        };
    }
    // clap's whole message: what is missing or wrong, "did you mean", the
    // `--` tip, the allowed values and the usage line.
    let rendered = error.render().to_string();
    let message = rendered.trim_end().strip_prefix("error: ").unwrap_or(rendered.trim_end());
    eprintln!("keyhelper: error: {message}");
    ExitClass::Usage.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_renewer_command_is_the_one_background_renewals_start() {
        let cli = Cli::try_parse_from([
            "keyhelper",
            keyhelper_core::background::RENEW_COMMAND,
            "work",
            "--entry",
            "ab",
        ]);
        assert!(matches!(cli.map(|c| c.command), Ok(Command::RenewInBackground(_))));
    }

    /// What `parse` and the complete parser make of `args`, or of the error.
    fn both(args: &[&str]) -> (String, String) {
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let shown = |parsed: Result<Cli, clap::Error>| match parsed {
            Ok(cli) => format!("{cli:?}"),
            Err(e) => format!("{:?}: {}", e.kind(), e.render()),
        };
        (shown(parse(args.clone())), shown(Cli::try_parse_from(args)))
    }

    #[test]
    fn a_get_parses_as_the_complete_command_line_does() {
        for args in [
            &["keyhelper", "get", "work"][..],
            &["keyhelper", "get", "work", "-n", "--format", "json", "--min-ttl", "10m", "--no-cache"],
            &["keyhelper", "get", "--no-cache", "--min-ttl=90s", "work", "--format=env"],
            &["keyhelper", "get", "-n", "work", "--format", "k8s"],
        ] {
            let (fast, complete) = both(args);
            assert!(fast.starts_with("Cli {"), "{args:?} did not parse: {fast}");
            assert_eq!(fast, complete, "{args:?}");
            assert!(plain_get::parse(&args.iter().map(Into::into).collect::<Vec<_>>()).is_some(), "{args:?}");
        }
    }

    #[test]
    fn what_the_get_parser_refuses_gets_the_complete_parsers_error() {
        for args in [
            &["keyhelper", "get"][..],
            &["keyhelper", "get", "--help"],
            &["keyhelper", "get", "work", "--format", "yaml"],
            &["keyhelper", "get", "work", "--min-ttl", "soon"],
            &["keyhelper", "get", "work", "extra"],
            &["keyhelper", "get", "work", "-n", "-n"],
            &["keyhelper", "get", "work", "--no-cache", "--no-cache"],
            &["keyhelper", "get", "work", "--format", "raw", "--format", "json"],
            &["keyhelper", "get", "work", "--no-cache=yes"],
        ] {
            let (fast, complete) = both(args);
            assert!(!fast.starts_with("Cli {"), "{args:?} parsed: {fast}");
            assert_eq!(fast, complete, "{args:?}");
        }
    }
}
