//! What to show when a rollout fails, and what the new pods run when it succeeds: the pods of
//! this rollout with their states, the recent Warning events of those pods and of the
//! ReplicaSet, the last log lines of a crashing container's previous run, and the image IDs.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};

use crate::targets::Workload;

/// Pods of this rollout: the workload's pods that run the changed containers' images.
async fn our_pods(
    client: &kube::Client,
    workload: &Workload,
    changed: &[(String, String)],
) -> Vec<Pod> {
    let api = Api::<Pod>::namespaced(client.clone(), &workload.namespace);
    let mut params = ListParams::default();
    if let Some(selector) = &workload.selector {
        params = params.labels(selector);
    }
    let Ok(list) = api.list(&params).await else { return Vec::new() };
    list.items
        .into_iter()
        .filter(|pod| {
            let spec = pod.spec.as_ref();
            changed.iter().all(|(name, image)| {
                spec.into_iter()
                    .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
                    .any(|c| &c.name == name && c.image.as_deref() == Some(image.as_str()))
            })
        })
        .collect()
}

fn state_of(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let mut parts = vec![status.phase.unwrap_or_else(|| "Pending".into())];
    for c in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            parts.push(format!("{}: {}", c.name, w.reason.as_deref().unwrap_or("Waiting")));
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
    parts.join(", ")
}

/// Recent Warning events about `kind`/`name`, newest last.
async fn warnings(
    client: &kube::Client,
    namespace: &str,
    kind: &str,
    name: &str,
    limit: usize,
) -> Vec<String> {
    let api = Api::<Event>::namespaced(client.clone(), namespace);
    let params = ListParams::default()
        .fields(&format!("involvedObject.kind={kind},involvedObject.name={name},type=Warning"));
    let list = match api.list(&params).await {
        Ok(list) => list,
        Err(e) => {
            crate::log::debug(format_args!(
                "events of {kind} {name}: {}",
                crate::error::render_chain(&e)
            ));
            return Vec::new();
        }
    };
    let mut events = list.items;
    events.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0.to_string()));
    let skip = events.len().saturating_sub(limit);
    events
        .into_iter()
        .skip(skip)
        .map(|e| {
            let count = e.count.filter(|c| *c > 1).map(|c| format!(" (x{c})")).unwrap_or_default();
            format!(
                "event {}: {}{count}",
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            )
        })
        .collect()
}

/// The lines to print under a failure.
pub async fn failure(
    client: &kube::Client,
    workload: &Workload,
    changed: &[(String, String)],
) -> Vec<String> {
    let mut lines = Vec::new();
    let pods = our_pods(client, workload, changed).await;
    // The ReplicaSet's own warnings (pods it could not create) come first.
    let replicasets: std::collections::BTreeSet<String> = pods
        .iter()
        .flat_map(|p| p.metadata.owner_references.iter().flatten())
        .filter(|o| o.kind == "ReplicaSet")
        .map(|o| o.name.clone())
        .collect();
    for rs in &replicasets {
        for line in warnings(client, &workload.namespace, "ReplicaSet", rs, 5).await {
            lines.push(format!("replicaset {rs}: {line}"));
        }
    }
    let api = Api::<Pod>::namespaced(client.clone(), &workload.namespace);
    for pod in pods.iter().take(5) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        lines.push(format!("pod {name}: {}", state_of(pod)));
        for line in warnings(client, &workload.namespace, "Pod", &name, 5).await {
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
                tail_lines: Some(20),
                ..LogParams::default()
            };
            if let Ok(text) = api.logs(&name, &params).await {
                lines.push(format!("  last log lines of {} (previous run):", c.name));
                lines.extend(text.lines().map(|l| format!("    {l}")));
            }
        }
    }
    lines
}

/// The image IDs the rollout's pods run for the changed containers.
pub async fn image_ids(
    client: &kube::Client,
    workload: &Workload,
    changed: &[(String, String)],
) -> Vec<String> {
    let names: Vec<&str> = changed.iter().map(|(n, _)| n.as_str()).collect();
    let mut ids: Vec<String> = our_pods(client, workload, changed)
        .await
        .iter()
        .flat_map(|p| {
            p.status.iter().flat_map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
            })
        })
        .filter(|c| names.contains(&c.name.as_str()) && !c.image_id.is_empty())
        .map(|c| c.image_id.trim_start_matches("docker-pullable://").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}
