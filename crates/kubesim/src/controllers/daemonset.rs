//! The DaemonSet controller (`pkg/controller/daemon`): one pod per ready node that matches
//! the node selector; RollingUpdate replaces old pods at most `maxUnavailable` at a time,
//! `OnDelete` leaves them. Pods carry `controller-revision-hash`.

use serde_json::{Value, json};

use super::{PodName, condition, controlled_by, create_owned_pod, events, int, pod_ready, text};
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
    let owned = |state: &State| -> Vec<Value> {
        state
            .store
            .list(&PODS, Some(&ns))
            .into_iter()
            .filter(|p| controlled_by(p, &uid))
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
        let max_unavailable =
            int(ds, "/spec/updateStrategy/rollingUpdate/maxUnavailable", 1).max(1);
        let unavailable =
            nodes.iter().filter(|n| !on_node(&pods, n).is_some_and(|p| pod_ready(&p))).count()
                as i64;
        let mut budget = max_unavailable - unavailable;
        for pod in
            pods.iter().filter(|p| text(p, "/metadata/labels/controller-revision-hash") != hash)
        {
            if budget <= 0 {
                break;
            }
            let pod_name = text(pod, "/metadata/name").to_owned();
            state.store.remove(&PODS, &ns, &pod_name);
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
        let labels = json!({"controller-revision-hash": hash, "pod-template-generation": ds["metadata"]["generation"].as_i64().unwrap_or(1).to_string()});
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
