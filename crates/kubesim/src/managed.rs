//! Field ownership for server-side apply: which manager set each field, so that an apply
//! changing a field another manager owns is a 409 conflict unless forced
//! (`k8s.io/apimachinery/pkg/util/managedfields`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::resources::Resource;
use crate::status::ApiError;

/// Who owns a field, and how they set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub manager: String,
    /// An apply, as opposed to an update-style write (create, PUT, non-apply PATCH).
    pub apply: bool,
}

/// Field paths per object: `.spec.template.spec.containers[name="app"].image` → owner.
#[derive(Debug, Default)]
pub struct Fields(BTreeMap<(String, String, String), BTreeMap<String, Owner>>);

fn key(resource: &Resource, namespace: &str, name: &str) -> (String, String, String) {
    (resource.plural.to_owned(), namespace.to_owned(), name.to_owned())
}

/// Leaf paths of an object, lists keyed by their merge key, as managed fields name them.
pub fn paths(value: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    walk(value, String::new(), &mut out);
    out
}

fn walk(value: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "status") {
                    continue;
                }
                if path == ".metadata" && !matches!(k.as_str(), "labels" | "annotations") {
                    continue;
                }
                walk(v, format!("{path}.{k}"), out);
            }
        }
        Value::Array(items)
            if items.iter().all(|i| i.get("name").is_some_and(Value::is_string))
                && !items.is_empty() =>
        {
            for item in items {
                let id = item["name"].as_str().unwrap_or_default();
                walk(item, format!("{path}[name=\"{id}\"]"), out);
            }
        }
        other => {
            out.insert(path, other.clone());
        }
    }
}

impl Fields {
    /// Records an update-style write: the manager owns what changed.
    pub fn updated(
        &mut self,
        resource: &Resource,
        before: Option<&Value>,
        after: &Value,
        manager: &str,
    ) {
        let (ns, name) = crate::store::names(after);
        let old = before.map(paths).unwrap_or_default();
        let owners = self.0.entry(key(resource, &ns, &name)).or_default();
        for (path, value) in paths(after) {
            if old.get(&path) != Some(&value) {
                owners.insert(path, Owner { manager: manager.to_owned(), apply: false });
            }
        }
    }

    /// Checks an apply against the owners, and records it unless `dry_run`.
    ///
    /// # Errors
    /// The 409 conflict of the real server, unless `force`.
    pub fn apply(
        &mut self,
        resource: &Resource,
        current: &Value,
        intent: &Value,
        manager: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let (ns, name) = crate::store::names(current);
        let now = paths(current);
        let owners = self.0.entry(key(resource, &ns, &name)).or_default();
        let applied = paths(intent);
        let conflicts: Vec<(String, Owner)> = applied
            .iter()
            .filter(|(path, value)| now.get(*path).is_some_and(|v| v != *value))
            .filter_map(|(path, _)| {
                owners.get(path).filter(|o| o.manager != manager).map(|o| (path.clone(), o.clone()))
            })
            .collect();
        if !conflicts.is_empty() && !force {
            return Err(conflict(resource, &conflicts));
        }
        if dry_run {
            return Ok(());
        }
        for path in applied.keys() {
            owners.insert(path.clone(), Owner { manager: manager.to_owned(), apply: true });
        }
        Ok(())
    }

    pub fn forget(&mut self, resource: &Resource, namespace: &str, name: &str) {
        self.0.remove(&key(resource, namespace, name));
    }
}

/// `NewApplyConflict`'s message and causes.
fn conflict(resource: &Resource, conflicts: &[(String, Owner)]) -> ApiError {
    let describe = |o: &Owner| {
        if o.apply {
            format!("\"{}\"", o.manager)
        } else {
            format!("\"{}\" using {}", o.manager, resource.api_version())
        }
    };
    let message = match conflicts {
        [(path, owner)] => {
            format!("Apply failed with 1 conflict: conflict with {}: {path}", describe(owner))
        }
        many => {
            let mut by_manager: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            for (path, owner) in many {
                by_manager.entry(describe(owner)).or_default().push(path);
            }
            let parts: Vec<String> = by_manager
                .iter()
                .map(|(m, paths)| {
                    format!(
                        "conflicts with {m}:\n{}",
                        paths.iter().map(|p| format!("- {p}")).collect::<Vec<_>>().join("\n")
                    )
                })
                .collect();
            format!("Apply failed with {} conflicts: {}", many.len(), parts.join("\n"))
        }
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(path, o)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", describe(o)), "field": path}))
        .collect();
    ApiError {
        code: 409,
        body: crate::status::Body::Status(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Conflict", "details": {"causes": causes}, "code": 409}),
        ),
        headers: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Containers are keyed by name in paths; metadata other than labels and annotations is
    /// not owned.
    #[test]
    fn field_paths() {
        let p = paths(
            &json!({"apiVersion": "apps/v1", "metadata": {"name": "a", "labels": {"x": "1"}},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}}}),
        );
        let keys: Vec<&str> = p.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                ".metadata.labels.x",
                ".spec.template.spec.containers[name=\"app\"].image",
                ".spec.template.spec.containers[name=\"app\"].name"
            ]
        );
    }
}
