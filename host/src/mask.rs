//! Hides secrets in a stream of output (`keyhelper run --mask`), even when a
//! secret is split across two reads.

/// What a masked secret is replaced with.
pub const CONCEALED: &[u8] = b"<concealed by keyhelper>";

/// A streaming replacer of secrets.
pub struct OutputMasker {
    secrets: Vec<Vec<u8>>,
    pending: Vec<u8>,
}

impl OutputMasker {
    /// A masker for `secrets` (empty ones are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let secrets = secrets.into_iter().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()).collect();
        Self { secrets, pending: Vec::new() }
    }

    /// Feeds `chunk`; returns what can be written now. Up to the longest
    /// secret's length minus one byte is held back, in case a secret starts
    /// there.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let hold = self.secrets.iter().map(Vec::len).max().unwrap_or(1).saturating_sub(1);
        let (out, rest) = self.replace(hold);
        self.pending = rest;
        out
    }

    /// Everything still held back, masked.
    pub fn finish(&mut self) -> Vec<u8> {
        let (out, _) = self.replace(0);
        self.pending.clear();
        out
    }

    /// Masks `pending`, returning the output and the last `hold` bytes that
    /// could still be the start of a secret.
    fn replace(&self, hold: usize) -> (Vec<u8>, Vec<u8>) {
        let data = &self.pending;
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            if let Some(secret) = self.secrets.iter().find(|s| data[i..].starts_with(s)) {
                out.extend_from_slice(CONCEALED);
                i += secret.len();
                continue;
            }
            if data.len() - i <= hold && self.secrets.iter().any(|s| s.starts_with(&data[i..])) {
                return (out, data[i..].to_vec());
            }
            out.push(data[i]);
            i += 1;
        }
        (out, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_in_chunks(secrets: &[&str], input: &str, size: usize) -> String {
        let mut masker = OutputMasker::new(secrets.iter().copied());
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(size) {
            out.extend(masker.push(chunk));
        }
        out.extend(masker.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn masks_secrets_whatever_the_chunking() {
        let input = "key=sk-secret-123 and again sk-secret-123, not sk-secr";
        let expected = "key=<concealed by keyhelper> and again <concealed by keyhelper>, not sk-secr";
        for size in [1, 2, 3, 5, 7, 64] {
            assert_eq!(mask_in_chunks(&["sk-secret-123"], input, size), expected, "chunk size {size}");
        }
    }

    #[test]
    fn masks_several_secrets_and_passes_other_bytes() {
        assert_eq!(
            mask_in_chunks(&["aaa", "bbbb"], "xaaaybbbbz", 3),
            "x<concealed by keyhelper>y<concealed by keyhelper>z"
        );
        assert_eq!(mask_in_chunks(&[], "plain", 2), "plain");
    }
}
