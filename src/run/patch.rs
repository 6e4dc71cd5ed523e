//! The writes: one strategic merge patch per target that changes, and for `wait: false` the
//! controller's first look at them.

use tokio::time::Instant;

use super::Facts;
use super::rollback::roll_back;
use super::wait::pin;
use crate::Error;
use crate::cluster::Cluster;
use crate::inputs::Inputs;
use crate::report::Status;
use crate::rollout::{self, Cancel};
use crate::targets::{self, Target};

/// One strategic merge patch per target that changes. A patch is never cut in half: an
/// interrupt stops the run between targets. When a real patch fails after others landed, those
/// are put back under `rollback-on-failure`, else reported as applied, not waited on.
pub(super) async fn patch_all(
    inputs: &Inputs,
    cluster: &Cluster,
    facts: &mut Facts,
    cause: &str,
    deadline: Instant,
    cancel: &Cancel,
) -> Result<(), Error> {
    crate::log::group("Patch");
    let pinned = facts.resolved.as_ref().map(|r| r.pinned.clone()).unwrap_or_default();
    for i in 0..facts.targets.len() {
        if cancel.borrow().is_some() {
            return Ok(());
        }
        let target = &mut facts.targets[i];
        let changing = target.changing();
        if changing.is_empty() {
            crate::log::info(format_args!("{} already runs {pinned}", target.display()));
            continue;
        }
        let body = targets::patch_body(&changing, cause);
        match targets::patch(&cluster.client, target, &body, false, deadline).await {
            Ok(answer) => {
                say_changes(target, &changing, "");
                target.counts = answer.counts();
                target.patched = Some(answer);
            }
            Err(e) => {
                target.status = Some(Status::Failed);
                target.message = e.to_string();
                let failed = target.display();
                let landed = facts.targets.iter_mut().filter(|t| t.patched.is_some());
                if inputs.rollback_on_failure {
                    let mut landed: Vec<Target> = landed.map(|t| t.clone()).collect();
                    roll_back(inputs, cluster, &mut landed, cancel).await;
                    for back in landed {
                        if let Some(t) = facts
                            .targets
                            .iter_mut()
                            .find(|t| t.name == back.name && t.kind == back.kind)
                        {
                            *t = back;
                        }
                    }
                } else {
                    for t in landed {
                        t.status = Some(Status::Applied);
                        t.message = format!(
                            "patched, and left so: the patch of {failed} failed, so kubeship did not wait (set rollback-on-failure to put such patches back)"
                        );
                    }
                }
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// `wait=false`: the patch stands; the controller's first look at it, when it comes within a
/// few seconds, gives the revision and counts to report.
pub(super) async fn settle_unwatched(
    client: &kube::Client,
    target: &mut Target,
    deadline: Instant,
) {
    target.status = Some(Status::Applied);
    target.message = format!("{} patched; not waited on (wait: false)", target.display());
    let Some(pin) = pin(target) else { return };
    let soon = deadline.min(Instant::now() + std::time::Duration::from_secs(5));
    if let Some(object) = rollout::observed(client, &pin, soon).await {
        target.counts = object.counts();
        target.revision = object.revision();
    } else if !target.changing().is_empty() {
        target.revision = None;
    }
}

/// One line per changed container: `deployment/api: app old → new`, after `prefix`.
pub(super) fn say_changes(target: &Target, changing: &[targets::select::Change], prefix: &str) {
    for change in changing {
        crate::log::info(format_args!(
            "{prefix}{}: {} {} → {}",
            target.display(),
            change.name,
            crate::untrusted::short(&change.previous_image, 200),
            change.image
        ));
    }
}
