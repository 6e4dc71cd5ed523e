//! Runs a `docker-credential-<name> get` helper that the docker config names, as the Docker
//! CLI does: the server URL on stdin, `{"Username","Secret"}` on stdout, with at most 64 KiB of
//! each output stream kept and a 30 s limit.
//!
//! The Docker CLI hands a helper its whole environment (docker-credential-helpers'
//! `client/command.go` runs `exec.Command` without an `Env`); under kubeship that environment
//! holds `INPUT_REGISTRY-PASSWORD`, `INPUT_KUBECONFIG` and the CI's tokens, so a helper gets
//! only what helpers read: `PATH`, `HOME`, the locale, TLS and proxy settings, `XDG_*`,
//! `DOCKER_*` (`DOCKER_CONFIG`, and docker-credential-env's `DOCKER_<host>_USR`/`_PSW`), the
//! cloud SDKs' `AWS_*` (ecr-login), `GOOGLE_*`/`CLOUDSDK_*` (gcloud, gcr), `AZURE_*` (acr-env),
//! and what pass and secretservice use (`PASSWORD_STORE_*`, `GNUPGHOME`, the D-Bus session).

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use super::credentials::{Credentials, Secret};
use super::error::{CredentialSource, Error};
use super::text;

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

/// Runs `executable` (`docker-credential-<name>`, named `program`) with `get` and `server` on
/// stdin, as the Docker CLI does, for `registry`'s credentials.
///
/// # Errors
/// [`Error::Credentials`] when the helper cannot be run, fails, or answers something else.
pub async fn run(
    executable: &Path,
    program: &str,
    registry: &str,
    server: &str,
) -> Result<Credentials, Error> {
    let failed = |detail: String| Error::Credentials { registry: registry.to_owned(), detail };
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

    /// A helper that floods its output is read only in part, and quoted short.
    #[tokio::test]
    async fn a_flooding_helper_is_quoted_short() {
        let dir = tempfile::tempdir().expect("tempdir");
        let helper = dir.path().join("docker-credential-flood");
        std::fs::write(&helper, "#!/bin/sh\nhead -c 4000000 /dev/zero | tr '\\0' x\nexit 1\n")
            .expect("write");
        std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let error = run(&helper, "docker-credential-flood", "r", "r").await.expect_err("fails");
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
