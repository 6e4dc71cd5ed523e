//! Authentication with the registry, done before the manifest request so that a failing token
//! service reports its own error: `GET /v2/` for the challenge (which also shows whether the
//! host is a registry at all), then the token service (`GET` with Basic or anonymous, or the
//! OAuth2 refresh-token `POST` for identity tokens).
//!
//! Which token services get credentials. Docker (moby's `staticCredentialStore`, containerd's
//! `authorizer`) picks the credentials by the registry's host and then sends them to whatever
//! realm that registry's challenge names, on any host and in any scheme: Docker Hub's realm
//! `auth.docker.io` is not its registry host `registry-1.docker.io`, so the host cannot be the
//! rule. kubeship follows the realm's host as Docker does, but not its scheme: Basic
//! credentials and refresh tokens go only to an `https` realm, or to a plain `http` realm on
//! the registry's own host and port when `insecure-registry` already sends everything there in
//! plain HTTP. Anything else is refused before a byte is sent (exit 3). Anonymous token
//! requests carry no secret and follow any `http(s)` realm.

use std::fmt;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::credentials::Secret;
use super::error::Error;
use super::text;
use super::transport::{self, read_capped, read_error_body};
use super::{Failure, Registry};

/// What the manifest requests carry.
#[derive(Clone)]
pub enum Authorization {
    /// The registry did not ask for credentials.
    None,
    /// Basic credentials on every request (registries that challenge with `Basic`).
    Basic { username: String, password: SecretString },
    /// A token from the token service.
    Bearer(SecretString),
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
    /// The `Authorization` header value, if any, marked sensitive (never logged or indexed).
    pub fn header(&self) -> Option<HeaderValue> {
        let text = match self {
            Self::None => return None,
            Self::Basic { username, password } => basic(username, password),
            Self::Bearer(token) => format!("Bearer {}", token.expose_secret()),
        };
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

fn basic(username: &str, password: &SecretString) -> String {
    let pair = format!("{username}:{}", password.expose_secret());
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
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
        let response = self.send(self.clients.http.get(&url)).await?;
        if let Some(failure) = self.retryable(&response) {
            return Err(failure);
        }
        let status = response.status();
        let header = |name| response.headers().get(name).and_then(|h| h.to_str().ok());
        let not_a_registry = |answer: String| {
            Err(Failure::Fatal(Error::NotARegistry {
                registry: self.image.registry().to_owned(),
                answer,
            }))
        };
        // The distribution spec: 200 or 401 for a registry; 404 means it does not implement
        // the API. An HTML page without distribution's header is a web server's answer.
        if status == StatusCode::NOT_FOUND {
            return not_a_registry(status.to_string());
        }
        let html = header("content-type").is_some_and(|t| t.trim_start().starts_with("text/html"));
        if status.is_success() && html && header("docker-distribution-api-version").is_none() {
            return not_a_registry(format!("{status} with a web page"));
        }
        if status == StatusCode::BAD_REQUEST && self.options.insecure && self.speaks_https().await {
            return Err(Failure::Fatal(Error::SpeaksHttps {
                registry: self.image.registry().to_owned(),
            }));
        }
        if status != StatusCode::UNAUTHORIZED {
            // 200, or a registry without the version check: no credentials are asked for.
            return Ok(Authorization::None);
        }
        let challenge = header("www-authenticate").and_then(parse_challenge);
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

    /// Checks that `realm` may receive `secret` (see the module's documentation).
    fn check_realm(&self, realm: &str, secret: &Secret) -> Result<reqwest::Url, Failure> {
        let quoted = text::clean(realm, text::QUOTED);
        let url = reqwest::Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                Failure::Fatal(self.protocol(format!(
                    "with a token service realm {quoted:?} that is not an http(s) URL"
                )))
            })?;
        if matches!(secret, Secret::Anonymous) || url.scheme() == "https" {
            return Ok(url);
        }
        let same_host = reqwest::Url::parse(&self.base).is_ok_and(|base| {
            base.host_str().map(str::to_ascii_lowercase)
                == url.host_str().map(str::to_ascii_lowercase)
                && base.port_or_known_default() == url.port_or_known_default()
        });
        if same_host && self.options.insecure {
            return Ok(url);
        }
        Err(Failure::Fatal(Error::InsecureRealm {
            registry: self.image.registry().to_owned(),
            realm: quoted,
            same_host,
            source_: self.credentials.source.clone(),
        }))
    }

    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        secret: &Secret,
    ) -> Result<SecretString, Failure> {
        let url = self.check_realm(realm, secret)?;
        let scope = format!("repository:{}:pull", self.image.repository());
        let request = match secret {
            Secret::IdentityToken(refresh) => {
                // The Docker CLI's OAuth2 refresh-token exchange (distribution
                // `registry/client/auth/session.go` fetchTokenWithOAuth).
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "kubeship"),
                    ("scope", scope.as_str()),
                    ("refresh_token", refresh.expose_secret()),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                let body =
                    form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
                self.clients
                    .direct
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            Secret::Basic { username, password } => {
                let mut value =
                    HeaderValue::from_str(&basic(username, password)).map_err(|_| {
                        Failure::Fatal(self.unauthorized(
                        401,
                        None,
                        "the user name or password holds characters an HTTP header cannot carry",
                    ))
                    })?;
                value.set_sensitive(true);
                self.clients
                    .direct
                    .get(token_url(&url, &scope, service))
                    .header(reqwest::header::AUTHORIZATION, value)
            }
            Secret::Anonymous => self.clients.http.get(token_url(&url, &scope, service)),
        };
        let response = self.send(request).await?;
        if let Some(failure) = self.retryable(&response) {
            return Err(failure);
        }
        let status = response.status();
        let realm = text::clean(url.as_str(), text::QUOTED);
        if !status.is_success() {
            let detail = text::error_detail(&read_error_body(response).await);
            let hint = match (status, secret) {
                (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, Secret::Anonymous) => {
                    "the repository needs credentials: give registry-username and \
                     registry-password, or a docker config"
                }
                (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => {
                    "check the user name and password (or token), and that they may pull this repository"
                }
                (s, _) if s.is_redirection() => {
                    "the token service redirects, and kubeship does not follow a redirect with \
                     credentials: check the registry's token service address"
                }
                _ => "the token service rejected the request; check the registry's status",
            };
            return Err(Failure::Fatal(Error::TokenService {
                registry: self.image.registry().to_owned(),
                realm,
                status: status.as_u16(),
                detail,
                source_: self.credentials.source.clone(),
                hint,
            }));
        }
        let body = match read_capped(response, transport::TOKEN_CAP).await {
            Ok(body) => body,
            Err(e) => {
                let what = format!("a token answer from {realm}");
                return Err(self.read_failure(e, &what, transport::TOKEN_CAP).await);
            }
        };
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            Failure::Fatal(self.protocol(format!("a token response that is not JSON from {realm}")))
        })?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| {
                Failure::Fatal(
                    self.protocol(format!("a token response without a token from {realm}")),
                )
            })
    }
}

/// The realm with `scope` and `service` added to whatever query it already has.
fn token_url(realm: &reqwest::Url, scope: &str, service: Option<&str>) -> reqwest::Url {
    let mut url = realm.clone();
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("scope", scope);
        if let Some(service) = service {
            query.append_pair("service", service);
        }
    }
    url
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

    /// Debug never prints a token.
    #[test]
    fn authorization_debug_is_redacted() {
        assert!(
            !format!("{:?}", Authorization::Bearer(SecretString::from("s3cret")))
                .contains("s3cret")
        );
    }
}
