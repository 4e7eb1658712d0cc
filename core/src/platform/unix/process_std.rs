//! Running a provider's command where no cheaper way is written (Unix but
//! Linux): std's `Command` (posix_spawn) in a process group of its own,
//! watched by [`crate::platform::watched_child`]. It is not bound to
//! keyhelper's life: these systems have no parent-death signal.

use std::os::unix::process::CommandExt;
use std::sync::Arc;

use crate::platform::process::{ChildSpec, ProcessError, ProcessLimits, ProcessOutput};
use crate::platform::watched_child::{self, Group};

/// Runs `spec` within `limits`.
pub fn run_child(spec: &ChildSpec<'_>, limits: ProcessLimits) -> Result<ProcessOutput, ProcessError> {
    let program = spec.program;
    let child = watched_child::command(spec)
        .arg0(program)
        .process_group(0)
        .spawn()
        .map_err(|source| ProcessError::Spawn { program: program.into(), source })?;
    let group = ProcessGroup(child.id() as libc::pid_t);
    let _tracked = super::child_groups::track(group.0);
    watched_child::watch(program, child, spec.stdin, Arc::new(group), limits)
}

/// The process group our child leads.
struct ProcessGroup(libc::pid_t);

impl Group for ProcessGroup {
    /// Sends SIGKILL to the group.
    fn kill(&self) {
        // SAFETY: kill(2) with a negative pid signals a process group; it
        // has no memory-safety preconditions.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}
