//! kubesim: a Kubernetes API simulator for kubeship's tests and demo.
//!
//! It serves the API over HTTP on 127.0.0.1 closely enough that real kubectl works against
//! it: discovery, get/list/watch (with the watch-list protocol), create, the patch types,
//! `/status` and `/scale`, pod logs, and the API server's error bodies. Controllers run
//! behind it as in a cluster: Deployment, ReplicaSet, a scheduler and a kubelet that resolves
//! images against a real registry. Time is the wall clock or a manual clock that tests
//! advance. Faults can be injected on the API.
//!
//! Every behaviour follows `shared/research/kubernetes-semantics.md` (sections B to E), and
//! the real control plane is the ground truth: `tests/fidelity` drives the same requests on
//! kubesim and on the test kit's etcd + kube-apiserver + controller manager + scheduler
//! (v1.37.2) and compares what a client sees.
//!
//! # Differences from the real control plane
//!
//! Found side by side, fixed (each covered by `tests/fidelity` and by a kubesim-only test):
//! - Graceful deletion: a pod on a node gets `deletionTimestamp`, `deletionGracePeriodSeconds`
//!   and a new generation, is Terminating while its kubelet stops it (terminal phase), then is
//!   deleted with grace 0 after [`Options::termination`]; an unscheduled or terminal pod goes
//!   at once (MODIFIED, then DELETED). DELETE answers the object (pods, namespaces, service
//!   accounts) or a `Status` of success, and takes `gracePeriodSeconds`, preconditions and
//!   `propagationPolicy`.
//! - `terminatingReplicas` on ReplicaSets and Deployments; terminating pods are not
//!   `replicas`; a ReplicaSet's status counts its pods as its sync found them (before it
//!   created or deleted any); Recreate waits for old pods to be terminal, not gone.
//! - Garbage collection is asynchronous (background propagation): the owner goes first, its
//!   ReplicaSets and pods after; a deleted namespace is Terminating until emptied.
//! - Watches with selectors: an object leaving them is DELETED (its last matching state at
//!   the new resourceVersion), one entering them ADDED.
//! - Generation: a Deployment's moves on spec or annotation changes, a ReplicaSet's,
//!   StatefulSet's, DaemonSet's and pod's on spec changes only (and a pod's on graceful
//!   deletion); the Deployment controller scaling a ReplicaSet moves its generation.
//! - The scheduler writes events.k8s.io Events (core/v1 view: no `firstTimestamp`,
//!   `lastTimestamp` or `count`, `eventTime` in microseconds, an `action`, a `series` on
//!   repeats), tries unschedulable pods again after five minutes or when nodes change, and
//!   its Unschedulable condition carries `observedGeneration`.
//! - The kubelet's events name the container (`involvedObject.fieldPath`), and it learns of
//!   a deletion after the controllers do, so they see the pod terminating.
//! - The events Table: `includeObject` (the whole Event, so `kubectl get events
//!   --sort-by=.lastTimestamp` lists them), sub-object, source with instance, numeric count,
//!   times from `eventTime` and `series`.
//! - Admission: a pod gets its service account, the `kube-api-access-*` token volume and
//!   mounts, the not-ready/unreachable NoExecute tolerations, `priority`, `preemptionPolicy`
//!   and `enableServiceLinks`; every namespace has a `default` service account; a pod naming
//!   a missing one is refused (403), as is new content in a Terminating namespace.
//! - `sendInitialEvents` without `resourceVersionMatch=NotOlderThan` (and the other misuses
//!   of the watch-list parameters) is a 422.
//! - StatefulSet `availableReplicas` waits for `minReadySeconds`; DaemonSet `maxUnavailable`
//!   percentages scale with the nodes; DaemonSet pods carry its tolerations and
//!   `pod-template-generation` from its template generation.
//! - Objects are created with the zero values of their status (`replicas: 0`, ...), and
//!   `Status` details omit the core API's empty group.
//! - A panic in a controller or request poisons the state: later uses panic instead of
//!   going on, and [`Simulator::settle`] says the controllers died.
//!
//! Left as they are, with why:
//! - `pod-template-hash` and `controller-revision-hash` values differ: the real ones hash the
//!   Go struct as spew prints it; matching them needs Go's type layout and printer. kubeship
//!   reads these labels, never computes them.
//! - LIST and WATCH are served from the live store, never from an older watch cache, and
//!   `continue` tokens are offsets: clients treat tokens as opaque, and kubeship's watches
//!   re-list on 410 either way.
//! - Server-side apply is a strategic merge with ownership in a side table; objects carry no
//!   `managedFields`. kubeship patches with strategic merge; kubectl apply is client-side.
//! - Strategic-merge keys are chosen by field name, not by type: for the kinds served the
//!   names give the keys the Go struct tags do.
//! - Foreground propagation is served as background; there are no finalizers.
//! - The scheduler knows node selectors only (no affinity, taints or resources); DaemonSet
//!   pods get `nodeName` from their controller rather than a node-affinity term the scheduler
//!   binds; a series is not flushed every 30 minutes.
//! - During a surge a Deployment's `availableReplicas` may exceed `spec.replicas`, and its
//!   `replicas` spec + maxSurge (the real one was seen at 6 for 4 + 1): it sums its
//!   ReplicaSets' statuses, each as fresh as its last sync. Both clusters do; the counts
//!   depend on timing and are not compared.
//! - JSON bodies only (protobuf is refused with a 415), and Table column descriptions are
//!   empty.

pub mod admission;
pub mod api;
pub mod clock;
pub mod controllers;
pub mod deletion;
pub mod kubelet;
pub mod managed;
pub mod patch;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store;
pub mod strategy;
pub mod table;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

pub use clock::Clock;
pub use controllers::pods::Behaviour;
pub use resources::Resource;
pub use status::ApiError;

/// One request the simulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: String,
    pub body: String,
    /// The client's `User-Agent`, as an audit log records it.
    pub user_agent: Option<String>,
}

/// A node of the simulated cluster.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    /// `kubernetes.io/arch`.
    pub arch: String,
}

/// Decides whether a bearer token is good.
#[derive(Clone)]
pub struct Authenticator(pub std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// A manual clock (tests) instead of the wall clock (demo).
    pub manual_clock: bool,
    pub nodes: Vec<Node>,
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Require a bearer token this function accepts (tokens that change, as minted cloud
    /// tokens do); it decides instead of `token` when set.
    pub authenticate: Option<Authenticator>,
    /// Serve HTTPS with a certificate from a generated CA (in the kubeconfig).
    pub tls: bool,
    /// Registries (`host:port`) the kubelet reaches over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// An extra CA (PEM) the kubelet trusts for HTTPS registries.
    pub registry_ca: Option<String>,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK (the API server's is
    /// about a minute).
    pub bookmark_interval: Duration,
    /// How long a deleted pod stays, its containers stopped, before the kubelet removes it
    /// (bounded by its grace period); the real control plane's kubelet stand-in takes as
    /// long by default.
    pub termination: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            manual_clock: false,
            nodes: vec![
                Node { name: "node-1".into(), arch: "amd64".into() },
                Node { name: "node-2".into(), arch: "arm64".into() },
            ],
            token: None,
            authenticate: None,
            tls: false,
            insecure_registries: Vec::new(),
            registry_ca: None,
            bookmark_interval: Duration::from_secs(60),
            termination: Duration::from_secs(1),
        }
    }
}

/// Faults injected on the API.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Answer the next N requests with 429 (`true`: plain text, as priority and fairness).
    pub throttle: Option<(usize, bool)>,
    /// Answer these verbs with 500.
    pub fail_verbs: Vec<String>,
    /// Forbid `(verb, resource plural)` with RBAC's 403.
    pub forbid: Vec<(String, String)>,
    /// Delay every response.
    pub delay: Option<Duration>,
    /// Close every watch stream after this many events.
    pub close_watches_after: Option<usize>,
    /// Writes an admission webhook refuses, as a real one would answer them.
    pub reject: Vec<Reject>,
}

/// A write refused after authorization, the way a failing admission webhook refuses it.
#[derive(Debug, Clone)]
pub struct Reject {
    /// The RBAC verb: `patch`, `update`, `create`.
    pub verb: String,
    /// The object's name.
    pub name: String,
    /// Whether `dryRun=All` requests are refused too (a webhook sees them as well, unless it
    /// checks `dryRun` the way this fault can).
    pub dry_runs_too: bool,
    /// 500 for a webhook that fails, 403 for one that denies.
    pub code: u16,
}

/// Everything the API and the controllers share.
pub struct State {
    pub store: store::Store,
    rng: u64,
    pub(crate) kubelet: controllers::pods::Kubelet,
    pub(crate) events: controllers::events::Recorder,
    pub(crate) fields: managed::Fields,
    /// A deletion happened: the garbage collector has work.
    pub(crate) collect: bool,
    /// When the scheduler last tried each unschedulable pod, and against which nodes.
    pub(crate) scheduling: controllers::pods::Attempts,
    /// Pods (by uid) whose deletion the kubelet has noticed.
    pub(crate) deletions_seen: std::collections::BTreeSet<String>,
}

impl State {
    /// Five characters from the alphabet Kubernetes uses for generated names.
    pub fn random_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| {
                // xorshift64: deterministic per simulator, good enough for names.
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                ALPHABET[(self.rng % ALPHABET.len() as u64) as usize] as char
            })
            .collect()
    }
}

/// The state, the clock and the switches, shared by the server and the controllers.
pub struct Shared {
    state: Mutex<State>,
    pub clock: Clock,
    pub(crate) wake: Notify,
    requests: Mutex<Vec<Logged>>,
    faults: Mutex<Faults>,
    pub(crate) options: Options,
    /// The kubelet's registry client.
    pub(crate) registry_client: reqwest::Client,
    passes_requested: AtomicU64,
    /// Registry look-ups under way.
    pub(crate) pulls_in_flight: AtomicU64,
    passes_done: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// The state. A controller or request that panicked while holding it left it half
    /// written: every later use panics too, so a test fails at once instead of going on
    /// against a simulator in a state no API server can be in.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("kubesim's state is poisoned: a controller or request panicked")
    }

    fn log(&self, request: Logged) {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).push(request);
    }

    /// The fault to answer with, if any; waits out an injected delay.
    async fn fault_for(
        &self,
        verb: &str,
        resource: Option<Resource>,
        name: Option<&str>,
        dry_run: bool,
    ) -> Option<ApiError> {
        let (delay, response) = {
            let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
            let mut response = None;
            if let Some((left, text)) = faults.throttle.as_mut()
                && *left > 0
            {
                *left -= 1;
                response = Some(if *text {
                    status::too_many_requests_text(1)
                } else {
                    status::too_many_requests(1)
                });
            }
            if response.is_none()
                && let Some(reject) = faults.reject.iter().find(|r| {
                    r.verb == verb && Some(r.name.as_str()) == name && (r.dry_runs_too || !dry_run)
                })
            {
                response = Some(status::admission(reject.code, "kubesim-reject.example.com"));
            }
            if response.is_none() && faults.fail_verbs.iter().any(|v| v == verb) {
                response = Some(status::internal(format!("injected failure of {verb}")));
            }
            if response.is_none()
                && let Some(r) = resource
                && faults.forbid.iter().any(|(v, p)| v == verb && p == r.plural)
            {
                response = Some(status::forbidden(
                    &r,
                    verb,
                    None,
                    None,
                    "system:serviceaccount:ci:kubeship",
                ));
            }
            (faults.delay, response)
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        response
    }

    fn watch_close_after(&self) -> Option<usize> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).close_watches_after
    }
}

/// A running simulator on its own runtime thread, stopped on drop.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// The CA that signed the server's certificate, PEM (TLS only).
    ca_pem: Option<String>,
    /// The controller loop: it ends only by a panic.
    controllers: tokio::task::JoinHandle<()>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Simulator {
    /// Starts the API server and the controllers on `127.0.0.1:0`.
    pub fn start(options: Options) -> anyhow::Result<Self> {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let clock = if options.manual_clock { Clock::manual() } else { Clock::real() };
        let mut state = State {
            store: store::Store::new(),
            rng: 0x2545_f491_4f6c_dd1d,
            kubelet: controllers::pods::Kubelet::default(),
            events: controllers::events::Recorder::default(),
            fields: managed::Fields::default(),
            collect: false,
            scheduling: controllers::pods::Attempts::default(),
            deletions_seen: std::collections::BTreeSet::new(),
        };
        let now = clock.timestamp();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let uid = state.store.uid();
            state.store.insert(&resources::NAMESPACES, json!({
                "metadata": {"name": ns, "uid": uid, "creationTimestamp": now, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
            }));
            admission::ensure_default_account(&mut state, ns, &now);
        }
        for node in &options.nodes {
            let uid = state.store.uid();
            state.store.insert(&resources::NODES, controllers::pods::node_object(node, &uid, &now));
        }
        let (passes_done, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            clock,
            wake: Notify::new(),
            requests: Mutex::default(),
            faults: Mutex::default(),
            registry_client: controllers::pods::registry_client(options.registry_ca.as_deref())?,
            options,
            passes_requested: AtomicU64::new(0),
            pulls_in_flight: AtomicU64::new(0),
            passes_done,
        });
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (acceptor, ca_pem) = if shared.options.tls {
            let (acceptor, ca) = tls::acceptor()?;
            (Some(acceptor), Some(ca))
        } else {
            (None, None)
        };
        runtime.spawn(accept(shared.clone(), listener, acceptor));
        let controllers = runtime.spawn(controllers::run(shared.clone()));
        Ok(Self { shared, addr, ca_pem, controllers, runtime: Some(runtime) })
    }

    /// `http://127.0.0.1:<port>`, or `https://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA of the server's certificate, PEM (TLS only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kubeconfig for this server, with `namespace` as the context's namespace.
    pub fn kubeconfig(&self, namespace: Option<&str>) -> String {
        let user = match &self.shared.options.token {
            Some(token) => format!("    token: {token}\n"),
            None => "    {}\n".to_owned(),
        };
        let namespace = namespace.map(|ns| format!("    namespace: {ns}\n")).unwrap_or_default();
        let ca = self
            .ca_pem
            .as_ref()
            .map(|pem| {
                use base64::Engine as _;
                let data = base64::engine::general_purpose::STANDARD.encode(pem);
                format!("    certificate-authority-data: {data}\n")
            })
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: {}\n{ca}\
             contexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim\n{namespace}\
             current-context: kubesim\nusers:\n- name: kubesim\n  user:\n{user}",
            self.url()
        )
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn clear_requests(&self) {
        self.shared.requests.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// An object, as stored.
    pub fn get(&self, resource: &Resource, namespace: &str, name: &str) -> Option<Value> {
        self.shared.lock().store.get(resource, namespace, name).cloned()
    }

    /// Objects of a resource in a namespace.
    pub fn list(&self, resource: &Resource, namespace: &str) -> Vec<Value> {
        self.shared.lock().store.list(resource, Some(namespace)).into_iter().cloned().collect()
    }

    /// Creates an object as a client would (defaults, validation), then lets the controllers
    /// act on it.
    pub fn create(&self, resource: &Resource, object: Value) -> Result<Value, ApiError> {
        let target = api::Target {
            resource: *resource,
            namespace: object["metadata"]["namespace"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| resource.namespaced.then(|| "default".to_owned())),
            name: None,
            subresource: None,
        };
        let created = api::create(&self.shared, &mut self.shared.lock(), &target, object, false)?;
        self.settle();
        Ok(created)
    }

    /// A JSON merge patch, as another client of the cluster would send it (mirrors the real
    /// control plane's test helper).
    pub fn merge_patch(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        let target = api::Target {
            resource: *resource,
            namespace: resource.namespaced.then(|| namespace.to_owned()),
            name: Some(name.to_owned()),
            subresource: None,
        };
        let body = patch.to_string();
        let (_, patched) = api::patch(
            &self.shared,
            &mut self.shared.lock(),
            &target,
            api::PatchType::Merge,
            body.as_bytes(),
            &BTreeMap::new(),
        )?;
        self.shared.wake.notify_one();
        self.settle();
        Ok(patched)
    }

    /// Deletes an object as a client would (`kubectl delete`: a pod gracefully, dependents
    /// by the garbage collector afterwards). Returns the API server's answer.
    pub fn delete(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let target = api::Target {
            resource: *resource,
            namespace: resource.namespaced.then(|| namespace.to_owned()),
            name: Some(name.to_owned()),
            subresource: None,
        };
        let options = deletion::DeleteOptions::default();
        let (_, answer) =
            deletion::delete(&self.shared, &mut self.shared.lock(), &target, &options)?;
        self.shared.wake.notify_one();
        self.settle();
        Ok(answer)
    }

    /// Adds a node (an autoscaler's work, for pods waiting to be scheduled).
    pub fn add_node(&self, node: &Node) {
        {
            let mut state = self.shared.lock();
            let uid = state.store.uid();
            let object = controllers::pods::node_object(node, &uid, &self.shared.clock.timestamp());
            state.store.insert(&resources::NODES, object);
        }
        self.settle();
    }

    /// Scripts how containers of `image` behave in the pods labelled `label` only.
    pub fn script_template(&self, label: (&str, &str), image: &str, behaviour: Behaviour) {
        self.shared.lock().kubelet.script_template(label, image, behaviour);
    }

    /// Scripts how containers of `image` behave.
    pub fn script(&self, image: &str, behaviour: Behaviour) {
        self.shared.lock().kubelet.script(image, behaviour);
    }

    /// Sets the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Forgets the store's history: watches from older versions get 410.
    pub fn expire_history(&self) {
        self.shared.lock().store.compact();
    }

    /// Moves a manual clock forward and lets the controllers catch up.
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance(by);
        self.settle();
    }

    /// Waits until the controllers have run a full pass after this call and after every
    /// registry look-up under way has answered (bounded at 10 s).
    ///
    /// # Panics
    /// When the controllers have panicked (their panic message is on standard error).
    pub fn settle(&self) {
        let Some(runtime) = &self.runtime else { return };
        assert!(!self.controllers.is_finished(), "kubesim's controllers panicked");
        runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let target = self.shared.passes_requested.fetch_add(1, Ordering::SeqCst) + 1;
                    self.shared.wake.notify_one();
                    let mut done = self.shared.passes_done.subscribe();
                    let _ = done.wait_for(|d| *d >= target).await;
                    if self.shared.pulls_in_flight.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
        });
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request| server::handle(shared.clone(), request));
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else { return };
                    let _ =
                        http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                }
                None => {
                    let _ =
                        http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                }
            }
        });
    }
}
