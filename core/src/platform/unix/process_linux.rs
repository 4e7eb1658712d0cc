//! Running a provider's command on Linux, cheaply and bound to keyhelper.
//!
//! The child is started with `clone(CLONE_VM | CLONE_VFORK)` (`suspended_child`), as glibc's
//! `posix_spawn` does, so no page table is copied however large keyhelper is
//! (a `fork` here costs a millisecond or more), and before it executes the
//! command it asks for SIGKILL when the keyhelper thread that started it dies
//! (`PR_SET_PDEATHSIG`), which `posix_spawn` cannot. Then one thread waits
//! on its output pipes, its stdin and a pidfd with `poll`, within a deadline.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::exec_image::{ExecImage, default_caught_signals};
use super::suspended_child::{self, ChildStack};
use crate::platform::process::{ChildSpec, ProcessError, ProcessLimits, ProcessOutput};

/// Runs `spec` within `limits`.
pub fn run_child(spec: &ChildSpec<'_>, limits: ProcessLimits) -> Result<ProcessOutput, ProcessError> {
    let program = spec.program;
    let mut child = spawn(spec).map_err(|source| ProcessError::Spawn { program: program.into(), source })?;
    let _tracked = super::child_groups::track(child.pid);
    let deadline = Instant::now() + limits.timeout;
    let stdin = child.stdin.take();
    let mut watch = Watch::new(&child, stdin, spec.stdin.unwrap_or_default());
    let status = loop {
        if let Some(status) = watch.status.filter(|_| watch.outputs_closed()) {
            break status;
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            kill_group(child.pid);
            reap(child.pid);
            return Err(ProcessError::TimedOut { program: program.into(), timeout: limits.timeout });
        };
        if watch.step(left, limits.max_output).is_err() {
            kill_group(child.pid);
            reap(child.pid);
            return Err(ProcessError::TooLarge { program: program.into(), limit: limits.max_output });
        }
    };
    let exit_code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok(ProcessOutput { exit_code, stdout: watch.stdout, stderr: watch.stderr })
}

/// A started child and the parent's ends of its pipes.
struct Child {
    pid: libc::pid_t,
    /// Readable when the child has exited; `None` on kernels without pidfds.
    pidfd: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// One read more than the cap means the child printed too much.
struct OverLimit;

/// The state of a running child as `poll` sees it.
struct Watch<'a> {
    child: &'a Child,
    /// The child's stdin while there is input left to write.
    stdin: Option<OwnedFd>,
    input: &'a [u8],
    stdout_open: bool,
    stderr_open: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Its wait status, once it has exited.
    status: Option<i32>,
}

impl<'a> Watch<'a> {
    fn new(child: &'a Child, stdin: Option<OwnedFd>, input: &'a [u8]) -> Self {
        Self {
            child,
            stdin,
            input,
            stdout_open: true,
            stderr_open: true,
            stdout: Vec::new(),
            stderr: Vec::new(),
            status: None,
        }
    }

    fn outputs_closed(&self) -> bool {
        !self.stdout_open && !self.stderr_open
    }

    /// Waits at most `left` for something to happen, and handles it.
    fn step(&mut self, left: std::time::Duration, max_output: usize) -> Result<(), OverLimit> {
        let mut fds = Vec::with_capacity(4);
        let mut add = |fd: RawFd, events: i16| {
            fds.push(libc::pollfd { fd, events, revents: 0 });
            fds.len() - 1
        };
        let stdout = self.stdout_open.then(|| add(self.child.stdout.as_raw_fd(), libc::POLLIN));
        let stderr = self.stderr_open.then(|| add(self.child.stderr.as_raw_fd(), libc::POLLIN));
        let stdin = self.stdin.as_ref().map(|fd| add(fd.as_raw_fd(), libc::POLLOUT));
        let exited = match (&self.child.pidfd, self.status) {
            (Some(pidfd), None) => Some(add(pidfd.as_raw_fd(), libc::POLLIN)),
            _ => None,
        };
        // Without a pidfd the exit is noticed by polling, every 10 ms.
        let wait = if self.child.pidfd.is_none() && self.status.is_none() {
            left.min(std::time::Duration::from_millis(10))
        } else {
            left
        };
        let timeout = i32::try_from(wait.as_millis().max(1)).unwrap_or(i32::MAX);
        let nfds = libc::nfds_t::try_from(fds.len()).expect("at most four descriptors");
        // SAFETY: `fds` is a valid array of `nfds` pollfd structures.
        if unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout) } < 0 {
            return Ok(()); // EINTR: look again
        }
        let ready = |slot: Option<usize>| slot.is_some_and(|i| fds[i].revents != 0);
        if ready(stdout) {
            self.stdout_open = drain(&self.child.stdout, &mut self.stdout, max_output)?;
        }
        if ready(stderr) {
            self.stderr_open = drain(&self.child.stderr, &mut self.stderr, max_output)?;
        }
        if ready(stdin) {
            self.feed();
        }
        if self.status.is_none() && (ready(exited) || self.child.pidfd.is_none()) {
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid out-pointer.
            if unsafe { libc::waitpid(self.child.pid, &mut status, libc::WNOHANG) } == self.child.pid {
                self.status = Some(status);
                // Anything it left running would hold our pipes open.
                kill_group(self.child.pid);
            }
        }
        Ok(())
    }

    /// Writes what the child's stdin takes now; closes it (end of input)
    /// when all is written or the child stopped reading (a child that exits
    /// without reading its input is not an error).
    fn feed(&mut self) {
        let Some(fd) = &self.stdin else { return };
        // SAFETY: writing from a valid slice to an open descriptor.
        let written = unsafe { libc::write(fd.as_raw_fd(), self.input.as_ptr().cast(), self.input.len()) };
        match usize::try_from(written) {
            Ok(n) => self.input = &self.input[n..],
            Err(_) if std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.input = &[],
        }
        if self.input.is_empty() {
            self.stdin = None;
        }
    }
}

/// Reads what `fd` has into `into`; `Ok(false)` at end of file.
fn drain(fd: &OwnedFd, into: &mut Vec<u8>, max: usize) -> Result<bool, OverLimit> {
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: reading into a valid buffer from an open descriptor.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(0) => return Ok(false),
            Ok(n) if into.len() + n > max => return Err(OverLimit),
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(_) => {
                let error = std::io::Error::last_os_error();
                return match error.kind() {
                    std::io::ErrorKind::WouldBlock => Ok(true),
                    std::io::ErrorKind::Interrupted => continue,
                    _ => Ok(false),
                };
            }
        }
    }
}

/// SIGKILL to the child's process group (it leads one of its own).
fn kill_group(pid: libc::pid_t) {
    // SAFETY: kill(2) with a negative pid signals a process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
}

/// Waits for a killed child, so it leaves no zombie.
fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

/// What the child reads between `clone` and `exec`: prepared by the parent,
/// so the child allocates nothing.
struct ChildArgs {
    executable: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    /// Where to report a failed `exec` (its errno).
    failure: RawFd,
    parent: libc::pid_t,
    /// The signal mask to restore before `exec`.
    mask: libc::sigset_t,
}

/// Starts `spec`'s command: its own process group, stdin from its input or
/// empty, stdout and stderr into pipes, bound to the calling thread's life.
fn spawn(spec: &ChildSpec<'_>) -> std::io::Result<Child> {
    let image = ExecImage::new(
        spec.executable.as_os_str(),
        std::iter::once(OsStr::new(spec.program)).chain(spec.args.iter().map(OsStr::new)),
        spec.env.iter().map(|(k, v)| (k, v)),
    )?;
    let (executable, argv, envp) = image.pointers();

    let (stdout_read, stdout_write) = pipe()?;
    let (stderr_read, stderr_write) = pipe()?;
    let (stdin_read, stdin_write) = match spec.stdin {
        Some(_) => {
            let (read, write) = pipe()?;
            (read, Some(write))
        }
        None => (dev_null()?, None),
    };
    let (failure_read, failure_write) = pipe()?;

    let mut stack = ChildStack::new();
    // SAFETY: getpid has no preconditions; the sigset functions write to
    // valid, zeroed sigset_t values; the child runs `child_main` on `stack`
    // with `args`, which outlive the call because this thread is suspended
    // until the child has executed or exited; every pointer in `args` stays
    // valid for that time.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        // No signal handler of ours may run in the child, which shares our memory.
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let args = ChildArgs {
            executable,
            argv,
            envp,
            stdin: stdin_read.as_raw_fd(),
            stdout: stdout_write.as_raw_fd(),
            stderr: stderr_write.as_raw_fd(),
            failure: failure_write.as_raw_fd(),
            parent: libc::getpid(),
            mask: previous,
        };
        let pid = suspended_child::start(child_main, std::ptr::from_ref(&args).cast_mut().cast(), &mut stack);
        let spawn_error = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        if pid < 0 {
            return Err(spawn_error);
        }
        pid
    };
    drop((stdin_read, stdout_write, stderr_write, failure_write));
    let mut errno = [0u8; 4];
    // SAFETY: reading into a valid 4-byte buffer from our own pipe.
    let reported = unsafe { libc::read(failure_read.as_raw_fd(), errno.as_mut_ptr().cast(), 4) };
    if reported == 4 {
        reap(pid);
        return Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)));
    }
    for fd in [Some(&stdout_read), Some(&stderr_read), stdin_write.as_ref()].into_iter().flatten() {
        set_nonblocking(fd);
    }
    Ok(Child { pid, pidfd: pidfd_open(pid), stdin: stdin_write, stdout: stdout_read, stderr: stderr_read })
}

/// The child's side, between `clone` and `exec`: only async-signal-safe
/// calls on memory the parent prepared.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the parent's ChildArgs, alive until we exec or
    // exit; every call below is async-signal-safe and allocates nothing.
    unsafe {
        let args = &*arg.cast::<ChildArgs>();
        default_caught_signals(libc::SIGRTMAX());
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 || libc::getppid() != args.parent {
            libc::_exit(127);
        }
        if libc::setpgid(0, 0) == -1
            || libc::dup2(args.stdin, 0) == -1
            || libc::dup2(args.stdout, 1) == -1
            || libc::dup2(args.stderr, 2) == -1
        {
            report_and_exit(args.failure);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &args.mask, std::ptr::null_mut());
        libc::execve(args.executable, args.argv, args.envp);
        report_and_exit(args.failure)
    }
}

/// In the child: writes errno to the parent and exits.
unsafe fn report_and_exit(failure: RawFd) -> ! {
    // SAFETY: async-signal-safe calls on a valid descriptor and buffer.
    unsafe {
        let errno = (*libc::__errno_location()).to_ne_bytes();
        libc::write(failure, errno.as_ptr().cast(), errno.len());
        libc::_exit(127)
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into a valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn dev_null() -> std::io::Result<OwnedFd> {
    Ok(std::fs::File::open("/dev/null")?.into())
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on an open descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// A descriptor that becomes readable when `pid` exits (Linux 5.3 and later).
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: the pidfd_open system call takes a pid and flags; it returns a
    // new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a new descriptor owned by nobody else.
    RawFd::try_from(fd).ok().filter(|fd| *fd >= 0).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}
