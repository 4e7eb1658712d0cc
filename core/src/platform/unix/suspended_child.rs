//! Unix: starting a child that only prepares itself and then executes a
//! program or exits, without copying this process's address space where the
//! system allows it.
//!
//! On Linux the child is started with `clone(CLONE_VM | CLONE_VFORK)`, as
//! glibc's `posix_spawn` does: it runs on a stack of its own in this
//! process's memory, and the calling thread is suspended until the child has
//! executed or exited, so no page table is copied however large the caller
//! is (a `fork` of the small executable costs 0.2–0.3 ms on the development
//! VM, of `keyhelper-full` a millisecond or more). Elsewhere it is a `fork`.
//!
//! A child started with [`start_unwaited`] shares this process's memory
//! without suspending it (Linux: `clone(CLONE_VM)`): its caller goes on, and
//! exits, while the child prepares itself and executes.

/// Bytes of stack for a child between its start and its `exec` or exit.
#[cfg(target_os = "linux")]
const STACK: usize = 64 * 1024;

/// The stack a child runs on: allocated by the parent, which keeps it until
/// the child has executed or exited.
#[cfg(target_os = "linux")]
pub(super) struct ChildStack(Vec<u8>);

/// The stack a child runs on: none here, where a forked child runs on its
/// copy of its parent's.
#[cfg(not(target_os = "linux"))]
pub(super) struct ChildStack;

impl ChildStack {
    /// A fresh stack.
    #[cfg(target_os = "linux")]
    pub(super) fn new() -> Self {
        Self(vec![0u8; STACK])
    }

    /// No stack.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn new() -> Self {
        Self
    }
}

/// What a child runs: only async-signal-safe calls on memory its parent
/// prepared, ending in `exec` or `_exit`; it never returns.
pub(super) type ChildMain = extern "C" fn(*mut libc::c_void) -> libc::c_int;

/// Starts a child running `main(arg)` on `stack`; returns its pid, or -1
/// with `errno` set. On Linux this returns once the child has executed or
/// exited; elsewhere at once.
///
/// # Safety
/// `arg` and everything it points to must stay valid until the child has
/// executed or exited, and `main` must keep to the contract of
/// [`ChildMain`]. The caller should block every signal around the call, so
/// that no handler of this process runs in the child.
#[cfg(target_os = "linux")]
pub(super) unsafe fn start(main: ChildMain, arg: *mut libc::c_void, stack: &mut ChildStack) -> libc::pid_t {
    // SAFETY: the top of `stack`, aligned down to 16 bytes, is inside the
    // allocation; CLONE_VFORK suspends this thread until the child no longer
    // runs on it, and the caller keeps `arg` alive as documented.
    unsafe {
        let top = stack.0.as_mut_ptr().add(stack.0.len());
        let top = top.sub(top as usize % 16);
        libc::clone(main, top.cast(), libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD, arg)
    }
}

/// Starts a child running `main(arg)` on `stack`; returns its pid, or -1
/// with `errno` set. On Linux this returns once the child has executed or
/// exited; elsewhere at once.
///
/// # Safety
/// `arg` and everything it points to must stay valid until the child has
/// executed or exited, and `main` must keep to the contract of
/// [`ChildMain`]. The caller should block every signal around the call, so
/// that no handler of this process runs in the child.
#[cfg(not(target_os = "linux"))]
pub(super) unsafe fn start(main: ChildMain, arg: *mut libc::c_void, _stack: &mut ChildStack) -> libc::pid_t {
    // SAFETY: fork has no preconditions; the child has its own copy of
    // everything `arg` points to, and `main` never returns.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            main(arg);
            libc::_exit(127);
        }
        pid
    }
}

/// Starts a child running `main(arg)` on `stack` and returns its pid at once,
/// or -1 with `errno` set: the child shares this process's memory (Linux:
/// `clone(CLONE_VM)`, no page table copied) and runs beside its caller until
/// it executes or exits; elsewhere it is a `fork`.
///
/// # Safety
/// As for [`start`], and more: the child reads memory this process goes on
/// using, so `arg`, everything it points to and `stack` must never be
/// written or freed again (leak them), and `main` must write nothing the
/// caller reads.
#[cfg(target_os = "linux")]
pub(super) unsafe fn start_unwaited(
    main: ChildMain,
    arg: *mut libc::c_void,
    stack: &'static mut ChildStack,
) -> libc::pid_t {
    // SAFETY: the top of `stack`, aligned down to 16 bytes, is inside the
    // allocation, which is never freed; the caller keeps `arg` as documented.
    unsafe {
        let top = stack.0.as_mut_ptr().add(stack.0.len());
        let top = top.sub(top as usize % 16);
        libc::clone(main, top.cast(), libc::CLONE_VM | libc::SIGCHLD, arg)
    }
}

/// Starts a child running `main(arg)` and returns its pid at once, or -1
/// with `errno` set: a `fork`, whose child has its own copy of everything.
///
/// # Safety
/// As for [`start`].
#[cfg(not(target_os = "linux"))]
pub(super) unsafe fn start_unwaited(
    main: ChildMain,
    arg: *mut libc::c_void,
    stack: &'static mut ChildStack,
) -> libc::pid_t {
    // SAFETY: as for `start`, which forks and returns at once here.
    unsafe { start(main, arg, stack) }
}
