//! Fail-fast: what the new pods' statuses say, classified as the contract says. Pure: the
//! caller feeds pods as they change and keeps the observation counts.
//!
//! - fatal at once: `InvalidImageName`, `ErrImageNeverPull`, `CreateContainerConfigError`;
//! - fatal once seen in two observations: `ErrImagePull`, `ImagePullBackOff`,
//!   `CreateContainerError`, `RunContainerError`;
//! - fatal: `CrashLoopBackOff`, or more restarts than `max-restarts`, with the last
//!   termination's reason and exit code (`OOMKilled`, 137);
//! - a warning only: `Unschedulable` (a cluster autoscaler may add a node).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// What one pod says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The rollout cannot succeed: the cause, and what to do.
    Fail(String),
    /// Worth saying, not worth failing.
    Warn(String),
}

/// Per (pod, container, reason): the pod versions (`resourceVersion`) that showed it. A re-list
/// replays the same version, so only a new status write counts as another observation.
pub type Seen = BTreeMap<(String, String, String), BTreeSet<String>>;

/// Whether `pod` runs this rollout's images: every `(container, init, image)` of it.
pub fn runs(pod: &Pod, images: &[(String, bool, String)]) -> bool {
    let Some(spec) = &pod.spec else { return false };
    images.iter().all(|(name, init, image)| {
        let list = if *init {
            spec.init_containers.as_deref().unwrap_or_default()
        } else {
            &spec.containers
        };
        list.iter().any(|c| &c.name == name && c.image.as_deref() == Some(image.as_str()))
    })
}

const AT_ONCE: [&str; 3] = ["InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"];
const AFTER_TWO: [&str; 4] =
    ["ErrImagePull", "ImagePullBackOff", "CreateContainerError", "RunContainerError"];

fn advice(reason: &str) -> &'static str {
    match reason {
        "InvalidImageName" => "the image reference is malformed",
        "ErrImageNeverPull" => "imagePullPolicy is Never and the image is not on the node",
        "CreateContainerConfigError" => "fix the ConfigMap, Secret or security setting it names",
        "ErrImagePull" | "ImagePullBackOff" => {
            "the node cannot pull the image: check that it exists and that the cluster may pull it (imagePullSecrets)"
        }
        _ => "see the pod's events",
    }
}

fn terminated(status: &ContainerStatus) -> Option<String> {
    let t = status.last_state.as_ref()?.terminated.as_ref()?;
    let reason = crate::untrusted::short(t.reason.as_deref().unwrap_or("Error"), 60);
    Some(format!("{reason} (exit code {})", t.exit_code))
}

/// Classifies a pod of the new revision.
pub fn classify(pod: &Pod, max_restarts: i32, seen: &mut Seen) -> Option<Signal> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let version = pod.metadata.resource_version.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in all {
        if let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = crate::untrusted::short(waiting.reason.as_deref().unwrap_or_default(), 60);
            let message =
                crate::untrusted::short(waiting.message.as_deref().unwrap_or_default(), 300);
            let detail = if message.is_empty() { String::new() } else { format!(": {message}") };
            if AT_ONCE.contains(&reason.as_str()) {
                return Some(Signal::Fail(format!(
                    "pod {name} container {}: {reason}{detail} ({})",
                    c.name,
                    advice(&reason)
                )));
            }
            if AFTER_TWO.contains(&reason.as_str()) {
                // The two pull reasons are one condition, alternating.
                let key = if reason.contains("ImagePull") {
                    "ImagePull".to_owned()
                } else {
                    reason.clone()
                };
                let versions = seen.entry((name.clone(), c.name.clone(), key)).or_default();
                versions.insert(version.clone());
                if versions.len() >= 2 {
                    return Some(Signal::Fail(format!(
                        "pod {name} container {}: {reason}{detail} ({})",
                        c.name,
                        advice(&reason)
                    )));
                }
            }
            if reason == "CrashLoopBackOff" {
                let cause = terminated(c).unwrap_or_else(|| "exited".into());
                return Some(Signal::Fail(crash(&name, &c.name, &cause, c.restart_count)));
            }
        }
        if c.restart_count > max_restarts {
            let cause = terminated(c).unwrap_or_else(|| "exited".into());
            return Some(Signal::Fail(crash(&name, &c.name, &cause, c.restart_count)));
        }
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    unschedulable.map(|c| {
        Signal::Warn(format!(
            "pod {name} cannot be scheduled yet: {}",
            crate::untrusted::line(c.message.as_deref().unwrap_or_default())
        ))
    })
}

fn crash(pod: &str, container: &str, cause: &str, restarts: i32) -> String {
    let what = if cause.starts_with("OOMKilled") {
        "it ran out of memory: raise its memory limit or lower its use"
    } else {
        "see its logs below"
    };
    let restarts = match restarts {
        1 => "1 restart".to_owned(),
        n => format!("{n} restarts"),
    };
    format!("pod {pod} container {container} keeps crashing ({restarts}), last {cause}: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(statuses: serde_json::Value, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "api-1"},
            "status": {"containerStatuses": statuses, "conditions": conditions}}))
        .expect("pod")
    }

    fn waiting(reason: &str, restarts: i32) -> serde_json::Value {
        serde_json::json!([{"name": "app", "image": "a", "imageID": "", "ready": false, "restartCount": restarts,
            "state": {"waiting": {"reason": reason, "message": "m"}}}])
    }

    /// Permanent reasons fail at the first sight.
    #[test]
    fn fatal_at_once() {
        for reason in AT_ONCE {
            let signal =
                classify(&pod(waiting(reason, 0), serde_json::json!([])), 2, &mut Seen::new());
            assert!(
                matches!(signal, Some(Signal::Fail(ref m)) if m.contains(reason)),
                "{reason}: {signal:?}"
            );
        }
    }

    fn at_version(mut pod: Pod, version: &str) -> Pod {
        pod.metadata.resource_version = Some(version.into());
        pod
    }

    /// Pull errors fail on their second observation, whichever of the two reasons it shows; a
    /// re-list replaying the same version of the pod is not a second observation.
    #[test]
    fn pull_errors_after_two_observations() {
        let mut seen = Seen::new();
        let first = at_version(pod(waiting("ErrImagePull", 0), serde_json::json!([])), "10");
        assert_eq!(classify(&first, 2, &mut seen), None);
        assert_eq!(classify(&first, 2, &mut seen), None, "a replay is the same observation");
        let second = at_version(pod(waiting("ImagePullBackOff", 0), serde_json::json!([])), "11");
        let signal = classify(&second, 2, &mut seen);
        assert!(
            matches!(signal, Some(Signal::Fail(ref m)) if m.contains("ImagePullBackOff") && m.contains("imagePullSecrets"))
        );
    }

    /// Only pods running every image of this rollout are ours.
    #[test]
    fn pods_of_this_rollout() {
        let p: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "r@sha256:2"}],
                "initContainers": [{"name": "init", "image": "r@sha256:2"}]}}))
        .unwrap();
        let ours = |init| {
            vec![
                ("app".to_owned(), false, "r@sha256:2".to_owned()),
                ("init".to_owned(), init, "r@sha256:2".to_owned()),
            ]
        };
        assert!(runs(&p, &ours(true)));
        assert!(!runs(&p, &ours(false)));
        assert!(!runs(&p, &[("app".to_owned(), false, "r@sha256:1".to_owned())]));
    }

    /// Crash counts read as English.
    #[test]
    fn one_restart_is_singular() {
        assert!(crash("p", "c", "Error (exit code 1)", 1).contains("(1 restart)"));
        assert!(crash("p", "c", "Error (exit code 1)", 3).contains("(3 restarts)"));
    }

    /// A crash loop reports the last termination; OOMKilled says what to do about memory.
    #[test]
    fn crash_loop_reports_the_termination() {
        let statuses = serde_json::json!([{"name": "app", "image": "a", "imageID": "", "ready": false, "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]);
        let Some(Signal::Fail(m)) =
            classify(&pod(statuses, serde_json::json!([])), 5, &mut Seen::new())
        else {
            panic!()
        };
        assert!(m.contains("OOMKilled (exit code 137)") && m.contains("memory"), "{m}");
    }

    /// Restarts above max-restarts fail even while running.
    #[test]
    fn restarts_above_the_limit() {
        let statuses = serde_json::json!([{"name": "app", "image": "a", "imageID": "", "ready": true, "restartCount": 3,
            "state": {"running": {}}, "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]);
        assert!(matches!(
            classify(&pod(statuses.clone(), serde_json::json!([])), 2, &mut Seen::new()),
            Some(Signal::Fail(_))
        ));
        assert_eq!(classify(&pod(statuses, serde_json::json!([])), 3, &mut Seen::new()), None);
    }

    /// Unschedulable only warns.
    #[test]
    fn unschedulable_warns() {
        let conditions = serde_json::json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes"}]);
        let signal = classify(&pod(serde_json::json!([]), conditions), 2, &mut Seen::new());
        assert!(matches!(signal, Some(Signal::Warn(ref m)) if m.contains("0/2 nodes")));
    }
}
