//! Image references: the `image` input parsed with Docker's normalization rules, and the
//! `sha256:<hex>` digests kubeship pins. The grammar is distribution's `reference` package
//! (`regexp.go`, `normalize.go`), checked by hand: oci-spec's parser compiles a large Unicode
//! regex on first use, which costs a one-shot CLI like kubeship ~50 ms per run.

use std::fmt;

/// Docker Hub's canonical name, and the host its registry API answers on (the Docker CLI's
/// choice; oci-spec would use `index.docker.io`).
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// distribution's `NameTotalLengthMax`.
const NAME_MAX: usize = 255;

/// A parsed `image` input.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
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

const COMPONENT_RULE: &str = "repository components are lowercase letters and digits, \
    separated by '.', '_', '__' or dashes, and joined by '/'";

impl ImageRef {
    /// Parses `[registry/]repository[:tag][@digest]`, normalizing Docker Hub names
    /// (`nginx` is `docker.io/library/nginx:latest`).
    ///
    /// # Errors
    /// [`InvalidReference`] quoting the value and naming the rule it breaks.
    pub fn parse(value: &str) -> Result<Self, InvalidReference> {
        let bad = |reason: String| invalid(value, reason);
        if value.is_empty() {
            return Err(bad("is empty: give registry/repository:tag".into()));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains white space or a control character".into()));
        }
        if let Some((scheme, _)) = value.split_once("://") {
            return Err(bad(format!(
                "starts with a URL scheme ({scheme}://): give registry/repository:tag"
            )));
        }
        let (name, digest) = match value.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest)
                    .map_err(|e| bad(format!("has a digest that {}", e.reason)))?;
                (name, Some(digest.to_owned()))
            }
            None => (value, None),
        };
        // Docker refuses a bare 64-hex name: it would be mistaken for an image ID.
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(
                "is a 64-character hex string, which is an image ID, not a repository".into(),
            ));
        }
        // normalize.go splitDockerDomain: the first component is a registry only if it has
        // a '.' or ':', is "localhost", or has uppercase letters.
        let (registry, rest) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first, rest)
            }
            _ => (DOCKER_HUB, name),
        };
        let registry = if registry == DOCKER_HUB_LEGACY { DOCKER_HUB } else { registry };
        let (path, tag) = match rest.rsplit_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (rest, None),
        };
        if !valid_host(registry) {
            return Err(bad(format!(
                "has an invalid registry {registry:?}: use a host name or IP, with an optional :port"
            )));
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad(
                "has uppercase letters in the repository: repository names are lowercase".into(),
            ));
        }
        if path.is_empty() {
            return Err(bad("has no repository name".into()));
        }
        if let Some(component) = path.split('/').find(|c| !valid_component(c)) {
            return Err(bad(format!(
                "is not a valid image reference: the repository component {component:?} breaks \
                 the rule ({COMPONENT_RULE})"
            )));
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(bad(format!(
                "is not a valid image reference: the tag {tag:?} is not 1 to 128 of A-Z a-z 0-9 \
                 _ . - starting with a letter, digit or _"
            )));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        if registry.len() + 1 + repository.len() > NAME_MAX {
            return Err(bad(format!("has a name longer than {NAME_MAX} characters")));
        }
        Ok(Self { registry: registry.to_owned(), repository, tag: tag.map(str::to_owned), digest })
    }

    /// The registry's name in references: `docker.io`, `ghcr.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
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
        &self.repository
    }

    /// The tag; `latest` when none was given.
    pub fn tag(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The digest, when the input carried one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The reference to write into the workloads: `registry/repository@digest`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}/{}@{}", self.registry(), self.repository(), digest)
    }
}

/// regexp.go `domainAndPort`: DNS-ish components joined by dots, or a bracketed IPv6
/// address, then an optional numeric port.
fn valid_host(host: &str) -> bool {
    let (name_ok, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) => (
                !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
                // Anything after the bracket must be ":port".
                (!after.is_empty()).then(|| after.strip_prefix(':').unwrap_or_default()),
            ),
            None => return false,
        },
        None => {
            let (name, port) = match host.rsplit_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            };
            let component_ok = |c: &str| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            };
            (name.split('.').all(component_ok), port)
        }
    };
    name_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// regexp.go `pathComponent`: `[a-z0-9]+` runs separated by `.`, `_`, `__` or `-+`.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// regexp.go `tag`: `[\w][\w.-]{0,127}` (ASCII word characters).
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

impl fmt::Display for ImageRef {
    /// The normalized reference as the user wrote it: `docker.io/library/nginx:latest` for
    /// `nginx` (the tag that is resolved), `ghcr.io/a/b@sha256:…` without a tag that was never
    /// given, `ghcr.io/a/b:v1@sha256:…` with one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry(), self.repository())?;
        match (&self.tag, self.digest()) {
            (None, Some(_)) => {}
            _ => write!(f, ":{}", self.tag())?,
        }
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
            // Newer distribution: an uppercase first component is a registry, and IPv6 hosts.
            ("Registry.Example/app", "Registry.Example", "app", "latest", "Registry.Example"),
            ("[::1]:5000/app:v1", "[::1]:5000", "app", "v1", "[::1]:5000"),
            ("a-b.c.d:443/x/y-z", "a-b.c.d:443", "x/y-z", "latest", "a-b.c.d:443"),
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

    /// References are shown as written: no `:latest` added to one pinned by digest alone.
    #[test]
    fn display_shows_what_was_written() {
        let d = format!("sha256:{HEX}");
        let cases = [
            (format!("ghcr.io/acme/api@{d}"), format!("ghcr.io/acme/api@{d}")),
            (format!("ghcr.io/acme/api:v2@{d}"), format!("ghcr.io/acme/api:v2@{d}")),
            (format!("nginx@{d}"), format!("docker.io/library/nginx@{d}")),
            ("nginx".to_owned(), "docker.io/library/nginx:latest".to_owned()),
            ("localhost:5000/app:v1".to_owned(), "localhost:5000/app:v1".to_owned()),
        ];
        for (input, shown) in cases {
            assert_eq!(ImageRef::parse(&input).expect("parses").to_string(), shown, "{input}");
        }
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
            ("a_b.com/app", "invalid registry"),
            ("localhost:abc/app", "invalid registry"),
            ("[::1/app", "invalid registry"),
            ("[::1]x/app", "invalid registry"),
            ("-a.com/app", "invalid registry"),
            ("ghcr.io/a..b", "not a valid image reference"),
            ("ghcr.io/a_-b", "not a valid image reference"),
            ("ghcr.io/a___b", "not a valid image reference"),
            ("ghcr.io/", "no repository"),
            (
                "ghcr.io/app@sha256:4a1c4b21597c1b4415bdbecb28a3296c6b5e23ca4f9feeb599860a1dac6a0108@x",
                "digest",
            ),
        ];
        for &(input, why) in cases {
            let err = ImageRef::parse(input).expect_err(input);
            let text = err.to_string();
            assert!(text.contains(&format!("{input:?}")), "{input}: {text}");
            assert!(text.contains(why), "{input}: {text}");
        }
        let long_tag = format!("app:{}", "t".repeat(129));
        assert!(ImageRef::parse(&long_tag).is_err());
        assert!(ImageRef::parse(&format!("app:{}", "t".repeat(128))).is_ok());
        let long_name = format!("ghcr.io/{}", "a".repeat(250));
        assert!(ImageRef::parse(&long_name).unwrap_err().reason.contains("255"));
        // Separators that the grammar allows.
        for ok in ["ghcr.io/a.b", "ghcr.io/a_b", "ghcr.io/a__b", "ghcr.io/a---b/c-d"] {
            assert!(ImageRef::parse(ok).is_ok(), "{ok}");
        }
    }

    proptest::proptest! {
        /// Any input, however odd, gets an answer rather than a panic.
        #[test]
        fn parsing_never_panics(input in "\\PC{0,300}") {
            let _ = ImageRef::parse(&input);
        }

        /// Whatever parses, parses again from its normalized form to the same parts.
        #[test]
        fn normalized_form_round_trips(input in "[a-zA-Z0-9./:_@\\[\\]-]{1,80}") {
            if let Ok(parsed) = ImageRef::parse(&input) {
                let again = ImageRef::parse(&parsed.to_string()).expect("normalized form parses");
                proptest::prop_assert_eq!(
                    (again.registry(), again.repository(), again.tag(), again.digest()),
                    (parsed.registry(), parsed.repository(), parsed.tag(), parsed.digest())
                );
            }
        }
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
