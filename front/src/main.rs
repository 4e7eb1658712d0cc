//! The `keyhelper` executable. It serves a plain `get` from the cache itself
//! (`keyhelper_core::fast_get`) and runs `keyhelper-full`, the complete
//! program installed beside it, for everything else, with the same arguments.
//!
//! Why two executables: most of a cache hit's cost is the kernel mapping and
//! unmapping the pages a process touches. In the complete program (wasmtime,
//! Cranelift, rustls, hyper: about 24 MB) the few functions a hit needs lie
//! scattered over its whole text, so a hit touches twice the pages of a
//! trivial program and takes 1.5× its time; linked alone they make a 1.6 MB
//! executable that starts like a trivial program. A miss pays one extra
//! `exec` (about 0.5 ms) on top of a plugin call that takes milliseconds.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use keyhelper_core::failure::ExitClass;
use keyhelper_core::invocation::invoked_as_docker_helper;
use keyhelper_core::{fast_get, platform};

/// The complete program's file name; it lives in the same directory.
const FULL_EXECUTABLE: &str = "keyhelper-full";

fn main() -> ExitCode {
    platform::forbid_core_dumps();
    let args: Vec<OsString> = std::env::args_os().collect();
    if !invoked_as_docker_helper(&args)
        && let Some(code) = fast_get::try_serve(&args)
    {
        return code;
    }
    run_full(&args)
}

/// Replaces this process with `keyhelper-full` and `args` (argv[0] kept, so
/// a `docker-credential-keyhelper` symlink still says what it is); returns
/// only if that fails.
fn run_full(args: &[OsString]) -> ExitCode {
    let full = full_executable();
    let mut command = Command::new(&full);
    if let Some((arg0, rest)) = args.split_first() {
        command.arg0(arg0).args(rest);
    }
    let error = command.exec();
    eprintln!(
        "keyhelper: error: cannot run {}: {error} (hint: keyhelper-full must sit beside keyhelper; \
         reinstall with `cargo xtask install`)",
        full.display()
    );
    ExitCode::from(ExitClass::Internal.code())
}

/// `keyhelper-full` beside this executable (symlinks to it resolved).
fn full_executable() -> PathBuf {
    std::env::current_exe()
        .map(|exe| exe.with_file_name(FULL_EXECUTABLE))
        .unwrap_or_else(|_| PathBuf::from(FULL_EXECUTABLE))
}
