//! kubesim against the real control plane, the ground truth: each test drives the same
//! requests on both clusters and compares what a client sees, field by field where it matters
//! to kubeship and kubectl, after normalising what must differ (names, uids, times,
//! resourceVersions, pod-template-hash, nodes). A difference fails the test with both
//! observations.
//!
//! The real control plane is the test kit's (`kubeship_testkit::controlplane::shared`); when
//! its binaries are not built and `KUBESHIP_CONTROLPLANE` is unset, every test here is skipped
//! with a loud message, as the other real-cluster tests are.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod pods;
mod workloads;

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kubeship_testkit::controlplane::{self, ControlPlane};
use kubesim::{Behaviour, Options, Resource, Simulator};
use serde_json::{Value, json};

const TOKEN: &str = "fidelity-token";

enum Backend {
    Sim(Simulator),
    Real(&'static ControlPlane),
}

/// One cluster, as a client with full rights sees it, in a namespace of its own.
pub struct Side {
    pub name: &'static str,
    backend: Backend,
    http: reqwest::blocking::Client,
    url: String,
    token: Option<String>,
    pub ns: String,
    /// A kubeconfig for kubectl, the namespace as its context's.
    pub kubeconfig: String,
}

/// Both clusters, or None (said loudly) when the real one is not built.
pub fn both(test: &str) -> Option<(Side, Side)> {
    let Some(plane) = controlplane::shared() else {
        eprintln!("SKIPPED {test}: no real control plane to compare kubesim with");
        return None;
    };
    Some((Side::kubesim(test), Side::real(plane, test)))
}

fn client(ca_pem: &str, identity: Option<reqwest::Identity>) -> reqwest::blocking::Client {
    kubeship_testkit::install_crypto_provider();
    let mut builder = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        // Watches run up to their timeoutSeconds; every other request is quick.
        .timeout(Duration::from_secs(120));
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().unwrap()
}

impl Side {
    fn kubesim(test: &str) -> Self {
        let sim = Simulator::start(Options {
            tls: true,
            token: Some(TOKEN.into()),
            ..Options::default()
        })
        .unwrap();
        let http = client(sim.ca_pem().unwrap(), None);
        let url = sim.url();
        let ns = format!("fidelity-{}", test.replace('_', "-"));
        let kubeconfig = sim.kubeconfig(Some(&ns));
        let side = Self {
            name: "kubesim",
            backend: Backend::Sim(sim),
            http,
            url,
            token: Some(TOKEN.into()),
            ns: ns.clone(),
            kubeconfig,
        };
        let (code, body) =
            side.send("POST", "/api/v1/namespaces", Some(json!({"metadata": {"name": ns}})));
        assert_eq!(code, 201, "{body}");
        side
    }

    fn real(plane: &'static ControlPlane, test: &str) -> Self {
        let ns = plane.namespace(&format!("fidelity-{}", test.replace('_', "-"))).unwrap();
        let kubeconfig = plane.admin_kubeconfig(Some(&ns));
        let data = |key: &str| {
            let line = kubeconfig.lines().find_map(|l| l.trim().strip_prefix(key)).unwrap();
            base64::engine::general_purpose::STANDARD.decode(line.trim()).unwrap()
        };
        let pem = [data("client-certificate-data:"), data("client-key-data:")].concat();
        let identity = reqwest::Identity::from_pem(&pem).unwrap();
        Self {
            name: "real",
            backend: Backend::Real(plane),
            http: client(plane.ca_pem(), Some(identity)),
            url: plane.url(),
            token: None,
            ns,
            kubeconfig,
        }
    }

    /// A request; the answer's status and JSON body (`Null` when it is not JSON).
    pub fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let content_type = match method {
            "PATCH" => "application/merge-patch+json",
            _ => "application/json",
        };
        self.request(method, path, body.map(|b| (content_type, b)), None)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Value)>,
        accept: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, body)) = body {
            request = request.header("Content-Type", content_type).body(body.to_string());
        }
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let response = request.send().unwrap();
        let code = response.status().as_u16();
        let text = response.text().unwrap();
        self.settle();
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET that must succeed.
    pub fn get(&self, path: &str) -> Value {
        let (code, body) = self.send("GET", path, None);
        assert_eq!(code, 200, "{} GET {path}: {body}", self.name);
        body
    }

    /// A namespaced path: `pods`, `pods/x`, `apps:deployments/x`.
    pub fn path(&self, resource: &Resource, name: Option<&str>) -> String {
        kubeship_testkit::controlplane::path(resource, Some(&self.ns), name)
    }

    pub fn create(&self, resource: &Resource, mut object: Value) -> Value {
        object["metadata"]["namespace"] = json!(self.ns);
        let (code, body) = self.send("POST", &self.path(resource, None), Some(object));
        assert_eq!(code, 201, "{} creating a {}: {body}", self.name, resource.kind);
        body
    }

    pub fn script(&self, image: &str, behaviour: Behaviour) {
        match &self.backend {
            Backend::Sim(sim) => sim.script(image, behaviour),
            Backend::Real(plane) => plane.script(image, behaviour),
        }
    }

    fn settle(&self) {
        if let Backend::Sim(sim) = &self.backend {
            sim.settle();
        }
    }

    /// Waits until `check` gives a value (both clusters act on their own time).
    pub fn until<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            self.settle();
            if let Some(value) = check() {
                return value;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "{}: never {what}", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A watch of `path` (a collection, with its query) from now on, read in the background.
    pub fn watch(&self, path: &str) -> Watch {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{separator}watch=true&timeoutSeconds=100", self.url);
        let mut request = self.http.get(url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status().as_u16(), 200, "{} watch {path}", self.name);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(response).lines() {
                let Ok(line) = line else { return };
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(event);
                }
            }
        });
        Watch { events }
    }
}

/// The events of a watch so far.
pub struct Watch {
    events: Arc<Mutex<Vec<Value>>>,
}

impl Watch {
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }
}

/// The resourceVersion of a collection now, to watch from.
pub fn list_version(side: &Side, path: &str) -> String {
    side.get(path)["metadata"]["resourceVersion"].as_str().unwrap().to_owned()
}

/// Compares the observations of both clusters; a difference fails with both in full.
pub fn same(what: &str, sim: &Value, real: &Value) {
    eprintln!("{what}: {}", serde_json::to_string(real).unwrap());
    assert!(
        sim == real,
        "{what} differs\n--- kubesim:\n{}\n--- real:\n{}",
        serde_json::to_string_pretty(sim).unwrap(),
        serde_json::to_string_pretty(real).unwrap()
    );
}

/// Removes the keys that must differ between clusters, everywhere in `value`.
pub fn without(value: &Value, keys: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), without(v, keys)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| without(v, keys)).collect()),
        other => other.clone(),
    }
}

/// A condition's type, status and reason, without its times and message.
pub fn conditions(status: &Value) -> Value {
    let mut list: Vec<Value> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!([c["type"], c["status"], c["reason"]]))
        .collect();
    list.sort_by_key(|c| c.to_string());
    json!(list)
}
