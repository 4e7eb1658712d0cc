//! The `keyhelper-full` executable: the complete program, which the small
//! `keyhelper` executable runs for everything but a cache hit.

use keyhelper_core::platform::FastHeap;
use keyhelper_core::zero_on_free::ZeroOnFree;

/// Every heap block Rust code frees is zeroed, the Rust libraries' included
/// (not those C libraries such as libdbus allocate themselves), on the
/// platform's fast heap.
#[global_allocator]
static ALLOCATOR: ZeroOnFree<FastHeap> = ZeroOnFree(FastHeap);

fn main() -> std::process::ExitCode {
    keyhelper_host::cli::main()
}
