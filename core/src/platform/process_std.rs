//! Running a provider's command where no cheaper way is written: std's
//! `Command` (posix_spawn), threads reading its pipes, and a wait with a
//! time limit. It is not bound to keyhelper's life: these systems have no
//! parent-death signal.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use wait_timeout::ChildExt;

use super::process::{ChildSpec, ProcessError, ProcessLimits, ProcessOutput};

/// Runs `spec` within `limits`.
pub fn run_child(spec: &ChildSpec<'_>, limits: ProcessLimits) -> Result<ProcessOutput, ProcessError> {
    let program = spec.program;
    let mut child = Command::new(spec.executable)
        .arg0(program)
        .args(spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| ProcessError::Spawn { program: program.into(), source })?;

    let feeder = spec.stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin was piped");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            // A child that exits without reading its input is not an error.
            let _ = pipe.write_all(&bytes);
        })
    });
    let group = child.id();
    let _tracked = super::child_groups::track(group as libc::pid_t);
    let stdout = capture(child.stdout.take().expect("stdout was piped"), limits.max_output, group);
    let stderr = capture(child.stderr.take().expect("stderr was piped"), limits.max_output, group);

    let status = wait_or_kill(&mut child, limits.timeout);
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

/// Reads a pipe to its end on a thread, keeping at most `limit` bytes. Past the
/// limit it kills the child's process group rather than read on.
fn capture(mut pipe: impl Read + Send + 'static, limit: usize, group: u32) -> JoinHandle<Captured> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return Captured::Whole(kept),
                Ok(n) if kept.len() + n > limit => {
                    kill_group(group);
                    return Captured::Truncated;
                }
                Ok(n) => kept.extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// Waits for the child up to `timeout`, then kills its whole group: on timeout
/// the child itself, otherwise anything it left behind holding our pipes open.
/// Returns `None` when the child had to be killed.
fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let status = child.wait_timeout(timeout).ok().flatten();
    kill_group(child.id());
    if status.is_none() {
        let _ = child.wait();
    }
    status
}

/// Sends SIGKILL to the process group led by our child.
fn kill_group(group: u32) {
    let Ok(pgid) = i32::try_from(group) else { return };
    // SAFETY: kill(2) with a negative pid signals a process group; it has no
    // memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}
