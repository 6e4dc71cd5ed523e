//! The API verbs over the store, with the API server's rules: defaults and admission on create,
//! the update rules of `strategy.rs`, status only through `/status`, resourceVersion
//! preconditions, `dryRun=All`, and the watch protocol (resourceVersion semantics, bookmarks,
//! the watch-list stream with its closing `k8s.io/initial-events-end` bookmark).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::resources::{self, Resource};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{self, ApiError};
use crate::store::{Change, Event, names};
use crate::{Shared, State};
use crate::{admission, strategy};

/// A parsed resource path.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/<group>/<version>/...` resource paths.
pub fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, rest @ ..] => (Some((*ns).to_owned()), {
            let mut v = vec![*plural];
            v.extend_from_slice(rest);
            v
        }),
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    let resource = resources::find(group, version, plural)?;
    // `/api/v1/namespaces/<name>` is a Namespace, not a namespaced list.
    if resource.namespaced != namespace.is_some() && name.is_some() {
        return None;
    }
    Some(Target {
        resource,
        namespace,
        name: name.map(str::to_owned),
        subresource: sub.map(str::to_owned),
    })
}

/// `?a=b&c=d`, percent-decoded.
pub fn parse_query(query: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

fn namespace_exists(state: &State, namespace: &str) -> Result<(), ApiError> {
    match state.store.get(&resources::NAMESPACES, "", namespace) {
        Some(_) => Ok(()),
        None => Err(status::not_found(&resources::NAMESPACES, namespace)),
    }
}

/// GET of one object (or its `status` or `scale` subresource).
pub fn get(state: &State, target: &Target) -> Result<Value, ApiError> {
    let name = target.name.as_deref().unwrap_or_default();
    let object = state
        .store
        .get(&target.resource, target.namespace.as_deref().unwrap_or_default(), name)
        .ok_or_else(|| status::not_found(&target.resource, name))?;
    match target.subresource.as_deref() {
        Some("scale") => Ok(scale_of(object)),
        _ => Ok(object.clone()),
    }
}

/// The `autoscaling/v1` Scale view of a workload.
fn scale_of(object: &Value) -> Value {
    let selector = LabelSelectorText::from(&object["spec"]["selector"]);
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"],
            "uid": object["metadata"]["uid"], "resourceVersion": object["metadata"]["resourceVersion"],
            "creationTimestamp": object["metadata"]["creationTimestamp"]
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.0}
    })
}

/// A workload selector rendered as a label-selector string.
struct LabelSelectorText(String);

impl From<&Value> for LabelSelectorText {
    fn from(selector: &Value) -> Self {
        let mut terms: Vec<String> = selector["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        for e in selector["matchExpressions"].as_array().into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> =
                e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            terms.push(match e["operator"].as_str() {
                Some("In") => format!("{key} in ({})", values.join(",")),
                Some("NotIn") => format!("{key} notin ({})", values.join(",")),
                Some("Exists") => key.to_owned(),
                _ => format!("!{key}"),
            });
        }
        Self(terms.join(","))
    }
}

/// Filters of LIST and WATCH.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn from_query(query: &BTreeMap<String, String>) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(
            query.get("labelSelector").map(String::as_str).unwrap_or_default(),
        )
        .map_err(status::bad_request)?;
        let fields = FieldSelector::parse(
            query.get("fieldSelector").map(String::as_str).unwrap_or_default(),
        )
        .map_err(status::bad_request)?;
        Ok(Self { labels, fields })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(&object["metadata"]["labels"]) && self.fields.matches(object)
    }
}

/// LIST, with `limit`/`continue` paging. Items carry no kind/apiVersion, as on the real server.
pub fn list(
    state: &State,
    target: &Target,
    query: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    validate_list_options(query)?;
    let filter = Filter::from_query(query)?;
    let start = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| status::bad_request("invalid continue token".into()))?,
        None => 0,
    };
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
    let matching: Vec<&Value> = state
        .store
        .list(&target.resource, target.namespace.as_deref())
        .into_iter()
        .filter(|o| filter.matches(o))
        .collect();
    let end = limit.map_or(matching.len(), |l| (start + l).min(matching.len()));
    let items: Vec<Value> = matching[start.min(end)..end]
        .iter()
        .map(|o| {
            let mut item = (*o).clone();
            if let Value::Object(m) = &mut item {
                m.remove("kind");
                m.remove("apiVersion");
            }
            item
        })
        .collect();
    let mut metadata = json!({"resourceVersion": state.store.resource_version().to_string()});
    if end < matching.len() {
        metadata["continue"] = json!(end.to_string());
        metadata["remainingItemCount"] = json!(matching.len() - end);
    }
    Ok(json!({
        "kind": format!("{}List", target.resource.kind),
        "apiVersion": target.resource.api_version(),
        "metadata": metadata,
        "items": items
    }))
}

/// Drops `null` fields, as decoding into the API's typed structs does (kubectl sends Go's
/// zero `metav1.Time` as `"creationTimestamp": null`, for one).
pub fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Decodes the object into its k8s-openapi type, as the API server decodes every write into
/// its Go struct: a value of the wrong type is a 400 in the server's words.
fn decode(resource: &Resource, object: &Value) -> Result<(), ApiError> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core};
    fn check<T: serde::de::DeserializeOwned>(object: &Value) -> Result<(), String> {
        T::deserialize(object).map(|_| ()).map_err(|e| e.to_string())
    }
    let result = match resource.kind {
        "Deployment" => check::<apps::Deployment>(object),
        "ReplicaSet" => check::<apps::ReplicaSet>(object),
        "StatefulSet" => check::<apps::StatefulSet>(object),
        "DaemonSet" => check::<apps::DaemonSet>(object),
        "ControllerRevision" => check::<apps::ControllerRevision>(object),
        "Pod" => check::<core::Pod>(object),
        "Event" => check::<core::Event>(object),
        "Namespace" => check::<core::Namespace>(object),
        "Node" => check::<core::Node>(object),
        "ServiceAccount" => check::<core::ServiceAccount>(object),
        _ => Ok(()),
    };
    result.map_err(|e| {
        let kind = resource.kind;
        status::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {e}",
            resource.version
        ))
    })
}

/// Validation the tests rely on: required fields of workloads.
fn validate(resource: &Resource, object: &Value) -> Result<(), ApiError> {
    let mut typed = object.clone();
    typed["kind"] = Value::from(resource.kind);
    typed["apiVersion"] = Value::from(resource.api_version());
    decode(resource, &typed)?;
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes: Vec<(&str, &str, String)> = Vec::new();
    if let Some(containers) = object
        .pointer("/spec/template/spec/containers")
        .or_else(|| (resource.kind == "Pod").then(|| &object["spec"]["containers"]))
    {
        let prefix = if resource.kind == "Pod" { "spec" } else { "spec.template.spec" };
        match containers.as_array() {
            Some(list) if !list.is_empty() => {
                for (i, c) in list.iter().enumerate() {
                    if c["image"].as_str().is_none_or(str::is_empty) {
                        let field: &'static str =
                            Box::leak(format!("{prefix}.containers[{i}].image").into_boxed_str());
                        causes.push(("FieldValueRequired", field, "Required value".into()));
                    }
                    if c["name"].as_str().is_none_or(str::is_empty) {
                        let field: &'static str =
                            Box::leak(format!("{prefix}.containers[{i}].name").into_boxed_str());
                        causes.push(("FieldValueRequired", field, "Required value".into()));
                    }
                }
            }
            _ => causes.push((
                "FieldValueRequired",
                "spec.template.spec.containers",
                "Required value".into(),
            )),
        }
    }
    if matches!(resource.kind, "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") {
        let selector = LabelSelector::from_workload(&object["spec"]["selector"]);
        if object["spec"]["selector"].is_null() {
            causes.push(("FieldValueRequired", "spec.selector", "Required value".into()));
        } else if !selector.matches(&object["spec"]["template"]["metadata"]["labels"]) {
            causes.push((
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    object["spec"]["template"]["metadata"]["labels"]
                ),
            ));
        }
    }
    if causes.is_empty() { Ok(()) } else { Err(status::invalid(resource, name, &causes)) }
}

/// POST: create.
pub fn create(
    shared: &Shared,
    state: &mut State,
    target: &Target,
    mut object: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let resource = target.resource;
    if let Some(ns) = &target.namespace {
        namespace_exists(state, ns)?;
        object["metadata"]["namespace"] = json!(ns);
    }
    if object["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        match object["metadata"]["generateName"].as_str() {
            Some(prefix) => {
                object["metadata"]["name"] = json!(format!("{prefix}{}", state.random_suffix()))
            }
            None => {
                return Err(status::invalid(
                    &resource,
                    "",
                    &[(
                        "FieldValueRequired",
                        "metadata.name",
                        "name or generateName is required".into(),
                    )],
                ));
            }
        }
    }
    let (ns, name) = names(&object);
    if state.store.get(&resource, &ns, &name).is_some() {
        return Err(status::already_exists(&resource, &name));
    }
    if resource.namespaced {
        admission::namespace_accepts(state, &resource, &ns, &name)?;
    }
    strategy::apply_defaults(&resource, &mut object);
    drop_nulls(&mut object);
    if resource.kind == "Pod" {
        admission::admit_pod(state, &mut object)?;
    }
    if resource.kind == "Namespace" {
        object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        object["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    validate(&resource, &object)?;
    let now = shared.clock.timestamp();
    object["metadata"]["uid"] = json!(state.store.uid());
    object["metadata"]["creationTimestamp"] = json!(now);
    strategy::prepare_for_create(&resource, &mut object);
    match strategy::initial_status(&resource) {
        Some(initial) => object["status"] = initial,
        None => {
            if let Value::Object(m) = &mut object {
                m.remove("status");
            }
        }
    }
    if dry_run {
        object["kind"] = json!(resource.kind);
        object["apiVersion"] = json!(resource.api_version());
        return Ok(object);
    }
    let created = state.store.insert(&resource, object);
    if resource.kind == "Namespace" {
        admission::ensure_default_account(state, &name, &now);
    }
    Ok(created)
}

/// The patch types, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Strategic,
    Merge,
    Json,
    Apply,
}

impl PatchType {
    pub fn from_content_type(value: &str) -> Result<Self, ApiError> {
        match value.split(';').next().unwrap_or_default().trim() {
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/apply-patch+yaml" => Ok(Self::Apply),
            other => Err(status::unsupported_media_type(other)),
        }
    }
}

/// PATCH of an object, or of its `status` or `scale` subresource: the HTTP status (201 when
/// an apply created the object) and the object.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    shared: &Shared,
    state: &mut State,
    target: &Target,
    kind: PatchType,
    body: &[u8],
    query: &BTreeMap<String, String>,
) -> Result<(u16, Value), ApiError> {
    let resource = target.resource;
    let name = target.name.clone().unwrap_or_default();
    let namespace = target.namespace.clone().unwrap_or_default();
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    if query.get("force").is_some_and(|v| v == "true") && kind != PatchType::Apply {
        return Err(status::invalid_options(
            "force",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    if kind == PatchType::Apply && query.get("fieldManager").is_none_or(String::is_empty) {
        return Err(status::invalid_options(
            "fieldManager",
            "Required value: is required for apply patch",
        ));
    }
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| status::bad_request(format!("error decoding patch: {e}")))?;
    let Some(current) = state.store.get(&resource, &namespace, &name).cloned() else {
        if kind == PatchType::Apply && target.subresource.is_none() {
            let created = create(shared, state, target, patch.clone(), dry_run)?;
            let manager = query.get("fieldManager").map(String::as_str).unwrap_or_default();
            state.fields.apply(&resource, &created, &patch, manager, true, dry_run)?;
            return Ok((201, created));
        }
        return Err(status::not_found(&resource, &name));
    };

    let subresource = target.subresource.as_deref();
    let mut view = match subresource {
        Some("scale") => scale_of(&current),
        _ => current.clone(),
    };
    if let Some(rv) = patch.pointer("/metadata/resourceVersion").and_then(Value::as_str)
        && Some(rv) != view["metadata"]["resourceVersion"].as_str()
    {
        return Err(status::conflict(&resource, &name));
    }
    match kind {
        PatchType::Strategic | PatchType::Apply => crate::patch::strategic_merge(&mut view, &patch)
            .map_err(|e| status::bad_request(format!("error applying patch: {e}")))?,
        PatchType::Merge => crate::patch::json_merge(&mut view, &patch),
        PatchType::Json => {
            crate::patch::json_patch(&mut view, &patch).map_err(|(decode, message)| {
                if decode { status::bad_request(message) } else { status::unprocessable(message) }
            })?
        }
    }
    let manager = query.get("fieldManager").cloned().unwrap_or_else(|| "unknown".to_owned());
    if kind == PatchType::Apply {
        let force = query.get("force").is_some_and(|v| v == "true");
        state.fields.apply(&resource, &current, &patch, &manager, force, dry_run)?;
    }
    let updated = match subresource {
        Some("scale") => {
            let mut updated = current.clone();
            updated["spec"]["replicas"] = view["spec"]["replicas"].clone();
            updated
        }
        Some("status") => {
            let mut updated = current.clone();
            updated["status"] = view["status"].clone();
            updated
        }
        _ => {
            let mut updated = view;
            updated["status"] = current["status"].clone();
            updated
        }
    };
    let written = update(shared, state, &resource, &current, updated, dry_run)?;
    if kind != PatchType::Apply && !dry_run {
        state.fields.updated(&resource, Some(&current), &written, &manager);
    }
    match subresource {
        Some("scale") => Ok((200, scale_of(&written))),
        _ => Ok((200, written)),
    }
}

/// Writes `updated` over `current` with the API server's rules. Used by PATCH and PUT.
pub fn update(
    _shared: &Shared,
    state: &mut State,
    resource: &Resource,
    current: &Value,
    mut updated: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let name = current["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    // The server decodes (dropping nulls) and defaults every write, not only creates.
    strategy::apply_defaults(resource, &mut updated);
    drop_nulls(&mut updated);
    if matches!(resource.kind, "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        && updated["spec"]["selector"] != current["spec"]["selector"]
    {
        return Err(status::invalid(
            resource,
            &name,
            &[(
                "FieldValueInvalid",
                "spec.selector",
                format!("Invalid value: {}: field is immutable", updated["spec"]["selector"]),
            )],
        ));
    }
    strategy::prepare_for_update(resource, current, &mut updated);
    validate(resource, &updated)?;
    if dry_run {
        return Ok(updated);
    }
    Ok(state.store.replace(resource, updated))
}

/// A controller's write of an object's spec or metadata (not its status): the update rules of
/// the main resource apply, so the generation moves as it does for a client's write.
pub(crate) fn controller_update(
    state: &mut State,
    resource: &Resource,
    mut updated: Value,
) -> Value {
    let (ns, name) = names(&updated);
    if let Some(current) = state.store.get(resource, &ns, &name) {
        strategy::prepare_for_update(resource, current, &mut updated);
    }
    state.store.replace(resource, updated)
}

/// `ValidateListOptions` for a watch: the watch-list protocol needs
/// `resourceVersionMatch=NotOlderThan`, which is refused on any other watch.
fn validate_watch_options(query: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let field = "resourceVersionMatch";
    let matching = query.get(field).filter(|m| !m.is_empty());
    let initial = query.contains_key("sendInitialEvents");
    let forbidden = |why: &str| {
        status::invalid_list_options("FieldValueForbidden", field, &format!("Forbidden: {why}"))
    };
    if initial && matching.is_none_or(|m| m != "NotOlderThan") {
        return Err(forbidden(
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    match matching {
        Some(_) if !initial => Err(forbidden(
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        )),
        Some(m) if m != "NotOlderThan" => Err(status::invalid_list_options(
            "FieldValueNotSupported",
            field,
            &format!("Unsupported value: \"{m}\": supported values: \"NotOlderThan\""),
        )),
        _ => Ok(()),
    }
}

/// `ValidateListOptions` for a LIST: no watch-list parameter, and a `resourceVersionMatch`
/// only with a `resourceVersion`.
fn validate_list_options(query: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if query.contains_key("sendInitialEvents") {
        return Err(status::invalid_list_options(
            "FieldValueForbidden",
            "sendInitialEvents",
            "Forbidden: sendInitialEvents is forbidden for list",
        ));
    }
    let matching = query.get("resourceVersionMatch").filter(|m| !m.is_empty());
    if matching.is_some() && query.get("resourceVersion").is_none_or(String::is_empty) {
        return Err(status::invalid_list_options(
            "FieldValueForbidden",
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    Ok(())
}

/// What a watch sends first, and from which version it follows changes.
pub struct WatchStart {
    pub initial: Vec<Value>,
    /// Follow changes with a resourceVersion above this.
    pub from: u64,
    /// The watch-list protocol: close the initial events with a bookmark.
    pub initial_events_end: bool,
}

/// Resolves a watch request's resourceVersion semantics, or 410.
pub fn watch_start(
    state: &State,
    target: &Target,
    query: &BTreeMap<String, String>,
) -> Result<WatchStart, ApiError> {
    validate_watch_options(query)?;
    let filter = Filter::from_query(query)?;
    let rv = query.get("resourceVersion").map(String::as_str).unwrap_or_default();
    let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let current = || -> Vec<Value> {
        state
            .store
            .list(&target.resource, target.namespace.as_deref())
            .into_iter()
            .filter(|o| filter.matches(o))
            .cloned()
            .collect()
    };
    if send_initial || rv.is_empty() || rv == "0" {
        return Ok(WatchStart {
            initial: current(),
            from: state.store.resource_version(),
            initial_events_end: send_initial,
        });
    }
    let from: u64 =
        rv.parse().map_err(|_| status::bad_request(format!("invalid resource version: {rv}")))?;
    if from < state.store.oldest() {
        return Err(status::expired(from, state.store.oldest()));
    }
    Ok(WatchStart { initial: Vec::new(), from, initial_events_end: false })
}

/// The JSON line of a watch event.
pub fn event_line(change: &str, object: &Value) -> String {
    let mut line = json!({"type": change, "object": object}).to_string();
    line.push('\n');
    line
}

/// A BOOKMARK line; kube-rs requires kind and apiVersion on it.
pub fn bookmark_line(resource: &Resource, rv: u64, initial_events_end: bool) -> String {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": resource.kind, "apiVersion": resource.api_version(), "metadata": metadata}),
    )
}

/// What a watch sends for a store event, as the watch cache decides it: an object entering
/// the watch's selectors is ADDED, one leaving them is DELETED (its last matching state,
/// with the new resourceVersion), and events of objects outside the watch are not sent.
pub fn watch_event(event: &Event, target: &Target, filter: &Filter) -> Option<(Change, Value)> {
    if event.resource != target.resource {
        return None;
    }
    let passes = |object: &Value| {
        target.namespace.as_deref().is_none_or(|ns| object["metadata"]["namespace"] == ns)
            && filter.matches(object)
    };
    let now = passes(&event.object);
    let before = event.previous.as_deref().is_some_and(passes);
    match (event.change, now, before) {
        (Change::Modified, true, false) => Some((Change::Added, (*event.object).clone())),
        (Change::Modified, false, true) => {
            let mut last = event.previous.as_deref().cloned().unwrap_or_default();
            last["metadata"]["resourceVersion"] = json!(event.rv.to_string());
            Some((Change::Deleted, last))
        }
        (change, true, _) => Some((change, (*event.object).clone())),
        (_, false, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Namespaced, cluster-scoped and subresource paths.
    #[test]
    fn paths() {
        let t = parse_path("/apis/apps/v1/namespaces/prod/deployments/api/status").unwrap();
        assert_eq!(
            (t.resource.kind, t.namespace.as_deref(), t.name.as_deref(), t.subresource.as_deref()),
            ("Deployment", Some("prod"), Some("api"), Some("status"))
        );
        let t = parse_path("/api/v1/namespaces/prod").unwrap();
        assert_eq!((t.resource.kind, t.name.as_deref()), ("Namespace", Some("prod")));
        let t = parse_path("/api/v1/namespaces/prod/pods").unwrap();
        assert_eq!((t.resource.kind, t.namespace.as_deref(), t.name), ("Pod", Some("prod"), None));
        assert!(parse_path("/apis/apps/v1/widgets").is_none());
        assert_eq!(
            parse_query("fieldSelector=metadata.name%3Dx&watch=1")["fieldSelector"],
            "metadata.name=x"
        );
    }
}
