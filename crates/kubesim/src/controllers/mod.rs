//! The controllers behind the API, run as a loop: each pass lets every controller act on the
//! current state until nothing changes, then sleeps until woken by a write or until the
//! earliest timer (a readiness delay, a restart back-off, a progress deadline) is due.

pub mod daemonset;
pub mod deployment;
pub mod events;
pub mod garbage;
pub mod pods;
pub mod replicaset;
pub mod statefulset;

pub(crate) use replicaset::ready_since;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::clock::Instant;
use crate::resources::Resource;
use crate::{Shared, State};

/// Earliest of optional times.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One pass: every controller until quiescent. Returns the next timer.
pub fn reconcile(shared: &Shared, state: &mut State) -> Option<Instant> {
    let mut next = None;
    for _ in 0..200 {
        let before = state.store.resource_version();
        let now = shared.clock.now();
        next = None;
        next = earliest(next, deployment::reconcile(shared, state, now));
        next = earliest(next, replicaset::reconcile(shared, state, now));
        next = earliest(next, statefulset::reconcile(shared, state, now));
        daemonset::reconcile(shared, state);
        next = earliest(next, pods::schedule(shared, state, now));
        let (kubelet, deferred) = pods::run_kubelet(shared, state, now);
        next = earliest(next, kubelet);
        garbage::collect(shared, state);
        if state.store.resource_version() == before && !deferred {
            break;
        }
    }
    next
}

/// The controller loop.
pub async fn run(shared: Arc<Shared>) {
    loop {
        let requested = shared.passes_requested.load(Ordering::SeqCst);
        let next = {
            let mut state = shared.lock();
            reconcile(&shared, &mut state)
        };
        pods::start_pulls(&shared);
        shared.passes_done.send_replace(requested);
        let sleep = match next {
            Some(at) if !shared.clock.is_manual() => {
                at.saturating_sub(shared.clock.now()).max(Duration::from_millis(1))
            }
            _ => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// How a new pod is named.
pub(crate) enum PodName<'a> {
    /// `generateName`: the prefix and five random characters.
    Generate(&'a str),
    /// A fixed name (StatefulSet ordinals).
    Exact(&'a str),
}

/// Creates a pod from `owner`'s template, controlled by it, with `labels` added.
/// Errors are the API error's message.
pub(crate) fn create_owned_pod(
    shared: &Shared,
    state: &mut State,
    owner: &Value,
    name: PodName<'_>,
    labels: &Value,
) -> Result<Value, String> {
    let template = &owner["spec"]["template"];
    let mut metadata = if template["metadata"].is_object() {
        template["metadata"].clone()
    } else {
        serde_json::json!({})
    };
    match name {
        PodName::Generate(prefix) => metadata["generateName"] = serde_json::json!(prefix),
        PodName::Exact(name) => metadata["name"] = serde_json::json!(name),
    }
    for (k, v) in labels.as_object().into_iter().flatten() {
        metadata["labels"][k] = v.clone();
    }
    metadata["namespace"] = owner["metadata"]["namespace"].clone();
    metadata["ownerReferences"] = serde_json::json!([{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]);
    let pod = serde_json::json!({"metadata": metadata, "spec": template["spec"]});
    let target = crate::api::Target {
        resource: crate::resources::PODS,
        namespace: owner["metadata"]["namespace"].as_str().map(str::to_owned),
        name: None,
        subresource: None,
    };
    crate::api::create(shared, state, &target, pod, false).map_err(|e| match e.body {
        crate::status::Body::Status(s) => s["message"].as_str().unwrap_or_default().to_owned(),
        crate::status::Body::Text(t) => t,
    })
}

/// Deletes an object as a controller's client does (DELETE with the default options: a pod
/// gracefully). Gone already is fine.
pub(crate) fn delete(shared: &Shared, state: &mut State, resource: Resource, object: &Value) {
    let (namespace, name) = crate::store::names(object);
    let target = crate::api::Target {
        resource,
        namespace: resource.namespaced.then_some(namespace),
        name: Some(name),
        subresource: None,
    };
    let _ =
        crate::deletion::delete(shared, state, &target, &crate::deletion::DeleteOptions::default());
}

/// Whether a pod is in a terminal phase.
pub(crate) fn terminal(pod: &Value) -> bool {
    matches!(text(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// Whether a pod is being deleted and still running (`IsPodTerminating`).
pub(crate) fn terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null() && !terminal(pod)
}

/// Whether a pod is Ready.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    condition(&pod["status"], "Ready").is_some_and(|c| c["status"] == "True")
}

/// A JSON integer at a pointer, or a default.
pub(crate) fn int(value: &Value, pointer: &str, default: i64) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(default)
}

/// A JSON string at a pointer.
pub(crate) fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// Whether `object` has an owner reference to the object with `uid`.
pub(crate) fn owned_by(object: &Value, uid: &Value) -> bool {
    object["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|r| r["uid"] == *uid)
}

/// Whether `object` is controlled by the object with `uid`.
pub(crate) fn controlled_by(object: &Value, uid: &Value) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["uid"] == *uid && r["controller"] == true)
}

/// Sets a condition with `SetDeploymentCondition`'s rules: same status and reason changes
/// nothing; same status keeps `lastTransitionTime`; otherwise the condition is replaced.
pub(crate) fn set_condition(
    conditions: &mut Vec<Value>,
    mut condition: Value,
    with_update_time: bool,
) {
    let kind = condition["type"].clone();
    if let Some(i) = conditions.iter().position(|c| c["type"] == kind) {
        let current = &conditions[i];
        if current["status"] == condition["status"] && current["reason"] == condition["reason"] {
            return;
        }
        if current["status"] == condition["status"] {
            condition["lastTransitionTime"] = current["lastTransitionTime"].clone();
        }
        conditions.remove(i);
    }
    if !with_update_time && let Value::Object(m) = &mut condition {
        m.remove("lastUpdateTime");
    }
    conditions.push(condition);
}

/// The condition of a type.
pub(crate) fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}
