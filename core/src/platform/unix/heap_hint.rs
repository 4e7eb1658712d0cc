//! Linux with glibc: whether this process serves requests, read from `argv`
//! before `main` and before Rust's first allocation. glibc calls each
//! `.init_array` entry with `argc`, `argv` and `envp`, as std itself relies
//! on (musl calls them with nothing, so there the answer stays no); the scan
//! reads the C strings in place and allocates nothing.

use std::ffi::{CStr, c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

static SERVES: AtomicBool = AtomicBool::new(false);

/// Whether this process's arguments make it a proxy (see
/// `platform::heap::serves_requests`). False if asked before the C runtime
/// ran the initialisers.
pub fn process_serves_requests() -> bool {
    SERVES.load(Ordering::Relaxed)
}

extern "C" fn note_arguments(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    if argv.is_null() {
        return;
    }
    let count = usize::try_from(argc).unwrap_or(0);
    let args = (1..count).map(|i| {
        // SAFETY: the C runtime passes `argc` valid, NUL-terminated entries.
        unsafe { CStr::from_ptr(*argv.add(i)) }.to_bytes()
    });
    SERVES.store(crate::platform::heap::serves_requests(args), Ordering::Relaxed);
}

#[used]
#[unsafe(link_section = ".init_array")]
static NOTE_ARGUMENTS: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = note_arguments;
