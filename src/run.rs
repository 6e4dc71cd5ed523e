//! The pipeline, the one place where the stages meet:
//! inputs → registry → cluster → targets (read, choose, preflight, patch) → rollout → report.
//!
//! Each stage is a function over the run's [`Target`] records, so each target carries its
//! own truth from the first read to the report. Nothing is written before every target has
//! been read, its containers chosen and its patch accepted by a dry run; all targets are then
//! patched, and waited on together. The cluster stages share one deadline (`timeout` from
//! their start); a rollback gets a deadline of its own.

use tokio::time::Instant;

use crate::Error;
use crate::cluster::{self, Cluster};
use crate::inputs::Inputs;
use crate::registry::{self, Credentials};
use crate::report::{Report, Status};
use crate::rollout::{self, Cancel, FailFast, Pin};
use crate::targets::{self, Target, select};

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
        match &self.error {
            Some(e) => e.exit_code(),
            None if self.report.status.is_failure() => 1,
            None => 0,
        }
    }
}

/// What the stages learn, kept for the report whatever stage ends the run.
#[derive(Default)]
struct Facts {
    resolved: Option<registry::Resolved>,
    targets: Vec<Target>,
}

/// Runs every stage; `cancel` stops it between patches and stops every wait at once.
pub async fn run(inputs: &Inputs, cancel: Cancel) -> Run {
    let started = Instant::now();
    let mut facts = Facts::default();
    let error = stages(inputs, &mut facts, cancel.clone()).await.err();
    let signal = *cancel.borrow();
    if signal.is_some() {
        crate::log::error("interrupted: reporting the state as it is");
        // A patch that landed and was not followed to its end was cancelled; the targets never
        // written to stay skipped.
        for target in facts.targets.iter_mut().filter(|t| t.status.is_none() && t.patched.is_some())
        {
            target.status = Some(Status::Cancelled);
            target.message =
                format!("{} patched; interrupted before its rollout ended", target.display());
        }
    }
    let statuses: Vec<Status> =
        facts.targets.iter().map(|t| t.status.unwrap_or(Status::Skipped)).collect();
    let status = match (signal, &error) {
        (Some(_), _) => Status::Cancelled,
        (None, Some(_)) if !Status::of_run(&statuses).is_failure() => Status::Failed,
        _ => Status::of_run(&statuses),
    };
    let report = Report {
        status,
        digest: facts.resolved.as_ref().map(|r| r.digest.clone()),
        image: facts.resolved.as_ref().map(|r| r.pinned.clone()),
        changed: !inputs.dry_run
            && facts.targets.iter().any(|t| t.patched.is_some() && !t.changing().is_empty()),
        duration_seconds: started.elapsed().as_secs_f64(),
        targets: facts.targets.iter().map(|t| t.report(inputs.dry_run)).collect(),
        truncated: false,
    };
    Run { report, error, signal }
}

async fn stages(inputs: &Inputs, facts: &mut Facts, cancel: Cancel) -> Result<(), Error> {
    // Before the first write there is nothing to finish: an interrupt simply ends the run.
    let mut stop = cancel.clone();
    let cluster = tokio::select! {
        prepared = prepare(inputs, facts) => prepared?,
        _ = stop.wait_for(Option::is_some) => return Ok(()),
    };
    let Some(Prepared { cluster, deadline, cause, pods_visible }) = cluster else { return Ok(()) };
    patch_all(inputs, &cluster, facts, &cause, deadline, &cancel).await?;
    if cancel.borrow().is_some() {
        return Ok(());
    }
    if !inputs.wait {
        for target in facts.targets.iter_mut() {
            settle_unwatched(&cluster.client, target, deadline).await;
        }
        return Ok(());
    }
    let fail_fast = (inputs.fail_fast && pods_visible)
        .then(|| FailFast { max_restarts: i32::try_from(inputs.max_restarts).unwrap_or(i32::MAX) });
    wait_all(&cluster, facts, fail_fast, deadline, inputs.timeout, &cancel).await?;
    let failed = facts.targets.iter().any(|t| t.status.is_some_and(Status::is_failure));
    if failed && inputs.rollback_on_failure && cancel.borrow().is_none() {
        roll_back(inputs, &cluster, &mut facts.targets, &cancel).await;
    }
    Ok(())
}

/// What the writing stages start from.
struct Prepared {
    cluster: Cluster,
    /// The cluster stages' deadline.
    deadline: Instant,
    /// The `kubernetes.io/change-cause`.
    cause: String,
    /// Whether the credentials may list and watch pods (fail-fast needs it).
    pods_visible: bool,
}

/// Everything before the first write: the cluster's configuration, the digest, every target
/// read and its containers chosen, every patch accepted by a dry run, what the credentials
/// may see. `None` for a dry run, which ends here.
async fn prepare(inputs: &Inputs, facts: &mut Facts) -> Result<Option<Prepared>, Error> {
    // The cluster's configuration first: it sends nothing, and a kubeconfig mistake should not
    // wait out a registry's tag-timeout before it is reported.
    let cluster = cluster::connect(&inputs.cluster).await?;
    for warning in &cluster.warnings {
        crate::log::warn(warning);
    }
    crate::log::group(format_args!("Resolve {}", inputs.image));
    let resolved = resolve(inputs).await?;
    crate::log::info(format_args!("{} is {}", inputs.image, resolved.digest));
    let cause = change_cause(inputs, &resolved.pinned);
    let pinned = resolved.pinned.clone();
    facts.resolved = Some(resolved);

    crate::log::group("Read the targets");
    let deadline = Instant::now() + inputs.timeout;
    let objects =
        targets::read_all(&cluster.client, &cluster.namespace, &inputs.targets, deadline).await?;
    let mut chosen = Vec::new();
    for object in objects {
        let display = format!(
            "{}/{}",
            object.kind().lower(),
            object.meta().name.as_deref().unwrap_or_default()
        );
        let (changes, warning) = select::select(
            &display,
            &object.containers(),
            &inputs.containers,
            &inputs.image,
            &pinned,
        )
        .map_err(targets::Error::from)?;
        if let Some(warning) = warning {
            crate::log::warn(warning);
        }
        chosen.push(Target {
            kind: object.kind(),
            namespace: cluster.namespace.clone(),
            name: object.meta().name.clone().unwrap_or_default(),
            counts: object.counts(),
            revision: object.revision(),
            read: object,
            changes,
            patched: None,
            status: None,
            message: String::new(),
            image_ids: Vec::new(),
            diagnostics: Vec::new(),
        });
    }
    facts.targets = chosen;

    crate::log::group(if inputs.dry_run {
        "Patch (dry run)"
    } else {
        "Check the patches (dry run)"
    });
    let answers = targets::preflight(&cluster.client, &facts.targets, &cause, deadline).await;
    let answers = refuse_all_or_none(&mut facts.targets, answers)?;
    let pods_visible = if inputs.wait && !inputs.dry_run {
        check_access(&cluster, &facts.targets, deadline, inputs.fail_fast).await?
    } else {
        true
    };
    if inputs.dry_run {
        for (target, answer) in facts.targets.iter_mut().zip(answers) {
            report_dry_run(target, answer);
        }
        return Ok(None);
    }
    Ok(Some(Prepared { cluster, deadline, cause, pods_visible }))
}

/// The preflight's answers; if any target was refused, each target's own status says what
/// happened to it (refused, or not patched because another was) and the run stops.
fn refuse_all_or_none(
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
async fn check_access(
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

fn report_dry_run(target: &mut Target, answer: Option<crate::workload::Object>) {
    target.status = Some(Status::DryRun);
    let changing = target.changing();
    target.message = if changing.is_empty() {
        format!("{} already runs this image", target.display())
    } else {
        for change in &changing {
            crate::log::info(format_args!(
                "(dry run) {}: {} {} → {}",
                target.display(),
                change.name,
                crate::untrusted::short(&change.previous_image, 200),
                change.image
            ));
        }
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

/// The inputs' credentials, else the docker config's, else none; then the digest.
async fn resolve(inputs: &Inputs) -> Result<registry::Resolved, Error> {
    let credentials = match (&inputs.registry.credentials, &inputs.registry.docker_config_dir) {
        (Some((username, password)), _) => Credentials::from_inputs(username, password),
        (None, Some(dir)) => {
            registry::credentials::from_docker_config(dir, inputs.image.registry()).await?
        }
        (None, None) => Credentials::anonymous(),
    };
    if let Some(secret) = credentials.secret_value() {
        crate::log::secret(secret);
    }
    crate::log::debug(format_args!("registry credentials: {}", credentials.source));
    let options = registry::Options {
        insecure: inputs.registry.insecure,
        extra_ca: inputs.registry.extra_ca.clone(),
        tag_timeout: inputs.registry.tag_timeout,
    };
    Ok(registry::resolve(&inputs.image, inputs.digest.as_deref(), credentials, &options).await?)
}

/// One strategic merge patch per target that changes. A patch is never cut in half: an
/// interrupt stops the run between targets. When a real patch fails after others landed, those
/// are put back under `rollback-on-failure`, else reported as applied, not waited on.
async fn patch_all(
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
                for change in &changing {
                    crate::log::info(format_args!(
                        "{}: {} {} → {}",
                        target.display(),
                        change.name,
                        crate::untrusted::short(&change.previous_image, 200),
                        change.image
                    ));
                }
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
async fn settle_unwatched(client: &kube::Client, target: &mut Target, deadline: Instant) {
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

/// What a wait on `target` is pinned to: its patch's answer, or the object as read when it
/// already ran this run's images.
fn pin(target: &Target) -> Option<Pin> {
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
async fn wait_all(
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

/// Puts back the previous images of exactly the containers this run changed, in every target
/// it changed and still owns (a superseded target belongs to its new writer), and waits for
/// that rollout. Each target's status says how it ended.
async fn roll_back(inputs: &Inputs, cluster: &Cluster, targets: &mut [Target], cancel: &Cancel) {
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

/// Says what the new pods run, and warns when it is not the pinned digest (a mutating
/// admission webhook or a registry mirror can swap images).
fn report_image_ids(target: &Target, digest: Option<&str>) {
    if target.image_ids.is_empty() {
        return;
    }
    crate::log::info(format_args!("{} pods run {}", target.display(), target.image_ids.join(", ")));
    if let Some(digest) = digest {
        for id in target.image_ids.iter().filter(|id| !id.ends_with(digest)) {
            crate::log::warn(format_args!(
                "{}: a pod runs {id}, not the pinned {digest}",
                target.display()
            ));
        }
    }
}

/// The `kubernetes.io/change-cause`: the pinned image, and the GitHub run that pinned it.
fn change_cause(inputs: &Inputs, pinned: &str) -> String {
    match &inputs.github {
        Some(run) => {
            let short: String = run.sha.chars().take(12).collect();
            format!("kubeship: {pinned} from {}@{short} ({})", run.repository, run.url)
        }
        None => format!("kubeship: {pinned}"),
    }
}
