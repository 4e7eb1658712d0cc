//! `keyhelper status`: where keyhelper keeps things and which secret store is
//! in use. Never shows a secret.

use super::Environment;
use crate::failure::Failure;

/// Runs `status`.
pub fn run(env: &Environment) -> Result<(), Failure> {
    let config = env.config()?;
    let store = env.store(&config)?;
    let (backend, why) = store.preferred();
    let stored = store.list()?;
    let mut out = String::new();
    out.push_str(&format!(
        "config:          {} ({} credentials)\n",
        config.path.display(),
        config.credentials.len()
    ));
    out.push_str(&format!("secret store:    {backend}: {} ({why})\n", store.describe(backend)));
    out.push_str(&format!("stored secrets:  {}\n", stored.len()));
    out.push_str(&format!("plugin cache:    {}\n", env.dirs.artifact_dir().display()));
    print!("{out}");
    Ok(())
}
