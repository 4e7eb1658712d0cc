//! A job object holding a provider's command and everything it starts:
//! closing the job (when keyhelper is done with the command, or dies) kills
//! them all, as a process group's SIGKILL does on Unix.

use std::os::windows::io::AsRawHandle;
use std::process::Child;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation, SetInformationJobObject,
    TerminateJobObject,
};

/// A job that kills its processes when closed.
pub struct Job {
    handle: HANDLE,
}

// SAFETY: a job handle may be used from any thread.
unsafe impl Send for Job {}
// SAFETY: the calls made through a shared Job are thread-safe.
unsafe impl Sync for Job {}

impl Job {
    /// A new job, with `child` in it.
    pub fn holding(child: &Child) -> std::io::Result<Self> {
        // SAFETY: no attributes, no name: an anonymous job.
        let handle = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
        if handle.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        let job = Self { handle };
        let mut limits = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: `limits` is the struct this information class takes, of the size given.
        let set = unsafe {
            SetInformationJobObject(
                job.handle,
                JobObjectExtendedLimitInformation,
                (&raw const limits).cast(),
                size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        };
        // SAFETY: both handles are valid.
        if set == 0 || unsafe { AssignProcessToJobObject(job.handle, child.as_raw_handle()) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(job)
    }

    /// Kills every process in the job.
    pub fn kill(&self) {
        // SAFETY: the handle is valid until drop.
        unsafe { TerminateJobObject(self.handle, 1) };
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: closes the handle created in `holding`, once; the job's
        // processes are killed with it.
        unsafe { CloseHandle(self.handle) };
    }
}
