//! One request to the API server, bounded and explained. [`call`] gives every request an
//! answer deadline (30 s, or the caller's deadline if sooner) and turns kube's errors into an
//! [`ApiError`] whose message says what the server said, in the request's own terms, and what
//! to do: a 401 is about credentials, a 403 about RBAC or a policy, a TLS failure about the CA.
//! The server's words (an admission webhook writes them) are quoted through
//! [`crate::untrusted`]. An exec plugin's failure keeps its name and exit status only: kube's
//! own message holds the command line and its output, which carry secrets.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// A request to the API server that failed. All are exit 4.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status, when the server answered.
    pub code: Option<u16>,
    /// Whether it was a 403 from RBAC (not from an admission webhook or a policy).
    pub rbac: bool,
    pub message: String,
}

impl ApiError {
    pub fn not_found(&self) -> bool {
        self.code == Some(404)
    }
}

/// What a request was for: "patch deployment/api in prod". The verb and resource also name the
/// RBAC rule a 403 needs.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The RBAC verb: get, list, watch, patch, create.
    pub verb: &'a str,
    /// The resource as RBAC names it: `deployments`, `pods/log`.
    pub resource: &'a str,
    /// What it is about, for the message: `deployment/api in prod`.
    pub what: &'a str,
}

/// Sends `request`, waiting at most 30 s and never past `deadline` for the answer.
///
/// # Errors
/// Every failure, explained.
pub async fn call<T>(
    deadline: Instant,
    request: Request<'_>,
    send: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, ApiError> {
    let budget = deadline.saturating_duration_since(Instant::now()).min(super::ANSWER_WITHIN);
    match tokio::time::timeout(budget, send).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err(explain(request, &error)),
        Err(_) => Err(no_answer(request, budget)),
    }
}

fn no_answer(request: Request<'_>, waited: Duration) -> ApiError {
    ApiError {
        code: None,
        rbac: false,
        message: format!(
            "the API server did not answer the request to {} {} within {}s: check that the \
             kubeconfig's server is the cluster's API server and that it is healthy",
            request.verb,
            request.what,
            waited.as_secs().max(1)
        ),
    }
}

/// kube's error in the request's terms.
pub fn explain(request: Request<'_>, error: &kube::Error) -> ApiError {
    let Request { verb, resource, what } = request;
    match error {
        kube::Error::Api(status) => {
            let said = crate::untrusted::line(&status.message);
            let code = status.code;
            let (rbac, message) = match code {
                404 => {
                    (false, format!("{what} was not found (the API server answered 404 to {verb})"))
                }
                // A token kubeship minted itself: what follows names who it was for.
                401 if super::cloud::explain_denial(401).is_some() => (
                    false,
                    format!(
                        "the API server did not accept the cloud token kubeship minted (401) \
                         for {verb} {what}"
                    ),
                ),
                401 => (
                    false,
                    format!(
                        "the API server did not accept kubeship's credentials (401) for {verb} \
                         {what}: the token or client certificate is wrong or has expired; \
                         refresh the kubeconfig's credentials"
                    ),
                ),
                403 if said.contains("cannot ") && said.contains(" resource ") => (
                    true,
                    format!(
                        "the API server refused to {verb} {what} (403): {said}. Grant the \
                         credentials' Role the verb {verb:?} on {resource:?} (README, \
                         \"Permissions\", has the whole Role)"
                    ),
                ),
                403 => (
                    false,
                    format!(
                        "the API server refused to {verb} {what} (403, not RBAC: an admission \
                         webhook or policy): {said}"
                    ),
                ),
                409 => (
                    false,
                    format!(
                        "the API server refused to {verb} {what} because of a conflict (409): {said}"
                    ),
                ),
                422 | 400 => (
                    false,
                    format!("the API server rejected the {verb} of {what} ({code}): {said}"),
                ),
                429 => (
                    false,
                    format!(
                        "the API server kept throttling the request to {verb} {what} (429): {said}"
                    ),
                ),
                c if c >= 500 => (
                    false,
                    format!("the API server failed the request to {verb} {what} ({c}): {said}"),
                ),
                other => {
                    (false, format!("the API server answered {other} to {verb} {what}: {said}"))
                }
            };
            // A cloud token kubeship minted: say who it authenticated as and what to grant.
            let message =
                // Not for a 403 from a webhook or policy: the identity is not what they refused.
                match super::cloud::explain_denial(code).filter(|_| code == 401 || rbac) {
                    Some(who) => format!("{}. {who}", message.trim_end_matches('.')),
                    None => message,
                };
            ApiError { code: Some(code), rbac, message }
        }
        kube::Error::Auth(auth) => {
            ApiError { code: None, rbac: false, message: auth_failure(auth) }
        }
        other if cloud_error(other).is_some() => {
            let cause = cloud_error(other).map(ToString::to_string).unwrap_or_default();
            let message =
                format!("kubeship could not renew its cloud token to {verb} {what}: {cause}");
            ApiError { code: None, rbac: false, message }
        }
        other => {
            ApiError { code: None, rbac: false, message: transport_failure(verb, what, other) }
        }
    }
}

/// The cloud login's error behind a failed request (a token that could not be renewed).
fn cloud_error(error: &kube::Error) -> Option<&super::cloud::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(cloud) = e.downcast_ref::<super::cloud::Error>() {
            return Some(cloud);
        }
        source = e.source();
    }
    None
}

/// An authentication setup that failed before the request was sent: an exec plugin or a token
/// file. kube's message for a failed plugin holds its command line and output: not quoted.
pub fn auth_failure(error: &kube::client::AuthError) -> String {
    use kube::client::AuthError;
    match error {
        AuthError::AuthExecRun { cmd, out, .. } => {
            let program = crate::untrusted::short(&program_of(cmd), 120);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail = crate::untrusted::lines(&stderr, 3).join(" / ");
            let said = if tail.is_empty() { String::new() } else { format!(": {tail}") };
            format!(
                "the kubeconfig's exec plugin {program} failed ({}){said}. Check the \
                 credentials it uses (and that they have not expired)",
                out.status
            )
        }
        AuthError::AuthExecStart(e) => {
            format!("the kubeconfig's exec plugin could not be started ({e})")
        }
        AuthError::AuthExecParse(_) | AuthError::AuthExecSerialize(_) => {
            "the kubeconfig's exec plugin printed something that is not an ExecCredential".into()
        }
        AuthError::AuthExec(_) => "the kubeconfig's exec plugin failed".into(),
        AuthError::ExecPluginFailed => {
            "the kubeconfig's exec plugin printed no credentials (its answer has no status): \
             run it by hand to see what it says"
                .into()
        }
        AuthError::MalformedTokenExpirationDate(_) => {
            "the kubeconfig's exec plugin gave a credential with an expiration date that is not \
             a date"
                .into()
        }
        AuthError::ReadTokenFile(_, path) => format!(
            "the kubeconfig's token file {} cannot be read: check that it is mounted in the step's \
             container",
            crate::untrusted::short(&path.display().to_string(), 200)
        ),
        AuthError::MissingCommand => "the kubeconfig's exec section names no command".into(),
        AuthError::InvalidBasicAuth(_) | AuthError::InvalidBearerToken(_) => {
            "the kubeconfig's user name, password or token cannot be sent in an HTTP header \
             (a line break or other control character in it?)"
                .into()
        }
        other => format!("the kubeconfig's credentials cannot be used: {}", kind_of(other)),
    }
}

/// The program's file name in kube's rendering of the command, which is Rust's `Debug` of a
/// `Command`: `[cd "dir" &&] [env [-u NAME]...] [KEY="value"]... "/path/prog" "arg"...`.
fn program_of(cmd: &str) -> String {
    let assignment = |word: &str| {
        word.split_once('=').is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let mut words = cmd.split_whitespace().peekable();
    let mut program = "the exec plugin";
    while let Some(word) = words.next() {
        match word {
            "cd" => {
                // The directory, then `&&`.
                words.next();
                words.next();
            }
            "env" => {}
            "-u" => {
                words.next();
            }
            w if assignment(w) => {}
            w => {
                program = w;
                break;
            }
        }
    }
    let path = program.trim_matches('"');
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

/// The variant of an auth error, without its payload (which may hold a secret).
fn kind_of(error: &kube::client::AuthError) -> String {
    let debug = format!("{error:?}");
    debug.split(['(', ' ', '{']).next().unwrap_or("unknown").to_owned()
}

/// A failure below HTTP: TLS, connection, timeout.
fn transport_failure(verb: &str, what: &str, error: &kube::Error) -> String {
    let chain = crate::error::render_chain(error);
    if let Some(tls) = cause::<rustls::Error>(error) {
        let hint = match tls {
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                "the API server's certificate is not signed by the CA the kubeconfig gives \
                 (certificate-authority-data): take the kubeconfig from the cluster again, or \
                 give the CA that signed the server's certificate"
            }
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            | rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            ) => {
                "the API server's certificate does not name the address in the kubeconfig's \
                 server: use the name the certificate was issued for"
            }
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
            | rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
                ..
            }) => "the API server's certificate has expired",
            _ => "check the kubeconfig's server address and certificate-authority-data",
        };
        return format!("TLS with the API server failed for {verb} {what} ({tls}): {hint}");
    }
    let lookup = cause::<crate::dns::LookupError>(error);
    let hint = if chain.contains("Connection refused") {
        "nothing listens at the kubeconfig's server address: check the address and that the \
         cluster is up"
    } else if lookup.is_some_and(crate::dns::LookupError::is_temporary) {
        "the name server did not answer for the API server's host: check the runner's DNS, \
         then run again"
    } else if lookup.is_some() {
        "the kubeconfig's server host name does not resolve: check it"
    } else if chain.contains("timed out") || chain.contains("deadline has elapsed") {
        "the API server did not answer in time: check that it is reachable from this runner"
    } else {
        "check the kubeconfig's server address and the network between this runner and the cluster"
    };
    format!(
        "the API server could not be reached for {verb} {what} ({}): {hint}",
        crate::untrusted::short(&chain, 300)
    )
}

/// The error of type `T` under a kube error: the rustls error when the TLS handshake failed,
/// the resolver's when the host has no address.
fn cause<T: std::error::Error + 'static>(error: &kube::Error) -> Option<&T> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        // io::Error::source() skips the error it wraps; step into it explicitly.
        source = match current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.to_owned(),
            ..kube::core::Status::default()
        }))
    }

    const PATCH: Request<'static> =
        Request { verb: "patch", resource: "deployments", what: "deployment/api in prod" };

    /// 401 is about credentials, never RBAC; RBAC's 403 names the rule; a webhook's 403 does not.
    #[test]
    fn status_codes_get_their_own_advice() {
        let e = explain(PATCH, &api(401, "Unauthorized"));
        assert!(e.message.contains("credentials") && !e.message.contains("Role"), "{}", e.message);
        let rbac = "deployments.apps \"api\" is forbidden: User \"ci\" cannot patch resource \"deployments\" in API group \"apps\"";
        let e = explain(PATCH, &api(403, rbac));
        assert!(e.rbac && e.message.contains("\"patch\" on \"deployments\""), "{}", e.message);
        let e = explain(PATCH, &api(403, "admission webhook \"policy\" denied the request"));
        assert!(!e.rbac && e.message.contains("not RBAC"), "{}", e.message);
        let get = Request { verb: "get", ..PATCH };
        let e = explain(get, &api(500, "etcd down"));
        assert!(e.message.contains("to get") && !e.message.contains("patch"), "{}", e.message);
    }

    /// The exec plugin is named by its file name, never by its environment or arguments.
    #[test]
    fn exec_plugin_names() {
        let cmd = r#"SECRET="***" KUBERNETES_EXEC_INFO="{\"kind\":\"ExecCredential\"}" "/usr/bin/aws" "eks" "get-token""#;
        assert_eq!(program_of(cmd), "aws");
        assert_eq!(program_of("gke-gcloud-auth-plugin"), "gke-gcloud-auth-plugin");
        let dropped = r#"env -u INPUT_KUBECONFIG -u KUBESHIP_X SECRET="***" "/tmp/x/cloud-login" "get-token""#;
        assert_eq!(program_of(dropped), "cloud-login");
        assert_eq!(program_of(r#"cd "/w" && env -u A "/bin/p""#), "p");
    }

    /// The server's words arrive on one line, without control characters.
    #[test]
    fn server_words_are_inert() {
        let e = explain(PATCH, &api(422, "bad\r::warning::x\nnext"));
        assert!(!e.message.contains(['\r', '\n']), "{}", e.message);
    }

    /// A request without an answer ends at its deadline with a timeout, not later.
    #[tokio::test]
    async fn silent_requests_end_at_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(50);
        let started = Instant::now();
        let never = std::future::pending::<Result<(), kube::Error>>();
        let e = call(deadline, PATCH, never).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(e.message.contains("did not answer") && e.code.is_none(), "{}", e.message);
    }
}
