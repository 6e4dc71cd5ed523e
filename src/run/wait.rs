//! The wait: every target followed together, then what the new pods run or why they failed.

use tokio::time::Instant;

use super::Facts;
use crate::Error;
use crate::cluster::Cluster;
use crate::report::Status;
use crate::rollout::{self, Cancel, FailFast, Pin};
use crate::targets::{self, Target};

/// What a wait on `target` is pinned to: its patch's answer, or the object as read when it
/// already ran this run's images.
pub(super) fn pin(target: &Target) -> Option<Pin> {
    let object = target.patched.as_ref().unwrap_or(&target.read);
    let images = target.changes.iter().map(|c| (c.name.clone(), c.init, c.image.clone())).collect();
    Some(Pin {
        kind: target.kind,
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        uid: object.uid().to_owned(),
        generation: object.generation(),
        images,
        selector: object.selector().clone(),
    })
}

/// Every target waited on together; then what the new pods run, or why they failed.
pub(super) async fn wait_all(
    cluster: &Cluster,
    facts: &mut Facts,
    fail_fast: Option<FailFast>,
    deadline: Instant,
    timeout: std::time::Duration,
    cancel: &Cancel,
) -> Result<(), Error> {
    crate::log::group("Wait for the rollout");
    // The deadline counts from the start of the cluster stages; so do the progress lines.
    let started = deadline.checked_sub(timeout).unwrap_or_else(Instant::now);
    let client = &cluster.client;
    let waits = facts.targets.iter().map(|target| async move {
        let object = target.patched.as_ref().unwrap_or(&target.read);
        if object.on_delete() {
            crate::log::warn(format_args!(
                "{} uses the OnDelete update strategy: its pods change only when deleted, so kubeship does not wait",
                target.display()
            ));
            return None;
        }
        let pin = pin(target)?;
        Some((rollout::wait(client, &pin, fail_fast, started, deadline, cancel.clone()).await, pin))
    });
    let ends = futures_util::future::join_all(waits).await;
    let mut refused = None;
    for (target, end) in facts.targets.iter_mut().zip(ends) {
        let Some((end, pin)) = end else {
            target.status = Some(Status::Applied);
            target.message = format!(
                "{} patched; it uses OnDelete, so its pods change when deleted",
                target.display()
            );
            continue;
        };
        let outcome = match end {
            Ok(outcome) => outcome,
            Err(e) => {
                target.status = Some(Status::Failed);
                target.message = e.to_string();
                refused.get_or_insert(e);
                continue;
            }
        };
        target.status = Some(outcome.status);
        target.message = outcome.message;
        target.counts = outcome.counts;
        target.revision = outcome.revision.or(target.revision.take());
        match outcome.status {
            Status::Succeeded => {
                crate::log::info(format_args!("{}: {}", target.display(), target.message));
                if !target.changing().is_empty() {
                    target.image_ids = rollout::diagnose::image_ids(client, &pin).await;
                    report_image_ids(target, facts.resolved.as_ref().map(|r| r.digest.as_str()));
                }
            }
            Status::Cancelled => {}
            status => {
                let title = match status {
                    Status::TimedOut => "kubeship: rollout timed out",
                    Status::Superseded => "kubeship: rollout superseded",
                    _ => "kubeship: rollout failed",
                };
                crate::log::error_titled(title, &target.message);
                target.diagnostics = rollout::diagnose::failure(client, &pin).await;
                if !target.diagnostics.is_empty() {
                    crate::log::untrusted(
                        format_args!("{}: what the cluster says", target.display()),
                        &target.diagnostics,
                    );
                }
            }
        }
    }
    match refused {
        Some(e) => Err(targets::Error::from(e).into()),
        None => Ok(()),
    }
}

/// Says what the new pods run, and warns when it is not the pinned digest (a mutating
/// admission webhook or a registry mirror can swap images).
pub(super) fn report_image_ids(target: &Target, digest: Option<&str>) {
    if target.image_ids.is_empty() {
        return;
    }
    crate::log::info(format_args!(
        "{}: the updated pods run {}",
        target.display(),
        target.image_ids.join(", ")
    ));
    if let Some(digest) = digest {
        for id in target.image_ids.iter().filter(|id| !id.ends_with(digest)) {
            crate::log::warn(format_args!(
                "{}: an updated pod runs {id}, not the pinned {digest}",
                target.display()
            ));
        }
    }
}
