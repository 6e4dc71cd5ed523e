//! The ReplicaSet controller (`pkg/controller/replicaset`): creates pods and deletes them
//! (gracefully) to match `spec.replicas`, and writes the status counts: pods being deleted
//! are not `replicas` but `terminatingReplicas`, and `minReadySeconds` delays availability.

use std::time::Duration;

use serde_json::{Value, json};

use super::{PodName, condition, controlled_by, earliest, events, int, text};
use crate::clock::{Instant, parse_rfc3339};
use crate::resources::{PODS, REPLICASETS};
use crate::{Shared, State};

/// Reconciles every ReplicaSet once; returns when a pod becomes available by minReadySeconds.
pub fn reconcile(shared: &Shared, state: &mut State, now: Instant) -> Option<Instant> {
    let sets: Vec<Value> = state.store.list(&REPLICASETS, None).into_iter().cloned().collect();
    let mut next = None;
    for rs in sets {
        next = earliest(next, sync(shared, state, now, &rs));
    }
    next
}

/// `IsPodActive`: neither being deleted nor terminal.
fn active(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null() && !super::terminal(pod)
}

pub(crate) fn ready_since(pod: &Value) -> Option<Instant> {
    let ready = condition(&pod["status"], "Ready")?;
    if ready["status"] != "True" {
        return None;
    }
    parse_rfc3339(ready["lastTransitionTime"].as_str()?)
}

/// Deletion preference (`ActivePodsWithRanks`, simplified): unscheduled, pending, not ready,
/// more restarts, newer — first.
fn deletion_rank(pod: &Value) -> (bool, bool, bool, i64, std::cmp::Reverse<String>) {
    let restarts: i64 = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    (
        !pod["spec"]["nodeName"].is_null(),
        text(pod, "/status/phase") != "Pending",
        ready_since(pod).is_some(),
        -restarts,
        std::cmp::Reverse(text(pod, "/metadata/creationTimestamp").to_owned()),
    )
}

fn sync(shared: &Shared, state: &mut State, now: Instant, rs: &Value) -> Option<Instant> {
    let ns = text(rs, "/metadata/namespace").to_owned();
    let uid = rs["metadata"]["uid"].clone();
    let owned: Vec<&Value> =
        state.store.list(&PODS, Some(&ns)).into_iter().filter(|p| controlled_by(p, &uid)).collect();
    let terminating = owned.iter().filter(|p| super::terminating(p)).count();
    let mut pods: Vec<Value> = owned.into_iter().filter(|p| active(p)).cloned().collect();
    // The status counts the pods as this sync found them, before it creates or deletes any
    // (the next sync counts those), as `syncReplicaSet` does.
    let found = pods.clone();
    let wanted = int(rs, "/spec/replicas", 1);
    let diff = pods.len() as i64 - wanted;
    let mut failure: Option<String> = None;
    if diff < 0 {
        for _ in 0..(-diff) {
            match create_pod(shared, state, rs) {
                Ok(pod) => {
                    let name = text(&pod, "/metadata/name").to_owned();
                    events::record(
                        shared,
                        state,
                        rs,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {name}"),
                        "replicaset-controller",
                    );
                }
                Err(message) => {
                    events::record(
                        shared,
                        state,
                        rs,
                        "Warning",
                        "FailedCreate",
                        &message,
                        "replicaset-controller",
                    );
                    failure = Some(message);
                    break;
                }
            }
        }
    } else if diff > 0 {
        pods.sort_by_key(deletion_rank);
        for pod in pods.drain(..diff as usize) {
            let name = text(&pod, "/metadata/name").to_owned();
            super::delete(shared, state, PODS, &pod);
            events::record(
                shared,
                state,
                rs,
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {name}"),
                "replicaset-controller",
            );
        }
    }

    let min_ready = Duration::from_secs(int(rs, "/spec/minReadySeconds", 0).max(0) as u64);
    let template_labels = &rs["spec"]["template"]["metadata"]["labels"];
    let mut next = None;
    let (mut ready, mut available, mut labeled) = (0, 0, 0);
    for pod in &found {
        let matches = template_labels
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| pod["metadata"]["labels"][k] == *v);
        labeled += i64::from(matches);
        if let Some(since) = ready_since(pod) {
            ready += 1;
            if min_ready.is_zero() || since + min_ready <= now {
                available += 1;
            } else {
                next = earliest(next, Some(since + min_ready));
            }
        }
    }
    let mut status = json!({
        "replicas": found.len(), "fullyLabeledReplicas": labeled, "readyReplicas": ready,
        "availableReplicas": available, "observedGeneration": rs["metadata"]["generation"],
        "terminatingReplicas": terminating
    });
    // `replicas` has no omitempty and `terminatingReplicas` is a pointer: both are written
    // when zero; the other counters are not.
    if let Value::Object(m) = &mut status {
        m.retain(|k, v| {
            matches!(k.as_str(), "replicas" | "observedGeneration" | "terminatingReplicas")
                || v.as_i64() != Some(0)
        });
    }
    let mut conditions: Vec<Value> =
        rs["status"]["conditions"].as_array().cloned().unwrap_or_default();
    match failure {
        Some(message) => super::set_condition(
            &mut conditions,
            json!({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": shared.clock.timestamp(),
                "reason": "FailedCreate", "message": message}),
            false,
        ),
        None => conditions.retain(|c| c["type"] != "ReplicaFailure"),
    }
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    if status != rs["status"]
        && let Some(current) =
            state.store.get(&REPLICASETS, &ns, text(rs, "/metadata/name")).cloned()
    {
        let mut updated = current;
        updated["status"] = status;
        state.store.replace(&REPLICASETS, updated);
    }
    next
}

/// A pod from the template, owned by the ReplicaSet.
fn create_pod(shared: &Shared, state: &mut State, rs: &Value) -> Result<Value, String> {
    if let Some(message) = state.kubelet.create_failure(&rs["spec"]["template"]) {
        return Err(message);
    }
    let generate = format!("{}-", text(rs, "/metadata/name"));
    super::create_owned_pod(shared, state, rs, PodName::Generate(&generate), &json!({}))
}
