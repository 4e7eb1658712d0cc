//! Unix: the process groups of the provider commands running now, killed
//! whole when keyhelper is told to stop (SIGINT, SIGTERM, SIGHUP), so no `az`
//! or anything it started outlives the keyhelper that ran it. (SIGKILL
//! cannot be caught: there the parent-death signal stops the command itself.)
//!
//! The handler is installed only while a command runs. It kills the groups,
//! puts back the disposition it found, and raises the signal again, so what
//! would have happened without it still happens: the default action ends
//! keyhelper, or the handler that was there (the proxy's graceful stop) runs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

/// Most commands tracked at once (one per thread running a provider).
const SLOTS: usize = 32;
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

static GROUPS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

/// How many commands run, and the dispositions found when the first started.
struct Installed {
    running: usize,
    previous: [Option<libc::sigaction>; SIGNALS.len()],
}

static INSTALLED: Mutex<Installed> = Mutex::new(Installed { running: 0, previous: [None; SIGNALS.len()] });

/// The dispositions to put back, readable from the handler without a lock.
static mut PREVIOUS: [libc::sigaction; SIGNALS.len()] = [const { zeroed_action() }; SIGNALS.len()];

const fn zeroed_action() -> libc::sigaction {
    // SAFETY: sigaction is a plain C struct for which all-zero bytes are valid.
    unsafe { std::mem::MaybeUninit::zeroed().assume_init() }
}

/// A command's process group, tracked until dropped.
pub struct Tracked {
    slot: Option<usize>,
}

/// Tracks the process group `pgid` while the returned guard lives.
pub fn track(pgid: libc::pid_t) -> Tracked {
    let slot =
        GROUPS.iter().position(|g| g.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst).is_ok());
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if installed.running == 0 {
        install(&mut installed);
    }
    installed.running += 1;
    Tracked { slot }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            GROUPS[slot].store(0, Ordering::SeqCst);
        }
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        installed.running -= 1;
        if installed.running == 0 {
            for (signal, previous) in SIGNALS.iter().zip(installed.previous.iter_mut()) {
                if let Some(previous) = previous.take() {
                    // SAFETY: puts back a disposition sigaction returned earlier.
                    unsafe { libc::sigaction(*signal, &previous, std::ptr::null_mut()) };
                }
            }
        }
    }
}

fn install(installed: &mut Installed) {
    for (index, signal) in SIGNALS.iter().enumerate() {
        let mut current = zeroed_action();
        // SAFETY: reads the current disposition into a valid struct.
        if unsafe { libc::sigaction(*signal, std::ptr::null(), &mut current) } != 0
            || current.sa_sigaction == libc::SIG_IGN
        {
            continue;
        }
        // SAFETY: written before the handler that reads it is installed, and
        // only under INSTALLED's lock.
        unsafe { (*std::ptr::addr_of_mut!(PREVIOUS))[index] = current };
        let mut ours = zeroed_action();
        ours.sa_sigaction = on_stop as *const () as libc::sighandler_t;
        // SAFETY: installs a handler that makes only async-signal-safe calls.
        unsafe {
            libc::sigemptyset(&mut ours.sa_mask);
            libc::sigaction(*signal, &ours, std::ptr::null_mut());
        }
        installed.previous[index] = Some(current);
    }
}

extern "C" fn on_stop(signal: libc::c_int) {
    for group in &GROUPS {
        let pgid = group.load(Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill(2) is async-signal-safe; a negative pid names a group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
    if let Some(index) = SIGNALS.iter().position(|s| *s == signal) {
        // SAFETY: sigaction and raise are async-signal-safe; PREVIOUS[index]
        // was written before this handler was installed for `signal`.
        unsafe {
            libc::sigaction(signal, &(*std::ptr::addr_of!(PREVIOUS))[index], std::ptr::null_mut());
            libc::raise(signal);
        }
    }
}
