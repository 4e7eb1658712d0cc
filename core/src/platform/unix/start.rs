//! Unix: what a process that starts at the C `main` (the small executable)
//! needs of what Rust's runtime would have done first.

/// Makes sure descriptors 0, 1 and 2 are open (on `/dev/null` if they were
/// closed), so no file keyhelper opens gets one of their numbers and is
/// written to as stdout; and ignores SIGPIPE, so writing to a closed pipe is
/// an error to report rather than death.
pub fn prepare_bare_process() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: `fds` is a valid array of three pollfd for poll to fill in.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    for pollfd in fds {
        let closed = if polled == -1 {
            // SAFETY: F_GETFD on a descriptor number has no memory-safety preconditions.
            unsafe { libc::fcntl(pollfd.fd, libc::F_GETFD) == -1 }
        } else {
            pollfd.revents & libc::POLLNVAL != 0
        };
        // SAFETY: opening /dev/null takes the lowest free descriptor, the closed one.
        if closed && unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == -1 {
            // SAFETY: with no safe stdio, stop before anything is written.
            unsafe { libc::abort() };
        }
    }
    // SAFETY: sets a signal's disposition to "ignore"; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
