//! Windows: whether this process serves requests, read from the command
//! line Windows keeps for it (`GetCommandLineW`, which allocates nothing)
//! at the process's first allocation.

use windows_sys::Win32::System::Environment::GetCommandLineW;

/// The longest command line read: a proxy's arguments fit well within it,
/// and a longer line's tail only goes unread (which costs only speed).
const READ: usize = 1024;

/// Whether this process's arguments make it a proxy (see
/// `platform::heap::serves_requests`).
pub fn process_serves_requests() -> bool {
    let mut line = [0u8; READ];
    let mut length = 0;
    // SAFETY: GetCommandLineW returns the process's NUL-terminated command
    // line, which lives as long as the process; it is read up to the NUL.
    unsafe {
        let mut unit = GetCommandLineW();
        while !unit.is_null() && *unit != 0 && length < READ {
            // Non-ASCII units can be part of no argument the scan looks for.
            line[length] = u8::try_from(*unit).ok().filter(u8::is_ascii).unwrap_or(0xff);
            length += 1;
            unit = unit.add(1);
        }
    }
    // Quotes and the blanks outside them become NULs, which no command line
    // holds, so the arguments are what lies between NULs.
    let mut quoted = false;
    for byte in &mut line[..length] {
        match *byte {
            b'"' => {
                quoted = !quoted;
                *byte = 0;
            }
            b' ' | b'\t' if !quoted => *byte = 0,
            _ => {}
        }
    }
    let args = line[..length].split(|byte| *byte == 0).filter(|arg| !arg.is_empty());
    crate::platform::heap::serves_requests(args.skip(1))
}
