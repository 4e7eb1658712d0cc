//! The `keyhelper` executable. It serves a plain `get` from the cache itself
//! (`keyhelper_core::fast_get`) and runs `keyhelper-full`, the complete
//! program installed beside it, for everything else, with the same arguments.
//!
//! Why two executables: most of a cache hit's cost is the kernel mapping and
//! unmapping the pages a process touches. In the complete program (wasmtime,
//! rustls, hyper: about 16 MB) the few functions a hit needs lie
//! scattered over its whole text, so a hit touches twice the pages of a
//! trivial program and takes 1.5× its time; linked alone they make a 1.6 MB
//! executable that starts like a trivial program. A miss pays one extra
//! `exec` (about 0.35 ms) on top of a plugin call that takes milliseconds.
//!
//! For the same reason it starts at the C `main`, skipping what Rust's
//! runtime does before its `main` (on Linux: reading `/proc/self/maps` for the
//! main thread's stack guard, installing stack-overflow handlers); what of
//! it matters is done by [`platform::prepare_bare_process`].

#![no_main]

use std::ffi::{OsString, c_char, c_int};
use std::process::Command;

use keyhelper_core::failure::ExitClass;
use keyhelper_core::invocation::{full_executable, invoked_as_docker_helper};
use keyhelper_core::zero_on_free::ZeroOnFree;
use keyhelper_core::{fast_get, platform};

/// Every heap block is zeroed when freed.
#[global_allocator]
static ALLOCATOR: ZeroOnFree<std::alloc::System> = ZeroOnFree(std::alloc::System);

/// The process's entry point, called by the C runtime (std's environment
/// works as usual; its arguments only with glibc, so they are read here).
#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    platform::prepare_bare_process();
    platform::forbid_core_dumps();
    // SAFETY: these are the C runtime's own `argc` and `argv`.
    let args = unsafe { platform::args_of_main(argc, argv) };
    if !invoked_as_docker_helper(&args)
        && let Some(code) = fast_get::try_serve(&args)
    {
        return code.into();
    }
    run_full(&args).into()
}

/// Runs `keyhelper-full` with `args` in this process's place (argv[0] kept,
/// so a `docker-credential-keyhelper` link still says what it is): on Unix it
/// replaces this process; on Windows this waits and returns its exit code.
fn run_full(args: &[OsString]) -> u8 {
    let full = full_executable();
    platform::cache_whole_file(&full);
    let mut command = Command::new(&full);
    command.args(args.iter().skip(1));
    match platform::hand_over(&mut command, args.first().map(OsString::as_os_str)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!(
                "keyhelper: error: cannot run {}: {error} (hint: keyhelper-full must sit beside keyhelper; \
                 reinstall with `cargo xtask install`)",
                full.display()
            );
            ExitClass::Internal.code()
        }
    }
}
