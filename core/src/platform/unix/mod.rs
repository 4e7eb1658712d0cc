//! Unix (Linux and macOS). The renewer runs in a session of its own, as a
//! grandchild that its starter does not wait for, and inherits the renewal
//! claim (an open file description holding a `flock`) as a descriptor named
//! in an environment variable.

mod child_groups;
mod detach;
mod exec;
mod exec_image;
mod fs;
#[cfg(all(feature = "fast-heap", target_os = "linux", target_env = "gnu"))]
mod heap_hint;
#[cfg(target_os = "linux")]
mod page_cache;
#[cfg(target_os = "linux")]
mod process_linux;
#[cfg(not(target_os = "linux"))]
mod process_std;
mod start;
mod suspended_child;

pub use self::detach::spawn_renewer;
#[cfg(feature = "async")]
pub use self::exec::stop_requested;
pub use self::exec::{args_of_main, exit_code, forward_stop_signals_to, hand_over};
pub use self::fs::{
    create_private_dir, current_stamp, open_private, read_file, read_file_stamped, read_private_file,
    same_file, sync_dir, verify_owned,
};
#[cfg(all(feature = "fast-heap", target_os = "linux", target_env = "gnu"))]
pub use self::heap_hint::process_serves_requests;
#[cfg(target_os = "linux")]
use self::page_cache::ExecWarmUp;
#[cfg(target_os = "linux")]
pub use self::page_cache::cache_whole_file;
#[cfg(target_os = "linux")]
pub use self::process_linux::run_child;
#[cfg(not(target_os = "linux"))]
pub use self::process_std::run_child;
pub use self::start::prepare_bare_process;

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Linux reads an executable back into the page cache before it runs it,
/// when most of it was evicted (see `page_cache`); elsewhere nothing is done.
#[cfg(not(target_os = "linux"))]
pub fn cache_whole_file(_path: &Path) {}

/// What a renewer does for its program before it runs it: on Linux, the
/// read-through of `page_cache`; elsewhere nothing.
#[cfg(not(target_os = "linux"))]
struct ExecWarmUp;

#[cfg(not(target_os = "linux"))]
impl ExecWarmUp {
    fn prepare() -> Self {
        Self
    }

    /// Nothing to do here.
    ///
    /// # Safety
    /// None needed; the signature is Linux's.
    unsafe fn run(&self, _path: *const libc::c_char, _sink: libc::c_int) {}
}

/// Writes `bytes` to standard output directly, without passing through a
/// buffer that would keep a copy (std's stdout keeps one for output without
/// a final newline).
pub fn write_to_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    // SAFETY: descriptor 1 stays open for the life of the process
    // (`prepare_bare_process` makes sure it is open); ManuallyDrop keeps this
    // File from closing it.
    let stdout = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    (&*stdout).write_all(bytes)
}

/// The program that opens a URL in the user's default browser, and the
/// arguments before the URL.
#[cfg(target_os = "macos")]
pub const URL_OPENER: (&str, &[&str]) = ("open", &[]);
/// The program that opens a URL in the user's default browser, and the
/// arguments before the URL.
#[cfg(not(target_os = "macos"))]
pub const URL_OPENER: (&str, &[&str]) = ("xdg-open", &[]);

/// The claim a renewer inherited, if `claim_var` names a descriptor. It is
/// made close-on-exec again, so the programs the renewer runs do not hold it.
pub fn claim_from_environment(claim_var: &str) -> Option<File> {
    let fd: i32 = std::env::var(claim_var).ok()?.parse().ok()?;
    if fd <= 2 {
        return None;
    }
    // SAFETY: fcntl on a descriptor number has no memory-safety preconditions;
    // it fails harmlessly if the descriptor is not open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return None;
    }
    // SAFETY: the descriptor is open (fcntl succeeded); the process that
    // started us opened it and named it in this variable for us to own, and
    // nothing else in this process uses it.
    Some(unsafe { File::from_raw_fd(fd) })
}

/// The variables every program keyhelper runs gets from keyhelper's own
/// environment, besides those its grant names.
pub const BASE_CHILD_ENV: &[&str] = &["PATH", "HOME"];

/// Whether compiled plugin code must carry native unwind information: not
/// here (wasmtime traps, takes backtraces and carries host panics without
/// it), so it is neither generated nor registered at every load.
pub const PLUGIN_CODE_NEEDS_UNWIND_INFO: bool = false;

/// What the OS keyring is called here, for messages.
pub const KEYRING_NAME: &str = if cfg!(target_os = "macos") { "macOS Keychain" } else { "Secret Service" };

/// Whether asking the OS keyring can get an answer: on Linux the Secret
/// Service needs a D-Bus session bus (without one the keyring crate would
/// wait for a timeout).
pub fn keyring_may_answer() -> bool {
    !cfg!(target_os = "linux") || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
}

/// Finds an executable named `program` in the directories of `path`
/// (absolute ones only).
pub fn find_executable(program: &str, path: Option<&OsString>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable_file(candidate))
}

/// Whether `path` is a file someone may execute.
fn is_executable_file(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether a process with this pid is running (and ours to signal).
pub fn process_is_running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Keeps secrets in this process's memory out of core dumps: the core size
/// limit is set to 0 (inherited by the programs keyhelper runs), and on
/// Linux the process is marked not dumpable, which also keeps other
/// processes of the same user from attaching to it with ptrace.
pub fn forbid_core_dumps() {
    let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads the struct passed; failure leaves the limit as it was.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_DUMPABLE takes a plain integer argument.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0)
    };
}
