//! Authentication with the registry, done before the manifest request so that a failing token
//! service reports its own error: `GET /v2/` for the challenge, then the token service
//! (`GET` with Basic or anonymous, or the OAuth2 refresh-token `POST` for identity tokens).

use std::fmt;

use base64::Engine as _;
use reqwest::StatusCode;
use serde::Deserialize;

use super::credentials::Secret;
use super::error::Error;
use super::{Failure, Registry};

/// What the manifest requests carry.
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The registry did not ask for credentials.
    None,
    /// Basic credentials on every request (registries that challenge with `Basic`).
    Basic { username: String, password: String },
    /// A token from the token service.
    Bearer(String),
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => write!(f, "Basic({username:?}, <redacted>)"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Authorization {
    /// The `Authorization` header value, if any.
    pub fn header(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Basic { username, password } => Some(basic(username, password)),
            Self::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }

    /// The same credentials in oci-client's terms.
    pub fn for_client(&self) -> oci_client::secrets::RegistryAuth {
        use oci_client::secrets::RegistryAuth;
        match self {
            Self::None => RegistryAuth::Anonymous,
            Self::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Self::Bearer(token) => RegistryAuth::Bearer(token.clone()),
        }
    }
}

fn basic(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// The first challenge kubeship can answer, preferring Bearer (RFC 6750 §3 syntax).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let challenges = http_auth::parse_challenges(header).ok()?;
    let mut basic = false;
    for challenge in &challenges {
        if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if let Some(realm) = param("realm") {
                return Some(Challenge::Bearer { realm, service: param("service") });
            }
        }
        basic |= challenge.scheme.eq_ignore_ascii_case("basic");
    }
    basic.then_some(Challenge::Basic)
}

/// The token service's answer (distribution `docs/spec/auth/token.md`): `token`, or
/// `access_token` for OAuth2 compatibility.
#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

impl Registry {
    /// Finds out what the registry wants and gets it: at most one `GET /v2/` and one token
    /// request.
    pub(super) async fn authenticate(&self) -> Result<Authorization, Failure> {
        let url = format!("{}/v2/", self.base);
        let response = self.http.get(&url).send().await.map_err(|e| self.transport_failure(e))?;
        let status = response.status();
        if let Some(failure) = self.retryable(&response) {
            return Err(failure);
        }
        if status != StatusCode::UNAUTHORIZED {
            // 200, or a registry without the version check: no credentials are asked for.
            return Ok(Authorization::None);
        }
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .and_then(parse_challenge);
        match (challenge, &self.credentials.secret) {
            (Some(Challenge::Bearer { realm, service }), secret) => {
                self.token(&realm, service.as_deref(), secret).await.map(Authorization::Bearer)
            }
            (Some(Challenge::Basic), Secret::Basic { username, password }) => {
                Ok(Authorization::Basic { username: username.clone(), password: password.clone() })
            }
            (Some(Challenge::Basic), Secret::IdentityToken(_)) => {
                Err(Failure::Fatal(self.unauthorized(
                    401,
                    None,
                    "this registry takes a user name and password, not an identity token",
                )))
            }
            // Anonymous against Basic, or a challenge we cannot read: the manifest request
            // will tell whether access is really refused.
            _ => Ok(Authorization::None),
        }
    }

    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        secret: &Secret,
    ) -> Result<String, Failure> {
        let scope = format!("repository:{}:pull", self.image.repository());
        let request = match secret {
            Secret::IdentityToken(refresh) => {
                // The Docker CLI's OAuth2 refresh-token exchange (distribution
                // `registry/client/auth/session.go` fetchTokenWithOAuth).
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "kubeship"),
                    ("scope", scope.as_str()),
                    ("refresh_token", refresh.as_str()),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                let body =
                    form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
                self.http
                    .post(realm)
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            Secret::Basic { username, password } => self
                .http
                .get(realm)
                .query(&token_query(&scope, service))
                .header(reqwest::header::AUTHORIZATION, basic(username, password)),
            Secret::Anonymous => self.http.get(realm).query(&token_query(&scope, service)),
        };
        let response = request.send().await.map_err(|e| self.transport_failure(e))?;
        if let Some(failure) = self.retryable(&response) {
            return Err(failure);
        }
        let status = response.status();
        let body = response.text().await.map_err(|e| self.transport_failure(e))?;
        if !status.is_success() {
            let hint = match (status, secret) {
                (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, Secret::Anonymous) => {
                    "the repository needs credentials: give registry-username and \
                     registry-password, or a docker config"
                }
                (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => {
                    "check the user name and password (or token), and that they may pull this repository"
                }
                _ => "the token service rejected the request; check the registry's status",
            };
            return Err(Failure::Fatal(Error::TokenService {
                registry: self.image.registry().to_owned(),
                realm: realm.to_owned(),
                status: status.as_u16(),
                detail: short_detail(&body),
                source_: self.credentials.source.clone(),
                hint,
            }));
        }
        let answer: TokenAnswer = serde_json::from_str(&body).map_err(|_| {
            Failure::Fatal(self.protocol(format!("a token response that is not JSON from {realm}")))
        })?;
        answer.token.or(answer.access_token).filter(|t| !t.is_empty()).ok_or_else(|| {
            Failure::Fatal(self.protocol(format!("a token response without a token from {realm}")))
        })
    }
}

fn token_query<'a>(scope: &'a str, service: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut query = vec![("scope", scope)];
    if let Some(service) = service {
        query.push(("service", service));
    }
    query
}

/// The first line of an error body, shortened: enough to explain, never a page of HTML.
pub(super) fn short_detail(body: &str) -> Option<String> {
    // OCI error envelope: {"errors":[{"code":..,"message":..}]}
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(first) = value.get("errors").and_then(|e| e.get(0)) {
            let code = first.get("code").and_then(|c| c.as_str()).unwrap_or_default();
            let message = first.get("message").and_then(|m| m.as_str()).unwrap_or_default();
            return Some(format!("{code} {message}").trim().to_owned()).filter(|s| !s.is_empty());
        }
        if let Some(details) = value.get("details").and_then(|d| d.as_str()) {
            return Some(details.chars().take(200).collect());
        }
    }
    let line = body.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker Hub's challenge, with a comma inside a quoted value.
    #[test]
    fn bearer_challenge() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
    }

    /// ECR-style Basic challenges, and Bearer preferred when both are offered.
    #[test]
    fn basic_and_mixed_challenges() {
        assert_eq!(parse_challenge(r#"Basic realm="https://x/""#), Some(Challenge::Basic));
        let both = r#"Basic realm="r", Bearer realm="https://t/token""#;
        assert!(matches!(parse_challenge(both), Some(Challenge::Bearer { .. })));
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
    }

    /// Error bodies shrink to their code and message.
    #[test]
    fn error_details() {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[]}]}"#;
        assert_eq!(short_detail(body).as_deref(), Some("UNAUTHORIZED authentication required"));
        assert_eq!(short_detail("\n  too many\nrequests").as_deref(), Some("too many"));
        assert_eq!(short_detail(""), None);
    }

    /// Debug never prints a token.
    #[test]
    fn authorization_debug_is_redacted() {
        assert!(!format!("{:?}", Authorization::Bearer("s3cret".into())).contains("s3cret"));
    }
}
