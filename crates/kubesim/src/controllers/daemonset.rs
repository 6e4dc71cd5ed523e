//! The DaemonSet controller (`pkg/controller/daemon`): one pod per ready node that matches
//! the node selector; RollingUpdate replaces old pods at most `maxUnavailable` at a time,
//! `OnDelete` leaves them. Pods carry `controller-revision-hash`.

use serde_json::{Value, json};

use super::{PodName, condition, controlled_by, create_owned_pod, events, pod_ready, text};
use crate::resources::{DAEMONSETS, NODES, PODS};
use crate::{Shared, State};

pub fn reconcile(shared: &Shared, state: &mut State) {
    let sets: Vec<Value> = state.store.list(&DAEMONSETS, None).into_iter().cloned().collect();
    for ds in sets {
        sync(shared, state, &ds);
    }
}

fn sync(shared: &Shared, state: &mut State, ds: &Value) {
    let ns = text(ds, "/metadata/namespace").to_owned();
    let name = text(ds, "/metadata/name").to_owned();
    let uid = ds["metadata"]["uid"].clone();
    let revision = super::statefulset::revision(shared, state, ds);
    let hash = revision.rsplit('-').next().unwrap_or_default().to_owned();
    let selector =
        ds["spec"]["template"]["spec"]["nodeSelector"].as_object().cloned().unwrap_or_default();
    let nodes: Vec<String> = state
        .store
        .list(&NODES, None)
        .into_iter()
        .filter(|n| condition(&n["status"], "Ready").is_some_and(|c| c["status"] == "True"))
        .filter(|n| selector.iter().all(|(k, v)| n["metadata"]["labels"][k] == *v))
        .map(|n| text(n, "/metadata/name").to_owned())
        .collect();
    // getNodesToDaemonPods: a terminal pod being deleted is the kubelet's business only.
    let owned = |state: &State| -> Vec<Value> {
        state
            .store
            .list(&PODS, Some(&ns))
            .into_iter()
            .filter(|p| controlled_by(p, &uid))
            .filter(|p| !super::terminal(p) || p["metadata"]["deletionTimestamp"].is_null())
            .cloned()
            .collect()
    };
    let on_node = |pods: &[Value], node: &str| -> Option<Value> {
        pods.iter().find(|p| text(p, "/spec/nodeName") == node).cloned()
    };
    let on_delete = text(ds, "/spec/updateStrategy/type") == "OnDelete";

    // Replace stale pods, at most maxUnavailable unavailable at a time.
    let pods = owned(state);
    if !on_delete {
        let max_unavailable = max_unavailable(ds, nodes.len() as i64);
        let unavailable =
            nodes.iter().filter(|n| !on_node(&pods, n).is_some_and(|p| pod_ready(&p))).count()
                as i64;
        let mut budget = max_unavailable - unavailable;
        for pod in pods.iter().filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && text(p, "/metadata/labels/controller-revision-hash") != hash
        }) {
            if budget <= 0 {
                break;
            }
            let pod_name = text(pod, "/metadata/name").to_owned();
            super::delete(shared, state, PODS, pod);
            events::record(
                shared,
                state,
                ds,
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {pod_name}"),
                "daemonset-controller",
            );
            budget -= 1;
        }
    }
    // One pod per eligible node, pinned to it.
    let pods = owned(state);
    for node in &nodes {
        if on_node(&pods, node).is_some() {
            continue;
        }
        let mut owner = ds.clone();
        owner["spec"]["template"]["spec"]["nodeName"] = json!(node);
        add_daemon_tolerations(&mut owner["spec"]["template"]["spec"]);
        let generation = text(ds, "/metadata/annotations/deprecated.daemonset.template.generation");
        let labels = json!({"controller-revision-hash": hash,
            "pod-template-generation": if generation.is_empty() { "1" } else { generation }});
        let prefix = format!("{name}-");
        match create_owned_pod(shared, state, &owner, PodName::Generate(&prefix), &labels) {
            Ok(pod) => events::record(
                shared,
                state,
                ds,
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {}", text(&pod, "/metadata/name")),
                "daemonset-controller",
            ),
            Err(message) => events::record(
                shared,
                state,
                ds,
                "Warning",
                "FailedCreate",
                &message,
                "daemonset-controller",
            ),
        }
    }

    let pods = owned(state);
    let scheduled =
        pods.iter().filter(|p| nodes.iter().any(|n| n == text(p, "/spec/nodeName"))).count() as i64;
    let updated = pods
        .iter()
        .filter(|p| text(p, "/metadata/labels/controller-revision-hash") == hash)
        .count() as i64;
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let desired = nodes.len() as i64;
    let mut status = json!({
        "currentNumberScheduled": scheduled, "desiredNumberScheduled": desired, "numberMisscheduled": 0,
        "numberReady": ready, "observedGeneration": ds["metadata"]["generation"],
        "updatedNumberScheduled": updated, "numberAvailable": ready, "numberUnavailable": (desired - ready).max(0)
    });
    if let Value::Object(m) = &mut status {
        m.retain(|k, v| {
            !matches!(
                k.as_str(),
                "updatedNumberScheduled" | "numberAvailable" | "numberUnavailable"
            ) || v.as_i64() != Some(0)
        });
    }
    if status != ds["status"] {
        let mut updated = ds.clone();
        updated["status"] = status;
        state.store.replace(&DAEMONSETS, updated);
    }
}

/// `maxUnavailable` of the rolling update, a percentage of the nodes that should run the
/// pod rounded up (`GetScaledValueFromIntOrPercent`), at least 1 when maxSurge is 0.
fn max_unavailable(ds: &Value, desired: i64) -> i64 {
    let value = &ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"];
    let scaled = match value {
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(percent) => (percent * desired + 99) / 100,
            None => s.parse().unwrap_or(1),
        },
        other => other.as_i64().unwrap_or(1),
    };
    scaled.max(1)
}

/// The tolerations the DaemonSet controller gives its pods, so node conditions do not evict
/// or keep them off (`AddOrUpdateDaemonPodTolerations`).
fn add_daemon_tolerations(spec: &mut Value) {
    let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let wanted = [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    for (key, effect) in wanted {
        if !tolerations.iter().any(|t| t["key"] == key && t["effect"] == effect) {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
    spec["tolerations"] = json!(tolerations);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentages of the desired pods round up; a number is taken as it is; never below 1.
    #[test]
    fn max_unavailable_scales_percentages() {
        let ds = |v: Value| json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": v}}}});
        assert_eq!(max_unavailable(&ds(json!("50%")), 5), 3);
        assert_eq!(max_unavailable(&ds(json!("10%")), 2), 1);
        assert_eq!(max_unavailable(&ds(json!("0%")), 4), 1);
        assert_eq!(max_unavailable(&ds(json!(2)), 4), 2);
        assert_eq!(max_unavailable(&json!({}), 4), 1);
    }
}
