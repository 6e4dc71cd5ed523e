//! Human-readable progress on standard error; standard output is kept for the result line.
//!
//! Under GitHub Actions the runner reads every line of both streams for workflow commands
//! (`actions/runner` `ActionCommandManager`): it trims leading whitespace before looking for
//! `::`, ends a line at a bare `\r`, and still honours the legacy `##[name]` form. So:
//! - kubeship's own commands (`::group::`, `::warning::`, `::error title=…::`, `::debug::`,
//!   `::add-mask::`) are written only here, their data escaped as the runner unescapes it;
//! - text from outside (see [`crate::untrusted`]) is printed only inside
//!   `::stop-commands::<fresh random token>` … `::<token>::`, with none of our commands inside;
//!   a plain line that could still read as a command is put in such a block too;
//! - every line goes through one redaction pass: the secrets registered with [`secret`]
//!   become `***`, whatever printed them, and control characters are replaced.

use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);
static GITHUB: AtomicBool = AtomicBool::new(false);
static IN_GROUP: AtomicBool = AtomicBool::new(false);
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

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

/// Shorter values are not treated as secrets: hiding them would star out ordinary words all
/// over the log (the runner masks every occurrence).
const SHORTEST_SECRET: usize = 4;

/// Registers a secret: from now on it is replaced by `***` in everything kubeship prints or
/// writes, and under GitHub Actions the runner is asked to hide it too (`::add-mask::`, never
/// used for an output: the runner drops job outputs that hold a masked value).
pub fn secret(value: &str) {
    let mut parts: Vec<&str> = vec![value.trim()];
    // A multi-line secret (a PEM key) is masked whole and line by line: the runner masks
    // line by line anyway, and a single line of it must not survive either.
    if value.contains(['\n', '\r']) {
        parts.extend(value.split(['\n', '\r']).map(str::trim));
    }
    // The forms a request or a report carries it in: a form body (`~` is `%7E` there, and
    // every Entra client secret has one), and JSON.
    let encoded: Vec<String> = parts
        .iter()
        .flat_map(|part| {
            [
                form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>(),
                serde_json::to_string(part)
                    .map(|j| j.trim_matches('"').to_owned())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    parts.extend(encoded.iter().map(String::as_str));
    let mut secrets = SECRETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for part in parts {
        if part.len() < SHORTEST_SECRET || secrets.iter().any(|s| s == part) {
            continue;
        }
        secrets.push(part.to_owned());
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        if github() {
            eprintln!("::add-mask::{}", escape_data(part));
        }
    }
}

/// Registers a user name and password: the password, and the `Authorization: Basic` value
/// they make (a server that echoes the request would show that one).
pub fn basic_credentials(username: &str, password: &str) {
    use base64::Engine as _;
    secret(password);
    secret(&base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")));
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut text = text.to_owned();
    for secret in secrets.iter() {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

/// A message made printable: redacted, then each of its lines freed of control characters.
pub fn clean(message: &str) -> String {
    redact(message).split('\n').map(crate::untrusted::own_line).collect::<Vec<_>>().join("\n")
}

/// A progress line kubeship composed. Anything it quotes from outside should already have
/// been through [`crate::untrusted`]; should a line still look like a workflow command to the
/// runner, it is printed where commands are stopped.
pub fn info(message: impl Display) {
    print(&info_lines(&clean(&message.to_string()), github()));
}

/// The lines [`info`] prints.
pub fn info_lines(text: &str, github: bool) -> Vec<String> {
    let lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    if github && lines.iter().any(|l| could_be_command(l)) { stopped(&[], &lines) } else { lines }
}

/// Lines from outside kubeship (a container's log, events, pod states) under a heading of
/// kubeship's own. Under GitHub Actions the runner ignores every command inside them.
pub fn untrusted(heading: impl Display, lines: &[String]) {
    let heading = clean(&heading.to_string());
    let lines: Vec<String> = lines.iter().map(|l| format!("  {}", clean(l))).collect();
    print(&untrusted_lines(&heading, &lines, github()));
}

/// The lines [`untrusted`] prints.
pub fn untrusted_lines(heading: &str, lines: &[String], github: bool) -> Vec<String> {
    if github {
        return stopped(&[heading.to_owned()], lines);
    }
    std::iter::once(heading.to_owned()).chain(lines.iter().cloned()).collect()
}

fn print(lines: &[String]) {
    for line in lines {
        eprintln!("{line}");
    }
}

/// `::stop-commands::<token>`, the lines, `::<token>::`. The token is fresh for every block
/// and never appears in what it encloses, so nothing inside can end the block early.
fn stopped(before: &[String], lines: &[String]) -> Vec<String> {
    let token = loop {
        let token = format!("kubeship-{:032x}", rand::random::<u128>());
        if !lines.iter().any(|l| l.to_ascii_lowercase().contains(&token)) {
            break token;
        }
    };
    let mut out = before.to_vec();
    out.push(format!("::stop-commands::{token}"));
    out.extend(lines.iter().cloned());
    out.push(format!("::{token}::"));
    out
}

/// Whether the runner could take `line` for a command: `::` after leading whitespace (the
/// current form) or `##[` anywhere (the legacy form). The runner's search is culture-sensitive
/// and skips invisible characters, so the check looks at the line's ASCII alone, control
/// characters removed: broader than the runner's parser on purpose, as a false alarm only
/// puts an ordinary line into a stopped block.
pub fn could_be_command(line: &str) -> bool {
    let ascii: String = line.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).collect();
    ascii.trim_start().starts_with("::") || ascii.contains("##[")
}

/// Something the user should look at, that does not stop the run.
pub fn warn(message: impl Display) {
    let text = redact(&message.to_string());
    if github() {
        eprintln!("::warning::{}", escape_data(&sanitize_data(&text)));
    } else {
        eprintln!("warning: {}", clean(&text));
    }
}

/// A failure: what went wrong and what to do.
pub fn error(message: impl Display) {
    error_titled("kubeship", message);
}

/// A failure with the title of its annotation under GitHub Actions.
pub fn error_titled(title: &str, message: impl Display) {
    let text = redact(&message.to_string());
    if github() {
        // An annotation inside a collapsed group is easy to miss in the log; close it first.
        end_group();
        eprintln!(
            "::error title={}::{}",
            escape_property(&sanitize_data(title)),
            escape_data(&sanitize_data(&text))
        );
    } else {
        eprintln!("error: {}", clean(&text));
    }
}

/// Detail for debugging a run.
pub fn debug(message: impl Display) {
    if !DEBUG.load(Ordering::Relaxed) {
        return;
    }
    let text = redact(&message.to_string());
    if github() {
        eprintln!("::debug::{}", escape_data(&sanitize_data(&text)));
    } else {
        eprintln!("debug: {}", clean(&text));
    }
}

/// Starts a phase: a collapsible group under GitHub Actions (closing the one before), a
/// heading line elsewhere.
pub fn group(title: impl Display) {
    let title = clean(&title.to_string());
    if github() {
        end_group();
        eprintln!("::group::{}", escape_data(&title));
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

/// A command's data may span lines (the runner unescapes `%0A`), but no line of it may carry
/// a control character.
fn sanitize_data(text: &str) -> String {
    text.split('\n').map(crate::untrusted::own_line).collect::<Vec<_>>().join("\n")
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
    use kubeship_testkit::github::runner;

    /// What the GitHub runner acts on when it reads `lines` on stderr: every command, in
    /// every order the runner might read it.
    fn acted(lines: &[String]) -> Vec<runner::Command> {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        runner::commands(b"", text.as_bytes())
    }

    /// Only the block's own stop and resume, whatever the text.
    fn only_the_block(commands: &[runner::Command]) -> bool {
        commands.iter().all(|c| c.name == "stop-commands" || c.name.starts_with("kubeship-"))
    }

    /// Pieces of text an attacker would combine.
    fn hostile() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::{Just, Strategy as _};
        let piece = proptest::prop_oneof![
            Just("::add-mask::".to_owned()),
            Just("::warning title=x::".to_owned()),
            Just("##[set-output name=a]".to_owned()),
            Just("::stop-commands::".to_owned()),
            Just(":\u{200B}:error::".to_owned()),
            Just("\r".to_owned()),
            Just("\n".to_owned()),
            Just(" ".to_owned()),
            "\\PC{0,8}",
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|parts| parts.concat())
    }

    proptest::proptest! {
        /// Whatever text reaches `info` or `untrusted` (after the cleaning they do), the runner
        /// acts on nothing but the block that holds it.
        #[test]
        fn no_text_becomes_a_command(text in hostile()) {
            let cleaned = clean(&text);
            let info = info_lines(&cleaned, true);
            proptest::prop_assert!(only_the_block(&acted(&info)), "{info:?}");
            let lines = vec![format!("  {cleaned}")];
            let block = untrusted_lines("heading", &lines, true);
            proptest::prop_assert!(only_the_block(&acted(&block)), "{block:?}");
        }
    }

    /// The issue's attack forms, as they would arrive in a container's log: inert inside the
    /// block, and kubeship's own annotation after the block is still acted on.
    #[test]
    fn attack_forms_are_held_and_ours_still_act() {
        let attacks = [
            "::add-mask::sha256:0123",
            "   ::add-mask::sha256",
            "::stop-commands::x",
            "GET /\r::warning title=pwned::injected",
            "##[set-output name=status]succeeded",
            ":\u{200B}:add-mask::zero-width",
            "{\"a\": \"##[error]x\"}",
        ];
        let lines: Vec<String> = attacks.iter().map(|a| format!("  {}", clean(a))).collect();
        let mut all = untrusted_lines("pod api-1 logs", &lines, true);
        all.push(format!(
            "::error title={}::{}",
            escape_property("kubeship: rollout failed"),
            escape_data("it failed")
        ));
        let reports =
            runner::step(b"", all.iter().map(|l| format!("{l}\n")).collect::<String>().as_bytes());
        let ours = reports.last().expect("lines");
        assert!(ours.always_acted(), "{:?}", ours.outcomes);
        let others: Vec<&runner::Command> =
            reports[..reports.len() - 1].iter().flat_map(|r| r.commands()).collect();
        assert!(
            others.iter().all(|c| c.name == "stop-commands" || c.name.starts_with("kubeship-")),
            "{others:?}"
        );
    }

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

    /// Registered secrets vanish from every text, the longest first, line by line for a PEM.
    #[test]
    fn secrets_are_redacted() {
        secret("tok-5f2a9c");
        secret("tok-5f2a9c-and-more");
        secret("-----BEGIN KEY-----\nMIIabcdef\n-----END KEY-----\n");
        secret("ab");
        assert_eq!(redact("x tok-5f2a9c-and-more y tok-5f2a9c"), "x *** y ***");
        assert_eq!(redact("key line MIIabcdef"), "key line ***");
        assert_eq!(redact("ab stays"), "ab stays");
        // As a form body, a URL or JSON carries it.
        secret("Xy7~client.secret value\"42");
        assert_eq!(
            redact("client_secret=Xy7%7Eclient.secret+value%2242&x=1"),
            "client_secret=***&x=1"
        );
        assert_eq!(redact(r#"{"s":"Xy7~client.secret value\"42"}"#), r#"{"s":"***"}"#);
        basic_credentials("alice", "s3cr3t pass~word");
        assert_eq!(redact("got Basic YWxpY2U6czNjcjN0IHBhc3N+d29yZA=="), "got Basic ***");
    }

    /// The runner's two command forms are recognised, with leading whitespace.
    #[test]
    fn command_like_lines() {
        for line in [
            "::warning::x",
            "   ::add-mask::y",
            "text ##[set-output name=a]b",
            ":\u{200B}:add-mask::z",
            "\u{FEFF}::error::x",
            "#\u{AD}#[error]x",
        ] {
            assert!(could_be_command(line), "{line:?}");
        }
        for line in ["deployment/api: 1/3 updated", "a:: b", "# heading"] {
            assert!(!could_be_command(line), "{line}");
        }
    }
}
