//! One line on stderr when a provider keeps a person waiting: a fetch still
//! running after [`NOTICE_AFTER`] says what it waits for ("waiting for az…"),
//! when stderr is a terminal. Programs calling keyhelper see nothing.

use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

/// How long a fetch runs before the notice.
pub const NOTICE_AFTER: Duration = Duration::from_secs(1);

/// Prints the notice unless dropped within [`NOTICE_AFTER`].
pub struct WaitingNotice {
    _done: Option<Sender<()>>,
}

impl WaitingNotice {
    /// Starts the clock for a fetch that waits on `what` (e.g. `az`).
    pub fn start(what: String) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { _done: None };
        }
        let (done, finished) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if finished.recv_timeout(NOTICE_AFTER) == Err(RecvTimeoutError::Timeout) {
                eprintln!("keyhelper: waiting for {what}…");
            }
        });
        Self { _done: Some(done) }
    }
}
