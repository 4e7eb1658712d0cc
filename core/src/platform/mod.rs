//! Everything that differs between operating systems, behind one interface,
//! and the only place in keyhelper's source that asks which OS it runs on:
//! private files and directories, recognising a replaced file, handing over
//! from the small executable to `keyhelper-full`, running a program in
//! keyhelper's place, forwarding stop signals, the detached background
//! renewer and the claim it inherits, finding and running a provider's
//! command bound to keyhelper's life and killing whatever it started, the
//! variables a program needs, the OS keyring, opening the browser, writing
//! to stdout without a buffer, and keeping secrets out of crash dumps.
//! `unix/` implements it for Linux and macOS, `windows/` for Windows.

#[cfg(all(feature = "fast-heap", any(all(target_os = "linux", target_env = "gnu"), windows)))]
mod heap;
/// The system's allocator, where mimalloc is not built in (see `heap.rs`).
#[cfg(not(all(feature = "fast-heap", any(all(target_os = "linux", target_env = "gnu"), windows))))]
mod heap {
    pub use std::alloc::System as ProcessHeap;

    /// The allocator this process allocates from, for diagnostics.
    pub fn heap_in_use() -> &'static str {
        "system"
    }
}
pub mod process;
#[cfg(unix)]
mod unix;
#[cfg(not(target_os = "linux"))]
mod watched_child;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
use self::unix as os;
#[cfg(windows)]
use self::windows as os;

use self::os::run_child;
#[cfg(feature = "async")]
pub use self::os::stop_requested;
pub use self::os::{
    BASE_CHILD_ENV, KEYRING_NAME, PLUGIN_CODE_NEEDS_UNWIND_INFO, URL_OPENER, args_of_main, cache_whole_file,
    claim_from_environment, create_private_dir, current_stamp, exit_code, find_executable, forbid_core_dumps,
    forward_stop_signals_to, hand_over, keyring_may_answer, open_private, prepare_bare_process,
    process_is_running, read_file, read_file_stamped, read_private_file, same_file, spawn_renewer, sync_dir,
    verify_owned, write_to_stdout,
};

/// The heap `keyhelper-full` allocates from (under its zeroing wrapper):
/// with the `fast-heap` feature on glibc Linux and Windows, mimalloc for a
/// proxy and the system's allocator for everything else, chosen per process
/// (see `heap`); the system's allocator elsewhere and in the small
/// executable. `heap_in_use` names the one this process uses.
pub use self::heap::{ProcessHeap, heap_in_use};

/// Which permissions a file keyhelper relies on may give others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// None at all (a key, a secret store, a private directory).
    Private,
    /// Others may read it but not change it (compiled plugin code).
    ReadOnly,
}
