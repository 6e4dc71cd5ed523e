//! A token service for distribution's token auth (`docs/spec/auth/token.md`): anonymous
//! tokens, tokens after Basic credentials, the OAuth2 refresh-token `POST` behind identity
//! tokens, and switches for the failures tests need. Tokens are RS256 JWTs with an `x5c`
//! header, as distribution 2.8 verifies them. Plain HTTP on its own port, or HTTPS with a
//! test CA ([`TokenServer::start_tls`]), which is where clients may send credentials.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Serialize;

use crate::certs::SigningKey;

/// One request the token service received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub method: String,
    /// The `scope` asked for.
    pub scope: String,
    /// The user authenticated by Basic credentials or a refresh token.
    pub user: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Everything the client sent that could carry a secret: the URL, the `Authorization`
    /// header and the body.
    pub received: String,
}

#[derive(Default)]
struct State {
    users: BTreeMap<String, String>,
    refresh_tokens: BTreeMap<String, String>,
    /// User → the only repository that user's tokens grant (to test a token for another one).
    restricted: BTreeMap<String, String>,
    anonymous_pull: bool,
    fail_with: Option<u16>,
    requests: Vec<TokenRequest>,
}

/// The service, on `127.0.0.1`, stopped on drop.
pub struct TokenServer {
    server: Arc<tiny_http::Server>,
    front: Option<crate::proxy::TlsFront>,
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<()>>,
    signing: SigningKey,
    pub service: String,
    pub issuer: String,
}

#[derive(Serialize)]
struct Access {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    actions: Vec<String>,
}

#[derive(Serialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<Access>,
}

impl TokenServer {
    /// Starts the service. Anonymous users get pull tokens until [`Self::anonymous_pull`]
    /// says otherwise.
    pub fn start(signing: SigningKey) -> anyhow::Result<Self> {
        let server =
            Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?);
        let state = Arc::new(Mutex::new(State { anonymous_pull: true, ..State::default() }));
        let mut this = Self {
            server: server.clone(),
            front: None,
            state: state.clone(),
            thread: None,
            signing,
            service: "test-registry".into(),
            issuer: "test-issuer".into(),
        };
        let minter = this.minter();
        this.thread = Some(std::thread::spawn(move || {
            for request in server.incoming_requests() {
                handle(request, &state, &minter);
            }
        }));
        Ok(this)
    }

    /// The same service behind TLS with `certs` (a certificate for `127.0.0.1`): its realm
    /// is `https://`, and clients must trust `certs.ca_pem`.
    pub fn start_tls(
        signing: SigningKey,
        certs: &crate::certs::ServerCerts,
    ) -> anyhow::Result<Self> {
        let mut this = Self::start(signing)?;
        let plain =
            this.server.server_addr().to_ip().ok_or_else(|| anyhow::anyhow!("no IP address"))?;
        this.front = Some(crate::proxy::TlsFront::start(plain, certs)?);
        Ok(this)
    }

    /// `http://127.0.0.1:<port>/token`, or `https://` for [`Self::start_tls`].
    pub fn realm(&self) -> String {
        match &self.front {
            Some(front) => format!("https://{}/token", front.address),
            None => format!("http://{}/token", self.server.server_addr()),
        }
    }

    /// A user that may authenticate with Basic credentials.
    pub fn add_user(&self, user: &str, password: &str) {
        self.lock().users.insert(user.into(), password.into());
    }

    /// A refresh token (what a docker config's `identitytoken` holds) for `user`.
    pub fn add_refresh_token(&self, token: &str, user: &str) {
        self.lock().refresh_tokens.insert(token.into(), user.into());
    }

    /// Makes every token issued to `user` grant `repository` only, whatever was asked.
    pub fn restrict(&self, user: &str, repository: &str) {
        self.lock().restricted.insert(user.into(), repository.into());
    }

    /// Whether anonymous tokens grant pull.
    pub fn anonymous_pull(&self, allowed: bool) {
        self.lock().anonymous_pull = allowed;
    }

    /// Answer every request with this status (`None`: work normally).
    pub fn fail_with(&self, status: Option<u16>) {
        self.lock().fail_with = status;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.lock().requests.clone()
    }

    /// A token granting `actions` on `repository`, for the test's own pushes.
    pub fn mint(&self, repository: &str, actions: &[&str]) -> anyhow::Result<String> {
        (self.minter())("pusher", repository, actions.iter().map(|a| a.to_string()).collect())
    }

    /// The certificate the registry must trust for these tokens (`rootcertbundle`).
    pub fn signing_cert(&self) -> &std::path::Path {
        &self.signing.cert_pem
    }

    pub(crate) fn minter(&self) -> Minter {
        let signing = self.signing.clone();
        let (issuer, service) = (self.issuer.clone(), self.service.clone());
        Arc::new(move |sub: &str, repository: &str, actions: Vec<String>| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let claims = Claims {
                iss: issuer.clone(),
                sub: sub.into(),
                aud: service.clone(),
                exp: now + 300,
                nbf: now - 10,
                iat: now,
                jti: format!("{now}-{}", rand_suffix()),
                access: if actions.is_empty() {
                    Vec::new()
                } else {
                    vec![Access { kind: "repository", name: repository.into(), actions }]
                },
            };
            let header = jsonwebtoken::Header {
                alg: jsonwebtoken::Algorithm::RS256,
                x5c: Some(vec![signing.cert_der_base64.clone()]),
                ..Default::default()
            };
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(&signing.key_pem)?;
            Ok(jsonwebtoken::encode(&header, &claims, &key)?)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) type Minter =
    Arc<dyn Fn(&str, &str, Vec<String>) -> anyhow::Result<String> + Send + Sync>;

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

fn handle(mut request: tiny_http::Request, state: &Mutex<State>, mint: &Minter) {
    let method = request.method().to_string();
    let url = request.url().to_owned();
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mut params = parse_form(query);
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_owned());
    let basic = authorization.as_deref().and_then(|a| a.strip_prefix("Basic ")).map(str::to_owned);
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    if method == "POST" {
        params.extend(parse_form(&body));
    }
    let received = format!("{url}\n{}\n{body}", authorization.unwrap_or_default());
    let scope = params.get("scope").cloned().unwrap_or_default();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());

    // Who is asking: Basic credentials, a refresh token, or nobody.
    let user: Result<Option<String>, &str> = if let Some(basic) = basic {
        let decoded = base64::engine::general_purpose::STANDARD.decode(basic).unwrap_or_default();
        let decoded = String::from_utf8(decoded).unwrap_or_default();
        match decoded.split_once(':') {
            Some((u, p)) if state.users.get(u).map(String::as_str) == Some(p) => {
                Ok(Some(u.to_owned()))
            }
            _ => Err(r#"{"details":"incorrect username or password"}"#),
        }
    } else if let Some(refresh) = params.get("refresh_token") {
        match state.refresh_tokens.get(refresh) {
            Some(user) => Ok(Some(user.clone())),
            None => Err(r#"{"error":"invalid_grant","error_description":"unknown refresh token"}"#),
        }
    } else {
        Ok(None)
    };

    let (status, body) = match (state.fail_with, user.clone()) {
        (Some(status), _) => {
            (status, r#"{"details":"token service failure injected by the test"}"#.to_owned())
        }
        (None, Err(body)) => (401, body.to_owned()),
        (None, Ok(user)) => {
            let (repository, actions) = scope
                .strip_prefix("repository:")
                .and_then(|s| s.rsplit_once(':'))
                .map(|(name, actions)| {
                    (name.to_owned(), actions.split(',').map(str::to_owned).collect())
                })
                .unwrap_or_default();
            let (repository, actions) = match &user {
                Some(u) => match state.restricted.get(u) {
                    Some(only) => (only.clone(), actions),
                    None => (repository, actions),
                },
                None if state.anonymous_pull => (repository, vec!["pull".to_owned()]),
                None => (repository, Vec::new()),
            };
            let sub = user.clone().unwrap_or_default();
            match mint(&sub, &repository, actions) {
                Ok(token) => (
                    200,
                    serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                        .to_string(),
                ),
                Err(e) => (500, format!("{{\"details\":\"{e}\"}}")),
            }
        }
    };
    state.requests.push(TokenRequest {
        method,
        scope,
        user: user.ok().flatten(),
        status,
        received,
    });
    drop(state);
    let header = tiny_http::Header::from_bytes("Content-Type", "application/json").ok();
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Some(header) = header {
        response = response.with_header(header);
    }
    let _ = request.respond(response);
}

fn parse_form(text: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}
