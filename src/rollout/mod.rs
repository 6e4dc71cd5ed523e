//! Stage 4: waiting on the rollout. One object watch per target (kube's `watch_object`, which
//! re-lists after a 410 and reports a deletion seen only as an absence from the new list),
//! pinned to the uid, generation and images of this run's change:
//! - a status counts only once `observedGeneration` reaches the generation to wait for;
//! - another writer's change that keeps this run's images (a scale, an env var) is followed to
//!   the newest generation; one that replaces them ends the wait as `superseded`;
//! - then kubectl's verdicts ([`status`]) and the failures kubectl would sit out: a paused
//!   Deployment, pods that cannot be created, a target deleted or re-created, and, with
//!   fail-fast, what the new pods say ([`pods`]).

pub mod diagnose;
pub mod pods;
pub mod status;

use std::time::Duration;

use futures_util::TryStreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::time::Instant;

use crate::cluster::ApiError;
use crate::cluster::api::{self, Request};
use crate::report::Status;
use crate::workload::{Counts, Kind, Object};
use status::Verdict;

/// Set once the process is told to stop: the signal's number.
pub type Cancel = tokio::sync::watch::Receiver<Option<i32>>;

/// What a wait is pinned to: this run's change of one workload.
#[derive(Debug, Clone)]
pub struct Pin {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// From the patch's answer (or the read, when nothing changed).
    pub uid: String,
    pub generation: i64,
    /// `(container, init, image)` this run wrote: the pods of this rollout run them.
    pub images: Vec<(String, bool, String)>,
    /// The pods' label selector, for fail-fast.
    pub selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
}

impl Pin {
    fn label(&self) -> String {
        format!("{}/{}", self.kind.lower(), self.name)
    }
}

/// How a wait ended, in kubectl's words or ours, with the counts and revision at the end.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub message: String,
    pub counts: Counts,
    pub revision: Option<String>,
}

/// Fail-fast settings (the `max-restarts` input).
#[derive(Debug, Clone, Copy)]
pub struct FailFast {
    pub max_restarts: i32,
}

/// Waits for the rollout of `pin` until `deadline`, failing early on what the new pods say
/// when `fail_fast` is given.
///
/// # Errors
/// The workload may not be watched (401, 403): the verdict cannot be known.
pub async fn wait(
    client: &kube::Client,
    pin: &Pin,
    fail_fast: Option<FailFast>,
    started: Instant,
    deadline: Instant,
    mut cancel: Cancel,
) -> Result<Outcome, ApiError> {
    let (failures, mut failed) = tokio::sync::mpsc::channel(1);
    let pods = fail_fast
        .filter(|_| !pin.images.is_empty())
        .map(|f| tokio::spawn(watch_pods(client.clone(), pin.clone(), f, failures)));
    let api = crate::targets::api(client, pin.kind, &pin.namespace);
    let stream = watcher::watch_object(api, &pin.name).default_backoff();
    futures_util::pin_mut!(stream);
    let label = pin.label();
    let mut follow = Following::new(pin);
    let mut last = Outcome {
        status: Status::TimedOut,
        message: "no status seen yet".into(),
        counts: Counts::default(),
        revision: None,
    };
    let mut warned = false;
    let end = loop {
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, stream.try_next()) => match next {
                Err(_) => {
                    last.message = format!(
                        "{label} did not finish rolling out within {}: {}",
                        humanize(started.elapsed()),
                        last.message
                    );
                    break last;
                }
                Ok(next) => next,
            },
            Some(message) = failed.recv() => break Outcome { status: Status::Failed, message, ..last },
            _ = cancel.wait_for(Option::is_some) => {
                let message = format!("interrupted while waiting for {label}: {}", last.message);
                break Outcome { status: Status::Cancelled, message, ..last };
            }
        };
        let object = match next {
            Ok(Some(Some(object))) => object,
            Ok(Some(None)) => {
                let message = format!("{label} was deleted during the rollout");
                break Outcome { status: Status::Failed, message, ..last };
            }
            Ok(None) => continue,
            Err(e) => {
                if let Some(refused) = refused(&e, &label, pin.kind) {
                    if let Some(pods) = pods {
                        pods.abort();
                    }
                    return Err(refused);
                }
                // The watcher retries with backoff; say so once, then keep waiting.
                if !warned {
                    crate::log::warn(format_args!(
                        "{label}: the watch failed ({}); retrying",
                        crate::untrusted::line(&crate::error::render_chain(&e))
                    ));
                    warned = true;
                }
                continue;
            }
        };
        let object = match Object::from_dynamic(pin.kind, object) {
            Ok(object) => object,
            Err(e) => {
                crate::log::warn(format_args!("{label}: an event that does not decode ({e})"));
                continue;
            }
        };
        last.counts = object.counts();
        last.revision = object.revision().or(last.revision);
        match follow.step(&object) {
            Step::Wait(message) => {
                follow.progress(&object, &message, started);
                last.message = message;
            }
            Step::End(status, message) => break Outcome { status, message, ..last },
        }
    };
    if let Some(pods) = pods {
        pods.abort();
    }
    Ok(end)
}

/// The workload once its controller has seen `pin`'s generation, if that happens before
/// `deadline`: for `wait: false`, whose report wants the revision the patch made.
pub async fn observed(client: &kube::Client, pin: &Pin, deadline: Instant) -> Option<Object> {
    let api = crate::targets::api(client, pin.kind, &pin.namespace);
    let stream = watcher::watch_object(api, &pin.name).default_backoff();
    futures_util::pin_mut!(stream);
    loop {
        let next = tokio::time::timeout_at(deadline, stream.try_next()).await.ok()?;
        match next {
            Ok(Some(Some(object))) => {
                let object = Object::from_dynamic(pin.kind, object).ok()?;
                if object.uid() != pin.uid {
                    return None;
                }
                if object.observed(pin.generation) {
                    return Some(object);
                }
            }
            Ok(Some(None)) | Ok(None) => return None,
            Err(_) => continue,
        }
    }
}

/// The decision for one event of the workload, kept apart from the I/O so it can be tested
/// event by event.
struct Following<'a> {
    pin: &'a Pin,
    /// The generation to wait for: ours, or a later one that kept our images.
    generation: i64,
    /// The last progress line printed.
    progress: String,
}

enum Step {
    Wait(String),
    End(Status, String),
}

impl<'a> Following<'a> {
    fn new(pin: &'a Pin) -> Self {
        Self { pin, generation: pin.generation, progress: String::new() }
    }

    fn step(&mut self, object: &Object) -> Step {
        let label = self.pin.label();
        if object.uid() != self.pin.uid {
            let message = format!(
                "{label} was deleted and re-created during the rollout; this run's change is gone"
            );
            return Step::End(Status::Failed, message);
        }
        for (name, init, image) in &self.pin.images {
            let now = object.image_of(name, *init);
            if now.as_deref() != Some(image.as_str()) {
                let now = now.map(|i| crate::untrusted::short(&i, 200));
                let message = format!(
                    "{label} was changed by another writer during the rollout: generation {} runs {} in container {name}, not this run's {image}",
                    object.generation(),
                    now.as_deref().unwrap_or("no such container")
                );
                return Step::End(Status::Superseded, message);
            }
        }
        if object.generation() > self.generation {
            crate::log::info(format_args!(
                "{label}: another writer changed it (generation {}) and kept this run's images; following that generation",
                object.generation()
            ));
            self.generation = object.generation();
        }
        if let Some(message) = object.stuck(self.generation) {
            return Step::End(Status::Failed, message);
        }
        match object.verdict(self.generation) {
            Verdict::Done(message) => Step::End(Status::Succeeded, message),
            Verdict::Failed(message) => Step::End(Status::Failed, message),
            Verdict::Waiting(message) => Step::Wait(message),
        }
    }

    /// `api: 2/3 updated, 1/3 available, 2 old (12s)` on each change; before the controller has seen
    /// the change, kubectl's own words (the counts are still the old rollout's).
    fn progress(&mut self, object: &Object, message: &str, started: Instant) {
        let line = if object.observed(self.generation) {
            let c = object.counts();
            // A surge briefly runs more pods than wanted; more than all is not news.
            let available = c.available.min(c.desired);
            let old = if c.old > 0 { format!(", {} old", c.old) } else { String::new() };
            format!(
                "{}: {}/{} updated, {available}/{} available{old}",
                self.pin.name, c.updated, c.desired, c.desired
            )
        } else {
            format!("{}: {message}", self.pin.name)
        };
        if line != self.progress {
            crate::log::info(format_args!("{line} ({})", humanize(started.elapsed())));
            self.progress = line;
        }
    }
}

/// A 401 or 403 on the workload's watch: no verdict can come.
fn refused(error: &watcher::Error, label: &str, kind: Kind) -> Option<ApiError> {
    let inner = match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        _ => return None,
    };
    let what = format!("{label} (to follow its rollout)");
    let explained =
        api::explain(Request { verb: "watch", resource: kind.plural(), what: &what }, inner);
    matches!(explained.code, Some(401 | 403)).then_some(explained)
}

/// Watches the workload's pods (by its selector, `matchExpressions` included); those that run
/// this rollout's images are classified, and the first failure is sent.
async fn watch_pods(
    client: kube::Client,
    pin: Pin,
    fail_fast: FailFast,
    failures: tokio::sync::mpsc::Sender<String>,
) {
    let label = pin.label();
    let selector = match kube::core::Selector::try_from(pin.selector.clone()) {
        Ok(selector) => selector,
        Err(e) => {
            crate::log::warn(format_args!(
                "{label}: fail-fast is off: its selector cannot be read ({e})"
            ));
            return;
        }
    };
    let api = Api::<Pod>::namespaced(client, &pin.namespace);
    let stream = watcher(api, watcher::Config::default().labels_from(&selector)).default_backoff();
    futures_util::pin_mut!(stream);
    let mut seen = pods::Seen::new();
    let mut warned = std::collections::BTreeSet::new();
    loop {
        let event = match stream.try_next().await {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                if refused(&e, &label, pin.kind).is_some() {
                    crate::log::warn(format_args!(
                        "{label}: fail-fast and the failure report's pods, events and logs are off: the credentials may not list and watch pods in {}; add pods: list, watch to the Role (README, \"Permissions\")",
                        pin.namespace
                    ));
                    return;
                }
                crate::log::debug(format_args!("{label}: pod watch: {e}"));
                continue;
            }
        };
        let (watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event else { continue };
        if pod.metadata.deletion_timestamp.is_some() || !pods::runs(&pod, &pin.images) {
            continue;
        }
        match pods::classify(&pod, fail_fast.max_restarts, &mut seen) {
            Some(pods::Signal::Fail(message)) => {
                let _ = failures.send(format!("{label}: {message}")).await;
                return;
            }
            Some(pods::Signal::Warn(message)) if warned.insert(message.clone()) => {
                crate::log::warn(message);
            }
            Some(pods::Signal::Warn(_)) | None => {}
        }
    }
}

/// `12s`, `2m5s`.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(uid: &str, generation: i64, image: &str, status: serde_json::Value) -> Object {
        let json = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "app", "uid": uid, "generation": generation},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "app"}},
                "template": {"spec": {"containers": [{"name": "app", "image": image}, {"name": "side", "image": "envoy:1"}]}}},
            "status": status});
        Object::from_dynamic(Kind::Deployment, serde_json::from_value(json).unwrap()).unwrap()
    }

    fn pin() -> Pin {
        Pin {
            kind: Kind::Deployment,
            namespace: "prod".into(),
            name: "app".into(),
            uid: "u1".into(),
            generation: 2,
            images: vec![("app".into(), false, "r/app@sha256:v2".into())],
            selector: Default::default(),
        }
    }

    fn done() -> serde_json::Value {
        serde_json::json!({"observedGeneration": 3, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4})
    }

    /// Another writer's image replaces ours: superseded, naming its generation and image,
    /// even when its rollout completes.
    #[test]
    fn a_new_image_supersedes() {
        let pin = pin();
        let mut f = Following::new(&pin);
        let Step::End(status, message) = f.step(&deployment("u1", 3, "r/app@sha256:v3", done()))
        else {
            panic!("not ended")
        };
        assert_eq!(status, Status::Superseded);
        assert!(
            message.contains("generation 3") && message.contains("r/app@sha256:v3"),
            "{message}"
        );
    }

    /// A scale that keeps our images is followed to its generation and can succeed.
    #[test]
    fn a_change_that_keeps_our_images_is_followed() {
        let pin = pin();
        let mut f = Following::new(&pin);
        let half = serde_json::json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4});
        // Generation 3 exists but is not observed yet: our generation 2 being complete is not enough.
        assert!(matches!(f.step(&deployment("u1", 3, "r/app@sha256:v2", half)), Step::Wait(_)));
        assert!(matches!(
            f.step(&deployment("u1", 3, "r/app@sha256:v2", done())),
            Step::End(Status::Succeeded, _)
        ));
    }

    /// A re-created object is a failure, whatever its status says.
    #[test]
    fn a_new_uid_fails() {
        let pin = pin();
        let mut f = Following::new(&pin);
        assert!(matches!(
            f.step(&deployment("u2", 1, "r/app@sha256:v2", done())),
            Step::End(Status::Failed, m) if m.contains("re-created")
        ));
    }

    /// Before the controller sees the change, the waiting line is kubectl's, not stale counts.
    #[test]
    fn unobserved_change_waits_with_kubectls_words() {
        let pin = pin();
        let mut f = Following::new(&pin);
        let stale = serde_json::json!({"observedGeneration": 1, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4});
        let Step::Wait(message) = f.step(&deployment("u1", 2, "r/app@sha256:v2", stale)) else {
            panic!("ended")
        };
        assert_eq!(message, "Waiting for deployment spec update to be observed...");
    }
}
