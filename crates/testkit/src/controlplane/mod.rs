//! A real Kubernetes control plane on loopback, the ground truth kubeship's verdicts are
//! checked against: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built
//! from their Go modules by `scripts/controlplane`, kwok keeping a few fake nodes, and the
//! project's kubelet stand-in ([`kubelet`]) running their pods with kubesim's kubelet model.
//!
//! Start it once per test binary ([`shared`]) and isolate tests by namespace
//! ([`ControlPlane::namespace`]); the blocking helpers mirror kubesim's test API (`create`,
//! `get`, `list`, `script`) so one scenario can drive either cluster.

mod admission;
mod client;
mod components;
mod kubelet;
mod kubelet_server;
mod kwok;
mod pki;
mod process;
mod start;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kubesim::{ApiError, Behaviour, Resource};
use serde_json::{Value, json};

pub use client::{Client, Credentials, message, path};
pub use pki::Pair;

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// The fake nodes; by default kubesim's (`node-1` amd64, `node-2` arm64).
    pub nodes: Vec<kubesim::Node>,
    /// Kubeconfig text for `--authentication-token-webhook-config-file`.
    pub token_webhook: Option<String>,
    /// How long a deleted pod's containers take to stop (bounded by its grace period).
    pub termination: Duration,
    /// The directory with the binaries; default [`binaries`].
    pub binaries: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: kubesim::Options::default().nodes,
            token_webhook: None,
            termination: Duration::from_secs(1),
            binaries: None,
        }
    }
}

/// The least-privilege Role of the README's "Permissions" section, as the README gives it:
/// the test kit grants these rules and the tests remove them one by one, so the README can
/// never drift from what kubeship needs.
///
/// # Errors
/// The README has no such Role.
pub fn readme_role() -> anyhow::Result<Value> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))?;
    let section = readme
        .split("\n## Permissions")
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("README.md has no Permissions section"))?;
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|block| block.split("```").next())
        .ok_or_else(|| anyhow::anyhow!("the Permissions section has no YAML block"))?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(yaml)?;
    documents
        .into_iter()
        .find(|d| d["kind"] == "Role")
        .ok_or_else(|| anyhow::anyhow!("the Permissions section's YAML has no Role"))
}

/// A write to a workload, as the API server's audit log recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audited {
    /// The RBAC verb: `patch`, `update`, `create`, `delete`.
    pub verb: String,
    /// The request's path, without its query.
    pub path: String,
    pub query: std::collections::BTreeMap<String, String>,
    pub user_agent: Option<String>,
    /// The answer's status code.
    pub code: Option<u16>,
}

/// The bearer-token user of [`ControlPlane::token_kubeconfig`].
pub const TOKEN_USER: &str = "kubeship-ci";

/// A running control plane; every process is killed when it is dropped (and by the kernel
/// when the test process ends).
pub struct ControlPlane {
    // Fields drop in order: the processes first, the spawner thread and the files last.
    processes: Vec<process::Process>,
    runtime: Option<tokio::runtime::Runtime>,
    agent: Arc<kubelet::Agent>,
    #[allow(dead_code)]
    spawner: process::Spawner,
    url: String,
    ca_pem: String,
    admin: Pair,
    token: String,
    api: Client,
    startup: Duration,
    dir: tempfile::TempDir,
}

/// Where the control plane's binaries are: `$KUBESHIP_CONTROLPLANE` (an error if they are not
/// all there), else the directory `scripts/controlplane --check` reports built, else None.
pub fn binaries() -> anyhow::Result<Option<PathBuf>> {
    const NAMES: [&str; 5] =
        ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"];
    if let Some(dir) = std::env::var_os("KUBESHIP_CONTROLPLANE").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        for name in NAMES {
            anyhow::ensure!(
                dir.join(name).is_file(),
                "KUBESHIP_CONTROLPLANE={} has no {name}: run scripts/controlplane",
                dir.display()
            );
        }
        return Ok(Some(dir));
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/controlplane");
    let output = std::process::Command::new(script).arg("--check").output();
    Ok(match output {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).lines().last().map(|l| PathBuf::from(l.trim()))
        }
        _ => None,
    })
}

/// The control plane of this test binary, started on first use. None (with a loud message)
/// when the binaries are not built and `KUBESHIP_CONTROLPLANE` is unset; a panic when they
/// are there but it does not start.
pub fn shared() -> Option<&'static ControlPlane> {
    static SHARED: OnceLock<Result<Option<ControlPlane>, String>> = OnceLock::new();
    let started = SHARED.get_or_init(|| match binaries() {
        Ok(None) => {
            eprintln!(
                "SKIPPED: the real control plane is not built and KUBESHIP_CONTROLPLANE is unset \
                 (scripts/controlplane builds it; scripts/test does both)"
            );
            Ok(None)
        }
        Ok(Some(dir)) => ControlPlane::start(Options { binaries: Some(dir), ..Options::default() })
            .map(Some)
            .map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!("{e:#}")),
    });
    match started {
        Ok(cp) => cp.as_ref(),
        Err(e) => panic!("the control plane did not start: {e}"),
    }
}

impl ControlPlane {
    /// Starts every component and waits until the cluster can run a Deployment.
    pub fn start(options: Options) -> anyhow::Result<Self> {
        start::start(options)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The CA that signed the API server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// How long [`ControlPlane::start`] took.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// Resident memory of every process of the control plane, KiB (this process's agent
    /// excluded), by process name.
    pub fn resident_kib(&self) -> Vec<(String, u64)> {
        self.processes.iter().map(|p| (p.name.clone(), p.rss_kib().unwrap_or(0))).collect()
    }

    /// Each process's name and PID.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes.iter().map(|p| (p.name.clone(), p.pid())).collect()
    }

    /// The directory with the components' logs and configuration.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A kubeconfig for a client-certificate admin (group `system:masters`).
    pub fn admin_kubeconfig(&self, namespace: Option<&str>) -> String {
        let credentials = Credentials::Certificate(&self.admin);
        client::kubeconfig(&self.url, &self.ca_pem, "kubeship-admin", credentials, namespace)
    }

    /// A kubeconfig for the bearer-token user [`TOKEN_USER`], bound cluster-wide to the
    /// README's least-privilege rules for kubeship.
    pub fn token_kubeconfig(&self, namespace: Option<&str>) -> String {
        let credentials = Credentials::Token(&self.token);
        client::kubeconfig(&self.url, &self.ca_pem, TOKEN_USER, credentials, namespace)
    }

    /// The bearer token of [`TOKEN_USER`] (tests check it never leaks).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A kubeconfig with a token of service account `name` in `namespace` (created when
    /// missing) from the TokenRequest API; it has only what the test binds to it.
    pub fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        let accounts = path(&start::SERVICE_ACCOUNTS, Some(namespace), None);
        let account = json!({"metadata": {"name": name, "namespace": namespace}});
        self.api.ensure(&accounts, &account).map_err(api_error)?;
        let answer = self
            .api
            .post(&format!("{accounts}/{name}/token"), &client::token_request())
            .map_err(api_error)?;
        let token = answer["status"]["token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("a TokenRequest answer without a token"))?;
        let user = format!("system:serviceaccount:{namespace}:{name}");
        Ok(client::kubeconfig(
            &self.url,
            &self.ca_pem,
            &user,
            Credentials::Token(token),
            Some(namespace),
        ))
    }

    /// Every write to a Deployment, StatefulSet or DaemonSet in `namespace` so far, in order,
    /// from the audit log (written before the API server answers).
    pub fn audit(&self, namespace: &str) -> Vec<Audited> {
        let text = std::fs::read_to_string(self.dir.path().join(components::AUDIT_LOG))
            .unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|e| {
                e["stage"] == "ResponseComplete" && e["objectRef"]["namespace"] == namespace
            })
            .map(|e| {
                let uri = e["requestURI"].as_str().unwrap_or_default();
                let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
                Audited {
                    verb: e["verb"].as_str().unwrap_or_default().to_owned(),
                    path: path.to_owned(),
                    query: form_urlencoded::parse(query.as_bytes()).into_owned().collect(),
                    user_agent: e["userAgent"].as_str().map(str::to_owned),
                    code: e["responseStatus"]["code"].as_u64().and_then(|c| u16::try_from(c).ok()),
                }
            })
            .collect()
    }

    /// The admin's API client, for requests the helpers below do not cover.
    pub fn api(&self) -> &Client {
        &self.api
    }

    /// A new namespace `<prefix>-<n>`, returned once its `default` service account exists
    /// (pods cannot be created before).
    pub fn namespace(&self, prefix: &str) -> anyhow::Result<String> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let name =
            format!("{prefix}-{}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::SeqCst));
        start::create_namespace(&self.api, &name, &mut [], Duration::from_secs(60))?;
        Ok(name)
    }

    /// Creates an object (its namespace from `metadata.namespace`, else `default`).
    pub fn create(&self, resource: &Resource, object: Value) -> Result<Value, ApiError> {
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
        self.api.post(&path(resource, Some(&namespace), None), &object)
    }

    /// An object, or None when it does not exist (or cannot be read).
    pub fn get(&self, resource: &Resource, namespace: &str, name: &str) -> Option<Value> {
        self.api.get(&path(resource, Some(namespace), Some(name))).ok()
    }

    /// The objects of a resource in a namespace.
    pub fn list(&self, resource: &Resource, namespace: &str) -> Vec<Value> {
        self.api
            .get(&path(resource, Some(namespace), None))
            .ok()
            .and_then(|list| list["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// A JSON merge patch of an object.
    pub fn merge_patch(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        self.api.merge_patch(&path(resource, Some(namespace), Some(name)), &patch)
    }

    /// Deletes an object (gracefully, as kubectl does).
    pub fn delete(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.api.delete(&path(resource, Some(namespace), Some(name)))
    }

    /// How containers of `image` behave on the fake nodes, as kubesim's `script`. A
    /// `create_error` becomes an admission policy refusing such pods ([`admission`]).
    ///
    /// # Panics
    /// When the API server refuses the policy: the test cannot go on as written.
    pub fn script(&self, image: &str, behaviour: Behaviour) {
        self.refuse_creation(image, None, &behaviour);
        self.agent.script(image, behaviour);
    }

    /// As kubesim's `script_template`: pods labelled `label` running `image`.
    ///
    /// # Panics
    /// As [`ControlPlane::script`].
    pub fn script_template(&self, label: (&str, &str), image: &str, behaviour: Behaviour) {
        self.refuse_creation(image, Some(label), &behaviour);
        self.agent.script_template(label, image, behaviour);
    }

    fn refuse_creation(&self, image: &str, label: Option<(&str, &str)>, behaviour: &Behaviour) {
        if let Some(message) = &behaviour.create_error
            && let Err(e) =
                admission::deny(&self.api, image, label, message, start::READY_NAMESPACE)
        {
            panic!("scripting a create error for {image}: {e:#}");
        }
    }

    /// The kubelet pulls from `host` (`host:port`) over plain HTTP.
    pub fn insecure_registry(&self, host: &str) {
        self.agent.insecure_registry(host);
    }

    /// The kubelet trusts `ca_pem` for HTTPS registries.
    pub fn registry_ca(&self, ca_pem: &str) {
        self.agent.registry_ca(ca_pem);
    }

    /// The fake nodes' names.
    pub fn nodes(&self) -> BTreeSet<String> {
        self.agent.nodes()
    }

    /// Adds a fake node (an autoscaler's work) and returns once it is Ready and schedulable.
    ///
    /// # Panics
    /// When the API server refuses the node or it does not become Ready in a minute.
    pub fn add_node(&self, node: &kubesim::Node) {
        self.agent.add_node(&node.name);
        if let Err(e) = start::add_node(&self.api, node, &mut [], Duration::from_secs(60)) {
            panic!("adding node {}: {e:#}", node.name);
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for p in &mut self.processes {
            p.stop();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn api_error(e: ApiError) -> anyhow::Error {
    anyhow::anyhow!("the API server answered {}: {}", e.code, message(&e))
}
