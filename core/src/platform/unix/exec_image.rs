//! Unix: what a child needs between `fork` (or `clone`) and `exec`, prepared
//! before it, because the child may allocate nothing: `execve`'s
//! NUL-terminated strings and their pointer arrays, and putting the signal
//! handlers of this process back to their defaults.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;

/// A program, its arguments and its environment as `execve` takes them.
pub(super) struct ExecImage {
    executable: CString,
    /// Owns the bytes `argv_ptrs` points to (heap buffers, which do not move
    /// when the image does).
    _argv: Vec<CString>,
    /// Owns the bytes `envp_ptrs` points to.
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

impl ExecImage {
    /// `executable` run with `argv` (its first entry is `argv[0]`) in
    /// exactly the environment `env`; an error if any holds a NUL byte.
    pub(super) fn new<'a>(
        executable: &OsStr,
        argv: impl IntoIterator<Item = &'a OsStr>,
        env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
    ) -> std::io::Result<Self> {
        let c_string = |bytes: &[u8]| {
            CString::new(bytes)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL byte"))
        };
        let executable = c_string(executable.as_bytes())?;
        let argv: Vec<CString> =
            argv.into_iter().map(|a| c_string(a.as_bytes())).collect::<std::io::Result<_>>()?;
        let envp: Vec<CString> = env
            .into_iter()
            .map(|(k, v)| c_string(&[k.as_ref().as_bytes(), b"=", v.as_ref().as_bytes()].concat()))
            .collect::<std::io::Result<_>>()?;
        let pointers = |strings: &[CString]| {
            strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect::<Vec<_>>()
        };
        let (argv_ptrs, envp_ptrs) = (pointers(&argv), pointers(&envp));
        Ok(Self { executable, _argv: argv, _envp: envp, argv_ptrs, envp_ptrs })
    }

    /// `execve`'s three arguments, valid while the image lives.
    pub(super) fn pointers(
        &self,
    ) -> (*const libc::c_char, *const *const libc::c_char, *const *const libc::c_char) {
        (self.executable.as_ptr(), self.argv_ptrs.as_ptr(), self.envp_ptrs.as_ptr())
    }
}

/// Puts every signal below `end` that this process catches back to its
/// default disposition (ignored ones stay ignored, as `exec` keeps them).
/// Async-signal-safe: for a child between fork and exec, where a signal
/// that arrives before `exec` must not run a handler of ours.
///
/// # Safety
/// Only in a child between fork and exec, or while no other thread relies
/// on this process's handlers.
pub(super) unsafe fn default_caught_signals(end: libc::c_int) {
    for signal in 1..end {
        // SAFETY: sigaction on valid, zeroed structures; async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            if signal != libc::SIGKILL
                && signal != libc::SIGSTOP
                && libc::sigaction(signal, std::ptr::null(), &mut action) == 0
                && action.sa_sigaction != libc::SIG_IGN
                && action.sa_sigaction != libc::SIG_DFL
            {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
    }
}
