//! Token services and credentials: the anonymous and credentialed token flows, which realms
//! may receive credentials, identity tokens, htpasswd over TLS, docker configs and helpers.

use std::time::{Duration, Instant};

use kubeship::registry::{Credentials, Error, Options, credentials};
use kubeship_testkit::proxy::{Action, Rule};
use kubeship_testkit::push::Kind;
use kubeship_testkit::{FaultProxy, Registry, Setup, TokenServer, certs};

use super::{LONG, base64_of, manifest_requests, proxy_heads};
use crate::support::{block_on, http_options, kubeship, resolve, stderr};

/// A registry with token auth and `team/app:v1`: the token service's files, the service, the
/// registry, and the stored digest.
fn token_setup(tls: bool) -> (tempfile::TempDir, TokenServer, Registry, String) {
    let dir = tempfile::tempdir().unwrap();
    let signing = certs::signing(dir.path()).unwrap();
    let server = if tls {
        TokenServer::start_tls(signing, &certs::server(dir.path()).unwrap()).unwrap()
    } else {
        TokenServer::start(signing).unwrap()
    };
    let registry = Registry::start(Setup::Token(&server)).unwrap();
    registry.pusher().unwrap().image("team/app", "v1", Kind::OciIndex, "token").unwrap();
    let digest = registry.stored_digest("team/app", "v1").unwrap();
    (dir, server, registry, digest)
}

/// A plain-HTTP registry whose token service is HTTPS with the test CA in `dir`.
fn https_realm_options(dir: &tempfile::TempDir) -> Options {
    let pem = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    Options { extra_ca: kubeship::tls::parse_pem_certificates(&pem).unwrap(), ..http_options(LONG) }
}

fn inputs(user: &str, password: &str) -> Credentials {
    Credentials::from_inputs(user, &password.into())
}

/// The anonymous token flow, with the realm on another port in plain HTTP (anonymous token
/// requests carry no secret): one token request, one HEAD with the token.
#[test]
fn token_auth_anonymous_costs_one_token_and_one_head() {
    let (_dir, server, registry, digest) = token_setup(false);
    registry.clear_requests();
    let image = format!("{}/team/app:v1", registry.host);
    let resolved = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
    assert_eq!(resolved.digest, digest);
    let tokens = server.requests();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0].scope, "repository:team/app:pull");
    assert_eq!(tokens[0].user, None);
    let requests = registry.requests();
    assert_eq!(manifest_requests(&requests, "HEAD").len(), 1, "{requests:?}");
    assert_eq!(manifest_requests(&requests, "GET").len(), 0, "{requests:?}");
}

/// Basic credentials go to an HTTPS token service, which issues the token.
#[test]
fn token_auth_with_credentials() {
    let (dir, server, registry, digest) = token_setup(true);
    server.anonymous_pull(false);
    server.add_user("ci", "s3cret-pass");
    let image = format!("{}/team/app:v1", registry.host);
    let resolved =
        resolve(&image, None, inputs("ci", "s3cret-pass"), &https_realm_options(&dir)).unwrap();
    assert_eq!(resolved.digest, digest);
    assert_eq!(server.requests().last().and_then(|r| r.user.clone()).as_deref(), Some("ci"));
}

/// Basic credentials and refresh tokens never go to a plain-HTTP token service on another
/// port: nothing at all reaches it, and the error says why and what to do.
#[test]
fn credentials_never_go_to_a_plain_http_realm() {
    let (dir, server, registry, _) = token_setup(false);
    server.add_user("ci", "s3cret-pass");
    server.add_refresh_token("refresh-9f3", "ci");
    let config = dir.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    let json = format!(r#"{{"auths":{{"{}":{{"identitytoken":"refresh-9f3"}}}}}}"#, registry.host);
    std::fs::write(config.join("config.json"), json).unwrap();
    let identity = block_on(credentials::from_docker_config(&config, &registry.host)).unwrap();
    let image = format!("{}/team/app:v1", registry.host);
    for creds in [inputs("ci", "s3cret-pass"), identity] {
        let error = resolve(&image, None, creds, &http_options(LONG)).unwrap_err();
        assert!(matches!(error, Error::InsecureRealm { same_host: false, .. }), "{error:?}");
        assert_eq!(error.exit_code(), 3);
        let text = error.to_string();
        for part in [server.realm().as_str(), "plain HTTP", "another host", "HTTPS"] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(!text.contains("s3cret") && !text.contains("refresh-9f3"), "{text}");
    }
    assert!(server.requests().is_empty(), "the token service received {:?}", server.requests());
}

/// A plain-HTTP realm on the registry's own host and port (under insecure-registry, where
/// everything is plain HTTP already) may receive the credentials.
#[test]
fn a_plain_http_realm_on_the_registrys_own_address_gets_credentials() {
    let (_dir, server, registry, digest) = token_setup(false);
    server.anonymous_pull(false);
    server.add_user("ci", "s3cret-pass");
    let proxy = FaultProxy::start(&format!("http://{}", registry.host)).unwrap();
    let challenge =
        format!(r#"Bearer realm="http://{}/token",service="{}""#, proxy.host(), server.service);
    proxy.add(Rule::status("/v2/", 1, 401, &[("WWW-Authenticate", &challenge)]).only("GET"));
    let token_base = server.realm().trim_end_matches("/token").to_owned();
    proxy.add(Rule::any("/token", 1, Action::Forward(token_base)));
    let image = format!("{}/team/app:v1", proxy.host());
    let resolved = resolve(&image, None, inputs("ci", "s3cret-pass"), &http_options(LONG)).unwrap();
    assert_eq!(resolved.digest, digest);
    let tokens = server.requests();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0].user.as_deref(), Some("ci"));
}

/// A wrong password fails at the token service after one request, with the service's own
/// error and the credential source, never the password.
#[test]
fn token_auth_wrong_password_fails_after_one_try() {
    let (dir, server, registry, _) = token_setup(true);
    server.add_user("ci", "right");
    registry.clear_requests();
    let image = format!("{}/team/app:v1", registry.host);
    let error =
        resolve(&image, None, inputs("ci", "wrong-pass"), &https_realm_options(&dir)).unwrap_err();
    assert!(matches!(error, Error::TokenService { status: 401, .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("incorrect username or password") && text.contains("user \"ci\""),
        "{text}"
    );
    assert!(!text.contains("wrong-pass"), "{text}");
    assert_eq!(server.requests().len(), 1);
    assert!(manifest_requests(&registry.requests(), "HEAD").is_empty());
}

/// A token for another repository is refused by the registry (insufficient_scope), at once.
#[test]
fn token_for_another_repository_is_refused() {
    let (dir, server, registry, _) = token_setup(true);
    server.add_user("ci", "pw");
    server.restrict("ci", "other/repo");
    registry.clear_requests();
    let image = format!("{}/team/app:v1", registry.host);
    let error = resolve(&image, None, inputs("ci", "pw"), &https_realm_options(&dir)).unwrap_err();
    assert!(matches!(error, Error::Unauthorized { status: 401, .. }), "{error:?}");
    assert!(error.to_string().contains("insufficient_scope"), "{error}");
    assert_eq!(manifest_requests(&registry.requests(), "HEAD").len(), 1);
}

/// Anonymous access to a private repository explains that credentials are needed.
#[test]
fn private_repository_without_credentials() {
    let (_dir, server, registry, _) = token_setup(false);
    server.anonymous_pull(false);
    let image = format!("{}/team/app:v1", registry.host);
    let error = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("registry-username") && text.contains("anonymous"), "{text}");
}

/// A token service that keeps failing with 5xx is retried until tag-timeout, then reported
/// with its status.
#[test]
fn failing_token_service_is_retried_then_reported() {
    let (_dir, server, registry, _) = token_setup(false);
    server.fail_with(Some(503));
    let image = format!("{}/team/app:v1", registry.host);
    let started = Instant::now();
    let error =
        resolve(&image, None, Credentials::anonymous(), &http_options(Duration::from_secs(2)))
            .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("503"), "{error}");
    assert!(server.requests().len() > 1, "retried");
    // A 401 from the token service is final at once.
    server.fail_with(Some(401));
    let before = server.requests().len();
    let error = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap_err();
    assert!(matches!(error, Error::TokenService { status: 401, .. }), "{error:?}");
    assert_eq!(server.requests().len(), before + 1);
}

/// A token refused after it was accepted (it expired during a long wait) is fetched anew,
/// and the wait goes on.
#[test]
fn expired_token_is_refreshed_during_the_wait() {
    let (_dir, server, registry, _) = token_setup(false);
    let proxy = FaultProxy::start(&format!("http://{}", registry.host)).unwrap();
    // Twice over: a HEAD reaches the registry (404: not pushed yet), the next is refused.
    for _ in 0..2 {
        proxy.add(Rule::any("/manifests/", 1, Action::Delay(Duration::ZERO)).only("HEAD"));
        proxy.add(Rule::status("/manifests/", 1, 401, &[]));
    }
    let pusher = registry.pusher().unwrap();
    let image = format!("{}/team/app:v2", proxy.host());
    let (resolved, pushed) = std::thread::scope(|scope| {
        let late = scope.spawn(|| {
            // Pushed once both expiries have been met.
            let heads = |a: &[(String, String)]| a.iter().filter(|(m, _)| m == "HEAD").count();
            proxy.wait_for(LONG, |arrived| heads(arrived) >= 4).unwrap();
            pusher.image("team/app", "v2", Kind::OciManifest, "late").unwrap()
        });
        let resolved =
            resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
        (resolved, late.join().unwrap())
    });
    assert_eq!(resolved.digest, pushed.digest);
    let heads = proxy_heads(&proxy);
    assert_eq!(&heads[..4], [404, 401, 404, 401], "{heads:?}");
    assert_eq!(heads.last(), Some(&200));
    assert_eq!(server.requests().len(), 3, "one token, then one refresh per expiry");
}

/// A docker config identity token is exchanged with the OAuth2 refresh-token POST, over HTTPS.
#[test]
fn identity_token_from_docker_config() {
    let (dir, server, registry, digest) = token_setup(true);
    server.anonymous_pull(false);
    server.add_refresh_token("refresh-123", "ci");
    let config = dir.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    let json = format!(r#"{{"auths":{{"{}":{{"identitytoken":"refresh-123"}}}}}}"#, registry.host);
    std::fs::write(config.join("config.json"), json).unwrap();
    let creds = block_on(credentials::from_docker_config(&config, &registry.host)).unwrap();
    let image = format!("{}/team/app:v1", registry.host);
    assert_eq!(resolve(&image, None, creds, &https_realm_options(&dir)).unwrap().digest, digest);
    let last = server.requests().pop().unwrap();
    assert_eq!((last.method.as_str(), last.user.as_deref()), ("POST", Some("ci")));
}

// --- htpasswd over TLS -----------------------------------------------------------------------

fn tls_setup() -> (Registry, String, Vec<Vec<u8>>) {
    let registry = Registry::start(Setup::Htpasswd { user: "ci", password: "tls-pass" }).unwrap();
    registry.pusher().unwrap().image("secure/app", "v1", Kind::DockerList, "tls").unwrap();
    let digest = registry.stored_digest("secure/app", "v1").unwrap();
    let ca = kubeship::tls::parse_pem_certificates(&registry.ca_pem().unwrap()).unwrap();
    (registry, digest, ca)
}

pub(super) fn tls_options(ca: Vec<Vec<u8>>) -> Options {
    Options { insecure: false, extra_ca: ca, tag_timeout: LONG }
}

/// htpasswd over TLS with the test CA as registry-ca.
#[test]
fn htpasswd_over_tls_with_registry_ca() {
    let (registry, digest, ca) = tls_setup();
    let image = format!("{}/secure/app:v1", registry.host);
    let resolved = resolve(&image, None, inputs("ci", "tls-pass"), &tls_options(ca)).unwrap();
    assert_eq!(resolved.digest, digest);
}

/// Without registry-ca the handshake fails, and the message names the fix.
#[test]
fn self_signed_registry_without_ca_names_the_fix() {
    let (registry, _, _) = tls_setup();
    let image = format!("{}/secure/app:v1", registry.host);
    let error =
        resolve(&image, None, inputs("ci", "tls-pass"), &tls_options(Vec::new())).unwrap_err();
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains("registry-ca"), "{error}");
}

/// A wrong password fails after one try: the registry received exactly one HEAD.
#[test]
fn htpasswd_wrong_password_fails_after_one_try() {
    let (registry, _, ca) = tls_setup();
    registry.clear_requests();
    let image = format!("{}/secure/app:v1", registry.host);
    let error = resolve(&image, None, inputs("ci", "nope-pass"), &tls_options(ca)).unwrap_err();
    assert!(matches!(error, Error::Unauthorized { status: 401, .. }), "{error:?}");
    assert!(!error.to_string().contains("nope-pass"));
    let requests = registry.requests();
    assert_eq!(manifest_requests(&requests, "HEAD").len(), 1, "{requests:?}");
    assert_eq!(requests.len(), 2, "version check and one HEAD: {requests:?}");
}

/// Credentials from a docker config `auths` entry.
#[test]
fn docker_config_auth_entry() {
    let (registry, digest, ca) = tls_setup();
    let dir = tempfile::tempdir().unwrap();
    let auth = base64_of("ci:tls-pass");
    let json = format!(
        r#"{{"auths":{{"https://{}":{{"auth":"{auth}"}},"other.example":{{"auth":"{}"}}}}}}"#,
        registry.host,
        base64_of("x:y")
    );
    std::fs::write(dir.path().join("config.json"), json).unwrap();
    let creds = block_on(credentials::from_docker_config(dir.path(), &registry.host)).unwrap();
    assert!(matches!(creds.source, kubeship::registry::CredentialSource::DockerConfig { .. }));
    let image = format!("{}/secure/app:v1", registry.host);
    assert_eq!(resolve(&image, None, creds, &tls_options(ca)).unwrap().digest, digest);
}

/// A `docker-credential-<name>` script in `dir/bin` that answers for `server` and writes the
/// environment it was given to `dir/helper.env`; the docker config dir naming it; and PATH.
fn helper_setup(dir: &std::path::Path, server: &str) -> (std::path::PathBuf, String) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-kstest");
    let dump = dir.join("helper.env");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nenv > '{}'\nread server\n[ \"$server\" = \"{server}\" ] || exit 1\n\
             echo '{{\"ServerURL\":\"x\",\"Username\":\"ci\",\"Secret\":\"tls-pass\"}}'\n",
            dump.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = dir.join("docker");
    std::fs::create_dir_all(&config).unwrap();
    (config, format!("{}:/usr/bin:/bin", bin.display()))
}

/// The binary runs a docker-credential helper from PATH, and says so when it is missing. The
/// helper gets PATH, HOME, DOCKER_CONFIG, XDG_* and cloud variables, never kubeship's inputs,
/// the kubeconfig or the CI's tokens.
#[test]
fn credential_helper_from_path() {
    let (registry, digest, _) = tls_setup();
    let dir = tempfile::tempdir().unwrap();
    let (config, path) = helper_setup(dir.path(), &registry.host);
    let write_config = |helper: &str| {
        let json = format!(r#"{{"credHelpers":{{"{}":"{helper}"}}}}"#, registry.host);
        std::fs::write(config.join("config.json"), json).unwrap();
    };
    let ca = registry.tls.as_ref().unwrap().ca_pem.display().to_string();
    let image = format!("{}/secure/app:v1", registry.host);
    let (_sim, kube) = crate::support::cluster_running_tls(&image, &registry.ca_pem().unwrap());
    let kubeconfig = std::fs::read_to_string(kube.path().join("kubeconfig")).unwrap();
    let vars = [
        ("KUBESHIP_IMAGE", image.as_str()),
        ("KUBESHIP_DEPLOYMENT", "api"),
        ("KUBESHIP_REGISTRY_CA", ca.as_str()),
        ("KUBESHIP_DRY_RUN", "true"),
        ("INPUT_KUBECONFIG", kubeconfig.as_str()),
        ("DOCKER_CONFIG", config.to_str().unwrap()),
        ("PATH", path.as_str()),
        ("HOME", "/home/ci"),
        ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ("AWS_REGION", "eu-west-1"),
        ("GITHUB_TOKEN", "ghs_not-for-helpers"),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-not-for-helpers"),
    ];
    write_config("kstest");
    let output = kubeship(&vars);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains(&digest));
    let env = std::fs::read_to_string(dir.path().join("helper.env")).unwrap();
    let names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
    for given in ["PATH", "HOME", "DOCKER_CONFIG", "XDG_RUNTIME_DIR", "AWS_REGION"] {
        assert!(names.contains(&given), "{given} missing from {names:?}");
    }
    for secret in ["apiVersion", "ghs_not-for-helpers", "oidc-not-for-helpers", "KUBESHIP_"] {
        assert!(!env.contains(secret), "{secret} reached the helper: {env}");
    }

    write_config("absent");
    let output = kubeship(&vars);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("docker-credential-absent, which is not on PATH"),
        "{}",
        stderr(&output)
    );
}
