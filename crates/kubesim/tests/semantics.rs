//! API semantics found by comparing kubesim with a real API server (`tests/fidelity`), kept
//! here so they hold without one: selector transitions in watches, the watch-list parameters
//! refused, the events Table with embedded objects, the scheduler's events.k8s.io events,
//! and what admission adds to a pod.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::time::Duration;

use kubesim::{Options, Simulator, resources};
use serde_json::{Value, json};

fn sim() -> Simulator {
    Simulator::start(Options { manual_clock: true, ..Options::default() }).unwrap()
}

const PODS: &str = "/api/v1/namespaces/default/pods";

fn get(sim: &Simulator, path: &str, accept: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::blocking::Client::new().get(format!("{}{path}", sim.url()));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().unwrap();
    let code = response.status().as_u16();
    (code, serde_json::from_str(&response.text().unwrap()).unwrap_or(Value::Null))
}

fn unschedulable(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeSelector": {"x": "y"}, "containers": [{"name": "app", "image": "app:1"}]}})
}

/// Leaving a watch's label selector is a DELETED event with the last matching state at the
/// new version; entering it is ADDED.
#[test]
fn selector_transitions_are_added_and_deleted() {
    let sim = sim();
    sim.create(&resources::PODS, unschedulable("mover")).unwrap();
    let rv = get(&sim, PODS, None).1["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let mut versions = Vec::new();
    for tier in ["front", "back", "front"] {
        let patch = json!({"metadata": {"labels": {"tier": tier}}});
        let pod = sim.merge_patch(&resources::PODS, "default", "mover", patch).unwrap();
        versions.push(pod["metadata"]["resourceVersion"].clone());
    }
    let response = reqwest::blocking::get(format!(
        "{}{PODS}?watch=true&labelSelector=tier%3Dfront&resourceVersion={rv}&timeoutSeconds=5",
        sim.url()
    ))
    .unwrap();
    let events: Vec<Value> = BufReader::new(response)
        .lines()
        .take(3)
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let seen: Vec<(&str, &str, &Value)> = events
        .iter()
        .map(|e| {
            let o = &e["object"]["metadata"];
            (
                e["type"].as_str().unwrap(),
                o["labels"]["tier"].as_str().unwrap(),
                &o["resourceVersion"],
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("ADDED", "front", &versions[0]),
            ("DELETED", "front", &versions[1]),
            ("ADDED", "front", &versions[2])
        ]
    );
}

/// The watch-list parameters outside the protocol are a 422 in the server's words.
#[test]
fn watch_list_parameters_are_checked() {
    let sim = sim();
    let (code, body) = get(&sim, &format!("{PODS}?watch=true&sendInitialEvents=true"), None);
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
    );
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueForbidden");
    let (code, _) =
        get(&sim, &format!("{PODS}?watch=true&resourceVersionMatch=NotOlderThan"), None);
    assert_eq!(code, 422);
    let (code, _) = get(&sim, &format!("{PODS}?sendInitialEvents=true"), None);
    assert_eq!(code, 422);
}

/// The scheduler's events: no lastTimestamp or count, eventTime in microseconds, an action;
/// trying again five minutes later makes a new Event (the pod's version moved with its
/// condition), and the try after that a series on it. The events Table reads their times
/// and counts from there, and embeds whole objects when asked (`kubectl --sort-by`).
#[test]
fn scheduler_events_and_their_table() {
    let sim = sim();
    sim.create(&resources::PODS, unschedulable("stuck")).unwrap();
    sim.advance(Duration::from_secs(301));
    sim.advance(Duration::from_secs(301));
    let events = sim.list(&resources::EVENTS, "default");
    assert_eq!(events.len(), 2, "{events:?}");
    for e in &events {
        assert_eq!(
            (e["reason"].as_str(), e["action"].as_str()),
            (Some("FailedScheduling"), Some("Scheduling"))
        );
        assert!(
            e["lastTimestamp"].is_null()
                && e["firstTimestamp"].is_null()
                && e.get("count").is_none()
        );
        assert_eq!(e["eventTime"].as_str().unwrap().len(), "2026-12-02T14:34:20.635451Z".len());
        assert_eq!(e["source"], json!({}));
    }
    let series: Vec<&Value> = events.iter().filter_map(|e| e.get("series")).collect();
    assert_eq!(series.len(), 1, "{events:?}");
    assert_eq!(series[0]["count"], 2);
    let pod = sim.get(&resources::PODS, "default", "stuck").unwrap();
    assert_eq!(pod["status"]["conditions"][0]["observedGeneration"], 1);

    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let (code, body) =
        get(&sim, "/api/v1/namespaces/default/events?includeObject=Object", Some(table));
    assert_eq!(code, 200);
    let rows = body["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["object"]["kind"] == "Event"));
    let counts: Vec<&Value> = rows.iter().map(|r| &r["cells"][8]).collect();
    assert!(counts.contains(&&json!(2)) && counts.contains(&&json!(1)), "{counts:?}");
    assert!(rows.iter().all(|r| r["cells"][0] != "<unknown>"));
    let (_, body) = get(&sim, "/api/v1/namespaces/default/events?includeObject=None", Some(table));
    assert!(body["rows"].as_array().unwrap().iter().all(|r| r["object"].is_null()));
}

/// A pod gets the namespace's default service account, its token volume, the NoExecute
/// tolerations and its priority; a missing service account is refused.
#[test]
fn pod_admission() {
    let sim = sim();
    let pod = sim.create(&resources::PODS, unschedulable("bare")).unwrap();
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    let volume = spec["volumes"][0]["name"].as_str().unwrap();
    assert!(volume.starts_with("kube-api-access-") && volume.len() == "kube-api-access-".len() + 5);
    assert_eq!(spec["containers"][0]["volumeMounts"][0]["name"], volume);
    assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
    assert_eq!(
        (spec["priority"].as_i64(), spec["enableServiceLinks"].as_bool()),
        (Some(0), Some(true))
    );
    let mut stranger = unschedulable("stranger");
    stranger["spec"]["serviceAccountName"] = json!("nope");
    let refused = sim.create(&resources::PODS, stranger).unwrap_err();
    let kubesim::status::Body::Status(body) = refused.body else { panic!("a Status") };
    assert_eq!(refused.code, 403);
    assert_eq!(
        body["message"],
        "pods \"stranger\" is forbidden: error looking up service account default/nope: serviceaccount \"nope\" not found"
    );
}
