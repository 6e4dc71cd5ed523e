//! The real control plane of the test kit: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kwok's nodes and the kubelet agent, with a real registry behind the
//! agent's pulls. One control plane for the whole binary; each test has its own namespace
//! and images. Skipped (loudly) only when the binaries are not built and
//! `KUBESHIP_CONTROLPLANE` is unset; scripts/test builds them and sets it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use kubeship_testkit::controlplane::{self, ControlPlane};
use kubeship_testkit::push::Kind;
use kubeship_testkit::{Registry, Setup};
use kubesim::{Behaviour, Node, resources};
use serde_json::{Value, json};

/// Polls `probe` until it gives a value (the cluster moves on its own time).
fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A registry with `acme/api:v1` and `:v2`, and a namespace of its own.
struct World {
    cp: &'static ControlPlane,
    registry: Registry,
    ns: String,
    v2_digest: String,
    v1_digest: String,
}

impl World {
    fn start(prefix: &str) -> Option<Self> {
        let cp = controlplane::shared()?;
        let registry = Registry::start(Setup::Anonymous).unwrap();
        let pusher = registry.pusher().unwrap();
        pusher.image("acme/api", "v1", Kind::OciManifest, prefix).unwrap();
        pusher.image("acme/api", "v2", Kind::OciIndex, prefix).unwrap();
        cp.insecure_registry(&registry.host);
        let v1_digest = registry.stored_digest("acme/api", "v1").unwrap();
        let v2_digest = registry.stored_digest("acme/api", "v2").unwrap();
        let ns = cp.namespace(prefix).unwrap();
        Some(Self { cp, registry, ns, v1_digest, v2_digest })
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/acme/api:{tag}", self.registry.host)
    }

    fn pinned(&self, digest: &str) -> String {
        format!("{}/acme/api@{digest}", self.registry.host)
    }

    fn deployment(&self, name: &str, image: &str, replicas: u32, extra: Value) -> Value {
        let mut d = json!({"metadata": {"name": name, "namespace": self.ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}}});
        if let (Some(spec), Some(extra)) = (d["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        self.cp.create(&resources::DEPLOYMENTS, d).unwrap()
    }

    fn available(&self, name: &str, replicas: u64) -> Value {
        wait_for(&format!("deployment {name} available"), Duration::from_secs(60), || {
            let d = self.cp.get(&resources::DEPLOYMENTS, &self.ns, name)?;
            let s = &d["status"];
            (s["availableReplicas"] == replicas
                && s["updatedReplicas"] == replicas
                && s["observedGeneration"] == d["metadata"]["generation"])
                .then_some(d)
        })
    }

    fn pods(&self, app: &str) -> Vec<Value> {
        self.cp
            .list(&resources::PODS, &self.ns)
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == app)
            .collect()
    }

    fn kubectl(&self, args: &[&str]) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kubeconfig");
        std::fs::write(&config, self.cp.admin_kubeconfig(Some(&self.ns))).unwrap();
        let binary = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        Command::new(binary)
            .env_clear()
            .env("HOME", dir.path())
            .arg("--kubeconfig")
            .arg(&config)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(args)
            .output()
            .expect("kubectl runs (set KUBECTL, or run scripts/test)")
    }
}

/// The binaries, or None with a loud message (tests that start their own control plane).
fn binaries() -> Option<std::path::PathBuf> {
    let found = controlplane::binaries().unwrap();
    if found.is_none() {
        eprintln!("SKIPPED: the control plane is not built and KUBESHIP_CONTROLPLANE is unset");
    }
    found
}

fn container_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

#[test]
fn starts_with_ready_nodes_and_the_stamped_version() {
    let Some(cp) = controlplane::shared() else { return };
    let version = cp.api().get("/version").unwrap();
    assert_eq!(version["gitVersion"], "v1.37.2", "{version}");
    for node in cp.nodes() {
        let n = cp.get(&resources::NODES, "", &node).unwrap();
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "{n}");
    }
    let memory: u64 = cp.resident_kib().iter().map(|(_, kib)| kib).sum();
    eprintln!(
        "startup {:.1} s, resident {} MB: {:?}",
        cp.startup().as_secs_f64(),
        memory / 1024,
        cp.resident_kib()
    );
}

/// A Deployment created through the API rolls out to Ready pods whose imageID is the
/// digest the registry gave; real `kubectl rollout status` agrees.
#[test]
fn deployment_rolls_out_and_kubectl_agrees() {
    let Some(w) = World::start("rollout") else { return };
    w.deployment("api", &w.image("v1"), 2, json!({}));
    w.available("api", 2);
    let pods = w.pods("api");
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        assert!(ready(pod), "{pod}");
        let status = container_status(pod);
        assert_eq!(status["imageID"], json!(w.pinned(&w.v1_digest)), "{pod}");
        assert_eq!(status["ready"], true);
        assert!(status["state"]["running"]["startedAt"].is_string(), "{pod}");
        assert!(w.cp.nodes().contains(pod["spec"]["nodeName"].as_str().unwrap()), "{pod}");
    }
    let out = w.kubectl(&["rollout", "status", "deployment/api", "--timeout=60s"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("deployment \"api\" successfully rolled out"), "{stdout}");
}

/// minReadySeconds counts from the Ready condition's lastTransitionTime, which moves only
/// when readiness flips: the Deployment becomes available that much later.
#[test]
fn min_ready_seconds_counts_from_the_ready_transition() {
    let Some(w) = World::start("minready") else { return };
    w.deployment("api", &w.image("v1"), 1, json!({"minReadySeconds": 3}));
    let ready_pod =
        wait_for("a ready pod", Duration::from_secs(60), || w.pods("api").into_iter().find(ready));
    let d = w.cp.get(&resources::DEPLOYMENTS, &w.ns, "api").unwrap();
    assert_ne!(d["status"]["availableReplicas"], 1, "available before minReadySeconds: {d}");
    w.available("api", 1);
    let pod =
        w.cp.get(&resources::PODS, &w.ns, ready_pod["metadata"]["name"].as_str().unwrap()).unwrap();
    let transition = |p: &Value| {
        p["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap()
            ["lastTransitionTime"]
            .clone()
    };
    assert_eq!(transition(&pod), transition(&ready_pod), "Ready moved without flipping");
}

/// The new image crash-loops (OOMKilled, 137) with a rising restart count on the new
/// ReplicaSet's pod, while the old ReplicaSet's pods stay Ready; its previous run's log
/// comes through the API server from the agent's kubelet endpoint.
#[test]
fn crash_loop_on_the_new_replicaset_only() {
    let Some(w) = World::start("crash") else { return };
    w.deployment("api", &w.pinned(&w.v1_digest), 2, json!({}));
    w.available("api", 2);
    // It crashes before its readiness delay ends: never Ready, so never available.
    let crash = Some((Duration::from_millis(200), "OOMKilled".to_owned(), 137));
    let ready_delay = Duration::from_secs(30);
    let logs = vec!["starting".to_owned(), "out of memory".to_owned()];
    let behaviour = Behaviour { crash, ready_delay, logs, ..Behaviour::default() };
    w.cp.script(&w.pinned(&w.v2_digest), behaviour);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": w.pinned(&w.v2_digest)}]}}}});
    // A merge patch replaces the containers list; it has one container.
    w.cp.merge_patch(&resources::DEPLOYMENTS, &w.ns, "api", patch).unwrap();
    let new_pod = wait_for("a crash-looping new pod", Duration::from_secs(60), || {
        w.pods("api").into_iter().find(|p| {
            let s = container_status(p);
            s["state"]["waiting"]["reason"] == "CrashLoopBackOff"
                && s["restartCount"].as_i64() >= Some(2)
        })
    });
    let status = container_status(&new_pod);
    assert_eq!(status["lastState"]["terminated"]["reason"], "OOMKilled", "{new_pod}");
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 137, "{new_pod}");
    assert_eq!(status["imageID"], json!(w.pinned(&w.v2_digest)));
    assert_eq!(new_pod["status"]["phase"], "Running", "a crash loop is Running: {new_pod}");
    let pods = w.pods("api");
    let hash = |p: &Value| p["metadata"]["labels"]["pod-template-hash"].clone();
    let old: Vec<&Value> = pods.iter().filter(|p| hash(p) != hash(&new_pod)).collect();
    assert_eq!(old.len(), 2, "{pods:?}");
    assert!(old.iter().all(|p| ready(p)), "{old:?}");
    // The previous instance's log, as kubectl logs --previous asks for it.
    let name = new_pod["metadata"]["name"].as_str().unwrap();
    let (code, text) =
        w.cp.api()
            .get_text(&format!(
                "/api/v1/namespaces/{}/pods/{name}/log?container=app&previous=true",
                w.ns
            ))
            .unwrap();
    assert_eq!((code, text.as_str()), (200, "starting\nout of memory\n"));
    // The kubelet's events, as kubectl describe shows them.
    let events = w.cp.list(&resources::EVENTS, &w.ns);
    assert!(
        events.iter().any(|e| e["reason"] == "BackOff"
            && e["involvedObject"]["name"] == name
            && e["source"]["component"] == "kubelet"),
        "{events:?}"
    );
    let out = w.kubectl(&["rollout", "status", "deployment/api", "--timeout=2s"]);
    assert!(!out.status.success(), "kubectl saw a stuck rollout as done");
}

/// An image the registry does not have: ErrImagePull, then ImagePullBackOff.
#[test]
fn missing_image_err_image_pull_then_back_off() {
    let Some(w) = World::start("pull") else { return };
    w.deployment("api", &w.image("missing"), 1, json!({}));
    let reason = |p: &Value| container_status(p)["state"]["waiting"]["reason"].clone();
    let first = wait_for("ErrImagePull", Duration::from_secs(60), || {
        w.pods("api").into_iter().find(|p| reason(p) == "ErrImagePull")
    });
    let message =
        container_status(&first)["state"]["waiting"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("not found"), "{message}");
    wait_for("ImagePullBackOff", Duration::from_secs(30), || {
        w.pods("api").into_iter().find(|p| reason(p) == "ImagePullBackOff")
    });
    let events = w.cp.list(&resources::EVENTS, &w.ns);
    assert!(
        events.iter().any(|e| e["reason"] == "Failed"
            && e["message"].as_str().is_some_and(|m| m.starts_with("Failed to pull image"))),
        "{events:?}"
    );
}

/// Pods no node fits wait with the scheduler's FailedScheduling (an events.k8s.io Event:
/// no lastTimestamp, no count) until a fitting node is added.
#[test]
fn unschedulable_until_a_node_is_added() {
    let Some(w) = World::start("sched") else { return };
    let selector = json!({"template": {"metadata": {"labels": {"app": "api"}}, "spec": {
        "nodeSelector": {"kubernetes.io/arch": "s390x"},
        "containers": [{"name": "app", "image": w.image("v1")}]}}});
    w.deployment("api", &w.image("v1"), 1, selector);
    let event = wait_for("FailedScheduling", Duration::from_secs(60), || {
        w.cp.list(&resources::EVENTS, &w.ns).into_iter().find(|e| e["reason"] == "FailedScheduling")
    });
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reportingComponent"], "default-scheduler", "{event}");
    assert!(event["lastTimestamp"].is_null() && event["count"].is_null(), "{event}");
    assert!(event["eventTime"].is_string(), "{event}");
    let message = event["message"].as_str().unwrap();
    assert!(message.contains("didn't match Pod's node affinity/selector"), "{message}");
    w.cp.add_node(&Node { name: format!("big-iron-{}", w.ns), arch: "s390x".into() });
    w.available("api", 1);
}

/// A configuration error holds the container in CreateContainerConfigError.
#[test]
fn config_error_is_create_container_config_error() {
    let Some(w) = World::start("config") else { return };
    let config_error = Some("secret \"db\" not found".to_owned());
    w.cp.script(&w.image("v2"), Behaviour { config_error, ..Behaviour::default() });
    w.deployment("api", &w.image("v2"), 1, json!({}));
    let pod = wait_for("CreateContainerConfigError", Duration::from_secs(60), || {
        w.pods("api").into_iter().find(|p| {
            container_status(p)["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        })
    });
    assert_eq!(container_status(&pod)["state"]["waiting"]["message"], "secret \"db\" not found");
}

/// A deleted pod is Terminating (deletionTimestamp set, containers stopping), then gone.
#[test]
fn deleted_pod_terminates_then_disappears() {
    let Some(w) = World::start("delete") else { return };
    let pod = json!({"metadata": {"name": "lone", "namespace": w.ns},
        "spec": {"containers": [{"name": "app", "image": w.image("v1")}]}});
    w.cp.create(&resources::PODS, pod).unwrap();
    wait_for("a ready pod", Duration::from_secs(60), || {
        w.cp.get(&resources::PODS, &w.ns, "lone").filter(ready)
    });
    let deleted = w.cp.delete(&resources::PODS, &w.ns, "lone").unwrap();
    assert!(deleted["metadata"]["deletionTimestamp"].is_string(), "{deleted}");
    let terminating = w.cp.get(&resources::PODS, &w.ns, "lone").expect("still there, Terminating");
    assert!(terminating["metadata"]["deletionTimestamp"].is_string(), "{terminating}");
    let stopped = wait_for("the containers stopped", Duration::from_secs(30), || {
        w.cp.get(&resources::PODS, &w.ns, "lone")
            .filter(|p| !container_status(p)["state"]["terminated"].is_null())
    });
    assert_eq!(stopped["status"]["phase"], "Succeeded", "{stopped}");
    wait_for("the pod gone", Duration::from_secs(30), || {
        w.cp.get(&resources::PODS, &w.ns, "lone").is_none().then_some(())
    });
}

/// The token user has the README's rules and nothing more; a service account has what its
/// RoleBinding gives it, and RBAC forbids the rest.
#[test]
fn token_user_and_service_account_rbac() {
    let Some(w) = World::start("rbac") else { return };
    w.deployment("api", &w.image("v1"), 1, json!({}));
    let token = controlplane::Client::new(
        &w.cp.url(),
        w.cp.ca_pem(),
        controlplane::Credentials::Token(w.cp.token()),
    )
    .unwrap();
    let deployments = controlplane::path(&resources::DEPLOYMENTS, Some(&w.ns), None);
    token.get(&format!("{deployments}/api")).unwrap();
    let denied = token.delete(&format!("{deployments}/api")).unwrap_err();
    assert_eq!(denied.code, 403, "{denied:?}");
    let message = controlplane::message(&denied);
    assert!(
        message.contains("User \"kubeship-ci\" cannot delete resource \"deployments\""),
        "{message}"
    );

    let kubeconfig = w.cp.service_account_kubeconfig(&w.ns, "ci-deployer").unwrap();
    let sa_token = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap();
    let sa = controlplane::Client::new(
        &w.cp.url(),
        w.cp.ca_pem(),
        controlplane::Credentials::Token(sa_token),
    )
    .unwrap();
    let denied = sa.get(&format!("{deployments}/api")).unwrap_err();
    assert_eq!(denied.code, 403, "{denied:?}");
    assert!(
        controlplane::message(&denied)
            .contains(&format!("system:serviceaccount:{}:ci-deployer", w.ns)),
        "{denied:?}"
    );
    let role = json!({"metadata": {"name": "kubeship", "namespace": w.ns}, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "patch"]}]});
    w.cp.api()
        .post(&format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{}/roles", w.ns), &role)
        .unwrap();
    let binding = json!({"metadata": {"name": "kubeship", "namespace": w.ns},
        "subjects": [{"kind": "ServiceAccount", "name": "ci-deployer", "namespace": w.ns}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeship"}});
    w.cp.api()
        .post(
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{}/rolebindings", w.ns),
            &binding,
        )
        .unwrap();
    wait_for("the binding to take effect", Duration::from_secs(10), || {
        sa.get(&format!("{deployments}/api")).ok()
    });
    let pods = controlplane::path(&resources::PODS, Some(&w.ns), None);
    assert_eq!(sa.get(&pods).unwrap_err().code, 403);
}

/// `Behaviour::create_error`: the API server refuses the pods (an admission policy), the
/// ReplicaSet reports FailedCreate and the Deployment ReplicaFailure, with the message.
#[test]
fn create_error_is_a_real_admission_refusal() {
    let Some(w) = World::start("refuse") else { return };
    let quota = "exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10";
    w.cp.script(
        &w.image("v2"),
        Behaviour { create_error: Some(quota.into()), ..Behaviour::default() },
    );
    w.deployment("api", &w.image("v2"), 1, json!({}));
    let failure = wait_for("ReplicaFailure", Duration::from_secs(60), || {
        let d = w.cp.get(&resources::DEPLOYMENTS, &w.ns, "api")?;
        d["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ReplicaFailure")
            .cloned()
    });
    assert_eq!(failure["reason"], "FailedCreate", "{failure}");
    let message = failure["message"].as_str().unwrap();
    assert!(message.contains("is forbidden") && message.ends_with(quota), "{message}");
    assert!(w.pods("api").is_empty());
    let events = w.cp.list(&resources::EVENTS, &w.ns);
    assert!(
        events.iter().any(|e| e["reason"] == "FailedCreate" && e["type"] == "Warning"),
        "{events:?}"
    );
}

/// A webhook that verifies bearer tokens (as the EKS tests will run one), and every
/// process of a control plane gone when it is dropped.
#[test]
fn token_webhook_and_every_process_stopped_on_drop() {
    let Some(binaries) = binaries() else { return };
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            request.as_reader().read_to_string(&mut body).unwrap();
            let review: Value = serde_json::from_str(&body).unwrap();
            let ok = review["spec"]["token"] == "token-from-the-webhook";
            let mut answer = json!({"apiVersion": review["apiVersion"], "kind": "TokenReview",
                "status": {"authenticated": ok}});
            if ok {
                answer["status"]["user"] =
                    json!({"username": "webhook-user", "groups": ["webhook:ci"]});
            }
            let _ = request.respond(tiny_http::Response::from_string(answer.to_string()));
        }
    });
    let webhook = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: verifier\n  cluster:\n    server: http://127.0.0.1:{port}/\n\
         users:\n- name: apiserver\n  user: {{}}\ncontexts:\n- name: verifier\n  context:\n    cluster: verifier\n    user: apiserver\n\
         current-context: verifier\n"
    );
    let options = controlplane::Options {
        nodes: vec![Node { name: "solo".into(), arch: "amd64".into() }],
        token_webhook: Some(webhook),
        binaries: Some(binaries),
        ..controlplane::Options::default()
    };
    let cp = ControlPlane::start(options).unwrap();
    let client = controlplane::Client::new(
        &cp.url(),
        cp.ca_pem(),
        controlplane::Credentials::Token("token-from-the-webhook"),
    )
    .unwrap();
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let me = client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", &review).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "webhook-user", "{me}");
    let stranger =
        controlplane::Client::new(&cp.url(), cp.ca_pem(), controlplane::Credentials::Token("nope"))
            .unwrap();
    assert_eq!(
        stranger
            .post("/apis/authentication.k8s.io/v1/selfsubjectreviews", &review)
            .unwrap_err()
            .code,
        401
    );

    let pids = cp.pids();
    assert_eq!(pids.len(), 5, "{pids:?}");
    drop(cp);
    for (name, pid) in pids {
        assert!(!alive(pid), "{name} ({pid}) outlived its control plane");
    }
}

/// A process that exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// Run in a child process by `children_die_with_the_test_process`: starts a control plane,
/// prints its PIDs and waits to be killed.
#[test]
#[ignore = "a helper that children_die_with_the_test_process runs in a child process"]
fn hold_a_control_plane_until_killed() {
    let nodes = vec![Node { name: "solo".into(), arch: "amd64".into() }];
    let options = controlplane::Options { nodes, ..controlplane::Options::default() };
    let cp = ControlPlane::start(options).unwrap();
    for (name, pid) in cp.pids() {
        println!("pid {name} {pid}");
    }
    println!("held");
    loop {
        std::thread::park();
    }
}

/// SIGKILL to the test process leaves no component running (PDEATHSIG from the spawner).
#[test]
fn children_die_with_the_test_process() {
    if binaries().is_none() {
        return;
    }
    use std::io::BufRead as _;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "hold_a_control_plane_until_killed", "--nocapture"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut pids = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        if line == "held" {
            break;
        }
        if let Some(rest) = line.strip_prefix("pid ") {
            let (name, pid) = rest.split_once(' ').unwrap();
            pids.push((name.to_owned(), pid.parse::<u32>().unwrap()));
        }
    }
    assert_eq!(pids.len(), 5, "{pids:?}");
    assert!(pids.iter().all(|(_, pid)| alive(*pid)));
    child.kill().unwrap();
    child.wait().unwrap();
    for (name, pid) in pids {
        wait_for(&format!("{name} to die"), Duration::from_secs(10), || {
            (!alive(pid)).then_some(())
        });
    }
}
