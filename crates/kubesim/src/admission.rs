//! The admission the real API server runs on a create, as far as it changes what clients see:
//! namespaces being terminated take no new objects (NamespaceLifecycle), and a pod gets its
//! service account and the `kube-api-access-*` token volume (ServiceAccount), the NoExecute
//! tolerations for not-ready and unreachable nodes (DefaultTolerationSeconds), its priority
//! (Priority) and `enableServiceLinks` (`SetDefaults_Pod`). The `default` service account of
//! a namespace is the serviceaccount controller's work, done here when the namespace is made.

use serde_json::{Value, json};

use crate::State;
use crate::resources::{self, Resource};
use crate::status::{self, ApiError};

const TOKEN_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const TOLERATION_SECONDS: i64 = 300;

/// Refuses new content in a namespace being deleted, in the NamespaceLifecycle plugin's words.
pub fn namespace_accepts(
    state: &State,
    resource: &Resource,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    let terminating = state
        .store
        .get(&resources::NAMESPACES, "", namespace)
        .is_some_and(|ns| !ns["metadata"]["deletionTimestamp"].is_null());
    if terminating {
        return Err(status::forbidden_because(
            resource,
            name,
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
            Some(("NamespaceTerminating", "metadata.namespace")),
        ));
    }
    Ok(())
}

/// A namespace's `default` service account, unless it exists.
pub fn ensure_default_account(state: &mut State, namespace: &str, now: &str) {
    if state.store.get(&resources::SERVICE_ACCOUNTS, namespace, "default").is_some() {
        return;
    }
    let uid = state.store.uid();
    let account = json!({"metadata": {"name": "default", "namespace": namespace, "uid": uid,
        "creationTimestamp": now}});
    state.store.insert(&resources::SERVICE_ACCOUNTS, account);
}

/// The admission plugins' changes to a pod being created; a missing service account is a 403.
pub fn admit_pod(state: &mut State, pod: &mut Value) -> Result<(), ApiError> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let spec = &mut pod["spec"];
    let account = spec["serviceAccountName"]
        .as_str()
        .or(spec["serviceAccount"].as_str())
        .filter(|a| !a.is_empty())
        .unwrap_or("default")
        .to_owned();
    let Some(found) = state.store.get(&resources::SERVICE_ACCOUNTS, &namespace, &account) else {
        return Err(status::forbidden_because(
            &resources::PODS,
            &name,
            &format!(
                "error looking up service account {namespace}/{account}: serviceaccount \"{account}\" not found"
            ),
            None,
        ));
    };
    let automount = spec["automountServiceAccountToken"]
        .as_bool()
        .or(found["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    spec["serviceAccountName"] = json!(account);
    spec["serviceAccount"] = json!(account);
    if automount {
        let volume = format!("kube-api-access-{}", state.random_suffix());
        mount_token(spec, &volume);
    }
    tolerate_node_failures(spec);
    if spec["priorityClassName"].is_null() {
        spec["priority"] = json!(0);
    }
    if spec["preemptionPolicy"].is_null() {
        spec["preemptionPolicy"] = json!("PreemptLowerPriority");
    }
    if spec["enableServiceLinks"].is_null() {
        spec["enableServiceLinks"] = json!(true);
    }
    Ok(())
}

/// The projected token volume and its read-only mount in every container that has nothing
/// mounted at the token's path.
fn mount_token(spec: &mut Value, volume: &str) {
    let sources = json!([
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    ]);
    let entry = json!({"name": volume, "projected": {"sources": sources, "defaultMode": 420}});
    match spec["volumes"].as_array_mut() {
        Some(volumes) => volumes.push(entry),
        None => spec["volumes"] = json!([entry]),
    }
    for list in ["initContainers", "containers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let mounted = c["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"] == TOKEN_MOUNT));
            if mounted {
                continue;
            }
            let mount = json!({"name": volume, "readOnly": true, "mountPath": TOKEN_MOUNT});
            match c["volumeMounts"].as_array_mut() {
                Some(mounts) => mounts.push(mount),
                None => c["volumeMounts"] = json!([mount]),
            }
        }
    }
}

/// NoExecute tolerations of not-ready and unreachable nodes for 300 s, unless the pod
/// tolerates them already.
fn tolerate_node_failures(spec: &mut Value) {
    let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let tolerated = tolerations.iter().any(|t| {
            (t["key"] == key || t["key"].is_null() && t["operator"] == "Exists")
                && (t["effect"] == "NoExecute" || t["effect"].is_null())
        });
        if !tolerated {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": TOLERATION_SECONDS}));
        }
    }
    spec["tolerations"] = json!(tolerations);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token is mounted once per container, beside what the pod mounts itself, and the
    /// tolerations a pod brings are kept.
    #[test]
    fn token_volume_and_tolerations() {
        let mut spec = json!({"containers": [
            {"name": "a", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "b", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT}]}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 10}]});
        mount_token(&mut spec, "kube-api-access-x");
        tolerate_node_failures(&mut spec);
        assert_eq!(spec["volumes"][1]["name"], "kube-api-access-x");
        assert_eq!(spec["containers"][0]["volumeMounts"][1]["mountPath"], TOKEN_MOUNT);
        assert_eq!(spec["containers"][1]["volumeMounts"].as_array().unwrap().len(), 1);
        let tolerations = spec["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0]["tolerationSeconds"], 10);
        assert_eq!(tolerations[1]["key"], "node.kubernetes.io/not-ready");
    }
}
