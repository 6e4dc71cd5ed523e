//! What the API server's registry does to each kind around a write (`pkg/registry/*/strategy.go`
//! and `pkg/apis/*/v1/defaults.go`): defaults, the status an object is created with, and on
//! update the fields the server owns and when `metadata.generation` moves.

use serde_json::{Value, json};

use crate::resources::Resource;

/// The deprecated template generation a DaemonSet keeps in an annotation (the internal
/// `spec.templateGeneration`), which its pods carry as `pod-template-generation`.
pub const DAEMONSET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// Defaults the API server applies on create (`pkg/apis/*/v1/defaults.go`).
pub fn apply_defaults(resource: &Resource, object: &mut Value) {
    let spec = &mut object["spec"];
    match resource.kind {
        "Deployment" => {
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            if spec["strategy"]["type"].is_null() {
                spec["strategy"]["type"] = json!("RollingUpdate");
            }
            if spec["strategy"]["type"] == "RollingUpdate" {
                default(&mut spec["strategy"]["rollingUpdate"], "maxUnavailable", json!("25%"));
                default(&mut spec["strategy"]["rollingUpdate"], "maxSurge", json!("25%"));
            }
        }
        "StatefulSet" => {
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "serviceName", json!(""));
            if spec["updateStrategy"]["type"].is_null() {
                spec["updateStrategy"]["type"] = json!("RollingUpdate");
            }
            if spec["updateStrategy"]["type"] == "RollingUpdate" {
                default(&mut spec["updateStrategy"]["rollingUpdate"], "partition", json!(0));
                default(&mut spec["updateStrategy"]["rollingUpdate"], "maxUnavailable", json!(1));
            }
            let retention = &mut spec["persistentVolumeClaimRetentionPolicy"];
            default(retention, "whenDeleted", json!("Retain"));
            default(retention, "whenScaled", json!("Retain"));
        }
        "DaemonSet" => {
            default(spec, "revisionHistoryLimit", json!(10));
            if spec["updateStrategy"]["type"].is_null() {
                spec["updateStrategy"]["type"] = json!("RollingUpdate");
            }
            if spec["updateStrategy"]["type"] == "RollingUpdate" {
                default(&mut spec["updateStrategy"]["rollingUpdate"], "maxUnavailable", json!(1));
                default(&mut spec["updateStrategy"]["rollingUpdate"], "maxSurge", json!(0));
            }
        }
        "ReplicaSet" => default(spec, "replicas", json!(1)),
        _ => {}
    }
    if let Some(template) = object.pointer_mut("/spec/template/spec") {
        default_pod_spec(template);
    }
    if resource.kind == "Pod" {
        default_pod_spec(&mut object["spec"]);
    }
}

fn default_pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        // NB: `spec[list]` would insert a null for a missing list.
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            default(c, "terminationMessagePath", json!("/dev/termination-log"));
            default(c, "terminationMessagePolicy", json!("File"));
            let image = c["image"].as_str().unwrap_or_default();
            let latest = !image.contains('@')
                && !image.rsplit('/').next().unwrap_or_default().contains(':')
                || image.ends_with(":latest");
            default(c, "imagePullPolicy", json!(if latest { "Always" } else { "IfNotPresent" }));
            default(c, "resources", json!({}));
        }
    }
}

fn default(object: &mut Value, key: &str, value: Value) {
    if !object.is_object() {
        *object = json!({});
    }
    if object.get(key).is_none_or(Value::is_null) {
        object[key] = value;
    }
}

/// Workloads carry a generation; so do pods, since 1.33.
pub fn has_generation(resource: &Resource) -> bool {
    matches!(resource.kind, "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Pod")
}

/// The status an object is stored with on create: the zero value of its Go status struct, whose
/// fields without `omitempty` are written even when zero.
pub fn initial_status(resource: &Resource) -> Option<Value> {
    Some(match resource.kind {
        "Deployment" => json!({}),
        "ReplicaSet" => json!({"replicas": 0}),
        "StatefulSet" => json!({"replicas": 0, "availableReplicas": 0}),
        "DaemonSet" => json!({"currentNumberScheduled": 0, "numberMisscheduled": 0,
            "desiredNumberScheduled": 0, "numberReady": 0}),
        "Pod" => json!({"phase": "Pending", "qosClass": "BestEffort"}),
        _ => return None,
    })
}

/// What the registry sets on create besides defaults: generation 1, and a DaemonSet's
/// template generation.
pub fn prepare_for_create(resource: &Resource, object: &mut Value) {
    if has_generation(resource) {
        object["metadata"]["generation"] = json!(1);
    }
    if resource.kind == "DaemonSet" {
        object["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION] = json!("1");
    }
}

/// Whether an update moves `metadata.generation` (`PrepareForUpdate`): any spec change, and
/// for a Deployment an annotation change too (its annotations are copied to its
/// ReplicaSets). Labels never move it, nor do annotations of other kinds.
pub fn generation_moves(resource: &Resource, current: &Value, updated: &Value) -> bool {
    match resource.kind {
        "Deployment" => {
            updated["spec"] != current["spec"]
                || updated["metadata"]["annotations"] != current["metadata"]["annotations"]
        }
        "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Pod" => updated["spec"] != current["spec"],
        _ => false,
    }
}

/// Identity and server-owned metadata, kept from the stored object on every update.
const SERVER_OWNED: [&str; 8] = [
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The update rules of every write to the main resource, by a client or by a controller:
/// server-owned metadata kept, the generation moved when it should, and a DaemonSet's
/// template generation moved when its template changes.
pub fn prepare_for_update(resource: &Resource, current: &Value, updated: &mut Value) {
    for field in SERVER_OWNED {
        match current["metadata"].get(field) {
            Some(value) => updated["metadata"][field] = value.clone(),
            None => {
                if let Some(m) = updated["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    if resource.kind == "DaemonSet" {
        let template_generation = current["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION]
            .as_str()
            .and_then(|g| g.parse::<i64>().ok())
            .unwrap_or(1);
        let moved = updated["spec"]["template"] != current["spec"]["template"];
        let next = template_generation + i64::from(moved);
        updated["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION] = json!(next.to_string());
    }
    if has_generation(resource) && generation_moves(resource, current, updated) {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        updated["metadata"]["generation"] = json!(generation + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{DAEMONSETS, DEPLOYMENTS, PODS, REPLICASETS, STATEFULSETS};

    fn object(annotation: &str, replicas: i64) -> Value {
        json!({"metadata": {"name": "a", "generation": 3, "annotations": {"note": annotation}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": []}}}})
    }

    /// Annotation-only changes move a Deployment's generation and no other kind's; spec
    /// changes move every kind's (the real API server's answers, tests/fidelity.rs).
    #[test]
    fn generation_rules_per_kind() {
        let current = object("a", 1);
        for (resource, on_annotations) in
            [(DEPLOYMENTS, 4), (REPLICASETS, 3), (STATEFULSETS, 3), (DAEMONSETS, 3), (PODS, 3)]
        {
            let mut updated = object("b", 1);
            prepare_for_update(&resource, &current, &mut updated);
            assert_eq!(updated["metadata"]["generation"], on_annotations, "{}", resource.kind);
            let mut updated = object("a", 2);
            prepare_for_update(&resource, &current, &mut updated);
            assert_eq!(updated["metadata"]["generation"], 4, "{}", resource.kind);
        }
    }

    /// A DaemonSet's template generation follows its template only.
    #[test]
    fn daemonset_template_generation() {
        let mut current = object("a", 1);
        current["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION] = json!("2");
        let mut updated = object("a", 1);
        updated["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        prepare_for_update(&DAEMONSETS, &current, &mut updated);
        assert_eq!(updated["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION], "2");
        let mut changed = updated.clone();
        changed["spec"]["template"]["metadata"] = json!({"labels": {"x": "y"}});
        prepare_for_update(&DAEMONSETS, &updated, &mut changed);
        assert_eq!(changed["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION], "3");
    }
}
