//! Human-readable progress on standard error; standard output is kept for the result. Under
//! GitHub Actions the same lines become workflow commands (the runner reads them on both
//! streams): `::group::` per phase, `::warning::`, `::error title=…::`, `::debug::`, and
//! `::add-mask::` for the secrets kubeship is given.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);
static GITHUB: AtomicBool = AtomicBool::new(false);
static IN_GROUP: AtomicBool = AtomicBool::new(false);

/// Turns debug lines on (`RUNNER_DEBUG=1` under GitHub Actions, `KUBESHIP_DEBUG=1` elsewhere).
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// Writes workflow commands (`GITHUB_ACTIONS=true`).
pub fn set_github(on: bool) {
    GITHUB.store(on, Ordering::Relaxed);
}

fn github() -> bool {
    GITHUB.load(Ordering::Relaxed)
}

/// A progress line.
pub fn info(message: impl Display) {
    eprintln!("{message}");
}

/// Something the user should look at, that does not stop the run.
pub fn warn(message: impl Display) {
    if github() {
        eprintln!("::warning::{}", escape_data(&message.to_string()));
    } else {
        eprintln!("warning: {message}");
    }
}

/// A failure: what went wrong and what to do.
pub fn error(message: impl Display) {
    error_titled("kubeship", message);
}

/// A failure with the title of its annotation under GitHub Actions.
pub fn error_titled(title: &str, message: impl Display) {
    if github() {
        // An annotation inside a collapsed group is easy to miss in the log; close it first.
        end_group();
        eprintln!(
            "::error title={}::{}",
            escape_property(title),
            escape_data(&message.to_string())
        );
    } else {
        eprintln!("error: {message}");
    }
}

/// Detail for debugging a run.
pub fn debug(message: impl Display) {
    if !DEBUG.load(Ordering::Relaxed) {
        return;
    }
    if github() {
        eprintln!("::debug::{}", escape_data(&message.to_string()));
    } else {
        eprintln!("debug: {message}");
    }
}

/// Starts a phase: a collapsible group under GitHub Actions (closing the one before), a
/// heading line elsewhere.
pub fn group(title: impl Display) {
    if github() {
        end_group();
        eprintln!("::group::{}", escape_data(&title.to_string()));
        IN_GROUP.store(true, Ordering::Relaxed);
    } else {
        eprintln!("== {title}");
    }
}

/// Ends the open group, if any.
pub fn end_group() {
    if IN_GROUP.swap(false, Ordering::Relaxed) {
        eprintln!("::endgroup::");
    }
}

/// Asks the runner to hide `secret` in every log line after this one. Never used for an
/// output: the runner drops job outputs that hold a masked value.
pub fn mask(secret: &str) {
    // Masking a short or blank value would star out ordinary words all over the log.
    if github() && secret.trim().len() >= 4 {
        for line in mask_commands(secret) {
            eprintln!("{line}");
        }
    }
}

/// `::add-mask::` lines for a secret: the value, and each of its lines on their own (the
/// runner masks those anyway; a line of PEM could otherwise survive the escaping).
fn mask_commands(secret: &str) -> Vec<String> {
    let mut commands = vec![format!("::add-mask::{}", escape_data(secret))];
    if secret.contains(['\n', '\r']) {
        commands.extend(
            secret
                .split(['\n', '\r'])
                .map(str::trim)
                .filter(|l| l.len() >= 4)
                .map(|l| format!("::add-mask::{}", escape_data(l))),
        );
    }
    commands
}

/// The runner's escaping of a command's data (`%` first).
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// The runner's escaping of a command's property value.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runner's `ActionCommand.Unescape` for data and properties.
    fn unescape(text: &str) -> String {
        text.replace("%0D", "\r")
            .replace("%0A", "\n")
            .replace("%3A", ":")
            .replace("%2C", ",")
            .replace("%25", "%")
    }

    /// Escaped text keeps no line break (a command is one line) and reads back unchanged.
    #[test]
    fn escaping_round_trips() {
        for text in ["plain", "100%25 done\nnext", "a:b,c%", "\r\n%0A"] {
            let data = escape_data(text);
            assert!(!data.contains(['\n', '\r']));
            let property = escape_property(text);
            assert!(!property.contains([':', ',', '\n']));
            assert_eq!(unescape(&property), text);
        }
        assert_eq!(escape_data("50%\nx"), "50%25%0Ax");
    }

    /// A multi-line secret is masked whole and line by line.
    #[test]
    fn multi_line_secret_masks() {
        let commands = mask_commands("-----BEGIN KEY-----\nMIIabc\n-----END KEY-----\n");
        assert_eq!(commands.len(), 4);
        assert!(commands[0].starts_with("::add-mask::-----BEGIN KEY-----%0AMIIabc"));
        assert_eq!(commands[2], "::add-mask::MIIabc");
        assert_eq!(mask_commands("s3cret"), ["::add-mask::s3cret"]);
    }
}
