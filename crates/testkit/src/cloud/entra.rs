//! Entra ID's v2.0 token endpoint, Azure Resource Manager's `listClusterUserCredential` and the
//! instance metadata service's token endpoint, on loopback, checking what they receive:
//!
//! - `POST /<tenant>/oauth2/v2.0/token`: `grant_type=client_credentials`, the known
//!   `client_id`, a `scope` of `<resource>/.default`, and either the app's `client_secret` or a
//!   `client_assertion` (type `jwt-bearer`) that the trusted [`Issuer`] signed for
//!   `api://AzureADTokenExchange` with the federated credential's subject.
//! - `POST /subscriptions/<s>/resourceGroups/<g>/providers/Microsoft.ContainerService/managedClusters/<n>/listClusterUserCredential`:
//!   a Resource Manager token as bearer; a kubeconfig whose user runs kubelogin.
//! - `GET /metadata/identity/oauth2/token`: `Metadata: true`, `resource`, `api-version`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use super::oidc::Issuer;
use super::server::{Request, Response, Server};

/// What the fake accepts.
#[derive(Clone, Default)]
pub struct Config {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// The federated credential: its issuer and the subject it trusts.
    pub federated: Option<(Issuer, String)>,
    /// Resources a token may be asked for (the AKS server id, Resource Manager).
    pub resources: Vec<String>,
    /// AKS clusters: `subscription/group/name` → (server URL, CA PEM, server id).
    pub clusters: BTreeMap<String, (String, String, String)>,
    pub lifetime: u64,
}

pub struct FakeEntra {
    pub server: Server,
    state: State,
}

type Issued = Arc<Mutex<Vec<(String, String, Instant)>>>;

/// A handle on what the fake issued and serves, for a cluster's authenticator.
#[derive(Clone)]
pub struct State {
    config: Arc<Mutex<Config>>,
    tokens: Issued,
}

impl State {
    /// Tokens issued for `resource`.
    pub fn issued_for(&self, resource: &str) -> Vec<String> {
        let tokens = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.iter().filter(|(r, _, _)| r == resource).map(|(_, t, _)| t.clone()).collect()
    }

    /// Whether `token` was issued for `resource` less than `lifetime` ago (what an API server
    /// checking the token's `exp` accepts).
    pub fn fresh(&self, resource: &str, token: &str, lifetime: Duration) -> bool {
        let tokens = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.iter().any(|(r, t, at)| r == resource && t == token && at.elapsed() < lifetime)
    }

    /// Serves an AKS cluster at `subscription/group/name`.
    pub fn set_cluster(&self, key: &str, server: &str, ca_pem: &str, server_id: &str) {
        let mut config = self.config.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        config.clusters.insert(key.into(), (server.into(), ca_pem.into(), server_id.into()));
    }
}

fn aad_error(status: u16, error: &str, code: u32, description: &str) -> Response {
    Response::json(
        status,
        &json!({"error": error, "error_description": format!("AADSTS{code}: {description}"),
        "error_codes": [code], "timestamp": "2026-12-01 10:00:00Z", "trace_id": "t", "correlation_id": "c"}),
    )
}

impl FakeEntra {
    pub fn start(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(Mutex::new(config));
        let tokens: Issued = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicUsize::new(0));
        let (c, t) = (config.clone(), tokens.clone());
        let handler = Arc::new(move |r: &Request| {
            let config = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let issue = |resource: &str| {
                let token =
                    format!("eyJ0eXAi.entra-{}", counter.fetch_add(1, Ordering::SeqCst) + 1);
                t.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((
                    resource.to_owned(),
                    token.clone(),
                    Instant::now(),
                ));
                token
            };
            let held = |resource: &str, token: &str| {
                t.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .any(|(r, k, _)| r == resource && k == token)
            };
            if r.path.ends_with("/oauth2/v2.0/token") && r.method == "POST" {
                token(r, &config, issue)
            } else if r.path.ends_with("/listClusterUserCredential") && r.method == "POST" {
                credential(r, &config, held)
            } else if r.path == "/metadata/identity/oauth2/token" && r.method == "GET" {
                imds(r, &config, issue)
            } else {
                Response::json(404, &json!({"error": {"code": "NotFound", "message": "not found"}}))
            }
        });
        Ok(Self { server: Server::http(handler)?, state: State { config, tokens } })
    }

    pub fn shared(&self) -> State {
        self.state.clone()
    }
}

fn token(r: &Request, config: &Config, issue: impl Fn(&str) -> String) -> Response {
    let tenant = r.path.trim_start_matches('/').split('/').next().unwrap_or_default();
    if tenant != config.tenant {
        return aad_error(400, "invalid_request", 90002, &format!("Tenant '{tenant}' not found."));
    }
    let form = r.form();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "client_credentials" {
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if get("client_id") != config.client_id {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            "Application was not found in the directory.",
        );
    }
    let Some(resource) =
        get("scope").strip_suffix("/.default").filter(|r| config.resources.iter().any(|k| k == r))
    else {
        return aad_error(
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid.",
        );
    };
    match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(secret), None) if config.client_secret.as_ref() == Some(secret) => {}
        (Some(_), None) => {
            return aad_error(401, "invalid_client", 7000215, "Invalid client secret provided.");
        }
        (None, Some(assertion)) => {
            if get("client_assertion_type")
                != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            {
                return aad_error(400, "invalid_request", 50027, "Invalid client_assertion_type.");
            }
            let Some((issuer, subject)) = &config.federated else {
                return aad_error(
                    400,
                    "invalid_client",
                    70021,
                    "No matching federated identity record found.",
                );
            };
            match issuer.verify(assertion, "api://AzureADTokenExchange") {
                Ok(claims) if &claims.sub == subject => {}
                Ok(claims) => {
                    return aad_error(
                        400,
                        "invalid_client",
                        70021,
                        &format!(
                            "No matching federated identity record found for presented assertion subject '{}'.",
                            claims.sub
                        ),
                    );
                }
                Err(e) => {
                    return aad_error(
                        400,
                        "invalid_client",
                        700024,
                        &format!(
                            "Client assertion is not within its valid time range or invalid: {e}"
                        ),
                    );
                }
            }
        }
        _ => {
            return aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain client_assertion or client_secret.",
            );
        }
    }
    Response::json(
        200,
        &json!({"token_type": "Bearer", "expires_in": config.lifetime, "ext_expires_in": config.lifetime, "access_token": issue(resource)}),
    )
}

fn credential(r: &Request, config: &Config, held: impl Fn(&str, &str) -> bool) -> Response {
    if !r.bearer().is_some_and(|t| held("https://management.azure.com", t)) {
        return Response::json(
            401,
            &json!({"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}}),
        );
    }
    let q = r.query_pairs();
    if q.get("api-version").is_none_or(String::is_empty)
        || q.get("format").map(String::as_str) != Some("exec")
    {
        return Response::json(
            400,
            &json!({"error": {"code": "MissingApiVersionParameter", "message": "The api-version query parameter is required."}}),
        );
    }
    let segments: Vec<&str> = r.path.split('/').collect();
    // ["", "subscriptions", s, "resourceGroups", g, "providers", ns, "managedClusters", n, action]
    let key = match segments.as_slice() {
        [
            _,
            "subscriptions",
            s,
            "resourceGroups",
            g,
            "providers",
            "Microsoft.ContainerService",
            "managedClusters",
            n,
            _,
        ] => format!("{s}/{g}/{n}"),
        _ => {
            return Response::json(
                400,
                &json!({"error": {"code": "InvalidResourceId", "message": "bad path"}}),
            );
        }
    };
    let Some((server, ca, server_id)) = config.clusters.get(&key) else {
        return Response::json(
            404,
            &json!({"error": {"code": "ResourceNotFound", "message": format!("The Resource '{key}' was not found.")}}),
        );
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: aks\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\n\
         contexts:\n- name: aks\n  context:\n    cluster: aks\n    user: clusterUser_aks\ncurrent-context: aks\n\
         users:\n- name: clusterUser_aks\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n\
         \x20     args: [get-token, --environment, AzurePublicCloud, --server-id, {server_id}, --client-id, 80faf920-1908-4b52-b5ef-a8e7bedfc67a, --tenant-id, {}, --login, devicecode]\n",
        b64(ca),
        config.tenant
    );
    Response::json(
        200,
        &json!({"kubeconfigs": [{"name": "clusterUser", "value": b64(&kubeconfig)}]}),
    )
}

fn imds(r: &Request, config: &Config, issue: impl Fn(&str) -> String) -> Response {
    if r.header("metadata") != Some("true") {
        return Response::json(
            400,
            &json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    let q = r.query_pairs();
    let Some(resource) = q.get("resource").filter(|r| config.resources.contains(r)) else {
        return Response::json(
            400,
            &json!({"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal was not found"}),
        );
    };
    Response::json(
        200,
        &json!({"access_token": issue(resource), "expires_in": config.lifetime.to_string(),
        "expires_on": "0", "resource": resource, "token_type": "Bearer"}),
    )
}
