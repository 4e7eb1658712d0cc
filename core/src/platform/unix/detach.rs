//! Unix: the detached renewer, started by a double fork written out by hand
//! so that its starter waits only for the intermediate child, which exits at
//! once, and never for the renewer's `exec` (std's `Command::spawn` waits
//! for that, which cost a `get` that started a renewal the time of a 16 MB
//! executable's `exec`).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Starts `program args…` detached: stdio on `/dev/null`, its own session
/// (so signals to the caller's process group or terminal never reach it),
/// reparented to init at once (the intermediate child exits immediately and
/// is reaped here), inheriting `claim`, whose descriptor `claim_var` names.
/// Returns once the intermediate child has exited. If the renewer's `exec`
/// fails, it exits (127), which releases the claim; the credential is then
/// renewed by the first `get` that must.
pub fn spawn_renewer(program: &Path, args: &[&OsStr], claim: File, claim_var: &str) -> std::io::Result<()> {
    let claim_fd = claim.as_raw_fd();
    if claim_fd <= 2 {
        return Err(std::io::Error::other("the renewal claim is on a standard descriptor"));
    }
    let c_string = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL byte"))
    };
    let executable = c_string(program.as_os_str().as_bytes())?;
    let argv: Vec<CString> = std::iter::once(Ok(executable.clone()))
        .chain(args.iter().map(|a| c_string(a.as_bytes())))
        .collect::<std::io::Result<_>>()?;
    let envp: Vec<CString> = std::env::vars_os()
        .filter(|(name, _)| name != claim_var)
        .map(|(name, value)| c_string(&[name.as_bytes(), b"=", value.as_bytes()].concat()))
        .chain(std::iter::once(c_string(format!("{claim_var}={claim_fd}").as_bytes())))
        .collect::<std::io::Result<_>>()?;
    let pointers = |strings: &[CString]| {
        strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect::<Vec<_>>()
    };
    let (argv_ptrs, envp_ptrs) = (pointers(&argv), pointers(&envp));
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let null_fd = null.as_raw_fd();
    // SAFETY: fork has no preconditions. The child calls only
    // async-signal-safe functions on memory prepared above, which its copy
    // of the address space holds, and allocates nothing.
    let intermediate = unsafe { libc::fork() };
    if intermediate == -1 {
        return Err(std::io::Error::last_os_error());
    }
    if intermediate == 0 {
        // SAFETY: as above; this never returns.
        unsafe {
            if libc::setsid() == -1 {
                libc::_exit(1);
            }
            match libc::fork() {
                -1 => libc::_exit(1),
                0 => {}
                _ => libc::_exit(0),
            }
            let flags = libc::fcntl(claim_fd, libc::F_GETFD);
            if (0..=2).any(|stdio| libc::dup2(null_fd, stdio) == -1)
                || flags == -1
                || libc::fcntl(claim_fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1
            {
                libc::_exit(127);
            }
            // What a program expects to start with: SIGPIPE at its default
            // (the small executable ignores it) and no signal blocked.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::execve(executable.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child, into a valid status word.
    while unsafe { libc::waitpid(intermediate, &mut status, 0) } == -1 {
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(std::io::Error::other("the renewer could not be detached (setsid or fork failed)"))
    }
}
