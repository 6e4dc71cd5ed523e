//! Workload identity federation: an external-account file (or the same configuration built from
//! the `gcp-*` inputs). The subject token comes from the file's `credential_source` (a `file`,
//! or a `url` with `headers`, as `text` or `json` with `subject_token_field_name`) or from
//! GitHub directly; Google's STS exchanges it (RFC 8693, form-encoded) for a federated token;
//! when a service account is named, IAM Credentials' `generateAccessToken` impersonates it.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::{SCOPE, google_error, oauth_answer};
use crate::cluster::cloud::Error;
use crate::cluster::cloud::cache::Token;
use crate::cluster::cloud::github_oidc::GitHubOidc;
use crate::cluster::cloud::http::{Http, endpoint, metadata_endpoint, untrusted};

enum Format {
    Text,
    Json(String),
}

enum Subject {
    File { path: String, format: Format },
    Url { url: reqwest::Url, headers: Vec<(String, SecretString)>, format: Format },
    GitHub { oidc: GitHubOidc, audience: String },
}

/// An external-account configuration.
pub struct External {
    audience: String,
    subject_token_type: String,
    token_url: reqwest::Url,
    impersonation: Option<reqwest::Url>,
    subject: Subject,
    http: Http,
}

#[derive(Deserialize)]
struct File {
    audience: Option<String>,
    subject_token_type: Option<String>,
    token_url: Option<String>,
    service_account_impersonation_url: Option<String>,
    credential_source: Option<Source>,
}

#[derive(Deserialize)]
struct Source {
    file: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    format: Option<SourceFormat>,
}

#[derive(Deserialize)]
struct SourceFormat {
    #[serde(rename = "type")]
    kind: Option<String>,
    subject_token_field_name: Option<String>,
}

const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

impl External {
    /// Parses an external-account file; `sts` is the token URL when the file names none.
    ///
    /// # Errors
    /// Why the file cannot serve.
    pub fn parse(text: &str, sts: &str, http: Http) -> Result<Self, String> {
        let file: File =
            serde_json::from_str(text).map_err(|_| "is not an external-account file".to_owned())?;
        let audience = file.audience.ok_or("has no audience")?;
        let source = file.credential_source.ok_or("has no credential_source")?;
        let format = match source.format {
            Some(SourceFormat { kind: Some(k), subject_token_field_name }) if k == "json" => {
                Format::Json(
                    subject_token_field_name
                        .ok_or("names a json format without subject_token_field_name")?,
                )
            }
            _ => Format::Text,
        };
        let subject = match (source.file, source.url) {
            (Some(path), _) => Subject::File { path, format },
            (None, Some(url)) => Subject::Url {
                url: metadata_endpoint(&url, "the credential_source url")
                    .map_err(|e| e.to_string())?,
                headers: source
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, SecretString::from(v)))
                    .collect(),
                format,
            },
            (None, None) => {
                return Err("has a credential_source kubeship cannot use (it takes file and url; \
                            not AWS environment_id or executable)"
                    .into());
            }
        };
        let token_url = file.token_url.unwrap_or_else(|| sts.to_owned());
        Ok(Self {
            audience,
            subject_token_type: file.subject_token_type.unwrap_or_else(|| JWT.into()),
            token_url: endpoint(&token_url, "the file's token_url").map_err(|e| e.to_string())?,
            impersonation: file
                .service_account_impersonation_url
                .map(|u| endpoint(&u, "the file's service_account_impersonation_url"))
                .transpose()
                .map_err(|e| e.to_string())?,
            subject,
            http,
        })
    }

    /// The configuration google-github-actions/auth would write for `provider` (the full
    /// `projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<id>` name).
    ///
    /// # Errors
    /// [`Error::Config`] for unusable URLs.
    pub fn github(
        http: Http,
        oidc: GitHubOidc,
        provider: &str,
        token_url: &str,
        impersonation: Option<&str>,
    ) -> Result<Self, Error> {
        let provider = provider.trim_start_matches('/');
        Ok(Self {
            audience: format!("//iam.googleapis.com/{provider}"),
            subject_token_type: JWT.into(),
            token_url: endpoint(token_url, "CLOUDSDK_API_ENDPOINT_OVERRIDES_STS")?,
            impersonation: impersonation
                .map(|u| endpoint(u, "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS"))
                .transpose()?,
            subject: Subject::GitHub {
                oidc,
                audience: format!("https://iam.googleapis.com/{provider}"),
            },
            http,
        })
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    pub fn who(&self) -> String {
        let email = self.impersonation.as_ref().and_then(|u| {
            let path = u.path();
            let start = path.find("serviceAccounts/")? + "serviceAccounts/".len();
            let end = path.find(":generateAccessToken")?;
            (start < end).then(|| path[start..end].to_owned())
        });
        match email {
            Some(email) => format!("the service account {email}"),
            None => format!(
                "the federated principal of the workload identity provider {}",
                self.audience
            ),
        }
    }

    async fn subject_token(&self) -> Result<SecretString, Error> {
        let (raw, format, service) = match &self.subject {
            Subject::GitHub { oidc, audience } => return oidc.token(&self.http, audience).await,
            Subject::File { path, format } => {
                // Off the runtime thread: the file may be a pipe that never ends.
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    Error::Config(format!("the credential_source file {path} cannot be read: {e}"))
                })?;
                (SecretString::from(text), format, format!("the credential_source file {path}"))
            }
            Subject::Url { url, headers, format } => {
                let service = format!(
                    "the credential_source url ({}{})",
                    url.host_str().unwrap_or(""),
                    url.path()
                );
                let mut request = self.http.request(reqwest::Method::GET, url.clone());
                for (name, value) in headers {
                    request = request.header(name, value.expose_secret());
                }
                let secrets: Vec<&SecretString> = headers.iter().map(|(_, v)| v).collect();
                let answer = self.http.send(&service, request, &secrets).await?;
                if !answer.ok() {
                    return Err(Error::Refused {
                        service,
                        detail: format!(
                            "HTTP {}: {}",
                            answer.status,
                            untrusted(&answer.body, &secrets)
                        ),
                        advice: " For GitHub's token the job needs `permissions: id-token: write`."
                            .into(),
                    });
                }
                let text = String::from_utf8(answer.body).map_err(|_| Error::Answer {
                    service: service.clone(),
                    detail: "its answer is not text".into(),
                })?;
                (SecretString::from(text), format, service)
            }
        };
        let token = match format {
            Format::Text => raw.expose_secret().trim().to_owned(),
            Format::Json(field) => serde_json::from_str::<serde_json::Value>(raw.expose_secret())
                .ok()
                .and_then(|v| v[field.as_str()].as_str().map(str::to_owned))
                .ok_or_else(|| Error::Answer {
                    service,
                    detail: format!("its JSON has no string {field:?}"),
                })?,
        };
        crate::log::secret(&token);
        Ok(SecretString::from(token))
    }

    /// A federated token, then the impersonated account's token when one is named.
    ///
    /// # Errors
    /// The services' refusals and transport errors.
    pub async fn access_token(&self) -> Result<Token, Error> {
        let subject = self.subject_token().await?;
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
            .append_pair("audience", &self.audience)
            .append_pair("scope", SCOPE)
            .append_pair("requested_token_type", "urn:ietf:params:oauth:token-type:access_token")
            .append_pair("subject_token", subject.expose_secret())
            .append_pair("subject_token_type", &self.subject_token_type)
            .finish();
        let request = self
            .http
            .request(reqwest::Method::POST, self.token_url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let service = format!("Google STS ({})", self.token_url);
        let answer = self.http.send(&service, request, &[&subject]).await?;
        let advice = format!(
            " The workload identity provider ({}) must accept this token: check its issuer, \
             allowed audiences and attribute condition.",
            self.audience
        );
        let federated = oauth_answer(&service, &answer, &[&subject], &advice)?;
        let Some(url) = &self.impersonation else { return Ok(federated) };
        self.impersonate(url, &federated.secret).await
    }

    async fn impersonate(
        &self,
        url: &reqwest::Url,
        federated: &SecretString,
    ) -> Result<Token, Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            access_token: Option<String>,
            expire_time: Option<String>,
        }
        let service = format!("IAM Credentials ({})", url);
        let request = self
            .http
            .request(reqwest::Method::POST, url.clone())
            .header("authorization", format!("Bearer {}", federated.expose_secret()))
            .header("content-type", "application/json")
            .body(serde_json::json!({"scope": [SCOPE], "lifetime": "3600s"}).to_string());
        let answer = self.http.send(&service, request, &[federated]).await?;
        if !answer.ok() {
            return Err(Error::Refused {
                service,
                detail: format!(
                    "generateAccessToken: HTTP {}: {}",
                    answer.status,
                    google_error(&answer.body, &[federated])
                ),
                advice: format!(
                    " Grant the federated principal roles/iam.workloadIdentityUser on {}.",
                    self.who().trim_start_matches("the ")
                ),
            });
        }
        let body: Answer = serde_json::from_slice(&answer.body).map_err(|_| Error::Answer {
            service: service.clone(),
            detail: "its generateAccessToken answer is not the documented JSON".into(),
        })?;
        let token = body.access_token.ok_or_else(|| Error::Answer {
            service: service.clone(),
            detail: "its answer has no accessToken".into(),
        })?;
        crate::log::secret(&token);
        let lifetime = body
            .expire_time
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .and_then(|t| t.duration_since(jiff::Timestamp::now()).try_into().ok())
            .unwrap_or(Duration::from_secs(3600));
        Ok(Token::lasting(SecretString::from(token), lifetime))
    }
}
