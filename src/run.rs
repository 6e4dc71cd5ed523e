//! The pipeline, the one place where the stages meet:
//! inputs → registry → cluster → targets (read, choose, patch) → rollout → report.
//! Every target is read and its containers chosen before the first write, so an input
//! mistake changes nothing; all targets are patched first, then waited on together.

use tokio::time::Instant;

use crate::Error;
use crate::inputs::Inputs;
use crate::registry::{self, Credentials};
use crate::report::{ContainerReport, Report, TargetReport};
use crate::rollout::{self, Cancel, End};
use crate::targets::{self, select};

/// The report, always, and the error that ended the run, if one did.
pub struct Run {
    pub report: Report,
    pub error: Option<Error>,
    /// The signal that interrupted the run.
    pub signal: Option<i32>,
}

impl Run {
    /// The contract's exit code.
    pub fn exit_code(&self) -> u8 {
        if let Some(signal) = self.signal {
            // The shell's convention: 128 + the signal (130 for SIGINT, 143 for SIGTERM).
            return u8::try_from(128 + signal).unwrap_or(1);
        }
        match (&self.error, self.report.status) {
            (Some(e), _) => e.exit_code(),
            (None, "failed" | "timed-out" | "rolled-back") => 1,
            (None, _) => 0,
        }
    }
}

/// Runs every stage; `cancel` stops it between targets and stops every wait at once.
pub async fn run(inputs: &Inputs, cancel: Cancel) -> Run {
    let started = Instant::now();
    let mut report = Report { status: "failed", ..Report::default() };
    let error = pipeline(inputs, &mut report, started, cancel.clone()).await.err();
    let signal = *cancel.borrow();
    if signal.is_some() {
        report.status = "cancelled";
        crate::log::error("interrupted: reporting the state as it is");
    }
    report.duration_seconds = started.elapsed().as_secs_f64();
    Run { report, error, signal }
}

async fn pipeline(
    inputs: &Inputs,
    report: &mut Report,
    started: Instant,
    cancel: Cancel,
) -> Result<(), Error> {
    // Before the first write there is nothing to finish: an interrupt simply ends the run.
    let mut stop = cancel.clone();
    let prepared = tokio::select! {
        prepared = prepare(inputs, report) => prepared?,
        _ = stop.wait_for(Option::is_some) => return Ok(()),
    };
    let Prepared { resolved, cluster, plans } = prepared;

    // Patch: one strategic merge patch per target that changes.
    let cause = change_cause(inputs, &resolved.pinned);
    crate::log::group(if inputs.dry_run { "Patch (dry run)" } else { "Patch" });
    let mut waits = Vec::new();
    for (workload, changes) in &plans {
        // A patch is never cut in half; an interrupt stops the run between targets, and the
        // report names exactly the ones patched.
        if cancel.borrow().is_some() {
            return Ok(());
        }
        let changing: Vec<select::Change> =
            changes.iter().filter(|c| c.changes()).cloned().collect();
        let patched = if changing.is_empty() {
            crate::log::info(format_args!(
                "{} already runs {}",
                workload.display(),
                resolved.pinned
            ));
            workload.current.clone()
        } else {
            let body = targets::patch_body(&changing, &cause);
            let patched = targets::apply(&cluster.client, workload, &body, inputs.dry_run).await?;
            for change in &changing {
                crate::log::info(format_args!(
                    "{}{}: {} {} → {}",
                    if inputs.dry_run { "(dry run) " } else { "" },
                    workload.display(),
                    change.name,
                    change.previous_image,
                    change.image
                ));
            }
            patched
        };
        report.changed |= !changing.is_empty();
        report.targets.push(TargetReport {
            kind: workload.kind.as_str(),
            namespace: workload.namespace.clone(),
            name: workload.name.clone(),
            status: "applied",
            changed: !changing.is_empty(),
            revision: patched.revision.clone(),
            replicas: 0,
            ready_replicas: 0,
            message: String::new(),
            containers: changing
                .iter()
                .map(|c| ContainerReport {
                    name: c.name.clone(),
                    previous_image: c.previous_image.clone(),
                    image: c.image.clone(),
                })
                .collect(),
            image_ids: Vec::new(),
            diagnostics: Vec::new(),
        });
        waits.push((workload.clone(), patched, changing));
    }
    if inputs.dry_run {
        report.status = "dry-run";
        return Ok(());
    }
    if !inputs.wait {
        report.status = "applied";
        return Ok(());
    }

    // Wait on every target together.
    crate::log::group("Wait for the rollout");
    let deadline = started + inputs.timeout;
    let client = &cluster.client;
    let outcomes = futures_util::future::join_all(waits.iter().zip(&report.targets).map(|((workload, patched, _), target)| {
        let cancel = cancel.clone();
        async move {
        if workload.on_delete {
            crate::log::warn(format_args!(
                "{} uses the OnDelete update strategy: its pods change only when deleted, so kubeship does not wait",
                workload.display()
            ));
            return None;
        }
        let fail_fast = inputs.fail_fast.then(|| rollout::FailFast {
            changed: target.containers.iter().map(|c| (c.name.clone(), c.image.clone())).collect(),
            max_restarts: i32::try_from(inputs.max_restarts).unwrap_or(i32::MAX),
        });
        Some(rollout::wait(client, workload, patched, fail_fast, started, deadline, cancel).await)
        }
    }))
    .await;
    let mut statuses = Vec::new();
    for ((target, outcome), (workload, _, changed)) in
        report.targets.iter_mut().zip(outcomes).zip(&waits)
    {
        let Some(outcome) = outcome else {
            statuses.push("applied");
            continue;
        };
        target.status = match outcome.end {
            End::Succeeded => "succeeded",
            End::Failed => "failed",
            End::TimedOut => "timed-out",
            End::Cancelled => "cancelled",
        };
        target.message = outcome.message.clone();
        target.replicas = outcome.counts.desired;
        target.ready_replicas = outcome.counts.ready;
        target.revision = outcome.revision.clone();
        let ours: Vec<(String, String)> =
            changed.iter().map(|c| (c.name.clone(), c.image.clone())).collect();
        match outcome.end {
            End::Succeeded => {
                crate::log::info(&outcome.message);
                if !ours.is_empty() {
                    target.image_ids = rollout::diagnose::image_ids(client, workload, &ours).await;
                    report_image_ids(workload, &target.image_ids, report.digest.as_deref());
                }
            }
            End::Cancelled => {}
            _ => {
                let title = if outcome.end == End::TimedOut {
                    "kubeship: rollout timed out"
                } else {
                    "kubeship: rollout failed"
                };
                crate::log::error_titled(title, &outcome.message);
                target.diagnostics = rollout::diagnose::failure(client, workload, &ours).await;
                for line in &target.diagnostics {
                    crate::log::info(format_args!("  {line}"));
                }
            }
        }
        statuses.push(target.status);
    }
    report.status = if statuses.contains(&"failed") {
        "failed"
    } else if statuses.contains(&"timed-out") {
        "timed-out"
    } else if statuses.iter().all(|s| *s == "applied") {
        "applied"
    } else {
        "succeeded"
    };
    if matches!(report.status, "failed" | "timed-out")
        && inputs.rollback_on_failure
        && cancel.borrow().is_none()
    {
        roll_back(inputs, client, &waits, report, cancel).await?;
    }
    Ok(())
}

/// Puts back the previous images of exactly the containers this run changed, in every target
/// it changed, and waits for that rollout. The report says `rolled-back`, or both failures.
async fn roll_back(
    inputs: &Inputs,
    client: &kube::Client,
    waits: &[(targets::Workload, targets::Patched, Vec<select::Change>)],
    report: &mut Report,
    cancel: Cancel,
) -> Result<(), Error> {
    let started = Instant::now();
    let deadline = started + inputs.timeout;
    let mut all_back = true;
    for ((workload, _, changed), target) in waits.iter().zip(report.targets.iter_mut()) {
        if changed.is_empty() {
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
            back[0].previous_image
        );
        crate::log::group(format_args!("Roll back {}", workload.display()));
        let patched =
            targets::apply(client, workload, &targets::patch_body(&back, &cause), false).await?;
        let fail_fast = inputs.fail_fast.then(|| rollout::FailFast {
            changed: back.iter().map(|c| (c.name.clone(), c.image.clone())).collect(),
            max_restarts: i32::try_from(inputs.max_restarts).unwrap_or(i32::MAX),
        });
        let outcome =
            rollout::wait(client, workload, &patched, fail_fast, started, deadline, cancel.clone())
                .await;
        target.revision = outcome.revision.clone().or(target.revision.take());
        target.ready_replicas = outcome.counts.ready;
        if outcome.end == End::Succeeded {
            target.status = "rolled-back";
            target.message = format!("{}; rolled back: {}", target.message, outcome.message);
            crate::log::info(format_args!(
                "{} rolled back: {}",
                workload.display(),
                outcome.message
            ));
        } else {
            all_back = false;
            target.status = "failed";
            target.message =
                format!("{}; the rollback failed too: {}", target.message, outcome.message);
            crate::log::error_titled(
                "kubeship: rollback failed",
                format_args!(
                    "the rollback of {} failed too: {}",
                    workload.display(),
                    outcome.message
                ),
            );
        }
    }
    report.status = if all_back { "rolled-back" } else { "failed" };
    Ok(())
}

/// Says what the new pods run, and warns when it is not the pinned digest (a mutating
/// admission webhook or a registry mirror can swap images).
fn report_image_ids(workload: &targets::Workload, ids: &[String], digest: Option<&str>) {
    if ids.is_empty() {
        return;
    }
    crate::log::info(format_args!("{} pods run {}", workload.display(), ids.join(", ")));
    if let Some(digest) = digest {
        for id in ids.iter().filter(|id| !id.ends_with(digest)) {
            crate::log::warn(format_args!(
                "{}: a pod runs {id}, not the pinned {digest}",
                workload.display()
            ));
        }
    }
}

/// What the run knows before its first write.
struct Prepared {
    resolved: registry::Resolved,
    cluster: crate::cluster::Cluster,
    plans: Vec<(targets::Workload, Vec<select::Change>)>,
}

/// The cluster's configuration, the digest, every target read and every container chosen:
/// no writes.
async fn prepare(inputs: &Inputs, report: &mut Report) -> Result<Prepared, Error> {
    // The cluster's configuration first: it sends nothing, and a kubeconfig mistake should not
    // wait out a registry's tag-timeout before it is reported.
    let cluster = crate::cluster::connect(&inputs.cluster).await?;
    for warning in &cluster.warnings {
        crate::log::warn(warning);
    }
    crate::log::group(format_args!("Resolve {}", inputs.image));
    let credentials = credentials(inputs).await?;
    if let Some(secret) = credentials.secret_value() {
        crate::log::mask(secret);
    }
    crate::log::debug(format_args!("registry credentials: {}", credentials.source));
    let options = registry::Options {
        insecure: inputs.registry.insecure,
        extra_ca: inputs.registry.extra_ca.clone(),
        tag_timeout: inputs.registry.tag_timeout,
    };
    let resolved =
        registry::resolve(&inputs.image, inputs.digest.as_deref(), credentials, &options).await?;
    crate::log::info(format_args!("{} is {}", inputs.image, resolved.digest));
    report.digest = Some(resolved.digest.clone());
    report.image = Some(resolved.pinned.clone());

    crate::log::group("Read the targets");
    let mut plans = Vec::new();
    for target in &inputs.targets {
        let workload = targets::read(&cluster.client, &cluster.namespace, target).await?;
        let (changes, warning) = select::select(
            &workload.display(),
            &workload.containers,
            &inputs.containers,
            &inputs.image,
            &resolved.pinned,
        )
        .map_err(targets::Error::from)?;
        if let Some(warning) = warning {
            crate::log::warn(warning);
        }
        plans.push((workload, changes));
    }
    Ok(Prepared { resolved, cluster, plans })
}

/// The `kubernetes.io/change-cause`: the pinned image, and the GitHub run that pinned it.
fn change_cause(inputs: &Inputs, pinned: &str) -> String {
    match &inputs.github {
        Some((repository, sha, url)) => {
            let short: String = sha.chars().take(12).collect();
            format!("kubeship: {pinned} from {repository}@{short} ({url})")
        }
        None => format!("kubeship: {pinned}"),
    }
}

/// The inputs' credentials, else the docker config's, else none.
async fn credentials(inputs: &Inputs) -> Result<Credentials, Error> {
    if let Some((username, password)) = &inputs.registry.credentials {
        return Ok(Credentials::from_inputs(username, password));
    }
    match &inputs.registry.docker_config_dir {
        Some(dir) => {
            Ok(registry::credentials::from_docker_config(dir, inputs.image.registry()).await?)
        }
        None => Ok(Credentials::anonymous()),
    }
}
