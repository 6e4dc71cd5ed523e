//! Talking to the API server from a test: kubeconfig text for each kind of user, and a small
//! blocking client whose errors are kubesim's [`ApiError`], so a scenario reads the same
//! against both clusters.

use std::time::Duration;

use base64::Engine as _;
use kubesim::status::Body;
use kubesim::{ApiError, Resource};
use serde_json::{Value, json};

use super::pki::Pair;

/// How a kubeconfig's user authenticates.
pub enum Credentials<'a> {
    Certificate(&'a Pair),
    Token(&'a str),
}

/// A kubeconfig for `server` with one context, `kubeship-test`.
pub fn kubeconfig(
    server: &str,
    ca_pem: &str,
    user: &str,
    credentials: Credentials<'_>,
    namespace: Option<&str>,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let auth = match credentials {
        Credentials::Certificate(pair) => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&pair.cert_pem),
            b64(&pair.key_pem)
        ),
        Credentials::Token(token) => format!("    token: {token}\n"),
    };
    let namespace = namespace.map(|ns| format!("    namespace: {ns}\n")).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubeship-test\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {user}\n  user:\n{auth}contexts:\n- name: kubeship-test\n  context:\n    cluster: kubeship-test\n    user: {user}\n{namespace}\
         current-context: kubeship-test\n",
        ca = b64(ca_pem),
    )
}

/// The path of a resource's collection (`name` None) or of one object.
pub fn path(resource: &Resource, namespace: Option<&str>, name: Option<&str>) -> String {
    let base = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    let ns = match namespace {
        Some(ns) if resource.namespaced => format!("/namespaces/{ns}"),
        _ => String::new(),
    };
    let name = name.map(|n| format!("/{n}")).unwrap_or_default();
    format!("{base}{ns}/{}{name}", resource.plural)
}

/// A blocking client of the API server with one identity.
#[derive(Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    pub fn new(url: &str, ca_pem: &str, credentials: Credentials<'_>) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let mut builder = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
            .timeout(Duration::from_secs(30));
        let mut token = None;
        match credentials {
            Credentials::Certificate(pair) => {
                let pem = format!("{}{}", pair.cert_pem, pair.key_pem);
                builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
            }
            Credentials::Token(t) => token = Some(t.to_owned()),
        }
        Ok(Self { http: builder.build()?, url: url.to_owned(), token })
    }

    /// Sends a request; a non-2xx answer is the API server's error, a failure to get any
    /// answer is an `ApiError` with code 0 and the transport error as text.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<Value, ApiError> {
        let transport = |e: &dyn std::fmt::Display| ApiError {
            code: 0,
            body: Body::Text(format!("{method} {path}: {e}")),
            headers: Vec::new(),
        };
        let method: reqwest::Method = method.parse().map_err(|e| transport(&e))?;
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, body)) = body {
            request = request.header("Content-Type", content_type).body(body.to_string());
        }
        let response = request.send().map_err(|e| transport(&e))?;
        let code = response.status().as_u16();
        let text = response.text().map_err(|e| transport(&e))?;
        let value = serde_json::from_str::<Value>(&text);
        if (200..300).contains(&code) {
            return value.map_err(|e| transport(&e));
        }
        let body = match value {
            Ok(v) => Body::Status(v),
            Err(_) => Body::Text(text),
        };
        Err(ApiError { code, body, headers: Vec::new() })
    }

    /// A GET whose answer is text (`/readyz`, logs): its status and body.
    pub fn get_text(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send()?;
        let code = response.status().as_u16();
        Ok((code, response.text()?))
    }

    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.request("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.request("POST", path, Some(("application/json", body)))
    }

    pub fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, ApiError> {
        self.request("PATCH", path, Some(("application/merge-patch+json", patch)))
    }

    pub fn delete(&self, path: &str) -> Result<Value, ApiError> {
        self.request("DELETE", path, None)
    }

    /// Creates `object` unless one of its name exists already.
    pub fn ensure(&self, path: &str, object: &Value) -> Result<(), ApiError> {
        match self.post(path, object) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The message of an API error, for assertions and reports.
pub fn message(error: &ApiError) -> String {
    match &error.body {
        Body::Status(s) => s["message"].as_str().map_or_else(|| s.to_string(), str::to_owned),
        Body::Text(t) => t.clone(),
    }
}

/// A TokenRequest for a service account's token, valid an hour.
pub fn token_request() -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}})
}
