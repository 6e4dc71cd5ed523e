//! DELETE with the API server's rules (`registry/rest/delete.go`, the pod strategy's
//! `CheckGracefulDelete`): a pod on a node is deleted gracefully (its generation moves, it
//! gets `deletionTimestamp` and `deletionGracePeriodSeconds` and stays until its kubelet has
//! stopped it and deletes it with grace 0), a pod that is unscheduled or terminal goes at
//! once; a namespace is Terminating until its content is gone; every other object goes at
//! once. Dependents are not touched here: the garbage collector removes them afterwards
//! (background propagation), as `controllers::garbage` does.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::Target;
use crate::clock::{parse_rfc3339, rfc3339};
use crate::resources::{self, Resource};
use crate::status::{self, ApiError};
use crate::{Shared, State};

/// How the dependents of a deleted object are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Deleted afterwards by the garbage collector (the default of apps/v1).
    #[default]
    Background,
    /// Served as Background: the owner does not wait for its dependents.
    Foreground,
    /// Left behind, their owner references to the object removed.
    Orphan,
}

/// `DeleteOptions`, from the query and the body.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation: Propagation,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// What the kubelet sends once a pod's containers have stopped: grace 0, for this uid.
    pub fn now_for(uid: &str) -> Self {
        Self { grace_period_seconds: Some(0), uid: Some(uid.to_owned()), ..Self::default() }
    }

    /// The options of a DELETE request; the body (a `DeleteOptions` object) wins over the
    /// query, as the API server decodes it last.
    pub fn from_request(query: &BTreeMap<String, String>, body: &[u8]) -> Result<Self, ApiError> {
        let mut options = Self {
            grace_period_seconds: query.get("gracePeriodSeconds").and_then(|g| g.parse().ok()),
            propagation: propagation(query.get("propagationPolicy").map(String::as_str))?,
            dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
            ..Self::default()
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(options);
        }
        let body: Value = serde_json::from_slice(body)
            .map_err(|e| status::bad_request(format!("error decoding DeleteOptions: {e}")))?;
        if let Some(grace) = body["gracePeriodSeconds"].as_i64() {
            options.grace_period_seconds = Some(grace);
        }
        if let Some(policy) = body["propagationPolicy"].as_str() {
            options.propagation = propagation(Some(policy))?;
        }
        if body["orphanDependents"] == true {
            options.propagation = Propagation::Orphan;
        }
        options.uid = body["preconditions"]["uid"].as_str().map(str::to_owned);
        options.resource_version =
            body["preconditions"]["resourceVersion"].as_str().map(str::to_owned);
        if body["dryRun"].as_array().is_some_and(|d| d.iter().any(|v| v == "All")) {
            options.dry_run = true;
        }
        Ok(options)
    }
}

fn propagation(policy: Option<&str>) -> Result<Propagation, ApiError> {
    match policy {
        None | Some("" | "Background") => Ok(Propagation::Background),
        Some("Foreground") => Ok(Propagation::Foreground),
        Some("Orphan") => Ok(Propagation::Orphan),
        Some(other) => Err(status::unprocessable(format!(
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}

/// Kinds whose DELETE answers with the object (`ReturnDeletedObject`); the others answer a
/// `Status` of success once the object is gone.
fn returns_object(resource: &Resource) -> bool {
    matches!(resource.kind, "Pod" | "Namespace" | "ServiceAccount")
}

/// The `Status` a DELETE answers with when the object is gone.
fn success(resource: &Resource, object: &Value) -> Value {
    let mut status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": object["metadata"]["name"], "group": resource.group,
            "kind": resource.plural, "uid": object["metadata"]["uid"]}});
    if resource.group.is_empty() {
        status["details"].as_object_mut().map(|m| m.remove("group"));
    }
    status
}

/// DELETE: the HTTP status and body.
pub fn delete(
    shared: &Shared,
    state: &mut State,
    target: &Target,
    options: &DeleteOptions,
) -> Result<(u16, Value), ApiError> {
    let resource = target.resource;
    let name = target.name.as_deref().unwrap_or_default();
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let current = state
        .store
        .get(&resource, namespace, name)
        .cloned()
        .ok_or_else(|| status::not_found(&resource, name))?;
    check_preconditions(&resource, &current, options)?;
    let outcome = match resource.kind {
        "Pod" => delete_pod(shared, state, current, options),
        "Namespace" => terminate_namespace(shared, state, current, options),
        _ => {
            if options.dry_run {
                Outcome::Gone(current)
            } else {
                if options.propagation == Propagation::Orphan {
                    orphan(state, &current);
                }
                remove(state, &resource, &current)
            }
        }
    };
    Ok(match outcome {
        Outcome::Pending(object) => (200, object),
        Outcome::Gone(object) if returns_object(&resource) => (200, object),
        Outcome::Gone(object) => (200, success(&resource, &object)),
    })
}

/// Whether the object is gone, or still there being deleted.
enum Outcome {
    Gone(Value),
    Pending(Value),
}

fn check_preconditions(
    resource: &Resource,
    current: &Value,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let name = current["metadata"]["name"].as_str().unwrap_or_default();
    let uid = current["metadata"]["uid"].as_str().unwrap_or_default();
    if let Some(wanted) = options.uid.as_deref().filter(|u| *u != uid) {
        return Err(status::precondition_failed(
            resource,
            name,
            &format!(
                "the UID in the precondition ({wanted}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
            ),
        ));
    }
    let rv = current["metadata"]["resourceVersion"].as_str().unwrap_or_default();
    if let Some(wanted) = options.resource_version.as_deref().filter(|v| *v != rv) {
        return Err(status::precondition_failed(
            resource,
            name,
            &format!(
                "the ResourceVersion in the precondition ({wanted}) does not match the ResourceVersion in record ({rv}). The object might have been modified"
            ),
        ));
    }
    Ok(())
}

/// Removes an object and lets the garbage collector look for its dependents.
fn remove(state: &mut State, resource: &Resource, object: &Value) -> Outcome {
    let (namespace, name) = crate::store::names(object);
    state.fields.forget(resource, &namespace, &name);
    state.collect = true;
    match state.store.remove(resource, &namespace, &name) {
        Some(removed) => Outcome::Gone(removed),
        None => Outcome::Gone(object.clone()),
    }
}

/// `BeforeDelete` with the pod strategy's grace period: the first graceful deletion moves the
/// generation; a later one may only shorten the grace period; grace 0 removes the pod after
/// writing its deletion stamp, as the registry does.
fn delete_pod(
    shared: &Shared,
    state: &mut State,
    mut pod: Value,
    options: &DeleteOptions,
) -> Outcome {
    let now = shared.clock.now();
    let stamp = |at: Duration| json!(rfc3339(at));
    let meta = &pod["metadata"];
    let period = if let Some(since) = meta["deletionTimestamp"].as_str() {
        let current = meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
        match options.grace_period_seconds {
            _ if current == 0 => 0,
            Some(shorter) if shorter < current => {
                // The deletion time moves back by the difference, never into the past.
                let due = parse_rfc3339(since).unwrap_or(now);
                let at = due.saturating_sub(secs(current)) + secs(shorter);
                let (at, shorter) = match (at < now, shorter) {
                    (true, 0) => (now, 0),
                    (true, _) => (now, 1),
                    (false, _) => (at, shorter),
                };
                pod["metadata"]["deletionTimestamp"] = stamp(at);
                pod["metadata"]["deletionGracePeriodSeconds"] = json!(shorter);
                shorter
            }
            // A longer or equal grace period changes nothing: the deletion is pending.
            _ => return Outcome::Pending(pod),
        }
    } else {
        let mut period = options
            .grace_period_seconds
            .or(pod["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(0);
        let phase = pod["status"]["phase"].as_str().unwrap_or_default();
        if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
            || matches!(phase, "Succeeded" | "Failed")
        {
            period = 0;
        }
        let period = if period < 0 { 1 } else { period };
        pod["metadata"]["deletionTimestamp"] = stamp(now + secs(period));
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(period);
        let generation = pod["metadata"]["generation"].as_i64().unwrap_or(1);
        pod["metadata"]["generation"] = json!(generation + 1);
        period
    };
    if options.dry_run {
        return Outcome::Pending(pod);
    }
    let written = state.store.replace(&resources::PODS, pod);
    if period == 0 {
        return remove(state, &resources::PODS, &written);
    }
    Outcome::Pending(written)
}

fn secs(seconds: i64) -> Duration {
    Duration::from_secs(seconds.max(0).unsigned_abs())
}

/// A namespace goes Terminating; the garbage collector empties it, then removes it.
fn terminate_namespace(
    shared: &Shared,
    state: &mut State,
    mut namespace: Value,
    options: &DeleteOptions,
) -> Outcome {
    if namespace["metadata"]["deletionTimestamp"].is_null() {
        namespace["metadata"]["deletionTimestamp"] = json!(shared.clock.timestamp());
        namespace["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        namespace["status"]["phase"] = json!("Terminating");
        if !options.dry_run {
            namespace = state.store.replace(&resources::NAMESPACES, namespace);
            state.collect = true;
        }
    }
    Outcome::Pending(namespace)
}

/// `propagationPolicy=Orphan`: the dependents lose their owner reference to the object.
fn orphan(state: &mut State, owner: &Value) {
    let uid = &owner["metadata"]["uid"];
    let namespace = owner["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
    for resource in [resources::REPLICASETS, resources::PODS, resources::CONTROLLER_REVISIONS] {
        let owned: Vec<Value> = state
            .store
            .list(&resource, Some(&namespace))
            .into_iter()
            .filter(|o| crate::controllers::owned_by(o, uid))
            .cloned()
            .collect();
        for mut object in owned {
            if let Some(refs) = object["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != *uid);
                if refs.is_empty()
                    && let Some(m) = object["metadata"].as_object_mut()
                {
                    m.remove("ownerReferences");
                }
            }
            state.store.replace(&resource, object);
        }
    }
}
