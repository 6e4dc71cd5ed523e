//! Workloads: a Deployment's and its ReplicaSets' status through a rolling update, the
//! generation after annotation-, label- and spec-only changes per kind, the status an object
//! is created with, and StatefulSet availability under minReadySeconds.

use kubesim::resources::{DAEMONSETS, DEPLOYMENTS, PODS, REPLICASETS, STATEFULSETS};
use serde_json::{Value, json};

use super::{Side, both, conditions, list_version, same, without};

fn deployment(name: &str, image: &str, replicas: u32) -> Value {
    json!({"metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

/// The counters of a status (conditions and revisions aside).
fn counters(status: &Value) -> Value {
    without(status, &["conditions", "currentRevision", "updateRevision"])
}

/// A rolling update of 4 replicas (maxSurge 1, maxUnavailable 1): what the Deployment and its
/// ReplicaSets say along the way and at the end.
fn rollout(side: &Side) -> Value {
    side.create(&DEPLOYMENTS, deployment("web", "fidelity-web:1", 4));
    let d_path = side.path(&DEPLOYMENTS, Some("web"));
    side.until("web available", || {
        let d = side.get(&d_path);
        (d["status"]["availableReplicas"] == 4 && d["status"]["updatedReplicas"] == 4).then_some(())
    });
    let rs_path = format!("{}?labelSelector=app%3Dweb", side.path(&REPLICASETS, None));
    let from = list_version(side, &rs_path);
    let deployments = side.watch(&format!(
        "{}?fieldSelector=metadata.name%3Dweb&resourceVersion={from}",
        side.path(&DEPLOYMENTS, None)
    ));
    let sets = side.watch(&format!("{rs_path}&resourceVersion={from}"));
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "fidelity-web:2"}]}}}});
    let (code, _) = side.request(
        "PATCH",
        &d_path,
        Some(("application/strategic-merge-patch+json", image)),
        None,
    );
    assert_eq!(code, 200);
    let pods_path = format!("{}?labelSelector=app%3Dweb", side.path(&PODS, None));
    let d = side.until("the rollout complete and the old pods gone", || {
        let d = side.get(&d_path);
        let s = &d["status"];
        let pods = side.get(&pods_path)["items"].as_array()?.len();
        (s["observedGeneration"] == 2
            && s["updatedReplicas"] == 4
            && s["availableReplicas"] == 4
            && s["replicas"] == 4
            && s["terminatingReplicas"] == 0
            && pods == 4)
            .then_some(d)
    });
    let seen: Vec<Value> =
        deployments.events().iter().map(|e| e["object"]["status"].clone()).collect();
    let max = |field: &str| seen.iter().filter_map(|s| s[field].as_i64()).max().unwrap_or(0);
    // Not compared: the Deployment sums its ReplicaSets' statuses, each as fresh as its last
    // sync, so both clusters can report more than spec + maxSurge replicas (the real one was
    // seen at 6 for 4 + 1) and more available replicas than spec.
    eprintln!(
        "{}: during the surge replicas reached {}, availableReplicas {}, terminatingReplicas {}",
        side.name,
        max("replicas"),
        max("availableReplicas"),
        max("terminatingReplicas")
    );
    let sets_now = side.get(&rs_path)["items"].as_array().unwrap().clone();
    let new_hash = d["spec"]["template"]["metadata"]["labels"]["pod-template-hash"].clone();
    let role = |rs: &Value| {
        let hash = &rs["metadata"]["labels"]["pod-template-hash"];
        if new_hash.is_null() {
            // The template a Deployment keeps carries no hash: the new set runs the new image.
            rs["spec"]["template"]["spec"]["containers"][0]["image"] == "fidelity-web:2"
        } else {
            *hash == new_hash
        }
    };
    // How many times a set was scaled depends on timing: its generation numbers are not
    // compared, only that they moved and were observed.
    let describe = |rs: &Value| {
        json!({"spec.replicas": rs["spec"]["replicas"],
            "status": without(&counters(&rs["status"]), &["observedGeneration"]),
            "generation moved": rs["metadata"]["generation"].as_i64() > Some(1),
            "generation observed": rs["status"]["observedGeneration"] == rs["metadata"]["generation"],
            "revision": rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]})
    };
    let new_rs = sets_now.iter().find(|rs| role(rs)).map(describe);
    let old_rs = sets_now.iter().find(|rs| !role(rs)).map(describe);
    let rs_events = sets.events();
    json!({
        "deployment": {"generation": d["metadata"]["generation"], "status": counters(&d["status"]),
            "conditions": conditions(&d["status"]),
            "revision": d["metadata"]["annotations"]["deployment.kubernetes.io/revision"]},
        "new ReplicaSet": new_rs,
        "old ReplicaSet": old_rs,
        "the Deployment reported terminating pods": max("terminatingReplicas") > 0,
        "a ReplicaSet reported terminating pods": rs_events.iter()
            .any(|e| e["object"]["status"]["terminatingReplicas"].as_i64() > Some(0)),
        "every ReplicaSet status carries terminatingReplicas": rs_events.iter()
            .filter(|e| e["object"]["status"]["observedGeneration"].is_number())
            .all(|e| e["object"]["status"]["terminatingReplicas"].is_number()),
        "the old set scaled down step by step": rs_events.iter()
            .filter_map(|e| e["object"]["spec"]["replicas"].as_i64()).collect::<std::collections::BTreeSet<_>>().len() > 2,
    })
}

#[test]
fn deployment_and_replicaset_status_through_a_rollout() {
    let Some((sim, real)) = both("rollout") else { return };
    same("rollout", &rollout(&sim), &rollout(&real));
}

/// The generation of each kind after an annotation-only, a label-only and a spec change.
fn generations(side: &Side) -> Value {
    let template = json!({"metadata": {"labels": {"app": "gen"}},
        "spec": {"nodeSelector": {"fidelity": "nowhere"}, "containers": [{"name": "app", "image": "fidelity-gen:1"}]}});
    let workload = json!({"metadata": {"name": "gen"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "gen"}}, "template": template}});
    let mut out = serde_json::Map::new();
    for resource in [DEPLOYMENTS, REPLICASETS, STATEFULSETS, DAEMONSETS, PODS] {
        let object = if resource.kind == "Pod" {
            json!({"metadata": {"name": "gen"}, "spec": template["spec"]})
        } else if resource.kind == "DaemonSet" {
            without(&workload, &["replicas"])
        } else {
            workload.clone()
        };
        side.create(&resource, object);
        let path = side.path(&resource, Some("gen"));
        let spec = if resource.kind == "Pod" {
            json!({"spec": {"activeDeadlineSeconds": 600}})
        } else {
            json!({"spec": {"minReadySeconds": 1}})
        };
        let steps = [
            ("annotation", json!({"metadata": {"annotations": {"fidelity": "a"}}})),
            ("label", json!({"metadata": {"labels": {"fidelity": "b"}}})),
            ("spec", spec),
        ];
        let mut seen = vec![json!(["created", side.get(&path)["metadata"]["generation"]])];
        for (step, patch) in steps {
            let (code, body) = side.send("PATCH", &path, Some(patch));
            assert_eq!(code, 200, "{} {step} patch of {}: {body}", side.name, resource.kind);
            seen.push(json!([step, body["metadata"]["generation"]]));
        }
        out.insert(resource.kind.to_owned(), json!(seen));
    }
    Value::Object(out)
}

#[test]
fn generation_after_annotation_label_and_spec_changes() {
    let Some((sim, real)) = both("generation") else { return };
    same("generations", &generations(&sim), &generations(&real));
}

/// The status each workload kind is created with, as the create's answer carries it.
fn initial_status(side: &Side) -> Value {
    let template = json!({"metadata": {"labels": {"app": "zero"}},
        "spec": {"nodeSelector": {"fidelity": "nowhere"}, "containers": [{"name": "app", "image": "fidelity-zero:1"}]}});
    let mut out = serde_json::Map::new();
    for resource in [DEPLOYMENTS, REPLICASETS, STATEFULSETS, DAEMONSETS] {
        let mut object = json!({"metadata": {"name": "zero"},
            "spec": {"selector": {"matchLabels": {"app": "zero"}}, "template": template}});
        if resource.kind != "DaemonSet" {
            object["spec"]["replicas"] = json!(0);
        }
        let created = side.create(&resource, object);
        out.insert(resource.kind.to_owned(), created["status"].clone());
    }
    Value::Object(out)
}

#[test]
fn status_on_create() {
    let Some((sim, real)) = both("initial_status") else { return };
    same("status on create", &initial_status(&sim), &initial_status(&real));
}

/// A StatefulSet with minReadySeconds: ready at once, available only later.
fn statefulset_min_ready(side: &Side) -> Value {
    let sts = json!({"metadata": {"name": "db"},
        "spec": {"replicas": 1, "minReadySeconds": 4, "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "fidelity-db:1"}]}}}});
    side.create(&STATEFULSETS, sts);
    let path = side.path(&STATEFULSETS, Some("db"));
    let ready = side.until("db ready", || {
        let s = side.get(&path)["status"].clone();
        (s["readyReplicas"] == 1).then_some(s)
    });
    let available = side.until("db available", || {
        let s = side.get(&path)["status"].clone();
        (s["availableReplicas"] == 1).then_some(s)
    });
    json!({"once ready": counters(&ready), "once available": counters(&available)})
}

#[test]
fn statefulset_availability_waits_for_min_ready_seconds() {
    let Some((sim, real)) = both("sts_min_ready") else { return };
    same("statefulset", &statefulset_min_ready(&sim), &statefulset_min_ready(&real));
}
