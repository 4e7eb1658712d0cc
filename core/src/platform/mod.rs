//! What differs between operating systems, behind one interface: today the
//! detached background renewer and the file descriptor it inherits. (More
//! of keyhelper's OS-specific code moves here as it is ported.)

mod unix;

pub use self::unix::{claim_from_environment, die_with_parent, spawn_renewer};
