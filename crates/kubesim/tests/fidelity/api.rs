//! The API's own answers: watch options the server refuses, and the Table of events that
//! kubectl asks for (`kubectl get events --sort-by=.lastTimestamp` embeds each object).

use std::process::Command;

use kubesim::resources::{DEPLOYMENTS, EVENTS, PODS};
use serde_json::{Value, json};

use super::{Side, both, same};

/// The answers to watch and list requests with the watch-list parameters misused.
fn watch_options(side: &Side) -> Value {
    let deployments = side.path(&DEPLOYMENTS, None);
    let queries = [
        "watch=true&sendInitialEvents=true&allowWatchBookmarks=true",
        "watch=true&resourceVersionMatch=NotOlderThan",
        "sendInitialEvents=true",
    ];
    let answers: Vec<Value> = queries
        .iter()
        .map(|q| {
            let (code, body) = side.send("GET", &format!("{deployments}?{q}"), None);
            json!({"query": q, "code": code, "body": body})
        })
        .collect();
    json!(answers)
}

#[test]
fn watch_list_parameters_refused() {
    let Some((sim, real)) = both("watch_options") else { return };
    same("watch options", &watch_options(&sim), &watch_options(&real));
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// The Table of a namespace's events with each `includeObject`, and kubectl's listing.
fn events_table(side: &Side) -> Value {
    let pod = json!({"metadata": {"name": "seen"},
        "spec": {"containers": [{"name": "app", "image": "fidelity-table:1"}]}});
    side.create(&PODS, pod);
    let events = side.path(&EVENTS, None);
    side.until("the pod's events", || {
        let items = side.get(&events)["items"].as_array()?.clone();
        let reasons: Vec<&str> = items.iter().filter_map(|e| e["reason"].as_str()).collect();
        (reasons.contains(&"Scheduled") && reasons.contains(&"Started")).then_some(())
    });
    let mut out = serde_json::Map::new();
    for include in ["Object", "Metadata", "None"] {
        let (code, table) =
            side.request("GET", &format!("{events}?includeObject={include}"), None, Some(TABLE));
        assert_eq!(code, 200, "{table}");
        let columns: Vec<Value> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!([c["name"], c["type"], c["priority"]]))
            .collect();
        let mut rows: Vec<Value> = table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let cells = r["cells"].as_array().unwrap();
                let age =
                    |v: &Value| if v == "<unknown>" { json!("<unknown>") } else { json!("<age>") };
                let source = cells[5].as_str().unwrap_or_default();
                // Instances are named after the scheduler's host and the kubelet's node.
                let source = match source.split_once(", ") {
                    Some((component, _)) => format!("{component}, <instance>"),
                    None => source.to_owned(),
                };
                json!({"last seen": age(&cells[0]), "type": cells[1], "reason": cells[2],
                    "object": cells[3], "subobject": cells[4], "source": source,
                    "first seen": age(&cells[7]), "count": cells[8],
                    "embedded": r["object"]["kind"],
                    "embedded lastTimestamp": r["object"].get("lastTimestamp").is_some()})
            })
            .collect();
        rows.sort_by_key(|r| r["reason"].to_string());
        rows.dedup();
        out.insert(include.to_owned(), json!({"columns": columns, "rows": rows}));
    }
    out.insert("kubectl".to_owned(), kubectl_events(side));
    Value::Object(out)
}

/// `kubectl get events --sort-by=.lastTimestamp`: the reasons it lists, when `KUBECTL` names
/// kubectl 1.37 (scripts/test sets it).
fn kubectl_events(side: &Side) -> Value {
    let Ok(binary) = std::env::var("KUBECTL") else {
        eprintln!("kubectl part skipped: KUBECTL is unset");
        return Value::Null;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), &side.kubeconfig).unwrap();
    let output = Command::new(binary)
        .env_clear()
        .env("HOME", dir.path())
        .arg("--kubeconfig")
        .arg(dir.path().join("kubeconfig"))
        .args(["get", "events", "--sort-by=.lastTimestamp"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // LAST SEEN, TYPE, REASON, OBJECT, MESSAGE: the reason is the third word of a row.
    let mut reasons: Vec<&str> =
        text.lines().skip(1).filter_map(|l| l.split_whitespace().nth(2)).collect();
    reasons.sort_unstable();
    reasons.dedup();
    json!({"code": output.status.code(), "no resources": text.contains("No resources found"),
        "reasons": reasons})
}

#[test]
fn events_table_with_embedded_objects() {
    let Some((sim, real)) = both("events_table") else { return };
    same("events table", &events_table(&sim), &events_table(&real));
}
