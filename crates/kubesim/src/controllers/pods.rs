//! The scheduler and the kubelet. The scheduler binds pods to ready nodes that match their
//! node selector, or marks them Unschedulable. The kubelet resolves each image against its
//! registry (a HEAD with every manifest type, as containerd does), then runs containers as
//! scripted per image: start and readiness delays, crash loops with restart back-off,
//! configuration errors, log lines.
//!
//! Only loopback registries are contacted; an image on any other registry is taken as
//! already present on the node (the simulator must never reach the network).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{condition, earliest, events, text};
use crate::api::Target;
use crate::clock::{Instant, rfc3339};
use crate::resources::{NODES, PODS};
use crate::status::{self, ApiError};
use crate::{Node, Shared, State};

/// How the containers of an image behave.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// From image pulled to container running.
    pub start_delay: Duration,
    /// From running to Ready.
    pub ready_delay: Duration,
    /// Never becomes Ready (a failing readiness probe).
    pub never_ready: bool,
    /// Exits this long after each start, with a terminated reason and exit code.
    pub crash: Option<(Duration, String, i32)>,
    /// `CreateContainerConfigError` with this message.
    pub config_error: Option<String>,
    /// The ReplicaSet cannot create pods of this image (quota, admission): `FailedCreate`.
    pub create_error: Option<String>,
    /// What the container prints.
    pub logs: Vec<String>,
}

#[derive(Debug, Clone)]
enum Pull {
    Pending,
    Found(String),
    Failed { reason: &'static str, message: String, at: Instant, retries: u32 },
}

#[derive(Debug, Clone, Default)]
struct Container {
    started: Option<Instant>,
    restarts: i64,
    last_exit: Option<(String, i32, Instant, Instant)>,
    next_start: Option<Instant>,
}

/// The kubelet's memory: scripts, pulls, container lifecycles.
#[derive(Default)]
pub struct Kubelet {
    scripts: BTreeMap<String, Behaviour>,
    /// Scripts for one pod template: pods with this label running this image.
    template_scripts: Vec<((String, String), String, Behaviour)>,
    pulls: BTreeMap<String, Pull>,
    to_pull: Vec<String>,
    containers: BTreeMap<(String, String), Container>,
}

impl Kubelet {
    pub fn script(&mut self, image: &str, behaviour: Behaviour) {
        self.scripts.insert(image.to_owned(), behaviour);
    }

    /// Scripts pods labelled `label` (`key`, `value`) that run `image`; these win over
    /// scripts by image alone.
    pub fn script_template(&mut self, label: (&str, &str), image: &str, behaviour: Behaviour) {
        self.template_scripts.push((
            (label.0.to_owned(), label.1.to_owned()),
            image.to_owned(),
            behaviour,
        ));
    }

    fn behaviour(&self, image: &str) -> Behaviour {
        self.scripts.get(image).cloned().unwrap_or_default()
    }

    /// The script for a container of a pod (or pod template) with these labels.
    fn behaviour_for(&self, labels: &Value, image: &str) -> Behaviour {
        self.template_scripts
            .iter()
            .find(|((k, v), i, _)| i == image && labels[k.as_str()] == v.as_str())
            .map(|(_, _, b)| b.clone())
            .unwrap_or_else(|| self.behaviour(image))
    }

    /// The scripted create failure for pods of a template, if any.
    pub fn create_failure(&self, template: &Value) -> Option<String> {
        let labels = &template["metadata"]["labels"];
        template["spec"]["containers"].as_array().into_iter().flatten().find_map(|c| {
            self.behaviour_for(labels, c["image"].as_str().unwrap_or_default()).create_error
        })
    }
}

/// The Node object for a simulated node.
pub fn node_object(node: &Node, uid: &str, now: &str) -> Value {
    json!({
        "metadata": {"name": node.name, "uid": uid, "creationTimestamp": now, "labels": {
            "kubernetes.io/arch": node.arch, "kubernetes.io/os": "linux", "kubernetes.io/hostname": node.name,
            "beta.kubernetes.io/arch": node.arch, "beta.kubernetes.io/os": "linux"}},
        "spec": {},
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "nodeInfo": {"architecture": node.arch, "operatingSystem": "linux", "kubeletVersion": "v1.37.0-kubesim",
                "containerRuntimeVersion": "containerd://2.1.0"},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node.name}]
        }
    })
}

fn set_pod_condition(
    pod: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
    now: &str,
) {
    let mut conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    if let Some(c) = conditions.iter_mut().find(|c| c["type"] == kind) {
        if c["status"] != status {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!(status);
        set_or_remove(c, "reason", reason);
        set_or_remove(c, "message", message);
    } else {
        let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
        set_or_remove(&mut c, "reason", reason);
        set_or_remove(&mut c, "message", message);
        conditions.push(c);
    }
    pod["status"]["conditions"] = json!(conditions);
}

fn set_or_remove(object: &mut Value, key: &str, value: Option<&str>) {
    match value {
        Some(v) => object[key] = json!(v),
        None => {
            if let Value::Object(m) = object {
                m.remove(key);
            }
        }
    }
}

/// Binds unscheduled pods.
pub fn schedule(shared: &Shared, state: &mut State, _now: Instant) -> Option<Instant> {
    let nodes: Vec<Value> = state
        .store
        .list(&NODES, None)
        .into_iter()
        .filter(|n| {
            condition(&n["status"], "Ready").is_some_and(|c| c["status"] == "True")
                && n["spec"]["unschedulable"] != true
        })
        .cloned()
        .collect();
    let pending: Vec<Value> = state
        .store
        .list(&PODS, None)
        .into_iter()
        .filter(|p| p["spec"]["nodeName"].is_null())
        .cloned()
        .collect();
    let stamp = shared.clock.timestamp();
    for (i, pod) in pending.into_iter().enumerate() {
        let selector = pod["spec"]["nodeSelector"].as_object().cloned().unwrap_or_default();
        let fits: Vec<&Value> = nodes
            .iter()
            .filter(|n| selector.iter().all(|(k, v)| n["metadata"]["labels"][k] == *v))
            .collect();
        let mut pod = pod;
        if fits.is_empty() {
            let total = nodes.len();
            let message = format!(
                "0/{total} nodes are available: {total} node(s) didn't match Pod's node affinity/selector. \
                 preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
            );
            let already = condition(&pod["status"], "PodScheduled")
                .is_some_and(|c| c["message"] == message.as_str());
            if !already {
                set_pod_condition(
                    &mut pod,
                    "PodScheduled",
                    "False",
                    Some("Unschedulable"),
                    Some(&message),
                    &stamp,
                );
                let written = state.store.replace(&PODS, pod);
                events::record(
                    shared,
                    state,
                    &written,
                    "Warning",
                    "FailedScheduling",
                    &message,
                    "default-scheduler",
                );
            }
            continue;
        }
        // Spread pods over the fitting nodes.
        let node = fits[i % fits.len()];
        let node_name = text(node, "/metadata/name").to_owned();
        pod["spec"]["nodeName"] = json!(node_name);
        set_pod_condition(&mut pod, "PodScheduled", "True", None, None, &stamp);
        let written = state.store.replace(&PODS, pod);
        let (ns, name) = crate::store::names(&written);
        events::record(
            shared,
            state,
            &written,
            "Normal",
            "Scheduled",
            &format!("Successfully assigned {ns}/{name} to {node_name}"),
            "default-scheduler",
        );
    }
    None
}

/// Back-off of image pulls and restarts: 10 s doubling to 300 s.
fn backoff(step: u32) -> Duration {
    Duration::from_secs((10u64 << step.min(5)).min(300))
}

/// Runs the kubelet over every scheduled pod; returns its next timer.
pub fn run_kubelet(shared: &Shared, state: &mut State, now: Instant) -> Option<Instant> {
    let pods: Vec<Value> = state
        .store
        .list(&PODS, None)
        .into_iter()
        .filter(|p| !p["spec"]["nodeName"].is_null())
        .cloned()
        .collect();
    let mut next = None;
    for pod in pods {
        next = earliest(next, sync_pod(shared, state, now, pod));
    }
    // Forget containers of deleted pods.
    let live: std::collections::BTreeSet<String> = state
        .store
        .list(&PODS, None)
        .into_iter()
        .map(|p| text(p, "/metadata/uid").to_owned())
        .collect();
    state.kubelet.containers.retain(|(uid, _), _| live.contains(uid));
    next
}

fn sync_pod(shared: &Shared, state: &mut State, now: Instant, mut pod: Value) -> Option<Instant> {
    let uid = text(&pod, "/metadata/uid").to_owned();
    let pod_name = text(&pod, "/metadata/name").to_owned();
    let ns = text(&pod, "/metadata/namespace").to_owned();
    let stamp = rfc3339(now);
    let mut next = None;
    let mut statuses = Vec::new();
    let mut all_ready = true;
    let mut any_running = false;
    let mut new_events: Vec<(&str, &str, String)> = Vec::new();
    let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
    for c in &containers {
        // This container's events: only its state changes are reported.
        let mut container_events: Vec<(&str, &str, String)> = Vec::new();
        let name = text(c, "/name").to_owned();
        let image = text(c, "/image").to_owned();
        let behaviour = state.kubelet.behaviour_for(&pod["metadata"]["labels"], &image);
        let previous_status = pod["status"]["containerStatuses"]
            .as_array()
            .and_then(|list| list.iter().find(|s| s["name"] == name.as_str()))
            .cloned();
        let mut status = json!({"name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0,
            "started": false, "state": {}});
        let key = (uid.clone(), name.clone());
        let pull = match state.kubelet.pulls.get(&image).cloned() {
            Some(Pull::Failed { at, retries, .. }) if now >= at + backoff(retries) => {
                state.kubelet.pulls.insert(image.clone(), Pull::Pending);
                state.kubelet.to_pull.push(image.clone());
                Pull::Pending
            }
            Some(pull) => pull,
            None => {
                container_events.push(("Normal", "Pulling", format!("Pulling image \"{image}\"")));
                let pull = match locally(&image) {
                    Some(Ok(id)) => Pull::Found(id),
                    Some(Err((reason, message))) => {
                        Pull::Failed { reason, message, at: now, retries: 0 }
                    }
                    None => {
                        state.kubelet.to_pull.push(image.clone());
                        Pull::Pending
                    }
                };
                state.kubelet.pulls.insert(image.clone(), pull.clone());
                pull
            }
        };
        let waiting = |reason: &str, message: Option<String>| {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        };
        match pull {
            Pull::Pending => {
                status["state"] = waiting("ContainerCreating", None);
                all_ready = false;
            }
            Pull::Failed { reason, message, at, retries } => {
                all_ready = false;
                if reason == "InvalidImageName" {
                    status["state"] = waiting(reason, Some(message.clone()));
                    container_events.push(("Warning", "InspectFailed", message));
                } else if now >= at + Duration::from_secs(1) {
                    status["state"] = waiting(
                        "ImagePullBackOff",
                        Some(format!(
                            "Back-off pulling image \"{image}\": ErrImagePull: {message}"
                        )),
                    );
                    container_events.push((
                        "Normal",
                        "BackOff",
                        format!("Back-off pulling image \"{image}\""),
                    ));
                    next = earliest(next, Some(at + backoff(retries)));
                } else {
                    status["state"] = waiting("ErrImagePull", Some(message.clone()));
                    container_events.push((
                        "Warning",
                        "Failed",
                        format!("Failed to pull image \"{image}\": {message}"),
                    ));
                    container_events.push(("Warning", "Failed", "Error: ErrImagePull".to_owned()));
                    next = earliest(next, Some(at + Duration::from_secs(1)));
                }
            }
            Pull::Found(image_id) => {
                status["imageID"] = json!(image_id);
                if let Some(message) = &behaviour.config_error {
                    status["state"] = waiting("CreateContainerConfigError", Some(message.clone()));
                    container_events.push(("Warning", "Failed", format!("Error: {message}")));
                    all_ready = false;
                } else {
                    let entry = state.kubelet.containers.entry(key.clone()).or_default();
                    if entry.started.is_none()
                        && entry.next_start.is_none()
                        && entry.last_exit.is_none()
                    {
                        entry.next_start = Some(now + behaviour.start_delay);
                        container_events.push((
                            "Normal",
                            "Pulled",
                            format!("Successfully pulled image \"{image}\""),
                        ));
                    }
                    // Start (or restart) when due.
                    if entry.started.is_none() && entry.next_start.is_some_and(|t| now >= t) {
                        entry.started = entry.next_start.take();
                        container_events.push((
                            "Normal",
                            "Created",
                            format!("Created container: {name}"),
                        ));
                        container_events.push((
                            "Normal",
                            "Started",
                            format!("Started container {name}"),
                        ));
                    }
                    // Crash when due.
                    if let (Some(started), Some((after, reason, code))) =
                        (entry.started, &behaviour.crash)
                    {
                        if now >= started + *after {
                            let finished = started + *after;
                            entry.last_exit = Some((reason.clone(), *code, started, finished));
                            entry.started = None;
                            entry.restarts += 1;
                            // The first restart is immediate; later ones back off.
                            let delay = if entry.restarts <= 1 {
                                Duration::ZERO
                            } else {
                                backoff(entry.restarts as u32 - 2)
                            };
                            entry.next_start = Some(finished + delay);
                            if entry.restarts > 1 {
                                container_events.push(("Warning", "BackOff",
                                    format!("Back-off restarting failed container {name} in pod {pod_name}_{ns}({uid})")));
                            }
                        } else {
                            next = earliest(next, Some(started + *after));
                        }
                    }
                    if entry.started.is_none() && entry.next_start.is_some_and(|t| now >= t) {
                        entry.started = entry.next_start.take();
                    }
                    let entry = entry.clone();
                    status["restartCount"] = json!(entry.restarts);
                    if let Some((reason, code, started, finished)) = &entry.last_exit {
                        status["lastState"] = json!({"terminated": {"exitCode": code, "reason": reason,
                            "startedAt": rfc3339(*started), "finishedAt": rfc3339(*finished), "containerID": format!("containerd://{uid}-{name}")}});
                    }
                    match entry.started {
                        Some(started) => {
                            any_running = true;
                            status["started"] = json!(true);
                            status["containerID"] = json!(format!("containerd://{uid}-{name}"));
                            status["state"] = json!({"running": {"startedAt": rfc3339(started)}});
                            let ready_at = started + behaviour.ready_delay;
                            if !behaviour.never_ready && now >= ready_at {
                                status["ready"] = json!(true);
                            } else {
                                all_ready = false;
                                if !behaviour.never_ready {
                                    next = earliest(next, Some(ready_at));
                                }
                            }
                        }
                        None => {
                            all_ready = false;
                            let due = entry.next_start;
                            next = earliest(next, due);
                            status["state"] = if entry.last_exit.is_some() {
                                let wait = due.map_or(0, |t| t.saturating_sub(now).as_secs());
                                waiting(
                                    "CrashLoopBackOff",
                                    Some(format!(
                                        "back-off {}s restarting failed container={name} pod={pod_name}_{ns}({uid})",
                                        wait.max(10)
                                    )),
                                )
                            } else {
                                waiting("ContainerCreating", None)
                            };
                        }
                    }
                }
            }
        }
        if previous_status.as_ref().and_then(|p| p.get("state")) == status.get("state") {
            // Only state changes are reported as events.
            container_events.retain(|(_, reason, _)| {
                !matches!(*reason, "Failed" | "BackOff" | "InspectFailed")
            });
        }
        new_events.extend(container_events);
        statuses.push(status);
    }
    // The kubelet's getPhase for restartPolicy Always: Running once every container has
    // started, whether it runs now or exited and is restarting (a crash loop is Running).
    let started = !statuses.is_empty()
        && statuses.iter().all(|st| {
            !st["state"]["running"].is_null() || !st["lastState"]["terminated"].is_null()
        });
    let phase = if started { "Running" } else { "Pending" };
    pod["status"]["phase"] = json!(phase);
    pod["status"]["hostIP"] = json!("127.0.0.1");
    pod["status"]["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
    if pod["status"]["startTime"].is_null() {
        pod["status"]["startTime"] = json!(stamp);
    }
    if any_running && pod["status"]["podIP"].is_null() {
        let n = state.store.resource_version() % 250 + 2;
        pod["status"]["podIP"] = json!(format!("10.244.0.{n}"));
        pod["status"]["podIPs"] = json!([{"ip": format!("10.244.0.{n}")}]);
    }
    pod["status"]["containerStatuses"] = json!(statuses);
    set_pod_condition(
        &mut pod,
        "PodReadyToStartContainers",
        if any_running { "True" } else { "False" },
        None,
        None,
        &stamp,
    );
    set_pod_condition(&mut pod, "Initialized", "True", None, None, &stamp);
    let (ready, reason) =
        if all_ready { ("True", None) } else { ("False", Some("ContainersNotReady")) };
    let not_ready: Vec<String> = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["ready"] != true)
        .map(|s| text(s, "/name").to_owned())
        .collect();
    let message =
        (!all_ready).then(|| format!("containers with unready status: [{}]", not_ready.join(" ")));
    set_pod_condition(&mut pod, "ContainersReady", ready, reason, message.as_deref(), &stamp);
    set_pod_condition(&mut pod, "Ready", ready, reason, message.as_deref(), &stamp);
    let written = state.store.replace(&PODS, pod);
    for (kind, reason, message) in new_events {
        events::record(shared, state, &written, kind, reason, &message, "kubelet");
    }
    next
}

/// Starts the registry look-ups the kubelet asked for (outside the state lock).
pub fn start_pulls(shared: &Arc<Shared>) {
    let images: Vec<String> = std::mem::take(&mut shared.lock().kubelet.to_pull);
    for image in images {
        let shared = shared.clone();
        shared.pulls_in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::spawn(async move {
            let outcome = resolve(&shared, &image).await;
            let now = shared.clock.now();
            let mut state = shared.lock();
            let retries = match state.kubelet.pulls.get(&image) {
                Some(Pull::Failed { retries, .. }) => retries + 1,
                _ => 0,
            };
            let pull = match outcome {
                Ok(id) => Pull::Found(id),
                Err((reason, message)) => Pull::Failed { reason, message, at: now, retries },
            };
            state.kubelet.pulls.insert(image, pull);
            drop(state);
            shared.pulls_in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            shared.wake.notify_one();
        });
    }
}

/// The parts of an image reference, or the kubelet's InvalidImageName.
struct Parsed {
    host: String,
    repository: String,
    tag: String,
    digest: Option<String>,
}

type PullResult = Result<String, (&'static str, String)>;

fn parse(image: &str) -> Result<Parsed, (&'static str, String)> {
    let invalid = || {
        (
            "InvalidImageName",
            format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
            ),
        )
    };
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let (host, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_owned(), rest.to_owned())
        }
        _ => (
            "docker.io".to_owned(),
            if name.contains('/') { name.to_owned() } else { format!("library/{name}") },
        ),
    };
    let (repository, tag) = match path.rsplit_once(':') {
        Some((r, t)) => (r.to_owned(), t.to_owned()),
        None => (path.clone(), "latest".to_owned()),
    };
    // The reference grammar, coarsely: lowercase path components, a word-character tag.
    let path_ok = !repository.is_empty()
        && repository
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b));
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !path_ok || !tag_ok || host.is_empty() {
        return Err(invalid());
    }
    if let Some(d) = digest
        && !(d.starts_with("sha256:") && d.len() == 71)
    {
        return Err(invalid());
    }
    Ok(Parsed { host, repository, tag, digest: digest.map(str::to_owned) })
}

/// The answer without a registry: malformed references, and images on registries the
/// simulator does not contact (taken to be present on the node). `None`: ask the registry.
fn locally(image: &str) -> Option<PullResult> {
    let parsed = match parse(image) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let Parsed { host, repository, digest, .. } = parsed;
    let loopback =
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    if loopback {
        return None;
    }
    use sha2::Digest as _;
    let digest = digest.unwrap_or_else(|| {
        let hash = sha2::Sha256::digest(image.as_bytes());
        format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
    });
    Some(Ok(format!("{host}/{repository}@{digest}")))
}

/// `repo@sha256:…` for an image on a loopback registry, from the registry.
async fn resolve(shared: &Shared, image: &str) -> PullResult {
    let Parsed { host, repository, tag, digest } = parse(image)?;
    let digest = digest.as_deref();
    let scheme = if shared.options.insecure_registries.contains(&host) { "http" } else { "https" };
    let reference = digest.unwrap_or(&tag);
    let url = format!("{scheme}://{host}/v2/{repository}/manifests/{reference}");
    let pull_error = |what: String| {
        (
            "ErrImagePull",
            format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{host}/{repository}:{tag}\": failed to resolve reference \"{host}/{repository}:{tag}\": {what}"
            ),
        )
    };
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
    match head(&shared.registry_client, &url, accept, &repository).await {
        Ok((200, Some(found))) => Ok(format!("{host}/{repository}@{found}")),
        Ok((200, None)) => Err(pull_error("no digest in the registry's answer".into())),
        Ok((404, _)) => Err(pull_error(format!("{host}/{repository}:{tag}: not found"))),
        Ok((401 | 403, _)) => Err((
            "ErrImagePull",
            format!(
                "rpc error: code = Unknown desc = failed to pull and unpack image \"{host}/{repository}:{tag}\": failed to resolve reference \"{host}/{repository}:{tag}\": pull access denied, repository does not exist or may require authorization: authorization failed"
            ),
        )),
        Ok((code, _)) => {
            Err(pull_error(format!("unexpected status from HEAD request to {url}: {code}")))
        }
        Err(e) => Err(pull_error(e)),
    }
}

/// The kubelet's HTTP client: the OS-independent public roots plus `ca` (PEM).
pub fn registry_client(ca: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder =
        reqwest::Client::builder().user_agent("containerd/2.1.0").timeout(Duration::from_secs(10));
    if let Some(pem) = ca {
        builder = builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem.as_bytes())?);
    }
    Ok(builder.build()?)
}

/// A manifest HEAD as containerd sends it, following the registry's anonymous token flow:
/// the status and `Docker-Content-Digest`.
async fn head(
    client: &reqwest::Client,
    url: &str,
    accept: &str,
    repository: &str,
) -> Result<(u16, Option<String>), String> {
    let send = |token: Option<String>| {
        let mut request = client.head(url).header("Accept", accept);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let mut response = send(None).await.map_err(|e| format!("dial tcp: {e}"))?;
    let challenge =
        response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if response.status() == 401
        && let Some(challenge) = challenge.filter(|c| c.starts_with("Bearer "))
    {
        let param = |name: &str| {
            challenge
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned)
        };
        let realm = param("realm").ok_or("a token challenge without a realm")?;
        let mut query = vec![("scope".to_owned(), format!("repository:{repository}:pull"))];
        if let Some(service) = param("service") {
            query.push(("service".to_owned(), service));
        }
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
        let body = client
            .get(format!("{realm}?{query}"))
            .send()
            .await
            .map_err(|e| format!("fetching a token: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("fetching a token: {e}"))?;
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("a token answer that is not JSON: {e}"))?;
        let token = answer["token"].as_str().or(answer["access_token"].as_str()).map(str::to_owned);
        response = send(token).await.map_err(|e| format!("dial tcp: {e}"))?;
    }
    let digest = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((response.status().as_u16(), digest))
}

/// `GET .../pods/<name>/log`: the scripted lines of a container (`previous` for the last
/// instance that exited), honouring `tailLines`.
pub fn logs(
    state: &State,
    target: &Target,
    query: &BTreeMap<String, String>,
) -> Result<String, ApiError> {
    let name = target.name.as_deref().unwrap_or_default();
    let ns = target.namespace.as_deref().unwrap_or_default();
    let pod = state.store.get(&PODS, ns, name).ok_or_else(|| status::not_found(&PODS, name))?;
    let containers: Vec<&Value> =
        pod["spec"]["containers"].as_array().into_iter().flatten().collect();
    let container = match query.get("container") {
        Some(c) => {
            containers.iter().find(|x| x["name"] == c.as_str()).copied().ok_or_else(|| {
                status::bad_request(format!("container {c} is not valid for pod {name}"))
            })?
        }
        None if containers.len() == 1 => containers[0],
        None => {
            let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
            return Err(status::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let cname = text(container, "/name");
    let image = text(container, "/image");
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == cname));
    let previous = query.get("previous").is_some_and(|p| p == "true");
    if previous && status.is_none_or(|s| s["lastState"]["terminated"].is_null()) {
        return Err(status::bad_request(format!(
            "previous terminated container \"{cname}\" in pod \"{name}\" not found"
        )));
    }
    // A container between restarts still has the logs of its last run.
    let never_ran = |s: &Value| {
        s["state"]["running"].is_null()
            && s["state"]["terminated"].is_null()
            && s["lastState"]["terminated"].is_null()
    };
    if !previous && status.is_none_or(never_ran) {
        let reason = status
            .and_then(|s| s["state"]["waiting"]["reason"].as_str())
            .unwrap_or("ContainerCreating");
        return Err(status::bad_request(format!(
            "container \"{cname}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let lines = state.kubelet.behaviour_for(&pod["metadata"]["labels"], image).logs;
    let tail = query.get("tailLines").and_then(|t| t.parse::<usize>().ok()).unwrap_or(lines.len());
    let start = lines.len().saturating_sub(tail);
    Ok(lines[start..].iter().map(|l| format!("{l}\n")).collect())
}
