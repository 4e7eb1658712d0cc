//! Watching a child started with std's `Command`, where no cheaper way is
//! written (macOS, Windows): a thread feeding its stdin, threads reading its
//! pipes up to a cap, a wait with a time limit, and at the end killing the
//! group of processes it started (a process group, a job object).

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wait_timeout::ChildExt;

use super::process::{ChildSpec, ProcessError, ProcessLimits, ProcessOutput};

/// The command `spec` asks for: its executable and arguments, exactly its
/// environment, stdin piped when there is input (else empty), output piped.
pub fn command(spec: &ChildSpec<'_>) -> Command {
    let mut command = Command::new(spec.executable);
    command
        .args(spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The processes a child started, killed together.
pub trait Group: Send + Sync + 'static {
    /// Kills every process of the group.
    fn kill(&self);
}

/// Feeds `child` `stdin`, collects its output within `limits`, and kills
/// `group` when it is over; `program` names it in errors.
pub fn watch(
    program: &str,
    mut child: Child,
    stdin: Option<&[u8]>,
    group: Arc<dyn Group>,
    limits: ProcessLimits,
) -> Result<ProcessOutput, ProcessError> {
    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin was piped");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            // A child that exits without reading its input is not an error.
            let _ = pipe.write_all(&bytes);
        })
    });
    let stdout = capture(child.stdout.take().expect("stdout was piped"), limits.max_output, &group);
    let stderr = capture(child.stderr.take().expect("stderr was piped"), limits.max_output, &group);

    let status = wait_or_kill(&mut child, &*group, limits.timeout);
    let stdout = stdout.join().expect("reader thread panicked");
    let stderr = stderr.join().expect("reader thread panicked");
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let status = status.ok_or(ProcessError::TimedOut { program: program.into(), timeout: limits.timeout })?;
    match (stdout, stderr) {
        (Captured::Whole(stdout), Captured::Whole(stderr)) => {
            Ok(ProcessOutput { exit_code: status.code(), stdout, stderr })
        }
        _ => Err(ProcessError::TooLarge { program: program.into(), limit: limits.max_output }),
    }
}

enum Captured {
    Whole(Vec<u8>),
    Truncated,
}

/// Reads a pipe to its end on a thread, keeping at most `limit` bytes. Past
/// the limit it kills the group rather than read on.
fn capture(
    mut pipe: impl Read + Send + 'static,
    limit: usize,
    group: &Arc<dyn Group>,
) -> JoinHandle<Captured> {
    let group = Arc::clone(group);
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return Captured::Whole(kept),
                Ok(n) if kept.len() + n > limit => {
                    group.kill();
                    return Captured::Truncated;
                }
                Ok(n) => kept.extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// Waits for the child up to `timeout`, then kills its whole group: on
/// timeout the child itself, otherwise anything it left behind holding our
/// pipes open. Returns `None` when the child had to be killed.
fn wait_or_kill(child: &mut Child, group: &dyn Group, timeout: Duration) -> Option<std::process::ExitStatus> {
    let status = child.wait_timeout(timeout).ok().flatten();
    group.kill();
    if status.is_none() {
        let _ = child.wait();
    }
    status
}
