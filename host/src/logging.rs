//! Diagnostics on stderr, never stdout: warnings by default, more with `-v`
//! (debug) or `-vv` (trace), or `KEYHELPER_LOG=debug`. Lines look like
//! `keyhelper: warning: …`.
//!
//! A minimal `tracing` subscriber (keyhelper uses events, not spans): it costs
//! next to nothing to install, which matters on the cache-hit path.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Installs the stderr logger for `verbosity` (`-v` count).
pub fn init(verbosity: u8) {
    let from_env = std::env::var("KEYHELPER_LOG").ok().and_then(|v| v.parse::<Level>().ok());
    let max = match verbosity {
        0 => from_env.unwrap_or(Level::WARN),
        1 => Level::DEBUG,
        _ => Level::TRACE,
    };
    let _ = tracing::subscriber::set_global_default(StderrLogger { max });
}

struct StderrLogger {
    max: Level,
}

impl Subscriber for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(self.max.into())
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let mut line = format!("keyhelper: {level}: ");
        event.record(&mut MessageWriter(&mut line));
        line.push('\n');
        // One write per line, so concurrent keyhelpers do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

struct MessageWriter<'a>(&'a mut String);

impl Visit for MessageWriter<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}
