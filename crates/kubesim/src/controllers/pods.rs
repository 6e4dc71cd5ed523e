//! The scheduler and the kubelet's glue. The scheduler binds pods to ready nodes that match
//! their node selector, or marks them Unschedulable. The kubelet's model (scripts, pulls,
//! container lifecycles, the status it writes) is [`crate::kubelet`], shared with the real
//! control plane's kubelet stand-in; here it runs over the store, its registry look-ups run
//! outside the state lock, and its events and logs are served.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::{condition, earliest, events, text};
use crate::api::Target;
use crate::clock::Instant;
use crate::kubelet::logs::LogQuery;
use crate::kubelet::set_pod_condition;
pub use crate::kubelet::{Behaviour, Kubelet};
use crate::resources::{NODES, PODS};
use crate::status::{self, ApiError};
use crate::{Node, Shared, State};

/// The Node object for a simulated node.
pub fn node_object(node: &Node, uid: &str, now: &str) -> Value {
    json!({
        "metadata": {"name": node.name, "uid": uid, "creationTimestamp": now, "labels": {
            "kubernetes.io/arch": node.arch, "kubernetes.io/os": "linux", "kubernetes.io/hostname": node.name,
            "beta.kubernetes.io/arch": node.arch, "beta.kubernetes.io/os": "linux"}},
        "spec": {},
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "nodeInfo": {"architecture": node.arch, "operatingSystem": "linux", "kubeletVersion": "v1.37.0-kubesim",
                "containerRuntimeVersion": "containerd://2.1.0"},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node.name}]
        }
    })
}

/// Binds unscheduled pods.
pub fn schedule(shared: &Shared, state: &mut State, _now: Instant) -> Option<Instant> {
    let nodes: Vec<Value> = state
        .store
        .list(&NODES, None)
        .into_iter()
        .filter(|n| {
            condition(&n["status"], "Ready").is_some_and(|c| c["status"] == "True")
                && n["spec"]["unschedulable"] != true
        })
        .cloned()
        .collect();
    let pending: Vec<Value> = state
        .store
        .list(&PODS, None)
        .into_iter()
        .filter(|p| p["spec"]["nodeName"].is_null())
        .cloned()
        .collect();
    let stamp = shared.clock.timestamp();
    for (i, pod) in pending.into_iter().enumerate() {
        let selector = pod["spec"]["nodeSelector"].as_object().cloned().unwrap_or_default();
        let fits: Vec<&Value> = nodes
            .iter()
            .filter(|n| selector.iter().all(|(k, v)| n["metadata"]["labels"][k] == *v))
            .collect();
        let mut pod = pod;
        if fits.is_empty() {
            let total = nodes.len();
            let message = format!(
                "0/{total} nodes are available: {total} node(s) didn't match Pod's node affinity/selector. \
                 preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
            );
            let already = condition(&pod["status"], "PodScheduled")
                .is_some_and(|c| c["message"] == message.as_str());
            if !already {
                set_pod_condition(
                    &mut pod,
                    "PodScheduled",
                    "False",
                    Some("Unschedulable"),
                    Some(&message),
                    &stamp,
                );
                let written = state.store.replace(&PODS, pod);
                events::record(
                    shared,
                    state,
                    &written,
                    "Warning",
                    "FailedScheduling",
                    &message,
                    "default-scheduler",
                );
            }
            continue;
        }
        // Spread pods over the fitting nodes.
        let node = fits[i % fits.len()];
        let node_name = text(node, "/metadata/name").to_owned();
        pod["spec"]["nodeName"] = json!(node_name);
        set_pod_condition(&mut pod, "PodScheduled", "True", None, None, &stamp);
        let written = state.store.replace(&PODS, pod);
        let (ns, name) = crate::store::names(&written);
        events::record(
            shared,
            state,
            &written,
            "Normal",
            "Scheduled",
            &format!("Successfully assigned {ns}/{name} to {node_name}"),
            "default-scheduler",
        );
    }
    None
}

/// Runs the kubelet over every scheduled pod; returns its next timer.
pub fn run_kubelet(shared: &Shared, state: &mut State, now: Instant) -> Option<Instant> {
    let pods: Vec<Value> = state
        .store
        .list(&PODS, None)
        .into_iter()
        .filter(|p| !p["spec"]["nodeName"].is_null())
        .cloned()
        .collect();
    let mut next = None;
    for mut pod in pods {
        let synced = state.kubelet.sync(&mut pod, now);
        pod["status"]["hostIP"] = json!("127.0.0.1");
        pod["status"]["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
        let written = state.store.replace(&PODS, pod);
        for event in synced.events {
            events::record(
                shared,
                state,
                &written,
                event.kind,
                event.reason,
                &event.message,
                "kubelet",
            );
        }
        next = earliest(next, synced.next);
    }
    // Forget containers of deleted pods.
    let live: BTreeSet<String> = state
        .store
        .list(&PODS, None)
        .into_iter()
        .map(|p| text(p, "/metadata/uid").to_owned())
        .collect();
    state.kubelet.retain_pods(&live);
    next
}

/// Starts the registry look-ups the kubelet asked for (outside the state lock).
pub fn start_pulls(shared: &Arc<Shared>) {
    let images: Vec<String> = shared.lock().kubelet.take_pulls();
    for image in images {
        let shared = shared.clone();
        shared.pulls_in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::spawn(async move {
            let insecure = &shared.options.insecure_registries;
            let outcome =
                crate::kubelet::pull::resolve(&shared.registry_client, insecure, &image).await;
            let now = shared.clock.now();
            shared.lock().kubelet.pulled(&image, outcome, now);
            shared.pulls_in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            shared.wake.notify_one();
        });
    }
}

/// `GET .../pods/<name>/log`: the scripted lines of a container (`previous` for the last
/// instance that exited), honouring `tailLines`.
pub fn logs(
    state: &State,
    target: &Target,
    query: &BTreeMap<String, String>,
) -> Result<String, ApiError> {
    let name = target.name.as_deref().unwrap_or_default();
    let ns = target.namespace.as_deref().unwrap_or_default();
    let pod = state.store.get(&PODS, ns, name).ok_or_else(|| status::not_found(&PODS, name))?;
    let query = LogQuery {
        container: query.get("container").cloned(),
        previous: query.get("previous").is_some_and(|p| p == "true"),
        tail_lines: query.get("tailLines").and_then(|t| t.parse().ok()),
    };
    state.kubelet.container_logs(pod, &query).map_err(status::bad_request)
}

/// The kubelet's HTTP client: the OS-independent public roots plus `ca` (PEM).
pub use crate::kubelet::pull::registry_client;
