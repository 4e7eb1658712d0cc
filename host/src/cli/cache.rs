//! `keyhelper cache clear [NAME]`.

use clap::Subcommand;
use keyhelper_core::failure::{ExitClass, Failure};

use crate::environment::Environment;

/// Subcommands of `keyhelper cache`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Forget cached secrets: all of them, or those of one credential.
    Clear {
        /// The credential whose cached secret to forget.
        #[arg(add = super::completions::credential_names())]
        name: Option<String>,
    },
}

/// Runs `cache …`.
pub fn run(env: &Environment, command: &CacheCommand) -> Result<(), Failure> {
    let CacheCommand::Clear { name } = command;
    if let Some(name) = name {
        let config = env.config()?;
        if !config.credentials.contains_key(name) && env.catalog.get(name).is_none() {
            return Err(Failure::new(ExitClass::NotFound, format!("there is no credential called '{name}'"))
                .hint("`keyhelper list` shows your credentials; `keyhelper cache clear` clears them all"));
        }
    }
    let Some(cache) = env.cache() else {
        return Err(Failure::new(ExitClass::Store, "the credential cache cannot be opened"));
    };
    let removed = cache
        .clear(|entry| name.as_deref().is_none_or(|n| entry.name == n))
        .map_err(|e| Failure::new(ExitClass::Store, e.to_string()))?;
    eprintln!("keyhelper: removed {removed} cached secret{}", if removed == 1 { "" } else { "s" });
    Ok(())
}
