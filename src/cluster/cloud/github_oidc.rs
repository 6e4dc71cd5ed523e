//! GitHub's OIDC token for the job (`permissions: id-token: write`): `GET
//! $ACTIONS_ID_TOKEN_REQUEST_URL&audience=<aud>` with `Authorization: Bearer
//! $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered `{"value": "<JWT>"}`, as the actions toolkit's
//! `getIDToken` asks for it. The assertion lives minutes: it is asked for again at every use,
//! never kept.

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::http::{Http, endpoint, untrusted};
use super::{Env, Error};

/// Where and how to ask; `Debug` hides the request token.
#[derive(Clone)]
pub struct GitHubOidc {
    url: reqwest::Url,
    request_token: SecretString,
}

impl std::fmt::Debug for GitHubOidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubOidc").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    value: Option<String>,
}

impl GitHubOidc {
    /// `None` outside a GitHub job that may ask for the token.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not https (or loopback http).
    pub fn from_env(env: &Env) -> Result<Option<Self>, Error> {
        let (Some(url), Some(token)) =
            (env.get("ACTIONS_ID_TOKEN_REQUEST_URL"), env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"))
        else {
            return Ok(None);
        };
        crate::log::secret(token);
        Ok(Some(Self {
            url: endpoint(url, "ACTIONS_ID_TOKEN_REQUEST_URL")?,
            request_token: SecretString::from(token),
        }))
    }

    /// A fresh assertion for `audience`.
    ///
    /// # Errors
    /// [`Error::Refused`] when GitHub says no, and the transport's errors.
    pub async fn token(&self, http: &Http, audience: &str) -> Result<SecretString, Error> {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("audience", audience);
        let service = "GitHub's OIDC token service (ACTIONS_ID_TOKEN_REQUEST_URL)";
        let request = http
            .request(reqwest::Method::GET, url)
            .header("authorization", format!("Bearer {}", self.request_token.expose_secret()))
            .header("accept", "application/json; api-version=2.0");
        let answer = http.send(service, request, &[&self.request_token]).await?;
        if !answer.ok() {
            return Err(Error::Refused {
                service: service.into(),
                detail: format!(
                    "HTTP {}: {}",
                    answer.status,
                    untrusted(&answer.body, &[&self.request_token])
                ),
                advice: " The job needs `permissions: id-token: write`.".into(),
            });
        }
        let value = serde_json::from_slice::<Answer>(&answer.body).ok().and_then(|a| a.value);
        let value = value.filter(|v| !v.is_empty()).ok_or_else(|| Error::Answer {
            service: service.into(),
            detail: "its answer has no token (\"value\")".into(),
        })?;
        crate::log::secret(&value);
        Ok(SecretString::from(value))
    }
}
