//! "Did you mean …?" for mistyped names.

/// The candidate closest to `word` by edit distance, if it is close enough to
/// be a plausible typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A " (did you mean `x`?)" suffix, or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(word, candidates).map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_but_not_strangers() {
        let names = ["scope", "resource", "tenant", "subscription"];
        assert_eq!(nearest("scoep", names), Some("scope"));
        assert_eq!(nearest("tennant", names), Some("tenant"));
        assert_eq!(nearest("region", names), None);
        assert_eq!(did_you_mean("opnai", ["openai", "azure"]), " (did you mean `openai`?)");
    }
}
