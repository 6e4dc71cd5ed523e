//! The StatefulSet controller (`pkg/controller/statefulset`): pods `<name>-<ordinal>`
//! labelled with their revision, created in order (OrderedReady), updated from the highest
//! ordinal down to the partition one pod at a time once every pod is ready; `OnDelete`
//! leaves running pods alone. Revisions are ControllerRevisions `<name>-<hash>`.

use serde_json::{Value, json};

use std::time::Duration;

use super::{PodName, controlled_by, create_owned_pod, earliest, events, int, pod_ready, text};
use crate::clock::Instant;
use crate::resources::{CONTROLLER_REVISIONS, PODS, STATEFULSETS};
use crate::{Shared, State};

const REVISION_LABEL: &str = "controller-revision-hash";

/// Reconciles every StatefulSet once; returns when a pod becomes available by
/// minReadySeconds.
pub fn reconcile(shared: &Shared, state: &mut State, now: Instant) -> Option<Instant> {
    let sets: Vec<Value> = state.store.list(&STATEFULSETS, None).into_iter().cloned().collect();
    let mut next = None;
    for sts in sets {
        next = earliest(next, sync(shared, state, now, &sts));
    }
    next
}

/// The ControllerRevision name for the current template, creating it when new.
pub(crate) fn revision(shared: &Shared, state: &mut State, owner: &Value) -> String {
    let hash = super::deployment::template_hash(
        &owner["spec"]["template"],
        owner["status"]["collisionCount"].as_i64(),
    );
    let name = format!("{}-{hash}", text(owner, "/metadata/name"));
    let ns = text(owner, "/metadata/namespace").to_owned();
    if state.store.get(&CONTROLLER_REVISIONS, &ns, &name).is_none() {
        let uid = &owner["metadata"]["uid"];
        let number = state
            .store
            .list(&CONTROLLER_REVISIONS, Some(&ns))
            .into_iter()
            .filter(|r| controlled_by(r, uid))
            .map(|r| r["revision"].as_i64().unwrap_or(0))
            .max()
            .unwrap_or(0)
            + 1;
        let revision = json!({
            "metadata": {"name": name, "namespace": ns, "labels": owner["spec"]["selector"]["matchLabels"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner["kind"], "name": owner["metadata"]["name"],
                    "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
            "data": {"spec": {"template": owner["spec"]["template"]}},
            "revision": number
        });
        let target = crate::api::Target {
            resource: CONTROLLER_REVISIONS,
            namespace: Some(ns),
            name: None,
            subresource: None,
        };
        let _ = crate::api::create(shared, state, &target, revision, false);
    }
    name
}

fn sync(shared: &Shared, state: &mut State, now: Instant, sts: &Value) -> Option<Instant> {
    let ns = text(sts, "/metadata/namespace").to_owned();
    let name = text(sts, "/metadata/name").to_owned();
    let update_revision = revision(shared, state, sts);
    let replicas = int(sts, "/spec/replicas", 1);
    let on_delete = text(sts, "/spec/updateStrategy/type") == "OnDelete";
    let partition = int(sts, "/spec/updateStrategy/rollingUpdate/partition", 0);
    let uid = sts["metadata"]["uid"].clone();
    let pods_of = |state: &State| -> Vec<Option<Value>> {
        (0..replicas)
            .map(|i| {
                state
                    .store
                    .get(&PODS, &ns, &format!("{name}-{i}"))
                    .filter(|p| controlled_by(p, &uid))
                    .cloned()
            })
            .collect()
    };
    let mut current_revision =
        sts["status"]["currentRevision"].as_str().unwrap_or(&update_revision).to_owned();

    // Scale: create the first missing ordinal once all before it are ready (OrderedReady).
    let pods = pods_of(state);
    for (i, pod) in pods.iter().enumerate() {
        match pod {
            Some(p) if pod_ready(p) => continue,
            Some(_) => break,
            None => {
                let pod_name = format!("{name}-{i}");
                // New pods get the current revision below the partition, the update revision above.
                let revision = if (i as i64) < partition || on_delete {
                    &current_revision
                } else {
                    &update_revision
                };
                let labels = json!({REVISION_LABEL: revision, "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": i.to_string()});
                let mut owner = sts.clone();
                if revision != &update_revision
                    && let Some(old) = state.store.get(&CONTROLLER_REVISIONS, &ns, revision)
                {
                    owner["spec"]["template"] = old["data"]["spec"]["template"].clone();
                }
                match create_owned_pod(shared, state, &owner, PodName::Exact(&pod_name), &labels) {
                    Ok(_) => events::record(
                        shared,
                        state,
                        sts,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("create Pod {pod_name} in StatefulSet {name} successful"),
                        "statefulset-controller",
                    ),
                    Err(message) => events::record(
                        shared,
                        state,
                        sts,
                        "Warning",
                        "FailedCreate",
                        &format!(
                            "create Pod {pod_name} in StatefulSet {name} failed error: {message}"
                        ),
                        "statefulset-controller",
                    ),
                }
                break;
            }
        }
    }
    // Scale down: remove ordinals at or above replicas, highest first.
    let extra: Vec<String> = state
        .store
        .list(&PODS, Some(&ns))
        .into_iter()
        .filter(|p| controlled_by(p, &uid))
        .filter(|p| {
            text(p, "/metadata/labels/apps.kubernetes.io~1pod-index")
                .parse::<i64>()
                .is_ok_and(|i| i >= replicas)
        })
        .map(|p| text(p, "/metadata/name").to_owned())
        .collect();
    if let Some(victim) = extra.last()
        && let Some(pod) = state.store.get(&PODS, &ns, victim).cloned()
        && pod["metadata"]["deletionTimestamp"].is_null()
    {
        super::delete(shared, state, PODS, &pod);
    }

    // Rolling update: one pod at a time, highest ordinal first, down to the partition.
    let pods = pods_of(state);
    let all_ready = pods.iter().all(|p| p.as_ref().is_some_and(pod_ready));
    if !on_delete && all_ready {
        let stale = (partition.max(0)..replicas).rev().find(|i| {
            pods[*i as usize].as_ref().is_some_and(|p| {
                text(p, "/metadata/labels/controller-revision-hash") != update_revision
            })
        });
        if let Some(i) = stale
            && let Some(pod) = pods[i as usize].as_ref()
        {
            let pod_name = format!("{name}-{i}");
            super::delete(shared, state, PODS, pod);
            events::record(
                shared,
                state,
                sts,
                "Normal",
                "SuccessfulDelete",
                &format!("delete Pod {pod_name} in StatefulSet {name} successful"),
                "statefulset-controller",
            );
        }
    }

    let pods: Vec<Value> = pods_of(state).into_iter().flatten().collect();
    // computeReplicaStatus: pods being deleted count as replicas, not as current or updated.
    let at = |revision: &str| {
        pods.iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| text(p, "/metadata/labels/controller-revision-hash") == revision)
            .count() as i64
    };
    let updated = at(&update_revision);
    if updated == replicas && pods.iter().all(pod_ready) {
        current_revision = update_revision.clone();
    }
    let min_ready = Duration::from_secs(int(sts, "/spec/minReadySeconds", 0).max(0) as u64);
    let mut next = None;
    let (mut ready, mut available) = (0, 0);
    for pod in pods.iter().filter(|p| text(p, "/status/phase") == "Running" && pod_ready(p)) {
        ready += 1;
        match super::ready_since(pod) {
            Some(since) if since + min_ready > now => {
                next = earliest(next, Some(since + min_ready));
            }
            _ => available += 1,
        }
    }
    let mut status = json!({
        "observedGeneration": sts["metadata"]["generation"], "replicas": pods.len(),
        "readyReplicas": ready, "availableReplicas": available,
        "currentReplicas": at(&current_revision), "updatedReplicas": updated,
        "currentRevision": current_revision, "updateRevision": update_revision,
        "collisionCount": sts["status"]["collisionCount"].as_i64().unwrap_or(0)
    });
    // `replicas` and `availableReplicas` have no omitempty; the other counters do.
    if let Value::Object(m) = &mut status {
        m.retain(|k, v| {
            !matches!(k.as_str(), "readyReplicas" | "currentReplicas" | "updatedReplicas")
                || v.as_i64() != Some(0)
        });
    }
    if status != sts["status"] {
        let mut updated = sts.clone();
        updated["status"] = status;
        state.store.replace(&STATEFULSETS, updated);
    }
    next
}
