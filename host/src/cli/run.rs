//! `keyhelper run [--env VAR=credential]… [--mask] -- cmd args…`: runs a
//! program with secrets in its environment.
//!
//! Without `--mask` keyhelper execs the program, which then *is* the process:
//! signals reach it directly and its exit status is the status. With `--mask`
//! keyhelper stays as its parent to filter its output, forwards signals to it,
//! and exits with its status.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use clap::Args;
use keyhelper_core::failure::{ExitClass, Failure};

use super::secret_env;
use crate::environment::Environment;
use crate::mask::OutputMasker;

/// Arguments of `keyhelper run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// `VAR=credential`, or a credential alone for its provider's variable
    /// (e.g. OPENAI_API_KEY). Repeatable.
    #[arg(long = "env", short = 'e', value_name = "VAR=CREDENTIAL", required = true)]
    pub env: Vec<String>,
    /// Replace the secrets in the program's output with `<concealed by keyhelper>`.
    #[arg(long)]
    pub mask: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Runs `run`; returns the program's exit code when keyhelper outlives it.
pub fn run(env: &Environment, args: &RunArgs) -> Result<ExitCode, Failure> {
    let config = env.config()?;
    let secrets = secret_env::fetch(env, &config, &args.env)?;
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut command = Command::new(program);
    command.args(rest).envs(secrets.iter().map(|(var, secret)| (var, secret.expose())));
    let not_started = |e: std::io::Error| {
        Failure::new(ExitClass::Usage, format!("cannot run `{program}`: {e}"))
            .hint("check the command and your PATH")
    };
    if !args.mask {
        return Err(not_started(command.exec()));
    }

    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(not_started)?;
    forward_signals_to(child.id());
    let values: Vec<String> = secrets.iter().map(|(_, s)| s.expose().to_string()).collect();
    let pumps = [
        pump(child.stdout.take().expect("piped"), std::io::stdout(), &values),
        pump(child.stderr.take().expect("piped"), std::io::stderr(), &values),
    ];
    let status = child
        .wait()
        .map_err(|e| Failure::new(ExitClass::Internal, format!("waiting for `{program}`: {e}")))?;
    for pump in pumps {
        let _ = pump.join();
    }
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
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

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Sends the signals a supervisor or terminal sends keyhelper on to the child.
fn forward_signals_to(pid: u32) {
    CHILD.store(i32::try_from(pid).unwrap_or(0), Ordering::Relaxed);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2] {
        // SAFETY: `forward` only calls the async-signal-safe kill(2).
        unsafe {
            libc::signal(signal, forward as *const () as libc::sighandler_t);
        }
    }
}
