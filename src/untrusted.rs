//! Text from outside kubeship: pods, events, logs, API and webhook messages, registries, exec
//! plugins. All of it may be written by an attacker, and it ends up in a CI log whose runner
//! obeys commands in it, in Markdown that renders links, and in files other tools parse. These
//! functions make it inert at the point where it enters: registered secrets starred out first
//! (so no cut leaves half of one), control characters replaced (a bare `\r` ends a line for the
//! GitHub runner; ESC drives terminals), lines capped, counts bounded. Each sink then adds its
//! own escaping (`log`, `report`).

/// Longest line kept, in bytes; longer ones are cut at a character boundary and marked.
pub const LINE_CAP: usize = 500;
/// The cap on a line kubeship composed ([`own_line`]).
pub const OWN_LINE_CAP: usize = 2000;

/// What a replaced character becomes.
const REPLACEMENT: char = '\u{FFFD}';

/// Characters that are printable but still change what a reader or a parser sees: the line
/// and paragraph separators, the bidirectional overrides of "Trojan Source", and the invisible
/// format characters (soft hyphen, zero-width spaces and joiners, word joiners, the byte order
/// mark, variation selectors, tags). The GitHub runner's culture-sensitive search for `::`
/// skips the invisible ones, so `:\u{200B}:add-mask::` is a command to it.
fn deceptive(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}'
        | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// One line, safe to print: registered secrets become `***`, line breaks become spaces, every
/// other control character (and the deceptive ones above) becomes U+FFFD, and the result is
/// capped at [`LINE_CAP`] bytes.
pub fn line(text: &str) -> String {
    line_within(text, LINE_CAP)
}

/// A line of kubeship's own making, which may quote several capped lines from outside and
/// still has its advice to give: the same replacements as [`line`], a larger cap.
pub fn own_line(text: &str) -> String {
    line_within(text, OWN_LINE_CAP)
}

/// [`line`] with the cap `cap`.
fn line_within(text: &str, cap: usize) -> String {
    // Secrets out before the cut: a cut through a secret would leave a prefix that no longer
    // matches it, for kubeship's redaction or the runner's mask.
    let redacted = crate::log::redact(text);
    let text = redacted.trim_end_matches(['\n', '\r']);
    let mut out = String::with_capacity(text.len().min(cap + 4));
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            // A CRLF pair is one break; a bare CR is not (see `lines`).
            '\r' if chars.peek() == Some(&'\n') => continue,
            '\n' | '\t' => ' ',
            c if c.is_control() || deceptive(c) => REPLACEMENT,
            c => c,
        };
        if out.len() + c.len_utf8() > cap {
            out.push('…');
            return out;
        }
        out.push(c);
    }
    out
}

/// Multi-line text (a container's log, a long message) as at most `max` lines, the last ones
/// kept (the end of a log says why it stopped). Only `\n` and `\r\n` split lines; a bare `\r`
/// is replaced like any control character, so it cannot start a line of its own in a CI log.
pub fn lines(text: &str, max: usize) -> Vec<String> {
    let all: Vec<&str> = text.split('\n').collect();
    let all = match all.split_last() {
        Some((&"", rest)) => rest,
        _ => &all[..],
    };
    let skip = all.len().saturating_sub(max);
    let mut kept: Vec<String> = all[skip..].iter().map(|l| line(l)).collect();
    if skip > 0 {
        kept.insert(0, format!("({skip} earlier lines left out)"));
    }
    kept
}

/// The first `max` characters of a short identifier-like value (a name, a reason, an image)
/// from outside, on one line.
pub fn short(text: &str, max: usize) -> String {
    let one = line(text);
    if one.chars().count() <= max {
        return one;
    }
    let mut cut: String = one.chars().take(max).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every control character is gone; a CRLF or LF is a space, a bare CR is not a break.
    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(line("a\r\nb\nc"), "a b c");
        assert_eq!(line("GET /\r::warning::x"), "GET /\u{FFFD}::warning::x");
        assert_eq!(line("\u{1b}[31mred\u{7}"), "\u{FFFD}[31mred\u{FFFD}");
        assert_eq!(line("x\u{85}y\u{2028}z\u{202E}"), "x\u{FFFD}y\u{FFFD}z\u{FFFD}");
        assert_eq!(line(":\u{200B}:add-mask::x\u{FEFF}"), ":\u{FFFD}:add-mask::x\u{FFFD}");
        assert_eq!(line("tab\there\n"), "tab here");
    }

    /// Long lines are cut at a character boundary, under the cap.
    #[test]
    fn long_lines_are_capped() {
        let cut = line(&"é".repeat(400));
        assert!(cut.len() <= LINE_CAP + '…'.len_utf8(), "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(line(&"a".repeat(LINE_CAP)), "a".repeat(LINE_CAP));
        // A secret that straddles the cap is starred out before the cut, not cut in half.
        crate::log::secret("STRADDLING-secret-0123456789abcdef");
        let quoted = line(&format!("{} STRADDLING-secret-0123456789abcdef", "x".repeat(480)));
        assert!(!quoted.contains("STRADDLING"), "{quoted}");
        // kubeship's own lines quote capped text and keep their advice after it.
        let own = format!("{} grant it", line(&"q".repeat(2 * LINE_CAP)));
        assert!(own_line(&own).ends_with("grant it"));
        assert!(own_line(&"a\u{7}".repeat(OWN_LINE_CAP)).len() <= OWN_LINE_CAP + 3);
    }

    /// The last lines are kept, with a note of how many were left out; bare CRs stay inside
    /// their line.
    #[test]
    fn multi_line_text_keeps_the_end() {
        let text = "one\ntwo\r\nthree\rfour\nfive\n";
        assert_eq!(lines(text, 10), ["one", "two", "three\u{FFFD}four", "five"]);
        assert_eq!(lines(text, 2), ["(2 earlier lines left out)", "three\u{FFFD}four", "five"]);
        assert!(lines("", 5).is_empty());
    }

    proptest::proptest! {
        /// Whatever comes in, what goes out has no control character, no line break and no
        /// deceptive character, and respects the cap.
        #[test]
        fn any_text_becomes_one_inert_line(text in "(?s).{0,700}") {
            let out = line(&text);
            proptest::prop_assert!(!out.chars().any(|c| c.is_control() || deceptive(c)));
            proptest::prop_assert!(out.len() <= LINE_CAP + '…'.len_utf8());
            for l in lines(&text, 50) {
                proptest::prop_assert!(!l.chars().any(|c| c.is_control() || deceptive(c)));
            }
        }
    }
}
