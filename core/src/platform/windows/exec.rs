//! Windows: a program cannot replace keyhelper, so keyhelper starts it,
//! waits, and exits with its code. Ctrl-C reaches every process of the
//! console: keyhelper ignores it while its child decides what to do.

use std::ffi::{OsStr, OsString};
use std::process::{Command, ExitStatus};

use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
use windows_sys::core::BOOL;

/// Where the small executable tells `keyhelper-full` the name it was run by
/// (Windows has no `argv[0]` to set).
const ARGV0_VAR: &str = "KEYHELPER_ARGV0";

/// Runs `command` in this process's place: starts it (telling it `arg0`, the
/// name keyhelper was run by, when given), waits, and returns its exit code.
pub fn hand_over(command: &mut Command, arg0: Option<&OsStr>) -> std::io::Result<u8> {
    if let Some(arg0) = arg0 {
        command.env(ARGV0_VAR, arg0);
    }
    let mut child = command.spawn()?;
    forward_stop_signals_to(child.id());
    Ok(exit_code(child.wait()?))
}

/// This process's arguments, `argv[0]` first: the name the small executable
/// was run by, if it handed over to this one.
fn original_args() -> Vec<OsString> {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if let (Some(arg0), Some(first)) = (std::env::var_os(ARGV0_VAR), args.first_mut()) {
        *first = arg0;
    }
    args
}

/// The arguments of a `#![no_main]` program, as [`original_args`]: from
/// the UTF-16 command line, not the C runtime's ANSI `argv`.
///
/// # Safety
/// Nothing to uphold on Windows; the signature matches the Unix one.
pub unsafe fn args_of_main(_argc: std::ffi::c_int, _argv: *const *const std::ffi::c_char) -> Vec<OsString> {
    original_args()
}

/// The exit code of `status`, as far as it fits a byte (1 when it does not).
pub fn exit_code(status: ExitStatus) -> u8 {
    status.code().and_then(|code| u8::try_from(code).ok()).unwrap_or(1)
}

unsafe extern "system" fn ignore(_event: u32) -> BOOL {
    1
}

/// Keeps keyhelper alive at Ctrl-C and Ctrl-Break while its child `_pid`
/// runs: the console delivers them to the child too, which decides.
pub fn forward_stop_signals_to(_pid: u32) {
    // SAFETY: registers a handler that touches nothing; it is never removed.
    unsafe { SetConsoleCtrlHandler(Some(ignore), 1) };
}

/// Resolves when keyhelper is asked to stop (Ctrl-C).
#[cfg(feature = "async")]
pub async fn stop_requested() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
