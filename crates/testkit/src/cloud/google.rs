//! Google's token services and GKE's `clusters.get`, on loopback, checking what they receive:
//!
//! - `POST /token`: OAuth2's JWT-bearer grant. The assertion must verify RS256 with the
//!   service account's public key, name it in `iss`, this endpoint in `aud`, the
//!   `cloud-platform` scope, and live at most an hour.
//! - `POST /v1/token`: STS token exchange (RFC 8693): the grant, requested and subject token
//!   types, the workload identity provider as `audience`, and a subject token the trusted
//!   [`Issuer`] signed for the provider's audience.
//! - `POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken`: a federated token as
//!   bearer, an account that principal may impersonate, the scope in the JSON body.
//! - `GET /v1/projects/<p>/locations/<l>/clusters/<n>`: an issued access token as bearer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::oidc::Issuer;
use super::server::{Request, Response, Server};

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// What the fake accepts.
#[derive(Clone, Default)]
pub struct Config {
    /// Service-account keys: email → public key PEM.
    pub keys: BTreeMap<String, String>,
    /// The workload identity provider's audience (`//iam.googleapis.com/projects/…`) and the
    /// audience its subject tokens must carry.
    pub provider: Option<(String, String)>,
    pub issuer: Option<Issuer>,
    /// Accounts the federated principal may impersonate.
    pub impersonable: Vec<String>,
    /// GKE clusters: `project/location/name` → (endpoint host:port, CA PEM).
    pub clusters: BTreeMap<String, (String, String)>,
    /// Lifetime of issued tokens, in seconds.
    pub lifetime: u64,
}

/// The fake; stopped on drop.
pub struct FakeGoogle {
    pub server: Server,
    pub config: Arc<Mutex<Config>>,
    /// Every access token issued (service-account and impersonated ones: what GKE accepts).
    pub access_tokens: Arc<Mutex<Vec<String>>>,
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    Response::json(status, &json!({"error": error, "error_description": description}))
}

fn api_error(status: u16, message: &str) -> Response {
    let s = if status == 403 { "PERMISSION_DENIED" } else { "UNAUTHENTICATED" };
    Response::json(status, &json!({"error": {"code": status, "message": message, "status": s}}))
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
}

impl FakeGoogle {
    pub fn start(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(Mutex::new(config));
        let access_tokens = Arc::new(Mutex::new(Vec::new()));
        let federated = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicUsize::new(0));
        let (c, a) = (config.clone(), access_tokens.clone());
        let port = Arc::new(Mutex::new(String::new()));
        let own = port.clone();
        let handler = Arc::new(move |r: &Request| {
            let config = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let base = own.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let issue = |list: &Mutex<Vec<String>>, kind: &str| {
                let token = format!("ya29.{kind}-{}", counter.fetch_add(1, Ordering::SeqCst) + 1);
                list.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(token.clone());
                token
            };
            match (r.method.as_str(), r.path.as_str()) {
                ("POST", "/token") => {
                    jwt_bearer(r, &config, &format!("{base}/token"), || issue(&a, "sa"))
                }
                ("POST", "/v1/token") => exchange(r, &config, || issue(&federated, "fed")),
                ("POST", p) if p.ends_with(":generateAccessToken") => {
                    let holds = |t: &str| {
                        federated
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .iter()
                            .any(|f| f == t)
                    };
                    impersonate(r, &config, holds, || issue(&a, "imp"))
                }
                ("GET", p) if p.starts_with("/v1/projects/") => {
                    let holds = |t: &str| {
                        a.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .iter()
                            .any(|f| f == t)
                    };
                    cluster(r, &config, holds)
                }
                _ => api_error(404, "not found"),
            }
        });
        let server = Server::http(handler)?;
        *port.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = server.url.clone();
        Ok(Self { server, config, access_tokens })
    }

    pub fn access_tokens(&self) -> Vec<String> {
        self.access_tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn jwt_bearer(
    r: &Request,
    config: &Config,
    own_url: &str,
    issue: impl FnOnce() -> String,
) -> Response {
    let form = r.form();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error(400, "unsupported_grant_type", "Invalid grant_type");
    }
    let assertion = form.get("assertion").map(String::as_str).unwrap_or_default();
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return oauth_error(400, "invalid_grant", "Invalid JWT");
    };
    // Peek at the issuer to find the key, then verify with it.
    let unverified = assertion
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok());
    let email = unverified
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["iss"].as_str().map(str::to_owned));
    let Some(public) = email.as_ref().and_then(|e| config.keys.get(e)) else {
        return oauth_error(400, "invalid_grant", "Invalid JWT Signature.");
    };
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()) else {
        return oauth_error(500, "internal", "bad test key");
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[own_url]);
    validation.leeway = 0;
    let claims = match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => return oauth_error(400, "invalid_grant", &format!("Invalid JWT: {e}")),
    };
    if header.alg != jsonwebtoken::Algorithm::RS256 || header.kid.is_none() {
        return oauth_error(400, "invalid_grant", "Invalid JWT header");
    }
    if Some(&claims.iss) != email.as_ref()
        || claims.aud != own_url
        || !claims.scope.split(' ').any(|s| s == SCOPE)
    {
        return oauth_error(
            400,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    if claims.exp <= claims.iat || claims.exp - claims.iat > 3600 {
        return oauth_error(
            400,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes)",
        );
    }
    Response::json(
        200,
        &json!({"access_token": issue(), "expires_in": config.lifetime, "token_type": "Bearer"}),
    )
}

fn exchange(r: &Request, config: &Config, issue: impl FnOnce() -> String) -> Response {
    let form = r.form();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange"
        || get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token"
        || get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt"
    {
        return oauth_error(400, "invalid_request", "Invalid token exchange parameters");
    }
    if !get("scope").split(' ').any(|s| s == SCOPE) {
        return oauth_error(400, "invalid_scope", "The scope is not supported");
    }
    let (Some((audience, token_audience)), Some(issuer)) = (&config.provider, &config.issuer)
    else {
        return oauth_error(
            400,
            "invalid_target",
            "The target service indicated by the audience parameters is invalid",
        );
    };
    if get("audience") != audience {
        return oauth_error(
            400,
            "invalid_target",
            "The audience does not name this workload identity provider",
        );
    }
    if let Err(e) = issuer.verify(get("subject_token"), token_audience) {
        return oauth_error(
            400,
            "invalid_grant",
            &format!("The audience in ID Token does not match or the token is invalid: {e}"),
        );
    }
    Response::json(
        200,
        &json!({"access_token": issue(), "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer", "expires_in": config.lifetime}),
    )
}

fn impersonate(
    r: &Request,
    config: &Config,
    holds: impl Fn(&str) -> bool,
    issue: impl FnOnce() -> String,
) -> Response {
    if !r.bearer().is_some_and(&holds) {
        return api_error(401, "Request had invalid authentication credentials.");
    }
    let email = r
        .path
        .trim_start_matches("/v1/projects/-/serviceAccounts/")
        .trim_end_matches(":generateAccessToken");
    if !config.impersonable.iter().any(|e| e == email) {
        return api_error(
            403,
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        );
    }
    let scoped = r
        .json()
        .is_some_and(|b| b["scope"].as_array().is_some_and(|s| s.iter().any(|v| v == SCOPE)));
    if !scoped {
        return api_error(400, "scope must list https://www.googleapis.com/auth/cloud-platform");
    }
    let expire = super::sts::iso8601(
        std::time::SystemTime::now() + std::time::Duration::from_secs(config.lifetime),
    );
    Response::json(200, &json!({"accessToken": issue(), "expireTime": expire}))
}

fn cluster(r: &Request, config: &Config, holds: impl Fn(&str) -> bool) -> Response {
    if !r.bearer().is_some_and(holds) {
        return api_error(401, "Request had invalid authentication credentials.");
    }
    let key = r
        .path
        .trim_start_matches("/v1/projects/")
        .replace("/locations/", "/")
        .replace("/clusters/", "/");
    match config.clusters.get(&key) {
        Some((endpoint, ca)) => Response::json(
            200,
            &json!({"name": key.rsplit('/').next(), "endpoint": endpoint,
            "status": "RUNNING", "masterAuth": {"clusterCaCertificate": base64::engine::general_purpose::STANDARD.encode(ca)}}),
        ),
        None => api_error(404, &format!("Not found: projects/{key}.")),
    }
}
