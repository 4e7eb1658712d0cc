//! `keyhelper validate <name>`: checks a credential's secret with its provider.

use clap::Args;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::resolve::resolve;

use crate::environment::Environment;
use crate::fetcher::Fetcher;
use crate::runtime::outcome::Verdict;

/// Arguments of `keyhelper validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A configured credential, or a provider name.
    #[arg(add = super::completions::credential_names())]
    pub name: String,
    /// Check only the secret's format, without asking the service.
    #[arg(long)]
    pub offline: bool,
}

/// Runs `validate`: prints the verdict on stdout; a rejected secret exits 6.
pub fn run(env: &Environment, args: &ValidateArgs) -> Result<(), Failure> {
    let config = env.config()?;
    let credential = resolve(&args.name, &config, &env.catalog)?;
    let fetcher = env.fetcher(&config)?;
    let fetched = fetcher.fetch(&credential)?;
    let validation = fetcher.validate(&credential, &fetched.secret, !args.offline)?;
    match validation.verdict {
        Verdict::Valid => println!("valid: {}", validation.message),
        Verdict::Restricted => println!("restricted: {}", validation.message),
        Verdict::Rejected => {
            return Err(Failure::new(
                ExitClass::Denied,
                format!("credential '{}': {}", args.name, validation.message),
            ));
        }
    }
    Ok(())
}
