//! Runs a child process for a plugin: resolved on `PATH`, a minimal environment,
//! no terminal, its own process group, a time limit and capped output.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use keyhelper_core::platform;
use wait_timeout::ChildExt;

/// How long a child may run and how much it may print.
#[derive(Debug, Clone, Copy)]
pub struct ProcessLimits {
    /// Wall-clock time before the child (and its process group) is killed.
    pub timeout: Duration,
    /// Bytes of stdout, and separately of stderr, kept before the child is killed.
    pub max_output: usize,
}

/// A finished child process.
#[derive(Debug)]
pub struct ProcessOutput {
    /// Exit code, `None` when a signal ended it.
    pub exit_code: Option<i32>,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Why a child did not finish normally.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// No executable of that name on `PATH`.
    #[error("`{0}` is not installed (not found on PATH)")]
    NotInstalled(String),
    /// The executable exists but could not be started.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The program name.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It ran longer than its limit and was killed.
    #[error("`{program}` did not finish within {}s and was stopped", .timeout.as_secs_f32())]
    TimedOut {
        /// The program name.
        program: String,
        /// The limit it exceeded.
        timeout: Duration,
    },
    /// It printed more than its limit and was killed.
    #[error("`{program}` printed more than {limit} bytes and was stopped")]
    TooLarge {
        /// The program name.
        program: String,
        /// The limit it exceeded.
        limit: usize,
    },
}

/// Finds an executable named `program` in the directories of `path`.
pub fn find_on_path(program: &str, path: Option<&OsString>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |candidate: &Path| {
        candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// Runs `program` (a bare name looked up on the `PATH` in `env`) with exactly
/// the environment `env`, feeding it `stdin`, within `limits`.
pub fn run(
    program: &str,
    args: &[String],
    env: &[(String, OsString)],
    stdin: Option<&[u8]>,
    limits: ProcessLimits,
) -> Result<ProcessOutput, ProcessError> {
    let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v);
    let executable =
        find_on_path(program, path_var).ok_or_else(|| ProcessError::NotInstalled(program.into()))?;
    let mut command = Command::new(&executable);
    command
        .arg0(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so a timeout kills whatever it started too.
        .process_group(0);
    platform::die_with_parent(&mut command);
    let mut child =
        command.spawn().map_err(|source| ProcessError::Spawn { program: program.into(), source })?;

    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin was piped");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            // A child that exits without reading its input is not an error.
            let _ = pipe.write_all(&bytes);
        })
    });
    let group = child.id();
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
