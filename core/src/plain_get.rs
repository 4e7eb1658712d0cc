//! `keyhelper get` in its plain forms, read without clap: the small
//! executable decides from it whether a call is one it may serve, and
//! `keyhelper-full` skips clap for it (clap builds every subcommand's
//! definition before it parses, which cost a cold `get` a tenth of its time).
//! Anything else — global options, `--help`, `--`, an option given twice, a
//! value that does not parse — is left to clap, which answers or refuses it.

use std::ffi::OsString;
use std::time::Duration;

use crate::duration;
use crate::output::Format;

/// `keyhelper get NAME` and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainGet {
    /// The credential (or provider) asked for.
    pub name: String,
    /// `--format`, raw unless given.
    pub format: Format,
    /// Whether a newline follows the secret (no `-n`).
    pub newline: bool,
    /// `--min-ttl`.
    pub min_ttl: Option<Duration>,
    /// `--no-cache`.
    pub no_cache: bool,
}

/// Reads `args` (a whole argv) as `get NAME` with `-n`, `--format F`,
/// `--min-ttl D` and `--no-cache`, each at most once, in any order (`--opt
/// value` or `--opt=value`); `None` for any other command line.
pub fn parse(args: &[OsString]) -> Option<PlainGet> {
    let mut args = args.iter().skip(1).map(|a| a.to_str());
    if args.next()?? != "get" {
        return None;
    }
    let (mut name, mut format, mut newline, mut min_ttl, mut no_cache) = (None, None, true, None, false);
    while let Some(arg) = args.next() {
        let arg = arg?;
        let (option, inline) = match arg.split_once('=') {
            Some((option, value)) if option.starts_with("--") => (option, Some(value)),
            _ => (arg, None),
        };
        let mut value = || inline.map(Some).unwrap_or_else(|| args.next()?).filter(|v| !v.starts_with('-'));
        match option {
            "-n" if newline && inline.is_none() => newline = false,
            "--no-cache" if !no_cache && inline.is_none() => no_cache = true,
            "--format" if format.is_none() => format = Some(Format::parse(value()?)?),
            "--min-ttl" if min_ttl.is_none() => min_ttl = Some(duration::parse(value()?).ok()?),
            other if !other.starts_with('-') && !other.is_empty() && name.is_none() && inline.is_none() => {
                name = Some(other.to_string());
            }
            _ => return None,
        }
    }
    Some(PlainGet { name: name?, format: format.unwrap_or(Format::Raw), newline, min_ttl, no_cache })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("keyhelper").chain(list.iter().copied()).map(OsString::from).collect()
    }

    #[test]
    fn reads_every_option_of_get_in_any_order() {
        let get =
            parse(&args(&["get", "--min-ttl=10m", "work", "-n", "--format", "json", "--no-cache"])).unwrap();
        assert_eq!(
            get,
            PlainGet {
                name: "work".into(),
                format: Format::Json,
                newline: false,
                min_ttl: Some(Duration::from_secs(600)),
                no_cache: true,
            }
        );
        let plain = parse(&args(&["get", "work"])).unwrap();
        assert_eq!(
            (plain.format, plain.newline, plain.min_ttl, plain.no_cache),
            (Format::Raw, true, None, false)
        );
    }

    #[test]
    fn leaves_everything_else_to_clap() {
        for other in [
            &["get"][..],
            &["get", "work", "other"],
            &["get", "work", "-n", "-n"],
            &["get", "work", "--format", "raw", "--format", "json"],
            &["get", "work", "--format", "yaml"],
            &["get", "work", "--format"],
            &["get", "work", "--min-ttl", "soon"],
            &["get", "work", "--no-cache=yes"],
            &["get", "work", "--help"],
            &["get", "--", "work"],
            &["get", "-nv", "work"],
            &["get", ""],
            &["-v", "get", "work"],
            &["--config", "x", "get", "work"],
            &["list"],
        ] {
            assert!(parse(&args(other)).is_none(), "{other:?}");
        }
    }
}
