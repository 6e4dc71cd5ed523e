//! Where the outputs go: `$GITHUB_OUTPUT` (the runner's heredoc form), `$GITHUB_STEP_SUMMARY`,
//! the GitLab dotenv report and the Tekton results. [`Destinations::check`] runs before any
//! request, so a destination that cannot be written is an input error (exit 2) rather than a
//! failure after the deploy. The runner's two files are appended to with one write each; the
//! dotenv report and each result are written to a temporary file and renamed, so a reader never
//! sees half of one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// GitLab's limit on a dotenv report (bytes).
const DOTENV_LIMIT: usize = 5 * 1024;
/// Tekton's limit on a step's termination message (bytes), which carries its results.
const TEKTON_LIMIT: usize = 4096;
/// What Tekton's entrypoint adds to the message beside the results (`StartedAt`, an exit
/// code or a reason), kept free.
const TEKTON_OWN: usize = 256;

/// A destination that cannot be written: exit 2, and nothing was sent to any server.
#[derive(Debug, thiserror::Error)]
#[error("{what} ({}) cannot be written: {reason}. {hint}", path.display())]
pub struct Error {
    pub what: &'static str,
    pub path: PathBuf,
    pub reason: String,
    pub hint: &'static str,
}

/// The output files of a run, from the inputs and the runner's environment.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    pub github_output: Option<PathBuf>,
    pub step_summary: Option<PathBuf>,
    pub dotenv_file: Option<PathBuf>,
    pub results_dir: Option<PathBuf>,
}

impl Destinations {
    /// Makes the folders and checks every destination can be written, writing nothing that a
    /// reader could take for an output.
    ///
    /// # Errors
    /// The first destination that cannot be written.
    pub fn check(&self) -> Result<(), Error> {
        let fail = |what, path: &Path, reason: String, hint| Error {
            what,
            path: path.to_owned(),
            reason,
            hint,
        };
        for (what, path) in
            [("$GITHUB_OUTPUT", &self.github_output), ("$GITHUB_STEP_SUMMARY", &self.step_summary)]
        {
            let Some(path) = path else { continue };
            // Appending nothing proves the file can be opened for writing.
            append(path, "").map_err(|e| {
                fail(what, path, e.to_string(), "The runner sets this file; run the step as the runner does (as root in a Docker action)")
            })?;
        }
        if let Some(path) = &self.dotenv_file {
            // Renamed over the runner's file, the dotenv report would replace the step's
            // outputs or summary.
            let same = |other: &Option<PathBuf>| {
                other.as_ref().is_some_and(|o| {
                    o == path
                        || std::fs::canonicalize(o).ok().is_some_and(|o| {
                            std::fs::canonicalize(path).ok().is_some_and(|p| o == p)
                        })
                })
            };
            if same(&self.github_output) || same(&self.step_summary) {
                return Err(fail(
                    "dotenv-file",
                    path,
                    "it is the runner's own output or summary file".into(),
                    "Name a file of its own",
                ));
            }
            if path.is_dir() {
                return Err(fail("dotenv-file", path, "it is a directory".into(), "Name a file"));
            }
            let dir = parent(path);
            probe(dir).map_err(|e| fail("dotenv-file", path, e, "Check the dotenv-file input"))?;
        }
        if let Some(dir) = &self.results_dir {
            probe(dir).map_err(|e| fail("results-dir", dir, e, "Check the results-dir input"))?;
        }
        Ok(())
    }

    /// Writes every destination. `dotenv` and Tekton warnings (an output left out) are returned
    /// for the log.
    ///
    /// # Errors
    /// The first destination that fails (it was writable when checked).
    pub fn write(&self, report: &super::Report, error: Option<&str>) -> Result<Vec<String>, Error> {
        let mut warnings = Vec::new();
        let fail = |what, path: &Path, e: std::io::Error| Error {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
            hint: "the deploy itself went as reported; check the disk and the path",
        };
        // One redaction pass over everything written, as over everything printed.
        let redact = crate::log::redact;
        if let Some(path) = &self.step_summary {
            append(path, &redact(&super::summary::render(report, error)))
                .map_err(|e| fail("$GITHUB_STEP_SUMMARY", path, e))?;
        }
        if let Some(path) = &self.github_output {
            append(path, &redact(&github_output(&report.outputs())))
                .map_err(|e| fail("$GITHUB_OUTPUT", path, e))?;
        }
        if let Some(path) = &self.dotenv_file {
            let (text, left_out) = dotenv(report);
            warnings.extend(left_out);
            replace(path, &redact(&text)).map_err(|e| fail("dotenv-file", path, e))?;
        }
        if let Some(dir) = &self.results_dir {
            let outputs = tekton_results(report);
            for (name, value) in outputs {
                let path = dir.join(name);
                replace(&path, &redact(&value)).map_err(|e| fail("results-dir", &path, e))?;
            }
        }
        Ok(warnings)
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes `dir` and proves a file can be created in it.
fn probe(dir: &Path) -> Result<(), String> {
    if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
        return Err(format!("{} is a file, not a folder", file.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("its folder cannot be made ({e})"))?;
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .map_err(|e| format!("no file can be created in {} ({e})", dir.display()))
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`. Readable by
/// all, as a file made by `>` would be: the step that reads it (GitLab's artifact upload, the
/// next Tekton step) may run as another user.
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut file = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(parent(path))?;
    file.write_all(text.as_bytes())?;
    file.persist(path).map(drop).map_err(|e| e.error)
}

/// `name<<DELIM\nvalue\nDELIM\n` for each output, with a delimiter that appears in no value
/// (`actions/toolkit` `file-command.ts`).
pub fn github_output(outputs: &[(&'static str, String)]) -> String {
    let mut delimiter = random_delimiter();
    while outputs.iter().any(|(_, v)| v.contains(&delimiter)) {
        delimiter = random_delimiter();
    }
    outputs
        .iter()
        .map(|(name, value)| format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"))
        .collect()
}

fn random_delimiter() -> String {
    format!("ghadelimiter_{:032x}", rand::random::<u128>())
}

/// The GitLab dotenv report: `KUBESHIP_<OUTPUT>=value`, one line each. A value that is not a
/// single line (one read from the cluster can hold anything) is left out, with a warning: a
/// newline in it would forge another variable. `result` is shortened to fit the size limit.
pub fn dotenv(report: &super::Report) -> (String, Vec<String>) {
    let key = |name: &str| format!("KUBESHIP_{}", name.to_uppercase().replace('-', "_"));
    let mut warnings = Vec::new();
    let mut text = String::new();
    for (name, value) in report.outputs() {
        if name == "result" {
            continue;
        }
        if value.chars().any(char::is_control) {
            warnings.push(format!(
                "the {name} output is left out of the dotenv report: its value is not a single line"
            ));
            continue;
        }
        text.push_str(&format!("{}={value}\n", key(name)));
    }
    let prefix = format!("{}=", key("result"));
    let room = DOTENV_LIMIT.saturating_sub(text.len() + prefix.len() + 1);
    let result = report.json_within(room);
    if result.len() < report.json().len() {
        warnings.push(format!(
            "the result JSON is shortened in the dotenv report, whose limit is {DOTENV_LIMIT} bytes"
        ));
    }
    text.push_str(&format!("{prefix}{result}\n"));
    (text, warnings)
}

/// Tekton results: each output as `<dir>/<name>`, without a trailing newline, `result`
/// shortened so that the termination message that carries them stays within Tekton's limit.
pub fn tekton_results(report: &super::Report) -> Vec<(&'static str, String)> {
    let budget = TEKTON_LIMIT - TEKTON_OWN;
    let mut room = budget;
    loop {
        let results = report.outputs_within(room);
        let size = termination_message_len(&results);
        if size <= budget || room == 0 {
            return results;
        }
        room = room.saturating_sub(size - budget);
    }
}

/// The size of the termination message Tekton's entrypoint makes of `results`: a JSON array
/// of `{"key":…,"value":…,"type":1}`, strings escaped the way Go's `encoding/json` does
/// (which writes `<`, `>`, `&`, U+2028 and U+2029 as six-byte escapes).
fn termination_message_len(results: &[(&str, String)]) -> usize {
    let escaped = |text: &str| -> usize {
        text.chars()
            .map(|c| match c {
                '"' | '\\' => 2,
                '\n' | '\r' | '\t' => 2,
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => 6,
                c if (c as u32) < 0x20 => 6,
                c => c.len_utf8(),
            })
            .sum::<usize>()
            + 2
    };
    let entries: usize = results
        .iter()
        .map(|(key, value)| r#"{"key":,"value":,"type":1}"#.len() + escaped(key) + escaped(value))
        .sum();
    entries + results.len().saturating_sub(1) + 2
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::super::tests::report;
    use super::*;

    /// The runner's reading of the file, which must accept it.
    fn parse(text: &str) -> Vec<(String, String)> {
        kubeship_testkit::github::parse_output(text).expect("the runner accepts the file")
    }

    /// Values with newlines and delimiter-like text parse back unchanged.
    #[test]
    fn heredoc_round_trip() {
        let outputs = vec![
            ("a", "one".to_owned()),
            ("b", "two\nlines\nghadelimiter_x".to_owned()),
            ("c", String::new()),
        ];
        let expected: Vec<(String, String)> =
            outputs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert_eq!(parse(&github_output(&outputs)), expected);
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Whatever the values (newlines, delimiter look-alikes, unicode, empty), the file
        /// reads back to the same outputs under the runner's heredoc rules.
        #[test]
        fn github_output_round_trips(
            values in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![
                        "\\PC{0,12}",
                        proptest::strategy::Just("\n".to_owned()),
                        "ghadelimiter_[0-9a-f]{0,32}",
                        proptest::strategy::Just("name<<EOF".to_owned()),
                    ],
                    0..6,
                ).prop_map(|parts| parts.concat()),
                9..=9,
            )
        ) {
            let outputs: Vec<(&'static str, String)> =
                super::super::OUTPUTS.iter().copied().zip(values.iter().cloned()).collect();
            let text = github_output(&outputs);
            let expected: Vec<(String, String)> =
                outputs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            proptest::prop_assert_eq!(parse(&text), expected);
        }

        /// Whatever the cluster put into the report, every dotenv line is KUBESHIP_X=value,
        /// one per output at most, and no line forges a variable.
        #[test]
        fn dotenv_lines_cannot_be_forged(previous in "(?s).{0,80}", message in "(?s).{0,80}") {
            let mut r = report(Status::Failed);
            r.targets[0].containers[0].previous_image = previous;
            r.targets[0].message = message;
            let (text, _) = dotenv(&r);
            let keys: Vec<&str> = text.lines().map(|l| l.split('=').next().unwrap_or("")).collect();
            let mut expected: Vec<String> = super::super::OUTPUTS.iter()
                .map(|n| format!("KUBESHIP_{}", n.to_uppercase().replace('-', "_"))).collect();
            expected.retain(|k| keys.contains(&k.as_str()));
            proptest::prop_assert_eq!(keys.len(), expected.len());
            proptest::prop_assert!(text.len() <= DOTENV_LIMIT);
        }
    }

    /// A multi-line value is left out with a warning; the result is shortened, not dropped.
    #[test]
    fn dotenv_report() {
        let mut r = report(Status::Succeeded);
        let (text, warnings) = dotenv(&r);
        assert!(text.starts_with("KUBESHIP_DIGEST=sha256:aa\n"), "{text}");
        assert!(text.contains("KUBESHIP_PREVIOUS_IMAGE=r/a:1\n") && warnings.is_empty());
        r.targets[0].containers[0].previous_image = "a\nKUBESHIP_STATUS=succeeded".into();
        r.targets[0].message = "x".repeat(8000);
        let (text, warnings) = dotenv(&r);
        assert!(!text.contains("KUBESHIP_PREVIOUS_IMAGE") && text.len() <= DOTENV_LIMIT, "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("KUBESHIP_STATUS=")).count(), 1);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let result = text.lines().last().unwrap().strip_prefix("KUBESHIP_RESULT=").unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(result).unwrap()["truncated"], true);
    }

    /// Tekton: the termination message that carries the results, as Tekton's entrypoint
    /// marshals it, stays within 4096 bytes with room for Tekton's own entries; the result is
    /// shortened, not dropped. Quotes and `<` are what Go's JSON escaping makes longer.
    #[test]
    fn tekton_limit() {
        for filler in ["x", "\"", "<", "é"] {
            let mut r = report(Status::Failed);
            r.targets[0].message = filler.repeat(5000);
            let results = tekton_results(&r);
            assert_eq!(results.len(), 9);
            let message: Vec<serde_json::Value> = results
                .iter()
                .map(|(k, v)| serde_json::json!({"key": k, "value": v, "type": 1}))
                .collect();
            let marshalled = serde_json::to_string(&message).unwrap();
            // serde_json leaves `<`, `>` and `&` alone where Go writes six bytes each.
            let go = marshalled.len() + 5 * marshalled.matches(['<', '>', '&']).count();
            assert_eq!(termination_message_len(&results), go, "{filler}");
            assert!(go <= TEKTON_LIMIT - TEKTON_OWN, "{filler}: {go}");
            let result = &results.iter().find(|(n, _)| *n == "result").unwrap().1;
            let parsed: serde_json::Value = serde_json::from_str(result).unwrap();
            assert_eq!(parsed["truncated"], true, "{filler}");
            assert_eq!(parsed["status"], "failed", "{filler}");
        }
    }

    /// Folders are made; a directory where a file should be, or a file where a folder should
    /// be, is an error naming it.
    #[test]
    fn destinations_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ok = Destinations {
            github_output: Some(dir.path().join("out")),
            step_summary: None,
            dotenv_file: Some(dir.path().join("new/folder/deploy.env")),
            results_dir: Some(dir.path().join("results")),
        };
        ok.check().unwrap();
        assert!(dir.path().join("new/folder").is_dir() && dir.path().join("results").is_dir());
        assert_eq!(std::fs::read_dir(dir.path().join("new/folder")).unwrap().count(), 0);
        let bad =
            Destinations { github_output: Some(dir.path().to_owned()), ..Destinations::default() };
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("$GITHUB_OUTPUT") && e.contains(dir.path().to_str().unwrap()), "{e}");
        std::fs::write(dir.path().join("file"), "").unwrap();
        let bad = Destinations {
            dotenv_file: Some(dir.path().join("file/x.env")),
            ..Destinations::default()
        };
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("dotenv-file") && e.contains("file is a file, not a folder"), "{e}");
        let output = dir.path().join("out");
        let bad = Destinations {
            github_output: Some(output.clone()),
            dotenv_file: Some(dir.path().join("new/../out")),
            ..Destinations::default()
        };
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("the runner's own output or summary file"), "{e}");
    }

    /// The files kubeship replaces are readable by others, as a file made by `>` would be.
    #[test]
    fn files_are_readable_by_the_next_step() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let destinations = Destinations {
            dotenv_file: Some(dir.path().join("deploy.env")),
            results_dir: Some(dir.path().join("results")),
            ..Destinations::default()
        };
        destinations.check().unwrap();
        destinations.write(&report(Status::Succeeded), None).unwrap();
        std::fs::write(dir.path().join("shell"), "").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let expected = mode(&dir.path().join("shell")) & 0o644;
        assert_eq!(mode(&dir.path().join("deploy.env")), expected);
        assert_eq!(mode(&dir.path().join("results/status")), expected);
    }
}
