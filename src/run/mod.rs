//! The pipeline, the one place where the stages meet:
//! inputs → registry → cluster → targets (read, choose, preflight, patch) → rollout → report.
//!
//! Each stage is a function over the run's [`Target`] records, so each target carries its
//! own truth from the first read to the report. Nothing is written before every target has
//! been read, its containers chosen and its patch accepted by a dry run; all targets are then
//! patched, and waited on together. The cluster stages share one deadline (`timeout` from
//! their start); a rollback gets a deadline of its own.

mod patch;
mod preflight;
mod rollback;
mod wait;

use tokio::time::Instant;

use crate::Error;
use crate::cluster::{self, Cluster};
use crate::inputs::Inputs;
use crate::registry::{self, Credentials};
use crate::report::{Report, Status};
use crate::rollout::{Cancel, FailFast};
use crate::targets::{self, Target, select};
use patch::{patch_all, settle_unwatched};
use preflight::{check_access, refuse_all_or_none, report_dry_run};
use rollback::roll_back;
use wait::wait_all;

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
    // What is local first, sending nothing: a configuration mistake should not wait out a
    // registry's tag-timeout before it is reported, and every secret known before a request
    // (a cloud login's tokens come later, each masked as it is minted) is masked before the
    // first line is printed.
    let credentials = registry_credentials(inputs).await?;
    let configured = cluster::configure(&inputs.cluster).await?;
    for warning in &configured.warnings {
        crate::log::warn(warning);
    }
    crate::log::group(format_args!("Resolve {}", inputs.image));
    // Then the registry and the cluster's login at once: neither needs the other, and the
    // first failure ends both.
    let limit = inputs.timeout.min(cluster::ANSWER_WITHIN);
    let (resolved, cluster) = tokio::try_join!(resolve(inputs, credentials), async {
        cluster::connect(&inputs.cluster, configured, limit).await.map_err(Error::from)
    },)?;
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

/// The inputs' credentials, else the docker config's, else none; masked.
async fn registry_credentials(inputs: &Inputs) -> Result<Credentials, Error> {
    let credentials = match (&inputs.registry.credentials, &inputs.registry.docker_config_dir) {
        (Some((username, password)), _) => Credentials::from_inputs(username, password),
        (None, Some(dir)) => {
            registry::credentials::from_docker_config(dir, inputs.image.registry()).await?
        }
        (None, None) => Credentials::anonymous(),
    };
    match &credentials.secret {
        registry::credentials::Secret::Basic { username, password } => {
            crate::log::basic_credentials(username, secrecy::ExposeSecret::expose_secret(password));
        }
        _ => {
            if let Some(secret) = credentials.secret_value() {
                crate::log::secret(secret);
            }
        }
    }
    Ok(credentials)
}

/// The digest.
async fn resolve(inputs: &Inputs, credentials: Credentials) -> Result<registry::Resolved, Error> {
    crate::log::debug(format_args!("registry credentials: {}", credentials.source));
    let options = registry::Options {
        insecure: inputs.registry.insecure,
        extra_ca: inputs.registry.extra_ca.clone(),
        tag_timeout: inputs.registry.tag_timeout,
    };
    Ok(registry::resolve(&inputs.image, inputs.digest.as_deref(), credentials, &options).await?)
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
