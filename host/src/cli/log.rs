//! `keyhelper log [--follow] [--json]`: the audit log, oldest first — one
//! line per secret served, never the secret.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use clap::Args;
use keyhelper_core::audit::AuditLog;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::private_fs;
use serde_json::Value;

use crate::environment::Environment;

/// How often `--follow` looks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Arguments of `keyhelper log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Keep printing lines as they are appended (until interrupted).
    #[arg(long, short)]
    pub follow: bool,
    /// Print the log's own JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `log`.
pub fn run(env: &Environment, args: &LogArgs) -> Result<(), Failure> {
    let log = AuditLog::new(&env.dirs.state_dir);
    let failed = |e: std::io::Error| {
        Failure::new(ExitClass::Store, format!("cannot read the audit log {}: {e}", log.path().display()))
    };
    if let Ok(rotated) = std::fs::read_to_string(log.rotated_path()) {
        print_lines(&rotated, args.json);
    }
    let mut offset = 0;
    let mut identity = None;
    loop {
        match std::fs::File::open(log.path()) {
            Ok(mut file) => {
                let length = file.metadata().map_err(failed)?.len();
                let replaced = identity.as_ref().is_some_and(|seen| !private_fs::same_file(seen, &file));
                if replaced || length < offset {
                    offset = 0; // rotated: the new file starts over
                }
                file.seek(SeekFrom::Start(offset)).map_err(failed)?;
                let mut text = String::new();
                file.read_to_string(&mut text).map_err(failed)?;
                // Only whole lines; a line being written is read next time.
                let whole = text.rfind('\n').map_or(0, |end| end + 1);
                print_lines(&text[..whole], args.json);
                offset += whole as u64;
                identity = Some(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !args.follow {
                    eprintln!("keyhelper: the audit log {} is empty", log.path().display());
                }
            }
            Err(e) => return Err(failed(e)),
        }
        if !args.follow {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

fn print_lines(text: &str, json: bool) {
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if json {
            out.push_str(line);
        } else {
            out.push_str(&describe(line));
        }
        out.push('\n');
    }
    print!("{out}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// `2026-12-02T03:15:00Z  get     work (azure)  cache hit  served`.
fn describe(line: &str) -> String {
    let Ok(record) = serde_json::from_str::<Value>(line) else { return format!("(unreadable) {line}") };
    let text = |key: &str| record[key].as_str().unwrap_or("-").to_string();
    let provider = record["provider"].as_str().map(|p| format!(" ({p})")).unwrap_or_default();
    let cache = record["cache"].as_str().map(|c| format!("  cache {c}")).unwrap_or_default();
    let requests = record["requests"].as_u64().map(|n| format!(", {n} requests")).unwrap_or_default();
    format!(
        "{}  {:<7} {}{provider}{cache}  {}{requests}",
        text("time"),
        text("mode"),
        text("credential"),
        text("outcome")
    )
}
