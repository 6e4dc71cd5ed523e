//! Stage 5: what the run tells its caller. [`Report`] holds the facts the stages gathered;
//! this module turns them into the contract's outputs and the `result` JSON (the last line of
//! standard output); [`summary`] renders the Markdown step summary and [`files`] writes
//! `$GITHUB_OUTPUT`, the summary, the GitLab dotenv report and the Tekton results.

pub mod files;
pub mod summary;

use serde::Serialize;

use crate::workload::Kind;

/// How a run, or one target of it, ended: the contract's `status` values, and `skipped` for a
/// target the run never wrote to because it stopped first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Succeeded,
    Failed,
    TimedOut,
    Superseded,
    RolledBack,
    Applied,
    DryRun,
    Cancelled,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed-out",
            Self::Superseded => "superseded",
            Self::RolledBack => "rolled-back",
            Self::Applied => "applied",
            Self::DryRun => "dry-run",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }

    /// A rollout that did not end where this run wanted it: exit 1.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut | Self::Superseded | Self::RolledBack)
    }

    /// The run's status from its targets': the worst of them, in this order, else `applied`
    /// when nothing was waited on, `dry-run` for a dry run, `succeeded` otherwise.
    pub fn of_run(targets: &[Status]) -> Status {
        const WORST_FIRST: [Status; 6] = [
            Status::Cancelled,
            Status::Failed,
            Status::TimedOut,
            Status::Superseded,
            Status::RolledBack,
            Status::Skipped,
        ];
        if let Some(worst) = WORST_FIRST.iter().find(|s| targets.contains(s)) {
            // Skipped targets alone (the run stopped before writing) make a failed run.
            return if *worst == Status::Skipped { Status::Failed } else { *worst };
        }
        if !targets.is_empty() && targets.iter().all(|s| *s == Status::DryRun) {
            Status::DryRun
        } else if !targets.is_empty() && targets.iter().all(|s| *s == Status::Applied) {
            Status::Applied
        } else {
            Status::Succeeded
        }
    }
}

/// A container this run changed (or would have, in a dry run).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContainerReport {
    pub name: String,
    pub previous_image: String,
    pub image: String,
}

/// One target's end.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub status: Status,
    /// Whether its pod template changed (in a dry run: nothing changed).
    pub changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub message: String,
    pub containers: Vec<ContainerReport>,
    /// The image IDs the rollout's pods were seen running (containerd's `repo@sha256:…`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_ids: Vec<String>,
    /// What was shown under a failure: pods, events, log lines (for the step summary only).
    #[serde(skip)]
    pub diagnostics: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub changed: bool,
    pub duration_seconds: f64,
    pub targets: Vec<TargetReport>,
    /// Set when the JSON had to be shortened to fit a destination's limit.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Default for Report {
    fn default() -> Self {
        Self {
            status: Status::Failed,
            digest: None,
            image: None,
            changed: false,
            duration_seconds: 0.0,
            targets: Vec::new(),
            truncated: false,
        }
    }
}

/// The contract's output names, in its order.
pub const OUTPUTS: [&str; 9] = [
    "digest",
    "image",
    "previous-image",
    "changed",
    "revision",
    "status",
    "ready-replicas",
    "duration-seconds",
    "result",
];

impl Report {
    /// The outputs of the contract, in its order; `result` is the JSON within `limit` bytes.
    pub fn outputs_within(&self, limit: usize) -> Vec<(&'static str, String)> {
        let first = self.targets.first();
        let previous = first.and_then(|t| t.containers.first()).map(|c| c.previous_image.clone());
        let values = [
            self.digest.clone().unwrap_or_default(),
            self.image.clone().unwrap_or_default(),
            previous.unwrap_or_default(),
            self.changed.to_string(),
            first.and_then(|t| t.revision.clone()).unwrap_or_default(),
            self.status.as_str().to_owned(),
            first.map(|t| t.ready_replicas.to_string()).unwrap_or_default(),
            format!("{:.1}", self.duration_seconds),
            self.json_within(limit),
        ];
        OUTPUTS.into_iter().zip(values).collect()
    }

    /// The outputs with the whole `result`.
    pub fn outputs(&self) -> Vec<(&'static str, String)> {
        self.outputs_within(usize::MAX)
    }

    /// One line of JSON. `#` is written `\u0023`, so the line never holds the GitHub runner's
    /// legacy `##[command]` form, whatever the cluster put into a message.
    pub fn json(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"status\":\"{}\",\"error\":\"{e}\"}}", self.status.as_str())
        });
        text.replace('#', "\\u0023")
    }

    /// The JSON within `limit` bytes: whole if it fits; else without diagnostics, image IDs and
    /// long messages; else with only as many targets as fit. Marked `"truncated": true` when cut.
    pub fn json_within(&self, limit: usize) -> String {
        let whole = self.json();
        if whole.len() <= limit {
            return whole;
        }
        let mut short = self.clone();
        short.truncated = true;
        for t in &mut short.targets {
            t.image_ids.clear();
            t.message = crate::untrusted::short(&t.message, 120);
        }
        let mut text = short.json();
        while text.len() > limit && short.targets.pop().is_some() {
            text = short.json();
        }
        if text.len() <= limit {
            return text;
        }
        // Not even the bare run fits: the status alone, which always does in practice.
        format!("{{\"status\":\"{}\",\"truncated\":true}}", self.status.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn target(status: Status) -> TargetReport {
        TargetReport {
            kind: Kind::Deployment,
            namespace: "prod".into(),
            name: "api".into(),
            status,
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
        }
    }

    pub(crate) fn report(status: Status) -> Report {
        Report {
            status,
            digest: Some("sha256:aa".into()),
            image: Some("r/a@sha256:aa".into()),
            changed: true,
            duration_seconds: 1.25,
            targets: vec![target(status)],
            truncated: false,
        }
    }

    /// The outputs of the contract, in its order, from the first target.
    #[test]
    fn outputs_of_the_contract() {
        let report = report(Status::Succeeded);
        let names: Vec<&str> = report.outputs().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, OUTPUTS);
        let outputs: std::collections::BTreeMap<_, _> = report.outputs().into_iter().collect();
        assert_eq!(
            (outputs["previous-image"].as_str(), outputs["revision"].as_str()),
            ("r/a:1", "7")
        );
        assert_eq!(
            (outputs["ready-replicas"].as_str(), outputs["status"].as_str()),
            ("3", "succeeded")
        );
        assert_eq!(outputs["duration-seconds"], "1.2");
        let json: serde_json::Value = serde_json::from_str(&outputs["result"]).unwrap();
        assert_eq!(json["targets"][0]["containers"][0]["previous_image"], "r/a:1");
        assert_eq!(json["targets"][0]["kind"], "Deployment");
        assert_eq!(json["targets"][0]["status"], "succeeded");
    }

    /// The run's status is its worst target's; applied and dry-run only when all are.
    #[test]
    fn run_status_from_targets() {
        use Status::*;
        let cases: [(&[Status], Status); 8] = [
            (&[Succeeded, Applied], Succeeded),
            (&[Applied, Applied], Applied),
            (&[DryRun], DryRun),
            (&[Succeeded, TimedOut, Failed], Failed),
            (&[RolledBack, Succeeded], RolledBack),
            (&[Superseded, Succeeded], Superseded),
            (&[Failed, Skipped], Failed),
            (&[Cancelled, Failed], Cancelled),
        ];
        for (targets, want) in cases {
            assert_eq!(Status::of_run(targets), want, "{targets:?}");
        }
        assert!(RolledBack.is_failure() && Superseded.is_failure() && !Applied.is_failure());
    }

    /// No `#` survives in the JSON line, and it still parses to the same text.
    #[test]
    fn json_has_no_hash() {
        let mut r = report(Status::Failed);
        r.targets[0].message = "##[set-output name=status]succeeded #1".into();
        let line = r.json();
        assert!(!line.contains('#'), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["targets"][0]["message"], "##[set-output name=status]succeeded #1");
    }

    /// A result over the limit is shortened to valid JSON within it, marked as truncated.
    #[test]
    fn json_is_shortened_not_dropped() {
        let mut r = report(Status::Failed);
        r.targets = (0..40).map(|_| target(Status::Failed)).collect();
        r.targets[0].message = "x".repeat(3000);
        for limit in [4096, 1500, 300] {
            let text = r.json_within(limit);
            assert!(text.len() <= limit, "{limit}: {}", text.len());
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back["truncated"], true);
            assert_eq!(back["status"], "failed");
        }
        assert_eq!(r.json_within(usize::MAX), r.json());
    }
}
