//! Unix: a program runs in keyhelper's place by `exec`, so it *is* the
//! process; while keyhelper waits for a child it passes the stop signals on.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};

/// Replaces this process with `command`, whose `argv[0]` is `arg0` when
/// given. Returns only if that fails, with the error.
pub fn hand_over(command: &mut Command, arg0: Option<&OsStr>) -> std::io::Result<u8> {
    if let Some(arg0) = arg0 {
        command.arg0(arg0);
    }
    Err(command.exec())
}

/// The arguments the C runtime passed to a `#![no_main]` program's `main`,
/// `argv[0]` first. They are read from `argv` itself: only glibc also hands
/// them to std (musl, the BSDs' libc and macOS's do not).
///
/// # Safety
/// `argv` must be the `argv` of `main`, with `argc` entries.
pub unsafe fn args_of_main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> Vec<OsString> {
    use std::os::unix::ffi::OsStrExt;
    let count = usize::try_from(argc).unwrap_or(0);
    (0..count)
        .map(|i| {
            // SAFETY: the caller promises `argc` valid, NUL-terminated entries.
            let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
            OsStr::from_bytes(arg.to_bytes()).to_os_string()
        })
        .collect()
}

/// What a shell reports for `status`: the exit code, or 128 + the signal
/// that ended the program.
pub fn exit_code(status: ExitStatus) -> u8 {
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    u8::try_from(code).unwrap_or(1)
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Sends the signals a supervisor or terminal sends keyhelper on to the
/// child `pid`, instead of keyhelper stopping at them.
pub fn forward_stop_signals_to(pid: u32) {
    CHILD.store(i32::try_from(pid).unwrap_or(0), Ordering::Relaxed);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2] {
        // SAFETY: `forward` only calls the async-signal-safe kill(2).
        unsafe {
            libc::signal(signal, forward as *const () as libc::sighandler_t);
        }
    }
}

/// Resolves when keyhelper is asked to stop (SIGINT or SIGTERM).
#[cfg(feature = "async")]
pub async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
