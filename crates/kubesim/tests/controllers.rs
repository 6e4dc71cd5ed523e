//! Deployment controller behaviours beyond the rolling update kubectl exercises: Recreate,
//! paused and resumed rollouts, and the response-delay fault.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kubesim::{Faults, Options, Simulator, resources};
use serde_json::{Value, json};

fn sim() -> Simulator {
    Simulator::start(Options { manual_clock: true, ..Options::default() }).unwrap()
}

fn deployment(strategy: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "strategy": strategy, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}})
}

fn patch(sim: &Simulator, body: Value) {
    kubeship_testkit::install_crypto_provider();
    let response = reqwest::blocking::Client::new()
        .patch(format!("{}/apis/apps/v1/namespaces/default/deployments/web", sim.url()))
        .header("Content-Type", "application/strategic-merge-patch+json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert!(response.status().is_success());
    sim.settle();
}

fn image(version: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": version}]}}}})
}

fn progressing(sim: &Simulator) -> String {
    let d = sim.get(&resources::DEPLOYMENTS, "default", "web").unwrap();
    d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Events in the order they were written.
fn scaling_events(sim: &Simulator) -> Vec<String> {
    let mut events = sim.list(&resources::EVENTS, "default");
    events.sort_by_key(|e| {
        e["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap()
    });
    events
        .iter()
        .filter(|e| e["reason"] == "ScalingReplicaSet")
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

/// Recreate: the old ReplicaSet goes to zero, and only then does the new one scale up.
#[test]
fn recreate_scales_down_before_up() {
    let sim = sim();
    sim.create(&resources::DEPLOYMENTS, deployment(json!({"type": "Recreate"}))).unwrap();
    patch(&sim, image("app:2"));
    let scaling = scaling_events(&sim);
    let down = scaling
        .iter()
        .position(|m| m.starts_with("Scaled down") && m.ends_with("from 2 to 0"))
        .expect("scaled down");
    let up = scaling
        .iter()
        .rposition(|m| m.starts_with("Scaled up") && m.ends_with("from 0 to 2"))
        .expect("scaled up");
    assert!(down < up, "{scaling:?}");
    // The old pods are stopped (terminal) at once and removed after the termination time.
    let old: Vec<Value> = sim
        .list(&resources::PODS, "default")
        .into_iter()
        .filter(|p| p["spec"]["containers"][0]["image"] == "app:1")
        .collect();
    assert!(
        old.len() == 2
            && old.iter().all(|p| p["status"]["phase"] == "Succeeded"
                && p["metadata"]["deletionTimestamp"].is_string()),
        "{old:?}"
    );
    sim.advance(Duration::from_secs(1));
    let pods = sim.list(&resources::PODS, "default");
    assert!(pods.len() == 2 && pods.iter().all(|p| p["spec"]["containers"][0]["image"] == "app:2"));
    assert_eq!(progressing(&sim), "NewReplicaSetAvailable");
}

/// Paused: the spec change is observed but not rolled out; resuming rolls it out.
#[test]
fn paused_then_resumed() {
    let sim = sim();
    sim.create(&resources::DEPLOYMENTS, deployment(json!({}))).unwrap();
    patch(&sim, json!({"spec": {"paused": true}}));
    patch(&sim, image("app:2"));
    let d = sim.get(&resources::DEPLOYMENTS, "default", "web").unwrap();
    assert_eq!(d["status"]["observedGeneration"], d["metadata"]["generation"]);
    assert_eq!(progressing(&sim), "DeploymentPaused");
    assert_eq!(
        sim.list(&resources::REPLICASETS, "default").len(),
        1,
        "no new ReplicaSet while paused"
    );
    // No new ReplicaSet, so no updated replicas: kubectl prints "0 out of 2 new replicas" forever.
    assert!(d["status"].get("updatedReplicas").is_none(), "{d}");

    patch(&sim, json!({"spec": {"paused": false}}));
    assert_eq!(sim.list(&resources::REPLICASETS, "default").len(), 2);
    assert_eq!(progressing(&sim), "NewReplicaSetAvailable");
    sim.advance(Duration::from_secs(1));
    assert!(
        sim.list(&resources::PODS, "default")
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "app:2")
    );
}

/// Injected delay holds every response back.
#[test]
fn delayed_responses() {
    let sim = sim();
    sim.set_faults(Faults { delay: Some(Duration::from_millis(300)), ..Faults::default() });
    let started = Instant::now();
    let response = reqwest::blocking::get(format!("{}/api/v1/namespaces", sim.url())).unwrap();
    assert!(response.status().is_success());
    assert!(started.elapsed() >= Duration::from_millis(300));
}
