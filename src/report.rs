//! Stage 5: what the run tells its caller. The contract's `result` JSON (last line of
//! standard output), and every output in `$GITHUB_OUTPUT` in the runner's heredoc form.

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The runner's reading of the file: `name<<DELIM`, lines, `DELIM`.
    fn parse(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = text.lines();
        while let Some(header) = lines.next() {
            let (name, delimiter) = header.split_once("<<").expect("heredoc header");
            let mut value = Vec::new();
            for line in lines.by_ref() {
                if line == delimiter {
                    break;
                }
                value.push(line);
            }
            out.push((name.to_owned(), value.join("\n")));
        }
        out
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
}
