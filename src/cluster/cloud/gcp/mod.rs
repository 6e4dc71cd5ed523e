//! GKE: the OAuth2 access token `gke-gcloud-auth-plugin` prints, minted here, with the
//! `cloud-platform` scope.
//!
//! Credentials, first found wins: the `gcp-workload-identity-provider` input (with
//! `gcp-service-account` when given: GitHub's OIDC token, audience
//! `https://iam.googleapis.com/<provider>` as google-github-actions/auth asks for it, traded at
//! Google's STS, then the service account impersonated); else the file in
//! `GOOGLE_APPLICATION_CREDENTIALS`: a service-account key (a JWT-bearer grant, signed RS256 with
//! its key, at its `token_uri`) or an external-account file (the subject token from its
//! `credential_source`, the STS exchange at its `token_url`, then its
//! `service_account_impersonation_url` when it names one). google-github-actions/auth writes
//! that file in the workspace and exports the runner's path to it; inside a container action the
//! workspace is `$GITHUB_WORKSPACE` (`/github/workspace`), so a path that does not exist is
//! looked for there. gcloud's `CLOUDSDK_API_ENDPOINT_OVERRIDES_{STS,IAMCREDENTIALS,CONTAINER}`
//! move Google's endpoints where the credential file does not name them.

mod external;
mod key;

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use secrecy::SecretString;
use serde::Deserialize;

use super::cache::{Mint, Token};
use super::github_oidc::GitHubOidc;
pub(super) use super::http::oauth_token as oauth_answer;
use super::http::{Http, endpoint, untrusted};
use super::{Env, Error, Identity, IdentityCell, Located};

pub use external::External;
pub use key::ServiceAccountKey;

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How kubeship gets Google access tokens.
pub enum Google {
    Key(ServiceAccountKey),
    External(External),
}

/// The `gcp-*` inputs.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub workload_identity_provider: Option<String>,
    pub service_account: Option<String>,
}

/// A base URL: gcloud's override for `api`, else Google's.
fn api_base(env: &Env, api: &str, default: &str) -> Result<reqwest::Url, Error> {
    let variable = format!("CLOUDSDK_API_ENDPOINT_OVERRIDES_{}", api.to_ascii_uppercase());
    match env.get(&variable) {
        Some(url) => endpoint(url, &variable),
        None => endpoint(default, api),
    }
}

/// `base` joined with `path` (the base's own path kept).
fn join(base: &reqwest::Url, path: &str) -> String {
    format!("{}/{}", base.as_str().trim_end_matches('/'), path.trim_start_matches('/'))
}

impl Google {
    /// Reads the inputs and the environment; sends nothing.
    ///
    /// # Errors
    /// [`Error::Config`] when there are no credentials or the file cannot be used.
    pub fn new(env: &Env, inputs: &Inputs, identity: &IdentityCell) -> Result<Self, Error> {
        let http = Http::new(&[])?;
        let google = if let Some(provider) = &inputs.workload_identity_provider {
            let oidc = GitHubOidc::from_env(env)?.ok_or_else(|| {
                Error::Config(
                    "gcp-workload-identity-provider is set but GitHub's OIDC token is not available: \
                     give the job `permissions: id-token: write`"
                        .into(),
                )
            })?;
            let impersonate = match &inputs.service_account {
                Some(email) => Some(join(
                    &api_base(env, "iamcredentials", "https://iamcredentials.googleapis.com/")?,
                    &format!("v1/projects/-/serviceAccounts/{email}:generateAccessToken"),
                )),
                None => None,
            };
            let token_url = join(&api_base(env, "sts", "https://sts.googleapis.com/")?, "v1/token");
            Self::External(External::github(
                http,
                oidc,
                provider,
                &token_url,
                impersonate.as_deref(),
            )?)
        } else if let Some(path) = env.get("GOOGLE_APPLICATION_CREDENTIALS") {
            if Path::new(path).is_dir() {
                return Err(Error::Config(format!(
                    "GOOGLE_APPLICATION_CREDENTIALS names {path}, which is a folder: it must name \
                     the credential file (the JSON that google-github-actions/auth writes)"
                )));
            }
            let path = locate(Path::new(path), env.get("GITHUB_WORKSPACE").map(Path::new))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "GOOGLE_APPLICATION_CREDENTIALS names {path}, which is not here (nor under \
                         $GITHUB_WORKSPACE): run google-github-actions/auth after actions/checkout, \
                         with create_credentials_file: true"
                    ))
                })?;
            Self::from_file(&path, env, http)?
        } else {
            return Err(Error::Config(
                "no Google credentials: run google-github-actions/auth before kubeship (it sets \
                 GOOGLE_APPLICATION_CREDENTIALS), or give gcp-workload-identity-provider (and \
                 gcp-service-account) with `permissions: id-token: write`"
                    .into(),
            ));
        };
        identity.set(Identity::gke(&google.who()));
        Ok(google)
    }

    fn from_file(path: &Path, env: &Env, http: Http) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Kind {
            #[serde(rename = "type")]
            kind: Option<String>,
        }
        let name = path.display().to_string();
        let unusable =
            |why: String| Error::Config(format!("the Google credential file {name} {why}"));
        let text =
            std::fs::read_to_string(path).map_err(|e| unusable(format!("cannot be read: {e}")))?;
        // serde's errors quote no input, only line and column: a key never reaches the log.
        let kind: Kind = serde_json::from_str(&text).map_err(|e| {
            unusable(format!("is not JSON (line {}, column {})", e.line(), e.column()))
        })?;
        match kind.kind.as_deref() {
            Some("service_account") => {
                Ok(Self::Key(ServiceAccountKey::parse(&text, http).map_err(unusable)?))
            }
            Some("external_account") => {
                let sts = join(&api_base(env, "sts", "https://sts.googleapis.com/")?, "v1/token");
                Ok(Self::External(External::parse(&text, &sts, http).map_err(unusable)?))
            }
            other => Err(unusable(format!(
                "is of type {:?}; kubeship takes service_account and external_account files",
                untrusted(other.unwrap_or("").as_bytes(), &[])
            ))),
        }
    }

    /// Who the tokens belong to.
    pub fn who(&self) -> String {
        match self {
            Self::Key(key) => format!("the service account {}", key.email()),
            Self::External(external) => external.who(),
        }
    }

    pub fn http(&self) -> &Http {
        match self {
            Self::Key(k) => k.http(),
            Self::External(e) => e.http(),
        }
    }

    /// A fresh access token.
    ///
    /// # Errors
    /// The token services' refusals and transport errors.
    pub async fn access_token(&self) -> Result<Token, Error> {
        match self {
            Self::Key(key) => key.access_token().await,
            Self::External(external) => external.access_token().await,
        }
    }
}

impl Mint for Google {
    fn mint(&self) -> BoxFuture<'_, Result<Token, Error>> {
        Box::pin(self.access_token())
    }
}

/// `path` if it exists, else the same file under the container's workspace: the longest tail
/// of `path` that exists below `workspace` (the runner's workspace path is not known here).
pub fn locate(path: &Path, workspace: Option<&Path>) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_owned());
    }
    let workspace = workspace?;
    let parts: Vec<_> =
        path.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect();
    (0..parts.len())
        .map(|skip| workspace.join(parts[skip..].iter().collect::<PathBuf>()))
        .find(|p| p.is_file())
}

/// GKE `clusters.get`: the endpoint and CA of `gke:<project>/<location>/<name>`.
///
/// # Errors
/// Google's refusal, an answer without endpoint or CA.
pub async fn describe(
    google: &Google,
    env: &Env,
    project: &str,
    location: &str,
    name: &str,
) -> Result<Located, Error> {
    use base64::Engine as _;
    use secrecy::ExposeSecret as _;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Cluster {
        endpoint: Option<String>,
        master_auth: Option<MasterAuth>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct MasterAuth {
        cluster_ca_certificate: Option<String>,
    }
    let base = api_base(env, "container", "https://container.googleapis.com/")?;
    let url = join(&base, &format!("v1/projects/{project}/locations/{location}/clusters/{name}"));
    let url = endpoint(&url, "CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER")?;
    let service = format!("GKE ({url})");
    let token = google.access_token().await?.secret;
    let request = google
        .http()
        .request(reqwest::Method::GET, url)
        .header("authorization", format!("Bearer {}", token.expose_secret()));
    let answer = google.http().send(&service, request, &[&token]).await?;
    if !answer.ok() {
        return Err(Error::Refused {
            service,
            detail: format!("clusters.get {project}/{location}/{name}: HTTP {}: {}", answer.status, google_error(&answer.body, &[&token])),
            advice: " The identity needs container.clusters.get (roles/container.clusterViewer) in the project; check the cluster input.".into(),
        });
    }
    let unusable = |detail: &str| Error::Answer { service: service.clone(), detail: detail.into() };
    let cluster: Cluster = serde_json::from_slice(&answer.body)
        .map_err(|_| unusable("its clusters.get answer is not the documented JSON"))?;
    let host = cluster
        .endpoint
        .filter(|e| !e.is_empty())
        .ok_or_else(|| unusable("the cluster has no endpoint"))?;
    let ca = cluster
        .master_auth
        .and_then(|m| m.cluster_ca_certificate)
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c.trim()).ok())
        .and_then(|pem| String::from_utf8(pem).ok())
        .ok_or_else(|| {
            unusable("the cluster's masterAuth.clusterCaCertificate is not base64 of PEM")
        })?;
    let server = if host.starts_with("https://") { host } else { format!("https://{host}") };
    Ok(Located { server, ca_pem: Some(ca) })
}

/// The message of a Google API error (`{"error": {"message": ...}}`), or the body, quoted safely.
pub(super) fn google_error(body: &[u8], secrets: &[&SecretString]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
    match message {
        Some(m) => untrusted(m.as_bytes(), secrets),
        None => untrusted(body, secrets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runner's path to the credential file is found under the container's workspace.
    #[test]
    fn runner_paths_map_into_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/gha-creds-1.json"), "{}").unwrap();
        let runner = Path::new("/home/runner/work/repo/repo/sub/gha-creds-1.json");
        assert_eq!(locate(runner, Some(dir.path())), Some(dir.path().join("sub/gha-creds-1.json")));
        assert_eq!(locate(Path::new("/nope/x.json"), Some(dir.path())), None);
        assert_eq!(locate(runner, None), None);
    }

    /// Overrides are bases: the API's path is appended to them.
    #[test]
    fn endpoint_overrides() {
        let env =
            Env::from_vars([("CLOUDSDK_API_ENDPOINT_OVERRIDES_STS", "http://127.0.0.1:9/google/")]);
        let base = api_base(&env, "sts", "https://sts.googleapis.com/").unwrap();
        assert_eq!(join(&base, "v1/token"), "http://127.0.0.1:9/google/v1/token");
        let base = api_base(&env, "container", "https://container.googleapis.com/").unwrap();
        assert_eq!(join(&base, "v1/projects"), "https://container.googleapis.com/v1/projects");
    }
}
