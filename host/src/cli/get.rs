//! `keyhelper get <name>`: prints exactly the secret on stdout.

use clap::Args;

use super::Environment;
use crate::failure::{ExitClass, Failure};
use crate::output::{self, Format};
use crate::resolve::resolve;

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
    let fetched = env.fetcher(&config)?.fetch(&credential)?;
    output::print(&output::render(&fetched, args.format, !args.no_newline))
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot write to stdout: {e}")))
}
