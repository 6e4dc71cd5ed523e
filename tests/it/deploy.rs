//! End to end: the kubeship binary, a real registry, and kubesim.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kubeship_testkit::push::Kind;
use kubeship_testkit::{Registry, Setup};
use kubesim::{Behaviour, Options, Simulator, resources};
use serde_json::{Value, json};

/// The simulated API server's bearer token: every request must carry it (over TLS, as kubectl
/// sends no credentials over plain HTTP).
pub const TOKEN: &str = "kubesim-bearer-7c1e";

pub struct World {
    pub registry: Registry,
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub v1: String,
    pub v2: String,
}

impl World {
    /// A registry with app:v1 and app:v2, and a cluster whose Deployment `api` runs v1.
    pub fn start(manual_clock: bool) -> Self {
        Self::start_with(manual_clock, true)
    }

    /// As [`World::start`]; without `reachable`, the kubelet is not told the registry speaks
    /// plain HTTP, so its pulls from it fail (the Deployment starts on an image it need not pull).
    fn start_with(manual_clock: bool, reachable: bool) -> Self {
        let registry = Registry::start(Setup::Anonymous).unwrap();
        let pusher = registry.pusher().unwrap();
        pusher.image("acme/api", "v1", Kind::OciManifest, "one").unwrap();
        pusher.image("acme/api", "v2", Kind::OciIndex, "two").unwrap();
        let v1 = registry.stored_digest("acme/api", "v1").unwrap();
        let v2 = registry.stored_digest("acme/api", "v2").unwrap();
        let sim = Simulator::start(Options {
            manual_clock,
            tls: true,
            token: Some(TOKEN.to_owned()),
            insecure_registries: if reachable { vec![registry.host.clone()] } else { Vec::new() },
            ..Options::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubeconfig"), sim.kubeconfig(Some("prod"))).unwrap();
        sim.create(&resources::NAMESPACES, json!({"metadata": {"name": "prod"}})).unwrap();
        let world = Self { registry, sim, dir, v1, v2 };
        let first = if reachable {
            format!("{}/acme/api:v1", world.registry.host)
        } else {
            "nginx:1.27".to_owned()
        };
        world.deployment("api", &first, 2);
        world
    }

    fn deployment(&self, name: &str, image: &str, replicas: u32) {
        let d = json!({"metadata": {"name": name, "namespace": "prod"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": image}, {"name": "proxy", "image": "envoy:1"}]}}}});
        self.sim.create(&resources::DEPLOYMENTS, d).unwrap();
        // Let the kubelet's registry look-ups land.
        for _ in 0..100 {
            self.sim.settle();
            let d = self.sim.get(&resources::DEPLOYMENTS, "prod", name).unwrap();
            if d["status"]["availableReplicas"] == replicas {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("deployment {name} never became available");
    }

    pub fn image(&self, tag: &str) -> String {
        format!("{}/acme/api:{tag}", self.registry.host)
    }

    pub fn pinned(&self, digest: &str) -> String {
        format!("{}/acme/api@{digest}", self.registry.host)
    }

    pub fn command(&self, vars: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubeship"));
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("GITHUB_OUTPUT", self.dir.path().join("output"))
            .env("INPUT_INSECURE-REGISTRY", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            command.env(k, v);
        }
        command
    }

    /// Starts kubeship with the v2 image on `api` and returns once its patch has landed and
    /// it is waiting.
    fn spawn_waiting(&self, timeout: &str) -> std::process::Child {
        let child = self
            .command(&[
                ("INPUT_IMAGE", &self.image("v2")),
                ("INPUT_DEPLOYMENT", "api"),
                ("INPUT_TIMEOUT", timeout),
            ])
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if !self.patches().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        child
    }

    /// A request straight to the cluster's API (a merge patch when `body` is given), as
    /// another client of the cluster would send it.
    fn api(&self, method: &str, path: &str, body: Option<&str>) {
        kubeship_testkit::install_crypto_provider();
        let ca = reqwest::Certificate::from_pem(self.sim.ca_pem().unwrap().as_bytes()).unwrap();
        let client = reqwest::blocking::Client::builder().add_root_certificate(ca).build().unwrap();
        let mut request = client
            .request(method.parse().unwrap(), format!("{}{path}", self.sim.url()))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/merge-patch+json")
                .body(body.to_owned());
        }
        let response = request.send().unwrap();
        assert!(response.status().is_success(), "{method} {path}: {}", response.status());
    }

    pub fn run(&self, vars: &[(&str, &str)]) -> Run {
        let _ = std::fs::remove_file(self.dir.path().join("output"));
        let output = self.command(vars).output().unwrap();
        self.finish(output)
    }

    pub fn finish(&self, output: Output) -> Run {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let result =
            stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
        let text = std::fs::read_to_string(self.dir.path().join("output")).unwrap_or_default();
        Run {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            result,
            outputs: parse_outputs(&text),
        }
    }

    pub fn container_image(&self, name: &str) -> String {
        let d = self.sim.get(&resources::DEPLOYMENTS, "prod", name).unwrap();
        d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_owned()
    }

    /// The real patches the cluster received (not the dry runs of the preflight).
    pub fn patches(&self) -> Vec<kubesim::Logged> {
        self.all_patches().into_iter().filter(|r| !r.query.contains_key("dryRun")).collect()
    }

    /// Every PATCH, dry runs included.
    pub fn all_patches(&self) -> Vec<kubesim::Logged> {
        self.sim.requests().into_iter().filter(|r| r.method == "PATCH").collect()
    }
}

pub struct Run {
    pub code: Option<i32>,
    pub stderr: String,
    pub result: Value,
    pub outputs: BTreeMap<String, String>,
}

/// `$GITHUB_OUTPUT` read with the runner's rules, which must accept it.
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    kubeship_testkit::github::parse_output(text)
        .unwrap_or_else(|e| panic!("the runner refuses $GITHUB_OUTPUT: {e}\n{text}"))
        .into_iter()
        .collect()
}

/// A good rollout: the digest pinned on the matching container only, with field manager
/// kubeship, kubectl's success, and the outputs of the contract.
#[test]
fn good_rollout_pins_the_digest() {
    let w = World::start(false);
    let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.result["status"], "succeeded");
    assert_eq!(run.result["digest"], w.v2.as_str());
    let target = &run.result["targets"][0];
    assert_eq!(
        (target["kind"].as_str(), target["namespace"].as_str(), target["name"].as_str()),
        (Some("Deployment"), Some("prod"), Some("api"))
    );
    assert_eq!(target["message"], "deployment \"api\" successfully rolled out");
    assert_eq!(
        target["containers"],
        json!([{"name": "app", "previous_image": w.image("v1"), "image": w.pinned(&w.v2)}])
    );
    assert_eq!(w.container_image("api"), w.pinned(&w.v2));
    let d = w.sim.get(&resources::DEPLOYMENTS, "prod", "api").unwrap();
    assert_eq!(d["spec"]["template"]["spec"]["containers"][1]["image"], "envoy:1");
    assert_eq!(
        d["metadata"]["annotations"]["kubernetes.io/change-cause"],
        format!("kubeship: {}", w.pinned(&w.v2))
    );

    let patches = w.patches();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].query.get("fieldManager").map(String::as_str), Some("kubeship"));
    assert_eq!(patches[0].content_type, "application/strategic-merge-patch+json");

    assert_eq!(run.outputs["status"], "succeeded");
    assert_eq!(run.outputs["changed"], "true");
    assert_eq!(run.outputs["digest"], w.v2);
    assert_eq!(run.outputs["image"], w.pinned(&w.v2));
    assert_eq!(run.outputs["previous-image"], w.image("v1"));
    assert_eq!(run.outputs["revision"], "2");
    assert_eq!(run.outputs["ready-replicas"], "2");
    let result: Value = serde_json::from_str(&run.outputs["result"]).unwrap();
    assert_eq!(result, run.result);
    // The pods run what the registry serves, and the report says so.
    assert_eq!(run.result["targets"][0]["image_ids"], json!([w.pinned(&w.v2)]));
    let pods = w.sim.list(&resources::PODS, "prod");
    assert!(
        pods.iter()
            .all(|p| p["status"]["containerStatuses"][0]["imageID"] == w.pinned(&w.v2).as_str())
    );
}

/// Already at the digest: nothing is patched, changed=false, success.
#[test]
fn already_pinned_is_a_no_op() {
    let w = World::start(false);
    w.deployment("web", &w.pinned(&w.v1), 1);
    w.sim.clear_requests();
    let run = w.run(&[("INPUT_IMAGE", &w.image("v1")), ("INPUT_DEPLOYMENT", "web")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        (run.outputs["changed"].as_str(), run.outputs["status"].as_str()),
        ("false", "succeeded")
    );
    assert!(w.patches().is_empty());
}

/// A container that does not exist: exit 2, its containers listed, nothing changed.
#[test]
fn unknown_container_changes_nothing() {
    let w = World::start(false);
    w.sim.clear_requests();
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_CONTAINER", "nope"),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("has no container \"nope\"") && run.stderr.contains("proxy (envoy:1)"),
        "{}",
        run.stderr
    );
    assert!(w.patches().is_empty());
    assert_eq!(w.container_image("api"), w.image("v1"));
}

/// A missing target: exit 4 naming kind, namespace and name; other targets untouched.
#[test]
fn missing_target_is_exit_4_before_any_patch() {
    let w = World::start(false);
    w.sim.clear_requests();
    let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api,sts/db")]);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(run.stderr.contains("statefulset/db not found in namespace prod"), "{}", run.stderr);
    assert!(w.all_patches().is_empty());
}

/// dry-run: the patch is sent with dryRun=All only, nothing changes, and the report says so
/// (changed=false, no new revision, the real replica count); wait=false: applied, with the
/// revision the patch made and the real counts, not those from before the patch.
#[test]
fn dry_run_and_no_wait() {
    let w = World::start(false);
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_DRY-RUN", "true"),
    ]);
    assert_eq!((run.code, run.outputs["status"].as_str()), (Some(0), "dry-run"), "{}", run.stderr);
    let patches = w.all_patches();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].query.get("dryRun").map(String::as_str), Some("All"));
    assert_eq!(w.container_image("api"), w.image("v1"));
    let target = &run.result["targets"][0];
    assert_eq!(
        (target["status"].as_str(), target["changed"].as_bool()),
        (Some("dry-run"), Some(false))
    );
    assert_eq!((run.outputs["changed"].as_str(), run.outputs["revision"].as_str()), ("false", ""));
    assert_eq!(target["replicas"], 2);
    assert_eq!(target["containers"][0]["image"], w.pinned(&w.v2).as_str(), "what would change");

    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_WAIT", "false"),
    ]);
    assert_eq!((run.code, run.outputs["status"].as_str()), (Some(0), "applied"), "{}", run.stderr);
    assert_eq!(w.container_image("api"), w.pinned(&w.v2));
    let d = w.sim.get(&resources::DEPLOYMENTS, "prod", "api").unwrap();
    let revision =
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str().unwrap();
    assert_eq!(run.outputs["revision"], revision, "the revision the patch made");
    assert_eq!(revision, "2");
    assert_eq!(run.result["targets"][0]["replicas"], 2);
}

/// Pods that never get ready: the progress deadline fails the run with kubectl's words,
/// as soon as the controller says so (the clock is advanced past 600 s).
#[test]
fn progress_deadline_fails_the_run() {
    let w = World::start(true);
    w.sim.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
    let child = w.spawn_waiting("1m");
    w.sim.advance(Duration::from_secs(601));
    let run = w.finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "failed");
    assert_eq!(
        run.result["targets"][0]["message"],
        "deployment \"api\" exceeded its progress deadline"
    );
}

/// The run's own deadline: timed-out, exit 1, the last waiting message kept.
#[test]
fn timeout_is_timed_out() {
    let w = World::start(false);
    w.sim.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_TIMEOUT", "2s"),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "timed-out");
    let message = run.result["targets"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("deployment/api did not finish rolling out within 2s: Waiting for deployment \"api\" rollout to finish"), "{message}");
}

/// The new pods cannot pull the image: the run fails on ImagePullBackOff within seconds,
/// where kubectl would sit out the 600 s progress deadline.
#[test]
fn image_pull_failure_fails_fast() {
    let w = World::start_with(false, false);
    let started = std::time::Instant::now();
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_CONTAINER", "app"),
    ]);
    let pods: Vec<Value> = w.sim.list(&resources::PODS, "prod");
    let statuses: Vec<&Value> = pods.iter().map(|p| &p["status"]["containerStatuses"]).collect();
    assert_eq!(run.code, Some(1), "{}\n{statuses:#?}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert_eq!(run.outputs["status"], "failed");
    let message = run.result["targets"][0]["message"].as_str().unwrap();
    assert!(message.contains("ImagePullBackOff") || message.contains("ErrImagePull"), "{message}");
    assert!(
        message.starts_with("deployment/api: pod api-") && message.contains("imagePullSecrets"),
        "{message}"
    );
}

/// A crash loop with OOMKilled: the run fails with the termination's reason and exit code.
#[test]
fn crash_loop_fails_fast_with_the_cause() {
    let w = World::start(false);
    let crash = Some((Duration::from_secs(1), "OOMKilled".to_owned(), 137));
    // Crashing a second after start, before its readiness delay: it never becomes ready.
    let ready_delay = Duration::from_secs(30);
    let logs =
        vec!["starting".to_owned(), "allocating cache".to_owned(), "out of memory".to_owned()];
    w.sim.script(&w.pinned(&w.v2), Behaviour { crash, ready_delay, logs, ..Behaviour::default() });
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_TIMEOUT", "60s"),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let message = run.result["targets"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("keeps crashing") && message.contains("OOMKilled (exit code 137)"),
        "{message}"
    );
    // The previous run's last log lines, under the failure.
    assert!(run.stderr.contains("last log lines of app (previous run):"), "{}", run.stderr);
    assert!(run.stderr.contains("    out of memory"), "{}", run.stderr);
}

/// A configuration error fails at once; with fail-fast off, the run waits for its deadline.
#[test]
fn config_error_and_fail_fast_off() {
    let w = World::start(false);
    let config_error = Some("secret \"db\" not found".to_owned());
    w.sim.script(&w.pinned(&w.v2), Behaviour { config_error, ..Behaviour::default() });
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_TIMEOUT", "60s"),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let message = run.result["targets"][0]["message"].as_str().unwrap();
    assert!(message.contains("CreateContainerConfigError: secret \"db\" not found"), "{message}");
    // The pod's Warning event, under the failure.
    assert!(run.stderr.contains("event Failed: Error: secret \"db\" not found"), "{}", run.stderr);
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_TIMEOUT", "3s"),
        ("INPUT_FAIL-FAST", "false"),
    ]);
    assert_eq!(run.outputs["status"], "timed-out", "{}", run.stderr);
}

/// SIGTERM (a cancelled CI job) while waiting: stop within 2 s, report the state with
/// status=cancelled, exit 143; SIGINT exits 130.
#[test]
fn interrupted_while_waiting() {
    let w = World::start(false);
    w.sim.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
    for (signal, code) in [("-TERM", 143), ("-INT", 130)] {
        let child = w
            .command(&[
                ("INPUT_IMAGE", &w.image("v2")),
                ("INPUT_DEPLOYMENT", "api"),
                ("INPUT_TIMEOUT", "5m"),
            ])
            .spawn()
            .unwrap();
        // Wait until the run is past its patch and waiting.
        for _ in 0..200 {
            let d = w.sim.get(&resources::DEPLOYMENTS, "prod", "api").unwrap();
            if d["spec"]["template"]["spec"]["containers"][0]["image"] == w.pinned(&w.v2).as_str() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let sent = std::time::Instant::now();
        let status = Command::new("kill").arg(signal).arg(child.id().to_string()).status().unwrap();
        assert!(status.success());
        let run = w.finish(child.wait_with_output().unwrap());
        assert!(sent.elapsed() < Duration::from_secs(2), "{:?}", sent.elapsed());
        assert_eq!(run.code, Some(code), "{}", run.stderr);
        assert_eq!(run.outputs["status"], "cancelled");
        assert_eq!(run.result["targets"][0]["status"], "cancelled");
        assert!(
            run.result["targets"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("interrupted while waiting for deployment/api")
        );
    }
}

/// Three targets, one failing: with rollback-on-failure every changed target gets its
/// previous images back, the run reports rolled-back and exits 1.
#[test]
fn rollback_on_failure_restores_every_target() {
    let w = World::start(false);
    w.deployment("worker", &w.image("v1"), 1);
    w.deployment("web", &w.image("v1"), 1);
    let config_error = Some("secret \"web-tls\" not found".to_owned());
    w.sim.script_template(
        ("app", "web"),
        &w.pinned(&w.v2),
        Behaviour { config_error, ..Behaviour::default() },
    );
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api,worker,web"),
        ("INPUT_ROLLBACK-ON-FAILURE", "true"),
        ("INPUT_TIMEOUT", "60s"),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "rolled-back");
    let statuses: Vec<&str> = run.result["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["rolled-back", "rolled-back", "rolled-back"]);
    let web = run.result["targets"][2]["message"].as_str().unwrap();
    assert!(web.contains("CreateContainerConfigError") && web.contains("rolled back"), "{web}");
    for name in ["api", "worker", "web"] {
        assert_eq!(w.container_image(name), w.image("v1"), "{name}");
    }
    // Two patches per target: the pin and the way back, each with field manager kubeship.
    let patches = w.patches();
    assert_eq!(patches.len(), 6);
    assert!(
        patches.iter().all(|p| p.query.get("fieldManager").map(String::as_str) == Some("kubeship"))
    );
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// An exec credential plugin that is not installed is named (the EKS/GKE case), exit 2.
#[test]
fn missing_exec_plugin_is_named() {
    let w = World::start(false);
    let config = w.sim.kubeconfig(None).replace(
        &format!("    token: {TOKEN}\n"),
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token]\n",
    );
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &config),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("exec plugin \"aws\", which is not on PATH"), "{}", run.stderr);
    assert!(w.patches().is_empty());
}

/// An exec credential plugin that exists is run, and its token authenticates every request.
#[test]
fn exec_plugin_supplies_the_token() {
    let w = World::start(false);
    let plugin = w.dir.path().join("get-token");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho \"$1\" > \"$(dirname \"$0\")/plugin-ran\"\n\
             printf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{TOKEN}\"}}}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = w.sim.kubeconfig(Some("prod")).replace(
        &format!("    token: {TOKEN}\n"),
        &format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      args: [cluster-a]\n      interactiveMode: Never\n",
            plugin.display()
        ),
    );
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &config),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "succeeded");
    assert_eq!(std::fs::read_to_string(w.dir.path().join("plugin-ran")).unwrap(), "cluster-a\n");
    assert_eq!(w.patches().len(), 1);
}

/// The kubeconfig input as base64, a context picked by name; an unknown context lists them.
#[test]
fn kubeconfig_input_and_context() {
    let w = World::start(false);
    let config = w.sim.kubeconfig(Some("prod"));
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &base64(&config)),
        ("INPUT_CONTEXT", "kubesim"),
        ("KUBECONFIG", "/nonexistent"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_CONTEXT", "staging"),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("has no context \"staging\": set the context input to one of: kubesim"),
        "{}",
        run.stderr
    );
}

/// RBAC: a 403 is exit 4, quoting the server and listing the permissions kubeship needs.
#[test]
fn forbidden_is_exit_4_with_the_permissions() {
    let w = World::start(false);
    w.sim.set_faults(kubesim::Faults {
        forbid: vec![("get".into(), "deployments".into())],
        ..Default::default()
    });
    let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api")]);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot get resource \"deployments\" in API group \"apps\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the verb \"get\" on \"deployments\"")
            && run.stderr.contains("Permissions"),
        "{}",
        run.stderr
    );
}

/// Watches dropped after every event, a storm of 410s and a burst of 429s: the run still
/// follows the rollout to its end.
#[test]
fn survives_dropped_watches_410_and_429() {
    let w = World::start(false);
    w.sim.script(
        &w.pinned(&w.v2),
        Behaviour { ready_delay: Duration::from_millis(700), ..Behaviour::default() },
    );
    w.sim.set_faults(kubesim::Faults {
        close_watches_after: Some(1),
        throttle: Some((3, true)),
        ..Default::default()
    });
    let child = w
        .command(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_TIMEOUT", "30s"),
        ])
        .spawn()
        .unwrap();
    // A storm of 410s: the history is forgotten again and again while kubeship watches.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(150));
        w.sim.expire_history();
    }
    let run = w.finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "succeeded");
    let watches = w.sim.requests().iter().filter(|r| r.query.contains_key("watch")).count();
    assert!(watches > 2, "the watch was resumed: {watches}");
}

/// The target deleted mid-rollout: failed, saying so.
#[test]
fn deleted_target_fails() {
    let w = World::start(false);
    w.sim.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
    let child = w.spawn_waiting("30s");
    w.api("DELETE", "/apis/apps/v1/namespaces/prod/deployments/api", None);
    let run = w.finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.result["targets"][0]["message"]
            .as_str()
            .unwrap()
            .contains("was deleted during the rollout"),
        "{}",
        run.result
    );
}

fn workload(w: &World, kind: &kubesim::Resource, name: &str, spec: Value) {
    let mut object = json!({"metadata": {"name": name, "namespace": "prod"},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": w.image("v1")}]}}}});
    if let (Value::Object(s), Value::Object(extra)) = (&mut object["spec"], spec) {
        s.extend(extra);
    }
    w.sim.create(kind, object).unwrap();
    for _ in 0..100 {
        w.sim.settle();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// StatefulSet with a partition, a DaemonSet, and an OnDelete StatefulSet (applied, with a
/// warning), in one run; kubectl's messages for each.
#[test]
fn statefulset_daemonset_and_on_delete() {
    let w = World::start(false);
    workload(
        &w,
        &resources::STATEFULSETS,
        "db",
        json!({"replicas": 3, "serviceName": "db",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
    );
    workload(&w, &resources::DAEMONSETS, "agent", json!({}));
    workload(
        &w,
        &resources::STATEFULSETS,
        "cache",
        json!({"replicas": 1, "serviceName": "cache", "updateStrategy": {"type": "OnDelete"}}),
    );
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "sts/db,ds/agent,statefulset/cache"),
        ("INPUT_TIMEOUT", "30s"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let targets = run.result["targets"].as_array().unwrap();
    assert_eq!(
        targets[0]["message"],
        "partitioned roll out complete: 2 new pods have been updated..."
    );
    assert_eq!(targets[1]["message"], "daemon set \"agent\" successfully rolled out");
    assert_eq!(targets[2]["status"], "applied");
    assert!(
        run.stderr.contains("statefulset/cache uses the OnDelete update strategy"),
        "{}",
        run.stderr
    );
    let image = |n: &str| {
        w.sim.get(&resources::PODS, "prod", n).unwrap()["spec"]["containers"][0]["image"].clone()
    };
    assert_eq!((image("db-0"), image("db-2")), (json!(w.image("v1")), json!(w.pinned(&w.v2))));
}

/// Under GitHub Actions the change cause names the repository, commit and run.
#[test]
fn change_cause_under_github_actions() {
    let w = World::start(false);
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("GITHUB_REPOSITORY", "acme/api"),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("GITHUB_RUN_ID", "42"),
        ("GITHUB_SERVER_URL", "https://github.com"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let d = w.sim.get(&resources::DEPLOYMENTS, "prod", "api").unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["kubernetes.io/change-cause"],
        format!(
            "kubeship: {} from acme/api@0123456789ab (https://github.com/acme/api/actions/runs/42)",
            w.pinned(&w.v2)
        )
    );
}

/// The GitLab dotenv report and the Tekton results, next to $GITHUB_OUTPUT.
#[test]
fn dotenv_and_tekton_results() {
    let w = World::start(false);
    let dotenv = w.dir.path().join("deploy.env");
    let results = w.dir.path().join("results");
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_DOTENV-FILE", dotenv.to_str().unwrap()),
        ("INPUT_RESULTS-DIR", results.to_str().unwrap()),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let text = std::fs::read_to_string(&dotenv).unwrap();
    assert!(
        text.contains(&format!("KUBESHIP_DIGEST={}\n", w.v2))
            && text.contains("KUBESHIP_STATUS=succeeded\n"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.starts_with("KUBESHIP_") && l.contains('=')), "{text}");
    assert_eq!(std::fs::read_to_string(results.join("status")).unwrap(), "succeeded");
    assert_eq!(std::fs::read_to_string(results.join("image")).unwrap(), w.pinned(&w.v2));
}

/// Runs real kubectl's `rollout status` on the same cluster, for the verdict to compare.
fn kubectl_rollout_status(w: &World, target: &str) -> (Option<i32>, String) {
    let binary = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let output = Command::new(binary)
        .env_clear()
        .env("HOME", w.dir.path())
        .arg("--kubeconfig")
        .arg(w.dir.path().join("kubeconfig"))
        .arg("--cache-dir")
        .arg(w.dir.path().join("kubectl-cache"))
        .args(["rollout", "status", target, "--timeout=10s"])
        .output()
        .expect("kubectl runs (set KUBECTL, or run scripts/test)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

/// Where kubectl's rollout status ends, it ends with kubeship's verdict: success, and the
/// progress deadline.
#[test]
fn kubectl_reaches_the_same_verdicts() {
    let w = World::start(false);
    let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let (code, text) = kubectl_rollout_status(&w, "deployment/api");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.ends_with(&format!("{}\n", run.result["targets"][0]["message"].as_str().unwrap())),
        "{text}"
    );

    let w = World::start(true);
    w.sim.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
    let child = w.spawn_waiting("1m");
    w.sim.advance(Duration::from_secs(601));
    let run = w.finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let (code, text) = kubectl_rollout_status(&w, "deployment/api");
    assert_eq!(code, Some(1), "{text}");
    let ours = run.result["targets"][0]["message"].as_str().unwrap();
    assert!(text.contains(&format!("error: {ours}")), "kubectl: {text} kubeship: {ours}");
}

/// A paused Deployment: kubeship fails at once and says how to resume; kubectl would wait.
#[test]
fn paused_deployment_fails_fast() {
    let w = World::start(false);
    w.api(
        "PATCH",
        "/apis/apps/v1/namespaces/prod/deployments/api",
        Some(r#"{"spec":{"paused":true}}"#),
    );
    let started = std::time::Instant::now();
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_TIMEOUT", "60s"),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    let message = run.result["targets"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("is paused") && message.contains("kubectl rollout resume deployment/api"),
        "{message}"
    );
}

/// New pods that cannot be scheduled only warn; when a node appears, the rollout completes.
#[test]
fn unschedulable_pods_warn_then_recover() {
    let w = World::start(false);
    for node in ["node-1", "node-2"] {
        w.api(
            "PATCH",
            &format!("/api/v1/nodes/{node}"),
            Some(r#"{"spec":{"unschedulable":true}}"#),
        );
    }
    let child = w.spawn_waiting("60s");
    std::thread::sleep(Duration::from_millis(500));
    w.sim.add_node(&kubesim::Node { name: "node-3".into(), arch: "amd64".into() });
    let run = w.finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("cannot be scheduled yet"), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "succeeded");
}

/// Under GitHub Actions: a group per phase, `::debug::` with RUNNER_DEBUG, the failure as an
/// `::error::` annotation, masks for the registry password and the kubeconfig token (which
/// appear nowhere else), the step summary with the cause, and nothing written to the
/// working directory (the workspace).
#[test]
fn github_actions_commands_summary_and_masks() {
    let w = World::start_with(false, false);
    let password = "reg-pass-5d2f9";
    let summary_path = w.dir.path().join("summary.md");
    let workspace = w.dir.path().join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    let config = std::fs::read_to_string(w.dir.path().join("kubeconfig")).unwrap();
    let output = w
        .command(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_CONTAINER", "app"),
            ("INPUT_KUBECONFIG", &config),
            ("INPUT_REGISTRY-USERNAME", "ci"),
            ("INPUT_REGISTRY-PASSWORD", password),
            ("GITHUB_ACTIONS", "true"),
            ("RUNNER_DEBUG", "1"),
            ("GITHUB_STEP_SUMMARY", summary_path.to_str().unwrap()),
            ("KUBECONFIG", "/nonexistent"),
        ])
        .current_dir(&workspace)
        .output()
        .unwrap();
    let run = w.finish(output.clone());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    for expected in [
        format!("::add-mask::{password}"),
        format!("::add-mask::{TOKEN}"),
        format!("::group::Resolve {}", w.image("v2")),
        "::group::Read the targets".to_owned(),
        "::group::Patch".to_owned(),
        "::group::Wait for the rollout".to_owned(),
        "::endgroup::".to_owned(),
    ] {
        assert!(lines.contains(&expected.as_str()), "no {expected:?} in\n{}", run.stderr);
    }
    assert!(lines.iter().any(|l| l.starts_with("::debug::")), "{}", run.stderr);
    let error = lines
        .iter()
        .find(|l| {
            l.starts_with("::error title=kubeship%3A rollout failed::deployment/api: pod api-")
        })
        .unwrap_or_else(|| panic!("no error annotation in\n{}", run.stderr));
    assert!(error.contains("ImagePull") || error.contains("ErrImagePull"), "{error}");
    // The masks must come before anything else could print the secrets.
    let first_mask = lines.iter().position(|l| l.starts_with("::add-mask::")).unwrap();
    assert!(lines[..first_mask].iter().all(|l| !l.starts_with("::group::Read")));

    let summary = std::fs::read_to_string(&summary_path).unwrap();
    assert!(summary.starts_with("### kubeship: failed\n"), "{summary}");
    assert!(summary.contains("| `deployment/api in prod` | failed | `app` | `"), "{summary}");
    assert!(summary.contains("```text\n"), "{summary}");
    assert!(summary.contains("ImagePullBackOff") || summary.contains("ErrImagePull"), "{summary}");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let written = std::fs::read_to_string(w.dir.path().join("output")).unwrap();
    for secret in [password, TOKEN] {
        let unmasked: Vec<&&str> =
            lines.iter().filter(|l| l.contains(secret) && !l.starts_with("::add-mask::")).collect();
        assert!(unmasked.is_empty(), "{secret} in {unmasked:?}");
        assert!(!stdout.contains(secret) && !written.contains(secret) && !summary.contains(secret));
    }
    assert_eq!(std::fs::read_dir(&workspace).unwrap().count(), 0, "wrote into the workspace");
}

/// Two more targets for the fault tests: `web` and `jobs`, running v1.
fn three_targets(w: &World) {
    for name in ["web", "jobs"] {
        w.deployment(name, &w.image("v1"), 1);
    }
}

/// 500s on PATCH: the preflight's dry runs fail, so exit 4 with the server's words, no real
/// patch, every target reported as refused, and no workload changed.
#[test]
fn server_errors_on_patch_change_nothing() {
    let w = World::start(false);
    three_targets(&w);
    w.sim.set_faults(kubesim::Faults { fail_verbs: vec!["patch".into()], ..Default::default() });
    let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api,web,jobs")]);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(run.stderr.contains("dry run of the patches was refused"), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "failed");
    let statuses: Vec<(&str, bool)> = run.result["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["status"].as_str().unwrap(), t["changed"].as_bool().unwrap()))
        .collect();
    assert_eq!(statuses, [("failed", false); 3], "{}", run.result);
    assert_eq!(w.all_patches().len(), 3, "one dry run per target");
    assert!(w.patches().is_empty(), "no real patch");
    for name in ["api", "web", "jobs"] {
        assert_eq!(w.container_image(name), w.image("v1"), "{name}");
    }
}

/// SIGTERM while a patch is in flight: that patch completes (a patch is never cut in half),
/// no other is sent, and the report names exactly the target that was patched; exit 143
/// with status cancelled, well within the deadline.
#[test]
fn sigterm_during_the_patch_phase() {
    let w = World::start(false);
    three_targets(&w);
    w.sim.set_faults(kubesim::Faults {
        delay: Some(Duration::from_millis(1500)),
        ..Default::default()
    });
    w.sim.clear_requests();
    let _ = std::fs::remove_file(w.dir.path().join("output"));
    let child = w
        .command(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api,web,jobs")])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while w.patches().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "no PATCH was sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let run = w.finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(143), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "cancelled");
    assert_eq!(w.patches().len(), 1);
    let statuses: Vec<(&str, &str, bool)> = run.result["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["status"].as_str().unwrap(),
                t["changed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [("api", "cancelled", true), ("web", "skipped", false), ("jobs", "skipped", false)]
    );
    w.sim.set_faults(kubesim::Faults::default());
    assert_eq!(w.container_image("api"), w.pinned(&w.v2));
    assert_eq!(w.container_image("web"), w.image("v1"));
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}

/// The API server goes away mid-wait (its port refuses connections, open watches are cut)
/// and comes back before the deadline: the run reconnects and reports the real end.
#[test]
fn api_server_gone_mid_wait_and_back() {
    let w = World::start(false);
    let ready_delay = Duration::from_secs(2);
    w.sim.script(&w.pinned(&w.v2), Behaviour { ready_delay, ..Behaviour::default() });
    let upstream = w.sim.url().trim_start_matches("https://").parse().unwrap();
    let gate = kubeship_testkit::TcpGate::start(upstream).unwrap();
    let config = std::fs::read_to_string(w.dir.path().join("kubeconfig"))
        .unwrap()
        .replace(&w.sim.url(), &format!("https://{}", gate.address));
    let child = w
        .command(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_KUBECONFIG", &config),
            ("INPUT_TIMEOUT", "60s"),
        ])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while w.patches().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "no PATCH was sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    gate.shut();
    // The rollout finishes while kubeship cannot see it.
    std::thread::sleep(Duration::from_secs(6));
    gate.open();
    let run = w.finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "succeeded");
    assert_eq!(run.result["targets"][0]["ready_replicas"], 2);
    assert!(run.stderr.contains("the watch failed"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
}
