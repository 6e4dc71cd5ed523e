//! Stage 3: the workloads to pin. Each gets one [`Target`] record that carries its truth from
//! the first read to the report: the object as read, the containers chosen for it, the patch's
//! answer, and how its rollout (or rollback) ended. Every target is read before any write (all
//! the missing ones named at once), every patch is sent with `dryRun=All` before the first
//! real one (RBAC, admission webhooks and validation answer for all targets first), and each
//! real patch is one strategic merge patch of exactly the chosen containers' images, with
//! field manager `kubeship` and the `kubernetes.io/change-cause` annotation.

pub mod select;

use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cluster::{ApiError, api::Request, call};
use crate::inputs;
use crate::report::{ContainerReport, Status, TargetReport};
use crate::workload::{Counts, Kind, Object};
use select::Change;

/// Why the targets cannot be pinned: an API failure (exit 4), or containers that cannot be
/// chosen (exit 2). Nothing has been written when any of these is returned before the patch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{} not found in namespace {namespace}: check the deployment input and the namespace input \
         (or the kubeconfig context's namespace)",
        missing.join(", ")
    )]
    NotFound { missing: Vec<String>, namespace: String },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the dry run of the patches was refused, so nothing was changed: {}", refusals.join("; "))]
    Refused { refusals: Vec<String> },
    #[error(
        "the credentials may not follow the rollout: they lack {} in namespace {namespace}, so \
         nothing was changed. Grant the credentials' Role {} (README, \"Permissions\")",
        missing.join(", "),
        missing.iter().map(|m| {
            let (resource, verb) = m.split_once(": ").unwrap_or((m.as_str(), ""));
            format!("the verb \"{verb}\" on \"{resource}\"")
        }).collect::<Vec<_>>().join(" and ")
    )]
    Unfollowable { missing: Vec<String>, namespace: String },
    #[error("{what} came back as something other than a {kind}: {detail}")]
    Decode { what: String, kind: &'static str, detail: String },
    #[error(transparent)]
    Select(#[from] select::Error),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Select(_) => 2,
            _ => 4,
        }
    }
}

/// One workload of the run, from the first read to the report.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// The object as read before any write.
    pub read: Object,
    /// The containers chosen for the pinned image (some may run it already).
    pub changes: Vec<Change>,
    /// The real patch's answer: the uid and generation this run waits for.
    pub patched: Option<Object>,
    /// How it ended; `None` while the run is still deciding.
    pub status: Option<Status>,
    pub message: String,
    pub counts: Counts,
    pub revision: Option<String>,
    /// The image IDs its new pods were seen running.
    pub image_ids: Vec<String>,
    /// Pods, events and log lines shown under a failure.
    pub diagnostics: Vec<String>,
}

impl Target {
    /// `deployment/api`, as kubectl names it.
    pub fn display(&self) -> String {
        format!("{}/{}", self.kind.lower(), self.name)
    }

    /// `deployment/api in prod`, for messages about requests.
    pub fn what(&self) -> String {
        format!("{} in {}", self.display(), self.namespace)
    }

    /// The containers whose image this run changes.
    pub fn changing(&self) -> Vec<Change> {
        self.changes.iter().filter(|c| c.changes()).cloned().collect()
    }

    /// The target as the report shows it.
    pub fn report(&self, dry_run: bool) -> TargetReport {
        let changing = self.changing();
        TargetReport {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            status: self.status.unwrap_or(Status::Skipped),
            changed: !dry_run && self.patched.is_some() && !changing.is_empty(),
            revision: self.revision.clone(),
            replicas: self.counts.desired,
            ready_replicas: self.counts.ready,
            message: self.message.clone(),
            containers: changing
                .iter()
                .map(|c| ContainerReport {
                    name: c.name.clone(),
                    previous_image: c.previous_image.clone(),
                    image: c.image.clone(),
                })
                .collect(),
            image_ids: self.image_ids.clone(),
            diagnostics: self.diagnostics.clone(),
        }
    }
}

/// The API for a target's kind in its namespace.
pub fn api(client: &kube::Client, kind: Kind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.api_resource())
}

/// Reads every target, at once. All the missing ones are named together.
///
/// # Errors
/// [`Error::NotFound`] naming every missing target; the first other API failure.
pub async fn read_all(
    client: &kube::Client,
    namespace: &str,
    wanted: &[inputs::Target],
    deadline: Instant,
) -> Result<Vec<Object>, Error> {
    let reads = wanted.iter().map(|t| async move {
        let what = format!("{}/{} in {namespace}", t.kind.lower(), t.name);
        let request = Request { verb: "get", resource: t.kind.plural(), what: &what };
        let answer = call(deadline, request, api(client, t.kind, namespace).get(&t.name)).await;
        (t, what, answer)
    });
    let mut objects = Vec::new();
    let mut missing = Vec::new();
    for (target, what, answer) in futures_util::future::join_all(reads).await {
        match answer {
            Ok(object) => objects.push(decode(target.kind, &what, object)?),
            Err(e) if e.not_found() => {
                missing.push(format!("{}/{}", target.kind.lower(), target.name))
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::NotFound { missing, namespace: namespace.to_owned() });
    }
    Ok(objects)
}

fn decode(kind: Kind, what: &str, object: DynamicObject) -> Result<Object, Error> {
    Object::from_dynamic(kind, object).map_err(|e| Error::Decode {
        what: what.to_owned(),
        kind: kind.as_str(),
        detail: crate::untrusted::short(&e.to_string(), 200),
    })
}

/// The strategic merge patch: the chosen containers' images, merged by name (every name was
/// checked against the object, so none is appended), and the change cause.
pub fn patch_body(changes: &[Change], change_cause: &str) -> Value {
    let list = |init: bool| -> Vec<Value> {
        changes
            .iter()
            .filter(|c| c.init == init)
            .map(|c| json!({"name": c.name, "image": c.image}))
            .collect()
    };
    let mut spec = serde_json::Map::new();
    for (key, init) in [("containers", false), ("initContainers", true)] {
        let items = list(init);
        if !items.is_empty() {
            spec.insert(key.to_owned(), Value::Array(items));
        }
    }
    json!({
        "metadata": {"annotations": {"kubernetes.io/change-cause": change_cause}},
        "spec": {"template": {"spec": spec}}
    })
}

/// Sends `body` to `target` (with `dryRun=All` when asked) and returns the answer.
///
/// # Errors
/// The API failure, explained.
pub async fn patch(
    client: &kube::Client,
    target: &Target,
    body: &Value,
    dry_run: bool,
    deadline: Instant,
) -> Result<Object, Error> {
    let mut params =
        PatchParams { field_manager: Some("kubeship".to_owned()), ..PatchParams::default() };
    if dry_run {
        params = params.dry_run();
    }
    let what = target.what();
    let request = Request { verb: "patch", resource: target.kind.plural(), what: &what };
    let api = api(client, target.kind, &target.namespace);
    let patch = Patch::Strategic(body);
    let answer = call(deadline, request, api.patch(&target.name, &params, &patch)).await?;
    decode(target.kind, &what, answer)
}

/// Every patch that changes something, sent with `dryRun=All`: RBAC, admission webhooks,
/// policies and validation answer for every target before the first real write. The server's
/// answer for each target, in order (`Ok(None)` for one that needs no patch).
pub async fn preflight(
    client: &kube::Client,
    targets: &[Target],
    cause: &str,
    deadline: Instant,
) -> Vec<Result<Option<Object>, Error>> {
    let checks = targets.iter().map(|t| async move {
        let changing = t.changing();
        if changing.is_empty() {
            return Ok(None);
        }
        patch(client, t, &patch_body(&changing, cause), true, deadline).await.map(Some)
    });
    futures_util::future::join_all(checks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exactly the chosen containers, split by kind, and the change cause.
    #[test]
    fn patch_body_shape() {
        let change = |name: &str, init| Change {
            name: name.into(),
            init,
            previous_image: "a:1".into(),
            image: "a@sha256:x".into(),
        };
        let body =
            patch_body(&[change("api", false), change("migrate", true)], "kubeship: a@sha256:x");
        assert_eq!(
            body,
            json!({
                "metadata": {"annotations": {"kubernetes.io/change-cause": "kubeship: a@sha256:x"}},
                "spec": {"template": {"spec": {
                    "containers": [{"name": "api", "image": "a@sha256:x"}],
                    "initContainers": [{"name": "migrate", "image": "a@sha256:x"}]}}}
            })
        );
    }

    /// Every missing target is named, not only the first.
    #[test]
    fn all_missing_targets_are_named() {
        let e = Error::NotFound {
            missing: vec!["deployment/a".into(), "statefulset/b".into()],
            namespace: "prod".into(),
        };
        let text = e.to_string();
        assert!(text.contains("deployment/a, statefulset/b not found in namespace prod"), "{text}");
        assert_eq!(e.exit_code(), 4);
    }
}
