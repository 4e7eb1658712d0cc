//! `keyhelper validate <name>`: checks a credential's secret with its provider.

use clap::Args;
use keyhelper_core::credential::Secret;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::resolve::{ResolvedCredential, resolve};

use crate::environment::Environment;
use crate::fetcher::Fetcher;
use crate::runtime::outcome::Verdict;

/// Arguments of `keyhelper validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A configured credential, or a provider name.
    #[arg(add = super::completions::credential_names())]
    pub name: String,
    /// Check only the secret's format, without asking the service or running the provider's
    /// tool (a credential from a tool is checked as cached).
    #[arg(long)]
    pub offline: bool,
}

/// The cached secret of a credential whose provider runs a tool, which
/// `--offline` must not run.
fn cached_secret(env: &Environment, credential: &ResolvedCredential<'_>) -> Result<Secret, Failure> {
    let tool = &credential.granted.exec[0].command;
    let cached = env.cache().and_then(|cache| credential.cache_entry(&cache).read().ok().flatten());
    cached.map(|cached| cached.credential.secret).ok_or_else(|| {
        Failure::new(
            ExitClass::NotFound,
            format!(
                "cannot validate '{}' offline: it is not cached, and getting it means running `{tool}`",
                credential.name
            ),
        )
        .hint(format!("run `keyhelper get {}` first, or validate without --offline", credential.name))
    })
}

/// Runs `validate`: prints the verdict on stdout; a rejected secret exits 6.
pub fn run(env: &Environment, args: &ValidateArgs) -> Result<(), Failure> {
    let config = env.config()?;
    let mut credential = resolve(&args.name, &config, &env.catalog)?;
    let fetcher = env.fetcher(&config)?;
    let secret = if args.offline && !credential.granted.exec.is_empty() {
        cached_secret(env, &credential)?
    } else {
        fetcher.fetch(&credential)?.secret
    };
    if args.offline {
        // Offline means offline: the plugin may run nothing and request nothing.
        credential.granted.exec.clear();
        credential.granted.http.clear();
    }
    let validation = fetcher.validate(&credential, &secret, !args.offline)?;
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
