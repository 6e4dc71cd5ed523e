//! The kubelet's model, shared by kubesim's kubelet and the real control plane's kubelet
//! stand-in (`kubeship_testkit::controlplane`): per-image scripts, image pulls and their
//! back-off, container lifecycles with crash loops, graceful termination, and the pod status
//! and events a kubelet writes. Pure: the caller owns the pod objects, the clock, the pulls'
//! I/O ([`pull::resolve`]) and where the status and events go.

pub mod logs;
pub mod pull;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::clock::{Instant, rfc3339};
use pull::{Pull, PullResult};

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

#[derive(Debug, Clone, Default)]
struct Container {
    started: Option<Instant>,
    restarts: i64,
    last_exit: Option<(String, i32, Instant, Instant)>,
    next_start: Option<Instant>,
}

/// An event the kubelet reports about a pod, for one of its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `Normal` or `Warning`.
    pub kind: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub container: String,
}

/// What one sync of a pod produced besides its new status.
#[derive(Debug, Default)]
pub struct Synced {
    pub events: Vec<Event>,
    /// When the pod needs another sync (a readiness delay, a back-off ending).
    pub next: Option<Instant>,
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
    pod_ips: u64,
}

/// Earliest of optional times.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Back-off of image pulls and restarts: 10 s doubling to 300 s.
fn backoff(step: u32) -> Duration {
    Duration::from_secs((10u64 << step.min(5)).min(300))
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
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

    /// The script for a container of a pod (or pod template) with these labels.
    pub fn behaviour_for(&self, labels: &Value, image: &str) -> Behaviour {
        self.template_scripts
            .iter()
            .find(|((k, v), i, _)| i == image && labels[k.as_str()] == v.as_str())
            .map(|(_, _, b)| b.clone())
            .unwrap_or_else(|| self.scripts.get(image).cloned().unwrap_or_default())
    }

    /// The scripted create failure for pods of a template, if any.
    pub fn create_failure(&self, template: &Value) -> Option<String> {
        let labels = &template["metadata"]["labels"];
        template["spec"]["containers"].as_array().into_iter().flatten().find_map(|c| {
            self.behaviour_for(labels, c["image"].as_str().unwrap_or_default()).create_error
        })
    }

    /// The images whose registry look-up the last syncs asked for; the caller resolves each
    /// ([`pull::resolve`]) and hands the answer to [`Kubelet::pulled`].
    pub fn take_pulls(&mut self) -> Vec<String> {
        std::mem::take(&mut self.to_pull)
    }

    /// The answer of a registry look-up.
    pub fn pulled(&mut self, image: &str, outcome: PullResult, now: Instant) {
        let retries = match self.pulls.get(image) {
            Some(Pull::Failed { retries, .. }) => retries + 1,
            _ => 0,
        };
        let pull = match outcome {
            Ok(id) => Pull::Found(id),
            Err((reason, message)) => Pull::Failed { reason, message, at: now, retries },
        };
        self.pulls.insert(image.to_owned(), pull);
    }

    /// Forgets the containers of pods whose uid is not in `live`.
    pub fn retain_pods(&mut self, live: &BTreeSet<String>) {
        self.containers.retain(|(uid, _), _| live.contains(uid));
    }

    /// The kubelet's work on one scheduled pod at `now`: pulls, starts, crashes and restarts
    /// its containers as scripted and writes the resulting `status` into `pod`.
    pub fn sync(&mut self, pod: &mut Value, now: Instant) -> Synced {
        let uid = text(pod, "/metadata/uid").to_owned();
        let pod_name = text(pod, "/metadata/name").to_owned();
        let ns = text(pod, "/metadata/namespace").to_owned();
        let stamp = rfc3339(now);
        let mut out = Synced::default();
        let mut statuses = Vec::new();
        let mut all_ready = true;
        let mut any_running = false;
        let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        for c in &containers {
            let name = text(c, "/name").to_owned();
            let image = text(c, "/image").to_owned();
            let behaviour = self.behaviour_for(&pod["metadata"]["labels"], &image);
            let previous_status = pod["status"]["containerStatuses"]
                .as_array()
                .and_then(|list| list.iter().find(|s| s["name"] == name.as_str()))
                .cloned();
            // This container's events: only its state changes are reported.
            let mut events: Vec<(&'static str, &'static str, String)> = Vec::new();
            let mut status = json!({"name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0,
                "started": false, "state": {}});
            let pull = self.pull_state(&image, now, &mut events);
            match pull {
                Pull::Pending => {
                    status["state"] = waiting("ContainerCreating", None);
                    all_ready = false;
                }
                Pull::Failed { reason, message, at, retries } => {
                    all_ready = false;
                    if reason == "InvalidImageName" {
                        status["state"] = waiting(reason, Some(message.clone()));
                        events.push(("Warning", "InspectFailed", message));
                    } else if now >= at + Duration::from_secs(1) {
                        status["state"] = waiting(
                            "ImagePullBackOff",
                            Some(format!(
                                "Back-off pulling image \"{image}\": ErrImagePull: {message}"
                            )),
                        );
                        events.push((
                            "Normal",
                            "BackOff",
                            format!("Back-off pulling image \"{image}\""),
                        ));
                        out.next = earliest(out.next, Some(at + backoff(retries)));
                    } else {
                        status["state"] = waiting("ErrImagePull", Some(message.clone()));
                        events.push((
                            "Warning",
                            "Failed",
                            format!("Failed to pull image \"{image}\": {message}"),
                        ));
                        events.push(("Warning", "Failed", "Error: ErrImagePull".to_owned()));
                        out.next = earliest(out.next, Some(at + Duration::from_secs(1)));
                    }
                }
                Pull::Found(image_id) => {
                    status["imageID"] = json!(image_id);
                    if let Some(message) = &behaviour.config_error {
                        status["state"] =
                            waiting("CreateContainerConfigError", Some(message.clone()));
                        events.push(("Warning", "Failed", format!("Error: {message}")));
                        all_ready = false;
                    } else {
                        let key = (uid.clone(), name.clone());
                        let entry = self.containers.entry(key).or_default();
                        let who = (name.as_str(), format!("{pod_name}_{ns}({uid})"));
                        let run = run_container(entry, &behaviour, now, &image, who, &mut events);
                        out.next = earliest(out.next, run.next);
                        let entry = entry.clone();
                        let container_id = format!("containerd://{uid}-{name}");
                        status["restartCount"] = json!(entry.restarts);
                        if let Some((reason, code, started, finished)) = &entry.last_exit {
                            status["lastState"] = json!({"terminated": {"exitCode": code, "reason": reason,
                                "startedAt": rfc3339(*started), "finishedAt": rfc3339(*finished), "containerID": container_id}});
                        }
                        match entry.started {
                            Some(started) => {
                                any_running = true;
                                status["started"] = json!(true);
                                status["containerID"] = json!(container_id);
                                status["state"] =
                                    json!({"running": {"startedAt": rfc3339(started)}});
                                if run.ready {
                                    status["ready"] = json!(true);
                                } else {
                                    all_ready = false;
                                }
                            }
                            None => {
                                all_ready = false;
                                let due = entry.next_start;
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
                events.retain(|(_, reason, _)| {
                    !matches!(*reason, "Failed" | "BackOff" | "InspectFailed")
                });
            }
            out.events.extend(events.into_iter().map(|(kind, reason, message)| Event {
                kind,
                reason,
                message,
                container: name.clone(),
            }));
            statuses.push(status);
        }
        // The kubelet's getPhase for restartPolicy Always: Running once every container has
        // started, whether it runs now or exited and is restarting (a crash loop is Running).
        let started = !statuses.is_empty()
            && statuses.iter().all(|st| {
                !st["state"]["running"].is_null() || !st["lastState"]["terminated"].is_null()
            });
        pod["status"]["phase"] = json!(if started { "Running" } else { "Pending" });
        if pod["status"]["startTime"].is_null() {
            pod["status"]["startTime"] = json!(stamp);
        }
        if any_running && pod["status"]["podIP"].is_null() {
            self.pod_ips += 1;
            let ip = format!("10.244.{}.{}", self.pod_ips / 250 % 250, self.pod_ips % 250 + 2);
            pod["status"]["podIP"] = json!(ip);
            pod["status"]["podIPs"] = json!([{"ip": ip}]);
        }
        pod["status"]["containerStatuses"] = json!(statuses);
        set_pod_condition(
            pod,
            "PodReadyToStartContainers",
            if any_running { "True" } else { "False" },
            None,
            None,
            &stamp,
        );
        set_pod_condition(pod, "Initialized", "True", None, None, &stamp);
        set_readiness(pod, all_ready, &stamp);
        observe_generation(pod);
        out
    }

    /// The pull of `image` as this sync sees it: starts a look-up the first time, and again
    /// when a failed one's back-off has passed.
    fn pull_state(
        &mut self,
        image: &str,
        now: Instant,
        events: &mut Vec<(&'static str, &'static str, String)>,
    ) -> Pull {
        match self.pulls.get(image).cloned() {
            Some(Pull::Failed { at, retries, .. }) if now >= at + backoff(retries) => {
                self.pulls.insert(image.to_owned(), Pull::Pending);
                self.to_pull.push(image.to_owned());
                Pull::Pending
            }
            Some(pull) => pull,
            None => {
                events.push(("Normal", "Pulling", format!("Pulling image \"{image}\"")));
                let pull = match pull::locally(image) {
                    Some(Ok(id)) => Pull::Found(id),
                    Some(Err((reason, message))) => {
                        Pull::Failed { reason, message, at: now, retries: 0 }
                    }
                    None => {
                        self.to_pull.push(image.to_owned());
                        Pull::Pending
                    }
                };
                self.pulls.insert(image.to_owned(), pull.clone());
                pull
            }
        }
    }

    /// A pod being deleted: its containers stop (exit 0 on SIGTERM) and, as the kubelet does
    /// since 1.27, the pod reaches a terminal phase before the kubelet removes it.
    pub fn terminate(&mut self, pod: &mut Value, now: Instant) -> Synced {
        let stamp = rfc3339(now);
        let uid = text(pod, "/metadata/uid").to_owned();
        let mut out = Synced::default();
        let mut statuses =
            pod["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
        for status in &mut statuses {
            let name = text(status, "/name").to_owned();
            if let Some(started) = status["state"]["running"]["startedAt"].as_str() {
                status["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed",
                    "startedAt": started, "finishedAt": stamp,
                    "containerID": format!("containerd://{uid}-{name}")}});
                out.events.push(Event {
                    kind: "Normal",
                    reason: "Killing",
                    message: format!("Stopping container {name}"),
                    container: name.clone(),
                });
            }
            status["ready"] = json!(false);
            status["started"] = json!(false);
            self.containers.remove(&(uid.clone(), name));
        }
        let all_succeeded = statuses.iter().all(|s| s["state"]["terminated"]["exitCode"] == 0);
        pod["status"]["containerStatuses"] = json!(statuses);
        pod["status"]["phase"] = json!(if all_succeeded { "Succeeded" } else { "Failed" });
        set_pod_condition(pod, "PodReadyToStartContainers", "False", None, None, &stamp);
        set_readiness(pod, false, &stamp);
        observe_generation(pod);
        out
    }

    /// The scripted log lines of a container running `image` in `pod`.
    pub fn log_lines(&self, pod: &Value, image: &str) -> Vec<String> {
        self.behaviour_for(&pod["metadata"]["labels"], image).logs
    }
}

/// What running one container's script gave at this sync.
struct Run {
    ready: bool,
    next: Option<Instant>,
}

/// Starts, crashes and restarts one container as its behaviour says; `who` is the
/// container's name and its pod's `name_namespace(uid)`, as the kubelet's events name them.
fn run_container(
    entry: &mut Container,
    behaviour: &Behaviour,
    now: Instant,
    image: &str,
    who: (&str, String),
    events: &mut Vec<(&'static str, &'static str, String)>,
) -> Run {
    let (name, pod) = who;
    let mut run = Run { ready: false, next: None };
    if entry.started.is_none() && entry.next_start.is_none() && entry.last_exit.is_none() {
        entry.next_start = Some(now + behaviour.start_delay);
        events.push(("Normal", "Pulled", format!("Successfully pulled image \"{image}\"")));
    }
    // Start (or restart) when due.
    if entry.started.is_none() && entry.next_start.is_some_and(|t| now >= t) {
        entry.started = entry.next_start.take();
        events.push(("Normal", "Created", format!("Created container: {name}")));
        events.push(("Normal", "Started", format!("Started container {name}")));
    }
    // Crash when due.
    if let (Some(started), Some((after, reason, code))) = (entry.started, &behaviour.crash) {
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
                events.push((
                    "Warning",
                    "BackOff",
                    format!("Back-off restarting failed container {name} in pod {pod}"),
                ));
            }
        } else {
            run.next = earliest(run.next, Some(started + *after));
        }
    }
    if entry.started.is_none() && entry.next_start.is_some_and(|t| now >= t) {
        entry.started = entry.next_start.take();
    }
    match entry.started {
        Some(started) => {
            let ready_at = started + behaviour.ready_delay;
            if !behaviour.never_ready && now >= ready_at {
                run.ready = true;
            } else if !behaviour.never_ready {
                run.next = earliest(run.next, Some(ready_at));
            }
        }
        None => run.next = earliest(run.next, entry.next_start),
    }
    run
}

fn waiting(reason: &str, message: Option<String>) -> Value {
    let mut w = json!({"reason": reason});
    if let Some(m) = message {
        w["message"] = json!(m);
    }
    json!({"waiting": w})
}

/// The generation of the pod this status describes, on the status and on the conditions the
/// kubelet owns, as a 1.37 kubelet writes it (pods have a generation since 1.33).
fn observe_generation(pod: &mut Value) {
    let generation = pod["metadata"]["generation"].clone();
    if generation.is_null() {
        return;
    }
    pod["status"]["observedGeneration"] = generation.clone();
    let owned = ["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"];
    if let Some(conditions) = pod["status"]["conditions"].as_array_mut() {
        for c in conditions.iter_mut().filter(|c| owned.iter().any(|o| c["type"] == *o)) {
            c["observedGeneration"] = generation.clone();
        }
    }
}

/// ContainersReady and Ready, with the message naming the containers that are not.
fn set_readiness(pod: &mut Value, all_ready: bool, stamp: &str) {
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
    set_pod_condition(pod, "ContainersReady", ready, reason, message.as_deref(), stamp);
    set_pod_condition(pod, "Ready", ready, reason, message.as_deref(), stamp);
}

/// Sets a pod condition; its lastTransitionTime moves only when its status flips (what
/// minReadySeconds counts from).
pub fn set_pod_condition(
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
