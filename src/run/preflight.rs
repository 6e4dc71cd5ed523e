//! Before the first write: what the dry runs of the patches answered, what the credentials may
//! do, and a dry run's report.

use tokio::time::Instant;

use crate::Error;
use crate::cluster::{self, Cluster};
use crate::report::Status;
use crate::targets::{self, Target};

/// The preflight's answers; if any target was refused, each target's own status says what
/// happened to it (refused, or not patched because another was) and the run stops.
pub(super) fn refuse_all_or_none(
    targets: &mut [Target],
    answers: Vec<Result<Option<crate::workload::Object>, targets::Error>>,
) -> Result<Vec<Option<crate::workload::Object>>, Error> {
    if answers.iter().all(Result::is_ok) {
        return Ok(answers.into_iter().flatten().collect());
    }
    let mut refusals = Vec::new();
    for (target, answer) in targets.iter_mut().zip(answers) {
        if let Err(e) = answer {
            target.status = Some(Status::Failed);
            target.message = e.to_string();
            refusals.push(format!("{}: {e}", target.display()));
        }
    }
    let refused: Vec<String> =
        targets.iter().filter(|t| t.status.is_some()).map(Target::display).collect();
    for target in targets.iter_mut().filter(|t| t.status.is_none()) {
        target.status = Some(Status::Skipped);
        target.message = format!("not patched: the dry run of {} was refused", refused.join(", "));
    }
    Err(targets::Error::Refused { refusals }.into())
}

/// Whether the credentials may follow the rollouts (else an error: nothing is written) and
/// see the pods (else a warning; the result says whether fail-fast can work).
pub(super) async fn check_access(
    cluster: &Cluster,
    targets: &[Target],
    deadline: Instant,
    fail_fast: bool,
) -> Result<bool, Error> {
    let mut kinds: Vec<crate::workload::Kind> = targets.iter().map(|t| t.kind).collect();
    kinds.sort();
    kinds.dedup();
    let follow: Vec<cluster::access::Rule> = kinds
        .iter()
        .flat_map(|k| [("list", "apps", k.plural(), ""), ("watch", "apps", k.plural(), "")])
        .collect();
    let (client, namespace) = (&cluster.client, cluster.namespace.as_str());
    let (unfollowable, unreported) = tokio::join!(
        cluster::access::missing(client, namespace, &follow, deadline),
        cluster::access::missing(client, namespace, &cluster::access::REPORT, deadline),
    );
    if !unfollowable.is_empty() {
        return Err(targets::Error::Unfollowable {
            missing: unfollowable,
            namespace: namespace.to_owned(),
        }
        .into());
    }
    if let Some(warning) = cluster::access::warning(&unreported, fail_fast, namespace) {
        crate::log::warn(warning);
    }
    Ok(!unreported.iter().any(|m| m.starts_with("pods: ")))
}

pub(super) fn report_dry_run(target: &mut Target, answer: Option<crate::workload::Object>) {
    target.status = Some(Status::DryRun);
    let changing = target.changing();
    target.message = if changing.is_empty() {
        format!("{} already runs this image", target.display())
    } else {
        super::patch::say_changes(target, &changing, "(dry run) ");
        // The server accepted the patch; the revision it would make is not known yet.
        target.revision = None;
        format!(
            "the API server accepted the patch of {} (dry run); nothing was changed",
            target.display()
        )
    };
    if let Some(answer) = answer {
        target.counts.desired = answer.counts().desired;
    }
}
