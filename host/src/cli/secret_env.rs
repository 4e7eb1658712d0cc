//! `VAR=credential` bindings shared by `run` and `export`: which environment
//! variable gets which credential's secret.

use keyhelper_core::config::Config;
use keyhelper_core::credential::Secret;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::resolve::resolve;

use crate::broker::GetOptions;
use crate::environment::Environment;

/// Parses `VAR=credential`, or `credential` alone (the variable then comes
/// from the provider's manifest, e.g. `OPENAI_API_KEY`), and fetches each
/// secret, recording each in the audit log as asked for by `mode`. Two
/// bindings of one variable are an error.
pub fn fetch(
    env: &Environment,
    config: &Config,
    specs: &[String],
    mode: &str,
) -> Result<Vec<(String, Secret)>, Failure> {
    let broker = env.broker(config)?;
    let mut bound: Vec<(String, Secret)> = Vec::new();
    for spec in specs {
        let (var, name) = match spec.split_once('=') {
            Some((var, name)) => (Some(var.to_string()), name),
            None => (None, spec.as_str()),
        };
        let var = match var {
            Some(var) => var,
            None => resolve(name, config, &env.catalog)?.manifest.conventions.env_var.clone().ok_or_else(
                || {
                    Failure::new(
                        ExitClass::Usage,
                        format!("provider of '{name}' names no environment variable"),
                    )
                    .hint(format!("name one: --env MY_VAR={name}"))
                },
            )?,
        };
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Failure::new(
                ExitClass::Usage,
                format!("`{var}` is not an environment variable name"),
            ));
        }
        if bound.iter().any(|(v, _)| *v == var) {
            return Err(Failure::new(ExitClass::Usage, format!("{var} is bound twice"))
                .hint(format!("name the variables: --env {var}=one --env OTHER_{var}=two")));
        }
        let served = broker.get(name, GetOptions::default())?;
        env.audit_served(config, name, mode, &served);
        bound.push((var, served.credential.secret));
    }
    if bound.is_empty() {
        return Err(Failure::new(ExitClass::Usage, "no credentials named").hint("add --env VAR=credential"));
    }
    Ok(bound)
}
