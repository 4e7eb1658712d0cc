//! `keyhelper get <name>`: prints exactly the secret on stdout.

use std::time::Duration;

use clap::Args;

use super::Environment;
use crate::broker::GetOptions;
use crate::failure::{ExitClass, Failure};
use crate::fast_get;
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
    /// Return a secret valid at least this long (e.g. `10m`), renewing it if needed.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
    pub min_ttl: Option<Duration>,
    /// Ask the provider even if a fresh secret is cached (and do not cache it).
    #[arg(long)]
    pub no_cache: bool,
}

/// Runs `get`.
pub fn run(env: &Environment, args: &GetArgs) -> Result<(), Failure> {
    let config = env.config()?;
    let options = GetOptions { min_ttl: args.min_ttl.unwrap_or_default(), no_cache: args.no_cache };
    let served = env.broker(&config)?.get(&args.name, options)?;
    let credential = resolve(&served.served_by, &config, &env.catalog)?;
    let text =
        output::render(&served.credential, args.format, &credential.manifest.conventions, !args.no_newline)?;
    output::print(&text)
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot write to stdout: {e}")))?;
    if served.served_by == args.name
        && !args.no_cache
        && let Some(cache) = env.cache()
    {
        let refresh_before = credential.refresh_before(&config.settings);
        fast_get::remember(&env.dirs, &args.name, cache.entry(&credential).id(), refresh_before);
    }
    Ok(())
}
