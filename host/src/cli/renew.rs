//! `keyhelper-full renew-in-background NAME --entry ID` (hidden): the
//! detached renewer a `get` starts when a cached secret is inside its refresh
//! window. It holds the entry's renewal claim (inherited from the `get`, or
//! taken here when run by hand) until it exits, renews through the broker
//! under the entry's lock, and leaves a failure record for `status` to show.
//! Its stdio are closed: nothing it prints is seen.

use clap::Args;
use keyhelper_core::background;
use keyhelper_core::failure::{ExitClass, Failure};

use crate::environment::Environment;

/// Arguments of `keyhelper-full renew-in-background`.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// The credential to renew.
    pub name: String,
    /// The cache entry it was served from; nothing is renewed if the
    /// configuration now maps the name elsewhere.
    #[arg(long, value_name = "ID")]
    pub entry: String,
}

/// Runs the renewal.
pub fn run(env: &Environment, args: &RenewArgs) -> Result<(), Failure> {
    let cache =
        env.cache().ok_or_else(|| Failure::new(ExitClass::Store, "the credential cache cannot be opened"))?;
    let _claim = match background::inherited_claim() {
        Some(claim) => claim,
        None => match cache.entry_by_id(&args.entry).try_claim_renewal() {
            Ok(Some(claim)) => claim,
            Ok(None) => {
                tracing::info!("'{}' is being renewed by another keyhelper already", args.name);
                return Ok(());
            }
            Err(e) => return Err(Failure::new(ExitClass::Store, format!("cannot claim the renewal: {e}"))),
        },
    };
    let config = env.config()?;
    env.broker(&config)?.renew(&args.name, &args.entry)
}
