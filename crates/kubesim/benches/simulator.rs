//! The simulator's own costs. Run with `cargo bench -p kubesim --bench simulator`.
//!
//! - a 100-replica rollout with zero delays, from the PATCH to the Deployment being complete
//!   (target: under 1 s);
//! - the memory of 100 Deployments of 3 replicas, as resident-set growth (target: under 50 MB).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kubesim::{Options, Simulator, resources};
use serde_json::{Value, json};

fn deployment(name: &str, replicas: u32) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}})
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn complete(d: &Value, generation: i64, replicas: i64) -> bool {
    let s = &d["status"];
    s["observedGeneration"].as_i64() >= Some(generation)
        && s["updatedReplicas"].as_i64() == Some(replicas)
        && s["availableReplicas"].as_i64() == Some(replicas)
        && s["replicas"].as_i64() == Some(replicas)
}

fn main() {
    kubeship_testkit::install_crypto_provider();
    let client = reqwest::blocking::Client::new();

    // 100-replica rollout.
    let mut rollouts = Vec::new();
    for round in 0..5 {
        let sim = Simulator::start(Options::default()).unwrap();
        sim.create(&resources::DEPLOYMENTS, deployment("big", 100)).unwrap();
        while !complete(&sim.get(&resources::DEPLOYMENTS, "default", "big").unwrap(), 1, 100) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": format!("app:{}", round + 2)}]}}}});
        let response = client
            .patch(format!("{}/apis/apps/v1/namespaces/default/deployments/big", sim.url()))
            .header("Content-Type", "application/strategic-merge-patch+json")
            .body(patch.to_string())
            .send()
            .unwrap();
        assert!(response.status().is_success());
        while !complete(&sim.get(&resources::DEPLOYMENTS, "default", "big").unwrap(), 2, 100) {
            std::thread::sleep(Duration::from_millis(1));
        }
        rollouts.push(started.elapsed());
    }
    rollouts.sort();

    // 100 Deployments of 3 replicas.
    let before = rss_kib();
    let sim = Simulator::start(Options::default()).unwrap();
    for i in 0..100 {
        sim.create(&resources::DEPLOYMENTS, deployment(&format!("app-{i}"), 3)).unwrap();
    }
    sim.settle();
    let pods = sim.list(&resources::PODS, "default").len();
    let grown = rss_kib().saturating_sub(before);

    let table = format!(
        "| simulator | result | target |\n|---|---|---|\n\
         | 100-replica rollout, PATCH to complete (median of {}) | {:.0} ms | < 1000 ms |\n\
         | 100 Deployments × 3 replicas ({pods} pods), resident memory growth | {:.1} MB | < 50 MB |\n",
        rollouts.len(),
        rollouts[rollouts.len() / 2].as_secs_f64() * 1000.0,
        grown as f64 / 1024.0
    );
    print!("{table}");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("simulator.md"), &table).unwrap();
}
