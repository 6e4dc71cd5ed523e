//! The Deployment controller (`pkg/controller/deployment`): the new ReplicaSet named by the
//! pod-template hash, revisions, rolling update by maxSurge/maxUnavailable, Recreate, paused,
//! and the status with its Progressing and Available conditions and the progress deadline.

use serde_json::{Value, json};

use super::{condition, controlled_by, earliest, events, int, set_condition, text};
use crate::clock::{Instant, parse_rfc3339};
use crate::resources::{DEPLOYMENTS, PODS, REPLICASETS};
use crate::{Shared, State};

const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";
const HASH: &str = "pod-template-hash";
/// Annotations not copied from a Deployment to its ReplicaSets.
const SKIPPED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED,
    MAX,
    "deprecated.deployment.rollback.to",
];

/// Reconciles every Deployment once; returns the next progress-deadline check.
pub fn reconcile(shared: &Shared, state: &mut State, now: Instant) -> Option<Instant> {
    let deployments: Vec<Value> =
        state.store.list(&DEPLOYMENTS, None).into_iter().cloned().collect();
    let mut next = None;
    for d in deployments {
        next = earliest(next, sync(shared, state, now, d));
    }
    next
}

/// `controller.ComputeHash`: FNV-32a of the template (and collision count), its decimal
/// digits mapped onto `rand.SafeEncodeString`'s alphabet.
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(template.to_string().as_bytes());
    if let Some(count) = collision_count {
        feed(&(count as u32).to_le_bytes());
    }
    hash.to_string().bytes().map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char).collect()
}

/// Template equality ignoring the pod-template-hash label (`EqualIgnoreHash`).
fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
            labels.remove(HASH);
            if labels.is_empty() {
                t["metadata"].as_object_mut().map(|m| m.remove("labels"));
            }
        }
        t
    };
    strip(a) == strip(b)
}

/// `GetValueFromIntOrPercent`.
fn int_or_percent(value: &Value, total: i64, round_up: bool) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// `ResolveFenceposts`: (surge, unavailable).
fn fenceposts(d: &Value) -> (i64, i64) {
    let replicas = int(d, "/spec/replicas", 1);
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let surge = int_or_percent(&ru["maxSurge"], replicas, true);
    let mut unavailable = int_or_percent(&ru["maxUnavailable"], replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn rolling(d: &Value) -> bool {
    text(d, "/spec/strategy/type") != "Recreate"
}

fn max_unavailable(d: &Value) -> i64 {
    let replicas = int(d, "/spec/replicas", 1);
    if !rolling(d) || replicas == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas)
}

fn max_surge(d: &Value) -> i64 {
    if rolling(d) { fenceposts(d).0 } else { 0 }
}

fn revision(object: &Value) -> i64 {
    object["metadata"]["annotations"][REVISION].as_str().and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn spec_replicas(rs: &Value) -> i64 {
    int(rs, "/spec/replicas", 0)
}

fn status_int(rs: &Value, field: &str) -> i64 {
    rs["status"][field].as_i64().unwrap_or(0)
}

/// The ReplicaSets a Deployment controls, oldest first.
fn owned_replicasets(state: &State, d: &Value) -> Vec<Value> {
    let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
    let uid = &d["metadata"]["uid"];
    let mut list: Vec<Value> = state
        .store
        .list(&REPLICASETS, Some(ns))
        .into_iter()
        .filter(|rs| controlled_by(rs, uid))
        .cloned()
        .collect();
    list.sort_by(|a, b| {
        (text(a, "/metadata/creationTimestamp"), text(a, "/metadata/name"))
            .cmp(&(text(b, "/metadata/creationTimestamp"), text(b, "/metadata/name")))
    });
    list
}

fn scale(shared: &Shared, state: &mut State, d: &Value, rs: &Value, to: i64) -> Value {
    let from = spec_replicas(rs);
    let mut rs = rs.clone();
    rs["spec"]["replicas"] = json!(to);
    rs["metadata"]["annotations"][DESIRED] = json!(int(d, "/spec/replicas", 1).to_string());
    rs["metadata"]["annotations"][MAX] =
        json!((int(d, "/spec/replicas", 1) + max_surge(d)).to_string());
    // An update of the ReplicaSet's spec: its generation moves, as with the real controller.
    let written = crate::api::controller_update(state, &REPLICASETS, rs);
    if from != to {
        let direction = if to > from { "up" } else { "down" };
        let name = text(&written, "/metadata/name");
        events::record(
            shared,
            state,
            d,
            "Normal",
            "ScalingReplicaSet",
            &format!("Scaled {direction} replica set {name} from {from} to {to}"),
            "deployment-controller",
        );
    }
    written
}

fn sync(shared: &Shared, state: &mut State, now: Instant, d: Value) -> Option<Instant> {
    let mut d = d;
    let mut all = owned_replicasets(state, &d);
    let paused = d["spec"]["paused"] == true;
    let has_deadline = !d["spec"]["progressDeadlineSeconds"].is_null();
    // checkPausedConditions
    if has_deadline {
        let current = condition(&d["status"], "Progressing").cloned();
        let reason = current.as_ref().map(|c| text(c, "/reason")).unwrap_or_default().to_owned();
        if reason != "ProgressDeadlineExceeded" {
            let change = if paused && reason != "DeploymentPaused" {
                Some(("DeploymentPaused", "Deployment is paused"))
            } else if !paused && reason == "DeploymentPaused" {
                Some(("DeploymentResumed", "Deployment is resumed"))
            } else {
                None
            };
            if let Some((reason, message)) = change {
                set_progressing(shared, &mut d, "Unknown", reason, message);
                d = state.store.replace(&DEPLOYMENTS, d);
            }
        }
    }
    let new_rs = all
        .iter()
        .find(|rs| equal_ignore_hash(&rs["spec"]["template"], &d["spec"]["template"]))
        .cloned();
    if paused {
        // sync(): scale the active ReplicaSets, advance observedGeneration, no rollout.
        if let Some(rs) = &new_rs
            && spec_replicas(rs) != int(&d, "/spec/replicas", 1)
            && all.len() == 1
        {
            scale(shared, state, &d, rs, int(&d, "/spec/replicas", 1));
        }
        let all = owned_replicasets(state, &d);
        let new_rs = all
            .iter()
            .find(|rs| equal_ignore_hash(&rs["spec"]["template"], &d["spec"]["template"]))
            .cloned();
        let status = calculate_status(&d, &all, new_rs.as_ref(), &shared.clock.timestamp());
        write_status(state, &d, status);
        return None;
    }

    let new_rs = match new_rs {
        Some(rs) => sync_revision(shared, state, &mut d, &all, rs),
        None => create_new_rs(shared, state, &mut d, &all),
    };
    let new_rs = new_rs?;
    all = owned_replicasets(state, &d);
    let new_rs = all
        .iter()
        .find(|rs| rs["metadata"]["uid"] == new_rs["metadata"]["uid"])
        .cloned()
        .unwrap_or(new_rs);
    let old: Vec<Value> = all
        .iter()
        .filter(|rs| rs["metadata"]["uid"] != new_rs["metadata"]["uid"])
        .cloned()
        .collect();

    let scaled = if rolling(&d) {
        reconcile_new_rs(shared, state, &d, &all, &new_rs)
            || reconcile_old_rss(shared, state, &d, &all, &old, &new_rs)
    } else {
        recreate(shared, state, &d, &old, &new_rs)
    };
    let all = owned_replicasets(state, &d);
    let new_rs = all.iter().find(|rs| rs["metadata"]["uid"] == new_rs["metadata"]["uid"]).cloned();
    if !scaled {
        cleanup(shared, state, &d, &all, new_rs.as_ref());
    }
    sync_rollout_status(shared, state, now, &d, &all, new_rs.as_ref())
}

/// Sets the Progressing condition on the Deployment object (written by the caller).
fn set_progressing(shared: &Shared, d: &mut Value, status: &str, reason: &str, message: &str) {
    let mut conditions = d["status"]["conditions"].as_array().cloned().unwrap_or_default();
    set_condition(&mut conditions, progressing(shared, status, reason, message), true);
    d["status"]["conditions"] = json!(conditions);
}

fn progressing(shared: &Shared, status: &str, reason: &str, message: &str) -> Value {
    let now = shared.clock.timestamp();
    json!({"type": "Progressing", "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message})
}

/// An existing new ReplicaSet: raise its revision if needed, and mirror it on the Deployment.
fn sync_revision(
    shared: &Shared,
    state: &mut State,
    d: &mut Value,
    all: &[Value],
    rs: Value,
) -> Option<Value> {
    let max_old = all
        .iter()
        .filter(|o| o["metadata"]["uid"] != rs["metadata"]["uid"])
        .map(revision)
        .max()
        .unwrap_or(0);
    let new_revision = max_old + 1;
    let mut rs = rs;
    if revision(&rs) < new_revision {
        let old = revision(&rs);
        let mut history: Vec<String> = rs["metadata"]["annotations"][REVISION_HISTORY]
            .as_str()
            .map(|h| h.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        if old > 0 {
            history.push(old.to_string());
            rs["metadata"]["annotations"][REVISION_HISTORY] = json!(history.join(","));
        }
        rs["metadata"]["annotations"][REVISION] = json!(new_revision.to_string());
        copy_annotations(d, &mut rs);
        rs = state.store.replace(&REPLICASETS, rs);
    }
    let rs_revision = rs["metadata"]["annotations"][REVISION].clone();
    let mut changed = false;
    if d["metadata"]["annotations"][REVISION] != rs_revision {
        d["metadata"]["annotations"][REVISION] = rs_revision;
        changed = true;
    }
    if !d["spec"]["progressDeadlineSeconds"].is_null()
        && condition(&d["status"], "Progressing").is_none()
    {
        let message = format!("Found new replica set \"{}\"", text(&rs, "/metadata/name"));
        set_progressing(shared, d, "True", "FoundNewReplicaSet", &message);
        changed = true;
    }
    if changed {
        *d = state.store.replace(&DEPLOYMENTS, d.clone());
    }
    Some(rs)
}

fn copy_annotations(d: &Value, rs: &mut Value) {
    for (k, v) in d["metadata"]["annotations"].as_object().into_iter().flatten() {
        if !SKIPPED.contains(&k.as_str()) {
            rs["metadata"]["annotations"][k] = v.clone();
        }
    }
}

/// `getNewReplicaSet` with createIfNotExisted: the first of the two status writes.
fn create_new_rs(
    shared: &Shared,
    state: &mut State,
    d: &mut Value,
    all: &[Value],
) -> Option<Value> {
    let replicas = int(d, "/spec/replicas", 1);
    let collision = d["status"]["collisionCount"].as_i64();
    let mut template = d["spec"]["template"].clone();
    let hash = template_hash(&template, collision);
    template["metadata"]["labels"][HASH] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"][HASH] = json!(hash);
    let name = format!("{}-{hash}", text(d, "/metadata/name"));
    let new_revision = all.iter().map(revision).max().unwrap_or(0) + 1;
    let current_total: i64 = all.iter().map(spec_replicas).sum();
    let initial = if rolling(d) {
        let max_total = replicas + max_surge(d);
        if current_total >= max_total { 0 } else { (max_total - current_total).min(replicas) }
    } else {
        // Recreate scales the new ReplicaSet up only once the old pods are gone.
        0
    };
    let mut rs = json!({
        "metadata": {
            "name": name, "namespace": d["metadata"]["namespace"], "labels": template["metadata"]["labels"],
            "annotations": {},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": d["metadata"]["name"],
                "uid": d["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {"replicas": initial, "minReadySeconds": int(d, "/spec/minReadySeconds", 0), "selector": selector, "template": template}
    });
    copy_annotations(d, &mut rs);
    rs["metadata"]["annotations"][REVISION] = json!(new_revision.to_string());
    rs["metadata"]["annotations"][DESIRED] = json!(replicas.to_string());
    rs["metadata"]["annotations"][MAX] = json!((replicas + max_surge(d)).to_string());
    if let Value::Object(m) = &mut rs["spec"]
        && m["minReadySeconds"] == 0
    {
        m.remove("minReadySeconds");
    }
    let target = crate::api::Target {
        resource: REPLICASETS,
        namespace: d["metadata"]["namespace"].as_str().map(str::to_owned),
        name: None,
        subresource: None,
    };
    let created = match crate::api::create(shared, state, &target, rs, false) {
        Ok(created) => created,
        Err(e) if e.code == 409 => {
            // A ReplicaSet of that name exists: the same template (adopt it), or a hash
            // collision, which the controller resolves by counting and rehashing.
            let ns = text(d, "/metadata/namespace").to_owned();
            let existing = state.store.get(&REPLICASETS, &ns, &name).cloned();
            if let Some(rs) = existing.filter(|rs| {
                controlled_by(rs, &d["metadata"]["uid"])
                    && equal_ignore_hash(&rs["spec"]["template"], &d["spec"]["template"])
            }) {
                return Some(rs);
            }
            d["status"]["collisionCount"] = json!(collision.unwrap_or(0) + 1);
            *d = state.store.replace(&DEPLOYMENTS, d.clone());
            return None;
        }
        Err(e) => {
            let message = format!("Failed to create new replica set \"{name}\": {:?}", e.body);
            events::record(
                shared,
                state,
                d,
                "Warning",
                "ReplicaSetCreateError",
                &message,
                "deployment-controller",
            );
            return None;
        }
    };
    if initial > 0 {
        events::record(
            shared,
            state,
            d,
            "Normal",
            "ScalingReplicaSet",
            &format!("Scaled up replica set {name} from 0 to {initial}"),
            "deployment-controller",
        );
    }
    d["metadata"]["annotations"][REVISION] = json!(new_revision.to_string());
    if !d["spec"]["progressDeadlineSeconds"].is_null() {
        let message = format!("Created new replica set \"{name}\"");
        set_progressing(shared, d, "True", "NewReplicaSetCreated", &message);
    }
    // NB: observedGeneration is still the old one in this write, as in the real controller.
    *d = state.store.replace(&DEPLOYMENTS, d.clone());
    Some(created)
}

fn reconcile_new_rs(
    shared: &Shared,
    state: &mut State,
    d: &Value,
    all: &[Value],
    new_rs: &Value,
) -> bool {
    let replicas = int(d, "/spec/replicas", 1);
    let current = spec_replicas(new_rs);
    if current == replicas {
        return false;
    }
    if current > replicas {
        scale(shared, state, d, new_rs, replicas);
        return true;
    }
    let total: i64 = all.iter().map(spec_replicas).sum();
    let max_total = replicas + max_surge(d);
    if total >= max_total {
        return false;
    }
    let to = current + (max_total - total).min(replicas - current);
    scale(shared, state, d, new_rs, to);
    true
}

fn reconcile_old_rss(
    shared: &Shared,
    state: &mut State,
    d: &Value,
    all: &[Value],
    old: &[Value],
    new_rs: &Value,
) -> bool {
    let old_pods: i64 = old.iter().map(spec_replicas).sum();
    if old_pods == 0 {
        return false;
    }
    let replicas = int(d, "/spec/replicas", 1);
    let all_pods: i64 = all.iter().map(spec_replicas).sum();
    let min_available = replicas - max_unavailable(d);
    let new_unavailable = spec_replicas(new_rs) - status_int(new_rs, "availableReplicas");
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return false;
    }
    // cleanupUnhealthyReplicas: old pods that are not available go first.
    let mut old: Vec<Value> = old.to_vec();
    let mut cleaned = 0;
    for rs in old.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = spec_replicas(rs) - status_int(rs, "availableReplicas");
        if spec_replicas(rs) == 0 || unhealthy <= 0 {
            continue;
        }
        let down = unhealthy.min(max_scaled_down - cleaned);
        *rs = scale(shared, state, d, rs, spec_replicas(rs) - down);
        cleaned += down;
    }
    // scaleDownOldReplicaSetsForRollingUpdate
    let available: i64 = all
        .iter()
        .map(|rs| old.iter().find(|o| o["metadata"]["uid"] == rs["metadata"]["uid"]).unwrap_or(rs))
        .map(|rs| status_int(rs, "availableReplicas"))
        .sum();
    let mut scaled = 0;
    if available > min_available {
        let total = available - min_available;
        for rs in &old {
            if scaled >= total {
                break;
            }
            if spec_replicas(rs) == 0 {
                continue;
            }
            let down = spec_replicas(rs).min(total - scaled);
            scale(shared, state, d, rs, spec_replicas(rs) - down);
            scaled += down;
        }
    }
    cleaned + scaled > 0
}

/// Recreate: old ReplicaSets to zero, wait for their pods to go, then the new one up.
fn recreate(shared: &Shared, state: &mut State, d: &Value, old: &[Value], new_rs: &Value) -> bool {
    let mut scaled = false;
    for rs in old {
        if spec_replicas(rs) > 0 {
            scale(shared, state, d, rs, 0);
            scaled = true;
        }
    }
    if scaled {
        return true;
    }
    let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
    // oldPodsRunning: old ReplicaSets report no replicas and none of their pods is left
    // outside a terminal phase.
    let old_pods_left = old.iter().any(|rs| status_int(rs, "replicas") > 0)
        || state.store.list(&PODS, Some(ns)).into_iter().any(|p| {
            !super::terminal(p) && old.iter().any(|rs| controlled_by(p, &rs["metadata"]["uid"]))
        });
    if old_pods_left {
        return false;
    }
    let replicas = int(d, "/spec/replicas", 1);
    if spec_replicas(new_rs) != replicas {
        scale(shared, state, d, new_rs, replicas);
        return true;
    }
    false
}

/// Deletes old ReplicaSets beyond revisionHistoryLimit once they are empty.
fn cleanup(shared: &Shared, state: &mut State, d: &Value, all: &[Value], new_rs: Option<&Value>) {
    let limit = int(d, "/spec/revisionHistoryLimit", 10);
    let removable: Vec<&Value> = all
        .iter()
        .filter(|rs| new_rs.is_none_or(|n| n["metadata"]["uid"] != rs["metadata"]["uid"]))
        .filter(|rs| spec_replicas(rs) == 0 && status_int(rs, "replicas") == 0)
        .collect();
    let excess = removable.len() as i64 - limit;
    for rs in removable.into_iter().take(excess.max(0) as usize) {
        super::delete(shared, state, REPLICASETS, rs);
    }
}

/// `calculateStatus`, with the Available condition stamped `stamp` when it changes.
fn calculate_status(d: &Value, all: &[Value], new_rs: Option<&Value>, stamp: &str) -> Value {
    let sum = |field: &str| all.iter().map(|rs| status_int(rs, field)).sum::<i64>();
    let available = sum("availableReplicas");
    let total_spec: i64 = all.iter().map(spec_replicas).sum();
    let replicas = int(d, "/spec/replicas", 1);
    let mut status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": sum("replicas"),
        "updatedReplicas": new_rs.map_or(0, |rs| status_int(rs, "replicas")),
        "readyReplicas": sum("readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": (total_spec - available).max(0),
    });
    if let Some(c) = d["status"].get("collisionCount") {
        status["collisionCount"] = c.clone();
    }
    // Zero counters are omitted, as the API's omitempty does.
    if let Value::Object(m) = &mut status {
        m.retain(|k, v| k == "observedGeneration" || v.as_i64() != Some(0));
    }
    // A pointer: written whenever it is known, zero included.
    if let Some(terminating) = terminating_replicas(all) {
        status["terminatingReplicas"] = json!(terminating);
    }
    let (state, reason, message) = if available >= replicas - max_unavailable(d) {
        ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    } else {
        ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    };
    let mut conditions = d["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let available = json!({"type": "Available", "status": state, "lastUpdateTime": stamp,
        "lastTransitionTime": stamp, "reason": reason, "message": message});
    set_condition(&mut conditions, available, true);
    status["conditions"] = json!(conditions);
    status
}

/// `GetTerminatingReplicaCountForReplicaSets`: the sum over the ReplicaSets, unknown when one
/// the controller has synced does not report it; never-synced ones do not count.
fn terminating_replicas(all: &[Value]) -> Option<i64> {
    let mut sum = 0;
    for rs in all {
        match rs["status"]["terminatingReplicas"].as_i64() {
            Some(n) => sum += n,
            None if status_int(rs, "observedGeneration") == 0 => {}
            None => return None,
        }
    }
    Some(sum)
}

/// Writes a status that changed.
fn write_status(state: &mut State, d: &Value, status: Value) {
    if status != d["status"] {
        let mut d = d.clone();
        d["status"] = status;
        state.store.replace(&DEPLOYMENTS, d);
    }
}

/// `syncRolloutStatus`: counters, Progressing, ReplicaFailure; returns the deadline check.
fn sync_rollout_status(
    shared: &Shared,
    state: &mut State,
    now: Instant,
    d: &Value,
    all: &[Value],
    new_rs: Option<&Value>,
) -> Option<Instant> {
    let mut status = calculate_status(d, all, new_rs, &shared.clock.timestamp());
    let replicas = int(d, "/spec/replicas", 1);
    let has_deadline = !d["spec"]["progressDeadlineSeconds"].is_null();
    let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    if !has_deadline {
        conditions.retain(|c| c["type"] != "Progressing");
    }
    let current = condition(&d["status"], "Progressing").cloned();
    let current_reason =
        current.as_ref().map(|c| text(c, "/reason").to_owned()).unwrap_or_default();
    // The controller names the new ReplicaSet when there is one, else the Deployment.
    let subject = match new_rs {
        Some(rs) => format!("ReplicaSet \"{}\"", text(rs, "/metadata/name")),
        None => format!("Deployment \"{}\"", text(d, "/metadata/name")),
    };
    let st = |f: &str| status[f].as_i64().unwrap_or(0);
    let complete_status = st("updatedReplicas") == replicas
        && st("replicas") == replicas
        && st("availableReplicas") == replicas;
    let is_complete =
        st("replicas") == st("updatedReplicas") && current_reason == "NewReplicaSetAvailable";
    let mut next = None;
    if has_deadline && !is_complete {
        let old = &d["status"];
        let old_i = |f: &str| old[f].as_i64().unwrap_or(0);
        let progressing_now = st("updatedReplicas") > old_i("updatedReplicas")
            || (st("replicas") - st("updatedReplicas"))
                < (old_i("replicas") - old_i("updatedReplicas"))
            || st("readyReplicas") > old_i("readyReplicas")
            || st("availableReplicas") > old_i("availableReplicas");
        let deadline = int(d, "/spec/progressDeadlineSeconds", 600) as u64;
        if complete_status {
            let message = format!("{subject} has successfully progressed.");
            set_condition(
                &mut conditions,
                progressing(shared, "True", "NewReplicaSetAvailable", &message),
                true,
            );
        } else if progressing_now {
            let message = format!("{subject} is progressing.");
            let mut cond = progressing(shared, "True", "ReplicaSetUpdated", &message);
            if let Some(c) = &current
                && c["status"] == "True"
            {
                cond["lastTransitionTime"] = c["lastTransitionTime"].clone();
            }
            // Replaced, not merged, so lastUpdateTime moves on every step of progress.
            conditions.retain(|c| c["type"] != "Progressing");
            conditions.push(cond);
        } else if let Some(c) = &current {
            let reason = text(c, "/reason");
            let last_update = c["lastUpdateTime"].as_str().and_then(parse_rfc3339);
            let timed_out = reason == "ProgressDeadlineExceeded"
                || (reason != "NewReplicaSetAvailable"
                    && last_update
                        .is_some_and(|t| t + std::time::Duration::from_secs(deadline) < now));
            if timed_out {
                let message = format!("{subject} has timed out progressing.");
                set_condition(
                    &mut conditions,
                    progressing(shared, "False", "ProgressDeadlineExceeded", &message),
                    true,
                );
            } else if reason != "NewReplicaSetAvailable"
                && let Some(t) = last_update
            {
                next = Some(t + std::time::Duration::from_secs(deadline + 1));
            }
        }
    }
    // ReplicaFailure mirrors the new ReplicaSet's (else an old one's).
    let failure = new_rs
        .and_then(|rs| condition(&rs["status"], "ReplicaFailure"))
        .or_else(|| all.iter().find_map(|rs| condition(&rs["status"], "ReplicaFailure")))
        .cloned();
    match failure {
        Some(f) => set_condition(&mut conditions, f, false),
        None => conditions.retain(|c| c["type"] != "ReplicaFailure"),
    }
    status["conditions"] = json!(conditions);
    write_status(state, d, status);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentages round as ResolveFenceposts does: surge up, unavailable down.
    #[test]
    fn fenceposts_round_like_the_controller() {
        let d = |replicas: i64, surge: Value, unavailable: Value| {
            json!({"spec": {"replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}})
        };
        assert_eq!(fenceposts(&d(3, json!("25%"), json!("25%"))), (1, 0));
        assert_eq!(fenceposts(&d(10, json!("25%"), json!("25%"))), (3, 2));
        assert_eq!(fenceposts(&d(3, json!(0), json!(0))), (0, 1));
        assert_eq!(max_unavailable(&d(1, json!(0), json!(5))), 1);
    }

    /// The hash ignores nothing but is stable, and changes with the template.
    #[test]
    fn template_hash_is_stable() {
        let a = json!({"spec": {"containers": [{"name": "app", "image": "a:1"}]}});
        let b = json!({"spec": {"containers": [{"name": "app", "image": "a:2"}]}});
        assert_eq!(template_hash(&a, None), template_hash(&a, None));
        assert_ne!(template_hash(&a, None), template_hash(&b, None));
        assert_ne!(template_hash(&a, None), template_hash(&a, Some(1)));
        assert!(template_hash(&a, None).chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
