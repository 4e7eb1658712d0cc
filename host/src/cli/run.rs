//! `keyhelper run [--env VAR=credential]… [--proxy credential]… [--mask] --
//! cmd args…`: runs a program with secrets, or a proxy, in its environment.
//!
//! With `--env` alone (and no `--mask`) the program runs in keyhelper's
//! place (exec on Unix, so it *is* the process: signals reach it directly
//! and its exit status is the status; on Windows keyhelper waits for it and
//! passes its exit code on). With `--proxy` or `--mask` keyhelper stays as
//! its parent: it serves the proxies or filters the output, forwards signals
//! to the program, and exits with its status (127 when it was not found, 126
//! when it could not be executed, 128 + n when signal n ended it).
//!
//! A `--proxy` credential never reaches the program: it gets a loopback base
//! URL and a random client key, for its credential's API family.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use clap::{ArgGroup, Args};
use keyhelper_core::credential::Secret;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::manifest::ApiFamily;
use keyhelper_core::platform;
use keyhelper_core::resolve::resolve;

use super::secret_env;
use crate::environment::Environment;
use crate::mask::OutputMasker;
use crate::proxy::{self, ClientKey, ConnectionLimits, ProxyOptions, RunningProxy};

/// Arguments of `keyhelper run`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).multiple(true).args(["env", "proxy"])))]
pub struct RunArgs {
    /// `VAR=credential`, or a credential alone for its provider's variable
    /// (e.g. OPENAI_API_KEY). Repeatable.
    #[arg(long = "env", short = 'e', value_name = "VAR=CREDENTIAL")]
    pub env: Vec<String>,
    /// Serve this credential through a loopback proxy for the program's
    /// lifetime and point the program at it (OPENAI_BASE_URL… or
    /// ANTHROPIC_BASE_URL…, with a client key, never the secret). One per
    /// API family.
    #[arg(long = "proxy", value_name = "CREDENTIAL")]
    pub proxy: Vec<String>,
    /// Allow plain http:// to a non-loopback upstream.
    #[arg(long)]
    pub allow_insecure_upstream: bool,
    /// Replace the secrets in the program's output with `<concealed by keyhelper>`.
    #[arg(long)]
    pub mask: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Runs `run`; returns the program's exit code when keyhelper outlives it.
pub fn run(env: &Environment, args: &RunArgs) -> Result<u8, Failure> {
    let config = env.config()?;
    let secrets =
        if args.env.is_empty() { Vec::new() } else { secret_env::fetch(env, &config, &args.env, "run")? };
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut command = Command::new(program);
    command.args(rest).envs(secrets.iter().map(|(var, secret)| (var, secret.expose())));
    if args.proxy.is_empty() && !args.mask {
        return Ok(match platform::hand_over(&mut command, None) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("keyhelper: error: {}", not_started(program, &error));
                exit_code_for(&error)
            }
        });
    }

    let client_key = ClientKey::new(None);
    let proxies = start_proxies(env, args, &client_key)?;
    // Whatever else the program inherits, it holds no secret of the proxies'.
    let proxied: Vec<&Secret> = proxies.iter().flat_map(|p| &p.secrets).collect();
    for (name, value) in std::env::vars_os() {
        if proxied.iter().any(|secret| contains(value.as_encoded_bytes(), secret.expose().as_bytes())) {
            command.env_remove(name);
        }
    }
    for proxy in &proxies {
        if proxy.family == ApiFamily::Anthropic {
            // Clients refuse both; ours is the token.
            command.env_remove("ANTHROPIC_API_KEY");
        }
        command.envs(proxy.client_env(&client_key));
    }
    if args.mask {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let failure = not_started(program, &e);
            eprintln!("keyhelper: error: {failure}");
            return Ok(exit_code_for(&e));
        }
    };
    platform::forward_stop_signals_to(child.id());
    let values: Vec<String> = secrets.iter().map(|(_, s)| s.expose().to_string()).collect();
    let pumps: Vec<_> = if args.mask {
        vec![
            pump(child.stdout.take().expect("piped"), std::io::stdout(), &values),
            pump(child.stderr.take().expect("piped"), std::io::stderr(), &values),
        ]
    } else {
        Vec::new()
    };
    let status = child
        .wait()
        .map_err(|e| Failure::new(ExitClass::Internal, format!("waiting for `{program}`: {e}")))?;
    for pump in pumps {
        let _ = pump.join();
    }
    drop(proxies);
    Ok(platform::exit_code(status))
}

/// One proxy per `--proxy` credential, each of another API family.
fn start_proxies(
    env: &Environment,
    args: &RunArgs,
    client_key: &ClientKey,
) -> Result<Vec<RunningProxy>, Failure> {
    let config = env.config()?;
    let mut families = Vec::new();
    for credential in &args.proxy {
        let family = resolve(credential, &config, &env.catalog)?.api;
        if let Some((other, _)) = families.iter().find(|(_, f)| *f == family) {
            return Err(Failure::new(
                ExitClass::Usage,
                format!("--proxy {other} and --proxy {credential} are both for the {} API", family.name()),
            )
            .hint(
                "a program has one base URL per API; put the second credential in the first's `fallback`",
            ));
        }
        families.push((credential.clone(), family));
    }
    families
        .into_iter()
        .map(|(credential, _)| {
            let options = ProxyOptions {
                credential,
                upstream: None,
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                client_key: client_key.clone(),
                header: None,
                header_prefix: None,
                upstream_ca: None,
                allow_insecure_upstream: args.allow_insecure_upstream,
                limits: ConnectionLimits::default(),
            };
            proxy::start(env.again()?, options)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

fn not_started(program: &str, error: &std::io::Error) -> Failure {
    let why = match error.kind() {
        std::io::ErrorKind::NotFound => "not found".to_string(),
        std::io::ErrorKind::PermissionDenied => "not executable".to_string(),
        _ => error.to_string(),
    };
    Failure::new(ExitClass::Usage, format!("cannot run `{program}`: {why}"))
        .hint("check the command and your PATH")
}

/// What a shell exits with when it cannot start a program.
fn exit_code_for(error: &std::io::Error) -> u8 {
    match error.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    }
}

/// Copies `from` to `to` through a masker, on a thread.
fn pump(
    mut from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    secrets: &[String],
) -> std::thread::JoinHandle<()> {
    let mut masker = OutputMasker::new(secrets.iter().map(String::as_str));
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = to.write_all(&masker.push(&buf[..n]));
            let _ = to.flush();
        }
        let _ = to.write_all(&masker.finish());
        let _ = to.flush();
    })
}
