//! Stage 4: waiting on the rollout. One watch per target (kube's `watcher`, which re-lists
//! after 410s and resumes dropped streams, with backoff), pinned to the uid and generation of
//! our patch; kubectl's verdicts from `status`; and the failures kubectl does not see: a
//! paused Deployment, pods that cannot be created, a target deleted or re-created.

pub mod diagnose;
pub mod pods;
pub mod status;

use std::fmt::Debug;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::inputs::Kind;
use crate::targets::{Patched, Workload};
use status::Verdict;

/// How a target's rollout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Succeeded,
    Failed,
    TimedOut,
    /// The run was interrupted (SIGINT, SIGTERM).
    Cancelled,
}

/// Set once the process is told to stop: the signal's number.
pub type Cancel = tokio::sync::watch::Receiver<Option<i32>>;

/// The end, in kubectl's words or ours, and the counts at the end.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub end: End,
    pub message: String,
    pub counts: Counts,
    pub revision: Option<String>,
}

/// Replica counts for the progress line and the outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
}

/// What the wait needs of each workload kind.
trait Tracked:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    fn verdict(&self, generation: i64) -> Verdict;
    fn counts(&self) -> Counts;
    /// A failure kubectl would sit out.
    fn stuck(&self, generation: i64) -> Option<String>;
}

impl Tracked for Deployment {
    fn verdict(&self, generation: i64) -> Verdict {
        status::deployment(self, generation)
    }
    fn counts(&self) -> Counts {
        let s = self.status.clone().unwrap_or_default();
        Counts {
            desired: self.spec.replicas.unwrap_or(1),
            updated: s.updated_replicas.unwrap_or(0),
            ready: s.ready_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
        }
    }
    fn stuck(&self, generation: i64) -> Option<String> {
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if self.spec.paused == Some(true) {
            return Some(format!(
                "deployment \"{name}\" is paused, so the new pods will not roll out: resume it \
                 (kubectl rollout resume deployment/{name}) and run again"
            ));
        }
        let status = self.status.as_ref()?;
        if status.observed_generation.unwrap_or(0) < generation {
            return None;
        }
        let failure = status.conditions.iter().flatten().find(|c| {
            c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
        })?;
        Some(format!(
            "deployment \"{name}\" cannot create its pods ({}): {}",
            failure.reason.as_deref().unwrap_or("ReplicaFailure"),
            failure.message.as_deref().unwrap_or_default()
        ))
    }
}

impl Tracked for StatefulSet {
    fn verdict(&self, generation: i64) -> Verdict {
        status::statefulset(self, generation)
    }
    fn counts(&self) -> Counts {
        let s = self.status.clone().unwrap_or_default();
        Counts {
            desired: self.spec.replicas.unwrap_or(1),
            updated: s.updated_replicas.unwrap_or(0),
            ready: s.ready_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
        }
    }
    fn stuck(&self, _: i64) -> Option<String> {
        None
    }
}

impl Tracked for DaemonSet {
    fn verdict(&self, generation: i64) -> Verdict {
        status::daemonset(self, generation)
    }
    fn counts(&self) -> Counts {
        let s = self.status.clone().unwrap_or_default();
        Counts {
            desired: s.desired_number_scheduled,
            updated: s.updated_number_scheduled.unwrap_or(0),
            ready: s.number_ready,
            available: s.number_available.unwrap_or(0),
        }
    }
    fn stuck(&self, _: i64) -> Option<String> {
        None
    }
}

/// What the wait watches for besides the workload.
#[derive(Debug, Clone)]
pub struct FailFast {
    /// The containers this run changed, `(name, image)`: the pods of this rollout run them.
    pub changed: Vec<(String, String)>,
    pub max_restarts: i32,
}

/// Waits for `workload`'s rollout of `patched` until `deadline`, failing early on what the
/// new pods say when `fail_fast` is given.
pub async fn wait(
    client: &kube::Client,
    workload: &Workload,
    patched: &Patched,
    fail_fast: Option<FailFast>,
    started: Instant,
    deadline: Instant,
    cancel: Cancel,
) -> Outcome {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let pods = fail_fast
        .filter(|f| !f.changed.is_empty())
        .map(|f| tokio::spawn(watch_pods(client.clone(), workload.clone(), f, tx)));
    let outcome = match workload.kind {
        Kind::Deployment => {
            watch::<Deployment>(client, workload, patched, started, deadline, rx, cancel).await
        }
        Kind::StatefulSet => {
            watch::<StatefulSet>(client, workload, patched, started, deadline, rx, cancel).await
        }
        Kind::DaemonSet => {
            watch::<DaemonSet>(client, workload, patched, started, deadline, rx, cancel).await
        }
    };
    if let Some(pods) = pods {
        pods.abort();
    }
    outcome
}

/// Watches the workload's pods; those that run this rollout's images are classified, and the
/// first failure is sent.
async fn watch_pods(
    client: kube::Client,
    workload: Workload,
    fail_fast: FailFast,
    failures: tokio::sync::mpsc::Sender<String>,
) {
    let api = Api::<Pod>::namespaced(client, &workload.namespace);
    let mut config = watcher::Config::default();
    if let Some(selector) = &workload.selector {
        config = config.labels(selector);
    }
    let stream = watcher(api, config).default_backoff();
    futures_util::pin_mut!(stream);
    let mut seen = pods::Seen::new();
    let mut warned = std::collections::BTreeSet::new();
    loop {
        let event = match stream.try_next().await {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                crate::log::debug(format_args!("{}: pod watch: {e}", workload.display()));
                continue;
            }
        };
        let (watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event else { continue };
        let images: std::collections::BTreeMap<String, String> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .collect();
        let ours = fail_fast.changed.iter().all(|(name, image)| images.get(name) == Some(image));
        if !ours {
            continue;
        }
        match pods::classify(&pod, fail_fast.max_restarts, &mut seen) {
            Some(pods::Signal::Fail(message)) => {
                let _ = failures.send(format!("{}: {message}", workload.display())).await;
                return;
            }
            Some(pods::Signal::Warn(message)) if warned.insert(message.clone()) => {
                crate::log::warn(message);
            }
            Some(pods::Signal::Warn(_)) => {}
            None => {}
        }
    }
}

fn revision_of<K: kube::Resource>(object: &K) -> Option<String> {
    object
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision").cloned())
}

async fn watch<K: Tracked>(
    client: &kube::Client,
    workload: &Workload,
    patched: &Patched,
    started: Instant,
    deadline: Instant,
    mut pod_failures: tokio::sync::mpsc::Receiver<String>,
    mut cancel: Cancel,
) -> Outcome {
    let api = Api::<K>::namespaced(client.clone(), &workload.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", workload.name));
    let stream = watcher(api, config).default_backoff();
    futures_util::pin_mut!(stream);
    let label = workload.display();
    let mut last = Outcome {
        end: End::TimedOut,
        message: "no status seen yet".into(),
        counts: Counts::default(),
        revision: patched.revision.clone(),
    };
    let mut progress = String::new();
    let mut seen = false;
    let mut warned = false;
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, stream.try_next()) => match next {
                Err(_) => {
                    let waited = humanize(started.elapsed());
                    last.message =
                        format!("{label} did not finish rolling out within {waited}: {}", last.message);
                    return last;
                }
                Ok(next) => next,
            },
            Some(message) = pod_failures.recv() => {
                return Outcome { end: End::Failed, message, ..last };
            }
            _ = cancel.wait_for(Option::is_some) => {
                let message = format!("interrupted while waiting for {label}: {}", last.message);
                return Outcome { end: End::Cancelled, message, ..last };
            }
        };
        let object = match next {
            Ok(Some(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => o,
            Ok(Some(watcher::Event::Delete(o)))
                if o.meta().uid.as_deref() == Some(patched.uid.as_str()) =>
            {
                return Outcome {
                    end: End::Failed,
                    message: format!("{label} was deleted during the rollout"),
                    ..last
                };
            }
            Ok(Some(watcher::Event::InitDone)) if !seen => {
                return Outcome {
                    end: End::Failed,
                    message: format!("{label} was deleted during the rollout"),
                    ..last
                };
            }
            Ok(Some(_)) => continue,
            Ok(None) => continue,
            Err(e) => {
                // The watcher retries with backoff; say so once, then keep waiting.
                if !warned {
                    crate::log::warn(format_args!(
                        "{label}: the watch failed ({}); retrying",
                        crate::error::render_chain(&e)
                    ));
                    warned = true;
                }
                continue;
            }
        };
        seen = true;
        if object.meta().uid.as_deref() != Some(patched.uid.as_str()) {
            return Outcome {
                end: End::Failed,
                message: format!(
                    "{label} was deleted and re-created during the rollout; this run's change is gone"
                ),
                ..last
            };
        }
        last.counts = object.counts();
        last.revision = revision_of(&object).or(last.revision);
        if let Some(message) = object.stuck(patched.generation) {
            return Outcome { end: End::Failed, message, ..last };
        }
        match object.verdict(patched.generation) {
            Verdict::Done(message) => return Outcome { end: End::Succeeded, message, ..last },
            Verdict::Failed(message) => return Outcome { end: End::Failed, message, ..last },
            Verdict::Waiting(message) => {
                let c = last.counts;
                let line = format!(
                    "{}: {}/{} updated, {}/{} available",
                    workload.name, c.updated, c.desired, c.available, c.desired
                );
                if line != progress {
                    crate::log::info(format_args!("{line} ({})", humanize(started.elapsed())));
                    progress = line;
                }
                last.message = message;
            }
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
