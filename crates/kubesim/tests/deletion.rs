//! Deletion as the real API server does it (`tests/fidelity` compares it with one): a pod on a
//! node is Terminating until its kubelet has stopped it, ReplicaSets count it as
//! `terminatingReplicas`, the garbage collector removes dependents after their owner, and a
//! namespace is emptied before it goes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kubesim::{Options, Simulator, resources};
use serde_json::{Value, json};

fn sim() -> Simulator {
    Simulator::start(Options { manual_clock: true, ..Options::default() }).unwrap()
}

fn pod(name: &str, extra: Value) -> Value {
    let mut pod = json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
    if let (Some(spec), Some(extra)) = (pod["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    pod
}

fn deployment(name: &str, replicas: u32) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}})
}

/// A running pod: DELETE answers with it Terminating (generation moved, grace 30); its
/// kubelet stops it (Succeeded) and removes it once the termination time has passed.
#[test]
fn a_pod_on_a_node_terminates_then_goes() {
    let sim = sim();
    sim.create(&resources::PODS, pod("web", json!({}))).unwrap();
    let answer = sim.delete(&resources::PODS, "default", "web").unwrap();
    assert_eq!(answer["kind"], "Pod");
    assert_eq!(answer["metadata"]["generation"], 2);
    assert_eq!(answer["metadata"]["deletionGracePeriodSeconds"], 30);
    let stopped = sim.get(&resources::PODS, "default", "web").expect("still there");
    assert_eq!(stopped["status"]["phase"], "Succeeded");
    let state = &stopped["status"]["containerStatuses"][0]["state"];
    assert_eq!(state["terminated"]["reason"], "Completed", "{state}");
    // A second DELETE with a longer grace period changes nothing.
    let again = sim.delete(&resources::PODS, "default", "web").unwrap();
    assert_eq!(again["metadata"]["deletionTimestamp"], answer["metadata"]["deletionTimestamp"]);
    sim.advance(Duration::from_secs(1));
    assert!(sim.get(&resources::PODS, "default", "web").is_none());
}

/// An unscheduled pod goes at once, after its deletion stamp (grace 0) is written.
#[test]
fn an_unscheduled_pod_goes_at_once() {
    let sim = sim();
    sim.create(&resources::PODS, pod("stuck", json!({"nodeSelector": {"x": "y"}}))).unwrap();
    let answer = sim.delete(&resources::PODS, "default", "stuck").unwrap();
    assert_eq!(answer["metadata"]["deletionGracePeriodSeconds"], 0);
    assert!(sim.get(&resources::PODS, "default", "stuck").is_none());
    let requests =
        reqwest::blocking::get(format!("{}/api/v1/namespaces/default/pods/stuck", sim.url()))
            .unwrap();
    assert_eq!(requests.status().as_u16(), 404);
}

/// Scaled down, a ReplicaSet counts the pod it deleted as terminating, not as a replica,
/// until the kubelet has stopped it; the Deployment sums it.
#[test]
fn scaled_down_pods_are_terminating_replicas() {
    let sim = sim();
    sim.create(&resources::DEPLOYMENTS, deployment("web", 2)).unwrap();
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/apis/apps/v1/namespaces/default/replicasets", sim.url());
    let list: Value =
        serde_json::from_str(&client.get(&url).send().unwrap().text().unwrap()).unwrap();
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    sim.merge_patch(&resources::DEPLOYMENTS, "default", "web", json!({"spec": {"replicas": 1}}))
        .unwrap();
    let lines = client
        .get(format!("{url}?watch=true&resourceVersion={rv}&timeoutSeconds=1"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let statuses: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["object"]["status"].clone())
        .collect();
    assert!(
        statuses.iter().any(|s| s["replicas"] == 1 && s["terminatingReplicas"] == 1),
        "{statuses:?}"
    );
    let rs = sim.list(&resources::REPLICASETS, "default").remove(0);
    assert_eq!(rs["metadata"]["generation"], 2, "the scale moved the generation");
    assert_eq!(rs["status"]["terminatingReplicas"], 0);
    let d = sim.get(&resources::DEPLOYMENTS, "default", "web").unwrap();
    assert_eq!(
        (d["status"]["replicas"].as_i64(), d["status"]["terminatingReplicas"].as_i64()),
        (Some(1), Some(0))
    );
}

/// Deleting a Deployment answers a Status; its ReplicaSet and pods are collected after it.
#[test]
fn dependents_are_collected_after_their_owner() {
    let sim = sim();
    sim.create(&resources::DEPLOYMENTS, deployment("web", 2)).unwrap();
    let answer = sim.delete(&resources::DEPLOYMENTS, "default", "web").unwrap();
    assert_eq!(
        (answer["kind"].as_str(), answer["status"].as_str()),
        (Some("Status"), Some("Success"))
    );
    assert_eq!(answer["details"]["kind"], "deployments");
    assert!(sim.list(&resources::REPLICASETS, "default").is_empty());
    let pods = sim.list(&resources::PODS, "default");
    assert!(pods.len() == 2 && pods.iter().all(|p| p["metadata"]["deletionTimestamp"].is_string()));
    sim.advance(Duration::from_secs(1));
    assert!(sim.list(&resources::PODS, "default").is_empty());
}

/// A namespace being deleted takes no new objects, is emptied, then goes.
#[test]
fn a_namespace_is_emptied_before_it_goes() {
    let sim = sim();
    sim.create(&resources::NAMESPACES, json!({"metadata": {"name": "old"}})).unwrap();
    let mut web = deployment("web", 1);
    web["metadata"]["namespace"] = json!("old");
    sim.create(&resources::DEPLOYMENTS, web.clone()).unwrap();
    let answer = sim.delete(&resources::NAMESPACES, "", "old").unwrap();
    assert_eq!(answer["status"]["phase"], "Terminating");
    web["metadata"]["name"] = json!("late");
    let refused = sim.create(&resources::DEPLOYMENTS, web).unwrap_err();
    let kubesim::status::Body::Status(body) = refused.body else { panic!("a Status") };
    assert_eq!(refused.code, 403);
    assert!(body["message"].as_str().unwrap().ends_with("because it is being terminated"));
    assert!(sim.get(&resources::NAMESPACES, "", "old").is_some(), "the pod is terminating");
    sim.advance(Duration::from_secs(1));
    assert!(sim.get(&resources::NAMESPACES, "", "old").is_none());
    assert!(sim.list(&resources::SERVICE_ACCOUNTS, "old").is_empty());
}
