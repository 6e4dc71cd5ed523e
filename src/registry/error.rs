//! What can go wrong while resolving a digest. Every variant is exit 3 (the registry), except
//! an unreadable docker config, which is configuration (exit 2). Nothing has been changed in
//! the cluster when any of these is returned.

use std::fmt;
use std::time::Duration;

/// Where the credentials sent to the registry came from. Named in every authentication
/// error, so the user knows which secret to fix; never holds the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// No credentials: the registry's anonymous token flow, if it has one.
    Anonymous,
    /// The `registry-username` and `registry-password` inputs.
    Inputs { username: String },
    /// An `auths` entry of a docker config file.
    DockerConfig { path: String, key: String },
    /// A `docker-credential-<name>` helper named by the docker config.
    Helper { program: String },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("no credentials (anonymous)"),
            Self::Inputs { username } => {
                write!(f, "the registry-username/registry-password inputs (user {username:?})")
            }
            Self::DockerConfig { path, key } => {
                write!(f, "the docker config {path} (entry {key:?})")
            }
            Self::Helper { program } => write!(f, "the credential helper {program}"),
        }
    }
}

/// A registry failure, with what the user should do about it in its message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tag never appeared within `tag-timeout`.
    #[error(
        "tag {tag:?} of {repository} was not found on {registry} after waiting {}: \
         check that the push step pushed this tag to this registry, or raise tag-timeout",
        secs(*waited)
    )]
    TagNotFound { registry: String, repository: String, tag: String, waited: Duration },

    /// The image named a digest that the registry does not have.
    #[error(
        "digest {digest} of {repository} was not found on {registry} after waiting {}: \
         check the digest, and that it was pushed to this repository",
        secs(*waited)
    )]
    DigestNotFound { registry: String, repository: String, digest: String, waited: Duration },

    /// The registry, or its token service, refused the credentials.
    #[error(
        "{registry} refused access to {repository} ({status}{}) using {source_}: {hint}",
        detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    Unauthorized {
        registry: String,
        repository: String,
        status: u16,
        detail: Option<String>,
        source_: CredentialSource,
        hint: &'static str,
    },

    /// The token endpoint named by the registry's challenge failed.
    #[error(
        "the token service {realm} of {registry} answered {status}{} using {source_}: {hint}",
        detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    TokenService {
        registry: String,
        realm: String,
        status: u16,
        detail: Option<String>,
        source_: CredentialSource,
        hint: &'static str,
    },

    /// The registry's certificate did not verify.
    #[error("TLS with {registry} failed ({detail}): {hint}")]
    Tls { registry: String, detail: String, hint: &'static str },

    /// HTTPS was asked for and the registry answered in plain HTTP.
    #[error(
        "{registry} speaks plain HTTP, not HTTPS: set insecure-registry: true if that is \
         intended (credentials and images then cross the network unprotected)"
    )]
    PlainHttp { registry: String },

    /// `insecure-registry` asked for plain HTTP and the registry speaks HTTPS.
    #[error(
        "{registry} speaks HTTPS, but insecure-registry: true asks for plain HTTP: drop \
         insecure-registry (and give registry-ca if its certificate is signed by a private CA)"
    )]
    SpeaksHttps { registry: String },

    /// `GET /v2/` showed that the host is something other than a registry.
    #[error(
        "{registry} does not serve the registry API at /v2/ (GET /v2/ answered {answer}): check \
         the registry host in the image; a web site, a proxy or a login page answers like this"
    )]
    NotARegistry { registry: String, answer: String },

    /// The registry named a token service that credentials may not be sent to.
    #[error(
        "{registry} sends clients to the token service {realm}, which is plain HTTP{}; kubeship \
         sends {source_} only over HTTPS, or in plain HTTP to the registry's own host and port \
         under insecure-registry: serve the token service over HTTPS (or on the registry's own \
         address), or check that the image names the right registry",
        if *same_host { "" } else { " on another host or port" }
    )]
    InsecureRealm { registry: String, realm: String, same_host: bool, source_: CredentialSource },

    /// The registry answered with a digest other than the expected one.
    #[error(
        "the registry resolved {image} to {actual}, but {expected} was expected: \
         the tag moved since the build (another push?); deploy the expected digest explicitly \
         or rerun the build"
    )]
    DigestMismatch { image: String, expected: String, actual: String },

    /// The registry kept failing (connection errors, 5xx, 429) until the deadline.
    #[error(
        "{registry} could not be reached after {attempts} attempts over {}: {last}. \
         Check the registry's address and status, or raise tag-timeout",
        secs(*waited)
    )]
    Unavailable { registry: String, attempts: u32, waited: Duration, last: String },

    /// The registry's host name does not resolve.
    #[error(
        "the registry host of {registry} cannot be resolved ({detail}): check the image's registry name"
    )]
    UnknownHost { registry: String, detail: String },

    /// An answer no retry will change (an unexpected status, a malformed response).
    #[error("{registry} answered {what}: {hint}")]
    Protocol { registry: String, what: String, hint: &'static str },

    /// Credentials could not be found or fetched (helper missing or failing).
    #[error("registry credentials for {registry}: {detail}")]
    Credentials { registry: String, detail: String },

    /// The docker config file exists but cannot be used.
    #[error("the docker config {path} cannot be read: {detail}")]
    DockerConfig { path: String, detail: String },
}

impl Error {
    /// The contract's exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::DockerConfig { .. } => 2,
            _ => 3,
        }
    }
}

/// A wait as users read it: `60s`, `1.5s`.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 0.05 { format!("{s:.0}s") } else { format!("{s:.1}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unknown-tag message names the tag, the registry and the wait.
    #[test]
    fn tag_not_found_message() {
        let e = Error::TagNotFound {
            registry: "ghcr.io".into(),
            repository: "acme/api".into(),
            tag: "v2".into(),
            waited: Duration::from_secs(60),
        };
        let text = e.to_string();
        for part in ["\"v2\"", "acme/api", "ghcr.io", "60s", "tag-timeout"] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert_eq!(e.exit_code(), 3);
    }

    /// Authentication messages name the credential source, never a secret.
    #[test]
    fn unauthorized_names_the_source() {
        let e = Error::Unauthorized {
            registry: "r".into(),
            repository: "a".into(),
            status: 401,
            detail: None,
            source_: CredentialSource::Inputs { username: "bob".into() },
            hint: "check the password",
        };
        assert!(
            e.to_string().contains("registry-username/registry-password inputs (user \"bob\")")
        );
    }
}
