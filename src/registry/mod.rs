//! Stage 2: the digest of the tag that was just pushed.
//!
//! [`resolve`] authenticates, sends one manifest HEAD and returns the digest the tag points to
//! (the index digest for a multi-platform image). A missing tag is asked for again with backoff
//! until `tag-timeout` (registries can lag behind a push); 429 waits out `Retry-After`; 5xx and
//! connection errors are retried within the same deadline; 401 and 403 are final, and so are
//! a host that is not a registry and a registry spoken to in the wrong protocol. Every request
//! and every body read is bounded in time and size (`transport`), and text from the registry
//! is cleaned before a message quotes it (`text`).

mod auth;
mod backoff;
pub mod credentials;
mod error;
mod helper;
mod manifest;
pub mod reference;
mod text;
mod transport;

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
    clients: transport::Clients,
    options: Options,
    /// When `tag-timeout` runs out.
    deadline: Instant,
    last_timeout: transport::LastTimeout,
}

impl Registry {
    fn new(image: &ImageRef, credentials: Credentials, options: &Options) -> Result<Self, Error> {
        let scheme = if options.insecure { "http" } else { "https" };
        let clients = transport::clients(&options.extra_ca).map_err(|e| setup(image, e))?;
        Ok(Self {
            image: image.clone(),
            credentials,
            base: format!("{scheme}://{}", image.api_host()),
            clients,
            options: options.clone(),
            deadline: Instant::now() + options.tag_timeout,
            last_timeout: transport::LastTimeout::default(),
        })
    }

    /// Authenticate, then HEAD until found or the deadline passes. Returns the answer and the
    /// number of manifest attempts.
    async fn resolve(&self, timeout: Duration) -> Result<(manifest::Found, u32), Error> {
        let started = Instant::now();
        let deadline = self.deadline;
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
            // Each request has its own timeout; this bounds the round (a version check, a
            // token and a HEAD) by the time left.
            let budget = deadline.saturating_duration_since(Instant::now()).max(transport::FLOOR);
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

    /// 429 and 5xx: worth another attempt, after `Retry-After` when the server gave one. The
    /// body is not read: the status says enough, and a body can be endless.
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
        let path = text::clean(response.url().path(), text::QUOTED);
        Some(Failure::Retry { reason: format!("{status} from {path}"), after })
    }
}

fn setup(image: &ImageRef, detail: String) -> Error {
    Error::Protocol {
        registry: image.registry().to_owned(),
        what: format!("no usable HTTP client: {detail}"),
        hint: "check registry-ca; otherwise this is a kubeship bug, please report it",
    }
}
