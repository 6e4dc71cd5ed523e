//! The manifest request: one `HEAD /v2/<name>/manifests/<tag|digest>` with all four manifest
//! media types, whose `Docker-Content-Digest` is the answer; when a registry leaves the header
//! out, a `GET` of at most 4 MiB and the digest of the exact bytes.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use sha2::Digest as _;

use super::auth::Authorization;
use super::reference::validate_digest;
use super::text;
use super::transport::{self, read_capped, read_error_body};
use super::{Failure, Registry};

/// Every manifest type, so the registry answers with what the tag really points to: a partial
/// list makes registries substitute a platform manifest (another digest) or answer 404.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
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
    fn manifest_request(
        &self,
        method: reqwest::Method,
        auth: &Authorization,
    ) -> reqwest::RequestBuilder {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base,
            self.image.repository(),
            self.image.digest().unwrap_or(self.image.tag())
        );
        let mut request = self
            .clients
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, MANIFEST_MEDIA_TYPES.join(", "));
        if let Some(value) = auth.header() {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        request
    }

    /// One manifest HEAD, and the GET fallback when its answer has no digest.
    pub(super) async fn head_manifest(&self, auth: &Authorization) -> Result<Found, Failure> {
        let response = self.send(self.manifest_request(reqwest::Method::HEAD, auth)).await?;
        self.note_rate_limit(response.headers());
        let status = response.status();
        if let Some(failure) = self.retryable(&response) {
            return Err(failure);
        }
        let headers = response.headers();
        match status {
            StatusCode::OK => {
                let media_type = media_type(headers);
                let digest = match header(headers, "docker-content-digest") {
                    Some(digest) => {
                        self.checked_digest(&digest)?;
                        digest
                    }
                    None => return self.get_manifest(auth).await,
                };
                Ok(Found { digest, media_type })
            }
            StatusCode::NOT_FOUND => Err(Failure::NotFound),
            StatusCode::UNAUTHORIZED => {
                // distribution answers a token for another repository with
                // error="insufficient_scope".
                let detail = header(headers, "www-authenticate")
                    .and_then(|c| {
                        c.split(',')
                            .find_map(|p| p.trim().strip_prefix("error="))
                            .map(|e| e.trim_matches('"').to_owned())
                    })
                    .map(|e| text::clean(&e, 60));
                Err(Failure::Unauthorized { status: 401, detail })
            }
            StatusCode::FORBIDDEN => Err(Failure::Unauthorized { status: 403, detail: None }),
            other => Err(Failure::Fatal(self.protocol(format!(
                "{other} to the manifest HEAD, which the distribution API does not define"
            )))),
        }
    }

    /// GET the manifest and hash the exact bytes, checked against the registry's digest header
    /// and the reference's digest when either is there.
    async fn get_manifest(&self, auth: &Authorization) -> Result<Found, Failure> {
        crate::log::debug(format_args!(
            "{} sent no Docker-Content-Digest; hashing the manifest body",
            self.image.registry()
        ));
        let response = self.send(self.manifest_request(reqwest::Method::GET, auth)).await?;
        let status = response.status();
        if let Some(failure) = self.retryable(&response) {
            return Err(failure);
        }
        match status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(Failure::NotFound),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let detail = text::error_detail(&read_error_body(response).await);
                return Err(Failure::Unauthorized { status: status.as_u16(), detail });
            }
            other => {
                let detail = text::error_detail(&read_error_body(response).await)
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                return Err(Failure::Fatal(
                    self.protocol(format!("{other}{detail} to the manifest GET")),
                ));
            }
        }
        let media_type = media_type(response.headers());
        let claimed = header(response.headers(), "docker-content-digest");
        let body = match read_capped(response, transport::MANIFEST_CAP).await {
            Ok(body) => body,
            Err(e) => {
                return Err(self.read_failure(e, "a manifest", transport::MANIFEST_CAP).await);
            }
        };
        let computed = digest_of(&body, "sha256");
        // The header's and the reference's digests, in their own algorithms, must match.
        for expected in claimed.iter().map(String::as_str).chain(self.image.digest()) {
            self.checked_digest(expected)?;
            let algorithm = expected.split(':').next().unwrap_or_default();
            if digest_of(&body, algorithm) != expected {
                return Err(Failure::Fatal(super::Error::Protocol {
                    registry: self.image.registry().to_owned(),
                    what: format!("a manifest whose content does not match its digest {expected}"),
                    hint: "the registry or a proxy in front of it corrupted the manifest; retry, \
                           and report it to the registry's operators if it persists",
                }));
            }
        }
        Ok(Found { digest: claimed.unwrap_or(computed), media_type })
    }

    fn checked_digest(&self, digest: &str) -> Result<(), Failure> {
        validate_digest(digest).map_err(|e| {
            let value = text::clean(&e.value, 140);
            Failure::Fatal(
                self.protocol(format!("a malformed Docker-Content-Digest {value:?}: {}", e.reason)),
            )
        })
    }

    /// Docker Hub's pull quota, logged so a user can see why a later run is throttled. Only
    /// the numbers are printed, never the header's text.
    fn note_rate_limit(&self, headers: &HeaderMap) {
        let Some(remaining) = header(headers, "ratelimit-remaining").and_then(|v| rate_limit(&v))
        else {
            return;
        };
        let limit = header(headers, "ratelimit-limit").and_then(|v| rate_limit(&v));
        let of = limit.map(|(count, _)| format!(" of {count}")).unwrap_or_default();
        let window = remaining.1.map(|w| format!(" per {w}s")).unwrap_or_default();
        crate::log::info(format_args!(
            "{} pull rate limit: {} remaining{of}{window}",
            self.image.registry(),
            remaining.0
        ));
    }
}

/// `20;w=21600` as numbers: the count and the window in seconds. Anything else is `None`.
fn rate_limit(value: &str) -> Option<(u64, Option<u64>)> {
    let mut parts = value.split(';').map(str::trim);
    let count = parts.next()?.parse().ok()?;
    let window = parts.find_map(|p| p.strip_prefix("w=")).and_then(|w| w.parse().ok());
    Some((count, window))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    header(headers, "content-type")
        .map(|t| text::clean(t.split(';').next().unwrap_or_default().trim(), 100))
}

/// `<algorithm>:<hex>` of `body`; an unknown algorithm gives an empty string.
fn digest_of(body: &[u8], algorithm: &str) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    match algorithm {
        "sha256" => format!("sha256:{}", hex(&sha2::Sha256::digest(body))),
        "sha384" => format!("sha384:{}", hex(&sha2::Sha384::digest(body))),
        "sha512" => format!("sha512:{}", hex(&sha2::Sha512::digest(body))),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker Hub's headers become numbers; text in them is ignored, never printed.
    #[test]
    fn rate_limit_headers() {
        assert_eq!(rate_limit("20;w=21600"), Some((20, Some(21600))));
        assert_eq!(rate_limit(" 100 "), Some((100, None)));
        assert_eq!(rate_limit("20;w=soon"), Some((20, None)));
        assert_eq!(rate_limit("::add-mask::x"), None);
        assert_eq!(rate_limit("1\r::warning::x;w=1"), None);
        assert_eq!(rate_limit(""), None);
    }

    /// Digests in each registered algorithm, over the exact bytes.
    #[test]
    fn digests_of_bytes() {
        assert_eq!(
            digest_of(b"", "sha256"),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(
            digest_of(b"x", "sha512").starts_with("sha512:")
                && digest_of(b"x", "sha512").len() == 135
        );
        assert_eq!(digest_of(b"x", "md5"), "");
    }
}
