//! What the GitHub runner does with a Docker container action's output, rule for rule, so tests
//! can feed it kubeship's real stdout and stderr and ask which workflow commands it would obey.
//! Read from actions/runner v2.336.0 (`src/`), with .NET 8 and ICU behaviour where it calls them.
//!
//! Lines ([`lines`]): `ContainerActionHandler.RunAsync` passes `docker run`'s stdout and stderr to
//! two `OutputManager`s; `ProcessInvoker.StartReadStream` reads each with `StreamReader.ReadLine`
//! (UTF-8 with U+FFFD for bad bytes, a byte-order mark at the start switching encoding; a line
//! ends at `\n`, `\r` or `\r\n`, nothing else). `ProcessInvoker.ProcessOutput` hands each batch
//! of queued lines over, stderr's before stdout's, so how the streams interleave depends on
//! timing. Both `OutputManager`s share the step's one `ActionCommandManager`
//! (`Handler.Initialize`: one per step): `::stop-commands::` on stderr stops stdout's commands too.
//! [`step`] therefore follows every interleaving; [`Runner`] takes one given order.
//!
//! Commands (`ActionCommandManager.TryProcessCommand`): a line is parsed as
//! `ActionCommand.TryParseV2`, else `ActionCommand.TryParse` (`parse.rs`), against the registered
//! names (case-insensitive): `add-mask add-matcher debug echo endgroup error group notice
//! remove-matcher save-state set-env set-output stop-commands warning add-path`
//! (`ExtensionManager`; `internal-set-repo-path` only for runner plugins). The searches for `::`
//! and `##[` are culture-sensitive (`culture.rs`): ignorable characters such as U+200B may sit
//! inside them. A line that parses is not shown; every other line is, masked
//! (`OutputManager.OnDataReceived`). Masks belong to the job (`HostContext.SecretMasker`): they
//! last into later steps, and a job output holding one is dropped (`JobExtension`).
//! - Not stopped, `stop-commands`: the data is the token. `ValidateStopToken` throws for an empty
//!   token, a registered command name or `pause-logging` (unless
//!   `ACTIONS_ALLOW_UNSECURE_STOPCOMMAND_TOKENS`): nothing catches it up to the step, which fails,
//!   and no later line is read ([`Outcome::Aborted`]). Otherwise the token is registered as a
//!   command name, masked when longer than 6 UTF-16 units, and the line is shown.
//! - Stopped: only a line that parses (either form, anywhere the forms allow) to a command named
//!   like the token (case-insensitive) resumes; it is shown. Every other line is shown as text.
//! - Otherwise the extension runs. `set-env` and `add-path` throw ("disabled", unless
//!   `ACTIONS_ALLOW_UNSECURE_COMMANDS`), as do `set-output`/`save-state` without `name` and
//!   `echo` without `on`/`off`: the runner logs "Unable to process command" as an error and fails
//!   the step ([`Outcome::Failed`]). `add-mask` masks its data and each trimmed line of it
//!   (`AddMaskCommandExtension`); `echo on` shows later command lines (off unless step debug).
//!   `notice` is taken as enabled (`DistributedTask.EnhancedAnnotations`, on at github.com).

mod culture;
mod ignorable;
mod parse;
mod step;
#[cfg(test)]
mod tests;

pub use step::{LineReport, Stream, commands, masks, step};

/// The extension commands the runner registers (`ExtensionManager.GetExtensions`), besides
/// `stop-commands`.
const EXTENSIONS: [&str; 14] = [
    "set-env",
    "set-output",
    "save-state",
    "add-path",
    "add-mask",
    "add-matcher",
    "remove-matcher",
    "warning",
    "error",
    "notice",
    "debug",
    "group",
    "endgroup",
    "echo",
];
const STOP: &str = "stop-commands";
/// Extensions whose line is not echoed even with `echo on` (`OmitEcho`).
const OMIT_ECHO: [&str; 5] = ["add-mask", "debug", "warning", "error", "notice"];

/// A workflow command as the runner parsed it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Command {
    /// Lower case as registered (`add-mask`), or the stop token for the line that resumes.
    pub name: String,
    /// In order of first appearance; a later key equal ignoring case overwrites the value.
    pub properties: Vec<(String, String)>,
    /// Unescaped data.
    pub data: String,
}

impl Command {
    /// A property by name, ignoring case as the runner's dictionary does.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.iter().find(|(k, _)| parse::same_key(k, key)).map(|(_, v)| v.as_str())
    }
}

/// What the runner does with one line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Not a command: printed to the log as text (after masking).
    Shown,
    /// The runner acted on the command; `shown` when the line itself is also printed.
    Acted { command: Command, shown: bool },
    /// The command's extension threw: an error annotation and the step fails.
    Failed { command: Command, error: String },
    /// An invalid `stop-commands` token: the step fails and no later line is read.
    Aborted { error: String },
    /// After [`Outcome::Aborted`]: never read.
    Unread,
}

impl Outcome {
    /// The command the runner dispatched, if any.
    pub fn command(&self) -> Option<&Command> {
        match self {
            Outcome::Acted { command, .. } | Outcome::Failed { command, .. } => Some(command),
            _ => None,
        }
    }

    /// Whether the line's own text appears in the log (masked).
    pub fn shown(&self) -> bool {
        matches!(self, Outcome::Shown | Outcome::Acted { shown: true, .. })
    }
}

/// The command manager's state that decides what a line does (the masks only accumulate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct State {
    stop_token: Option<String>,
    echo: bool,
    aborted: bool,
}

/// One step's command processing over lines in a given order.
#[derive(Clone, Debug, Default)]
pub struct Runner {
    state: State,
    masks: Vec<String>,
}

impl Runner {
    /// A step's fresh state: not stopped, echo off, no masks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Processes one line (as [`lines`] splits them) and says what the runner did with it.
    pub fn line(&mut self, line: &str) -> Outcome {
        let (next, outcome) = process(&self.state, line);
        self.state = next;
        self.masks.extend(masks_of(&outcome));
        outcome
    }

    /// The values masked so far (`add-mask` data and its lines, stop tokens over 6 units).
    /// The runner also masks encodings of each (base64, URL, JSON...), not listed here.
    pub fn masks(&self) -> &[String] {
        &self.masks
    }

    /// Whether processing is stopped, waiting for this token.
    pub fn stop_token(&self) -> Option<&str> {
        self.state.stop_token.as_deref()
    }
}

/// Splits a stream as `StreamReader.ReadLine` does: a UTF-8, UTF-16 or UTF-32 byte-order mark at
/// the start picks the encoding (UTF-8 without), bad bytes become U+FFFD, and lines end at
/// `\n`, `\r` or `\r\n`; a last line without an ending counts, an empty rest does not.
pub fn lines(bytes: &[u8]) -> Vec<String> {
    let text = decode(bytes);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        match rest.find(['\r', '\n']) {
            None => {
                out.push(rest.to_owned());
                break;
            }
            Some(end) => {
                out.push(rest[..end].to_owned());
                let skip = if rest[end..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[end + skip..];
            }
        }
    }
    out
}

fn decode(bytes: &[u8]) -> String {
    let units = |bytes: &[u8], width: usize, big: bool| -> Vec<u32> {
        bytes
            .chunks(width)
            .map(|c| {
                let mut word = [0u8; 4];
                word[..c.len()].copy_from_slice(c);
                let value = if width == 2 {
                    let pair = [word[0], word[1]];
                    u32::from(if big { u16::from_be_bytes(pair) } else { u16::from_le_bytes(pair) })
                } else if big {
                    u32::from_be_bytes(word)
                } else {
                    u32::from_le_bytes(word)
                };
                // A trailing partial unit is a bad byte.
                if c.len() < width { u32::MAX } else { value }
            })
            .collect()
    };
    let utf16 = |values: Vec<u32>| -> String {
        let units = values.iter().map(|&v| u16::try_from(v).unwrap_or(0xFFFD));
        char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')).collect()
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        [0xFF, 0xFE, 0, 0, rest @ ..] | [0, 0, 0xFE, 0xFF, rest @ ..] => {
            let big = bytes[0] == 0;
            units(rest, 4, big).iter().map(|&v| char::from_u32(v).unwrap_or('\u{FFFD}')).collect()
        }
        [0xFE, 0xFF, rest @ ..] => utf16(units(rest, 2, true)),
        [0xFF, 0xFE, rest @ ..] => utf16(units(rest, 2, false)),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Whether printing `text` as it is, outside any stop-commands block, makes the runner act on
/// nothing: every line of it is shown as text.
pub fn is_inert(text: &str) -> bool {
    let mut runner = Runner::new();
    lines(text.as_bytes()).iter().all(|line| runner.line(line) == Outcome::Shown)
}

/// Whether `text` printed between `::stop-commands::<token>` and `::<token>::` leaves the block
/// closed: no line of it resumes command processing (so none is acted on).
pub fn is_inert_in_block(text: &str, token: &str) -> bool {
    let mut runner = Runner::new();
    if runner.line(&format!("::{STOP}::{token}")).command().is_none()
        || runner.stop_token().is_none()
    {
        return false;
    }
    lines(text.as_bytes()).iter().all(|line| runner.line(line) == Outcome::Shown)
}

/// `TryProcessCommand` for one line in a state: the next state and the outcome.
fn process(state: &State, line: &str) -> (State, Outcome) {
    let mut next = state.clone();
    if state.aborted {
        return (next, Outcome::Unread);
    }
    let units: Vec<u16> = line.encode_utf16().collect();
    let registered = |name: &str| {
        name.eq_ignore_ascii_case(STOP)
            || EXTENSIONS.iter().any(|e| name.eq_ignore_ascii_case(e))
            || state.stop_token.as_deref().is_some_and(|t| parse::same_key(t, name))
    };
    let Some(mut command) =
        parse::v2(&units, &registered).or_else(|| parse::legacy(&units, &registered))
    else {
        return (next, Outcome::Shown);
    };
    if let Some(token) = &state.stop_token {
        if !parse::same_key(token, &command.name) {
            return (next, Outcome::Shown);
        }
        command.name.clone_from(token);
        next.stop_token = None;
        return (next, Outcome::Acted { command, shown: true });
    }
    command.name = command.name.to_ascii_lowercase();
    if command.name == STOP {
        let token = &command.data;
        if token.is_empty() || registered(token) || token.eq_ignore_ascii_case("pause-logging") {
            next.aborted = true;
            let error = "You cannot use a endToken that is an empty string, the string \
                         'pause-logging', or another workflow command."
                .to_owned();
            return (next, Outcome::Aborted { error });
        }
        next.stop_token = Some(token.clone());
        return (next, Outcome::Acted { command, shown: true });
    }
    let shown = state.echo && !OMIT_ECHO.contains(&command.name.as_str());
    match extension_error(&command) {
        Some(error) => (next, Outcome::Failed { command, error }),
        None => {
            if command.name == "echo" {
                next.echo = command.data.trim().eq_ignore_ascii_case("on");
            }
            (next, Outcome::Acted { command, shown })
        }
    }
}

/// The exceptions the extensions throw, on what the line alone decides (`add-matcher` and
/// `remove-matcher` may also fail to load their file, which the oracle cannot know).
fn extension_error(command: &Command) -> Option<String> {
    let name = command.name.as_str();
    match name {
        "set-env" | "add-path" => Some(format!("The `{name}` command is disabled.")),
        "set-output" | "save-state" if command.property("name").is_none_or(str::is_empty) => {
            Some(format!("Required field 'name' is missing in ##[{name}] command."))
        }
        "echo" => {
            let value = command.data.trim();
            let valid = value.eq_ignore_ascii_case("on") || value.eq_ignore_ascii_case("off");
            (!valid).then(|| {
                format!("Invalid echo command value. Current value is: '{}'.", command.data)
            })
        }
        _ => None,
    }
}

/// The masks an outcome adds (`AddMaskCommandExtension`, `ActionCommandManager` for tokens).
fn masks_of(outcome: &Outcome) -> Vec<String> {
    let Outcome::Acted { command, .. } = outcome else {
        return Vec::new();
    };
    match command.name.as_str() {
        "add-mask" if !command.data.trim().is_empty() => {
            let mut masks = vec![command.data.clone()];
            let parts = command.data.split(['\r', '\n']).map(str::trim).filter(|p| !p.is_empty());
            masks.extend(parts.map(str::to_owned));
            masks
        }
        STOP if command.data.encode_utf16().count() > 6 => vec![command.data.clone()],
        _ => Vec::new(),
    }
}
