//! What differs between operating systems, behind one interface: the
//! detached background renewer and the claim it inherits, finding and
//! running a provider's command (bound to keyhelper's life where the OS
//! allows). (More of keyhelper's OS-specific code moves here as it is
//! ported.)

mod child_groups;
pub mod process;
#[cfg(target_os = "linux")]
mod process_linux;
#[cfg(all(unix, not(target_os = "linux")))]
mod process_std;
mod unix;

#[cfg(target_os = "linux")]
use self::process_linux::run_child;
#[cfg(all(unix, not(target_os = "linux")))]
use self::process_std::run_child;
pub use self::unix::{
    claim_from_environment, find_executable, forbid_core_dumps, process_is_running, spawn_renewer,
};
