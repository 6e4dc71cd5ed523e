//! What to show when a rollout fails, and what the new pods run when it succeeds: the pods of
//! this rollout with their states, the recent Warning events of those pods and of their
//! ReplicaSet, the last log lines of a crashing container's previous run, and the image IDs.
//! Everything here comes from the cluster, so every line goes through [`crate::untrusted`],
//! every read is capped (pods shown, events per object, log bytes and lines), and the whole
//! of it has its own short deadline: diagnostics never keep a failed run waiting.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};
use tokio::time::Instant;

use super::Pin;
use crate::cluster::api::{Request, call};

/// The most diagnostics may take, after the rollout's own deadline: a run that timed out
/// against a server that stopped answering still ends within its timeout plus a few seconds.
const BUDGET: Duration = Duration::from_secs(4);
const PODS_SHOWN: usize = 5;
const EVENTS_SHOWN: usize = 5;
const LOG_LINES: usize = 20;
const LOG_BYTES: i64 = 16 * 1024;

/// Pods of this rollout: the workload's pods that run this run's images.
/// `None` when the API server refused or did not answer in time.
async fn our_pods(client: &kube::Client, pin: &Pin, deadline: Instant) -> Option<Vec<Pod>> {
    let Ok(selector) = kube::core::Selector::try_from(pin.selector.clone()) else {
        return Some(Vec::new());
    };
    let api = Api::<Pod>::namespaced(client.clone(), &pin.namespace);
    let what = format!("the pods of {}/{}", pin.kind.lower(), pin.name);
    let request = Request { verb: "list", resource: "pods", what: &what };
    match call(deadline, request, api.list(&ListParams::default().labels_from(&selector))).await {
        Ok(list) => {
            Some(list.items.into_iter().filter(|p| super::pods::runs(p, &pin.images)).collect())
        }
        Err(e) => {
            crate::log::debug(e);
            None
        }
    }
}

fn state_of(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let mut parts = vec![status.phase.unwrap_or_else(|| "Pending".into())];
    if pod.metadata.deletion_timestamp.is_some() {
        parts.push("Terminating".into());
    }
    for c in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            parts.push(format!("{}: {}", c.name, w.reason.as_deref().unwrap_or("Waiting")));
        }
        // Running and not Ready: the readiness probe fails (its events say why).
        if c.state.as_ref().is_some_and(|s| s.running.is_some()) && !c.ready {
            parts.push(format!("{} running, not ready", c.name));
        }
        if let Some(t) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
            parts.push(format!(
                "{} last exited: {} (exit code {})",
                c.name,
                t.reason.as_deref().unwrap_or("Error"),
                t.exit_code
            ));
        }
        if c.restart_count > 0 {
            parts.push(format!("{} restarts: {}", c.name, c.restart_count));
        }
    }
    crate::untrusted::line(&parts.join(", "))
}

/// Recent Warning events about `kind`/`name`, newest last.
async fn warnings(
    client: &kube::Client,
    namespace: &str,
    kind: &str,
    name: &str,
    deadline: Instant,
) -> Vec<String> {
    let api = Api::<Event>::namespaced(client.clone(), namespace);
    let params = ListParams::default()
        .fields(&format!("involvedObject.kind={kind},involvedObject.name={name},type=Warning"))
        .limit(100);
    let what = format!("the events of {kind} {name}");
    let request = Request { verb: "list", resource: "events", what: &what };
    let mut events = match call(deadline, request, api.list(&params)).await {
        Ok(list) => list.items,
        Err(e) => {
            crate::log::debug(e);
            return Vec::new();
        }
    };
    events.sort_by_key(last_seen);
    let skip = events.len().saturating_sub(EVENTS_SHOWN);
    events
        .into_iter()
        .skip(skip)
        .map(|e| {
            let count =
                repeats(&e).filter(|c| *c > 1).map(|c| format!(" (x{c})")).unwrap_or_default();
            crate::untrusted::line(&format!(
                "event {}: {}{count}",
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            ))
        })
        .collect()
}

/// When an event last happened. The kubelet's core/v1 events carry `lastTimestamp`; those
/// recorded through events.k8s.io (the scheduler's) leave it empty and keep the time in
/// `series.lastObservedTime` or `eventTime`.
fn last_seen(event: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.series.as_ref().and_then(|s| s.last_observed_time.as_ref()).map(|t| t.0))
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.first_timestamp.as_ref().map(|t| t.0))
}

/// How many times an event happened: `count`, or `series.count` for events.k8s.io ones.
fn repeats(event: &Event) -> Option<i32> {
    event.count.or_else(|| event.series.as_ref().and_then(|s| s.count))
}

/// The lines to print under a failure, within [`BUDGET`].
pub async fn failure(client: &kube::Client, pin: &Pin) -> Vec<String> {
    let deadline = Instant::now() + BUDGET;
    let mut lines = Vec::new();
    let Some(pods) = our_pods(client, pin, deadline).await else {
        lines.push(format!(
            "(the pods could not be listed within {}s: no pod states, events or logs to show)",
            BUDGET.as_secs()
        ));
        return lines;
    };
    // The ReplicaSet's own warnings (pods it could not create) come first.
    let replicasets: std::collections::BTreeSet<String> = pods
        .iter()
        .flat_map(|p| p.metadata.owner_references.iter().flatten())
        .filter(|o| o.kind == "ReplicaSet")
        .map(|o| o.name.clone())
        .collect();
    for rs in &replicasets {
        for line in warnings(client, &pin.namespace, "ReplicaSet", rs, deadline).await {
            lines.push(format!("replicaset {rs}: {line}"));
        }
    }
    let api = Api::<Pod>::namespaced(client.clone(), &pin.namespace);
    for pod in pods.iter().take(PODS_SHOWN) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        lines.push(format!("pod {name}: {}", state_of(pod)));
        for line in warnings(client, &pin.namespace, "Pod", &name, deadline).await {
            lines.push(format!("  {line}"));
        }
        let crashed = pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .filter(|c| c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).is_some());
        for c in crashed {
            let params = LogParams {
                container: Some(c.name.clone()),
                previous: true,
                tail_lines: Some(LOG_LINES as i64),
                limit_bytes: Some(LOG_BYTES),
                ..LogParams::default()
            };
            let what = format!("the log of pod {name}");
            let request = Request { verb: "get", resource: "pods/log", what: &what };
            if let Ok(text) = call(deadline, request, api.logs(&name, &params)).await {
                lines.push(format!("  last log lines of {} (previous run):", c.name));
                lines.extend(
                    crate::untrusted::lines(&text, LOG_LINES)
                        .into_iter()
                        .map(|l| format!("    {l}")),
                );
            }
        }
    }
    if Instant::now() >= deadline {
        lines.push(format!(
            "(the API server answered too slowly: what is shown is what came within {}s)",
            BUDGET.as_secs()
        ));
    }
    lines
}

/// The image IDs that the rollout's running pods report for the changed containers: what the
/// nodes actually pulled, which can differ from the pinned digest (a mirror, a webhook).
pub async fn image_ids(client: &kube::Client, pin: &Pin) -> Vec<String> {
    let deadline = Instant::now() + BUDGET;
    let names: Vec<&str> = pin.images.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut ids: Vec<String> = our_pods(client, pin, deadline)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .flat_map(|p| {
            p.status.iter().flat_map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
            })
        })
        .filter(|c| names.contains(&c.name.as_str()) && !c.image_id.is_empty())
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some() || s.terminated.is_some()))
        .map(|c| crate::untrusted::short(c.image_id.trim_start_matches("docker-pullable://"), 300))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheduler's events (events.k8s.io: no lastTimestamp, a series) sort by when they
    /// last happened among the kubelet's, and keep their repeat count.
    #[test]
    fn events_of_both_apis_sort_by_time() {
        let kubelet: Event = serde_json::from_value(serde_json::json!({"metadata": {"name": "a"},
            "involvedObject": {}, "reason": "Failed", "count": 3,
            "lastTimestamp": "2026-12-02T10:00:05Z"}))
        .unwrap();
        let scheduler: Event =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "b"},
            "involvedObject": {}, "reason": "FailedScheduling",
            "eventTime": "2026-12-02T10:00:01.000000Z",
            "series": {"count": 4, "lastObservedTime": "2026-12-02T10:00:09.000000Z"}}))
            .unwrap();
        let mut events = [scheduler.clone(), kubelet.clone()];
        events.sort_by_key(last_seen);
        assert_eq!(events[1].reason.as_deref(), Some("FailedScheduling"));
        assert_eq!((repeats(&kubelet), repeats(&scheduler)), (Some(3), Some(4)));
    }

    /// A pod's line names what holds it back: a waiting reason, a container that runs but is
    /// not ready, the last exit, the restarts; a ready container adds nothing.
    #[test]
    fn pod_states() {
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p"},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"running": {}}},
                {"name": "side", "image": "", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}},
                {"name": "job", "image": "", "imageID": "", "ready": false, "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}}))
        .unwrap();
        assert_eq!(
            state_of(&pod),
            "Running, app running, not ready, job: CrashLoopBackOff, job last exited: OOMKilled \
             (exit code 137), job restarts: 3"
        );
    }
}
