//! Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for with `as=Table`, with
//! the columns of `pkg/printers/internalversion/printers.go`.

use serde_json::{Value, json};

use crate::clock::{Instant, parse_rfc3339};
use crate::resources::Resource;

/// `duration.HumanDuration` of apimachinery.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let (m, h) = (s / 60, s / 3600);
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => {
            if s % 60 == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{}s", s % 60)
            }
        }
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => {
            if m % 60 == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{}m", m % 60)
            }
        }
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => {
            if h % 24 == 0 {
                format!("{}d", h / 24)
            } else {
                format!("{}d{}h", h / 24, h % 24)
            }
        }
        _ if h < 24 * 365 * 2 => format!("{}d", h / 24),
        _ if h < 24 * 365 * 8 => format!("{}y{}d", h / 24 / 365, h / 24 % 365),
        _ => format!("{}y", h / 24 / 365),
    }
}

fn age(now: Instant, timestamp: &Value) -> String {
    match timestamp.as_str().and_then(parse_rfc3339) {
        Some(t) => human_duration(now.as_secs() as i64 - t.as_secs() as i64),
        None => "<unknown>".into(),
    }
}

fn column(name: &str, kind: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": "", "priority": priority})
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn joined(object: &Value, field: &str) -> String {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c[field].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join(",")
}

fn selector(object: &Value) -> String {
    object["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pod's STATUS column (`printPod`).
fn pod_status(pod: &Value) -> String {
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".into();
    }
    let mut reason = pod["status"]["reason"]
        .as_str()
        .or(pod["status"]["phase"].as_str())
        .unwrap_or("Pending")
        .to_owned();
    let scheduled_false = pod["status"]["conditions"].as_array().into_iter().flatten().any(|c| {
        c["type"] == "PodScheduled" && c["status"] == "False" && c["reason"] == "SchedulingGated"
    });
    if scheduled_false {
        reason = "SchedulingGated".into();
    }
    let mut running = false;
    for c in pod["status"]["containerStatuses"].as_array().into_iter().flatten().rev() {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
            reason = r.to_owned();
        } else if let Some(r) =
            c["state"]["terminated"]["reason"].as_str().filter(|r| !r.is_empty())
        {
            reason = r.to_owned();
        } else if !c["state"]["terminated"].is_null() {
            reason = format!("ExitCode:{}", int(c, "/state/terminated/exitCode"));
        } else if c["ready"] == true && !c["state"]["running"].is_null() {
            running = true;
        }
    }
    if reason == "Completed" && running {
        reason = "Running".into();
    }
    reason
}

fn restarts(now: Instant, pod: &Value) -> String {
    let statuses: Vec<&Value> =
        pod["status"]["containerStatuses"].as_array().into_iter().flatten().collect();
    let count: i64 = statuses.iter().map(|c| int(c, "/restartCount")).sum();
    let last = statuses
        .iter()
        .filter_map(|c| c["lastState"]["terminated"]["finishedAt"].as_str().and_then(parse_rfc3339))
        .max();
    match last {
        Some(t) if count > 0 => {
            format!("{count} ({} ago)", human_duration(now.as_secs() as i64 - t.as_secs() as i64))
        }
        _ => count.to_string(),
    }
}

/// Columns and the cells of one object.
fn columns(resource: &Resource) -> Vec<Value> {
    match resource.kind {
        "Deployment" => vec![
            column("Name", "string", 0),
            column("Ready", "string", 0),
            column("Up-to-date", "integer", 0),
            column("Available", "integer", 0),
            column("Age", "string", 0),
            column("Containers", "string", 1),
            column("Images", "string", 1),
            column("Selector", "string", 1),
        ],
        "ReplicaSet" => vec![
            column("Name", "string", 0),
            column("Desired", "integer", 0),
            column("Current", "integer", 0),
            column("Ready", "integer", 0),
            column("Age", "string", 0),
            column("Containers", "string", 1),
            column("Images", "string", 1),
            column("Selector", "string", 1),
        ],
        "Pod" => vec![
            column("Name", "string", 0),
            column("Ready", "string", 0),
            column("Status", "string", 0),
            column("Restarts", "string", 0),
            column("Age", "string", 0),
            column("IP", "string", 1),
            column("Node", "string", 1),
            column("Nominated Node", "string", 1),
            column("Readiness Gates", "string", 1),
        ],
        "Node" => vec![
            column("Name", "string", 0),
            column("Status", "string", 0),
            column("Roles", "string", 0),
            column("Age", "string", 0),
            column("Version", "string", 0),
        ],
        "Namespace" => vec![
            column("Name", "string", 0),
            column("Status", "string", 0),
            column("Age", "string", 0),
        ],
        "Event" => vec![
            column("Last Seen", "string", 0),
            column("Type", "string", 0),
            column("Reason", "string", 0),
            column("Object", "string", 0),
            column("Subobject", "string", 1),
            column("Source", "string", 1),
            column("Message", "string", 0),
            column("First Seen", "string", 1),
            column("Count", "string", 1),
            column("Name", "string", 1),
        ],
        _ => vec![column("Name", "string", 0), column("Age", "string", 0)],
    }
}

fn cells(now: Instant, resource: &Resource, o: &Value) -> Value {
    let name = o["metadata"]["name"].clone();
    let created = age(now, &o["metadata"]["creationTimestamp"]);
    match resource.kind {
        "Deployment" => json!([
            name,
            format!("{}/{}", int(o, "/status/readyReplicas"), int(o, "/spec/replicas")),
            int(o, "/status/updatedReplicas"),
            int(o, "/status/availableReplicas"),
            created,
            joined(o, "name"),
            joined(o, "image"),
            selector(o)
        ]),
        "ReplicaSet" => json!([
            name,
            int(o, "/spec/replicas"),
            int(o, "/status/replicas"),
            int(o, "/status/readyReplicas"),
            created,
            joined(o, "name"),
            joined(o, "image"),
            selector(o)
        ]),
        "Pod" => {
            let statuses = o["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            json!([
                name,
                format!("{ready}/{total}"),
                pod_status(o),
                restarts(now, o),
                created,
                o["status"]["podIP"].as_str().unwrap_or("<none>"),
                o["spec"]["nodeName"].as_str().unwrap_or("<none>"),
                "<none>",
                "<none>"
            ])
        }
        "Node" => {
            let ready = o["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            json!([
                name,
                if ready { "Ready" } else { "NotReady" },
                "<none>",
                created,
                o["status"]["nodeInfo"]["kubeletVersion"]
            ])
        }
        "Namespace" => json!([name, o["status"]["phase"], created]),
        "Event" => event_cells(now, o),
        _ => json!([name, created]),
    }
}

/// `printEvent` (server-side printing is wide): the times of an events.k8s.io Event come
/// from `eventTime` and its `series`, its count too.
fn event_cells(now: Instant, o: &Value) -> Value {
    let first = if o["firstTimestamp"].is_null() {
        micro_age(now, &o["eventTime"])
    } else {
        age(now, &o["firstTimestamp"])
    };
    let mut last =
        if o["lastTimestamp"].is_null() { first.clone() } else { age(now, &o["lastTimestamp"]) };
    let mut count = o["count"].as_i64().filter(|c| *c != 0).unwrap_or(1);
    if o["series"].is_object() {
        last = micro_age(now, &o["series"]["lastObservedTime"]);
        count = o["series"]["count"].as_i64().unwrap_or(count);
    }
    let involved = &o["involvedObject"];
    let kind = involved["kind"].as_str().unwrap_or_default().to_lowercase();
    let object = match involved["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let first_of = |a: &Value, b: &Value| {
        a.as_str().filter(|s| !s.is_empty()).or(b.as_str()).unwrap_or_default().to_owned()
    };
    let component = first_of(&o["source"]["component"], &o["reportingComponent"]);
    let instance = first_of(&o["source"]["host"], &o["reportingInstance"]);
    let source = if instance.is_empty() { component } else { format!("{component}, {instance}") };
    json!([
        last,
        o["type"],
        o["reason"],
        object,
        involved["fieldPath"].as_str().unwrap_or_default(),
        source,
        o["message"].as_str().unwrap_or_default().trim(),
        first,
        count,
        o["metadata"]["name"]
    ])
}

/// `translateMicroTimestampSince`.
fn micro_age(now: Instant, timestamp: &Value) -> String {
    if timestamp.is_null() { "<unknown>".into() } else { age(now, timestamp) }
}

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// From the `includeObject` query parameter.
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

fn row(now: Instant, resource: &Resource, object: &Value, include: Include) -> Value {
    let embedded = match include {
        Include::None => Value::Null,
        Include::Metadata => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": object["metadata"]})
        }
        Include::Object => {
            let mut whole = object.clone();
            whole["kind"] = json!(resource.kind);
            whole["apiVersion"] = json!(resource.api_version());
            whole
        }
    };
    json!({"cells": cells(now, resource, object), "object": embedded})
}

/// A Table of `objects` (a LIST's items, or one object) with the list's `metadata`.
pub fn table(
    now: Instant,
    resource: &Resource,
    objects: &[Value],
    metadata: Value,
    include: Include,
) -> Value {
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns(resource),
        "rows": objects.iter().map(|o| row(now, resource, o, include)).collect::<Vec<_>>()
    })
}

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| first.contains("as=Table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HumanDuration's thresholds.
    #[test]
    fn human_durations() {
        let cases = [
            (-5, "<invalid>"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (50 * 3600, "2d2h"),
            (20 * 86400, "20d"),
        ];
        for (s, text) in cases {
            assert_eq!(human_duration(s), text, "{s}");
        }
    }
}
