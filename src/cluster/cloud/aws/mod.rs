//! EKS: the token `aws eks get-token` and `aws-iam-authenticator token` print, minted here.
//!
//! Credentials, first found wins: the `aws-role-arn` input (GitHub's OIDC token, audience
//! `sts.amazonaws.com`, traded with `AssumeRoleWithWebIdentity`); `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` (what aws-actions/configure-aws-credentials
//! exports); `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` (read again at every renewal). The
//! plugin's `--role-arn` is then assumed with those (`AssumeRole`). Temporary credentials are
//! renewed five minutes before they expire.
//!
//! The token: a `GetCallerIdentity` URL presigned for 60 s with `host` and `x-k8s-aws-id` (the
//! cluster name) signed, `k8s-aws-v1.` + base64url without padding. EKS accepts it for 15
//! minutes after its date; kubeship uses it for 14, as the AWS tools do. The URL always names
//! the STS endpoint of the region (`sts.<region>.amazonaws.com`, or the global one without a
//! region), as EKS checks the host; `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` move only the
//! calls kubeship itself sends to STS.

pub mod eks;
pub mod sign;
pub mod sts;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret as _, SecretString};

use super::cache::{Mint, Token};
use super::github_oidc::GitHubOidc;
use super::http::{Http, endpoint};
use super::{Env, Error, Identity};

/// AWS credentials; `Debug` names the key id only.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret: SecretString,
    pub session_token: Option<SecretString>,
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Credentials {
    pub fn secrets(&self) -> Vec<&SecretString> {
        std::iter::once(&self.secret).chain(self.session_token.as_ref()).collect()
    }
}

/// Where the first credentials come from.
enum Source {
    Static(Credentials),
    WebIdentityFile { role_arn: String, path: String },
    GitHub { role_arn: String, oidc: GitHubOidc },
}

/// The credential chain, resolved from the environment, the inputs and the plugin's flags.
pub struct Chain {
    source: Source,
    assume: Option<String>,
    session_name: String,
    sts: sts::Sts,
    http: Http,
    cached: tokio::sync::Mutex<Option<Credentials>>,
    identity: super::IdentityCell,
}

/// What the plugin (or the `cluster` input) says.
#[derive(Debug, Clone, Default)]
pub struct Plugin {
    pub cluster: String,
    pub region: Option<String>,
    pub role_arn: Option<String>,
}

/// The region: the plugin's, else `AWS_REGION`, else `AWS_DEFAULT_REGION`.
pub fn region(plugin_region: Option<&str>, env: &Env) -> Option<String> {
    plugin_region
        .or_else(|| env.get("AWS_REGION"))
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .map(str::to_owned)
}

/// The regional STS host EKS accepts (the global one without a region).
pub fn sts_host(region: Option<&str>) -> String {
    match region {
        Some(r) if r.starts_with("cn-") => format!("sts.{r}.amazonaws.com.cn"),
        Some(r) => format!("sts.{r}.amazonaws.com"),
        None => "sts.amazonaws.com".into(),
    }
}

impl Chain {
    /// The chain for `region`, `assume` (the plugin's `--role-arn`) and the `aws-role-arn`
    /// input. Reads the environment only; sends nothing.
    ///
    /// # Errors
    /// [`Error::Config`] when there are no credentials, or an override or CA bundle is unusable.
    pub fn new(
        env: &Env,
        region: Option<&str>,
        assume: Option<String>,
        role_input: Option<&str>,
        identity: super::IdentityCell,
    ) -> Result<Self, Error> {
        let source = if let Some(role_arn) = role_input {
            let oidc = GitHubOidc::from_env(env)?.ok_or_else(|| {
                Error::Config(
                    "aws-role-arn is set but GitHub's OIDC token is not available: give the job \
                     `permissions: id-token: write`"
                        .into(),
                )
            })?;
            Source::GitHub { role_arn: role_arn.to_owned(), oidc }
        } else if let (Some(id), Some(secret)) =
            (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY"))
        {
            Source::Static(Credentials {
                access_key_id: id.to_owned(),
                secret: SecretString::from(secret),
                session_token: env.get("AWS_SESSION_TOKEN").map(SecretString::from),
                expires: None,
            })
        } else if let (Some(role_arn), Some(path)) =
            (env.get("AWS_ROLE_ARN"), env.get("AWS_WEB_IDENTITY_TOKEN_FILE"))
        {
            Source::WebIdentityFile { role_arn: role_arn.to_owned(), path: path.to_owned() }
        } else if env.get("AWS_ACCESS_KEY_ID").is_some()
            != env.get("AWS_SECRET_ACCESS_KEY").is_some()
        {
            // What a workflow run from a fork gets: the secrets are empty.
            let (set, empty) = if env.get("AWS_ACCESS_KEY_ID").is_some() {
                ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            } else {
                ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
            };
            return Err(Error::Config(format!(
                "{set} is set but {empty} is empty or missing: check the secret that fills it \
                 (a workflow run from a fork gets no secrets)"
            )));
        } else {
            return Err(Error::Config(
                "no AWS credentials: run aws-actions/configure-aws-credentials before kubeship \
                 (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), set AWS_ROLE_ARN \
                 and AWS_WEB_IDENTITY_TOKEN_FILE, or give aws-role-arn with `permissions: id-token: \
                 write` (kubeship reads no AWS_PROFILE or ~/.aws files)"
                    .into(),
            ));
        };
        let extra_ca = match env.get("AWS_CA_BUNDLE") {
            Some(path) => {
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!("AWS_CA_BUNDLE ({path}) cannot be read: {e}"))
                })?;
                crate::tls::parse_pem_certificates(&pem)
                    .map_err(|e| Error::Config(format!("AWS_CA_BUNDLE ({path}) {e}")))?
            }
            None => Vec::new(),
        };
        let (variable, url) = match (env.get("AWS_ENDPOINT_URL_STS"), env.get("AWS_ENDPOINT_URL")) {
            (Some(url), _) => ("AWS_ENDPOINT_URL_STS", url.to_owned()),
            (None, Some(url)) => ("AWS_ENDPOINT_URL", url.to_owned()),
            (None, None) => ("the STS endpoint", format!("https://{}/", sts_host(region))),
        };
        let who = match &source {
            // The key id as `aws configure list` shows it: enough to tell keys apart.
            Source::Static(c) => {
                let count = c.access_key_id.chars().count();
                let tail: String = c.access_key_id.chars().skip(count.saturating_sub(4)).collect();
                format!(
                    "the IAM user or role of the access key ...{} in AWS_ACCESS_KEY_ID (`aws \
                     sts get-caller-identity` names it)",
                    crate::untrusted::short(&tail, 4)
                )
            }
            Source::WebIdentityFile { role_arn, .. } | Source::GitHub { role_arn, .. } => {
                role_arn.clone()
            }
        };
        let who = assume.clone().unwrap_or(who);
        identity.set(Identity::eks(&who));
        Ok(Self {
            source,
            assume,
            session_name: env.get("AWS_ROLE_SESSION_NAME").unwrap_or("kubeship").to_owned(),
            sts: sts::Sts {
                url: endpoint(&url, variable)?,
                region: region.unwrap_or("us-east-1").to_owned(),
            },
            http: Http::new(&extra_ca)?,
            cached: tokio::sync::Mutex::new(None),
            identity,
        })
    }

    /// Credentials good for at least five more minutes.
    ///
    /// # Errors
    /// STS's refusal, an unreadable token file, an unreachable service.
    pub async fn credentials(&self) -> Result<Credentials, Error> {
        let mut cached = self.cached.lock().await;
        let soon = SystemTime::now() + Duration::from_secs(300);
        if let Some(c) = cached.as_ref()
            && c.expires.is_none_or(|e| e > soon)
        {
            return Ok(c.clone());
        }
        let (base, arn) = match &self.source {
            Source::Static(c) => (c.clone(), None),
            Source::WebIdentityFile { role_arn, path } => {
                // Off the runtime thread: the file may be a pipe that never ends.
                let token = tokio::fs::read_to_string(path).await.map_err(|e| {
                    Error::Config(format!(
                        "AWS_WEB_IDENTITY_TOKEN_FILE ({path}) cannot be read: {e}"
                    ))
                })?;
                crate::log::secret(token.trim());
                let token = SecretString::from(token.trim());
                let a = self
                    .sts
                    .assume_role_with_web_identity(&self.http, role_arn, &self.session_name, &token)
                    .await?;
                (a.credentials, Some(a.arn))
            }
            Source::GitHub { role_arn, oidc } => {
                let token = oidc.token(&self.http, "sts.amazonaws.com").await?;
                let a = self
                    .sts
                    .assume_role_with_web_identity(&self.http, role_arn, &self.session_name, &token)
                    .await?;
                (a.credentials, Some(a.arn))
            }
        };
        let (credentials, arn) = match &self.assume {
            Some(role) => {
                let a = self.sts.assume_role(&self.http, &base, role, &self.session_name).await?;
                (a.credentials, Some(a.arn))
            }
            None => (base, arn),
        };
        for secret in credentials.secrets() {
            crate::log::secret(secret.expose_secret());
        }
        if let Some(arn) = arn {
            self.identity.set(Identity::eks(&arn));
        }
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    pub fn http(&self) -> &Http {
        &self.http
    }
}

/// Mints EKS tokens for one cluster.
pub struct EksToken {
    pub chain: Chain,
    pub cluster: String,
    pub region: Option<String>,
}

/// How long kubeship uses a token: EKS takes it for 15 minutes after its date.
const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);

impl Mint for EksToken {
    fn mint(&self) -> BoxFuture<'_, Result<Token, Error>> {
        Box::pin(async move {
            let credentials = self.chain.credentials().await?;
            let now = SystemTime::now();
            let token = token(&credentials, self.region.as_deref(), &self.cluster, now)?;
            // A URL signed with temporary credentials dies with them.
            let lifetime = credentials
                .expires
                .and_then(|e| e.duration_since(now).ok())
                .map_or(TOKEN_LIFETIME, |left| left.min(TOKEN_LIFETIME));
            Ok(Token::lasting(token, lifetime))
        })
    }
}

/// The EKS token for `cluster`, signed at `time`.
///
/// # Errors
/// [`Error::Config`] when the request cannot be signed (a cluster name that is not a header value).
pub fn token(
    credentials: &Credentials,
    region: Option<&str>,
    cluster: &str,
    time: SystemTime,
) -> Result<SecretString, Error> {
    let url = format!("https://{}/?Action=GetCallerIdentity&Version=2011-06-15", sts_host(region));
    let request = sign::Request {
        method: "GET",
        url: &url,
        headers: &[("x-k8s-aws-id", cluster)],
        body: &[],
        region: region.unwrap_or("us-east-1"),
        service: "sts",
        time,
    };
    let presigned = sign::presign(&request, credentials, Duration::from_secs(60)).map_err(|e| {
        Error::Config(format!("the EKS token for {cluster:?} cannot be signed: {e}"))
    })?;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned);
    Ok(SecretString::from(format!("k8s-aws-v1.{encoded}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(SecretString::from),
            expires: None,
        }
    }

    /// The token's form, as aws-iam-authenticator parses it: prefix, unpadded base64url of an
    /// https URL to the regional STS host with the presign parameters and both headers signed.
    #[test]
    fn token_form() {
        let t = token(&credentials(Some("tok+en/=")), Some("eu-west-1"), "prod", SystemTime::now())
            .unwrap();
        let t = t.expose_secret();
        let encoded = t.strip_prefix("k8s-aws-v1.").unwrap();
        assert!(!encoded.contains('=') && !encoded.contains('+') && !encoded.contains('/'));
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).unwrap(),
        )
        .unwrap();
        assert!(
            url.starts_with(
                "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
            ),
            "{url}"
        );
        for part in [
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-Security-Token=tok%2Ben%2F%3D",
            "X-Amz-Credential=AKIDEXAMPLE%2F",
            "%2Feu-west-1%2Fsts%2Faws4_request",
        ] {
            assert!(url.contains(part), "{part} in {url}");
        }
    }

    /// No region: the global endpoint, signed for us-east-1; China's partition has its own domain.
    #[test]
    fn hosts() {
        assert_eq!(sts_host(None), "sts.amazonaws.com");
        assert_eq!(sts_host(Some("cn-north-1")), "sts.cn-north-1.amazonaws.com.cn");
        let env = Env::from_vars([("AWS_DEFAULT_REGION", "ap-south-1"), ("AWS_REGION", "")]);
        assert_eq!(region(None, &env).as_deref(), Some("ap-south-1"));
        assert_eq!(region(Some("us-west-2"), &env).as_deref(), Some("us-west-2"));
    }

    /// Credentials print their key id, never the secret or session token.
    #[test]
    fn debug_redacts() {
        let text = format!("{:?}", credentials(Some("SESSIONTOKEN")));
        assert!(!text.contains("wJalr") && !text.contains("SESSIONTOKEN"), "{text}");
    }
}
