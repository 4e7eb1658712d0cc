//! Unix: the detached renewer, started through an intermediate child (the
//! classic double fork, written out by hand) so that its starter waits only
//! for that child, which exits at once. Both children start without a copy
//! of the starter's address space where the system allows
//! (`suspended_child`): two `fork`s of the small executable cost a `get`
//! that started a renewal 0.4–0.5 ms on the development VM. On Linux the
//! starter is suspended only while the intermediate child runs; the renewer
//! is started beside it (`start_unwaited`), so its `exec`, and the teardown
//! of the memory it shared, are off the starter's path. Everywhere the
//! renewer waits for its starter to exit before it executes (a pipe whose
//! write end only the starter holds), so its start-up does not compete for
//! a processor with whoever reads the secret the starter printed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::ExecWarmUp;
use super::exec_image::{ExecImage, default_caught_signals};
use super::suspended_child::{self, ChildStack};

/// How long a renewer waits, at most, for its starter to exit before it
/// starts its program: a `get` exits within milliseconds; a command that
/// runs on (`run --env`) must not hold a renewal up for long.
const STARTER_WAIT_MS: libc::c_int = 1000;

/// Starts `program args…` detached: stdio on `/dev/null`, its own session
/// (so signals to the caller's process group or terminal never reach it),
/// reparented to init at once (the intermediate child exits immediately and
/// is reaped here), inheriting `claim`, whose descriptor `claim_var` names.
/// A `program` without a directory is looked up in `PATH`. Returns once the
/// intermediate child has exited; an error if `program` is not an
/// executable file. Should its `exec` fail nonetheless, the renewer exits
/// (127), which releases the claim; the credential is then renewed by the
/// first `get` that must. The renewer starts its program once this process
/// has exited, or after `STARTER_WAIT_MS` if it runs on: this process keeps
/// the write end of a pipe (close-on-exec) open for its life, and the
/// renewer's program image and stack (about 70 KB), which the renewer may
/// still read after this returns, are never freed. Only short-lived
/// commands call this.
pub fn spawn_renewer(program: &Path, args: &[&OsStr], claim: File, claim_var: &str) -> std::io::Result<()> {
    let claim_fd = claim.as_raw_fd();
    if claim_fd <= 2 {
        return Err(std::io::Error::other("the renewal claim is on a standard descriptor"));
    }
    let program = executable_file(program, std::env::var_os("PATH").as_ref())?;
    let claim_value = claim_fd.to_string();
    let env = std::env::vars_os().filter(|(name, _)| name != claim_var);
    let image = ExecImage::new(
        program.as_os_str(),
        std::iter::once(program.as_os_str()).chain(args.iter().copied()),
        env.chain(std::iter::once((claim_var.into(), claim_value.into()))),
    )?;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let null_fd = null.as_raw_fd();
    if null_fd <= 2 {
        return Err(std::io::Error::other("/dev/null opened on a standard descriptor"));
    }
    // The renewer starts its program once this process has exited: the
    // write end of `gate` is open here until then (it is never closed).
    let (gate_reader, gate_writer) = std::io::pipe()?;
    let gate_read = gate_reader.as_raw_fd();
    let gate_write = gate_writer.as_raw_fd();
    std::mem::forget(gate_writer);
    // The renewer may read these after this function has returned.
    let image: &'static ExecImage = Box::leak(Box::new(image));
    let renewer_stack: &'static mut ChildStack = Box::leak(Box::new(ChildStack::new()));
    let warm_up = ExecWarmUp::prepare();
    let exec = Exec { image, null_fd, claim_fd, gate_read, gate_write, renewer_stack, warm_up };
    let exec: &'static Exec = Box::leak(Box::new(exec));
    let mut intermediate_stack = ChildStack::new();
    // SAFETY: the sigset functions write to valid, zeroed sigset_t values.
    // Every signal stays blocked from before the intermediate child starts
    // until the renewer has put its handlers back to the default, so no
    // handler of this process (which stops provider commands, or forwards
    // signals) runs in a child. The intermediate child's stack outlives its
    // use: this thread waits below until that child has exited; `exec`,
    // what it points to and the renewer's stack are never freed.
    let (intermediate, start_error) = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let arg = std::ptr::from_ref(exec).cast_mut().cast();
        let pid = suspended_child::start(intermediate_main, arg, &mut intermediate_stack);
        let start_error = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        (pid, start_error)
    };
    if intermediate == -1 {
        return Err(start_error);
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
        Err(std::io::Error::other(
            "the renewer could not be detached (its descriptors, setsid or its start failed)",
        ))
    }
}

/// `program` as the path to run: absolute as given, or found in `path` (the
/// value of `PATH`; never relative to the current directory); an error
/// unless it is an executable file, so a broken installation is reported
/// here rather than by a renewer that silently fails to start.
fn executable_file(program: &Path, path: Option<&OsString>) -> std::io::Result<PathBuf> {
    let found = if program.is_absolute() {
        Some(program.to_path_buf()).filter(|path| super::is_executable_file(path))
    } else {
        program.to_str().and_then(|name| super::find_executable(name, path))
    };
    found.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not an executable file", program.display()),
        )
    })
}

/// What the children need, prepared before they start and never freed.
struct Exec {
    image: &'static ExecImage,
    null_fd: libc::c_int,
    claim_fd: libc::c_int,
    /// The pipe whose write end only the starter keeps open.
    gate_read: libc::c_int,
    gate_write: libc::c_int,
    /// The stack the intermediate child starts the renewer on.
    renewer_stack: *mut ChildStack,
    /// What the renewer does for its program before running it.
    warm_up: ExecWarmUp,
}

/// The intermediate child: stdio on `/dev/null`, the claim kept across
/// `exec`, a session of its own, the renewer started, and exit, so that the
/// renewer is reparented to init at once and, not being a session leader,
/// never acquires a controlling terminal. The descriptors are set up here,
/// while the starter waits, so that the renewer, which inherits them, never
/// holds the starter's stdout: a caller reading it to its end is not kept
/// waiting until the renewer has run. Only async-signal-safe calls on memory
/// prepared before it started; nothing is allocated.
extern "C" fn intermediate_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the starter's `Exec`, never freed, every signal is
    // blocked, and the renewer is started under the contract of
    // `suspended_child::start_unwaited`: it only reads `Exec` and what it
    // points to, and runs on a stack used by nothing else.
    unsafe {
        let exec = &*arg.cast::<Exec>();
        let flags = libc::fcntl(exec.claim_fd, libc::F_GETFD);
        if (0..=2).any(|stdio| libc::dup2(exec.null_fd, stdio) == -1)
            || flags == -1
            || libc::fcntl(exec.claim_fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1
            || libc::setsid() == -1
        {
            libc::_exit(1);
        }
        let renewer = suspended_child::start_unwaited(renewer_main, arg, &mut *exec.renewer_stack);
        libc::_exit(i32::from(renewer == -1))
    }
}

/// The renewer, before its `exec`: its signals set up. Only
/// async-signal-safe calls on memory prepared before it started.
extern "C" fn renewer_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the starter's `Exec`, never freed, and every signal is
    // blocked until the mask is emptied.
    unsafe {
        let exec = &*arg.cast::<Exec>();
        // The starter's caller first: the renewer's program, whose start-up
        // takes a few milliseconds of processor time, starts once the starter
        // has exited (the last write end of the gate is closed), or after
        // STARTER_WAIT_MS if it runs on.
        libc::close(exec.gate_write);
        let mut gate = libc::pollfd { fd: exec.gate_read, events: libc::POLLIN, revents: 0 };
        libc::poll(&mut gate, 1, STARTER_WAIT_MS);
        libc::close(exec.gate_read);
        let (executable, argv, envp) = exec.image.pointers();
        // Its program back in the page cache the fast way if most of it was
        // evicted (after a reboot), now that no caller waits.
        exec.warm_up.run(executable, exec.null_fd);
        // What a program expects to start with: no handler of ours (exec
        // would reset them, but a signal could arrive between unblocking and
        // exec), SIGPIPE at its default (the small executable ignores it),
        // and no signal blocked.
        default_caught_signals(32);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(executable, argv, envp);
        libc::_exit(127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn the_renewer_is_an_absolute_executable_or_one_found_in_path() {
        let bin = tempfile::tempdir().unwrap();
        let runnable = file(bin.path(), "keyhelper-full", 0o755);
        let plain = file(bin.path(), "not-executable", 0o644);
        let path = Some(OsString::from(bin.path()));

        assert_eq!(executable_file(&runnable, None).unwrap(), runnable);
        assert_eq!(executable_file(Path::new("keyhelper-full"), path.as_ref()).unwrap(), runnable);
        for missing in [plain.as_path(), Path::new("not-executable"), Path::new("nosuch")] {
            let error = executable_file(missing, path.as_ref()).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::NotFound, "{}", missing.display());
        }
        // Without PATH a bare name is not run at all (execve would take it
        // relative to the current directory).
        assert!(executable_file(Path::new("keyhelper-full"), None).is_err());
    }

    /// After a reboot the first start of `keyhelper-full` may be a renewal:
    /// its renewer reads the program back into the page cache whole (the
    /// way a later cold `get` starts fastest) before it runs it. The program
    /// here is a script that stops reading itself at `exit`, so only the
    /// renewer's read-through can bring the rest of it back.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_renewer_reads_its_evicted_program_back_before_running_it() {
        use crate::platform::unix::page_cache::test_files;

        // It marks that it ran beside itself, in the test's directory.
        let mut script = b"#!/bin/sh\necho ran > \"$0.ran\"\nexit 0\n".to_vec();
        let padding = format!("#{}\n", "x".repeat(1023));
        while script.len() < 4 << 20 {
            script.extend_from_slice(padding.as_bytes());
        }
        script.truncate(4 << 20);
        let Some(program) = test_files::evicted(&script) else {
            return; // nothing can be evicted here to read back
        };
        std::fs::set_permissions(&program.path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ran = program.path.with_extension("ran");

        spawn_renewer(&program.path, &[], tempfile::tempfile().unwrap(), "KEYHELPER_TEST_CLAIM").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !ran.exists() {
            assert!(std::time::Instant::now() < deadline, "the renewer never ran its program");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(program.cached(), program.pages, "the whole program is cached again");
    }

    #[test]
    fn a_missing_renewer_is_an_error_before_any_child_starts() {
        let claim = tempfile::tempfile().unwrap();
        let error = spawn_renewer(Path::new("/nonexistent/keyhelper-full"), &[], claim, "CLAIM").unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/keyhelper-full is not an executable file"),
            "{error}"
        );
    }
}
