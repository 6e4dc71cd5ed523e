//! A whole run, timed against what users script today, on one local registry and on both
//! clusters the tests use: kubesim and the real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler v1.37, kwok nodes, the kubelet stand-in). Each
//! figure is printed for both, side by side. Run with `cargo bench --bench deploy` (kubectl
//! from `KUBECTL`, or PATH; the real control plane from `KUBESHIP_CONTROLPLANE`, as
//! scripts/test and scripts/bench set it).
//!
//! - an instant rollout (pods Ready as soon as they run): the kubeship binary against
//!   `skopeo inspect` + `kubectl set image` + `kubectl rollout status`;
//! - fail-fast: from the start of the run to the exit on an image pull failure, beside kubectl
//!   rollout status on the same rollout (its verdict is the progress deadline, 15 s here);
//! - completion detection: from the moment the cluster reports the rollout complete (seen by a
//!   watch of the benchmark's own) to kubeship's exit;
//! - 1, 10 and 50 targets in one run: kubeship's CPU time, peak resident memory (VmHWM) and
//!   wall time.

#![allow(clippy::unwrap_used)]

#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../tests/it/world.rs"]
mod world;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubesim::{Behaviour, resources};
use serde_json::json;
use world::{Cluster, Setup, World};

const RUNS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// What one kubeship process cost.
struct Cost {
    wall: Duration,
    /// Time on a CPU, user and system, from schedstat.
    cpu: Duration,
    /// Peak resident set, kB.
    peak_kb: u64,
}

/// Runs a kubeship process to success and measures it. Every millisecond until the process
/// has exited (a zombie has neither), its VmHWM and its threads' run time from schedstat
/// (nanoseconds; the kernel's user and system times count 10 ms ticks, too coarse for runs
/// of a few ticks). The CPU time misses the last millisecond before the exit, and the time of
/// any thread that ended before the last reading: kubeship works on its main thread, and only
/// exec plugins and name lookups get others.
fn measured(command: &mut Command) -> Cost {
    let started = Instant::now();
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let proc = format!("/proc/{}", child.id());
    let (mut peak_kb, mut cpu_ns) = (0, 0);
    while let Some(hwm) =
        std::fs::read_to_string(format!("{proc}/status")).ok().and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
    {
        peak_kb = hwm;
        cpu_ns = cpu_ns.max(run_time_ns(&proc));
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = child.wait().unwrap();
    let wall = started.elapsed();
    assert!(status.success(), "kubeship failed: {status}");
    Cost { wall, cpu: Duration::from_nanos(cpu_ns), peak_kb }
}

/// The summed run time of a process's threads so far (the first field of each schedstat).
fn run_time_ns(proc: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("{proc}/task")) else { return 0 };
    tasks
        .filter_map(|task| {
            let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// One cluster's figures.
struct Figures {
    ours: Duration,
    theirs: Duration,
    fail_fast: Duration,
    kubectl_verdict: Duration,
    detection: Duration,
    /// (targets, wall, cpu, peak kB)
    scaling: Vec<(usize, Duration, Duration, u64)>,
}

/// Pods of these digests are Ready as soon as they run.
fn instant(w: &World) {
    for digest in [&w.v1, &w.v2] {
        w.script(
            &w.pinned(digest),
            Behaviour {
                start_delay: Duration::ZERO,
                ready_delay: Duration::ZERO,
                ..Behaviour::default()
            },
        );
    }
}

fn kubectl(w: &World, args: &[&str]) -> String {
    let binary = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let out = Command::new(binary)
        .arg("--kubeconfig")
        .arg(w.dir.path().join("kubeconfig"))
        .arg("--cache-dir")
        .arg(w.dir.path().join("kubectl-cache"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The whole run, alternating v2 and v1 so that every run has a change to roll out.
fn whole_runs(w: &World) -> (Duration, Duration) {
    instant(w);
    let kubeship = |tag: &str| {
        let started = Instant::now();
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image(tag)),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_CONTAINER", "app"),
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        started.elapsed()
    };
    let scripted = |tag: &str| {
        let started = Instant::now();
        let raw = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{}", w.image(tag)))
            .output()
            .unwrap();
        assert!(raw.status.success());
        let pinned = w.pinned(String::from_utf8_lossy(&raw.stdout).trim());
        kubectl(w, &["set", "image", "deployment/api", &format!("app={pinned}")]);
        kubectl(w, &["rollout", "status", "deployment/api", "--timeout=120s"]);
        started.elapsed()
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..RUNS {
        let (tag, other) = if round % 2 == 0 { ("v2", "v1") } else { ("v1", "v2") };
        ours.push(kubeship(tag));
        theirs.push(scripted(other));
    }
    (median(ours), median(theirs))
}

/// Fail-fast on a pull failure: the nodes cannot reach the registry. kubectl rollout status
/// watches the same rollout from the patch on; its only verdict is the progress deadline.
fn fail_fast(cluster: Cluster) -> (Duration, Duration) {
    const DEADLINE_SECONDS: u32 = 15;
    let w = World::start(cluster, Setup { unreachable_registry: true }).unwrap();
    w.merge_patch(
        &resources::DEPLOYMENTS,
        "api",
        json!({"spec": {"progressDeadlineSeconds": DEADLINE_SECONDS}}),
    );
    let started = Instant::now();
    let run = w.spawn(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_CONTAINER", "app"),
    ]);
    run.wait_for("== Wait for the rollout");
    let binary = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let watcher = Command::new(binary)
        .arg("--kubeconfig")
        .arg(w.dir.path().join("kubeconfig"))
        .arg("--cache-dir")
        .arg(w.dir.path().join("kubectl-cache"))
        .args(["rollout", "status", "deployment/api", "--timeout=300s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = run.finish(&w);
    let ours = started.elapsed();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let verdict = watcher.wait_with_output().unwrap();
    let theirs = started.elapsed();
    let said = String::from_utf8_lossy(&verdict.stderr).into_owned();
    assert!(said.contains("exceeded its progress deadline"), "{said}");
    (ours, theirs)
}

/// Whether Deployment `api`'s status says the rollout of `image` is complete.
fn complete(w: &World, image: &str) -> bool {
    let Some(d) = w.get(&resources::DEPLOYMENTS, "api") else { return false };
    let s = &d["status"];
    d["spec"]["template"]["spec"]["containers"][0]["image"] == image
        && s["observedGeneration"] == d["metadata"]["generation"]
        && s["updatedReplicas"] == d["spec"]["replicas"]
        && s["availableReplicas"] == d["spec"]["replicas"]
        && s["replicas"] == d["spec"]["replicas"]
}

/// From the status that completes the rollout to kubeship's exit: the new pods get Ready a
/// few seconds after they run, so that the moment stands apart from the run's start; the
/// benchmark reads the Deployment every few milliseconds meanwhile (on the real cluster a GET
/// takes about as long), and kubeship's exit is taken when the process ends.
fn detection(w: &World) -> Duration {
    let ready_delay = Duration::from_secs(2);
    for digest in [&w.v1, &w.v2] {
        w.script(&w.pinned(digest), Behaviour { ready_delay, ..Behaviour::default() });
    }
    let mut samples = Vec::new();
    for round in 0..RUNS {
        let (tag, digest) = if round % 2 == 0 { ("v2", &w.v2) } else { ("v1", &w.v1) };
        let image = w.pinned(digest);
        let mut run = w.spawn(&[
            ("INPUT_IMAGE", &w.image(tag)),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_CONTAINER", "app"),
        ]);
        let seen = loop {
            if complete(w, &image) {
                break Some(Instant::now());
            }
            if run.child.try_wait().unwrap().is_some() {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let ended = loop {
            if run.child.try_wait().unwrap().is_some() {
                break Instant::now();
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let run = run.finish(w);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        // Ended before the benchmark saw the end: at most one polling interval.
        samples.push(seen.map_or(Duration::ZERO, |seen| ended.saturating_duration_since(seen)));
    }
    median(samples)
}

/// The static binary the image ships (`KUBESHIP_STATIC_BINARY`, as scripts/bench sets it):
/// the scaling figures measure it when it is given, else cargo's build.
fn shipped_binary() -> Option<std::path::PathBuf> {
    std::env::var_os("KUBESHIP_STATIC_BINARY").filter(|p| !p.is_empty()).map(Into::into)
}

/// 1 to 50 targets in one run; each size runs an even number of times so that every target
/// ends on v1 again.
fn scaling(w: &World) -> Vec<(usize, Duration, Duration, u64)> {
    let binary = shipped_binary().unwrap_or_else(|| env!("CARGO_BIN_EXE_kubeship").into());
    instant(w);
    let sizes = [1usize, 10, 50];
    let most = sizes[sizes.len() - 1];
    for i in 0..most {
        w.create(
            &resources::DEPLOYMENTS,
            json!({"metadata": {"name": format!("svc{i}")},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("svc{i}")}},
                "template": {"metadata": {"labels": {"app": format!("svc{i}")}},
                    "spec": {"containers": [{"name": "app", "image": w.image("v1")}]}}}}),
        );
    }
    for i in 0..most {
        w.until("the services available", || {
            let d = w.get(&resources::DEPLOYMENTS, &format!("svc{i}"))?;
            (d["status"]["availableReplicas"] == 2).then_some(())
        });
    }
    let mut figures = Vec::new();
    let mut tag = "v1";
    for n in sizes {
        let targets: Vec<String> = (0..n).map(|i| format!("svc{i}")).collect();
        let mut costs = Vec::new();
        for _ in 0..2 {
            tag = if tag == "v1" { "v2" } else { "v1" };
            costs.push(measured(&mut w.command_of(
                &binary,
                &[
                    ("INPUT_IMAGE", &w.image(tag)),
                    ("INPUT_DEPLOYMENT", &targets.join(",")),
                    ("INPUT_TIMEOUT", "10m"),
                ],
            )));
        }
        let wall = median(costs.iter().map(|c| c.wall).collect());
        let cpu = median(costs.iter().map(|c| c.cpu).collect());
        let peak_kb = costs.iter().map(|c| c.peak_kb).max().unwrap();
        figures.push((n, wall, cpu, peak_kb));
    }
    figures
}

fn figures(cluster: Cluster) -> Option<Figures> {
    let w = World::start(cluster, Setup::default())?;
    let (ours, theirs) = whole_runs(&w);
    let detection = detection(&w);
    let scaling = scaling(&w);
    let (fail_fast, kubectl_verdict) = fail_fast(cluster);
    Some(Figures { ours, theirs, fail_fast, kubectl_verdict, detection, scaling })
}

fn main() {
    let sim = figures(Cluster::Kubesim).unwrap();
    let real = figures(Cluster::Real);
    let cell = |f: &dyn Fn(&Figures) -> String| {
        (f(&sim), real.as_ref().map_or_else(|| "(not built)".to_owned(), f))
    };
    let mut table = format!(
        "| measured (median of {RUNS} unless said) | kubesim | real control plane |\n|---|---|---|\n"
    );
    let mut row = |what: &str, f: &dyn Fn(&Figures) -> String| {
        let (a, b) = cell(f);
        table.push_str(&format!("| {what} | {a} | {b} |\n"));
    };
    row(
        "instant rollout (2 replicas): skopeo inspect + kubectl set image + kubectl rollout status",
        &|f| ms(f.theirs),
    );
    row("instant rollout (2 replicas): kubeship", &|f| ms(f.ours));
    row("kubeship / scripted kubectl", &|f| {
        format!("{:.2}", f.ours.as_secs_f64() / f.theirs.as_secs_f64())
    });
    row("image pull failure: kubeship, start to exit 1 (one run)", &|f| ms(f.fail_fast));
    row("image pull failure: kubectl rollout status, progressDeadlineSeconds 15 (one run)", &|f| {
        ms(f.kubectl_verdict)
    });
    row("completion detection: rollout complete → kubeship exits", &|f| ms(f.detection));
    for i in 0..3 {
        let n = sim.scaling[i].0;
        row(&format!("{n} targets (2 replicas each): kubeship CPU time, median of 2"), &|f| {
            ms(f.scaling[i].2)
        });
        row(&format!("{n} targets: peak memory"), &|f| {
            format!("{:.1} MB", f.scaling[i].3 as f64 / 1024.0)
        });
        row(&format!("{n} targets: wall time"), &|f| ms(f.scaling[i].1));
    }
    let measured = if shipped_binary().is_some() {
        "the static binary the image ships"
    } else {
        "cargo's build (set KUBESHIP_STATIC_BINARY for the image's; scripts/bench does)"
    };
    table.push_str(&format!("\nCPU time and memory by target count: {measured}.\n"));
    print!("{table}");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("deploy.md"), &table).unwrap();
}
