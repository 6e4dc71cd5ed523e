//! Which credentials go to the registry, and from where: the inputs, else the docker config
//! (`credHelpers`, `credsStore`, `auths`, in the Docker CLI's order), else none. Secrets are
//! held as [`SecretString`] (its `Debug` prints `[REDACTED]`) and leave this module's types
//! only as request headers and token requests (see `auth.rs`).
//!
//! A credential helper (`docker-credential-<name> get`) is a program the docker config names.
//! The Docker CLI hands it its whole environment (docker-credential-helpers'
//! `client/command.go` runs `exec.Command` without an `Env`); under kubeship that environment
//! holds `INPUT_REGISTRY-PASSWORD`, `INPUT_KUBECONFIG` and the CI's tokens, so a helper gets
//! only what helpers read: `PATH`, `HOME`, the locale, TLS and proxy settings, `XDG_*`,
//! `DOCKER_*` (`DOCKER_CONFIG`, and docker-credential-env's `DOCKER_<host>_USR`/`_PSW`), the
//! cloud SDKs' `AWS_*` (ecr-login), `GOOGLE_*`/`CLOUDSDK_*` (gcloud, gcr), `AZURE_*` (acr-env),
//! and what pass and secretservice use (`PASSWORD_STORE_*`, `GNUPGHOME`, the D-Bus session).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use super::error::{CredentialSource, Error};
use super::text;

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
        Some(executable) => run_helper(&executable, &program, registry).await,
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

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: SecretString,
}

/// Variables a credential helper may read (see the module's documentation).
fn for_helpers(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "TZ",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
        "https_proxy",
        "http_proxy",
        "no_proxy",
        "GNUPGHOME",
        "DBUS_SESSION_BUS_ADDRESS",
    ];
    const PREFIXES: &[&str] =
        &["XDG_", "DOCKER_", "AWS_", "GOOGLE_", "CLOUDSDK_", "AZURE_", "PASSWORD_STORE_"];
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The part of `vars` a credential helper is given.
fn helper_env(vars: impl Iterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    vars.filter(|(name, _)| name.to_str().is_some_and(for_helpers)).collect()
}

/// Runs `docker-credential-<name> get` with the server URL on stdin, as the Docker CLI does.
async fn run_helper(
    executable: &Path,
    program: &str,
    registry: &str,
) -> Result<Credentials, Error> {
    let failed = |detail: String| Error::Credentials { registry: registry.to_owned(), detail };
    let server =
        if same_registry("docker.io", registry) { "https://index.docker.io/v1/" } else { registry };
    let mut child = tokio::process::Command::new(executable)
        .env_clear()
        .envs(helper_env(std::env::vars_os()))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("{program} could not be started: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .map_err(|e| failed(format!("{program} did not read its input: {e}")))?;
    }
    // At most 64 KiB of each stream is kept; the rest is read and dropped, and a helper that
    // never stops is ended by the timeout (kill_on_drop).
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let run = async {
        let (stdout, stderr) = tokio::join!(read_some(stdout), read_some(stderr));
        child.wait().await.map(|status| std::process::Output { status, stdout, stderr })
    };
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .map_err(|_| failed(format!("{program} did not answer within 30s")))?
        .map_err(|e| failed(format!("{program} failed: {e}")))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        // docker-credential-helpers' ErrCredentialsNotFound: no entry means anonymous.
        if said.contains("credentials not found") {
            return Ok(Credentials::anonymous());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = if said.is_empty() { stderr.trim() } else { said.as_str() };
        let reason = text::clean(reason, text::QUOTED);
        return Err(failed(format!("{program} get failed ({}): {reason}", output.status)));
    }
    // serde_json's message can quote the helper's output, which holds the secret.
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout).map_err(|e| {
        failed(format!(
            "{program} printed something that is not its JSON answer (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let source = CredentialSource::Helper { program: program.to_owned() };
    // docker/cli: the user name "<token>" marks an identity token.
    let secret = if answer.username == "<token>" {
        Secret::IdentityToken(answer.secret)
    } else {
        Secret::Basic { username: answer.username, password: answer.secret }
    };
    Ok(Credentials { secret, source })
}

/// The first 64 KiB of a child's output stream; the rest is drained so the child can finish.
async fn read_some(stream: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let mut bytes = Vec::new();
    if let Some(mut stream) = stream {
        let _ = (&mut stream).take(64 << 10).read_to_end(&mut bytes).await;
        let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
    }
    bytes
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

    /// A helper that floods its output is read only in part, and quoted short.
    #[tokio::test]
    async fn a_flooding_helper_is_quoted_short() {
        let dir = tempfile::tempdir().expect("tempdir");
        let helper = dir.path().join("docker-credential-flood");
        std::fs::write(&helper, "#!/bin/sh\nhead -c 4000000 /dev/zero | tr '\\0' x\nexit 1\n")
            .expect("write");
        std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let error = run_helper(&helper, "docker-credential-flood", "r").await.expect_err("fails");
        let text = error.to_string();
        assert!(text.contains("get failed") && text.len() < 500, "{} bytes", text.len());
    }

    /// Helpers get their own variables and the system's, never kubeship's inputs or tokens.
    #[test]
    fn helper_environment() {
        let vars = [
            "PATH",
            "HOME",
            "DOCKER_CONFIG",
            "XDG_RUNTIME_DIR",
            "AWS_REGION",
            "AWS_SECRET_ACCESS_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "AZURE_CLIENT_ID",
            "DOCKER_ghcr_io_PSW",
            "INPUT_REGISTRY-PASSWORD",
            "INPUT_KUBECONFIG",
            "KUBESHIP_REGISTRY_PASSWORD",
            "KUBECONFIG",
            "GITHUB_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "RUNNER_TEMP",
        ];
        let given = helper_env(vars.iter().map(|v| (OsString::from(v), OsString::from("x"))));
        let names: Vec<&str> = given.iter().filter_map(|(k, _)| k.to_str()).collect();
        assert_eq!(names, &vars[..9]);
    }
}
