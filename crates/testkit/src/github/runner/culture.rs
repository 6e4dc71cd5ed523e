//! The runner's culture-sensitive string search, for the ASCII patterns it looks for.
//!
//! `ActionCommand.TryParseV2` and `TryParse` call `string.IndexOf(string)` and
//! `string.StartsWith(string)` without a `StringComparison`, so .NET searches with the current
//! culture (the job's `System.Culture`, `en-US`; `Worker.SetCulture`). On Linux that is ICU:
//! `CompareInfo.Icu.cs` `IcuIndexOfCore` answers ordinally while every character is plain ASCII
//! and otherwise calls `GlobalizationNative_IndexOf` (`pal_collation.c`): `usearch_first` with the
//! `en-US` collator and a grapheme-cluster break iterator (UAX #29 without the CR LF rule).
//! For a pattern of ASCII punctuation such as `::` or `##[` that means:
//! - completely ignorable characters ([`super::ignorable`]: C0/C1 controls but TAB..CR, soft
//!   hyphen, zero-width spaces and joiners, bidi controls, variation selectors, tags, ...) may
//!   sit between the pattern's characters: `":\u{200B}:"` is a match;
//! - a match starts on a grapheme boundary (not after a Prepend character) and ends on one
//!   (not before a combining mark, ZWJ or spacing mark), except that ignorable extenders right
//!   after it are taken into the match.
//!
//! Checked against ICU 72.1 itself (a C probe calling `usearch_first` as .NET does, with .NET's
//! break rules) on a million random strings of up to 30 characters drawn from `:#[]`, letters,
//! spaces, controls, zero-width characters, joiners, combining and spacing marks, Prepend
//! characters, variation selectors, tags, emoji, regional indicators and Hangul jamo: no
//! difference.

use super::ignorable::IGNORABLE;
use unicode_segmentation::GraphemeCursor;

/// Whether ICU's `en-US` collator gives the code point no weight at all.
pub(super) fn is_ignorable(c: char) -> bool {
    IGNORABLE
        .binary_search_by(|&(low, high)| {
            if high < c {
                std::cmp::Ordering::Less
            } else if low > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `CompareInfo.Icu.cs` `s_nonSpecialAsciiChars`: text made only of these is searched ordinally.
fn is_plain_ascii(unit: u16) -> bool {
    matches!(unit, 0x09 | 0x0B | 0x0C | 0x20..=0x7E)
}

/// `text.IndexOf(pattern)` under `en-US`, in UTF-16 units, for a pattern of ASCII punctuation.
pub(super) fn index_of(text: &[u16], pattern: &str) -> Option<usize> {
    let pattern: Vec<u16> = pattern.encode_utf16().collect();
    if text.iter().all(|&u| is_plain_ascii(u)) {
        return text.windows(pattern.len()).position(|w| w == pattern.as_slice());
    }
    let points = code_points(text);
    let boundaries = grapheme_boundaries(&points, text.len());
    let is_boundary = |offset: usize| boundaries.binary_search(&offset).is_ok();
    let ignorable = |k: usize| points[k].1.is_some_and(is_ignorable);
    let offset = |k: usize| points.get(k).map_or(text.len(), |p| p.0);
    'candidates: for start in 0..points.len() {
        if points[start].1.map(|c| c as u32) != Some(u32::from(pattern[0]))
            || !is_boundary(offset(start))
        {
            continue;
        }
        let mut next = start + 1;
        for &unit in &pattern[1..] {
            while next < points.len() && ignorable(next) {
                next += 1;
            }
            if points.get(next).and_then(|p| p.1).map(|c| c as u32) != Some(u32::from(unit)) {
                continue 'candidates;
            }
            next += 1;
        }
        let end = offset(next);
        if is_boundary(end) {
            return Some(offset(start));
        }
        // Not a boundary: the match may still stretch to the next one over ignorable extenders.
        let mut weighted = next;
        while weighted < points.len() && ignorable(weighted) {
            weighted += 1;
        }
        let following = boundaries.iter().copied().find(|&b| b > end).unwrap_or(text.len());
        if following <= offset(weighted) {
            return Some(offset(start));
        }
    }
    None
}

/// The code points of UTF-16 text with their offsets; `None` for a lone surrogate.
fn code_points(text: &[u16]) -> Vec<(usize, Option<char>)> {
    let mut offset = 0;
    char::decode_utf16(text.iter().copied())
        .map(|decoded| {
            let at = offset;
            let point = decoded.ok();
            offset += point.map_or(1, char::len_utf16);
            (at, point)
        })
        .collect()
}

/// Extended grapheme cluster boundaries as UTF-16 offsets, 0 and the end included.
fn grapheme_boundaries(points: &[(usize, Option<char>)], len: usize) -> Vec<usize> {
    // A lone surrogate breaks clusters on both sides in ICU (Control); U+0001 does the same.
    let text: String = points.iter().map(|p| p.1.unwrap_or('\u{1}')).collect();
    let mut utf16_at = Vec::with_capacity(points.len() + 1);
    let mut byte = 0;
    for point in points {
        utf16_at.push((byte, point.0));
        byte += point.1.unwrap_or('\u{1}').len_utf8();
    }
    utf16_at.push((byte, len));
    let mut boundaries = vec![0];
    let mut cursor = GraphemeCursor::new(0, text.len(), true);
    while let Ok(Some(next)) = cursor.next_boundary(&text, 0) {
        if let Ok(k) = utf16_at.binary_search_by_key(&next, |&(b, _)| b) {
            boundaries.push(utf16_at[k].1);
        }
    }
    boundaries
}

#[cfg(test)]
mod tests {
    use super::index_of;

    fn utf16(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    /// Answers of ICU 72.1's `usearch_first` (en-US, .NET's break rules) for these strings.
    #[test]
    fn matches_icu() {
        let cases: [(&str, &str, Option<usize>); 10] = [
            ("::add-mask::x", "::", Some(0)),
            ("add-mask:\u{200B}:x", "::", Some(8)),
            ("add-mask::\u{301}x", "::", None),
            ("#\u{200B}#[set-output name=a]b", "##[", Some(0)),
            ("abc ##[x]", "##[", Some(4)),
            ("a\u{600}##[x]", "##[", None),
            ("##[\u{200D}x", "##[", Some(0)),
            (":\u{1}:", "::", Some(0)),
            (": :", "::", None),
            ("\u{E0020}::", "::", Some(2)),
        ];
        for (text, pattern, expected) in cases {
            assert_eq!(index_of(&utf16(text), pattern), expected, "{text:?}");
        }
    }
}
