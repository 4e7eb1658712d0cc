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
use std::process::{Command, ExitCode};

use keyhelper_core::failure::ExitClass;
use keyhelper_core::invocation::{full_executable, invoked_as_docker_helper};
use keyhelper_core::{fast_get, platform};

fn main() -> ExitCode {
    platform::forbid_core_dumps();
    let args = platform::original_args();
    if !invoked_as_docker_helper(&args)
        && let Some(code) = fast_get::try_serve(&args)
    {
        return code;
    }
    run_full(&args)
}

/// Runs `keyhelper-full` with `args` in this process's place (argv[0] kept,
/// so a `docker-credential-keyhelper` link still says what it is): on Unix it
/// replaces this process; on Windows this waits and returns its exit code.
fn run_full(args: &[OsString]) -> ExitCode {
    let full = full_executable();
    let mut command = Command::new(&full);
    command.args(args.iter().skip(1));
    match platform::hand_over(&mut command, args.first().map(OsString::as_os_str)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!(
                "keyhelper: error: cannot run {}: {error} (hint: keyhelper-full must sit beside keyhelper; \
                 reinstall with `cargo xtask install`)",
                full.display()
            );
            ExitCode::from(ExitClass::Internal.code())
        }
    }
}
