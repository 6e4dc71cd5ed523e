//! GitHub's OIDC token endpoint as the runner exposes it to a job with `id-token: write`:
//! `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=<aud>` with `Authorization: Bearer
//! $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered `{"value": "<JWT>"}` (the actions toolkit's
//! `getIDToken`). The JWT is the [`Issuer`]'s, for the audience asked, subject
//! `repo:acme/app:ref:refs/heads/main`; a wrong request token is a 401.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::oidc::Issuer;
use super::server::{Request, Response, Server};

pub const SUBJECT: &str = "repo:acme/app:ref:refs/heads/main";

/// The endpoint; stopped on drop.
pub struct GitHubOidc {
    pub server: Server,
    pub request_token: String,
    pub issuer: Issuer,
    minted: Arc<Mutex<Vec<String>>>,
}

impl GitHubOidc {
    /// Tokens live `lifetime_secs` (GitHub's are minutes).
    pub fn start(issuer: Issuer, lifetime_secs: u64) -> anyhow::Result<Self> {
        let request_token = "gh-request-token-5f1d2".to_owned();
        let (expected, signer) = (request_token.clone(), issuer.clone());
        let minted = Arc::new(Mutex::new(Vec::new()));
        let log = minted.clone();
        let handler = Arc::new(move |r: &Request| {
            if r.method != "GET" || r.path != "/_apis/token" {
                return Response::json(404, &json!({"message": "not found"}));
            }
            if r.bearer() != Some(expected.as_str()) {
                return Response::json(401, &json!({"message": "Bad credentials"}));
            }
            let query = r.query_pairs();
            if query.get("api-version").map(String::as_str) != Some("2.0") {
                return Response::json(400, &json!({"message": "api-version is required"}));
            }
            let audience =
                query.get("audience").cloned().unwrap_or_else(|| "https://github.com/acme".into());
            let token = signer.mint(&audience, SUBJECT, lifetime_secs);
            log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(token.clone());
            Response::json(200, &json!({"count": 1, "value": token}))
        });
        Ok(Self { server: Server::http(handler)?, request_token, issuer, minted })
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL` (with its `api-version`, as the runner gives it) and
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                format!("{}/_apis/token?api-version=2.0", self.server.url),
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", self.request_token.clone()),
        ]
    }

    /// Every token handed out.
    pub fn minted(&self) -> Vec<String> {
        self.minted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The audiences asked for, in order.
    pub fn audiences(&self) -> Vec<String> {
        self.server
            .requests()
            .iter()
            .filter_map(|r| r.query_pairs().get("audience").cloned())
            .collect()
    }
}
