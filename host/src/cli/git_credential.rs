//! `keyhelper git-credential <get|store|erase>`: git's credential-helper
//! protocol. git writes `key=value` lines (ending at a blank line or EOF);
//! for `get` keyhelper answers `username`, `password` and
//! `password_expiry_utc` when `[git."<host>"]` names a credential. `store` is
//! ignored (keyhelper is the source, not a store), `erase` (git got a 401)
//! drops the cached secret so the next `get` fetches a fresh one, and unknown
//! actions are ignored, as the protocol asks.

use std::io::BufRead;

use clap::Args;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::output;

use crate::broker::GetOptions;
use crate::environment::Environment;

/// The username sent when `[git."host"]` names none (GitHub's convention for
/// tokens; most servers accept any username with a token).
const DEFAULT_USERNAME: &str = "x-access-token";

/// Arguments of `keyhelper git-credential`.
#[derive(Debug, Args)]
pub struct GitCredentialArgs {
    /// What git asks: get, store or erase.
    pub action: String,
}

/// Runs `git-credential`.
pub fn run(env: &Environment, args: &GitCredentialArgs) -> Result<(), Failure> {
    let attributes = read_attributes(std::io::stdin().lock());
    let attribute = |key: &str| attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let config = env.config()?;
    let Some(binding) = attribute("host").and_then(|host| config.git.get(host)) else {
        return Ok(());
    };
    match args.action.as_str() {
        "get" => {
            let served = env.broker(&config)?.get(&binding.credential, GetOptions::default())?;
            env.audit_served(&config, &binding.credential, "git", &served);
            let username = binding.username.as_deref().or(attribute("username")).unwrap_or(DEFAULT_USERNAME);
            let secret = served.credential.secret.expose();
            output::refuse_line_breaks(secret, "git's credential protocol")?;
            let mut reply = zeroize::Zeroizing::new(format!("username={username}\npassword={secret}\n"));
            if let Some(expires_at) = served.credential.expires_at {
                reply.push_str(&format!("password_expiry_utc={expires_at}\n"));
            }
            output::print(&reply).map_err(|e| Failure::new(ExitClass::Internal, e.to_string()))
        }
        "erase" => {
            if let Some(cache) = env.cache() {
                let _ = cache.clear(|entry| entry.name == binding.credential);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `key=value` lines up to a blank line or EOF.
fn read_attributes(input: impl BufRead) -> Vec<(String, String)> {
    input
        .lines()
        .map_while(Result::ok)
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_until_the_blank_line() {
        let input = b"protocol=https\nhost=github.com\npath=a=b\n\nignored=1\n";
        let attributes = read_attributes(&input[..]);
        assert_eq!(
            attributes,
            [
                ("protocol".into(), "https".into()),
                ("host".into(), "github.com".into()),
                ("path".into(), "a=b".into())
            ]
        );
    }
}
