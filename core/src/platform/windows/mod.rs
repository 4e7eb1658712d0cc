//! Windows. Commands are found through `PATHEXT` (so `az` is `az.cmd`), run
//! in a job object that dies with keyhelper, and programs get the variables
//! Windows programs need besides `PATH`. The renewer is a detached process
//! that takes the renewal claim itself: the starter lets go of its claim
//! just before starting it.

mod exec;
mod fs;
#[cfg(feature = "fast-heap")]
mod heap_hint;
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
pub use self::exec::{args_of_main, exit_code, forward_stop_signals_to, hand_over};
pub use self::fs::{
    create_private_dir, current_stamp, open_private, read_file, read_file_stamped, read_private_file,
    same_file, sync_dir, verify_owned,
};
#[cfg(feature = "fast-heap")]
pub use self::heap_hint::process_serves_requests;
pub use self::process::run_child;

/// Writes `bytes` to standard output directly, without passing through a
/// buffer that would keep a copy (std's stdout keeps one for output without
/// a final newline). A console gets std's stdout, which converts UTF-8 to
/// the console's UTF-16.
pub fn write_to_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::windows::io::FromRawHandle;
    use windows_sys::Win32::System::Console::{GetConsoleMode, GetStdHandle, STD_OUTPUT_HANDLE};
    // SAFETY: GetStdHandle has no preconditions.
    let handle = unsafe { GetStdHandle(STD_OUTPUT_HANDLE) };
    if handle.is_null() || handle == windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE {
        return Err(std::io::Error::other("no standard output"));
    }
    let mut mode = 0;
    // SAFETY: `handle` is the process's standard output; `mode` is writable.
    if unsafe { GetConsoleMode(handle, &mut mode) } != 0 {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(bytes)?;
        return stdout.flush();
    }
    // SAFETY: the process's standard output handle stays open for its life;
    // ManuallyDrop keeps this File from closing it.
    let stdout = std::mem::ManuallyDrop::new(unsafe { File::from_raw_handle(handle) });
    (&*stdout).write_all(bytes)
}

/// The program that opens a URL in the user's default browser, and the
/// arguments before the URL (no shell: `cmd /c start` would parse the URL).
pub const URL_OPENER: (&str, &[&str]) = ("rundll32", &["url.dll,FileProtocolHandler"]);

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

/// Whether compiled plugin code must carry native unwind information: on
/// Windows all code must (structured exception handling walks it), and
/// wasmtime refuses to leave it out.
pub const PLUGIN_CODE_NEEDS_UNWIND_INFO: bool = true;

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
    let has_extension = Path::new(program)
        .extension()
        .and_then(OsStr::to_str)
        .is_some_and(|ext| extensions.iter().any(|e| e[1..].eq_ignore_ascii_case(ext)));
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

/// Nothing to prepare: Rust's runtime does nothing before `main` on
/// Windows that the small executable needs.
pub fn prepare_bare_process() {}

/// Where Linux reads an executable back into the page cache before running
/// it (`unix/page_cache.rs`), Windows does nothing.
pub fn cache_whole_file(_path: &Path) {}

/// Windows writes no core files; Windows Error Reporting keeps no full dump
/// of a crashed process unless an administrator configured `LocalDumps`.
pub fn forbid_core_dumps() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_commands_through_pathext() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("az.cmd"), "@echo off\r\n").unwrap();
        std::fs::write(dir.path().join("op.txt"), "").unwrap();
        let path = OsString::from(dir.path());
        assert_eq!(find_executable("az", Some(&path)), Some(dir.path().join("az.cmd")));
        assert_eq!(find_executable("az.cmd", Some(&path)), Some(dir.path().join("az.cmd")));
        assert_eq!(find_executable("op", Some(&path)), None);
        assert_eq!(find_executable("az", Some(&OsString::from("relative"))), None);
    }

    #[test]
    fn private_directories_stay_usable_by_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("a").join("b");
        create_private_dir(&private).unwrap();
        create_private_dir(&private).unwrap();
        std::fs::write(private.join("secret"), "s").unwrap();
        assert_eq!(std::fs::read(private.join("secret")).unwrap(), b"s");
        sync_dir(&private).unwrap();
    }

    #[test]
    fn runs_a_cmd_within_its_limits() {
        use super::super::process::{ProcessError, ProcessLimits, run};
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.cmd"), "@echo off\r\necho hello %1\r\n").unwrap();
        std::fs::write(dir.path().join("hang.cmd"), "@echo off\r\n:again\r\ngoto again\r\n").unwrap();
        let mut env: Vec<(String, OsString)> = vec![("PATH".into(), dir.path().into())];
        env.extend(
            ["SystemRoot", "ComSpec", "PATHEXT"]
                .iter()
                .filter_map(|n| Some((n.to_string(), std::env::var_os(n)?))),
        );
        let limits = ProcessLimits { timeout: Duration::from_secs(60), max_output: 1024 };
        let output = run("hello", &["world".into()], &env, None, limits).unwrap();
        assert_eq!(output.exit_code, Some(0));
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "hello world");
        let started = Instant::now();
        let limits = ProcessLimits { timeout: Duration::from_millis(500), max_output: 1024 };
        assert!(matches!(run("hang", &[], &env, None, limits), Err(ProcessError::TimedOut { .. })));
        assert!(started.elapsed() < Duration::from_secs(20), "the job was not killed at its deadline");
        assert!(matches!(run("nosuch", &[], &env, None, limits), Err(ProcessError::NotInstalled(_))));
    }
}
