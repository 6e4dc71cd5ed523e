//! The garbage collector and the namespace controller, run after deletions: an object whose
//! owners are all gone is deleted (pods gracefully), so a deleted Deployment's ReplicaSets go
//! after it and their pods after them, as with background propagation; a Terminating
//! namespace is emptied, then removed; and every active namespace keeps its `default`
//! service account (the serviceaccount controller's work).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api::Target;
use crate::deletion::{self, DeleteOptions};
use crate::resources::{self, Resource};
use crate::{Shared, State, admission};

/// The kinds that own objects, and the kinds they own.
const OWNERS: [Resource; 4] = [
    resources::DEPLOYMENTS,
    resources::REPLICASETS,
    resources::STATEFULSETS,
    resources::DAEMONSETS,
];
const DEPENDENTS: [Resource; 3] =
    [resources::REPLICASETS, resources::PODS, resources::CONTROLLER_REVISIONS];

/// One collection, when a deletion asked for it.
pub fn collect(shared: &Shared, state: &mut State) {
    if !std::mem::take(&mut state.collect) {
        return;
    }
    let alive: BTreeSet<String> = OWNERS
        .iter()
        .flat_map(|r| state.store.list(r, None))
        .filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_owned))
        .collect();
    for resource in DEPENDENTS {
        let orphans: Vec<(String, String)> = state
            .store
            .list(&resource, None)
            .into_iter()
            .filter(|o| o["metadata"]["deletionTimestamp"].is_null() && abandoned(o, &alive))
            .map(crate::store::names)
            .collect();
        for (namespace, name) in orphans {
            delete(shared, state, resource, &namespace, &name);
        }
    }
    let namespaces: Vec<Value> =
        state.store.list(&resources::NAMESPACES, None).into_iter().cloned().collect();
    let now = shared.clock.timestamp();
    for ns in namespaces {
        let name = ns["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        if ns["metadata"]["deletionTimestamp"].is_null() {
            admission::ensure_default_account(state, &name, &now);
        } else {
            empty(shared, state, &name);
        }
    }
}

/// Whether every owner of `object` that the collector can know of is gone (owners of kinds
/// it does not serve keep the object).
fn abandoned(object: &Value, alive: &BTreeSet<String>) -> bool {
    let Some(owners) = object["metadata"]["ownerReferences"].as_array() else { return false };
    !owners.is_empty()
        && owners.iter().all(|r| {
            OWNERS.iter().any(|k| r["kind"] == k.kind)
                && r["uid"].as_str().is_some_and(|uid| !alive.contains(uid))
        })
}

fn delete(shared: &Shared, state: &mut State, resource: Resource, namespace: &str, name: &str) {
    let target = Target {
        resource,
        namespace: resource.namespaced.then(|| namespace.to_owned()),
        name: Some(name.to_owned()),
        subresource: None,
    };
    // Gone already, or being deleted: nothing to do.
    let _ = deletion::delete(shared, state, &target, &DeleteOptions::default());
}

/// Deletes what is left in a Terminating namespace; removes the namespace once it is empty.
fn empty(shared: &Shared, state: &mut State, namespace: &str) {
    let mut left = false;
    for resource in resources::ALL.iter().filter(|r| r.namespaced) {
        let objects: Vec<(String, String, bool)> = state
            .store
            .list(resource, Some(namespace))
            .into_iter()
            .map(|o| {
                let (ns, name) = crate::store::names(o);
                (ns, name, o["metadata"]["deletionTimestamp"].is_null())
            })
            .collect();
        for (ns, name, alive) in objects {
            left = true;
            if alive {
                delete(shared, state, *resource, &ns, &name);
            }
        }
    }
    if left {
        // Pods take their grace period: look again after the next change.
        state.collect = true;
    } else {
        state.store.remove(&resources::NAMESPACES, "", namespace);
    }
}
