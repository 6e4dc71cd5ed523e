//! A whole run, timed against what users script today, on one local registry and a simulated
//! cluster. Run with `cargo bench --bench deploy` (kubectl from `KUBECTL`, or PATH).
//!
//! - an instant rollout of 3 replicas: the kubeship binary against `skopeo inspect` +
//!   `kubectl set image` + `kubectl rollout status` (target: at most 1/5 of kubectl's time);
//! - fail-fast: from the start of the run to the exit on ImagePullBackOff, beside kubectl
//!   rollout status on the same rollout (its verdict is the progress deadline, 20 s here);
//! - completion detection: from the status change that completes a rollout (a manual clock
//!   makes the new pod Ready on demand) to kubeship's exit (target: 50 ms);
//! - 1, 10, 20 and 50 targets in one run: kubeship's CPU time and peak resident memory (VmHWM;
//!   target: under 30 MB with 20 targets). The wall time is shown too, but it is the
//!   simulator's: its controllers re-read every object on each pass, so with many rollouts
//!   at once they, not kubeship, set the pace.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use kubeship_testkit::push::Kind;
use kubeship_testkit::{FaultProxy, Registry, Rule, Setup};
use kubesim::{Behaviour, Options, Simulator, resources};
use serde_json::json;

const RUNS: usize = 7;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn deployment(name: &str, replicas: u32, image: &str) -> serde_json::Value {
    json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

/// What one kubeship process cost.
struct Cost {
    wall: Duration,
    /// User plus system CPU time.
    cpu: Duration,
    /// Peak resident set, kB.
    peak_kb: u64,
}

/// Runs a kubeship process to success and measures it: VmHWM is read from /proc until the
/// process has exited (a zombie has no VmHWM line), then the zombie's CPU times from its stat.
fn measured(command: &mut Command) -> Cost {
    let ticks_per_second: f64 =
        String::from_utf8(Command::new("getconf").arg("CLK_TCK").output().unwrap().stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    let started = Instant::now();
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let proc = format!("/proc/{}", child.id());
    let mut peak_kb = 0;
    while let Some(hwm) =
        std::fs::read_to_string(format!("{proc}/status")).ok().and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
    {
        peak_kb = hwm;
        std::thread::sleep(Duration::from_millis(1));
    }
    // Fields 14 and 15 (utime, stime), counted after the parenthesised command name.
    let stat = std::fs::read_to_string(format!("{proc}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = child.wait().unwrap();
    let wall = started.elapsed();
    assert!(status.success(), "kubeship failed: {status}");
    Cost { wall, cpu: Duration::from_secs_f64(ticks / ticks_per_second), peak_kb }
}

fn wait_available(sim: &Simulator, name: &str, image: &str) {
    for _ in 0..500 {
        sim.settle();
        let d = sim.get(&resources::DEPLOYMENTS, "default", name).unwrap();
        let replicas = &d["spec"]["replicas"];
        let done = d["spec"]["template"]["spec"]["containers"][0]["image"] == image
            && d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && &d["status"]["updatedReplicas"] == replicas
            && &d["status"]["availableReplicas"] == replicas
            && &d["status"]["replicas"] == replicas;
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
    let mut digests = std::collections::BTreeMap::new();
    for tag in ["v1", "v2"] {
        digests.insert(tag, pusher.image("acme/api", tag, Kind::OciIndex, tag).unwrap().digest);
    }
    let image = |tag: &str| format!("{}/acme/api:{tag}", registry.host);
    let proxy = FaultProxy::start(&format!("http://{}", registry.host)).unwrap();
    proxy.add(Rule::status("/manifests/sha256:", usize::MAX, 404, &[]));
    let insecure_registries = vec![registry.host.clone(), proxy.host()];
    let sim = Simulator::start(Options { insecure_registries, ..Options::default() }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig(None)).unwrap();
    sim.create(&resources::DEPLOYMENTS, deployment("api", 3, &image("v1"))).unwrap();
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
    // digest), so the new pods go to ErrImagePull and ImagePullBackOff. kubectl rollout
    // status watches the same rollout from the moment kubeship's patch lands; its only
    // verdict is the progress deadline, shortened here to 20 s (the default is 600 s).
    const DEADLINE_SECONDS: u64 = 20;
    kubectl(&[
        "patch",
        "deployment/api",
        "-p",
        &format!(r#"{{"spec":{{"progressDeadlineSeconds":{DEADLINE_SECONDS}}}}}"#),
    ]);
    sim.clear_requests();
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
    while !sim.requests().iter().any(|r| r.method == "PATCH") {
        std::thread::sleep(Duration::from_millis(2));
    }
    let watcher = Command::new(&kubectl_binary)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["rollout", "status", "deployment/api", "--timeout=300s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let fail_fast = started.elapsed();
    assert_eq!(status.code(), Some(1));
    let verdict = watcher.wait_with_output().unwrap();
    let kubectl_verdict = started.elapsed();
    let said = String::from_utf8_lossy(&verdict.stderr).into_owned();
    assert_eq!(verdict.status.code(), Some(1), "{said}");
    assert!(said.contains("exceeded its progress deadline"), "{said}");

    // Completion detection: the new pod's readiness waits for a manual clock, so the status
    // change that completes the rollout happens exactly when the benchmark moves the clock.
    let manual = Simulator::start(Options {
        insecure_registries: vec![registry.host.clone()],
        manual_clock: true,
        ..Options::default()
    })
    .unwrap();
    let manual_kubeconfig = dir.path().join("manual-kubeconfig");
    std::fs::write(&manual_kubeconfig, manual.kubeconfig(None)).unwrap();
    manual.create(&resources::DEPLOYMENTS, deployment("api", 1, &image("v1"))).unwrap();
    wait_available(&manual, "api", &image("v1"));
    let ready_delay = Duration::from_secs(30);
    for digest in digests.values() {
        let pinned = format!("{}/acme/api@{digest}", registry.host);
        manual.script(&pinned, Behaviour { ready_delay, ..Behaviour::default() });
    }
    let mut detection = Vec::new();
    for round in 0..RUNS {
        let tag = if round % 2 == 0 { "v2" } else { "v1" };
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubeship"))
            .env_clear()
            .env("KUBECONFIG", &manual_kubeconfig)
            .env("INPUT_IMAGE", image(tag))
            .env("INPUT_DEPLOYMENT", "api")
            .env("INPUT_INSECURE-REGISTRY", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the new pod runs but is not Ready, and kubeship is watching.
        for _ in 0..500 {
            manual.settle();
            let d = manual.get(&resources::DEPLOYMENTS, "default", "api").unwrap();
            if d["status"]["observedGeneration"] == d["metadata"]["generation"]
                && d["status"]["updatedReplicas"] == 1
                && manual.list(&resources::PODS, "default").iter().any(|p| {
                    p["spec"]["containers"][0]["image"].as_str().is_some_and(|i| i.contains('@'))
                        && p["status"]["phase"] == "Running"
                })
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(child.try_wait().unwrap().is_none(), "kubeship ended before the rollout did");
        let changed = Instant::now();
        manual.advance(ready_delay);
        assert!(child.wait().unwrap().success());
        detection.push(changed.elapsed());
    }
    let detection = median(detection);

    // 1 to 50 targets in one run: every run changes every target (tags alternate).
    let sizes = [1usize, 10, 20, 50];
    let most = sizes[sizes.len() - 1];
    for i in 0..most {
        sim.create(&resources::DEPLOYMENTS, deployment(&format!("svc{i}"), 2, &image("v1")))
            .unwrap();
    }
    for i in 0..most {
        wait_available(&sim, &format!("svc{i}"), &image("v1"));
    }
    let mut scaling = Vec::new();
    let mut tag = "v1";
    for n in sizes {
        let targets: Vec<String> = (0..n).map(|i| format!("svc{i}")).collect();
        let mut costs = Vec::new();
        // Each size runs an even number of times so that every target ends on v1 again.
        for _ in 0..4 {
            tag = if tag == "v1" { "v2" } else { "v1" };
            costs.push(measured(
                Command::new(env!("CARGO_BIN_EXE_kubeship"))
                    .env_clear()
                    .env("KUBECONFIG", &kubeconfig)
                    .env("INPUT_IMAGE", image(tag))
                    .env("INPUT_DEPLOYMENT", targets.join(","))
                    .env("INPUT_INSECURE-REGISTRY", "true"),
            ));
        }
        let wall = median(costs.iter().map(|c| c.wall).collect());
        let cpu = median(costs.iter().map(|c| c.cpu).collect());
        let peak_kb = costs.iter().map(|c| c.peak_kb).max().unwrap();
        scaling.push((n, wall, cpu, peak_kb));
    }

    let mut table = format!(
        "| whole run on an instant rollout of 3 replicas, median of {RUNS} | time |\n|---|---|\n\
         | skopeo inspect + kubectl set image + kubectl rollout status | {} |\n\
         | kubeship | {} |\n\
         | kubeship / scripted kubectl | {:.2} (target ≤ 0.20) |\n\n\
         | fail-fast on ImagePullBackOff, same rollout | verdict after |\n|---|---|\n\
         | kubeship, start to exit 1 | {} |\n\
         | kubectl rollout status, progressDeadlineSeconds {DEADLINE_SECONDS} (default 600) | {} |\n",
        ms(theirs),
        ms(ours),
        ours.as_secs_f64() / theirs.as_secs_f64(),
        ms(fail_fast),
        ms(kubectl_verdict)
    );
    table.push_str(&format!(
        "\n| completion detection, median of {RUNS} | time |\n|---|---|\n\
         | status change that completes the rollout → kubeship exits | {} (target ≤ 50 ms) |\n",
        ms(detection)
    ));
    table.push_str(
        "\n| targets in one run (2 replicas each), median of 4 | kubeship CPU time | peak memory | wall time (bound by the simulator) |\n\
         |---|---|---|---|\n",
    );
    for (n, wall, cpu, peak_kb) in &scaling {
        table.push_str(&format!(
            "| {n} | {} | {:.1} MB | {} |\n",
            // The kernel counts CPU time in clock ticks (10 ms here).
            if cpu.is_zero() { "< 10 ms".to_owned() } else { ms(*cpu) },
            *peak_kb as f64 / 1024.0,
            ms(*wall)
        ));
    }
    print!("{table}");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("deploy.md"), &table).unwrap();
}
