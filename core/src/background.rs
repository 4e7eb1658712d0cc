//! Renewing a cached secret off the caller's path. A caller that finds its
//! secret inside the refresh window but comfortably valid serves it at once
//! and starts a renewer: `keyhelper-full renew-in-background NAME --entry ID`
//! in a detached process of its own, which holds the entry's renewal claim
//! for as long as it runs. Many callers start one renewer (the claim is taken
//! without waiting), and none starts while past failures say to wait.

use std::ffi::OsStr;
use std::path::Path;

use crate::cache::{CacheEntry, RenewalClaim};
use crate::platform;

/// The hidden `keyhelper-full` command a renewer runs.
pub const RENEW_COMMAND: &str = "renew-in-background";

/// The variable that tells a renewer where its inherited claim is.
const CLAIM_VAR: &str = "KEYHELPER_RENEWAL_CLAIM_FD";

/// Starts renewing the credential `name`, cached in `entry`, with
/// `full_executable`, unless a renewal already runs or the last failure's
/// backoff lasts past `now`. Returns whether a renewer was started.
pub fn start(full_executable: &Path, name: &str, entry: &CacheEntry<'_>, now: i64) -> bool {
    if entry.renewal_failures().is_some_and(|failures| failures.backing_off(now)) {
        return false;
    }
    let claim = match entry.try_claim_renewal() {
        Ok(Some(claim)) => claim,
        Ok(None) => return false,
        Err(e) => {
            tracing::debug!("cannot claim the renewal of '{name}': {e}");
            return false;
        }
    };
    let args: [&OsStr; 4] = [RENEW_COMMAND.as_ref(), name.as_ref(), "--entry".as_ref(), entry.id().as_ref()];
    match platform::spawn_renewer(full_executable, &args, claim.into_file(), CLAIM_VAR) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                "could not start renewing '{name}' in the background ({e}); it will be renewed when it must"
            );
            false
        }
    }
}

/// The claim this process inherited as a renewer, held until it is dropped.
pub fn inherited_claim() -> Option<RenewalClaim> {
    platform::claim_from_environment(CLAIM_VAR).map(RenewalClaim::inherited)
}
