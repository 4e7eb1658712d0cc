//! keyhelper-full's heap, chosen once per process by what the process is
//! for. A proxy (`keyhelper proxy`, `keyhelper run --proxy`) frees and
//! reallocates hyper's 8 KiB read buffers for every request and gets
//! mimalloc; everything else runs for milliseconds, where mimalloc's start-up
//! (its arena bitmaps, the free lists of fresh pages: 113 more page faults)
//! costs more than it saves, and gets the system's allocator.
//!
//! Measured on one machine (`cargo xtask bench proxy`, alternating builds):
//! at 64 connections the proxy served 0.87–0.93× nginx's requests/s on
//! mimalloc and 0.82–0.87× on glibc's allocator; a cold
//! `keyhelper-full get --no-cache` took 3.6–3.7 ms on glibc's allocator and
//! 4.0–4.4 ms on mimalloc.
//!
//! The choice is taken at the process's first allocation and never changes,
//! so every block is freed by the allocator that made it. A wrong guess
//! costs only speed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

use mimalloc::MiMalloc;

/// The allocator this process chose at its first allocation: mimalloc for a
/// proxy, the system's for everything else (see the module's notes).
pub struct ProcessHeap;

static CHOICE: Choice = Choice::new();

/// Whether a process with these arguments (`argv[0]` excluded) serves
/// requests until it is stopped: its command is `proxy`, or it has a
/// `--proxy` option. The scan stops at `--`, after which the arguments
/// belong to the program `run` starts. It may also say yes for an argument
/// that is a value (`get proxy`), which costs only speed.
pub fn serves_requests<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> bool {
    args.into_iter()
        .take_while(|arg| *arg != b"--")
        .any(|arg| arg == b"proxy" || arg == b"--proxy" || arg.starts_with(b"--proxy="))
}

/// The allocator a process uses, decided once.
struct Choice(AtomicU8);

const UNDECIDED: u8 = 0;
const SYSTEM: u8 = 1;
const MIMALLOC: u8 = 2;

impl Choice {
    const fn new() -> Self {
        Self(AtomicU8::new(UNDECIDED))
    }

    /// Whether this process allocates from mimalloc; the first call decides,
    /// asking `serves` (every later call returns the same answer, whichever
    /// thread asks).
    fn mimalloc(&self, serves: impl FnOnce() -> bool) -> bool {
        let chosen = match self.0.load(Ordering::Acquire) {
            UNDECIDED => {
                let wanted = if serves() { MIMALLOC } else { SYSTEM };
                match self.0.compare_exchange(UNDECIDED, wanted, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) if wanted == MIMALLOC => {
                        start_mimalloc();
                        wanted
                    }
                    Ok(_) => wanted,
                    Err(earlier) => earlier,
                }
            }
            chosen => chosen,
        };
        chosen == MIMALLOC
    }
}

// mimalloc's own start-up, and whether it is still to come.
unsafe extern "C" {
    fn _mi_preloading() -> bool;
    fn _mi_auto_process_init();
}

/// Starts mimalloc before its first allocation, where it was built without
/// its start-up constructor. The shipped Linux build is
/// (`-DMI_PRIM_HAS_PROCESS_ATTACH`, see xtask's `ShippedBuild`): the
/// constructor runs in every process, before `main`, whether it will use
/// mimalloc or not, and cost a cold `get` 0.1 ms (reading
/// `/proc/sys/vm/overcommit_memory` and the huge-page setting, scanning the
/// environment for each of its options, mapping its page map). Built with
/// it, mimalloc has started already and this does nothing.
fn start_mimalloc() {
    // SAFETY: mimalloc's process start, which its constructor would have
    // called; `_mi_preloading` says whether that is still to do. Called once
    // (from the decision, before mimalloc's first allocation), on the thread
    // that made it.
    unsafe {
        if _mi_preloading() {
            _mi_auto_process_init();
        }
    }
}

/// The allocator this process allocates from, for diagnostics: `mimalloc`
/// or `system`.
pub fn heap_in_use() -> &'static str {
    if on_mimalloc() { "mimalloc" } else { "system" }
}

fn on_mimalloc() -> bool {
    CHOICE.mimalloc(super::os::process_serves_requests)
}

// SAFETY: every call goes to one allocator, the same for the life of the
// process (`Choice` never changes its answer), so each block is freed by the
// allocator that made it, under that allocator's contract. `realloc` is
// GlobalAlloc's default (allocate, copy, `dealloc`), which stays on it too.
unsafe impl GlobalAlloc for ProcessHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        unsafe { if on_mimalloc() { MiMalloc.alloc(layout) } else { System.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        unsafe { if on_mimalloc() { MiMalloc.alloc_zeroed(layout) } else { System.alloc_zeroed(layout) } }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received; `ptr` came from the same allocator.
        unsafe { if on_mimalloc() { MiMalloc.dealloc(ptr, layout) } else { System.dealloc(ptr, layout) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serves(args: &[&str]) -> bool {
        serves_requests(args.iter().map(|arg| arg.as_bytes()))
    }

    #[test]
    fn a_proxy_serves_requests() {
        assert!(serves(&["proxy", "work", "--upstream", "http://127.0.0.1:1"]));
        assert!(serves(&["-v", "--config", "/c.toml", "proxy", "work"]));
        assert!(serves(&["run", "--proxy", "openai", "--", "aider"]));
        assert!(serves(&["run", "--proxy=openai", "--", "aider"]));
    }

    #[test]
    fn short_commands_and_the_programs_arguments_do_not() {
        assert!(!serves(&["get", "work"]));
        assert!(!serves(&["get", "work", "--no-cache"]));
        assert!(!serves(&["run", "--env", "OPENAI_API_KEY=openai", "--", "tool", "--proxy", "x"]));
        assert!(!serves(&["run", "--mask", "--env", "K=work", "--", "proxy"]));
        assert!(!serves(&["--version"]));
        assert!(!serves(&[]));
    }

    #[test]
    fn the_first_answer_holds_for_the_life_of_the_process() {
        let choice = Choice::new();
        assert!(choice.mimalloc(|| true));
        assert!(choice.mimalloc(|| false), "a later question must not change the heap");
        let choice = Choice::new();
        assert!(!choice.mimalloc(|| false));
        assert!(!choice.mimalloc(|| true));
    }

    #[test]
    fn blocks_go_back_to_the_allocator_that_made_them() {
        let layout = Layout::from_size_align(8192, 16).unwrap();
        // SAFETY: each block is written within its size and freed once, by
        // the same `ProcessHeap` (so by the allocator that made it).
        unsafe {
            let block = ProcessHeap.alloc(layout);
            assert!(!block.is_null());
            block.write_bytes(7, layout.size());
            let grown = ProcessHeap.realloc(block, layout, 3 * 8192);
            assert_eq!(*grown.add(8191), 7);
            ProcessHeap.dealloc(grown, Layout::from_size_align(3 * 8192, 16).unwrap());
        }
    }
}
