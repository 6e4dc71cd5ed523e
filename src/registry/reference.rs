//! Image references: the `image` input parsed with Docker's normalization rules, and the
//! `sha256:<hex>` digests kubeship pins. Parsing is oci-spec's port of distribution's
//! `reference` package; this module adds the checks Docker makes on top and messages that say
//! what to change.

use std::fmt;

use oci_client::Reference;

/// Docker Hub's canonical name, and the host its registry API answers on (the Docker CLI's
/// choice; oci-spec would use `index.docker.io`).
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A parsed `image` input.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageRef {
    reference: Reference,
}

/// Why an `image` or `digest` value was refused. The caller adds the input's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} {reason}")]
pub struct InvalidReference {
    /// The value as given.
    pub value: String,
    /// What is wrong, and what to write instead.
    pub reason: String,
}

fn invalid(value: &str, reason: impl Into<String>) -> InvalidReference {
    InvalidReference { value: value.to_owned(), reason: reason.into() }
}

impl ImageRef {
    /// Parses `[registry/]repository[:tag][@digest]`, normalizing Docker Hub names
    /// (`nginx` is `docker.io/library/nginx:latest`).
    ///
    /// # Errors
    /// [`InvalidReference`] quoting the value and naming the rule it breaks.
    pub fn parse(value: &str) -> Result<Self, InvalidReference> {
        if value.is_empty() {
            return Err(invalid(value, "is empty: give registry/repository:tag"));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(value, "contains white space or a control character"));
        }
        if let Some((scheme, _)) = value.split_once("://") {
            return Err(invalid(
                value,
                format!("starts with a URL scheme ({scheme}://): give registry/repository:tag"),
            ));
        }
        // Docker refuses a bare 64-hex name: it would be mistaken for an image ID.
        let name = value.split(['@', ':']).next().unwrap_or(value);
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                value,
                "is a 64-character hex string, which is an image ID, not a repository",
            ));
        }
        if let Some((_, digest)) = value.split_once('@') {
            validate_digest(digest)
                .map_err(|e| invalid(value, format!("has a digest that {}", e.reason)))?;
        }
        let reference: Reference = value.parse().map_err(|e: oci_client::ParseError| {
            use oci_client::ParseError as P;
            let reason = match e {
                P::NameContainsUppercase => {
                    "has uppercase letters in the repository: repository names are lowercase"
                        .to_owned()
                }
                P::NameEmpty => "has no repository name".to_owned(),
                P::NameTooLong => "has a repository name longer than 255 characters".to_owned(),
                P::TagInvalidFormat => {
                    "has an invalid tag: up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -"
                        .to_owned()
                }
                P::DigestInvalidFormat | P::DigestInvalidLength | P::DigestUnsupported => {
                    "has an invalid digest: use @sha256:<64 lowercase hex digits>".to_owned()
                }
                P::ReferenceInvalidFormat => "is not a valid image reference: use \
                    registry/repository:tag; components are lowercase letters and digits \
                    separated by '.', '_', '__' or '-', joined by '/'"
                    .to_owned(),
            };
            invalid(value, reason)
        })?;
        Ok(Self { reference })
    }

    /// The registry's name in references: `docker.io`, `ghcr.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// The host (and port) the registry API is served on.
    pub fn api_host(&self) -> &str {
        match self.registry() {
            DOCKER_HUB => DOCKER_HUB_API_HOST,
            other => other,
        }
    }

    /// The repository, `library/` included for Docker Hub official images.
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// The tag; `latest` when none was given.
    pub fn tag(&self) -> &str {
        self.reference.tag().unwrap_or("latest")
    }

    /// The digest, when the input carried one.
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// The reference to write into the workloads: `registry/repository@digest`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}/{}@{}", self.registry(), self.repository(), digest)
    }

    /// The same reference with its registry host rewritten to [`Self::api_host`], for oci-client
    /// (which otherwise sends Docker Hub requests to `index.docker.io`).
    pub(crate) fn for_client(&self) -> Reference {
        let mut reference = self.reference.clone();
        if self.registry() == DOCKER_HUB {
            reference.set_mirror_registry(DOCKER_HUB_API_HOST.to_owned());
        }
        reference
    }
}

impl fmt::Display for ImageRef {
    /// The normalized whole reference: `docker.io/library/nginx:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry(), self.repository(), self.tag())?;
        if let Some(digest) = self.digest() {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

/// Checks a digest as kubeship accepts it: `sha256:` and 64 lowercase hex digits (also
/// `sha384`/`sha512` with their lengths, which the OCI spec registers).
///
/// # Errors
/// [`InvalidReference`] saying which part is wrong.
pub fn validate_digest(value: &str) -> Result<(), InvalidReference> {
    let Some((algorithm, hex)) = value.split_once(':') else {
        return Err(invalid(value, "is not a digest: use sha256:<64 lowercase hex digits>"));
    };
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(invalid(value, format!("uses algorithm {algorithm:?}: use sha256")));
        }
    };
    if hex.len() != length {
        return Err(invalid(
            value,
            format!("has {} hex digits after {algorithm}: it needs {length}", hex.len()),
        ));
    }
    if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(invalid(value, "has characters other than lowercase hex digits"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "4a1c4b21597c1b4415bdbecb28a3296c6b5e23ca4f9feeb599860a1dac6a0108";

    fn parts(input: &str) -> (String, String, String, Option<String>, String) {
        let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        (
            r.registry().to_owned(),
            r.repository().to_owned(),
            r.tag().to_owned(),
            r.digest().map(str::to_owned),
            r.api_host().to_owned(),
        )
    }

    /// Docker's own normalization examples (distribution `reference/normalize_test.go`
    /// `TestParseNormalizedNamed` and `TestParseRepositoryInfo`), plus the contract's.
    #[test]
    fn docker_normalization_examples() {
        let hub = "registry-1.docker.io";
        let cases: &[(&str, &str, &str, &str, &str)] = &[
            ("nginx", "docker.io", "library/nginx", "latest", hub),
            ("debian", "docker.io", "library/debian", "latest", hub),
            ("library/debian", "docker.io", "library/debian", "latest", hub),
            ("docker/docker", "docker.io", "docker/docker", "latest", hub),
            ("docker.io/debian", "docker.io", "library/debian", "latest", hub),
            ("docker.io/library/debian:12", "docker.io", "library/debian", "12", hub),
            ("index.docker.io/debian", "docker.io", "library/debian", "latest", hub),
            ("index.docker.io/docker/docker", "docker.io", "docker/docker", "latest", hub),
            ("localhost/debian", "localhost", "debian", "latest", "localhost"),
            ("localhost/library/debian", "localhost", "library/debian", "latest", "localhost"),
            ("localhost:5000/app", "localhost:5000", "app", "latest", "localhost:5000"),
            ("127.0.0.1:5000/debian", "127.0.0.1:5000", "debian", "latest", "127.0.0.1:5000"),
            (
                "registry.com/library/debian",
                "registry.com",
                "library/debian",
                "latest",
                "registry.com",
            ),
            ("foo.com:8080/bar:v1", "foo.com:8080", "bar", "v1", "foo.com:8080"),
            ("ghcr.io/acme/api:sha-1f2e", "ghcr.io", "acme/api", "sha-1f2e", "ghcr.io"),
            ("a.b/c/d/e_f__g-h:T.1_x-Y", "a.b", "c/d/e_f__g-h", "T.1_x-Y", "a.b"),
            // Not a registry: no '.' or ':' in the first component, and not localhost.
            ("myhost/app", "docker.io", "myhost/app", "latest", hub),
            // Docker's famous surprise: a port-looking suffix is the tag of a Hub image.
            ("test.com:5000", "docker.io", "library/test.com", "5000", hub),
        ];
        for &(input, registry, repository, tag, host) in cases {
            assert_eq!(
                parts(input),
                (registry.into(), repository.into(), tag.into(), None, host.into()),
                "{input}"
            );
        }
    }

    /// Digests alone, and tag plus digest, as the contract allows.
    #[test]
    fn references_with_digests() {
        let d = format!("sha256:{HEX}");
        let (reg, repo, tag, digest, _) = parts(&format!("localhost:5000/a/b@{d}"));
        assert_eq!(
            (reg.as_str(), repo.as_str(), tag.as_str()),
            ("localhost:5000", "a/b", "latest")
        );
        assert_eq!(digest.as_deref(), Some(d.as_str()));
        let (_, _, tag, digest, _) = parts(&format!("host:5000/a/b:v2@{d}"));
        assert_eq!((tag.as_str(), digest.as_deref()), ("v2", Some(d.as_str())));
    }

    /// The pinned form is registry/repository@digest, with Docker Hub names fully qualified.
    #[test]
    fn pinned_reference() {
        let r = ImageRef::parse("nginx:1.27").expect("parses");
        assert_eq!(r.pinned("sha256:x"), "docker.io/library/nginx@sha256:x");
        assert_eq!(r.to_string(), "docker.io/library/nginx:1.27");
    }

    /// Malformed references, Docker's among them: each message quotes the value and says why.
    #[test]
    fn malformed_references_are_explained() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("https://ghcr.io/acme/api", "scheme"),
            ("docker/Docker", "lowercase"),
            ("Ghcr.io/acme/API:1", "lowercase"),
            ("-docker", "not a valid image reference"),
            ("docker-", "not a valid image reference"),
            ("docker///docker", "not a valid image reference"),
            ("ghcr.io/acme/api:", "not a valid image reference"),
            ("ghcr.io/acme/api:-bad", "not a valid image reference"),
            ("ghcr.io/acme/api:v1 ", "white space"),
            ("ghcr.io/acme/api\n:v1", "white space"),
            ("ghcr.io/acme/api@sha256:abc", "3 hex digits"),
            ("ghcr.io/acme/api@md5:0123456789abcdef0123456789abcdef", "algorithm"),
            (
                "ghcr.io/acme/api@sha256:4A1C4B21597C1B4415BDBECB28A3296C6B5E23CA4F9FEEB599860A1DAC6A0108",
                "lowercase hex",
            ),
            ("4a1c4b21597c1b4415bdbecb28a3296c6b5e23ca4f9feeb599860a1dac6a0108", "image ID"),
        ];
        for &(input, why) in cases {
            let err = ImageRef::parse(input).expect_err(input);
            let text = err.to_string();
            assert!(text.contains(&format!("{input:?}")), "{input}: {text}");
            assert!(text.contains(why), "{input}: {text}");
        }
        let long_tag = format!("app:{}", "t".repeat(129));
        assert!(ImageRef::parse(&long_tag).is_err());
    }

    /// Digest inputs: algorithm, length and case are all checked.
    #[test]
    fn digest_validation() {
        assert!(validate_digest(&format!("sha256:{HEX}")).is_ok());
        for bad in ["", "sha256", "sha256:", HEX, "sha1:abc", &format!("sha256:{HEX}0")] {
            assert!(validate_digest(bad).is_err(), "{bad}");
        }
    }
}
