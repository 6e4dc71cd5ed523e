//! The manifest request: one `HEAD /v2/<name>/manifests/<tag|digest>` with all four manifest
//! media types, whose `Docker-Content-Digest` is the answer; oci-client's GET and sha256 of the
//! exact bytes when a registry leaves the header out.

use reqwest::StatusCode;

use super::auth::Authorization;
use super::error::Error;
use super::reference::validate_digest;
use super::{Failure, Registry};

/// Every manifest type, so the registry answers with what the tag really points to: a partial
/// list makes registries substitute a platform manifest (another digest) or answer 404.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
];

/// What the registry said the reference points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `sha256:<hex>` of the manifest, or of the index for a multi-platform image.
    pub digest: String,
    /// The manifest's media type, when the registry said.
    pub media_type: Option<String>,
}

impl Registry {
    /// One manifest HEAD, and the GET fallback when its answer has no digest.
    pub(super) async fn head_manifest(&self, auth: &Authorization) -> Result<Found, Failure> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base,
            self.image.repository(),
            self.image.digest().unwrap_or(self.image.tag())
        );
        let mut request =
            self.http.head(&url).header(reqwest::header::ACCEPT, MANIFEST_MEDIA_TYPES.join(", "));
        if let Some(value) = auth.header() {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let response = request.send().await.map_err(|e| self.transport_failure(e))?;
        self.note_rate_limit(response.headers());
        if let Some(failure) = self.retryable(&response) {
            return Err(failure);
        }
        let status = response.status();
        let header = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        match status {
            StatusCode::OK => {
                let media_type = header("content-type")
                    .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned());
                let digest = match header("docker-content-digest").filter(|d| !d.is_empty()) {
                    Some(digest) => digest,
                    None => self.get_manifest_digest(auth).await?,
                };
                validate_digest(&digest).map_err(|e| {
                    Failure::Fatal(self.protocol(format!("a malformed Docker-Content-Digest {e}")))
                })?;
                Ok(Found { digest, media_type })
            }
            StatusCode::NOT_FOUND => Err(Failure::NotFound),
            StatusCode::UNAUTHORIZED => {
                let challenge = header("www-authenticate").unwrap_or_default();
                // distribution answers a token for another repository with
                // error="insufficient_scope".
                let detail = challenge
                    .split(',')
                    .find_map(|p| p.trim().strip_prefix("error="))
                    .map(|e| e.trim_matches('"').to_owned());
                Err(Failure::Unauthorized { status: 401, detail })
            }
            StatusCode::FORBIDDEN => Err(Failure::Unauthorized { status: 403, detail: None }),
            other => Err(Failure::Fatal(self.protocol(format!(
                "{other} to HEAD {url}, which the distribution API does not define for manifests"
            )))),
        }
    }

    /// GET the manifest and hash the exact bytes (oci-client verifies them against the header
    /// or the reference's digest when either is present).
    async fn get_manifest_digest(&self, auth: &Authorization) -> Result<String, Failure> {
        use oci_client::errors::{OciDistributionError as E, OciErrorCode};
        crate::log::debug(format_args!(
            "{} sent no Docker-Content-Digest; hashing the manifest body",
            self.image.registry()
        ));
        let reference = self.image.for_client();
        let client = self.oci_client().map_err(Failure::Fatal)?;
        let result =
            client.pull_manifest_raw(&reference, &auth.for_client(), &MANIFEST_MEDIA_TYPES).await;
        match result {
            Ok((_, digest)) => Ok(digest),
            Err(E::RegistryError { envelope, .. })
                if envelope.errors.iter().any(|e| {
                    matches!(e.code, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown)
                }) =>
            {
                Err(Failure::NotFound)
            }
            Err(E::ServerError { code: 404, .. }) => Err(Failure::NotFound),
            Err(E::ServerError { code, message, .. }) if code == 429 || code >= 500 => {
                Err(Failure::Retry { reason: format!("{code} {message}"), after: None })
            }
            Err(E::UnauthorizedError { .. }) => {
                Err(Failure::Unauthorized { status: 401, detail: None })
            }
            Err(E::RequestError(e)) => Err(self.transport_failure(e)),
            Err(E::DigestError(e)) => Err(Failure::Fatal(Error::Protocol {
                registry: self.image.registry().to_owned(),
                what: format!("a manifest whose content does not match its digest ({e})"),
                hint: "the registry or a proxy in front of it corrupted the manifest; retry, \
                       and report it to the registry's operators if it persists",
            })),
            Err(other) => {
                Err(Failure::Fatal(self.protocol(format!("an unusable manifest: {other}"))))
            }
        }
    }

    /// Docker Hub's pull quota, logged so a user can see why a later run is throttled.
    fn note_rate_limit(&self, headers: &reqwest::header::HeaderMap) {
        let Some(remaining) = headers.get("ratelimit-remaining").and_then(|v| v.to_str().ok())
        else {
            return;
        };
        let limit = headers.get("ratelimit-limit").and_then(|v| v.to_str().ok());
        let count = |v: &str| v.split(';').next().unwrap_or(v).trim().to_owned();
        let window = remaining
            .split(';')
            .find_map(|p| p.trim().strip_prefix("w="))
            .map(|w| format!(" per {w}s"))
            .unwrap_or_default();
        let of = limit.map(|l| format!(" of {}", count(l))).unwrap_or_default();
        crate::log::info(format_args!(
            "{} pull rate limit: {} remaining{of}{window}",
            self.image.registry(),
            count(remaining)
        ));
    }
}
