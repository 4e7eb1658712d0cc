//! Windows. Commands are found through `PATHEXT` (so `az` is `az.cmd`), run
//! in a job object that dies with keyhelper, and programs get the variables
//! Windows programs need besides `PATH`. The renewer is a detached process
//! that takes the renewal claim itself: the starter lets go of its claim
//! just before starting it.

mod exec;
mod fs;
mod job;
mod process;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::windows::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
use windows_sys::Win32::System::Threading::{
    CREATE_NEW_PROCESS_GROUP, DETACHED_PROCESS, GetExitCodeProcess, OpenProcess,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

#[cfg(feature = "async")]
pub use self::exec::stop_requested;
pub use self::exec::{exit_code, forward_stop_signals_to, hand_over, original_args};
pub use self::fs::{create_private_dir, open_private, same_file, sync_dir, verify_owned, verify_private};
pub use self::process::run_child;

/// The variables every program keyhelper runs gets from keyhelper's own
/// environment, besides those its grant names: without `SystemRoot` and
/// `ComSpec` a `.cmd` (such as `az.cmd`) cannot run, without `PATHEXT` it
/// cannot find others, and the profile and temporary directories are where
/// CLIs keep their logins.
pub const BASE_CHILD_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "SystemRoot",
    "ComSpec",
    "PATHEXT",
    "TEMP",
    "TMP",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
];

/// What the OS keyring is called here, for messages.
pub const KEYRING_NAME: &str = "Windows Credential Manager";

/// Whether asking the OS keyring can get an answer: the Credential Manager
/// is always there.
pub fn keyring_may_answer() -> bool {
    true
}

/// Starts `program args…` detached (no console, a process group of its
/// own, stdio closed). Windows hands no lock to another process, so `claim`
/// is let go just before: the renewer takes it again itself, and if another
/// caller's renewer got it first, it leaves at once.
pub fn spawn_renewer(program: &Path, args: &[&OsStr], claim: File, _claim_var: &str) -> std::io::Result<()> {
    drop(claim);
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP)
        .spawn()
        .map(drop)
}

/// A renewer on Windows inherits no claim: it takes its own.
pub fn claim_from_environment(_claim_var: &str) -> Option<File> {
    None
}

/// Finds the executable `program` names in the directories of `path`
/// (absolute ones only), trying each extension of `PATHEXT` (`.COM;.EXE;
/// .BAT;.CMD` when unset) when the name has none of them.
pub fn find_executable(program: &str, path: Option<&OsString>) -> Option<PathBuf> {
    let pathext = std::env::var("PATHEXT").unwrap_or_else(|_| ".COM;.EXE;.BAT;.CMD".into());
    let extensions: Vec<&str> = pathext.split(';').filter(|e| e.starts_with('.')).collect();
    let has_extension = extensions
        .iter()
        .any(|e| program.len() > e.len() && program[program.len() - e.len()..].eq_ignore_ascii_case(e));
    let names: Vec<String> = if has_extension {
        vec![program.to_string()]
    } else {
        extensions.iter().map(|e| format!("{program}{}", e.to_ascii_lowercase())).collect()
    };
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Whether a process with this id is running.
pub fn process_is_running(pid: u32) -> bool {
    // SAFETY: OpenProcess has no memory-safety preconditions; a null handle
    // means there is no such process (or it is not ours to query).
    let handle = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if handle.is_null() {
        return false;
    }
    let mut code = 0u32;
    // SAFETY: `handle` is a valid process handle, closed once below.
    let running = unsafe { GetExitCodeProcess(handle, &mut code) } != 0 && code == STILL_ACTIVE as u32;
    // SAFETY: closes the handle opened above.
    unsafe { CloseHandle(handle) };
    running
}

/// Windows writes no core files; Windows Error Reporting keeps no full dump
/// of a crashed process unless an administrator configured `LocalDumps`.
pub fn forbid_core_dumps() {}
