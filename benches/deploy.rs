//! A whole run, timed against what users script today, on one local registry and a simulated
//! cluster. Run with `cargo bench --bench deploy` (kubectl from `KUBECTL`, or PATH).
//!
//! - an instant rollout of 3 replicas: the kubeship binary against `skopeo inspect` +
//!   `kubectl set image` + `kubectl rollout status` (target: at most 1/5 of kubectl's time);
//! - fail-fast: from the start of the run to the exit on ImagePullBackOff (kubectl waits for
//!   the 600 s progress deadline).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use kubeship_testkit::push::Kind;
use kubeship_testkit::{FaultProxy, Registry, Rule, Setup};
use kubesim::{Options, Simulator, resources};
use serde_json::json;

const RUNS: usize = 7;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn wait_available(sim: &Simulator, name: &str, image: &str) {
    for _ in 0..500 {
        sim.settle();
        let d = sim.get(&resources::DEPLOYMENTS, "default", name).unwrap();
        let done = d["spec"]["template"]["spec"]["containers"][0]["image"] == image
            && d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["updatedReplicas"] == 3
            && d["status"]["availableReplicas"] == 3
            && d["status"]["replicas"] == 3;
        if done {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{name} never settled on {image}");
}

fn main() {
    let registry = Registry::start(Setup::Anonymous).unwrap();
    let pusher = registry.pusher().unwrap();
    for tag in ["v1", "v2"] {
        pusher.image("acme/api", tag, Kind::OciIndex, tag).unwrap();
    }
    let image = |tag: &str| format!("{}/acme/api:{tag}", registry.host);
    let proxy = FaultProxy::start(&format!("http://{}", registry.host)).unwrap();
    proxy.add(Rule::status("/manifests/sha256:", usize::MAX, 404, &[]));
    let insecure_registries = vec![registry.host.clone(), proxy.host()];
    let sim = Simulator::start(Options { insecure_registries, ..Options::default() }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig(None)).unwrap();
    sim.create(&resources::DEPLOYMENTS, json!({"metadata": {"name": "api", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "app", "image": image("v1")}]}}}}))
        .unwrap();
    wait_available(&sim, "api", &image("v1"));

    let kubeship = |tag: &str| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_kubeship"))
            .env_clear()
            .env("KUBECONFIG", &kubeconfig)
            .env("INPUT_IMAGE", image(tag))
            .env("INPUT_DEPLOYMENT", "api")
            .env("INPUT_INSECURE-REGISTRY", "true")
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        elapsed
    };
    let kubectl_binary = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let cache = dir.path().join("cache");
    let kubectl = |args: &[&str]| {
        let out = Command::new(&kubectl_binary)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let scripted = |tag: &str| {
        let started = Instant::now();
        let raw = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{}", image(tag)))
            .output()
            .unwrap();
        assert!(raw.status.success());
        let digest = String::from_utf8_lossy(&raw.stdout).trim().to_owned();
        let pinned = format!("{}/acme/api@{digest}", registry.host);
        kubectl(&["set", "image", "deployment/api", &format!("app={pinned}")]);
        kubectl(&["rollout", "status", "deployment/api", "--timeout=60s"]);
        started.elapsed()
    };

    // Alternate v2/v1 so that every run has a change to roll out.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..RUNS {
        let tag = if round % 2 == 0 { "v2" } else { "v1" };
        ours.push(kubeship(tag));
        let other = if tag == "v2" { "v1" } else { "v2" };
        theirs.push(scripted(other));
    }
    let (ours, theirs) = (median(ours), median(theirs));

    // Fail-fast: the image is resolved through a proxy that refuses the nodes' pulls (by
    // digest), so the new pods go to ErrImagePull and ImagePullBackOff.
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeship"))
        .env_clear()
        .env("KUBECONFIG", &kubeconfig)
        .env("INPUT_IMAGE", format!("{}/acme/api:v2", proxy.host()))
        .env("INPUT_DEPLOYMENT", "api")
        .env("INPUT_CONTAINER", "app")
        .env("INPUT_INSECURE-REGISTRY", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let fail_fast = started.elapsed();
    assert_eq!(status.code(), Some(1));

    let table = format!(
        "| whole run on an instant rollout of 3 replicas, median of {RUNS} | time |\n|---|---|\n\
         | skopeo inspect + kubectl set image + kubectl rollout status | {} |\n\
         | kubeship | {} |\n\
         | kubeship / scripted kubectl | {:.2} (target ≤ 0.20) |\n\n\
         | fail-fast on ImagePullBackOff | time |\n|---|---|\n\
         | kubeship, start to exit 1 | {} |\n\
         | kubectl rollout status | waits for progressDeadlineSeconds (600 s) |\n",
        ms(theirs),
        ms(ours),
        ours.as_secs_f64() / theirs.as_secs_f64(),
        ms(fail_fast)
    );
    print!("{table}");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("deploy.md"), &table).unwrap();
}
