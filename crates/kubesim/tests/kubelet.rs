//! The kubelet and scheduler: images resolved against a real registry, and the pod failure
//! states kubeship's fail-fast must see, with the words and events of the real components.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kubeship_testkit::push::Kind;
use kubeship_testkit::{Registry, Setup};
use kubesim::{Behaviour, Node, Options, Simulator, resources};
use serde_json::{Value, json};

fn deployment(image: &str, extra_spec: Value) -> Value {
    let mut spec = json!({"containers": [{"name": "app", "image": image}]});
    if let (Value::Object(s), Value::Object(e)) = (&mut spec, extra_spec) {
        s.extend(e);
    }
    json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}})
}

fn pod(sim: &Simulator) -> Value {
    sim.list(&resources::PODS, "default").into_iter().next().expect("a pod")
}

fn waiting(pod: &Value) -> (String, String) {
    let w = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or_default().to_owned(),
        w["message"].as_str().unwrap_or_default().to_owned(),
    )
}

fn event_reasons(sim: &Simulator) -> Vec<String> {
    sim.list(&resources::EVENTS, "default")
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls (the kubelet's registry look-ups are asynchronous).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("never: {what}");
}

fn with_registry() -> (Registry, Simulator) {
    let registry = Registry::start(Setup::Anonymous).unwrap();
    let sim = Simulator::start(Options {
        manual_clock: true,
        insecure_registries: vec![registry.host.clone()],
        ..Options::default()
    })
    .unwrap();
    (registry, sim)
}

/// A pushed image runs, with imageID = repository@digest from the registry.
#[test]
fn found_image_runs_with_its_digest() {
    let (registry, sim) = with_registry();
    registry.pusher().unwrap().image("demo/app", "v1", Kind::OciIndex, "k").unwrap();
    let digest = registry.stored_digest("demo/app", "v1").unwrap();
    sim.create(
        &resources::DEPLOYMENTS,
        deployment(&format!("{}/demo/app:v1", registry.host), json!({})),
    )
    .unwrap();
    eventually("running", || pod(&sim)["status"]["phase"] == "Running");
    assert_eq!(
        pod(&sim)["status"]["containerStatuses"][0]["imageID"],
        format!("{}/demo/app@{digest}", registry.host)
    );
}

/// An unknown tag: ErrImagePull, then ImagePullBackOff, with the kubelet's events; once the
/// tag is pushed and the back-off passes, the pod runs.
#[test]
fn unknown_tag_backs_off_then_recovers() {
    let (registry, sim) = with_registry();
    let image = format!("{}/demo/app:v2", registry.host);
    sim.create(&resources::DEPLOYMENTS, deployment(&image, json!({}))).unwrap();
    eventually("ErrImagePull", || waiting(&pod(&sim)).0 == "ErrImagePull");
    let (_, message) = waiting(&pod(&sim));
    assert!(
        message.contains("not found") && message.contains("failed to resolve reference"),
        "{message}"
    );
    sim.advance(Duration::from_secs(2));
    let (reason, message) = waiting(&pod(&sim));
    assert_eq!(reason, "ImagePullBackOff");
    assert!(message.starts_with(&format!("Back-off pulling image \"{image}\"")), "{message}");
    let reasons = event_reasons(&sim);
    assert!(
        reasons.contains(&"Failed".to_owned()) && reasons.contains(&"BackOff".to_owned()),
        "{reasons:?}"
    );
    let d = sim.get(&resources::DEPLOYMENTS, "default", "web").unwrap();
    assert_eq!(d["status"]["unavailableReplicas"], 1);

    registry.pusher().unwrap().image("demo/app", "v2", Kind::DockerManifest, "late").unwrap();
    sim.advance(Duration::from_secs(10));
    eventually("running after the push", || {
        sim.settle();
        pod(&sim)["status"]["phase"] == "Running"
    });
}

/// A malformed reference is InvalidImageName at once.
#[test]
fn invalid_image_name() {
    let sim = Simulator::start(Options { manual_clock: true, ..Options::default() }).unwrap();
    sim.create(&resources::DEPLOYMENTS, deployment("Repo:UPPER:x", json!({}))).unwrap();
    let (reason, message) = waiting(&pod(&sim));
    assert_eq!(reason, "InvalidImageName");
    assert!(message.contains("invalid reference format"), "{message}");
}

/// No node fits: PodScheduled=False/Unschedulable and a FailedScheduling event; a new node
/// that fits gets the pod.
#[test]
fn unschedulable_until_a_node_fits() {
    let sim = Simulator::start(Options { manual_clock: true, ..Options::default() }).unwrap();
    sim.create(
        &resources::DEPLOYMENTS,
        deployment("app:1", json!({"nodeSelector": {"kubernetes.io/arch": "s390x"}})),
    )
    .unwrap();
    let p = pod(&sim);
    let scheduled = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .unwrap()
        .clone();
    assert_eq!(
        (scheduled["status"].as_str(), scheduled["reason"].as_str()),
        (Some("False"), Some("Unschedulable"))
    );
    assert!(scheduled["message"].as_str().unwrap().starts_with(
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    ));
    assert!(event_reasons(&sim).contains(&"FailedScheduling".to_owned()));
    sim.add_node(&Node { name: "big-iron".into(), arch: "s390x".into() });
    let p = pod(&sim);
    assert_eq!(
        (p["spec"]["nodeName"].as_str(), p["status"]["phase"].as_str()),
        (Some("big-iron"), Some("Running"))
    );
}

/// Pods that cannot be created: FailedCreate on the ReplicaSet, ReplicaFailure on it and on
/// the Deployment.
#[test]
fn replica_failure_reaches_the_deployment() {
    let sim = Simulator::start(Options { manual_clock: true, ..Options::default() }).unwrap();
    let quota = "pods \"web-x\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10";
    sim.script("app:big", Behaviour { create_error: Some(quota.into()), ..Behaviour::default() });
    sim.create(&resources::DEPLOYMENTS, deployment("app:big", json!({}))).unwrap();
    let d = sim.get(&resources::DEPLOYMENTS, "default", "web").unwrap();
    let failure = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ReplicaFailure")
        .unwrap()
        .clone();
    assert_eq!(
        (failure["reason"].as_str(), failure["message"].as_str()),
        (Some("FailedCreate"), Some(quota))
    );
    assert!(event_reasons(&sim).contains(&"FailedCreate".to_owned()));
}

/// A missing ConfigMap key: CreateContainerConfigError with its message.
#[test]
fn create_container_config_error() {
    let sim = Simulator::start(Options { manual_clock: true, ..Options::default() }).unwrap();
    sim.script(
        "app:cfg",
        Behaviour {
            config_error: Some("configmap \"settings\" not found".into()),
            ..Behaviour::default()
        },
    );
    sim.create(&resources::DEPLOYMENTS, deployment("app:cfg", json!({}))).unwrap();
    assert_eq!(
        waiting(&pod(&sim)),
        ("CreateContainerConfigError".into(), "configmap \"settings\" not found".into())
    );
}

/// A container that keeps exiting goes to CrashLoopBackOff with its last termination, and
/// the pod's phase is Running (the kubelet's getPhase: it started, and is restarting).
#[test]
fn crash_loop_is_running_with_the_last_termination() {
    let sim = Simulator::start(Options { manual_clock: true, ..Options::default() }).unwrap();
    let crash = Some((Duration::from_secs(1), "OOMKilled".to_owned(), 137));
    sim.script("app:oom", Behaviour { crash, ..Behaviour::default() });
    sim.create(&resources::DEPLOYMENTS, deployment("app:oom", json!({}))).unwrap();
    sim.advance(Duration::from_secs(2));
    let pod = pod(&sim);
    assert_eq!(waiting(&pod).0, "CrashLoopBackOff", "{pod}");
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["lastState"]["terminated"]["reason"], "OOMKilled");
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 137);
    assert_eq!(pod["status"]["phase"], "Running");
}

/// minReadySeconds holds availability back after readiness.
#[test]
fn min_ready_seconds_delays_availability() {
    let sim = Simulator::start(Options { manual_clock: true, ..Options::default() }).unwrap();
    let mut d = deployment("app:1", json!({}));
    d["spec"]["minReadySeconds"] = json!(30);
    sim.create(&resources::DEPLOYMENTS, d).unwrap();
    let d = sim.get(&resources::DEPLOYMENTS, "default", "web").unwrap();
    assert_eq!(
        (d["status"]["readyReplicas"].as_i64(), d["status"].get("availableReplicas")),
        (Some(1), None)
    );
    sim.advance(Duration::from_secs(31));
    let d = sim.get(&resources::DEPLOYMENTS, "default", "web").unwrap();
    assert_eq!(d["status"]["availableReplicas"], 1);
}

/// HTTPS registries with a CA the kubelet is given, and the anonymous token flow.
#[test]
fn tls_and_token_registries() {
    let tls = Registry::start(Setup::Htpasswd { user: "u", password: "p" }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tokens =
        kubeship_testkit::TokenServer::start(kubeship_testkit::certs::signing(dir.path()).unwrap())
            .unwrap();
    let token = Registry::start(Setup::Token(&tokens)).unwrap();
    token.pusher().unwrap().image("team/app", "v1", Kind::OciManifest, "t").unwrap();
    let sim = Simulator::start(Options {
        manual_clock: true,
        insecure_registries: vec![token.host.clone()],
        registry_ca: tls.ca_pem(),
        ..Options::default()
    })
    .unwrap();
    // The htpasswd registry refuses anonymous pulls: authorization failed, as containerd says.
    sim.create(
        &resources::DEPLOYMENTS,
        deployment(&format!("{}/secure/app:v1", tls.host), json!({})),
    )
    .unwrap();
    eventually("ErrImagePull", || waiting(&pod(&sim)).0 == "ErrImagePull");
    assert!(waiting(&pod(&sim)).1.contains("authorization failed"), "{:?}", waiting(&pod(&sim)));

    let sim = Simulator::start(Options {
        manual_clock: true,
        insecure_registries: vec![token.host.clone()],
        ..Options::default()
    })
    .unwrap();
    sim.create(
        &resources::DEPLOYMENTS,
        deployment(&format!("{}/team/app:v1", token.host), json!({})),
    )
    .unwrap();
    eventually("running", || pod(&sim)["status"]["phase"] == "Running");
    let digest = token.stored_digest("team/app", "v1").unwrap();
    assert_eq!(
        pod(&sim)["status"]["containerStatuses"][0]["imageID"],
        format!("{}/team/app@{digest}", token.host)
    );
    assert_eq!(tokens.requests().len(), 1);
}
