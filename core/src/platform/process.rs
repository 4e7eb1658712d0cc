//! Runs a provider's command: resolved on `PATH`, exactly the environment
//! given, no terminal, a process group of its own (so a timeout kills
//! whatever it started too), a time limit, capped output, and bound to the
//! keyhelper that runs it where the OS allows (it dies with it). How a child
//! is started and watched is the OS's business: see `process_linux` and
//! `process_std`.

use std::ffi::OsString;
use std::time::Duration;

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

impl Drop for ProcessOutput {
    /// A provider's output holds its secret: zeroed when dropped.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.stdout);
        zeroize::Zeroize::zeroize(&mut self.stderr);
    }
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
    let executable = super::find_executable(program, path_var)
        .ok_or_else(|| ProcessError::NotInstalled(program.into()))?;
    super::run_child(&ChildSpec { program, executable: &executable, args, env, stdin }, limits)
}

/// What to run, resolved.
pub(super) struct ChildSpec<'a> {
    /// The name it was asked for, which becomes its `argv[0]`.
    pub program: &'a str,
    /// The executable found for it.
    pub executable: &'a std::path::Path,
    /// Its arguments.
    pub args: &'a [String],
    /// Its whole environment.
    pub env: &'a [(String, OsString)],
    /// What to write to its stdin (otherwise stdin is empty).
    pub stdin: Option<&'a [u8]>,
}
