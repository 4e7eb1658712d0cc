//! `keyhelper get <name>`: prints exactly the secret on stdout.

use std::time::Duration;

use clap::Args;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::fast_get;
use keyhelper_core::output::{self, Format};
use keyhelper_core::plain_get::PlainGet;

use crate::broker::GetOptions;
use crate::environment::Environment;

/// Arguments of `keyhelper get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// A configured credential, or a provider name for that provider's defaults.
    #[arg(add = super::completions::credential_names())]
    pub name: String,
    /// Print no newline after the secret.
    #[arg(short = 'n')]
    pub no_newline: bool,
    /// Output format.
    #[arg(long, default_value = "raw", value_parser = format_parser())]
    pub format: Format,
    /// Return a secret valid at least this long (e.g. `10m`), renewing it if needed.
    #[arg(long, value_name = "DURATION", value_parser = keyhelper_core::duration::parse)]
    pub min_ttl: Option<Duration>,
    /// Ask the provider even if a fresh secret is cached (and do not cache it).
    #[arg(long)]
    pub no_cache: bool,
}

impl From<PlainGet> for GetArgs {
    fn from(get: PlainGet) -> Self {
        Self {
            name: get.name,
            no_newline: !get.newline,
            format: get.format,
            min_ttl: get.min_ttl,
            no_cache: get.no_cache,
        }
    }
}

/// `--format`: the names and help of [`Format::ALL`].
fn format_parser() -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(Format::ALL.map(|f| PossibleValue::new(f.name()).help(f.help())))
        .map(|name| Format::parse(&name).expect("clap admits only the listed names"))
}

/// Runs `get`.
pub fn run(env: &Environment, args: &GetArgs) -> Result<(), Failure> {
    crate::runtime::leave_plugin_memory_to_exit();
    let config = env.config()?;
    let options = GetOptions { min_ttl: args.min_ttl.unwrap_or_default(), no_cache: args.no_cache };
    let broker = env.broker(&config)?;
    let served = match broker.get(&args.name, options) {
        Ok(served) => served,
        Err(failure) => {
            env.audit_failed(&config, &args.name, "get", &failure);
            return Err(failure);
        }
    };
    let conventions = &served.source.manifest.conventions;
    let text = output::render(&served.credential, args.format, conventions, !args.no_newline)?;
    output::print(&text)
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot write to stdout: {e}")))?;
    env.audit_served(&config, &args.name, "get", &served);
    if served.source.name == args.name
        && !args.no_cache
        && let Some(cache) = broker.cache()
    {
        let entry = served.source.cache_entry(cache);
        let remembered = fast_get::Remembered {
            entry_id: entry.id(),
            refresh_before: served.source.refresh_before(&config.settings),
            refresh: served.source.refresh_mode(&config.settings),
            audit: config.settings.audits(),
            sources: env.sources.lines(),
            env: &served.source.answer_env(),
        };
        fast_get::remember(&env.dirs, &args.name, &remembered);
    }
    Ok(())
}
