//! core/v1 Events as the components write them, with the count deduplication of the event
//! recorder (same object, reason and message: one Event with a growing count).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::resources;
use crate::{Shared, State};

/// Remembers which Event a repeated report updates.
#[derive(Default)]
pub struct Recorder {
    seen: BTreeMap<(String, String, String, String), String>,
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
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
    let uid = object["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    let now = shared.clock.timestamp();
    let key = (uid.clone(), kind.to_owned(), reason.to_owned(), message.to_owned());
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
    let event = json!({
        "metadata": {"name": name, "namespace": namespace, "uid": event_uid, "creationTimestamp": now},
        "involvedObject": {
            "kind": object["kind"], "namespace": namespace, "name": object_name, "uid": uid,
            "apiVersion": object["apiVersion"], "resourceVersion": object["metadata"]["resourceVersion"]
        },
        "reason": reason, "message": message, "source": source,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": kind,
        "eventTime": null, "reportingComponent": component, "reportingInstance": host.unwrap_or_default()
    });
    state.store.insert(&resources::EVENTS, event);
    state.events.seen.insert(key, name);
}
