//! The GitHub runner's reading of a file-command file (`$GITHUB_OUTPUT`), rule for rule
//! (`FileCommandManager.cs`, `EnvFileKeyValuePairs`), as the oracle for what kubeship writes;
//! [`runner`] does the same for what kubeship prints, and [`summary`] for its step summary.

pub mod runner;
pub mod summary;

/// The outputs in the file, in order (a later duplicate wins when read into a map), or the
/// runner's error, which fails the step.
///
/// # Errors
/// What the runner would refuse: a line that is neither `NAME=VALUE` nor `NAME<<DELIMITER`,
/// an empty name or delimiter, a delimiter that never comes, a file that ends mid-value.
pub fn parse_output(text: &str) -> Result<Vec<(String, String)>, String> {
    // Lines end at "\n" or "\r\n"; a last line without a newline is still a line.
    let mut lines: Vec<&str> =
        text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let ends_with_newline = text.ends_with('\n');
    if ends_with_newline {
        lines.pop();
    }
    let mut out = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        index += 1;
        if line.is_empty() {
            continue;
        }
        let (equals, heredoc) = (line.find('='), line.find("<<"));
        match (equals, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                out.push((line[..e].to_owned(), line[e + 1..].to_owned()));
            }
            (_, Some(h)) => {
                let (name, delimiter) = (&line[..h], &line[h + 2..]);
                if name.is_empty() || delimiter.is_empty() {
                    return Err(format!(
                        "Invalid format '{line}'. Name must not be empty and delimiter must not be empty"
                    ));
                }
                let start = index;
                while index < lines.len() && lines[index] != delimiter {
                    index += 1;
                }
                if index == lines.len() {
                    return Err(format!(
                        "Invalid value. Matching delimiter not found '{delimiter}'"
                    ));
                }
                if index == lines.len() - 1 && !ends_with_newline {
                    return Err("Invalid value. EOF marker missing new line.".to_owned());
                }
                out.push((name.to_owned(), lines[start..index].join("\n")));
                index += 1;
            }
            _ => return Err(format!("Invalid format '{line}'")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_output;

    #[test]
    fn the_runners_rules() {
        let text = "a=1=2\r\nb<<EOF\nx\n\ny\nEOF\n\nc<<D\n\nD\n";
        let expected = [("a", "1=2"), ("b", "x\n\ny"), ("c", "")];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(parse_output(text), Ok(expected));
        assert!(parse_output("b<<EOF\nx\n").unwrap_err().contains("delimiter not found"));
        assert!(parse_output("b<<EOF\nx\nEOF").unwrap_err().contains("EOF marker"));
        assert!(parse_output("<<EOF\nEOF\n").unwrap_err().contains("Name must not be empty"));
        assert!(parse_output("just text\n").unwrap_err().starts_with("Invalid format"));
    }
}
