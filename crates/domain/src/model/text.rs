//! The character classes the text rules use, as inclusive ranges, so that the OpenAPI document
//! can state each rule as a pattern built from the same list the rule is tested against.

/// Unicode's `White_Space` characters: what [`char::is_whitespace`] and [`str::trim`] use.
pub const WHITE_SPACE: [(char, char); 10] = [
    ('\u{9}', '\u{d}'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// The control characters (general category `Cc`): what [`char::is_control`] refuses.
pub const CONTROL: [(char, char); 2] = [('\u{0}', '\u{1f}'), ('\u{7f}', '\u{9f}')];

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(ranges: &[(char, char)], c: char) -> bool {
        ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
    }

    #[test]
    fn the_lists_are_the_standard_library_s_classes() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            assert_eq!(
                listed(&WHITE_SPACE, c),
                c.is_whitespace(),
                "U+{:04X}",
                c as u32
            );
            assert_eq!(listed(&CONTROL, c), c.is_control(), "U+{:04X}", c as u32);
        }
    }
}
