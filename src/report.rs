//! Stage 5: what the run tells its caller. The contract's `result` JSON (last line of
//! standard output), every output in `$GITHUB_OUTPUT` in the runner's heredoc form, the
//! Markdown step summary, the GitLab dotenv report and Tekton results.

use std::io::Write as _;

use serde::Serialize;

/// A container this run changed (or would have).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContainerReport {
    pub name: String,
    pub previous_image: String,
    pub image: String,
}

/// One target's end.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub status: &'static str,
    pub changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub message: String,
    pub containers: Vec<ContainerReport>,
    /// The image IDs the rollout's pods run (containerd's `repo@sha256:…`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_ids: Vec<String>,
    /// What was shown under a failure: pods, events, log lines (for the step summary).
    #[serde(skip)]
    pub diagnostics: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub changed: bool,
    pub duration_seconds: f64,
    pub targets: Vec<TargetReport>,
}

impl Report {
    /// The outputs of the contract, in its order.
    pub fn outputs(&self) -> Vec<(&'static str, String)> {
        let first = self.targets.first();
        let previous = first.and_then(|t| t.containers.first()).map(|c| c.previous_image.clone());
        vec![
            ("digest", self.digest.clone().unwrap_or_default()),
            ("image", self.image.clone().unwrap_or_default()),
            ("previous-image", previous.unwrap_or_default()),
            ("changed", self.changed.to_string()),
            ("revision", first.and_then(|t| t.revision.clone()).unwrap_or_default()),
            ("status", self.status.to_owned()),
            ("ready-replicas", first.map(|t| t.ready_replicas.to_string()).unwrap_or_default()),
            ("duration-seconds", format!("{:.1}", self.duration_seconds)),
            ("result", self.json()),
        ]
    }

    /// One line of JSON.
    pub fn json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"status\":\"{}\",\"error\":\"{e}\"}}", self.status))
    }
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

/// Appends the outputs to `$GITHUB_OUTPUT`.
///
/// # Errors
/// The file cannot be opened or written.
pub fn write_github_output(
    path: &std::path::Path,
    outputs: &[(&'static str, String)],
) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(github_output(outputs).as_bytes())
}

/// The runner refuses a step summary over 1 MiB; stay well under it.
const SUMMARY_LIMIT: usize = 1000 * 1024;

/// The step summary: the run, a table of every target's containers (image before and after,
/// revision, status, ready replicas), then the cause of the failure with the failing pods,
/// events and log lines as they were printed.
pub fn summary(report: &Report, error: Option<&str>) -> String {
    let mut text = format!("### kubeship: {}\n\n", report.status);
    if let (Some(image), Some(digest)) = (&report.image, &report.digest) {
        text.push_str(&format!(
            "`{}` is `{digest}`; changed: {}; {:.1} s\n\n",
            image.split('@').next().unwrap_or(image),
            if report.changed { "yes" } else { "no" },
            report.duration_seconds
        ));
    }
    if let Some(error) = error {
        text.push_str(&format!("**Error:** {}\n\n", cell(error)));
    }
    if !report.targets.is_empty() {
        text.push_str(
            "| target | status | container | before | after | revision | ready |\n|---|---|---|---|---|---|---|\n",
        );
    }
    for t in &report.targets {
        let target = format!("{}/{} in {}", t.kind.to_lowercase(), t.name, t.namespace);
        let ready = format!("{}/{}", t.ready_replicas, t.replicas);
        let revision = t.revision.as_deref().unwrap_or("");
        if t.containers.is_empty() {
            text.push_str(&format!(
                "| {} | {} | | (unchanged) | | {} | {ready} |\n",
                cell(&target),
                t.status,
                cell(revision)
            ));
        }
        for c in &t.containers {
            text.push_str(&format!(
                "| {} | {} | {} | `{}` | `{}` | {} | {ready} |\n",
                cell(&target),
                t.status,
                cell(&c.name),
                cell(&c.previous_image),
                cell(&c.image),
                cell(revision)
            ));
        }
    }
    for t in report.targets.iter().filter(|t| !t.diagnostics.is_empty() || is_failure(t.status)) {
        text.push_str(&format!(
            "\n#### {}/{}: {}\n\n{}\n",
            t.kind.to_lowercase(),
            t.name,
            t.status,
            cell(&t.message)
        ));
        if !t.diagnostics.is_empty() {
            let body = t.diagnostics.join("\n");
            // A fence longer than any backtick run inside, so log lines cannot close it.
            let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
            let fence = "`".repeat(longest.max(2) + 1);
            text.push_str(&format!("\n{fence}text\n{body}\n{fence}\n"));
        }
    }
    if text.len() > SUMMARY_LIMIT {
        let mut end = SUMMARY_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(
            "\n\n(truncated: the step summary is limited to 1 MiB; the job log has everything)\n",
        );
    }
    text
}

fn is_failure(status: &str) -> bool {
    matches!(status, "failed" | "timed-out" | "rolled-back")
}

/// Text for one Markdown table cell or paragraph: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Appends the summary to `$GITHUB_STEP_SUMMARY`.
///
/// # Errors
/// The file cannot be opened or written.
pub fn write_summary(path: &std::path::Path, markdown: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(markdown.as_bytes())
}

/// GitLab's dotenv report limit (bytes).
const DOTENV_LIMIT: usize = 5 * 1024;
/// Tekton's limit on a step's results together (bytes).
const TEKTON_LIMIT: usize = 4096;

/// The GitLab dotenv report: `KUBESHIP_<OUTPUT>=value`, one line each. Values are single
/// lines already; `result` is left out (with the reason) when it would break the size limit.
pub fn dotenv(outputs: &[(&'static str, String)]) -> (String, Option<String>) {
    let line = |name: &str, value: &str| {
        format!("KUBESHIP_{}={value}\n", name.to_uppercase().replace('-', "_"))
    };
    let all: String = outputs.iter().map(|(n, v)| line(n, v)).collect();
    if all.len() <= DOTENV_LIMIT {
        return (all, None);
    }
    let without: String =
        outputs.iter().filter(|(n, _)| *n != "result").map(|(n, v)| line(n, v)).collect();
    (
        without,
        Some(format!(
            "the result JSON ({} bytes) is left out of the dotenv report, whose limit is {DOTENV_LIMIT} bytes",
            all.len()
        )),
    )
}

/// Tekton results: each output as `<dir>/<name>`, without a trailing newline; `result` is
/// left out (with the reason) when the results together would pass Tekton's limit.
pub fn tekton_results(
    outputs: &[(&'static str, String)],
) -> (Vec<(&'static str, String)>, Option<String>) {
    let total: usize = outputs.iter().map(|(_, v)| v.len()).sum();
    if total <= TEKTON_LIMIT {
        return (outputs.to_vec(), None);
    }
    let kept = outputs.iter().filter(|(n, _)| *n != "result").cloned().collect();
    (
        kept,
        Some(format!(
            "the result JSON is left out of the Tekton results: together they would be {total} bytes, over {TEKTON_LIMIT}"
        )),
    )
}

/// Writes the dotenv report and the Tekton results, as the inputs ask.
///
/// # Errors
/// A file or directory that cannot be written.
pub fn write_files(
    outputs: &[(&'static str, String)],
    dotenv_file: Option<&std::path::Path>,
    results_dir: Option<&std::path::Path>,
) -> std::io::Result<()> {
    if let Some(path) = dotenv_file {
        let (text, dropped) = dotenv(outputs);
        if let Some(reason) = dropped {
            crate::log::warn(reason);
        }
        std::fs::write(path, text)?;
    }
    if let Some(dir) = results_dir {
        let (kept, dropped) = tekton_results(outputs);
        if let Some(reason) = dropped {
            crate::log::warn(reason);
        }
        std::fs::create_dir_all(dir)?;
        for (name, value) in kept {
            std::fs::write(dir.join(name), value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        let parsed = parse(&github_output(&outputs));
        let expected: Vec<(String, String)> =
            outputs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert_eq!(parsed, expected);
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Whatever the values (newlines, delimiter look-alikes, unicode, empty), the file
        /// reads back to the same outputs under the runner's heredoc rules, never panics, and
        /// every header and delimiter is a line of its own.
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
                1..9,
            )
        ) {
            const NAMES: [&str; 9] = ["digest", "image", "previous-image", "changed", "revision",
                "status", "ready-replicas", "duration-seconds", "result"];
            let outputs: Vec<(&'static str, String)> =
                NAMES.iter().copied().zip(values.iter().cloned()).collect();
            let text = github_output(&outputs);
            proptest::prop_assert!(text.ends_with('\n'));
            let parsed = parse(&text);
            let expected: Vec<(String, String)> =
                outputs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            proptest::prop_assert_eq!(parsed, expected);
        }
    }

    /// The outputs of the contract, from the first target.
    #[test]
    fn outputs_of_the_contract() {
        let report = Report {
            status: "succeeded",
            digest: Some("sha256:aa".into()),
            image: Some("r/a@sha256:aa".into()),
            changed: true,
            duration_seconds: 1.25,
            targets: vec![TargetReport {
                kind: "Deployment",
                namespace: "prod".into(),
                name: "api".into(),
                status: "succeeded",
                changed: true,
                revision: Some("7".into()),
                replicas: 3,
                ready_replicas: 3,
                message: "ok".into(),
                containers: vec![ContainerReport {
                    name: "api".into(),
                    previous_image: "r/a:1".into(),
                    image: "r/a@sha256:aa".into(),
                }],
                image_ids: Vec::new(),
                diagnostics: Vec::new(),
            }],
        };
        let names: Vec<&str> = report.outputs().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "digest",
                "image",
                "previous-image",
                "changed",
                "revision",
                "status",
                "ready-replicas",
                "duration-seconds",
                "result"
            ]
        );
        let outputs: std::collections::BTreeMap<_, _> = report.outputs().into_iter().collect();
        assert_eq!(
            (
                outputs["previous-image"].as_str(),
                outputs["revision"].as_str(),
                outputs["ready-replicas"].as_str()
            ),
            ("r/a:1", "7", "3")
        );
        assert_eq!(outputs["duration-seconds"], "1.2");
        let json: serde_json::Value = serde_json::from_str(&outputs["result"]).unwrap();
        assert_eq!(json["targets"][0]["containers"][0]["previous_image"], "r/a:1");
    }

    /// Dotenv: upper snake case with the prefix, one line each; an oversized result is dropped.
    #[test]
    fn dotenv_report() {
        let outputs = vec![("previous-image", "a:1".to_owned()), ("result", "{}".to_owned())];
        let (text, dropped) = dotenv(&outputs);
        assert_eq!(text, "KUBESHIP_PREVIOUS_IMAGE=a:1\nKUBESHIP_RESULT={}\n");
        assert!(dropped.is_none());
        let big = vec![("status", "ok".to_owned()), ("result", "x".repeat(6000))];
        let (text, dropped) = dotenv(&big);
        assert_eq!(text, "KUBESHIP_STATUS=ok\n");
        assert!(dropped.unwrap().contains("5120"));
    }

    fn failed_report() -> Report {
        Report {
            status: "failed",
            digest: Some("sha256:aa".into()),
            image: Some("r/a@sha256:aa".into()),
            changed: true,
            duration_seconds: 3.0,
            targets: vec![TargetReport {
                kind: "Deployment",
                namespace: "prod".into(),
                name: "api".into(),
                status: "failed",
                changed: true,
                revision: Some("8".into()),
                replicas: 3,
                ready_replicas: 2,
                message: "pod api-1: ImagePullBackOff | pull denied".into(),
                containers: vec![ContainerReport {
                    name: "api".into(),
                    previous_image: "r/a:1".into(),
                    image: "r/a@sha256:aa".into(),
                }],
                image_ids: Vec::new(),
                diagnostics: vec![
                    "pod api-1: waiting: ImagePullBackOff".into(),
                    "log: ``` x".into(),
                ],
            }],
        }
    }

    /// The summary has the target's row, the cause and the diagnostics in a fence that the
    /// log line's backticks cannot close.
    #[test]
    fn summary_of_a_failure() {
        let text = summary(&failed_report(), None);
        assert!(text.starts_with("### kubeship: failed\n"), "{text}");
        assert!(
            text.contains(
                "| deployment/api in prod | failed | api | `r/a:1` | `r/a@sha256:aa` | 8 | 2/3 |"
            ),
            "{text}"
        );
        assert!(text.contains("ImagePullBackOff \\| pull denied"), "{text}");
        assert!(
            text.contains("````text\npod api-1: waiting: ImagePullBackOff\nlog: ``` x\n````"),
            "{text}"
        );
    }

    /// A run that failed before any target: the error, no table.
    #[test]
    fn summary_of_an_early_error() {
        let report = Report { status: "failed", ..Report::default() };
        let text = summary(&report, Some("registry: tag v9 not found\ncheck the tag"));
        assert!(text.contains("**Error:** registry: tag v9 not found check the tag"), "{text}");
        assert!(!text.contains("| target |"));
    }

    /// Huge diagnostics are cut under the runner's 1 MiB limit.
    #[test]
    fn summary_stays_under_the_limit() {
        let mut report = failed_report();
        report.targets[0].diagnostics = vec!["é".repeat(400); 5000];
        let text = summary(&report, None);
        assert!(text.len() < 1024 * 1024);
        assert!(text.ends_with("the job log has everything)\n"));
    }

    /// Tekton: kept under 4096 bytes together.
    #[test]
    fn tekton_limit() {
        let big = vec![("status", "ok".to_owned()), ("result", "x".repeat(5000))];
        let (kept, dropped) = tekton_results(&big);
        assert_eq!(kept, vec![("status", "ok".to_owned())]);
        assert!(dropped.is_some());
    }
}
