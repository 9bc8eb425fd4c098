//! Configuration blocks of the README, so a test runs exactly what the README tells users.

/// The first fenced block of language `lang` in the repository's README.md.
pub fn readme_block(lang: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let text = std::fs::read_to_string(path).unwrap();
    let fence = format!("```{lang}\n");
    let start = text
        .find(&fence)
        .unwrap_or_else(|| panic!("README.md has no ```{lang} block"))
        + fence.len();
    let end = text[start..].find("```").expect("the block ends") + start;
    text[start..end].to_string()
}

/// `text` with `from` replaced by `to`; fails when `from` is not there, so a README edit that
/// drops what a test substitutes is noticed.
pub fn substitute(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "README block lost {from:?}:\n{text}");
    text.replace(from, to)
}
