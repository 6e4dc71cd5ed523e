//! The API resources the simulator serves, and the discovery documents kubectl reads.

use serde_json::{Value, json};

/// One resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Subresources served: `status`, `scale`, `log`.
    pub subresources: &'static [&'static str],
}

impl Resource {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group: how errors name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, or `Pod`: how validation errors name a kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_owned()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

const fn resource(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    subresources: &'static [&'static str],
) -> Resource {
    Resource { group, version: "v1", kind, plural, singular, namespaced, short_names, subresources }
}

pub const DEPLOYMENTS: Resource = resource(
    "apps",
    "Deployment",
    "deployments",
    "deployment",
    true,
    &["deploy"],
    &["status", "scale"],
);
pub const REPLICASETS: Resource = resource(
    "apps",
    "ReplicaSet",
    "replicasets",
    "replicaset",
    true,
    &["rs"],
    &["status", "scale"],
);
pub const STATEFULSETS: Resource = resource(
    "apps",
    "StatefulSet",
    "statefulsets",
    "statefulset",
    true,
    &["sts"],
    &["status", "scale"],
);
pub const DAEMONSETS: Resource =
    resource("apps", "DaemonSet", "daemonsets", "daemonset", true, &["ds"], &["status"]);
pub const CONTROLLER_REVISIONS: Resource = resource(
    "apps",
    "ControllerRevision",
    "controllerrevisions",
    "controllerrevision",
    true,
    &[],
    &[],
);
pub const PODS: Resource = resource("", "Pod", "pods", "pod", true, &["po"], &["status", "log"]);
pub const EVENTS: Resource = resource("", "Event", "events", "event", true, &["ev"], &[]);
pub const NAMESPACES: Resource =
    resource("", "Namespace", "namespaces", "namespace", false, &["ns"], &["status"]);
pub const NODES: Resource = resource("", "Node", "nodes", "node", false, &["no"], &["status"]);
pub const SERVICE_ACCOUNTS: Resource =
    resource("", "ServiceAccount", "serviceaccounts", "serviceaccount", true, &["sa"], &[]);

/// Every resource served.
pub const ALL: &[Resource] = &[
    DEPLOYMENTS,
    REPLICASETS,
    STATEFULSETS,
    DAEMONSETS,
    CONTROLLER_REVISIONS,
    PODS,
    EVENTS,
    NAMESPACES,
    NODES,
    SERVICE_ACCOUNTS,
];

/// The resource served at `group`/`version` under `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<Resource> {
    ALL.iter().copied().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "37", "gitVersion": "v1.37.0-kubesim",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-08-01T00:00:00Z", "goVersion": "go1.26.0", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `GET /api`.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

/// `GET /apis`.
pub fn groups() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
        "name": "apps",
        "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}
    }]})
}

/// `GET /api/v1` or `GET /apis/apps/v1`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Resource> =
        ALL.iter().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in &served {
        let verbs =
            ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
        resources.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": verbs, "shortNames": r.short_names,
            "categories": if r.group == "apps" || r.plural == "pods" { vec!["all"] } else { vec![] }
        }));
        for sub in r.subresources {
            let (kind, verbs): (&str, &[&str]) = match *sub {
                "scale" => ("Scale", &["get", "patch", "update"]),
                "log" => ("Pod", &["get"]),
                _ => (r.kind, &["get", "patch", "update"]),
            };
            let mut entry = json!({"name": format!("{}/{sub}", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": kind, "verbs": verbs});
            if *sub == "scale" {
                entry["group"] = json!("autoscaling");
                entry["version"] = json!("v1");
            }
            resources.push(entry);
        }
    }
    let group_version = served[0].api_version();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// `GET /openapi/v3`: where each group version's document is.
pub fn openapi_root() -> Value {
    let mut paths = serde_json::Map::new();
    for gv in ["api/v1", "apis/apps/v1"] {
        paths.insert(
            gv.to_owned(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=kubesim")}),
        );
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/<gv>`: the operations of each resource, enough for kubectl to see that
/// PATCH takes `fieldValidation` (it then validates on the server, as against a real cluster).
pub fn openapi_document(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Resource> =
        ALL.iter().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    for r in served {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let scope = if r.namespaced { "/namespaces/{namespace}" } else { "" };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let operation = |action: &str| {
            json!({
                "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation")]
            })
        };
        paths.insert(
            format!("{prefix}{scope}/{}", r.plural),
            json!({"get": operation("list"), "post": operation("post")}),
        );
        paths.insert(
            format!("{prefix}{scope}/{}/{{name}}", r.plural),
            json!({"get": operation("get"), "put": operation("put"), "patch": operation("patch"), "delete": operation("delete")}),
        );
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.0-kubesim"}, "paths": paths}),
    )
}
