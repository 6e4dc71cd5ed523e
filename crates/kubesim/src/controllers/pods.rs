//! The scheduler and the kubelet's glue. The scheduler binds pods to ready nodes that match
//! their node selector, or marks them Unschedulable and tries again when the nodes change or
//! five minutes have passed, writing events.k8s.io Events as the real one does. The kubelet's model (scripts, pulls,
//! container lifecycles, the status it writes) is [`crate::kubelet`], shared with the real
//! control plane's kubelet stand-in; here it runs over the store, its registry look-ups run
//! outside the state lock, and its events and logs are served.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{condition, earliest, events, text};
use crate::api::Target;
use crate::clock::Instant;
use crate::deletion::DeleteOptions;
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

/// How long an unschedulable pod waits before the scheduler tries it again when nothing in
/// the cluster changed (`podMaxInUnschedulablePodsDuration`).
const RETRY_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// The scheduler's memory of the pods it could not place.
#[derive(Default)]
pub struct Attempts {
    /// When each pod (by uid) was last tried.
    tried: BTreeMap<String, Instant>,
    /// The schedulable nodes and their labels when they were tried: a change tries every
    /// waiting pod again (a node added, cordoned, labelled).
    nodes: String,
}

/// Binds unscheduled pods to a ready node that fits, or marks them Unschedulable; returns
/// when a waiting pod is due for another try.
pub fn schedule(shared: &Shared, state: &mut State, now: Instant) -> Option<Instant> {
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
    let fingerprint: String = nodes
        .iter()
        .map(|n| format!("{}{}", n["metadata"]["name"], n["metadata"]["labels"]))
        .collect();
    if fingerprint != state.scheduling.nodes {
        state.scheduling = Attempts { tried: BTreeMap::new(), nodes: fingerprint };
    }
    let pending: Vec<Value> = state
        .store
        .list(&PODS, None)
        .into_iter()
        .filter(|p| p["spec"]["nodeName"].is_null() && p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect();
    let waiting: BTreeSet<String> =
        pending.iter().map(|p| text(p, "/metadata/uid").to_owned()).collect();
    state.scheduling.tried.retain(|uid, _| waiting.contains(uid));
    let mut next = None;
    for (i, pod) in pending.into_iter().enumerate() {
        let uid = text(&pod, "/metadata/uid").to_owned();
        if let Some(tried) = state.scheduling.tried.get(&uid)
            && now < *tried + RETRY_UNSCHEDULABLE
        {
            next = earliest(next, Some(*tried + RETRY_UNSCHEDULABLE));
            continue;
        }
        let selector = pod["spec"]["nodeSelector"].as_object().cloned().unwrap_or_default();
        let fits: Vec<&Value> = nodes
            .iter()
            .filter(|n| selector.iter().all(|(k, v)| n["metadata"]["labels"][k] == *v))
            .collect();
        if fits.is_empty() {
            unschedulable(shared, state, pod, nodes.len());
            state.scheduling.tried.insert(uid, now);
            next = earliest(next, Some(now + RETRY_UNSCHEDULABLE));
            continue;
        }
        // Spread pods over the fitting nodes.
        let node = fits[i % fits.len()];
        bind(shared, state, pod, text(node, "/metadata/name"));
    }
    next
}

/// A failed scheduling attempt: the event about the pod as the scheduler saw it, then the
/// PodScheduled condition (with the generation it was computed for).
fn unschedulable(shared: &Shared, state: &mut State, mut pod: Value, total: usize) {
    let message = format!(
        "0/{total} nodes are available: {total} node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
    );
    let event = ("Warning", "FailedScheduling", "Scheduling");
    events::record_scheduler(shared, state, &pod, event, &message);
    let stamp = shared.clock.timestamp();
    set_pod_condition(
        &mut pod,
        "PodScheduled",
        "False",
        Some("Unschedulable"),
        Some(&message),
        &stamp,
    );
    let generation = pod["metadata"]["generation"].clone();
    if let Some(c) = pod["status"]["conditions"]
        .as_array_mut()
        .and_then(|c| c.iter_mut().find(|c| c["type"] == "PodScheduled"))
    {
        c["observedGeneration"] = generation;
    }
    state.store.replace(&PODS, pod);
}

/// The binding: `nodeName` and PodScheduled (no observedGeneration: the binding sets it
/// outside the pod strategy), and the Scheduled event.
fn bind(shared: &Shared, state: &mut State, mut pod: Value, node_name: &str) {
    let (ns, name) = crate::store::names(&pod);
    let message = format!("Successfully assigned {ns}/{name} to {node_name}");
    events::record_scheduler(shared, state, &pod, ("Normal", "Scheduled", "Binding"), &message);
    pod["spec"]["nodeName"] = json!(node_name);
    set_pod_condition(&mut pod, "PodScheduled", "True", None, None, &shared.clock.timestamp());
    if let Some(c) = pod["status"]["conditions"]
        .as_array_mut()
        .and_then(|c| c.iter_mut().find(|c| c["type"] == "PodScheduled"))
        && let Some(m) = c.as_object_mut()
    {
        m.remove("observedGeneration");
    }
    state.store.replace(&PODS, pod);
}

/// Runs the kubelet over every scheduled pod: the model's sync, or for a pod being deleted
/// its stop and, once due, the delete with grace 0 that removes it. Returns its next timer,
/// and whether a deletion was left for the next round: a kubelet learns of a deletion after
/// the controllers do, so they see the pod terminating before its containers stop.
pub fn run_kubelet(shared: &Shared, state: &mut State, now: Instant) -> (Option<Instant>, bool) {
    let mut deferred = false;
    let pods: Vec<Value> = state
        .store
        .list(&PODS, None)
        .into_iter()
        .filter(|p| !p["spec"]["nodeName"].is_null())
        .cloned()
        .collect();
    let mut next = None;
    for mut pod in pods {
        let uid = text(&pod, "/metadata/uid").to_owned();
        if pod["metadata"]["deletionTimestamp"].is_string() && state.deletions_seen.insert(uid) {
            deferred = true;
            continue;
        }
        let (synced, remove) = if pod["metadata"]["deletionTimestamp"].is_string() {
            let stopped = state.kubelet.stop(&mut pod, now, shared.options.termination);
            (stopped.synced, stopped.remove)
        } else {
            let synced = state.kubelet.sync(&mut pod, now);
            pod["status"]["hostIP"] = json!("127.0.0.1");
            pod["status"]["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
            (synced, false)
        };
        let written = state.store.replace(&PODS, pod);
        for event in synced.events {
            let field_path = format!("spec.containers{{{}}}", event.container);
            let report = (event.kind, event.reason, event.message.as_str());
            events::record_at(shared, state, &written, Some(&field_path), report, "kubelet");
        }
        if remove {
            let (ns, name) = crate::store::names(&written);
            let target =
                Target { resource: PODS, namespace: Some(ns), name: Some(name), subresource: None };
            let options = DeleteOptions::now_for(text(&written, "/metadata/uid"));
            // Already gone (deleted with grace 0 by a client): nothing left to do.
            let _ = crate::deletion::delete(shared, state, &target, &options);
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
    state.deletions_seen.retain(|uid| live.contains(uid));
    state.kubelet.retain_pods(&live);
    (next, deferred)
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
