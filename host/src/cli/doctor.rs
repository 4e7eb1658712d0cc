//! `keyhelper doctor [NAME…] [--online] [--json]`: checks, for every
//! configured credential (or the named ones), what a `get` needs — the
//! credential resolves and its provider is granted, the provider's tool is
//! installed, a secret is stored for it, it is cached — and with `--online`
//! runs the harmless sign-in probe its manifest declares (`az account show`).
//! One line per check: ✓, or ✗ with the exact fix. Never prints a secret.

use std::ffi::OsString;
use std::time::Duration;

use clap::Args;
use keyhelper_core::clock::unix_now;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::platform::{self, process};
use keyhelper_core::resolve::{ResolvedCredential, resolve};
use serde_json::json;

use super::status::describe_expiry;
use crate::environment::Environment;
use crate::store::SecretStore;

/// How long a sign-in probe may take, and how much it may print.
const PROBE_LIMITS: process::ProcessLimits =
    process::ProcessLimits { timeout: Duration::from_secs(30), max_output: 64 * 1024 };

/// Arguments of `keyhelper doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The credentials to check (default: all configured ones).
    #[arg(add = super::completions::credential_names())]
    pub names: Vec<String>,
    /// Also run each provider's sign-in probe (`az account show`, `op whoami`, …), which may go
    /// over the network.
    #[arg(long)]
    pub online: bool,
    /// Print a JSON array of the checks instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// One check's verdict.
struct Check {
    credential: String,
    what: &'static str,
    /// `None`: not checked (said why in `detail`).
    ok: Option<bool>,
    detail: String,
    fix: Option<String>,
    /// The exit code's class when it failed.
    class: ExitClass,
}

/// Runs `doctor`; exits with the class of the first failed check.
pub fn run(env: &Environment, args: &DoctorArgs) -> Result<u8, Failure> {
    let config = env.config()?;
    let store = env.store(&config)?;
    let names: Vec<String> = if args.names.is_empty() {
        config.credentials.keys().chain(config.broken.keys()).cloned().collect()
    } else {
        args.names.clone()
    };
    if names.is_empty() {
        return Err(Failure::new(
            ExitClass::Config,
            format!("no credentials configured in {}", config.path.display()),
        )
        .hint("add one, e.g. [credentials.work] provider = \"azure\"; `keyhelper providers` lists them"));
    }
    let mut checks = Vec::new();
    for name in &names {
        match resolve(name, &config, &env.catalog) {
            Err(failure) => checks.push(Check {
                credential: name.clone(),
                what: "config",
                ok: Some(false),
                detail: failure.message.clone(),
                fix: failure.hint.clone(),
                class: failure.class,
            }),
            Ok(credential) => checks.extend(check_credential(env, &store, &credential, args.online)),
        }
    }
    if args.json {
        let document: Vec<serde_json::Value> = checks
            .iter()
            .map(|c| json!({"credential": c.credential, "check": c.what, "ok": c.ok, "detail": c.detail, "fix": c.fix}))
            .collect();
        keyhelper_core::output::print(&format!("{}\n", serde_json::Value::Array(document)))
            .map_err(|e| Failure::new(ExitClass::Internal, e.to_string()))?;
    } else {
        let mut out = String::new();
        for check in &checks {
            let mark = match check.ok {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "·",
            };
            let fix = check.fix.as_ref().map(|f| format!(" — fix: {f}")).unwrap_or_default();
            out.push_str(&format!("{mark} {}: {}{fix}\n", check.credential, check.detail));
        }
        print!("{out}");
    }
    Ok(match checks.iter().find(|c| c.ok == Some(false)) {
        Some(failed) => failed.class.code(),
        None => 0,
    })
}

fn check_credential(
    env: &Environment,
    store: &SecretStore,
    credential: &ResolvedCredential<'_>,
    online: bool,
) -> Vec<Check> {
    let provider = &credential.manifest.name;
    let check = |what, ok, detail: String, fix: Option<String>, class| Check {
        credential: credential.name.clone(),
        what,
        ok,
        detail,
        fix,
        class,
    };
    let mut checks = vec![check(
        "config",
        Some(true),
        format!("uses provider '{provider}', granted what it asks"),
        None,
        ExitClass::Config,
    )];
    let path = std::env::var_os("PATH");
    // A credential whose options need no tool (azure's managed identity) checks none.
    let tools_apply = credential.manifest.doctor.applies_to(&credential.options);
    let mut commands: Vec<&str> = if tools_apply {
        credential.granted.exec.iter().map(|e| e.command.as_str()).collect()
    } else {
        Vec::new()
    };
    commands.dedup();
    let mut installed = true;
    for command in &commands {
        match platform::find_executable(command, path.as_ref()) {
            Some(found) => checks.push(check(
                "tool",
                Some(true),
                format!("`{command}` is installed ({})", found.display()),
                None,
                ExitClass::Unavailable,
            )),
            None => {
                installed = false;
                let fix = credential
                    .manifest
                    .doctor
                    .install_fix
                    .clone()
                    .unwrap_or_else(|| format!("install `{command}`"));
                checks.push(check(
                    "tool",
                    Some(false),
                    format!("`{command}` is not installed (not on PATH)"),
                    Some(fix),
                    ExitClass::Unavailable,
                ));
            }
        }
    }
    let probe = &credential.manifest.doctor.probe;
    if let Some((program, probe_args)) = probe.split_first().filter(|_| installed && tools_apply) {
        let shown = probe.join(" ");
        if !commands.contains(&program.as_str()) {
            checks.push(check(
                "sign-in",
                Some(false),
                format!("the probe `{shown}` runs a program the provider is not granted"),
                None,
                ExitClass::Denied,
            ));
        } else if !online {
            checks.push(check(
                "sign-in",
                None,
                format!("sign-in not checked (`{shown}` may go over the network; add --online)"),
                None,
                ExitClass::NeedsLogin,
            ));
        } else {
            checks.push(run_probe(credential, program, probe_args, &shown));
        }
    }
    if credential.granted.stored_secrets && credential.manifest.uses_stored_secret(&credential.options) {
        let connection = credential.options.get("connection").map_or("default", String::as_str);
        let login = if connection == "default" {
            format!("keyhelper login {provider}")
        } else {
            format!("keyhelper login {provider} --connection {connection}")
        };
        let stored =
            store.list().map(|ids| ids.into_iter().find(|(id, _)| id.of_connection(provider, connection)));
        checks.push(match stored {
            Ok(Some(_)) => check(
                "stored",
                Some(true),
                format!("a secret is stored for connection '{connection}'"),
                None,
                ExitClass::NotFound,
            ),
            Ok(None) => check(
                "stored",
                Some(false),
                format!("no secret is stored for connection '{connection}'"),
                Some(format!("run `{login}`")),
                ExitClass::NotFound,
            ),
            Err(error) => {
                let failure = Failure::from(error);
                check("stored", Some(false), failure.message.clone(), failure.hint.clone(), ExitClass::Store)
            }
        });
    }
    let now = unix_now();
    let cache = env.cache();
    let cached = cache.as_ref().map(|cache| cache.entries()).unwrap_or_default();
    checks.push(match cached.iter().find(|(_, entry)| entry.name == credential.name) {
        Some((_, entry)) => check(
            "cache",
            Some(true),
            format!("cached, {}", describe_expiry(entry, now)),
            None,
            ExitClass::Store,
        ),
        None => {
            check("cache", None, "not cached (the next `get` fetches it)".to_string(), None, ExitClass::Store)
        }
    });
    checks
}

/// Runs the manifest's sign-in probe with the environment the provider's
/// own commands get: `PATH`, `HOME` and its granted variables.
fn run_probe(credential: &ResolvedCredential<'_>, program: &str, args: &[String], shown: &str) -> Check {
    let env: Vec<(String, OsString)> = ["PATH", "HOME"]
        .into_iter()
        .chain(credential.granted.env.iter().map(String::as_str))
        .filter_map(|name| Some((name.to_string(), std::env::var_os(name)?)))
        .collect();
    let fix = credential.manifest.doctor.probe_fix.clone();
    let (ok, detail) = match process::run(program, args, &env, None, PROBE_LIMITS) {
        Ok(output) if output.exit_code == Some(0) => (true, format!("signed in (`{shown}` succeeded)")),
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("no message");
            (false, format!("`{shown}` failed: {last}"))
        }
        Err(error) => (false, format!("`{shown}` could not run: {error}")),
    };
    Check {
        credential: credential.name.clone(),
        what: "sign-in",
        ok: Some(ok),
        detail,
        fix: if ok { None } else { fix },
        class: ExitClass::NeedsLogin,
    }
}
