//! Stage 2: the digest of the tag that was just pushed.
//!
//! [`resolve`] authenticates, sends one manifest HEAD and returns the digest the tag points to
//! (the index digest for a multi-platform image). A missing tag is asked for again with backoff
//! until `tag-timeout` (registries can lag behind a push); 429 waits out `Retry-After`; 5xx and
//! connection errors are retried within the same deadline; 401 and 403 are final.

mod auth;
mod backoff;
pub mod credentials;
mod error;
mod manifest;
pub mod reference;

use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;

pub use credentials::Credentials;
pub use error::{CredentialSource, Error};
pub use manifest::MANIFEST_MEDIA_TYPES;
pub use reference::ImageRef;

use auth::Authorization;
use credentials::Secret;

/// How to reach the registry, from the inputs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Plain HTTP (the `insecure-registry` input).
    pub insecure: bool,
    /// Extra trusted CA certificates, DER (the `registry-ca` input).
    pub extra_ca: Vec<Vec<u8>>,
    /// How long to keep asking for a tag that is not there yet.
    pub tag_timeout: Duration,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `sha256:<hex>`.
    pub digest: String,
    /// `registry/repository@sha256:<hex>`, the reference written into the workloads.
    pub pinned: String,
    /// The manifest's media type, when the registry said.
    pub media_type: Option<String>,
    /// How many manifest requests it took (1 unless the tag lagged or the registry failed).
    pub attempts: u32,
}

/// Resolves `image` to the digest it points to, and checks it against `expected` (the
/// `digest` input) when given. For an image that names a digest, checks that the digest exists.
///
/// # Errors
/// Every [`Error`] variant; see each for when.
pub async fn resolve(
    image: &ImageRef,
    expected: Option<&str>,
    credentials: Credentials,
    options: &Options,
) -> Result<Resolved, Error> {
    let registry = Registry::new(image, credentials, options)?;
    let found = registry.resolve(options.tag_timeout).await?;
    let wanted = expected.or(image.digest());
    if let Some(wanted) = wanted.filter(|w| *w != found.0.digest) {
        return Err(Error::DigestMismatch {
            image: image.to_string(),
            expected: wanted.to_owned(),
            actual: found.0.digest,
        });
    }
    Ok(Resolved {
        pinned: image.pinned(&found.0.digest),
        digest: found.0.digest,
        media_type: found.0.media_type,
        attempts: found.1,
    })
}

/// Why one attempt did not produce a digest.
#[derive(Debug)]
enum Failure {
    /// 404: not there (yet).
    NotFound,
    /// Worth another attempt: connection errors, 5xx, 429 (with the server's wait).
    Retry { reason: String, after: Option<Duration> },
    /// The manifest request was refused.
    Unauthorized { status: u16, detail: Option<String> },
    /// No retry will help.
    Fatal(Error),
}

/// One resolution's connection to one registry.
struct Registry {
    image: ImageRef,
    credentials: Credentials,
    /// `scheme://host[:port]`.
    base: String,
    http: reqwest::Client,
    options: Options,
}

const USER_AGENT: &str = concat!("kubeship/", env!("CARGO_PKG_VERSION"));

impl Registry {
    fn new(image: &ImageRef, credentials: Credentials, options: &Options) -> Result<Self, Error> {
        crate::tls::install_crypto_provider();
        let scheme = if options.insecure { "http" } else { "https" };
        let tls = crate::tls::client_config(&options.extra_ca).map_err(|e| setup(image, e))?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| setup(image, e.to_string()))?;
        Ok(Self {
            image: image.clone(),
            credentials,
            base: format!("{scheme}://{}", image.api_host()),
            http,
            options: options.clone(),
        })
    }

    /// oci-client, for the GET fallback only: built on demand, since most registries send
    /// the digest header and building it parses every root certificate again.
    fn oci_client(&self) -> Result<oci_client::Client, Error> {
        use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
        let protocol = if self.options.insecure {
            ClientProtocol::HttpsExcept(vec![self.image.api_host().to_owned()])
        } else {
            ClientProtocol::Https
        };
        let roots = crate::tls::public_roots()
            .map(<[u8]>::to_vec)
            .chain(self.options.extra_ca.iter().cloned())
            .map(|data| Certificate { encoding: CertificateEncoding::Der, data })
            .collect();
        let config = ClientConfig {
            protocol,
            tls_certs_only: roots,
            connect_timeout: Some(Duration::from_secs(10)),
            user_agent: USER_AGENT,
            ..Default::default()
        };
        oci_client::Client::try_from(config).map_err(|e| setup(&self.image, e.to_string()))
    }

    /// Authenticate, then HEAD until found or the deadline passes. Returns the answer and the
    /// number of manifest attempts.
    async fn resolve(&self, timeout: Duration) -> Result<(manifest::Found, u32), Error> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut auth: Option<Authorization> = None;
        // A token that has been accepted and is then refused has expired (a long wait for the
        // tag can outlive it): fetch a new one. A new token refused at once is final.
        let mut auth_accepted = false;
        let mut refreshed = false;
        // Manifest requests sent, and rounds tried (a round can fail before its request).
        let mut attempts = 0;
        let mut rounds = 0;
        let mut last_warning: Option<String> = None;
        loop {
            rounds += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            // The last attempt still gets a moment, so a tag-timeout shorter than one round
            // trip does not fail without having asked.
            let budget = remaining.max(Duration::from_secs(2));
            let attempt = async {
                let current = match &auth {
                    Some(current) => current.clone(),
                    None => self.authenticate().await?,
                };
                let result = self.head_manifest(&current).await;
                Ok::<_, Failure>((current, result))
            };
            let outcome = match tokio::time::timeout(budget, attempt).await {
                Err(_) => Failure::Retry {
                    reason: format!("no answer within {:.1}s", budget.as_secs_f64()),
                    after: None,
                },
                Ok(Err(failure)) => failure,
                Ok(Ok((current, result))) => {
                    attempts += 1;
                    auth = Some(current);
                    match result {
                        Ok(found) => return Ok((found, attempts)),
                        Err(failure) => failure,
                    }
                }
            };
            let after = match outcome {
                Failure::Fatal(error) => return Err(error),
                Failure::Unauthorized { status, detail } => {
                    if auth_accepted && !refreshed {
                        refreshed = true;
                        auth = None;
                        continue;
                    }
                    return Err(self.refused(status, detail));
                }
                Failure::NotFound => {
                    auth_accepted = true;
                    refreshed = false;
                    if attempts == 1 {
                        crate::log::info(format_args!(
                            "{} is not on the registry yet; asking again for up to {}s",
                            self.image,
                            timeout.as_secs()
                        ));
                    }
                    None
                }
                Failure::Retry { ref reason, after } => {
                    // One warning per kind of trouble, not one per attempt.
                    if last_warning.as_deref() != Some(reason.as_str()) {
                        let registry = self.image.registry();
                        crate::log::warn(format_args!(
                            "{registry}: {reason}; retrying until tag-timeout"
                        ));
                        last_warning = Some(reason.clone());
                    }
                    after
                }
            };
            let jitter: f64 = rand::random();
            let delay = after.unwrap_or_else(|| backoff::delay(rounds, jitter));
            let remaining = deadline.saturating_duration_since(Instant::now());
            let rate_limited = after.is_some();
            if remaining.is_zero() || (rate_limited && delay > remaining) {
                return Err(self.gave_up(outcome, rounds, started.elapsed(), delay, rate_limited));
            }
            tokio::time::sleep(delay.min(remaining)).await;
        }
    }

    /// The error after the deadline, from the last failure seen.
    fn gave_up(
        &self,
        last: Failure,
        rounds: u32,
        waited: Duration,
        delay: Duration,
        rate_limited: bool,
    ) -> Error {
        let registry = self.image.registry().to_owned();
        let repository = self.image.repository().to_owned();
        match last {
            Failure::NotFound => match self.image.digest() {
                Some(digest) => Error::DigestNotFound {
                    registry,
                    repository,
                    digest: digest.to_owned(),
                    waited,
                },
                None => Error::TagNotFound {
                    registry,
                    repository,
                    tag: self.image.tag().to_owned(),
                    waited,
                },
            },
            Failure::Retry { reason, .. } => {
                let last = if rate_limited {
                    format!("{reason}; the registry asks to wait {}s more", delay.as_secs())
                } else {
                    reason
                };
                Error::Unavailable { registry, attempts: rounds, waited, last }
            }
            Failure::Unauthorized { status, detail } => self.refused(status, detail),
            Failure::Fatal(error) => error,
        }
    }

    /// A 401 or 403 to the manifest request.
    fn refused(&self, status: u16, detail: Option<String>) -> Error {
        let hint = match (status, &self.credentials.secret) {
            (_, Secret::Anonymous) => {
                "the repository needs credentials (or does not exist): give registry-username \
                 and registry-password, or a docker config"
            }
            (401, _) => "check the user name and password (or token)",
            _ => "the credentials are valid but may not pull this repository: grant pull access",
        };
        self.unauthorized(status, detail, hint)
    }

    fn unauthorized(&self, status: u16, detail: Option<String>, hint: &'static str) -> Error {
        Error::Unauthorized {
            registry: self.image.registry().to_owned(),
            repository: self.image.repository().to_owned(),
            status,
            detail,
            source_: self.credentials.source.clone(),
            hint,
        }
    }

    fn protocol(&self, what: String) -> Error {
        Error::Protocol {
            registry: self.image.registry().to_owned(),
            what,
            hint: "check that the image names an OCI registry; a proxy or a captive portal can \
                   also answer like this",
        }
    }

    /// 429 and 5xx: worth another attempt, after `Retry-After` when the server gave one.
    fn retryable(&self, response: &reqwest::Response) -> Option<Failure> {
        let status = response.status();
        if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
            return None;
        }
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| backoff::retry_after(v, SystemTime::now()));
        Some(Failure::Retry { reason: format!("{status} from {}", response.url().path()), after })
    }

    /// Connection-level failures: certificate problems are final, the rest are retried.
    fn transport_failure(&self, error: reqwest::Error) -> Failure {
        if let Some(detail) = tls_failure(&error) {
            let hint = if !self.options.extra_ca.is_empty() {
                "the registry's certificate does not chain to registry-ca or the public roots, or \
                 names another host: give the CA that signed it"
            } else {
                "the registry's certificate is not signed by a public CA: give its CA as \
                 registry-ca (PEM content or a path)"
            };
            return Failure::Fatal(Error::Tls {
                registry: self.image.registry().to_owned(),
                detail,
                hint,
            });
        }
        let reason = crate::error::render_chain(&error);
        // A name that does not resolve is a typo far more often than a DNS outage, and no
        // amount of waiting fixes a typo.
        if reason.contains("dns error") {
            return Failure::Fatal(Error::UnknownHost {
                registry: self.image.registry().to_owned(),
                detail: reason,
            });
        }
        Failure::Retry { reason, after: None }
    }
}

fn setup(image: &ImageRef, detail: String) -> Error {
    Error::Protocol {
        registry: image.registry().to_owned(),
        what: format!("no usable HTTP client: {detail}"),
        hint: "check registry-ca; otherwise this is a kubeship bug, please report it",
    }
}

/// The rustls error behind a reqwest error, if the handshake failed.
fn tls_failure(error: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // io::Error::source() skips the error it wraps (and hyper nests io::Errors), so step
        // into the wrapped error explicitly.
        source = match current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}
