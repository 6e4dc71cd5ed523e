//! The kubelet stand-in for the fake nodes: an agent that watches the pods bound to them
//! through the real API, runs kubesim's kubelet model on each ([`kubesim::kubelet`]: image
//! pulls from the real test registry, scripted starts, readiness, crash loops, configuration
//! errors) and writes what it decides through the real `/status` subresource, with core/v1
//! Events as the kubelet records them. A pod being deleted has its containers stopped and
//! reaches a terminal phase, then the agent removes it (grace period 0, uid precondition),
//! as the kubelet does. kwok keeps the nodes themselves (status, leases, heartbeats).
//!
//! Why not kwok's stages: a Stage selects pods by fields of the pod and writes a templated
//! status after a delay. It can follow the image a pod runs (a `matchExpressions` on
//! `.spec.containers.[].image`, Stages created at run time with `--enable-crds=Stage`), but it
//! cannot ask a registry whether the image exists (ErrImagePull for a missing image) or which
//! digest a tag resolves to (`imageID`), and back-off timings, restart counting and event
//! de-duplication would be a second model in Go templates that drifts from kubesim's. With
//! one model the two clusters differ only where the real control plane does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt as _;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kubesim::clock::{Clock, Instant, rfc3339};
use kubesim::kubelet::{Behaviour, Event, Kubelet, earliest};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// What the agent and its log server share.
pub struct Agent {
    kubelet: Mutex<Kubelet>,
    /// The pods on the agent's nodes, newest version known.
    pods: Mutex<BTreeMap<(String, String), Value>>,
    wake: Notify,
    nodes: Mutex<BTreeSet<String>>,
    /// How long a deleted pod's containers take to stop.
    termination: Duration,
    registries: Mutex<Registries>,
    clock: Clock,
}

/// How the kubelet reaches registries: plain HTTP to some, extra CAs for others.
#[derive(Default)]
struct Registries {
    insecure: Vec<String>,
    cas: Vec<String>,
    client: Option<reqwest::Client>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn pods_resource() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
    }
}

fn events_resource() -> ApiResource {
    ApiResource { kind: "Event".into(), plural: "events".into(), ..pods_resource() }
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn version(pod: &Value) -> u64 {
    text(pod, "/metadata/resourceVersion").parse().unwrap_or(0)
}

impl Agent {
    pub fn new(nodes: BTreeSet<String>, termination: Duration) -> Self {
        Self {
            kubelet: Mutex::new(Kubelet::default()),
            pods: Mutex::default(),
            wake: Notify::new(),
            nodes: Mutex::new(nodes),
            termination,
            registries: Mutex::default(),
            clock: Clock::real(),
        }
    }

    pub fn nodes(&self) -> BTreeSet<String> {
        lock(&self.nodes).clone()
    }

    /// Plays the kubelet of `name` too.
    pub fn add_node(&self, name: &str) {
        lock(&self.nodes).insert(name.to_owned());
        self.wake.notify_one();
    }

    pub fn script(&self, image: &str, behaviour: Behaviour) {
        lock(&self.kubelet).script(image, behaviour);
        self.wake.notify_one();
    }

    pub fn script_template(&self, label: (&str, &str), image: &str, behaviour: Behaviour) {
        lock(&self.kubelet).script_template(label, image, behaviour);
        self.wake.notify_one();
    }

    /// Pulls from `host` (`host:port`) go over plain HTTP.
    pub fn insecure_registry(&self, host: &str) {
        let mut registries = lock(&self.registries);
        if !registries.insecure.iter().any(|h| h == host) {
            registries.insecure.push(host.to_owned());
        }
    }

    /// Pulls over HTTPS also trust `ca_pem`.
    pub fn registry_ca(&self, ca_pem: &str) {
        let mut registries = lock(&self.registries);
        registries.cas.push(ca_pem.to_owned());
        registries.client = None;
    }

    /// A pod the agent knows, for the log server.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.pods).get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    pub fn container_logs(
        &self,
        pod: &Value,
        query: &kubesim::kubelet::logs::LogQuery,
    ) -> Result<String, String> {
        lock(&self.kubelet).container_logs(pod, query)
    }

    fn remember(&self, pod: Value) {
        let key =
            (text(&pod, "/metadata/namespace").to_owned(), text(&pod, "/metadata/name").to_owned());
        let mut pods = lock(&self.pods);
        if pods.get(&key).is_none_or(|known| version(known) <= version(&pod)) {
            pods.insert(key, pod);
        }
    }

    fn ours(&self, pod: &Value) -> bool {
        lock(&self.nodes).contains(text(pod, "/spec/nodeName"))
    }

    fn registry_client(&self) -> anyhow::Result<(reqwest::Client, Vec<String>)> {
        let mut registries = lock(&self.registries);
        if registries.client.is_none() {
            let ca = (!registries.cas.is_empty()).then(|| registries.cas.concat());
            registries.client = Some(kubesim::kubelet::pull::registry_client(ca.as_deref())?);
        }
        let client = registries.client.clone().ok_or_else(|| anyhow::anyhow!("no client"))?;
        Ok((client, registries.insecure.clone()))
    }
}

/// A write the agent owes the API server.
enum Write {
    Status(Value),
    Delete { namespace: String, name: String, uid: String },
}

/// Runs the agent until the runtime ends.
pub async fn run(agent: Arc<Agent>, client: kube::Client) {
    tokio::spawn(watch(agent.clone(), client.clone()));
    let mut terminating: BTreeMap<String, Instant> = BTreeMap::new();
    let mut recorder = Recorder::default();
    loop {
        let now = agent.clock.now();
        let pods: Vec<Value> =
            lock(&agent.pods).values().filter(|p| agent.ours(p)).cloned().collect();
        let mut next = None;
        let mut writes = Vec::new();
        let mut events: Vec<(Value, Event)> = Vec::new();
        let pulls = {
            let mut kubelet = lock(&agent.kubelet);
            for pod in &pods {
                let mut updated = pod.clone();
                let uid = text(pod, "/metadata/uid").to_owned();
                let synced = if pod["metadata"]["deletionTimestamp"].is_string() {
                    let grace = pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
                    let delay = agent.termination.min(Duration::from_secs(grace));
                    let first = !terminating.contains_key(&uid);
                    let due = *terminating.entry(uid.clone()).or_insert(now + delay);
                    if now >= due {
                        writes.push(Write::Delete {
                            namespace: text(pod, "/metadata/namespace").to_owned(),
                            name: text(pod, "/metadata/name").to_owned(),
                            uid: uid.clone(),
                        });
                    } else {
                        next = earliest(next, Some(due));
                    }
                    if !first {
                        continue;
                    }
                    kubelet.terminate(&mut updated, now)
                } else {
                    let synced = kubelet.sync(&mut updated, now);
                    updated["status"]["hostIP"] = json!("127.0.0.1");
                    updated["status"]["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
                    synced
                };
                next = earliest(next, synced.next);
                events.extend(synced.events.into_iter().map(|e| (pod.clone(), e)));
                if updated["status"] != pod["status"] {
                    writes.push(Write::Status(updated));
                }
            }
            let live: BTreeSet<String> =
                pods.iter().map(|p| text(p, "/metadata/uid").to_owned()).collect();
            kubelet.retain_pods(&live);
            terminating.retain(|uid, _| live.contains(uid));
            kubelet.take_pulls()
        };
        for image in pulls {
            tokio::spawn(pull(agent.clone(), image));
        }
        for write in writes {
            apply(&agent, &client, write).await;
        }
        for (pod, event) in events {
            recorder.record(&client, &pod, &event, now).await;
        }
        let sleep =
            next.map_or(Duration::from_secs(3600), |at| at.saturating_sub(agent.clock.now()));
        tokio::select! {
            () = agent.wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Keeps `agent.pods` in step with the API server's pods that are bound to a node.
async fn watch(agent: Arc<Agent>, client: kube::Client) {
    let api: Api<DynamicObject> = Api::all_with(client, &pods_resource());
    let config = watcher::Config::default().fields("spec.nodeName!=");
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut listing: Option<BTreeMap<(String, String), Value>> = None;
    while let Some(event) = stream.next().await {
        let value = |o: DynamicObject| serde_json::to_value(o).unwrap_or(Value::Null);
        let key = |v: &Value| {
            (text(v, "/metadata/namespace").to_owned(), text(v, "/metadata/name").to_owned())
        };
        match event {
            Ok(WatchEvent::Init) => listing = Some(BTreeMap::new()),
            Ok(WatchEvent::InitApply(o)) => {
                let v = value(o);
                if let Some(l) = listing.as_mut() {
                    l.insert(key(&v), v);
                }
            }
            Ok(WatchEvent::InitDone) => {
                if let Some(l) = listing.take() {
                    *lock(&agent.pods) = l;
                }
            }
            Ok(WatchEvent::Apply(o)) => agent.remember(value(o)),
            Ok(WatchEvent::Delete(o)) => {
                lock(&agent.pods).remove(&key(&value(o)));
            }
            // The watcher re-lists after its back-off; nothing to do here.
            Err(_) => continue,
        }
        agent.wake.notify_one();
    }
}

/// One registry look-up, its answer handed to the kubelet.
async fn pull(agent: Arc<Agent>, image: String) {
    let outcome = match agent.registry_client() {
        Ok((client, insecure)) => kubesim::kubelet::pull::resolve(&client, &insecure, &image).await,
        Err(e) => Err(("ErrImagePull", format!("no registry client: {e}"))),
    };
    let now = agent.clock.now();
    lock(&agent.kubelet).pulled(&image, outcome, now);
    agent.wake.notify_one();
}

async fn apply(agent: &Agent, client: &kube::Client, write: Write) {
    match write {
        Write::Status(mut pod) => {
            // Listed items carry no kind; the body of an update names it.
            pod["apiVersion"] = json!("v1");
            pod["kind"] = json!("Pod");
            let namespace = text(&pod, "/metadata/namespace").to_owned();
            let name = text(&pod, "/metadata/name").to_owned();
            let Ok(object) = serde_json::from_value::<DynamicObject>(pod) else { return };
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &pods_resource());
            // A conflict means a newer pod is on its way through the watch: sync that one.
            let params =
                PostParams { field_manager: Some("kubelet".into()), ..PostParams::default() };
            if let Ok(written) = api.replace_status(&name, &params, &object).await
                && let Ok(v) = serde_json::to_value(written)
            {
                agent.remember(v);
            }
        }
        Write::Delete { namespace, name, uid } => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &pods_resource());
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let _ = api.delete(&name, &params).await;
        }
    }
}

/// core/v1 Events as the kubelet's recorder writes them: a repeat of the same report on
/// the same pod raises the count of the first Event.
#[derive(Default)]
struct Recorder {
    seen: BTreeMap<(String, String, String, String), (String, i64)>,
    made: u64,
}

impl Recorder {
    async fn record(&mut self, client: &kube::Client, pod: &Value, event: &Event, now: Instant) {
        let namespace = text(pod, "/metadata/namespace").to_owned();
        let uid = text(pod, "/metadata/uid").to_owned();
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &namespace, &events_resource());
        let stamp = rfc3339(now);
        let key =
            (uid.clone(), event.container.clone(), event.reason.to_owned(), event.message.clone());
        if let Some((name, count)) = self.seen.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": stamp});
            let _ = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await;
            return;
        }
        self.made += 1;
        let pod_name = text(pod, "/metadata/name");
        let name =
            format!("{pod_name}.{:x}{:04x}", now.as_nanos() % (1 << 48), self.made % 0x10000);
        let node = text(pod, "/spec/nodeName");
        let object = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"kind": "Pod", "namespace": namespace, "name": pod_name, "uid": uid,
                "apiVersion": "v1", "resourceVersion": pod["metadata"]["resourceVersion"],
                "fieldPath": format!("spec.containers{{{}}}", event.container)},
            "reason": event.reason, "message": event.message, "type": event.kind,
            "source": {"component": "kubelet", "host": node},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": node
        });
        let Ok(object) = serde_json::from_value::<DynamicObject>(object) else { return };
        if api.create(&PostParams::default(), &object).await.is_ok() {
            self.seen.insert(key, (name, 1));
        }
    }
}
