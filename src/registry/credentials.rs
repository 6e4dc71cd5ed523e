//! Which credentials go to the registry, and from where: the inputs, else the docker config
//! (`credHelpers`, `credsStore`, `auths`, in the Docker CLI's order), else none. Secrets are
//! held as [`SecretString`] (its `Debug` prints `[REDACTED]`) and leave this module's types
//! only as request headers and token requests (see `auth.rs`). A `docker-credential-<name>`
//! helper is run by `helper.rs`.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::error::{CredentialSource, Error};

/// What is sent: nothing, a user and password, or an OAuth2 refresh ("identity") token.
#[derive(Clone)]
pub enum Secret {
    Anonymous,
    Basic { username: String, password: SecretString },
    IdentityToken(SecretString),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => write!(f, "Basic({username:?}, <redacted>)"),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// A secret and where it came from.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub secret: Secret,
    pub source: CredentialSource,
}

impl Credentials {
    /// No credentials.
    pub fn anonymous() -> Self {
        Self { secret: Secret::Anonymous, source: CredentialSource::Anonymous }
    }

    /// The `registry-username`/`registry-password` inputs.
    pub fn from_inputs(username: &str, password: &SecretString) -> Self {
        Self {
            secret: Secret::Basic { username: username.to_owned(), password: password.clone() },
            source: CredentialSource::Inputs { username: username.to_owned() },
        }
    }

    /// The password or token to hide from logs (`::add-mask::`), if any.
    pub fn secret_value(&self) -> Option<&str> {
        match &self.secret {
            Secret::Anonymous => None,
            Secret::Basic { password, .. } => Some(password.expose_secret()),
            Secret::IdentityToken(token) => Some(token.expose_secret()),
        }
    }
}

/// The subset of a docker `config.json` that holds credentials.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: std::collections::BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    auth: Option<SecretString>,
    username: Option<String>,
    password: Option<SecretString>,
    identitytoken: Option<SecretString>,
}

/// Finds the credentials for `registry` (as references name it: `docker.io`, `ghcr.io`,
/// `localhost:5000`) in the docker config directory `dir` (`$DOCKER_CONFIG` or `~/.docker`).
///
/// # Errors
/// [`Error::DockerConfig`] for a file that is not valid JSON or holds a malformed `auth`;
/// [`Error::Credentials`] when the configured helper is missing or fails.
pub async fn from_docker_config(dir: &Path, registry: &str) -> Result<Credentials, Error> {
    let path = dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::anonymous()),
        Err(e) => return Err(config_error(&path, e.to_string())),
    };
    let config: DockerConfig = serde_json::from_str(&text)
        // Line and column only: serde_json's message can quote a value, and values are secrets.
        .map_err(|e| {
            config_error(&path, format!("invalid JSON at line {}, column {}", e.line(), e.column()))
        })?;

    let from_file = match config.auths.iter().find(|(key, _)| same_registry(key, registry)) {
        Some((key, entry)) => entry_secret(entry)
            .map_err(|detail| config_error(&path, format!("entry {key:?}: {detail}")))?
            .map(|secret| Credentials {
                secret,
                source: CredentialSource::DockerConfig {
                    path: path.display().to_string(),
                    key: key.clone(),
                },
            }),
        None => None,
    };

    let helper = config
        .cred_helpers
        .iter()
        .find(|(key, _)| same_registry(key, registry))
        .map(|(_, name)| name.clone())
        .or(config.creds_store);
    let Some(helper) = helper.filter(|h| !h.is_empty()) else {
        return Ok(from_file.unwrap_or_else(Credentials::anonymous));
    };
    let program = format!("docker-credential-{helper}");
    match find_on_path(&program) {
        Some(executable) => {
            super::helper::run(&executable, &program, registry, server_url(registry)).await
        }
        // A config copied from a desktop often names a store that is not in the CI image;
        // the file's own entry still works then.
        None => from_file.ok_or_else(|| Error::Credentials {
            registry: registry.to_owned(),
            detail: format!(
                "{} names the credential helper {program}, which is not on PATH: install it in \
                 the step's image, or pass registry-username and registry-password",
                path.display()
            ),
        }),
    }
}

fn config_error(path: &Path, detail: String) -> Error {
    Error::DockerConfig { path: path.display().to_string(), detail }
}

/// The Docker CLI's key matching: keys may be `host`, `host:port` or `https://host/v1/`;
/// Docker Hub is `https://index.docker.io/v1/`.
fn same_registry(key: &str, registry: &str) -> bool {
    let host = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    host == registry || (hub(host) && hub(registry))
}

/// An `auths` entry's secret, `None` for an empty entry (what `credsStore` leaves behind).
fn entry_secret(entry: &AuthEntry) -> Result<Option<Secret>, String> {
    let present = |s: &Option<SecretString>| s.clone().filter(|s| !s.expose_secret().is_empty());
    if let Some(token) = present(&entry.identitytoken) {
        return Ok(Some(Secret::IdentityToken(token)));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password)
        && !username.is_empty()
    {
        return Ok(Some(Secret::Basic { username: username.clone(), password: password.clone() }));
    }
    let Some(auth) = present(&entry.auth) else {
        return Ok(None);
    };
    // docker/cli decodeAuth: standard base64 of "user:password", split at the first ':'.
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.expose_secret().trim())
        .map_err(|_| "\"auth\" is not base64 of user:password".to_owned())?;
    let decoded = SecretString::from(
        String::from_utf8(decoded).map_err(|_| "\"auth\" is not UTF-8".to_owned())?,
    );
    match decoded.expose_secret().split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok(Some(Secret::Basic {
            username: user.to_owned(),
            password: password.trim_end_matches('\0').into(),
        })),
        _ => Err("\"auth\" does not hold user:password".to_owned()),
    }
}

/// What the Docker CLI hands a helper for `registry`: Docker Hub by its legacy index URL.
fn server_url(registry: &str) -> &str {
    if same_registry("docker.io", registry) { "https://index.docker.io/v1/" } else { registry }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> AuthEntry {
        serde_json::from_str(json).expect("entry JSON")
    }

    /// The secret in plain words, for comparisons.
    fn exposed(secret: Option<Secret>) -> String {
        match secret {
            None => "none".into(),
            Some(Secret::Anonymous) => "anonymous".into(),
            Some(Secret::Basic { username, password }) => {
                format!("basic {username}:{}", password.expose_secret())
            }
            Some(Secret::IdentityToken(t)) => format!("token {}", t.expose_secret()),
        }
    }

    /// `auth` splits at the first colon and drops trailing NULs, like docker/cli.
    #[test]
    fn auth_field_decoding() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("bob:pa:ss\0");
        let secret = entry_secret(&entry(&format!(r#"{{"auth":"{b64}"}}"#))).expect("decodes");
        assert_eq!(exposed(secret), "basic bob:pa:ss");
    }

    /// Malformed `auth` values are errors, not silent anonymity, and never quote the value.
    #[test]
    fn malformed_auth_fields() {
        let no_colon = base64::engine::general_purpose::STANDARD.encode("bob");
        let no_user = base64::engine::general_purpose::STANDARD.encode(":pw");
        for bad in ["%%%", no_colon.as_str(), no_user.as_str()] {
            let error = entry_secret(&entry(&format!(r#"{{"auth":"{bad}"}}"#))).expect_err(bad);
            assert!(!error.contains(bad), "{error}");
        }
    }

    /// An identity token wins over user and password; an empty entry holds nothing.
    #[test]
    fn entry_kinds() {
        let e = entry(r#"{"username":"u","password":"p","identitytoken":"t"}"#);
        assert_eq!(exposed(entry_secret(&e).expect("ok")), "token t");
        let e = entry(r#"{"username":"u","password":"p"}"#);
        assert_eq!(exposed(entry_secret(&e).expect("ok")), "basic u:p");
        assert_eq!(exposed(entry_secret(&entry("{}")).expect("ok")), "none");
        assert_eq!(exposed(entry_secret(&entry(r#"{"auth":""}"#)).expect("ok")), "none");
    }

    /// Docker Hub keys in any of their spellings; other keys by host and port.
    #[test]
    fn registry_key_matching() {
        assert!(same_registry("https://index.docker.io/v1/", "docker.io"));
        assert!(same_registry("docker.io", "docker.io"));
        assert!(same_registry("https://ghcr.io", "ghcr.io"));
        assert!(same_registry("localhost:5000", "localhost:5000"));
        assert!(!same_registry("localhost:5001", "localhost:5000"));
        assert!(!same_registry("ghcr.io", "docker.io"));
    }

    /// Debug output never shows a secret, nor does the credentials' Debug.
    #[test]
    fn debug_is_redacted() {
        let s = Secret::Basic { username: "bob".into(), password: "hunter2".into() };
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", Secret::IdentityToken("tok3n".into())).contains("tok3n"));
        let c = Credentials::from_inputs("bob", &"hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.secret_value(), Some("hunter2"));
    }

    /// A docker config whose JSON breaks is reported by position, never by its text.
    #[tokio::test]
    async fn broken_docker_config_quotes_no_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = r#"{"auths":{"r":{"auth":"c2VjcmV0LXZhbHVl"}}, "credsStore": "s3cret-value"]"#;
        std::fs::write(dir.path().join("config.json"), text).expect("write");
        let error = from_docker_config(dir.path(), "r").await.expect_err("broken").to_string();
        assert!(error.contains("line 1, column") && !error.contains("s3cret"), "{error}");
        std::fs::write(dir.path().join("config.json"), r#"{"auths":"s3cret-value"}"#)
            .expect("write");
        let error = from_docker_config(dir.path(), "r").await.expect_err("wrong type").to_string();
        assert!(!error.contains("s3cret"), "{error}");
    }
}
