//! Running a provider's command on Windows: std's `Command` (which runs a
//! `.cmd` through `cmd.exe`, quoting its arguments safely or refusing them),
//! no console window, in a job object that kills whatever the command
//! started when it is over or keyhelper dies, watched by
//! [`crate::platform::watched_child`].

use std::os::windows::process::CommandExt;
use std::sync::Arc;

use windows_sys::Win32::System::Threading::CREATE_NO_WINDOW;

use super::job::Job;
use crate::platform::process::{ChildSpec, ProcessError, ProcessLimits, ProcessOutput};
use crate::platform::watched_child::{self, Group};

/// Runs `spec` within `limits`.
pub fn run_child(spec: &ChildSpec<'_>, limits: ProcessLimits) -> Result<ProcessOutput, ProcessError> {
    let program = spec.program;
    let spawn_error = |source| ProcessError::Spawn { program: program.into(), source };
    let mut child =
        watched_child::command(spec).creation_flags(CREATE_NO_WINDOW).spawn().map_err(spawn_error)?;
    let job = match Job::holding(&child) {
        Ok(job) => job,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_error(e));
        }
    };
    watched_child::watch(program, child, spec.stdin, Arc::new(job), limits)
}

impl Group for Job {
    fn kill(&self) {
        Job::kill(self);
    }
}
