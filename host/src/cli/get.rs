//! `keyhelper get <name>`: prints exactly the secret on stdout.

use std::sync::Arc;

use clap::Args;

use super::Environment;
use crate::failure::{ExitClass, Failure};
use crate::fetcher::CredentialFetcher;
use crate::interaction::CallerHints;
use crate::output::{self, Format};
use crate::resolve::resolve;
use crate::store::SecretStore;
use crate::store::file::FileBackend;

/// Arguments of `keyhelper get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// A configured credential, or a provider name for that provider's defaults.
    pub name: String,
    /// Print no newline after the secret.
    #[arg(short = 'n')]
    pub no_newline: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    pub format: Format,
}

/// Runs `get`.
pub fn run(env: &Environment, args: &GetArgs) -> Result<(), Failure> {
    let config = env.config()?;
    let credential = resolve(&args.name, &config, &env.catalog)?;
    let store = SecretStore::new(Box::new(FileBackend::new(env.dirs.data_dir.join("secrets"))));
    let fetcher = CredentialFetcher::new(
        env.dirs.clone(),
        Arc::new(store),
        CallerHints::from_process().is_interactive(),
    );
    let fetched = fetcher.fetch(&credential)?;
    output::print(&output::render(&fetched, args.format, !args.no_newline))
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot write to stdout: {e}")))
}
