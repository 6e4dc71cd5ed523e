//! Events as the components write them, seen through core/v1. The controllers and the kubelet
//! use the core/v1 recorder (`client-go/tools/record`): the same object, sub-object, reason
//! and message make one Event with a growing `count` and `lastTimestamp`. The scheduler uses
//! the events.k8s.io recorder (`client-go/tools/events`): `eventTime` with microseconds, an
//! `action`, no `firstTimestamp`/`lastTimestamp`/`count` and an empty `source`; a repeat
//! about the same object version (its message aside) becomes a `series` of count 2 on the
//! first Event, and later repeats are only counted (the recorder flushes them every 30
//! minutes, beyond any test).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::clock::rfc3339_micros;
use crate::resources;
use crate::{Shared, State};

/// What makes two reports the same Event: the object (uid, and the sub-object or the
/// version), type, reason, and the message or the action.
type Key = (String, String, String, String, String);

/// Remembers which Event a repeated report updates.
#[derive(Default)]
pub struct Recorder {
    seen: BTreeMap<Key, String>,
    /// events.k8s.io Events: the Event's name and how often it happened.
    series: BTreeMap<Key, (String, i64)>,
}

/// Records an Event about `object` from `component`.
pub fn record(
    shared: &Shared,
    state: &mut State,
    object: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    record_at(shared, state, object, None, (kind, reason, message), component);
}

/// Records an Event about a part of `object` (`spec.containers{app}`, as `fieldPath`).
pub fn record_at(
    shared: &Shared,
    state: &mut State,
    object: &Value,
    field_path: Option<&str>,
    (kind, reason, message): (&str, &str, &str),
    component: &str,
) {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
    let uid = object["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    let now = shared.clock.timestamp();
    let key = (
        uid.clone(),
        field_path.unwrap_or_default().to_owned(),
        kind.to_owned(),
        reason.to_owned(),
        message.to_owned(),
    );
    if let Some(name) = state.events.seen.get(&key).cloned()
        && let Some(mut event) = state.store.get(&resources::EVENTS, &namespace, &name).cloned()
    {
        event["count"] = json!(event["count"].as_i64().unwrap_or(1) + 1);
        event["lastTimestamp"] = json!(now);
        state.store.replace(&resources::EVENTS, event);
        return;
    }
    let object_name = object["metadata"]["name"].as_str().unwrap_or_default();
    let name = format!(
        "{object_name}.{:016x}",
        state.store.resource_version() * 7919 + state.events.seen.len() as u64
    );
    let event_uid = state.store.uid();
    let host = object["spec"]["nodeName"].as_str();
    let mut source = json!({"component": component});
    if component == "kubelet"
        && let Some(host) = host
    {
        source["host"] = json!(host);
    }
    let mut involved = involved(object, &namespace);
    if let Some(path) = field_path {
        involved["fieldPath"] = json!(path);
    }
    let event = json!({
        "metadata": {"name": name, "namespace": namespace, "uid": event_uid, "creationTimestamp": now},
        "involvedObject": involved,
        "reason": reason, "message": message, "source": source,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": kind,
        "eventTime": null, "reportingComponent": component, "reportingInstance": host.unwrap_or_default()
    });
    state.store.insert(&resources::EVENTS, event);
    state.events.seen.insert(key, name);
}

fn involved(object: &Value, namespace: &str) -> Value {
    json!({
        "kind": object["kind"], "namespace": namespace, "name": object["metadata"]["name"],
        "uid": object["metadata"]["uid"], "apiVersion": object["apiVersion"],
        "resourceVersion": object["metadata"]["resourceVersion"]
    })
}

/// The scheduler's instance name, as `reportingInstance` carries it (`<component>-<host>`).
const SCHEDULER_INSTANCE: &str = "default-scheduler-kubesim";

/// Records an events.k8s.io Event about `object` from the scheduler.
pub fn record_scheduler(
    shared: &Shared,
    state: &mut State,
    object: &Value,
    (kind, reason, action): (&str, &str, &str),
    message: &str,
) {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
    let now = shared.clock.now();
    let key = (
        object["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
        object["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned(),
        kind.to_owned(),
        reason.to_owned(),
        action.to_owned(),
    );
    if let Some((name, count)) = state.events.series.get_mut(&key) {
        *count += 1;
        if *count == 2
            && let Some(mut event) = state.store.get(&resources::EVENTS, &namespace, name).cloned()
        {
            event["series"] = json!({"count": 2, "lastObservedTime": rfc3339_micros(now)});
            state.store.replace(&resources::EVENTS, event);
        }
        return;
    }
    let object_name = object["metadata"]["name"].as_str().unwrap_or_default();
    let name = format!("{object_name}.{:x}", now.as_nanos());
    let event_uid = state.store.uid();
    let event = json!({
        "metadata": {"name": name, "namespace": namespace, "uid": event_uid,
            "creationTimestamp": shared.clock.timestamp()},
        "involvedObject": involved(object, &namespace),
        "reason": reason, "message": message, "source": {}, "type": kind,
        "firstTimestamp": null, "lastTimestamp": null,
        "eventTime": rfc3339_micros(now), "action": action,
        "reportingComponent": "default-scheduler", "reportingInstance": SCHEDULER_INSTANCE
    });
    state.store.insert(&resources::EVENTS, event);
    state.events.series.insert(key, (name, 1));
}
