//! `keyhelper completions bash|zsh|fish|powershell|elvish`: a script that
//! registers keyhelper with the shell. The shell then asks keyhelper itself
//! what to complete (clap_complete's dynamic engine, through `COMPLETE=<shell>
//! keyhelper -- <words>`), so subcommands and flags come from the same
//! definitions as the parser, and credential names from your config as it
//! is now. Also the hidden `man-pages DIR`, which writes the man pages.

use std::ffi::OsStr;
use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::env::Shells;
use clap_complete::{ArgValueCompleter, CompletionCandidate};
use keyhelper_core::failure::{ExitClass, Failure};

use super::Cli;
use crate::environment::Environment;

/// The variable that asks keyhelper for completions instead of running.
const COMPLETE_VAR: &str = "COMPLETE";

/// Arguments of `keyhelper completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_parser = ["bash", "zsh", "fish", "powershell", "elvish"])]
    pub shell: String,
}

/// Arguments of the hidden `keyhelper man-pages`.
#[derive(Debug, Args)]
pub struct ManPagesArgs {
    /// Directory to write `keyhelper.1` and one page per subcommand into.
    pub dir: PathBuf,
}

/// Answers the shell's completion request and exits, when this process was
/// started for one; returns at once otherwise.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command).var(COMPLETE_VAR).complete();
}

/// Prints the registration script for `args.shell`.
pub fn run(args: &CompletionsArgs) -> Result<(), Failure> {
    let shells = Shells::builtins();
    let shell = shells.completer(&args.shell).expect("the parser admits only known shells");
    let mut script = Vec::new();
    shell
        .write_registration(COMPLETE_VAR, "keyhelper", "keyhelper", "keyhelper", &mut script)
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot write the script: {e}")))?;
    keyhelper_core::output::print(&String::from_utf8_lossy(&script))
        .map_err(|e| Failure::new(ExitClass::Internal, e.to_string()))
}

/// Writes the man pages into `args.dir`.
pub fn man_pages(args: &ManPagesArgs) -> Result<(), Failure> {
    let failed = |e: std::io::Error| {
        Failure::new(ExitClass::Internal, format!("cannot write man pages into {}: {e}", args.dir.display()))
    };
    std::fs::create_dir_all(&args.dir).map_err(failed)?;
    clap_mangen::generate_to(Cli::command(), &args.dir).map_err(failed)
}

/// Completes a credential name: the configured credentials, then the
/// providers usable by name, those starting with what was typed.
pub fn credential_names() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let typed = current.to_string_lossy();
        let Ok(env) = Environment::new(None) else { return Vec::new() };
        let mut names: Vec<String> =
            env.config().map(|config| config.credentials.keys().cloned().collect()).unwrap_or_default();
        for provider in env.catalog.names() {
            if !names.iter().any(|n| n == provider) {
                names.push(provider.to_string());
            }
        }
        names
            .into_iter()
            .filter(|name| name.starts_with(typed.as_ref()))
            .map(CompletionCandidate::new)
            .collect()
    })
}
