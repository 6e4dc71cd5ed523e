//! `ActionCommand.TryParseV2` (`::name k=v,k=v::data`) and `ActionCommand.TryParse`
//! (`##[name k=v;k=v]data`) from `src/Runner.Common/ActionCommand.cs`, on UTF-16 as .NET does.

use super::Command;
use super::culture::index_of;

/// `TryParseV2`: the line, leading white space trimmed (`TrimStart`, `char.IsWhiteSpace`, the
/// same set as Rust's `char::is_whitespace`), must start with `::`; the command info runs to the
/// next `::` found from index 2 (culture-sensitive); the name is the info up to its first space
/// and must be registered (case-insensitive); properties split on `,` then the first `=`.
pub(super) fn v2(line: &[u16], registered: &dyn Fn(&str) -> bool) -> Option<Command> {
    let skip = line
        .iter()
        .take_while(|&&u| char::from_u32(u32::from(u)).is_some_and(char::is_whitespace))
        .count();
    let message = &line[skip..];
    // StartsWith("::") is culture-sensitive too, but a command name can only follow at index 2
    // when the first two units are the colons themselves, so the ordinal test gives the same
    // commands (ignorables or a combining mark there leave a name that is not registered).
    if !message.starts_with(&[u16::from(b':'); 2]) {
        return None;
    }
    let end = index_of(&message[2..], "::")? + 2;
    command(&message[2..end], b',', true, &message[end + 2..], registered)
}

/// `TryParse` (legacy): `##[` anywhere in the line (culture-sensitive, first match); the command
/// info runs from three units after it to the next `]` (ordinal); properties split on `;`.
pub(super) fn legacy(line: &[u16], registered: &dyn Fn(&str) -> bool) -> Option<Command> {
    let prefix = index_of(line, "##[")?;
    let close = prefix + line[prefix..].iter().position(|&u| u == u16::from(b']'))?;
    // Ignorables inside the matched `##[` push `prefix + 3` before the `[`: Substring then
    // fails when it would be negative, and an info starting with `[` or `#` names nothing.
    let info = line.get(prefix + 3..close)?;
    command(info, b';', false, &line[close + 1..], registered)
}

fn command(
    info: &[u16],
    separator: u8,
    v2: bool,
    data: &[u16],
    registered: &dyn Fn(&str) -> bool,
) -> Option<Command> {
    let space = info.iter().position(|&u| u == u16::from(b' '));
    let name = String::from_utf16_lossy(&info[..space.unwrap_or(info.len())]);
    if !registered(&name) {
        return None;
    }
    let mut properties: Vec<(String, String)> = Vec::new();
    if let Some(space) = space.filter(|&s| s > 0) {
        let text = String::from_utf16_lossy(&info[space + 1..]);
        // V2 trims the property text (`Trim()`); the legacy form does not.
        let text = if v2 { text.trim() } else { text.as_str() };
        for pair in text.split(char::from(separator)).filter(|p| !p.is_empty()) {
            if let [key, value] = split_pair(pair)[..] {
                let value = if v2 { unescape_property(value) } else { unescape_legacy(value) };
                // A Dictionary with OrdinalIgnoreCase keys: a later key overwrites the value
                // and keeps the first spelling.
                match properties.iter_mut().find(|(k, _)| same_key(k, key)) {
                    Some(existing) => existing.1 = value,
                    None => properties.push((key.to_owned(), value)),
                }
            }
        }
    }
    let data = String::from_utf16_lossy(data);
    let data = if v2 { unescape_data(&data) } else { unescape_legacy(&data) };
    Some(Command { name, properties, data })
}

/// `pair.Split('=', count: 2, RemoveEmptyEntries)` in .NET 5 and later: empty pieces before the
/// first non-empty one are dropped, then empty pieces right after it, and the rest is the value.
fn split_pair(pair: &str) -> Vec<&str> {
    let trimmed = pair.trim_start_matches('=');
    let Some(equals) = trimmed.find('=') else {
        return if trimmed.is_empty() { vec![] } else { vec![trimmed] };
    };
    let key = &trimmed[..equals];
    let value = trimmed[equals..].trim_start_matches('=');
    if value.is_empty() { vec![key] } else { vec![key, value] }
}

/// `StringComparison.OrdinalIgnoreCase`: per character, simple upper-case mappings, except that
/// .NET keeps `ı` and `ſ` apart from `I` and `S` (`pal_casing.c`, `InitOrdinalCasingPage`).
pub(super) fn same_key(a: &str, b: &str) -> bool {
    fn upper(c: char) -> char {
        let mut mapped = c.to_uppercase();
        match (mapped.next(), mapped.next()) {
            (Some(u), None) if c != 'ı' && c != 'ſ' => u,
            _ => c,
        }
    }
    a.chars().count() == b.chars().count()
        && a.chars().zip(b.chars()).all(|(x, y)| upper(x) == upper(y))
}

fn replace_all(text: &str, pairs: &[(&str, &str)]) -> String {
    pairs.iter().fold(text.to_owned(), |acc, (from, to)| acc.replace(from, to))
}

fn unescape_data(text: &str) -> String {
    replace_all(text, &[("%0D", "\r"), ("%0A", "\n"), ("%25", "%")])
}

fn unescape_property(text: &str) -> String {
    replace_all(text, &[("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")])
}

fn unescape_legacy(text: &str) -> String {
    replace_all(text, &[("%3B", ";"), ("%0D", "\r"), ("%0A", "\n"), ("%5D", "]"), ("%25", "%")])
}
