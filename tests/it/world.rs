//! One world for the end-to-end scenarios, on either cluster: kubesim, our simulator, or the
//! real control plane of the test kit (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kwok nodes and the kubelet stand-in), which is the ground truth. A scenario
//! is written once against [`World`] and [`on_both!`] runs it on each, with the same
//! assertions; what only the simulator can do (faults, a manual clock) lives in
//! [`World::sim`], and tests that need it are kubesim's alone.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubeship_testkit::controlplane::ControlPlane;
use kubeship_testkit::push::Kind;
use kubeship_testkit::{Registry, Setup as RegistrySetup};
use kubesim::{Behaviour, Options, Resource, Simulator, resources};
use serde_json::{Value, json};

/// The simulated API server's bearer token: every request must carry it (over TLS, as kubectl
/// sends no credentials over plain HTTP).
pub const TOKEN: &str = "kubesim-bearer-7c1e";

/// Which cluster a world runs on.
pub enum Backend {
    Sim(Simulator),
    Real(&'static ControlPlane),
}

/// A registry with app:v1 and app:v2, a cluster whose Deployment `api` runs v1 (two
/// replicas, containers `app` and `proxy`), a namespace and a working folder.
pub struct World {
    pub backend: Backend,
    pub registry: Registry,
    pub dir: tempfile::TempDir,
    pub namespace: String,
    pub v1: String,
    pub v2: String,
}

/// Which cluster a world runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cluster {
    Kubesim,
    Real,
}

/// How a world differs from the default one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    /// The nodes are not told the registry speaks plain HTTP, so pulls from it fail; the
    /// Deployment starts on an image the nodes need not pull.
    pub unreachable_registry: bool,
}

/// A scenario run on kubesim and on the real control plane with the same assertions:
/// `on_both!(name, |w| { … })` makes the tests `name::kubesim` and `name::real`; a `Setup`
/// may come before the closure.
macro_rules! on_both {
    ($(#[doc = $doc:literal])* $name:ident, |$w:ident| $body:block) => {
        on_both!($(#[doc = $doc])* $name, $crate::world::Setup::default(), |$w| $body);
    };
    ($(#[doc = $doc:literal])* $name:ident, $setup:expr, |$w:ident| $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn scenario($w: &$crate::world::World) $body

            #[test]
            fn kubesim() {
                let world = $crate::world::World::start($crate::world::Cluster::Kubesim, $setup);
                scenario(&world.expect("kubesim starts"));
            }

            #[test]
            fn real() {
                if let Some(world) = $crate::world::World::start($crate::world::Cluster::Real, $setup) {
                    scenario(&world);
                }
            }
        }
    };
}
pub(crate) use on_both;

/// The registry both clusters pull from, with app:v1 and app:v2 pushed.
fn registry() -> (Registry, String, String) {
    let registry = Registry::start(RegistrySetup::Anonymous).unwrap();
    let pusher = registry.pusher().unwrap();
    pusher.image("acme/api", "v1", Kind::OciManifest, "one").unwrap();
    pusher.image("acme/api", "v2", Kind::OciIndex, "two").unwrap();
    let v1 = registry.stored_digest("acme/api", "v1").unwrap();
    let v2 = registry.stored_digest("acme/api", "v2").unwrap();
    (registry, v1, v2)
}

impl World {
    /// A world on `cluster`; None for the real one when it is not built (said loudly by the
    /// test kit; under scripts/test it always is).
    pub fn start(cluster: Cluster, setup: Setup) -> Option<Self> {
        match cluster {
            Cluster::Kubesim => Some(Self::kubesim_with(false, setup)),
            Cluster::Real => Self::real(setup),
        }
    }

    /// A world on a fresh kubesim (TLS, a bearer token, the wall clock).
    pub fn kubesim() -> Self {
        Self::kubesim_with(false, Setup::default())
    }

    /// On kubesim, with a manual clock when asked.
    pub fn kubesim_with(manual_clock: bool, setup: Setup) -> Self {
        let (registry, v1, v2) = registry();
        let reachable = !setup.unreachable_registry;
        let sim = Simulator::start(Options {
            manual_clock,
            tls: true,
            token: Some(TOKEN.to_owned()),
            insecure_registries: if reachable { vec![registry.host.clone()] } else { Vec::new() },
            ..Options::default()
        })
        .unwrap();
        sim.create(&resources::NAMESPACES, json!({"metadata": {"name": "prod"}})).unwrap();
        let world = Self::around(Backend::Sim(sim), registry, "prod".into(), v1, v2);
        world.first_deployment(setup);
        world
    }

    /// A world on the real control plane, in a namespace of its own.
    fn real(setup: Setup) -> Option<Self> {
        let plane = kubeship_testkit::controlplane::shared()?;
        let (registry, v1, v2) = registry();
        if !setup.unreachable_registry {
            plane.insecure_registry(&registry.host);
        }
        let namespace = plane.namespace("prod").unwrap();
        let world = Self::around(Backend::Real(plane), registry, namespace, v1, v2);
        world.first_deployment(setup);
        Some(world)
    }

    /// Deployment `api`, two replicas, on v1 (on an image the nodes need not pull when they
    /// cannot reach the registry).
    fn first_deployment(&self, setup: Setup) {
        let first =
            if setup.unreachable_registry { "nginx:1.27".to_owned() } else { self.image("v1") };
        self.deployment("api", &first, 2);
    }

    fn around(
        backend: Backend,
        registry: Registry,
        namespace: String,
        v1: String,
        v2: String,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let world = Self { backend, registry, dir, namespace, v1, v2 };
        std::fs::write(world.dir.path().join("kubeconfig"), world.kubeconfig()).unwrap();
        world
    }

    /// The simulator, for what only it can do; panics on the real cluster.
    pub fn sim(&self) -> &Simulator {
        match &self.backend {
            Backend::Sim(sim) => sim,
            Backend::Real(_) => panic!("a kubesim-only step in a scenario run on both clusters"),
        }
    }

    /// A kubeconfig with a bearer token, the world's namespace as its context's.
    pub fn kubeconfig(&self) -> String {
        match &self.backend {
            Backend::Sim(sim) => sim.kubeconfig(Some(&self.namespace)),
            Backend::Real(plane) => plane.token_kubeconfig(Some(&self.namespace)),
        }
    }

    /// The API server's address, as the kubeconfig names it.
    pub fn url(&self) -> String {
        match &self.backend {
            Backend::Sim(sim) => sim.url(),
            Backend::Real(plane) => plane.url(),
        }
    }

    pub fn create(&self, resource: &Resource, mut object: Value) -> Value {
        if object["metadata"]["namespace"].is_null() && resource.namespaced {
            object["metadata"]["namespace"] = json!(self.namespace);
        }
        let created = match &self.backend {
            Backend::Sim(sim) => sim.create(resource, object),
            Backend::Real(plane) => plane.create(resource, object),
        };
        created.unwrap_or_else(|e| panic!("creating a {}: {e:?}", resource.kind))
    }

    pub fn get(&self, resource: &Resource, name: &str) -> Option<Value> {
        match &self.backend {
            Backend::Sim(sim) => sim.get(resource, &self.namespace, name),
            Backend::Real(plane) => plane.get(resource, &self.namespace, name),
        }
    }

    pub fn list(&self, resource: &Resource) -> Vec<Value> {
        match &self.backend {
            Backend::Sim(sim) => sim.list(resource, &self.namespace),
            Backend::Real(plane) => plane.list(resource, &self.namespace),
        }
    }

    /// A JSON merge patch, as another client of the cluster would send it.
    pub fn merge_patch(&self, resource: &Resource, name: &str, patch: Value) {
        let result = match &self.backend {
            Backend::Sim(sim) => sim.merge_patch(resource, &self.namespace, name, patch),
            Backend::Real(plane) => plane.merge_patch(resource, &self.namespace, name, patch),
        };
        result.unwrap_or_else(|e| panic!("patching {} {name}: {e:?}", resource.kind));
    }

    pub fn delete(&self, resource: &Resource, name: &str) {
        let result = match &self.backend {
            Backend::Sim(sim) => sim.delete(resource, &self.namespace, name),
            Backend::Real(plane) => plane.delete(resource, &self.namespace, name),
        };
        result.unwrap_or_else(|e| panic!("deleting {} {name}: {e:?}", resource.kind));
    }

    /// How containers of `image` behave on the nodes.
    pub fn script(&self, image: &str, behaviour: Behaviour) {
        match &self.backend {
            Backend::Sim(sim) => sim.script(image, behaviour),
            Backend::Real(plane) => plane.script(image, behaviour),
        }
    }

    /// The nodes' names.
    pub fn nodes(&self) -> Vec<String> {
        let nodes = match &self.backend {
            Backend::Sim(sim) => sim.list(&resources::NODES, ""),
            Backend::Real(plane) => plane.list(&resources::NODES, ""),
        };
        nodes.iter().filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned)).collect()
    }

    /// Cordons a node (new pods are not scheduled there) or uncordons it.
    pub fn cordon(&self, node: &str, cordoned: bool) {
        self.merge_patch(&resources::NODES, node, json!({"spec": {"unschedulable": cordoned}}));
    }

    /// Patches of Deployment `name` are refused the way an admission policy refuses them; dry
    /// runs too, or only real patches (a webhook that checks `dryRun`).
    pub fn refuse_patches_of(&self, name: &str, dry_runs_too: bool) {
        match &self.backend {
            Backend::Sim(sim) => sim.set_faults(kubesim::Faults {
                reject: vec![kubesim::Reject {
                    verb: "patch".into(),
                    name: name.into(),
                    dry_runs_too,
                    code: if dry_runs_too { 403 } else { 500 },
                }],
                ..kubesim::Faults::default()
            }),
            Backend::Real(plane) => refuse_on_real(plane, &self.namespace, name, dry_runs_too),
        }
    }

    /// A Deployment `name` running `image` in container `app` (and envoy in `proxy`), once
    /// all its replicas are available.
    pub fn deployment(&self, name: &str, image: &str, replicas: u32) {
        let d = json!({"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": image}, {"name": "proxy", "image": "envoy:1"}]}}}});
        self.create(&resources::DEPLOYMENTS, d);
        self.until(&format!("deployment {name} available"), || {
            let d = self.get(&resources::DEPLOYMENTS, name)?;
            (d["status"]["availableReplicas"] == replicas
                && d["status"]["updatedReplicas"] == replicas)
                .then_some(())
        });
    }

    /// A workload of `kind` named `name` running v1, with `spec` merged into its spec, once
    /// its controller has rolled it out.
    pub fn workload(&self, kind: &Resource, name: &str, spec: Value) {
        let mut object = json!({"metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": self.image("v1")}]}}}});
        if let (Value::Object(s), Value::Object(extra)) = (&mut object["spec"], spec) {
            s.extend(extra);
        }
        self.create(kind, object);
        self.until(&format!("{} {name} rolled out", kind.kind), || {
            let o = self.get(kind, name)?;
            let s = &o["status"];
            let ready = match kind.kind {
                "DaemonSet" => {
                    s["desiredNumberScheduled"].as_i64()? > 0
                        && s["numberAvailable"] == s["desiredNumberScheduled"]
                }
                _ => s["readyReplicas"] == o["spec"]["replicas"],
            };
            (ready && s["observedGeneration"] == o["metadata"]["generation"]).then_some(())
        });
    }

    /// Waits until `check` gives a value (the cluster's controllers are asynchronous).
    pub fn until<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Backend::Sim(sim) = &self.backend {
                sim.settle();
            }
            if let Some(value) = check() {
                return value;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "never: {what}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn image(&self, tag: &str) -> String {
        format!("{}/acme/api:{tag}", self.registry.host)
    }

    pub fn pinned(&self, digest: &str) -> String {
        format!("{}/acme/api@{digest}", self.registry.host)
    }

    /// The image of `name`'s first container, as the cluster has it now.
    pub fn container_image(&self, name: &str) -> String {
        let d = self.get(&resources::DEPLOYMENTS, name).unwrap();
        d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_owned()
    }

    /// The kubeship binary with exactly these variables (and the world's kubeconfig, output
    /// file and plain-HTTP registry).
    pub fn command(&self, vars: &[(&str, &str)]) -> Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_kubeship")), vars)
    }

    /// [`World::command`] with another build of kubeship (the benchmarks' static binary).
    pub fn command_of(&self, program: &Path, vars: &[(&str, &str)]) -> Command {
        let mut command = Command::new(program);
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

    /// Runs kubeship to its end.
    pub fn run(&self, vars: &[(&str, &str)]) -> Run {
        let _ = std::fs::remove_file(self.dir.path().join("output"));
        let output = self.command(vars).output().unwrap();
        self.finish(output)
    }

    /// Starts kubeship with the v2 image on `api` (and `extra`), and returns once it is
    /// waiting on the rollout.
    pub fn spawn_waiting(&self, extra: &[(&str, &str)]) -> Running {
        let image = self.image("v2");
        let mut vars = vec![("INPUT_IMAGE", image.as_str()), ("INPUT_DEPLOYMENT", "api")];
        vars.extend_from_slice(extra);
        let running = self.spawn(&vars);
        running.wait_for("== Wait for the rollout");
        running
    }

    /// Starts kubeship; its standard error is collected as it comes.
    pub fn spawn(&self, vars: &[(&str, &str)]) -> Running {
        let _ = std::fs::remove_file(self.dir.path().join("output"));
        let mut child = self.command(vars).spawn().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut pipe, &mut buffer) {
                if n == 0 {
                    break;
                }
                collected.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Running { child, stderr, reader }
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

    /// Every PATCH the cluster received for objects of this world, dry runs included: the
    /// simulator's request log, the real API server's audit log.
    pub fn all_patches(&self) -> Vec<Sent> {
        match &self.backend {
            Backend::Sim(sim) => sim
                .requests()
                .into_iter()
                .filter(|r| r.method == "PATCH")
                .map(|r| Sent {
                    path: r.path,
                    query: r.query,
                    user_agent: r.user_agent,
                    content_type: Some(r.content_type),
                })
                .collect(),
            Backend::Real(plane) => plane
                .audit(&self.namespace)
                .into_iter()
                .filter(|e| e.verb == "patch")
                .map(|e| Sent {
                    path: e.path,
                    query: e.query,
                    user_agent: e.user_agent,
                    content_type: None,
                })
                .collect(),
        }
    }

    /// The real patches (not the preflight's dry runs).
    pub fn patches(&self) -> Vec<Sent> {
        self.all_patches().into_iter().filter(|p| !p.query.contains_key("dryRun")).collect()
    }

    /// Real `kubectl rollout status` on the same cluster, for the verdict to compare.
    pub fn kubectl_rollout_status(&self, target: &str, timeout: &str) -> (Option<i32>, String) {
        let binary = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let output = Command::new(binary)
            .env_clear()
            .env("HOME", self.dir.path())
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(["rollout", "status", target, &format!("--timeout={timeout}")])
            .output()
            .expect("kubectl runs (set KUBECTL, or run scripts/test)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    }
}

/// A ValidatingAdmissionPolicy refusing updates of Deployment `name` in `namespace` (all of
/// them, or only those that are not dry runs), enforced once this returns.
fn refuse_on_real(plane: &ControlPlane, namespace: &str, name: &str, dry_runs_too: bool) {
    const POLICIES: &str = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies";
    const BINDINGS: &str =
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings";
    const PROBE: &str = "kubeship.test/probe";
    let policy_name = format!("refuse-{namespace}-{name}");
    let refused = if dry_runs_too {
        format!("object.metadata.name != '{name}'")
    } else {
        format!("object.metadata.name != '{name}' || request.dryRun")
    };
    let policy = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy_name},
        "spec": {"failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}]},
            "validations": [
                {"expression": refused, "message": "this change is not allowed here"},
                {"expression": format!("!has(object.metadata.annotations) || !('{PROBE}' in object.metadata.annotations)"),
                 "message": "probe refused"}]}});
    let binding = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name},
        "spec": {"policyName": policy_name, "validationActions": ["Deny"]}});
    plane.api().post(POLICIES, &policy).unwrap();
    plane.api().post(BINDINGS, &binding).unwrap();
    // Enforced once a dry-run patch carrying the probe annotation is refused.
    let path = format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}?dryRun=All");
    let probe = json!({"metadata": {"annotations": {PROBE: "1"}}});
    let started = Instant::now();
    while plane.api().merge_patch(&path, &probe).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the admission policy never took effect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A request the cluster received.
#[derive(Debug, Clone)]
pub struct Sent {
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub user_agent: Option<String>,
    /// Known on kubesim only (audit events do not carry it).
    pub content_type: Option<String>,
}

/// A run still going, its standard error read as it comes.
pub struct Running {
    pub child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Running {
    /// Waits until the run has printed `text` (it printed nothing like it within 60 s: a
    /// failure that shows what it did print).
    pub fn wait_for(&self, text: &str) {
        let started = Instant::now();
        loop {
            if self.stderr.lock().unwrap().contains(text) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the run never printed {text:?}:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`-TERM`, `-INT`) to the run.
    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the end, as [`World::finish`] reads it.
    pub fn finish(self, world: &World) -> Run {
        let mut output = self.child.wait_with_output().unwrap();
        self.reader.join().unwrap();
        output.stderr = std::mem::take(&mut *self.stderr.lock().unwrap()).into_bytes();
        world.finish(output)
    }
}

/// One run of the binary, as its caller sees it.
pub struct Run {
    pub code: Option<i32>,
    pub stderr: String,
    /// The last line of standard output.
    pub result: Value,
    /// `$GITHUB_OUTPUT`, read with the runner's rules.
    pub outputs: BTreeMap<String, String>,
}

impl Run {
    /// The first target's `message`.
    pub fn message(&self) -> &str {
        self.result["targets"][0]["message"].as_str().unwrap_or_default()
    }
}

/// `$GITHUB_OUTPUT` read with the runner's rules, which must accept it.
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    kubeship_testkit::github::parse_output(text)
        .unwrap_or_else(|e| panic!("the runner refuses $GITHUB_OUTPUT: {e}\n{text}"))
        .into_iter()
        .collect()
}
