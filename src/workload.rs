//! The three kinds of workload kubeship pins, and the one place where they differ: how the
//! API names them, where their pod template, selector and update strategy live, how many
//! replicas they want and have, and which of kubectl's rollout verdicts applies. Everything
//! else in kubeship handles a workload as an [`Object`], whatever its kind.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::core::{ApiResource, DynamicObject};

use crate::rollout::status::{self, Verdict};

/// The workload kinds kubeship can pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    /// The kind as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
        }
    }

    /// The kind as kubectl's resource names spell it (`deployment/api`).
    pub fn lower(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::DaemonSet => "daemonset",
        }
    }

    /// The kind's resource plural, for RBAC messages (`deployments`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
        }
    }

    /// Where the API serves the kind.
    pub fn api_resource(self) -> ApiResource {
        match self {
            Kind::Deployment => ApiResource::erase::<Deployment>(&()),
            Kind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            Kind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        }
    }
}

/// A container of a pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub init: bool,
}

/// Replica counts, for the progress line and the outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// What the workload asks for.
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// Pods of earlier revisions still there (a Deployment's or StatefulSet's); kubectl's
    /// "old replicas are pending termination".
    pub old: i32,
}

/// A workload as the API server returned it.
#[derive(Debug, Clone)]
pub enum Object {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
}

impl Object {
    /// Reads an API answer as the kind that was asked for.
    ///
    /// # Errors
    /// The answer does not decode as that kind (a server or proxy speaking another API).
    pub fn from_dynamic(kind: Kind, object: DynamicObject) -> Result<Self, serde_json::Error> {
        let value = serde_json::to_value(object)?;
        Ok(match kind {
            Kind::Deployment => Self::Deployment(serde_json::from_value(value)?),
            Kind::StatefulSet => Self::StatefulSet(serde_json::from_value(value)?),
            Kind::DaemonSet => Self::DaemonSet(serde_json::from_value(value)?),
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            Self::Deployment(_) => Kind::Deployment,
            Self::StatefulSet(_) => Kind::StatefulSet,
            Self::DaemonSet(_) => Kind::DaemonSet,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Deployment(d) => &d.metadata,
            Self::StatefulSet(s) => &s.metadata,
            Self::DaemonSet(d) => &d.metadata,
        }
    }

    pub fn uid(&self) -> &str {
        self.meta().uid.as_deref().unwrap_or_default()
    }

    pub fn generation(&self) -> i64 {
        self.meta().generation.unwrap_or(0)
    }

    fn template(&self) -> &PodTemplateSpec {
        match self {
            Self::Deployment(d) => &d.spec.template,
            Self::StatefulSet(s) => &s.spec.template,
            Self::DaemonSet(d) => &d.spec.template,
        }
    }

    /// The pods' label selector.
    pub fn selector(&self) -> &LabelSelector {
        match self {
            Self::Deployment(d) => &d.spec.selector,
            Self::StatefulSet(s) => &s.spec.selector,
            Self::DaemonSet(d) => &d.spec.selector,
        }
    }

    /// A StatefulSet or DaemonSet whose pods change only when deleted: patched, not waited on.
    pub fn on_delete(&self) -> bool {
        let strategy = match self {
            Self::Deployment(_) => None,
            Self::StatefulSet(s) => s.spec.update_strategy.as_ref().and_then(|u| u.type_.as_ref()),
            Self::DaemonSet(d) => d.spec.update_strategy.as_ref().and_then(|u| u.type_.as_ref()),
        };
        strategy.is_some_and(|s| s == "OnDelete")
    }

    /// The pod template's containers and init containers, in that order.
    pub fn containers(&self) -> Vec<Container> {
        let Some(spec) = &self.template().spec else { return Vec::new() };
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

    /// The image a container of the template runs, if it has that container.
    pub fn image_of(&self, name: &str, init: bool) -> Option<String> {
        self.containers().into_iter().find(|c| c.name == name && c.init == init).map(|c| c.image)
    }

    pub fn counts(&self) -> Counts {
        match self {
            Self::Deployment(d) => {
                let s = d.status.clone().unwrap_or_default();
                Counts {
                    desired: d.spec.replicas.unwrap_or(1),
                    updated: s.updated_replicas.unwrap_or(0),
                    ready: s.ready_replicas.unwrap_or(0),
                    available: s.available_replicas.unwrap_or(0),
                    old: (s.replicas.unwrap_or(0) - s.updated_replicas.unwrap_or(0)).max(0),
                }
            }
            Self::StatefulSet(st) => {
                let s = st.status.clone().unwrap_or_default();
                Counts {
                    desired: st.spec.replicas.unwrap_or(1),
                    updated: s.updated_replicas.unwrap_or(0),
                    ready: s.ready_replicas.unwrap_or(0),
                    available: s.available_replicas.unwrap_or(0),
                    old: (s.replicas - s.updated_replicas.unwrap_or(0)).max(0),
                }
            }
            Self::DaemonSet(d) => {
                let s = d.status.clone().unwrap_or_default();
                Counts {
                    desired: s.desired_number_scheduled,
                    updated: s.updated_number_scheduled.unwrap_or(0),
                    ready: s.number_ready,
                    available: s.number_available.unwrap_or(0),
                    old: 0,
                }
            }
        }
    }

    /// Whether the controller has seen `generation` (kubectl's `generation <= observedGeneration`).
    pub fn observed(&self, generation: i64) -> bool {
        let observed = match self {
            Self::Deployment(d) => d.status.as_ref().and_then(|s| s.observed_generation),
            Self::StatefulSet(s) => s.status.as_ref().and_then(|s| s.observed_generation),
            Self::DaemonSet(d) => d.status.as_ref().and_then(|s| s.observed_generation),
        };
        observed.unwrap_or(0) >= generation
    }

    /// kubectl's verdict, with `generation` the one to wait for.
    pub fn verdict(&self, generation: i64) -> Verdict {
        match self {
            Self::Deployment(d) => status::deployment(d, generation),
            Self::StatefulSet(s) => status::statefulset(s, generation),
            Self::DaemonSet(d) => status::daemonset(d, generation),
        }
    }

    /// A failure kubectl would sit out until its deadline: a paused Deployment, or one whose
    /// ReplicaSet cannot create pods.
    pub fn stuck(&self, generation: i64) -> Option<String> {
        match self {
            Self::Deployment(d) => status::deployment_stuck(d, generation),
            Self::StatefulSet(_) | Self::DaemonSet(_) => None,
        }
    }

    /// The revision a rollout produced: a Deployment's `deployment.kubernetes.io/revision`, a
    /// StatefulSet's `updateRevision`. DaemonSets keep theirs in ControllerRevisions only.
    pub fn revision(&self) -> Option<String> {
        match self {
            Self::Deployment(d) => d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(status::REVISION_ANNOTATION).cloned()),
            Self::StatefulSet(s) => s.status.as_ref().and_then(|s| s.update_revision.clone()),
            Self::DaemonSet(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: Kind, json: serde_json::Value) -> Object {
        Object::from_dynamic(kind, serde_json::from_value(json).expect("dynamic")).expect("typed")
    }

    /// Containers in template order, init containers last; OnDelete read per kind.
    #[test]
    fn containers_and_strategy() {
        let sts = object(
            Kind::StatefulSet,
            serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "generation": 4, "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "db"}}, "serviceName": "db",
                "updateStrategy": {"type": "OnDelete"},
                "template": {"spec": {"containers": [{"name": "db", "image": "pg:1"}],
                    "initContainers": [{"name": "init", "image": "pg:1"}]}}}}),
        );
        assert_eq!(sts.kind(), Kind::StatefulSet);
        assert!(sts.on_delete());
        assert_eq!((sts.uid(), sts.generation()), ("u1", 4));
        let names: Vec<(String, bool)> =
            sts.containers().into_iter().map(|c| (c.name, c.init)).collect();
        assert_eq!(names, [("db".to_owned(), false), ("init".to_owned(), true)]);
        assert_eq!(sts.image_of("init", true).as_deref(), Some("pg:1"));
        assert_eq!(sts.image_of("init", false), None);
    }

    /// The counts a progress line shows: a surge's old pods counted apart, none missing.
    #[test]
    fn counts_include_old_pods() {
        let d = object(
            Kind::Deployment,
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}},
                "template": {"spec": {"containers": [{"name": "api", "image": "api:1"}]}}},
            "status": {"replicas": 5, "updatedReplicas": 2, "readyReplicas": 4,
                "availableReplicas": 4}}),
        );
        let c = d.counts();
        assert_eq!((c.desired, c.updated, c.ready, c.available, c.old), (4, 2, 4, 4, 3));
        let fresh = object(
            Kind::Deployment,
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {}}}),
        );
        let c = fresh.counts();
        assert_eq!((c.desired, c.updated, c.old), (1, 0, 0));
    }

    /// Another kind's object does not pass for the one asked for.
    #[test]
    fn wrong_kind_is_an_error() {
        let dynamic: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"},
            "spec": {"selector": {}, "template": {}}}))
        .expect("dynamic");
        assert!(Object::from_dynamic(Kind::Deployment, dynamic).is_err());
    }
}
