//! Text that a registry, a token service or a credential helper wrote, made fit to quote in a
//! message: through [`crate::untrusted`], length capped, error bodies shrunk to their gist.

/// How much of a foreign string a message quotes.
pub const QUOTED: usize = 200;

/// `text` on one line, every control and invisible formatting character replaced, cut to
/// `max` characters (`…` marks a cut): the crate's one sanitizer for text from outside.
pub fn clean(text: &str, max: usize) -> String {
    crate::untrusted::short(text, max)
}

/// The gist of an error body, cleaned: the OCI envelope's first code and message, a token
/// service's `details` or `error_description`, else the first non-empty line.
pub fn error_detail(body: &[u8]) -> Option<String> {
    let body = String::from_utf8_lossy(body);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&body) {
        let field = |v: &serde_json::Value, name: &str| {
            v.get(name).and_then(|f| f.as_str()).unwrap_or_default().to_owned()
        };
        // {"errors":[{"code":..,"message":..}]}
        if let Some(first) = value.get("errors").and_then(|e| e.get(0)) {
            let joined = format!("{} {}", field(first, "code"), field(first, "message"));
            return non_empty(&joined);
        }
        for name in ["details", "error_description", "error", "message"] {
            if let Some(found) = non_empty(&field(&value, name)) {
                return Some(found);
            }
        }
    }
    body.lines().find_map(non_empty)
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| clean(text, QUOTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Line breaks, escapes and bidi overrides cannot reach a log line; long text is cut.
    #[test]
    fn control_and_format_characters_are_replaced() {
        let hostile = "ok\r::warning::x\n##[set-output]\u{1b}[31m\u{202E}evil\u{7f}\u{85}";
        let cleaned = clean(hostile, 100);
        assert!(!cleaned.chars().any(|c| c.is_control() || c == '\u{202E}'), "{cleaned:?}");
        assert!(cleaned.starts_with("ok\u{FFFD}::warning::x ##"), "{cleaned:?}");
        let long = "é".repeat(500);
        let cut = clean(&long, 10);
        assert_eq!(cut.chars().count(), 11);
        assert!(cut.ends_with('…'));
        assert_eq!(clean("short", 10), "short");
    }

    /// Error bodies shrink to their code and message, a token service's details, or a line.
    #[test]
    fn error_details() {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[]}]}"#;
        assert_eq!(error_detail(body).as_deref(), Some("UNAUTHORIZED authentication required"));
        assert_eq!(
            error_detail(br#"{"details":"incorrect username or password"}"#).as_deref(),
            Some("incorrect username or password")
        );
        assert_eq!(
            error_detail(br#"{"error":"invalid_grant","error_description":"expired"}"#).as_deref(),
            Some("expired")
        );
        assert_eq!(error_detail(b"\n  too many\nrequests").as_deref(), Some("too many"));
        assert_eq!(error_detail(b""), None);
        let evil = error_detail(b"{\"errors\":[{\"code\":\"X\",\"message\":\"a\\r::error::b\"}]}");
        assert_eq!(evil.as_deref(), Some("X a\u{FFFD}::error::b"));
        assert!(error_detail(&[b'x'; 100_000]).is_some_and(|d| d.chars().count() <= QUOTED + 1));
    }

    proptest::proptest! {
        /// Whatever goes in, nothing hidden and nothing longer than the cap comes out.
        #[test]
        fn cleaned_text_is_visible_and_short(input in "\\PC*|[\\x00-\\x1f\\u{80}-\\u{9f}\\u{202a}-\\u{202e}a:#]*") {
            let out = clean(&input, 50);
            let hidden = out.chars().any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c));
            proptest::prop_assert!(!hidden, "{:?}", out);
            proptest::prop_assert!(out.chars().count() <= 51);
        }
    }
}
