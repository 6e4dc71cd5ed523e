//! Pods: graceful deletion (Terminating, then gone) and a Deployment's deletion through the
//! garbage collector, the events of a failing and of an unschedulable pod in the core/v1
//! view, what admission adds to a pod, and watch events of a pod entering and leaving a
//! label selector.

use std::collections::BTreeSet;
use std::time::Duration;

use kubesim::Behaviour;
use kubesim::resources::{DEPLOYMENTS, EVENTS, PODS, REPLICASETS, SERVICE_ACCOUNTS};
use serde_json::{Value, json};

use super::{Side, both, list_version, same, without};

fn pod(name: &str, image: &str, extra: Value) -> Value {
    let mut pod = json!({"metadata": {"name": name, "labels": {"fidelity": name}},
        "spec": {"containers": [{"name": "app", "image": image}]}});
    if let (Some(spec), Some(extra)) = (pod["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    pod
}

fn unschedulable() -> Value {
    json!({"nodeSelector": {"fidelity": "nowhere"}})
}

fn running(side: &Side, name: &str) {
    let path = side.path(&PODS, Some(name));
    side.until(&format!("{name} ready"), || {
        let p = side.get(&path);
        p["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            .then_some(())
    });
}

/// What a watch event says about a pod's deletion.
fn step(event: &Value) -> Value {
    let o = &event["object"];
    let state = o["status"]["containerStatuses"][0]["state"]
        .as_object()
        .and_then(|s| s.keys().next().cloned());
    json!({"type": event["type"], "phase": o["status"]["phase"], "generation": o["metadata"]["generation"],
        "deletionTimestamp": o["metadata"]["deletionTimestamp"].is_string(),
        "deletionGracePeriodSeconds": o["metadata"]["deletionGracePeriodSeconds"], "container": state})
}

/// The answer of a DELETE and the watch events until the pod is gone.
fn delete_and_follow(side: &Side, name: &str) -> Value {
    let pods = side.path(&PODS, None);
    let from = list_version(side, &pods);
    let watch =
        side.watch(&format!("{pods}?fieldSelector=metadata.name%3D{name}&resourceVersion={from}"));
    let (code, answer) = side.send("DELETE", &side.path(&PODS, Some(name)), None);
    let events = side.until(&format!("{name} gone"), || {
        let events = watch.events();
        events.iter().any(|e| e["type"] == "DELETED").then_some(events)
    });
    json!({"answer": {"code": code, "kind": answer["kind"], "generation": answer["metadata"]["generation"],
            "deletionGracePeriodSeconds": answer["metadata"]["deletionGracePeriodSeconds"]},
        "watch": events.iter().map(step).collect::<Vec<_>>()})
}

fn deletions(side: &Side) -> Value {
    side.create(&PODS, pod("doomed", "fidelity-doomed:1", json!({})));
    running(side, "doomed");
    side.create(&PODS, pod("waiting", "fidelity-doomed:1", unschedulable()));
    let scheduled = delete_and_follow(side, "doomed");
    let unscheduled = delete_and_follow(side, "waiting");

    // A Deployment: gone at once, its ReplicaSet after it, its pods gracefully after that.
    let d = json!({"metadata": {"name": "gc"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "gc"}},
        "template": {"metadata": {"labels": {"app": "gc"}}, "spec": {"containers": [{"name": "app", "image": "fidelity-gc:1"}]}}}});
    side.create(&DEPLOYMENTS, d);
    let pods_path = format!("{}?labelSelector=app%3Dgc", side.path(&PODS, None));
    side.until("gc's pods ready", || {
        let items = side.get(&pods_path)["items"].as_array()?.clone();
        (items.len() == 2 && items.iter().all(|p| p["status"]["phase"] == "Running")).then_some(())
    });
    let from = list_version(side, &side.path(&PODS, None));
    let watches = [
        side.watch(&format!("{}?resourceVersion={from}", side.path(&DEPLOYMENTS, None))),
        side.watch(&format!("{}?resourceVersion={from}", side.path(&REPLICASETS, None))),
        side.watch(&format!("{pods_path}&resourceVersion={from}")),
    ];
    let (code, answer) = side.send("DELETE", &side.path(&DEPLOYMENTS, Some("gc")), None);
    let [deployments, sets, pods] = watches;
    let pod_events = side.until("gc's pods gone, as its watch saw", || {
        let events = pods.events();
        (events.iter().filter(|e| e["type"] == "DELETED").count() == 2).then_some(events)
    });
    let version = |e: &Value| -> u64 {
        e["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
    };
    let deleted = |events: Vec<Value>| events.iter().find(|e| e["type"] == "DELETED").map(version);
    // What each pod went through, and whether the owner went before its dependents.
    let mut per_pod: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for e in &pod_events {
        let o = &e["object"];
        let what = match e["type"].as_str().unwrap() {
            "MODIFIED" if o["metadata"]["deletionTimestamp"].is_string() => "deleting",
            "MODIFIED" => continue,
            other => other,
        };
        let steps = per_pod.entry(o["metadata"]["name"].as_str().unwrap().to_owned()).or_default();
        if steps.last() != Some(&what) {
            steps.push(what);
        }
    }
    let first_pod_deletion = pod_events
        .iter()
        .filter(|e| e["object"]["metadata"]["deletionTimestamp"].is_string())
        .map(version)
        .min();
    let (deployment_gone, set_gone) = (deleted(deployments.events()), deleted(sets.events()));
    let order = json!({
        "the Deployment before its ReplicaSet": deployment_gone < set_gone,
        "the ReplicaSet before its pods": set_gone.is_some() && set_gone < first_pod_deletion,
        "each pod": per_pod.into_values().collect::<Vec<_>>(),
    });
    json!({"pod on a node": scheduled, "unscheduled pod": unscheduled,
        "deployment": {"code": code, "answer": without(&answer, &["uid"]), "order": order}})
}

#[test]
fn graceful_deletion_and_garbage_collection() {
    let Some((sim, real)) = both("deletion") else { return };
    same("deletions", &deletions(&sim), &deletions(&real));
}

/// An event as compared: what identifies it and the shape of its times and counts.
fn shape(e: &Value) -> Value {
    let kind_of = |v: &Value| match v {
        Value::Null => "null".to_owned(),
        Value::String(s) if s.len() == 27 && s.ends_with('Z') => "micro".to_owned(),
        Value::String(_) => "time".to_owned(),
        other => other.to_string(),
    };
    // The scheduler's instance is named after its host; the kubelet's is its node's name.
    let instance = e["reportingInstance"].as_str().unwrap_or_default();
    let instance = match instance {
        i if i.starts_with("default-scheduler-") => "default-scheduler-<host>",
        i if i.starts_with("node-") => "<node>",
        i => i,
    };
    let mut source = e["source"].clone();
    if source["host"].is_string() {
        source["host"] = json!("<node>");
    }
    let object = e["involvedObject"]["name"].as_str().unwrap_or_default();
    json!({"object": object, "reason": e["reason"], "type": e["type"],
        "fieldPath": e["involvedObject"]["fieldPath"], "source": source, "action": e["action"],
        "reportingComponent": e["reportingComponent"], "reportingInstance": instance,
        "firstTimestamp": kind_of(&e["firstTimestamp"]), "lastTimestamp": kind_of(&e["lastTimestamp"]),
        "eventTime": kind_of(&e["eventTime"]), "count": e.get("count").is_some(), "series": e.get("series").is_some()})
}

fn failing_pods(side: &Side) -> Value {
    side.script(
        "fidelity-crash:1",
        Behaviour {
            crash: Some((Duration::from_millis(300), "Error".into(), 2)),
            ..Behaviour::default()
        },
    );
    side.create(&PODS, pod("crash", "fidelity-crash:1", json!({})));
    side.create(&PODS, pod("pull", "127.0.0.1:1/fidelity/missing:v1", json!({})));
    side.create(&PODS, pod("nowhere", "fidelity-ok:1", unschedulable()));
    let events_path = side.path(&EVENTS, None);
    let events = side.until("the back-offs and the scheduling failure", || {
        let items = side.get(&events_path)["items"].as_array()?.clone();
        let has = |object: &str, message: &str| {
            items.iter().any(|e| {
                e["involvedObject"]["name"] == object
                    && e["message"].as_str().is_some_and(|m| m.starts_with(message))
            })
        };
        (has("crash", "Back-off restarting")
            && has("pull", "Back-off pulling")
            && has("nowhere", "0/"))
        .then_some(items)
    });
    let shapes: BTreeSet<String> = events.iter().map(|e| shape(e).to_string()).collect();
    let condition = |name: &str| {
        let p = side.get(&side.path(&PODS, Some(name)));
        let c = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "PodScheduled")
            .unwrap()
            .clone();
        without(&c, &["lastTransitionTime", "lastProbeTime"])
    };
    json!({"events": shapes.into_iter().map(|s| serde_json::from_str::<Value>(&s).unwrap()).collect::<Vec<_>>(),
        "PodScheduled of the unschedulable pod": condition("nowhere"),
        "PodScheduled of a scheduled pod": condition("crash")})
}

#[test]
fn events_of_failing_and_unschedulable_pods() {
    let Some((sim, real)) = both("events") else { return };
    same("events", &failing_pods(&sim), &failing_pods(&real));
}

/// What admission makes of a bare pod, and a pod naming a missing service account.
fn admission(side: &Side) -> Value {
    let created = side.create(&PODS, pod("bare", "fidelity-bare:1", unschedulable()));
    let mut spec = created["spec"].clone();
    let volume = spec["volumes"][0]["name"].as_str().unwrap_or_default().to_owned();
    let prefix = volume.strip_prefix("kube-api-access-").map(str::len);
    assert_eq!(prefix, Some(5), "{}: {volume}", side.name);
    let text = spec.to_string().replace(&volume, "kube-api-access-*");
    spec = serde_json::from_str(&text).unwrap();
    let (code, refused) = side.send(
        "POST",
        &side.path(&PODS, None),
        Some(pod("stranger", "fidelity-bare:1", json!({"serviceAccountName": "nope"}))),
    );
    let message = refused["message"].as_str().unwrap_or_default().replace(&side.ns, "<ns>");
    let account = side.get(&side.path(&SERVICE_ACCOUNTS, Some("default")));
    json!({"spec": spec, "metadata.generation": created["metadata"]["generation"],
        "status": created["status"],
        "missing service account": {"code": code, "reason": refused["reason"], "message": message,
            "details": refused["details"]},
        "default service account": account["metadata"]["name"]})
}

#[test]
fn pod_admission_and_service_accounts() {
    let Some((sim, real)) = both("admission") else { return };
    same("admission", &admission(&sim), &admission(&real));
}

/// A watch with a label selector while a pod's labels move in and out of it.
fn selector_transitions(side: &Side) -> Value {
    side.create(&PODS, pod("mover", "fidelity-mover:1", unschedulable()));
    let path = side.path(&PODS, Some("mover"));
    // The scheduler's write first, so only the label changes below move the pod.
    side.until("the scheduler to give up on mover", || {
        side.get(&path)["status"]["conditions"].as_array().map(|_| ())
    });
    let pods = side.path(&PODS, None);
    let from = list_version(side, &pods);
    let watch = side.watch(&format!("{pods}?labelSelector=tier%3Dfront&resourceVersion={from}"));
    let mut versions = Vec::new();
    for tier in ["front", "back", "front"] {
        let (code, body) =
            side.send("PATCH", &path, Some(json!({"metadata": {"labels": {"tier": tier}}})));
        assert_eq!(code, 200);
        versions.push(body["metadata"]["resourceVersion"].clone());
    }
    side.send("DELETE", &path, None);
    let events = side.until("the watch to see the deletion", || {
        let events = watch.events();
        (events.iter().filter(|e| e["type"] == "DELETED").count() == 2).then_some(events)
    });
    let seen: Vec<Value> = events
        .iter()
        .map(|e| {
            let o = &e["object"];
            json!({"type": e["type"], "tier": o["metadata"]["labels"]["tier"],
                "deleting": o["metadata"]["deletionTimestamp"].is_string(),
                "at the write's version": versions.contains(&o["metadata"]["resourceVersion"])})
        })
        .collect();
    json!(seen)
}

#[test]
fn watch_events_entering_and_leaving_a_selector() {
    let Some((sim, real)) = both("selector") else { return };
    same("selector transitions", &selector_transitions(&sim), &selector_transitions(&real));
}
