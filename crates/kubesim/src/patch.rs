//! The patch types the API server takes for built-in resources: strategic merge
//! (`k8s.io/apimachinery/pkg/util/strategicpatch`), JSON merge (RFC 7386) and JSON patch
//! (RFC 6902). Apply is served as a strategic merge of the intent (see `api.rs`).

use serde_json::{Map, Value};

/// The `patchMergeKey` of the lists kubeship and kubectl touch (from the Go struct tags of
/// `k8s.io/api`). Lists not named here are replaced, as `patchStrategy`-less lists are.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Primitive lists with `patchStrategy: merge`.
fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a strategic merge patch to `target`.
///
/// # Errors
/// A message for a malformed directive.
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return Ok(()) };
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (key, value) in patch {
        if key == "$patch" {
            continue;
        }
        if let Some(list) = key.strip_prefix("$setElementOrder/") {
            orders.push((list.to_owned(), value.as_array().cloned().unwrap_or_default()));
            continue;
        }
        if key == "$retainKeys" {
            let keep: Vec<&str> =
                value.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            map.retain(|k, _| keep.contains(&k.as_str()) || patch.contains_key(k));
            continue;
        }
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let Some(Value::Array(items)) = map.get_mut(list) {
                let remove = value.as_array().cloned().unwrap_or_default();
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Object(inner)
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                map.remove(key);
            }
            Value::Object(_) => {
                let slot = map.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, value)?;
            }
            Value::Array(items) => {
                let merged = match (merge_key(key), map.get(key)) {
                    (Some(merge_key), Some(Value::Array(current))) => {
                        merge_list(current, items, merge_key)?
                    }
                    (None, Some(Value::Array(current))) if merges_primitives(key) => {
                        let mut out = current.clone();
                        out.extend(items.iter().filter(|i| !current.contains(i)).cloned());
                        out
                    }
                    (Some(_), _) => {
                        // No list yet: directives still must not land in the object.
                        items.iter().filter(|i| i.get("$patch").is_none()).cloned().collect()
                    }
                    _ => items.clone(),
                };
                map.insert(key.clone(), Value::Array(merged));
            }
            other => {
                map.insert(key.clone(), other.clone());
            }
        }
    }
    for (list, order) in orders {
        let (Some(Value::Array(items)), Some(merge_key)) = (map.get_mut(&list), merge_key(&list))
        else {
            continue;
        };
        let position =
            |item: &Value| order.iter().position(|o| o.get(merge_key) == item.get(merge_key));
        // Listed elements in the given order; the server's extra elements keep their place after.
        items.sort_by_key(|item| position(item).unwrap_or(usize::MAX));
    }
    Ok(())
}

fn merge_list(current: &[Value], patch: &[Value], key: &str) -> Result<Vec<Value>, String> {
    let mut out = current.to_vec();
    for item in patch {
        let id = item
            .get(key)
            .ok_or_else(|| format!("map: {item} does not contain declared merge key: {key}"))?;
        let index = out.iter().position(|c| c.get(key) == Some(id));
        match (item.get("$patch").and_then(Value::as_str), index) {
            (Some("delete"), Some(i)) => {
                out.remove(i);
            }
            (Some("delete"), None) => {}
            (Some("replace"), Some(i)) => {
                let mut replacement = item.clone();
                if let Value::Object(m) = &mut replacement {
                    m.remove("$patch");
                }
                out[i] = replacement;
            }
            (_, Some(i)) => strategic_merge(&mut out[i], item)?,
            // The real server appends an element whose key is new: a typo'd container name
            // adds a container.
            (_, None) => {
                let mut added = Value::Null;
                strategic_merge(&mut added, item)?;
                out.push(added);
            }
        }
    }
    Ok(out)
}

/// RFC 7386: objects merge, `null` deletes, everything else (lists included) replaces.
pub fn json_merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902. A failed operation (a failed `test` included) is the caller's 422.
///
/// # Errors
/// The decoding or application error's text.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), (bool, String)> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| (true, format!("error decoding patch: {e}")))?;
    json_patch::patch(target, &ops).map_err(|e| (false, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "proxy:1"}
        ]}}}})
    }

    /// What kubectl set image sends: merged by name, other fields and containers kept.
    #[test]
    fn image_change_merges_by_name() {
        let mut d = deployment();
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"image": "app@sha256:abc", "name": "app"}]}}}});
        strategic_merge(&mut d, &patch).unwrap();
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["image"], "app@sha256:abc");
        assert_eq!(c[0]["env"][0]["value"], "1");
        assert_eq!(c[1]["image"], "proxy:1");
    }

    /// An unknown container name is appended, as the real server does.
    #[test]
    fn unknown_name_is_appended() {
        let mut d = deployment();
        strategic_merge(&mut d, &json!({"spec": {"template": {"spec": {"containers": [{"name": "typo", "image": "x"}]}}}})).unwrap();
        assert_eq!(d["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 3);
    }

    /// $patch: delete removes an element; null removes a field; $setElementOrder reorders.
    #[test]
    fn directives() {
        let mut d = deployment();
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [{"name": "app", "env": [{"name": "A", "$patch": "delete"}], "ports": null}]}}}});
        strategic_merge(&mut d, &patch).unwrap();
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["name"], "sidecar");
        assert_eq!(c[1]["env"], json!([]));
        assert!(c[1].get("ports").is_none());
    }

    /// Lists without a merge key are replaced; a missing merge key is an error.
    #[test]
    fn replace_and_errors() {
        let mut v = json!({"spec": {"tolerations": [{"key": "a"}]}});
        strategic_merge(&mut v, &json!({"spec": {"tolerations": [{"key": "b"}]}})).unwrap();
        assert_eq!(v["spec"]["tolerations"], json!([{"key": "b"}]));
        let mut d = deployment();
        assert!(
            strategic_merge(
                &mut d,
                &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
            )
            .is_err()
        );
    }

    /// Merge patch replaces lists wholesale.
    #[test]
    fn merge_patch_replaces_lists() {
        let mut d = deployment();
        json_merge(
            &mut d,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x"}]}}}}),
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "x"}])
        );
    }

    /// A failed JSON patch test is reported as an application error, not a decoding one.
    #[test]
    fn json_patch_test_failure() {
        let mut d = deployment();
        let patch = json!([{"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "nope"}]);
        assert!(matches!(json_patch(&mut d, &patch), Err((false, _))));
        assert!(matches!(json_patch(&mut d, &json!({"op": 1})), Err((true, _))));
    }
}
