//! Recognises a secret in a child's arguments even when a plugin disguised
//! it: any run of [`WINDOW`] bytes of the secret, found in an argument as it
//! is, or inside base64 (standard or URL-safe, at any alignment) or hex that
//! the argument holds. Other local users can read every process's argv.

use std::collections::HashSet;

use base64::Engine as _;
use base64::alphabet::{self, Alphabet};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The shortest piece of a secret that counts as revealing it.
pub const WINDOW: usize = 8;
/// Shorter base64 or hex runs are not decoded (they cannot hold a window).
const MIN_ENCODED_RUN: usize = 11;

/// The pieces of one secret to look for.
pub struct SecretPieces {
    whole: Vec<u8>,
    windows: HashSet<[u8; WINDOW]>,
}

impl SecretPieces {
    /// The pieces of `secret`: every window of it, or the whole of a secret
    /// shorter than a window.
    pub fn of(secret: &str) -> Self {
        let whole = secret.as_bytes().to_vec();
        let windows =
            whole.windows(WINDOW).map(|w| w.try_into().expect("a window has WINDOW bytes")).collect();
        Self { whole, windows }
    }

    /// Whether `arg`, or what it encodes, holds a piece of the secret.
    pub fn revealed_by(&self, arg: &str) -> bool {
        views(arg).any(|view| self.found_in(&view))
    }

    fn found_in(&self, bytes: &[u8]) -> bool {
        if self.whole.len() < WINDOW {
            return !self.whole.is_empty() && bytes.windows(self.whole.len()).any(|w| w == self.whole);
        }
        bytes.windows(WINDOW).any(|w| self.windows.contains(w))
    }
}

/// `arg` itself, then the bytes decoded from every base64 or hex run in it.
fn views(arg: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    let base64 = [alphabet::STANDARD, alphabet::URL_SAFE].into_iter().flat_map(move |alphabet| {
        runs(arg, is_base64_char(&alphabet)).flat_map(move |run| base64_views(run, &alphabet))
    });
    let hex = runs(arg, |c| c.is_ascii_hexdigit()).flat_map(hex_views);
    std::iter::once(arg.as_bytes().to_vec()).chain(base64).chain(hex)
}

/// Maximal runs of characters `belongs` accepts, long enough to decode.
fn runs(arg: &str, belongs: impl Fn(char) -> bool) -> impl Iterator<Item = &str> {
    arg.split(move |c| !belongs(c)).filter(|run| run.len() >= MIN_ENCODED_RUN)
}

fn is_base64_char(alphabet: &Alphabet) -> impl Fn(char) -> bool + use<> {
    let chars: Vec<char> = alphabet.as_str().chars().collect();
    move |c| chars.contains(&c)
}

/// `run` decoded from each of the four alignments a secret may start at.
fn base64_views(run: &str, alphabet: &Alphabet) -> Vec<Vec<u8>> {
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let engine = GeneralPurpose::new(alphabet, config);
    (0..4)
        .filter_map(|offset| {
            let part = run.get(offset..)?;
            let whole_quads = part.len() / 4 * 4;
            engine.decode(&part[..whole_quads]).ok()
        })
        .collect()
}

/// `run` decoded as hex from both alignments.
fn hex_views(run: &str) -> Vec<Vec<u8>> {
    (0..2)
        .filter_map(|offset| {
            let part = run.get(offset..)?;
            hex::decode(&part[..part.len() / 2 * 2]).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sk-stored-secret-0123456789";

    fn b64(engine: &GeneralPurpose, bytes: &[u8]) -> String {
        engine.encode(bytes)
    }

    #[test]
    fn finds_the_secret_plain_sliced_and_embedded() {
        let pieces = SecretPieces::of(SECRET);
        for arg in [SECRET, "--token=sk-stored-secret-0123456789", "x0123456789y", "prefix-secret-01"] {
            assert!(pieces.revealed_by(arg), "{arg}");
        }
        for arg in ["account", "get-access-token", "--scope", "api://x/.default", "0123456"] {
            assert!(!pieces.revealed_by(arg), "{arg}");
        }
    }

    #[test]
    fn finds_the_secret_in_base64_and_hex_at_any_alignment() {
        let pieces = SecretPieces::of(SECRET);
        let standard = base64::engine::general_purpose::STANDARD;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for lead in ["", "a", "ab", "abc"] {
            let carried = format!("{lead}{SECRET}");
            for arg in [
                b64(&standard, carried.as_bytes()),
                format!("Basic {}", b64(&standard, format!("user:{carried}").as_bytes())),
                b64(&url, carried.as_bytes()),
                hex::encode(carried.as_bytes()),
                format!("x{}", hex::encode_upper(carried.as_bytes())),
            ] {
                assert!(pieces.revealed_by(&arg), "{lead:?}: {arg}");
            }
        }
        assert!(!pieces.revealed_by(&b64(&standard, b"an unrelated value of some length")));
        assert!(!pieces.revealed_by("deadbeefcafebabe0011223344556677"));
    }

    #[test]
    fn a_short_secret_is_looked_for_whole() {
        let pieces = SecretPieces::of("abc123");
        assert!(pieces.revealed_by("--x=abc123"));
        assert!(!pieces.revealed_by("abc12"));
    }
}
