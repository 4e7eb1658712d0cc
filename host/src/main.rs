//! The `keyhelper-full` executable: the complete program, which the small
//! `keyhelper` executable runs for everything but a cache hit.
//!
//! Like the small one it starts at the C `main`, skipping what Rust's runtime
//! does before its `main`: on Linux that is reading `/proc/self/maps` (which
//! the kernel writes out on each read) for the main thread's stack guard, and
//! installing stack-overflow handlers, 0.05 ms of every cold `get`. What of
//! it matters is done by [`platform::prepare_bare_process`], and
//! `std::process::exit` flushes stdout as a return from Rust's `main` would.

#![no_main]

use std::ffi::{c_char, c_int};

use keyhelper_core::failure::ExitClass;
use keyhelper_core::platform::{self, ProcessHeap};
use keyhelper_core::zero_on_free::ZeroOnFree;

/// Every heap block Rust code frees is zeroed, the Rust libraries' included
/// (not those C libraries such as libdbus allocate themselves), on the heap
/// chosen for what this process does (mimalloc for a proxy).
#[global_allocator]
static ALLOCATOR: ZeroOnFree<ProcessHeap> = ZeroOnFree(ProcessHeap);

/// The process's entry point, called by the C runtime (std's environment
/// works as usual; its arguments only with glibc, so they are read here).
#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    platform::prepare_bare_process();
    // SAFETY: these are the C runtime's own `argc` and `argv`.
    let args = unsafe { platform::args_of_main(argc, argv) };
    // A panic has printed its message; it ends the process as an internal
    // error (exit 1), not as an abort at the edge of this C function.
    let code =
        std::panic::catch_unwind(|| keyhelper_host::cli::main(args)).unwrap_or(ExitClass::Internal.code());
    std::process::exit(code.into())
}
