//! The API server's semantics over HTTP: watch resourceVersion rules and the watch-list
//! protocol, list paging and selectors, patch rules, preconditions, dry runs, and every
//! error body and injected fault.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::time::Duration;

use kubesim::{Faults, Options, Simulator, resources};
use serde_json::{Value, json};

struct Api {
    sim: Simulator,
    client: reqwest::blocking::Client,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

impl Api {
    fn start() -> Self {
        kubeship_testkit::install_crypto_provider();
        let sim = Simulator::start(Options { manual_clock: true, ..Options::default() }).unwrap();
        let client =
            reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        Self { sim, client }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request =
            self.client.request(method.parse().unwrap(), format!("{}{path}", self.sim.url()));
        if let Some(ct) = content_type {
            request = request.header("Content-Type", ct);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().unwrap();
        self.sim.settle();
        Answer { status, headers, body }
    }

    fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, None)
    }

    fn patch(&self, path: &str, content_type: &str, body: Value) -> Answer {
        self.send("PATCH", path, Some(content_type), Some(body))
    }

    fn create(&self, name: &str, replicas: u32) -> Value {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"tier": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}});
        let answer = self.send("POST", DEPLOYMENTS, Some("application/json"), Some(d));
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.json()
    }

    /// Reads `n` lines of a watch (or until it closes).
    fn watch(&self, query: &str, n: usize) -> Vec<Value> {
        let response = self
            .client
            .get(format!("{}{DEPLOYMENTS}?watch=true&{query}", self.sim.url()))
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        BufReader::new(response)
            .lines()
            .take(n)
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect()
    }
}

const SMP: &str = "application/strategic-merge-patch+json";

/// resourceVersion="" replays the current objects; an exact version replays only later writes.
#[test]
fn watch_resource_version_semantics() {
    let api = Api::start();
    let a = api.create("a", 1);
    let rv = a["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    api.create("b", 1);
    let all = api.watch("resourceVersion=&timeoutSeconds=1", 2);
    assert!(all.iter().all(|e| e["type"] == "ADDED"));
    let names: Vec<&str> =
        all.iter().map(|e| e["object"]["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    let later = api.watch(
        &format!("resourceVersion={rv}&fieldSelector=metadata.name%3Db&timeoutSeconds=1"),
        1,
    );
    assert_eq!(
        (later[0]["type"].as_str(), later[0]["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );
    assert_eq!(later[0]["object"]["kind"], "Deployment");
}

/// The watch-list stream: ADDED for each object, then a bookmark that carries kind,
/// apiVersion and the initial-events-end annotation.
#[test]
fn watch_list_protocol() {
    let api = Api::start();
    api.create("a", 1);
    let lines = api.watch("sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&fieldSelector=metadata.name%3Da&timeoutSeconds=2", 2);
    assert_eq!(lines[0]["type"], "ADDED");
    let bookmark = &lines[1];
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(
        (bookmark["object"]["kind"].as_str(), bookmark["object"]["apiVersion"].as_str()),
        (Some("Deployment"), Some("apps/v1"))
    );
    assert_eq!(bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
}

/// A version older than the history is a 410 inside a 200 stream, as the watch cache sends it.
#[test]
fn expired_version_is_an_in_stream_410() {
    let api = Api::start();
    let a = api.create("a", 1);
    let rv = a["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    api.create("b", 1);
    api.sim.expire_history();
    let lines = api.watch(&format!("resourceVersion={rv}"), 1);
    assert_eq!(lines[0]["type"], "ERROR");
    assert_eq!(lines[0]["object"]["code"], 410);
    assert_eq!(lines[0]["object"]["reason"], "Expired");
    assert!(
        lines[0]["object"]["message"].as_str().unwrap().starts_with("too old resource version: ")
    );
}

/// timeoutSeconds ends the stream cleanly, with no ERROR event.
#[test]
fn watch_timeout_closes_the_stream() {
    let api = Api::start();
    let rv = api.create("a", 1)["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let lines = api.watch(
        &format!("resourceVersion={rv}&fieldSelector=metadata.name%3Dnone&timeoutSeconds=1"),
        10,
    );
    assert!(lines.is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(1) && started.elapsed() < Duration::from_secs(5)
    );
}

/// Injected: streams closed after N events.
#[test]
fn watches_closed_after_n_events() {
    let api = Api::start();
    api.create("a", 1);
    api.create("b", 1);
    api.sim.set_faults(Faults { close_watches_after: Some(1), ..Faults::default() });
    let rv = "1";
    let lines = api.watch(&format!("resourceVersion={rv}&timeoutSeconds=5"), 10);
    assert_eq!(lines.len(), 1);
}

/// limit/continue paging, items without kind, equality and set-based selectors.
#[test]
fn list_paging_and_selectors() {
    let api = Api::start();
    for name in ["a", "b", "c"] {
        api.create(name, 1);
    }
    let page = api.get(&format!("{DEPLOYMENTS}?limit=2")).json();
    assert_eq!(page["kind"], "DeploymentList");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["items"][0].get("kind").is_none());
    let token = page["metadata"]["continue"].as_str().unwrap();
    let rest = api.get(&format!("{DEPLOYMENTS}?limit=2&continue={token}")).json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["metadata"].get("continue").is_none());
    let selected = api.get(&format!("{DEPLOYMENTS}?fieldSelector=metadata.name%3Db")).json();
    assert_eq!(selected["items"][0]["metadata"]["name"], "b");
    let pods = api.get("/api/v1/namespaces/default/pods?labelSelector=app%20in%20(a,c)").json();
    assert_eq!(pods["items"].as_array().unwrap().len(), 2);
}

/// Generation moves with spec and annotations, not with labels; status is ignored on the main
/// resource and spec on /status.
#[test]
fn generation_and_status_rules() {
    let api = Api::start();
    api.create("a", 1);
    let path = format!("{DEPLOYMENTS}/a");
    let d = api.patch(&path, SMP, json!({"metadata": {"labels": {"x": "y"}}})).json();
    assert_eq!(d["metadata"]["generation"], 1);
    let d = api.patch(&path, SMP, json!({"metadata": {"annotations": {"x": "y"}}})).json();
    assert_eq!(d["metadata"]["generation"], 2);
    let d =
        api.patch(&path, SMP, json!({"spec": {"replicas": 2}, "status": {"replicas": 99}})).json();
    assert_eq!(
        (d["metadata"]["generation"].as_i64(), d["status"]["replicas"].as_i64()),
        (Some(3), Some(1))
    );
    let d = api
        .patch(
            &format!("{path}/status"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 7}, "status": {"replicas": 5}}),
        )
        .json();
    assert_eq!(
        (d["spec"]["replicas"].as_i64(), d["status"]["replicas"].as_i64()),
        (Some(2), Some(5))
    );
    // A no-op patch writes nothing.
    let before = api.get(&path).json()["metadata"]["resourceVersion"].clone();
    let after = api.patch(&path, SMP, json!({"spec": {"replicas": 2}})).json();
    assert_eq!(after["metadata"]["resourceVersion"], before);
}

/// Preconditions, dry runs, and the patch errors, each in the server's words.
#[test]
fn patch_errors_and_dry_run() {
    let api = Api::start();
    api.create("a", 1);
    let path = format!("{DEPLOYMENTS}/a");
    let stale = api.patch(
        &path,
        SMP,
        json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 3}}),
    );
    assert_eq!(stale.status, 409);
    assert_eq!(
        stale.json()["message"],
        "Operation cannot be fulfilled on deployments.apps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let current = api.get(&path).json();
    let dry = api.patch(&format!("{path}?dryRun=All"), SMP, json!({"spec": {"replicas": 5}}));
    assert_eq!(dry.json()["spec"]["replicas"], 5);
    assert_eq!(dry.json()["metadata"]["resourceVersion"], current["metadata"]["resourceVersion"]);
    assert_eq!(api.get(&path).json(), current);

    let failed = api.patch(
        &path,
        "application/json-patch+json",
        json!([{"op": "test", "path": "/spec/replicas", "value": 9}]),
    );
    assert_eq!((failed.status, failed.json()["reason"].as_str()), (422, Some("Invalid")));
    let media = api.patch(&path, "text/plain", json!({}));
    assert_eq!(
        (media.status, media.json()["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let force = api.patch(&format!("{path}?force=true"), SMP, json!({}));
    assert_eq!(force.status, 422);
    assert!(
        force.json()["message"]
            .as_str()
            .unwrap()
            .contains("may not be specified for non-apply patch")
    );
    let selector =
        api.patch(&path, SMP, json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}));
    assert_eq!(selector.status, 422);
    let missing = api.patch(&format!("{DEPLOYMENTS}/nope"), SMP, json!({}));
    assert_eq!(
        missing.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "deployments.apps \"nope\" not found", "reason": "NotFound",
        "details": {"name": "nope", "group": "apps", "kind": "deployments"}, "code": 404})
    );
    let again =
        api.send("POST", DEPLOYMENTS, Some("application/json"), Some(api.get(&path).json()));
    assert_eq!((again.status, again.json()["reason"].as_str()), (409, Some("AlreadyExists")));
    let nowhere = api.send(
        "POST",
        "/apis/apps/v1/namespaces/nope/deployments",
        Some("application/json"),
        Some(json!({"metadata": {"name": "x"}})),
    );
    assert_eq!(nowhere.json()["message"], "namespaces \"nope\" not found");
}

/// Injected faults: 429 as Status and as plain text, 500 on a verb, RBAC 403.
#[test]
fn injected_faults() {
    let api = Api::start();
    api.create("a", 1);
    api.sim.set_faults(Faults { throttle: Some((1, false)), ..Faults::default() });
    let throttled = api.get(DEPLOYMENTS);
    assert_eq!((throttled.status, throttled.headers["retry-after"].to_str().unwrap()), (429, "1"));
    assert_eq!(throttled.json()["details"]["retryAfterSeconds"], 1);
    assert_eq!(api.get(DEPLOYMENTS).status, 200);
    api.sim.set_faults(Faults { throttle: Some((1, true)), ..Faults::default() });
    let text = api.get(DEPLOYMENTS);
    assert_eq!(
        (text.status, text.body.as_str()),
        (429, "Too many requests, please try again later.\n")
    );
    api.sim.set_faults(Faults { fail_verbs: vec!["patch".into()], ..Faults::default() });
    assert_eq!(api.patch(&format!("{DEPLOYMENTS}/a"), SMP, json!({})).status, 500);
    api.sim.set_faults(Faults {
        forbid: vec![("list".into(), "replicasets".into())],
        ..Faults::default()
    });
    let forbidden = api.get("/apis/apps/v1/namespaces/default/replicasets");
    assert_eq!(forbidden.status, 403);
    assert!(
        forbidden.json()["message"]
            .as_str()
            .unwrap()
            .contains("cannot list resource \"replicasets\" in API group \"apps\"")
    );
    api.sim.set_faults(Faults::default());
    assert_eq!(api.get("/apis/apps/v1/namespaces/default/replicasets").status, 200);
}

/// The controllers' first status write for a new template keeps the old observedGeneration.
#[test]
fn new_rollout_writes_status_twice() {
    let api = Api::start();
    api.create("a", 2);
    let rv = api.get(&format!("{DEPLOYMENTS}/a")).json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    api.patch(&format!("{DEPLOYMENTS}/a"), SMP, json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}));
    let events = api.watch(
        &format!("resourceVersion={rv}&fieldSelector=metadata.name%3Da&timeoutSeconds=1"),
        3,
    );
    let seen: Vec<(i64, i64, String)> = events
        .iter()
        .map(|e| {
            let o = &e["object"];
            let reason = o["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Progressing")
                .map(|c| c["reason"].as_str().unwrap().to_owned())
                .unwrap_or_default();
            (
                o["metadata"]["generation"].as_i64().unwrap(),
                o["status"]["observedGeneration"].as_i64().unwrap(),
                reason,
            )
        })
        .collect();
    assert_eq!(seen[0], (2, 1, "NewReplicaSetAvailable".into()), "{seen:?}");
    assert_eq!(seen[1], (2, 1, "NewReplicaSetCreated".into()), "{seen:?}");
    assert_eq!((seen[2].0, seen[2].1), (2, 2), "{seen:?}");
    let rs = api.sim.list(&resources::REPLICASETS, "default");
    assert_eq!(rs.len(), 2);
}

/// Server-side apply: a field another manager changed is a conflict in the server's words;
/// force takes it over; apply creates a missing object.
#[test]
fn server_side_apply_conflicts() {
    let api = Api::start();
    let apply = "application/apply-patch+yaml";
    let intent = |image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
        "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "app", "image": image}]}}}})
    };
    let created = api.patch(&format!("{DEPLOYMENTS}/a?fieldManager=ci"), apply, intent("app:1"));
    assert_eq!(created.status, 201, "{}", created.body);
    let set = api.patch(&format!("{DEPLOYMENTS}/a?fieldManager=kubectl-set"), SMP,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}));
    assert_eq!(set.status, 200);

    let conflict = api.patch(&format!("{DEPLOYMENTS}/a?fieldManager=ci"), apply, intent("app:3"));
    assert_eq!(conflict.status, 409);
    let body = conflict.json();
    assert_eq!(
        body["message"],
        "Apply failed with 1 conflict: conflict with \"kubectl-set\" using apps/v1: .spec.template.spec.containers[name=\"app\"].image"
    );
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldManagerConflict");
    assert_eq!(
        api.get(&format!("{DEPLOYMENTS}/a")).json()["spec"]["template"]["spec"]["containers"][0]["image"],
        "app:2"
    );

    let forced =
        api.patch(&format!("{DEPLOYMENTS}/a?fieldManager=ci&force=true"), apply, intent("app:3"));
    assert_eq!(forced.json()["spec"]["template"]["spec"]["containers"][0]["image"], "app:3");
    let other = api.patch(&format!("{DEPLOYMENTS}/a?fieldManager=other"), apply, intent("app:4"));
    assert_eq!(
        other.json()["message"],
        "Apply failed with 1 conflict: conflict with \"ci\": .spec.template.spec.containers[name=\"app\"].image"
    );
    // Applying the value a field already has is no conflict.
    assert_eq!(
        api.patch(&format!("{DEPLOYMENTS}/a?fieldManager=other"), apply, intent("app:3")).status,
        200
    );
    let missing = api.patch(&format!("{DEPLOYMENTS}/a"), apply, intent("app:5"));
    assert!(missing.json()["message"].as_str().unwrap().contains("fieldManager: Required value"));
}

/// Objects are decoded into their typed form: a value of the wrong type is a 400.
#[test]
fn wrongly_typed_values_are_refused() {
    let api = Api::start();
    let bad = json!({"metadata": {"name": "x"}, "spec": {"replicas": "three", "selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "app", "image": "a"}]}}}});
    let answer = api.send("POST", DEPLOYMENTS, Some("application/json"), Some(bad));
    assert_eq!((answer.status, answer.json()["reason"].as_str()), (400, Some("BadRequest")));
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: ")
    );
    api.create("a", 1);
    let patched = api.patch(&format!("{DEPLOYMENTS}/a"), SMP, json!({"spec": {"replicas": "x"}}));
    assert_eq!(patched.status, 400);
}

/// Watches that allow bookmarks get them periodically, with kind, apiVersion and a version
/// that covers what was looked at.
#[test]
fn periodic_bookmarks() {
    kubeship_testkit::install_crypto_provider();
    let options = Options {
        manual_clock: true,
        bookmark_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let api =
        Api { sim: Simulator::start(options).unwrap(), client: reqwest::blocking::Client::new() };
    let rv = api.create("a", 1)["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let lines = api.watch(&format!("resourceVersion={rv}&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dnone&timeoutSeconds=2"), 1);
    assert_eq!(lines[0]["type"], "BOOKMARK");
    assert_eq!(lines[0]["object"]["kind"], "Deployment");
    let bookmarked: u64 =
        lines[0]["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(bookmarked >= rv.parse::<u64>().unwrap());
    // Without allowWatchBookmarks, none.
    let none = api.watch(
        &format!("resourceVersion={rv}&fieldSelector=metadata.name%3Dnone&timeoutSeconds=1"),
        1,
    );
    assert!(none.is_empty());
}
