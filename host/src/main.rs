//! The `keyhelper-full` executable: the complete program, which the small
//! `keyhelper` executable runs for everything but a cache hit.

use keyhelper_core::platform::ProcessHeap;
use keyhelper_core::zero_on_free::ZeroOnFree;

/// Every heap block Rust code frees is zeroed, the Rust libraries' included
/// (not those C libraries such as libdbus allocate themselves), on the heap
/// chosen for what this process does (mimalloc for a proxy).
#[global_allocator]
static ALLOCATOR: ZeroOnFree<ProcessHeap> = ZeroOnFree(ProcessHeap);

fn main() -> std::process::ExitCode {
    keyhelper_host::cli::main()
}
