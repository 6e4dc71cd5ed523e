//! `rollback-on-failure`: the previous images put back, and that rollout followed.

use tokio::time::Instant;

use super::wait::pin;
use crate::cluster::Cluster;
use crate::inputs::Inputs;
use crate::report::Status;
use crate::rollout::{self, Cancel, FailFast};
use crate::targets::{self, Target, select};

/// Puts back the previous images of exactly the containers this run changed, in every target
/// it changed and still owns (a superseded target belongs to its new writer), and waits for
/// that rollout. Each target's status says how it ended.
pub(super) async fn roll_back(
    inputs: &Inputs,
    cluster: &Cluster,
    targets: &mut [Target],
    cancel: &Cancel,
) {
    let started = Instant::now();
    let deadline = started + inputs.timeout;
    let fail_fast = inputs
        .fail_fast
        .then(|| FailFast { max_restarts: i32::try_from(inputs.max_restarts).unwrap_or(i32::MAX) });
    for target in targets.iter_mut() {
        let changed = target.changing();
        if changed.is_empty()
            || target.patched.is_none()
            || target.status == Some(Status::Superseded)
        {
            continue;
        }
        let back: Vec<select::Change> = changed
            .iter()
            .map(|c| select::Change {
                name: c.name.clone(),
                init: c.init,
                previous_image: c.image.clone(),
                image: c.previous_image.clone(),
            })
            .collect();
        let cause = format!(
            "kubeship: rolled back to the previous images after a failed rollout of {}",
            changed[0].image
        );
        crate::log::group(format_args!("Roll back {}", target.display()));
        let before = std::mem::take(&mut target.message);
        let mut rolled = target.clone();
        rolled.changes = back;
        let outcome = match targets::patch(
            &cluster.client,
            &rolled,
            &targets::patch_body(&rolled.changes, &cause),
            false,
            deadline,
        )
        .await
        {
            Ok(answer) => {
                rolled.patched = Some(answer);
                match pin(&rolled) {
                    Some(pin) => rollout::wait(
                        &cluster.client,
                        &pin,
                        fail_fast,
                        started,
                        deadline,
                        cancel.clone(),
                    )
                    .await
                    .map_err(|e| e.to_string()),
                    None => Err("nothing to wait on".to_owned()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let prefix = if before.is_empty() { String::new() } else { format!("{before}; ") };
        match outcome {
            Ok(o) if o.status == Status::Succeeded => {
                target.status = Some(Status::RolledBack);
                target.message = format!("{prefix}rolled back: {}", o.message);
                target.counts = o.counts;
                target.revision = o.revision.or(target.revision.take());
                crate::log::info(format_args!("{} rolled back: {}", target.display(), o.message));
            }
            other => {
                let why = match other {
                    Ok(o) => o.message,
                    Err(e) => e,
                };
                target.status = Some(Status::Failed);
                target.message = format!("{prefix}the rollback failed too: {why}");
                crate::log::error_titled(
                    "kubeship: rollback failed",
                    format_args!("the rollback of {} failed too: {why}", target.display()),
                );
            }
        }
    }
}
