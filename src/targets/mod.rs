//! Stage 3b: the workloads to pin. Every target is read first (a missing or forbidden one
//! stops the run before anything is written), its containers are chosen by `select`, then
//! each gets one strategic merge patch of exactly those containers' images, with field
//! manager `kubeship` and the `kubernetes.io/change-cause` annotation.

pub mod select;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::inputs::{Kind, Target};
use select::{Change, Container};

/// Kubernetes API failures (exit 4), and container choices that cannot be made (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{kind} {namespace}/{name} was not found: check the deployment input and the namespace ({namespace})"
    )]
    NotFound { kind: &'static str, namespace: String, name: String },
    #[error(
        "the API server refused to {verb} {kind} {namespace}/{name}: {message}.{who} kubeship needs get, patch, \
         list and watch on the workload kind; list and watch on replicasets, pods and events; get on pods/log"
    )]
    Forbidden {
        verb: &'static str,
        kind: &'static str,
        namespace: String,
        name: String,
        message: String,
        /// Who kubeship authenticated as and what to grant, when it minted a cloud token.
        who: String,
    },
    #[error(
        "kubeship could not renew its cloud token to reach {kind} {namespace}/{name}: {message}"
    )]
    Token { kind: &'static str, namespace: String, name: String, message: String },
    #[error("the API server rejected the patch of {kind} {namespace}/{name}: {message}")]
    Rejected { kind: &'static str, namespace: String, name: String, message: String },
    #[error("the API server could not be reached for {kind} {namespace}/{name}: {message}")]
    Unreachable { kind: &'static str, namespace: String, name: String, message: String },
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

/// A workload as read, with what the run needs of it.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub containers: Vec<Container>,
    /// StatefulSet or DaemonSet with the OnDelete strategy: patched, not waited on.
    pub on_delete: bool,
    /// The object as read: what an unchanged target is judged by.
    pub current: Patched,
    /// The pods' label selector (`matchLabels`), for the fail-fast pod watch.
    pub selector: Option<String>,
}

impl Workload {
    /// `deployment/api`, as messages name it.
    pub fn display(&self) -> String {
        format!("{}/{}", self.kind.as_str().to_lowercase(), self.name)
    }
}

/// What the patch response says: the change to wait on.
#[derive(Debug, Clone)]
pub struct Patched {
    pub uid: String,
    pub generation: i64,
    /// `deployment.kubernetes.io/revision` (Deployments), before the controller moves it.
    pub revision: Option<String>,
}

fn api_error(
    kind: Kind,
    namespace: &str,
    name: &str,
    verb: &'static str,
    error: kube::Error,
) -> Error {
    let (kind, namespace, name) = (kind.as_str(), namespace.to_owned(), name.to_owned());
    match error {
        kube::Error::Api(status) if status.code == 404 => Error::NotFound { kind, namespace, name },
        kube::Error::Api(status) if status.code == 403 || status.code == 401 => {
            let who = crate::cluster::cloud::explain_denial(status.code)
                .map(|w| format!(" {w}."))
                .unwrap_or_default();
            Error::Forbidden { verb, kind, namespace, name, message: status.message.clone(), who }
        }
        other if cloud_error(&other).is_some() => {
            let message = cloud_error(&other).map(ToString::to_string).unwrap_or_default();
            Error::Token { kind, namespace, name, message }
        }
        kube::Error::Api(status) => {
            Error::Rejected { kind, namespace, name, message: status.message.clone() }
        }
        other => Error::Unreachable {
            kind,
            namespace,
            name,
            message: crate::error::render_chain(&other),
        },
    }
}

/// The cloud login's error behind a failed request (a token that could not be renewed).
fn cloud_error(error: &kube::Error) -> Option<&crate::cluster::cloud::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(cloud) = e.downcast_ref::<crate::cluster::cloud::Error>() {
            return Some(cloud);
        }
        source = e.source();
    }
    None
}

fn containers(template: &PodTemplateSpec) -> Vec<Container> {
    let Some(spec) = &template.spec else { return Vec::new() };
    let image = |c: &k8s_openapi::api::core::v1::Container| c.image.clone().unwrap_or_default();
    let regular = spec.containers.iter().map(|c| Container {
        name: c.name.clone(),
        image: image(c),
        init: false,
    });
    let init = spec.init_containers.iter().flatten().map(|c| Container {
        name: c.name.clone(),
        image: image(c),
        init: true,
    });
    regular.chain(init).collect()
}

/// GET of one target.
///
/// # Errors
/// [`Error::NotFound`], [`Error::Forbidden`] and the other API failures.
pub async fn read(
    client: &kube::Client,
    namespace: &str,
    target: &Target,
) -> Result<Workload, Error> {
    let failed = |e| api_error(target.kind, namespace, &target.name, "get", e);
    let (metadata, template, on_delete, selector) = match target.kind {
        Kind::Deployment => {
            let d = Api::<Deployment>::namespaced(client.clone(), namespace)
                .get(&target.name)
                .await
                .map_err(failed)?;
            (d.metadata, d.spec.template, false, d.spec.selector)
        }
        Kind::StatefulSet => {
            let s = Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .get(&target.name)
                .await
                .map_err(failed)?;
            let on_delete = s.spec.update_strategy.as_ref().and_then(|u| u.type_.as_deref())
                == Some("OnDelete");
            (s.metadata, s.spec.template, on_delete, s.spec.selector)
        }
        Kind::DaemonSet => {
            let d = Api::<DaemonSet>::namespaced(client.clone(), namespace)
                .get(&target.name)
                .await
                .map_err(failed)?;
            let on_delete = d.spec.update_strategy.as_ref().and_then(|u| u.type_.as_deref())
                == Some("OnDelete");
            (d.metadata, d.spec.template, on_delete, d.spec.selector)
        }
    };
    let selector = selector
        .match_labels
        .filter(|m| !m.is_empty())
        .map(|labels| labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","));
    Ok(Workload {
        kind: target.kind,
        namespace: namespace.to_owned(),
        name: target.name.clone(),
        containers: containers(&template),
        on_delete,
        current: patched_from(metadata),
        selector,
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

/// Sends the patch (with `dryRun=All` when asked) and returns the change to wait on.
///
/// # Errors
/// The API failures, the patch's 422 as [`Error::Rejected`].
pub async fn apply(
    client: &kube::Client,
    workload: &Workload,
    body: &Value,
    dry_run: bool,
) -> Result<Patched, Error> {
    let mut params =
        PatchParams { field_manager: Some("kubeship".to_owned()), ..PatchParams::default() };
    if dry_run {
        params = params.dry_run();
    }
    let failed = |e| api_error(workload.kind, &workload.namespace, &workload.name, "patch", e);
    let (ns, name) = (workload.namespace.as_str(), workload.name.as_str());
    let patch = Patch::Strategic(body);
    let metadata = match workload.kind {
        Kind::Deployment => patch_as::<Deployment>(client, ns, name, &params, &patch).await,
        Kind::StatefulSet => patch_as::<StatefulSet>(client, ns, name, &params, &patch).await,
        Kind::DaemonSet => patch_as::<DaemonSet>(client, ns, name, &params, &patch).await,
    }
    .map_err(failed)?;
    Ok(patched_from(metadata))
}

/// The patch, for any namespaced kind; the response's metadata.
async fn patch_as<K>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    params: &PatchParams,
    patch: &Patch<&Value>,
) -> Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Ok(Api::<K>::namespaced(client.clone(), namespace)
        .patch(name, params, patch)
        .await?
        .meta()
        .clone())
}

fn patched_from(metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Patched {
    Patched {
        uid: metadata.uid.unwrap_or_default(),
        generation: metadata.generation.unwrap_or(0),
        revision: metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision").cloned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exactly the chosen containers, split by kind, and the change cause.
    #[test]
    fn patch_body_shape() {
        let changes = [
            Change {
                name: "api".into(),
                init: false,
                previous_image: "a:1".into(),
                image: "a@sha256:x".into(),
            },
            Change {
                name: "migrate".into(),
                init: true,
                previous_image: "a:1".into(),
                image: "a@sha256:x".into(),
            },
        ];
        let body = patch_body(&changes, "kubeship: a@sha256:x");
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
}
