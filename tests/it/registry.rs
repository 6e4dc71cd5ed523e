//! Digest resolution against Debian's docker-registry (distribution 2.8), in its three setups,
//! with a fault proxy in front where a real registry cannot misbehave on cue.

use std::time::{Duration, Instant};

use kubeship::registry::{Credentials, Error, Options, credentials};
use kubeship_testkit::proxy::{Action, Rule};
use kubeship_testkit::push::{self, Kind};
use kubeship_testkit::registry::Request;
use kubeship_testkit::{FaultProxy, Registry, Setup, TokenServer, certs};

use crate::support::{block_on, http_options, kubeship, resolve, stderr};

const LONG: Duration = Duration::from_secs(20);

fn manifest_requests<'a>(requests: &'a [Request], method: &str) -> Vec<&'a Request> {
    requests.iter().filter(|r| r.method == method && r.path.contains("/manifests/")).collect()
}

fn anonymous_registry_with(repo: &str, tag: &str, kind: Kind) -> (Registry, String) {
    let registry = Registry::start(Setup::Anonymous).unwrap();
    registry.pusher().unwrap().image(repo, tag, kind, "salt").unwrap();
    let digest = registry.stored_digest(repo, tag).unwrap();
    (registry, digest)
}

/// Every manifest kind resolves to the sha256 of the bytes the registry stores, and a
/// multi-platform tag to its index, not a platform's manifest.
#[test]
fn each_manifest_kind_resolves_to_the_stored_digest() {
    let registry = Registry::start(Setup::Anonymous).unwrap();
    let pusher = registry.pusher().unwrap();
    for kind in Kind::ALL {
        let repo = format!("demo/{kind:?}").to_lowercase();
        let pushed = pusher.image(&repo, "v1", kind, "one").unwrap();
        let image = format!("{}/{repo}:v1", registry.host);
        let resolved =
            resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
        let stored = registry.stored_digest(&repo, "v1").unwrap();
        assert_eq!(resolved.digest, stored, "{kind:?}");
        assert_eq!(resolved.digest, pushed.digest, "{kind:?}");
        assert!(!pushed.children.contains(&resolved.digest), "{kind:?} pinned a platform manifest");
        assert_eq!(resolved.media_type.as_deref(), Some(kind.media_type()), "{kind:?}");
        assert_eq!(resolved.pinned, format!("{}/{repo}@{stored}", registry.host));
    }
}

/// Images built with umoci and copied with skopeo, as OCI and converted to Docker v2.
#[test]
fn images_pushed_by_skopeo_resolve_to_the_stored_digest() {
    let registry = Registry::start(Setup::Anonymous).unwrap();
    let work = tempfile::tempdir().unwrap();
    for (repo, docker) in [("skopeo/oci", false), ("skopeo/docker", true)] {
        let destination = format!("{}/{repo}:v1", registry.host);
        push::with_skopeo(
            work.path(),
            &destination,
            repo.replace('/', "-").as_str(),
            docker,
            &["--dest-tls-verify=false"],
        )
        .unwrap();
        let resolved =
            resolve(&destination, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
        assert_eq!(resolved.digest, registry.stored_digest(repo, "v1").unwrap(), "{repo}");
        let expected = if docker { push::DOCKER_MANIFEST } else { push::OCI_MANIFEST };
        assert_eq!(resolved.media_type.as_deref(), Some(expected));
    }
}

/// Anonymous resolution costs the version check and one HEAD: no GET of the manifest.
#[test]
fn anonymous_resolution_is_one_head() {
    let (registry, digest) = anonymous_registry_with("demo/app", "v1", Kind::OciIndex);
    registry.clear_requests();
    let image = format!("{}/demo/app:v1", registry.host);
    let resolved = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
    assert_eq!(resolved.digest, digest);
    let requests = registry.requests();
    assert_eq!(manifest_requests(&requests, "HEAD").len(), 1, "{requests:?}");
    assert_eq!(manifest_requests(&requests, "GET").len(), 0, "{requests:?}");
    assert_eq!(requests.len(), 2, "the version check and the HEAD: {requests:?}");
}

/// A tag pushed while kubeship waits is found, after the 404s of the lag.
#[test]
fn tag_pushed_while_waiting_is_found() {
    let registry = Registry::start(Setup::Anonymous).unwrap();
    let pusher = registry.pusher().unwrap();
    let image = format!("{}/lag/app:v2", registry.host);
    let started = Instant::now();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        pusher.image("lag/app", "v2", Kind::DockerManifest, "late").unwrap()
    });
    let resolved = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
    let pushed = late.join().unwrap();
    assert_eq!(resolved.digest, pushed.digest);
    assert!(resolved.attempts > 1, "found after {} attempts", resolved.attempts);
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let heads = manifest_requests(&registry.requests(), "HEAD")
        .iter()
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert!(
        heads.ends_with(&[200]) && heads[..heads.len() - 1].iter().all(|s| *s == 404),
        "{heads:?}"
    );
}

/// A tag that never appears fails after tag-timeout, naming the tag, registry and wait.
#[test]
fn unknown_tag_fails_after_tag_timeout() {
    let (registry, _) = anonymous_registry_with("demo/app", "v1", Kind::OciManifest);
    let image = format!("{}/demo/app:v9", registry.host);
    let started = Instant::now();
    let error =
        resolve(&image, None, Credentials::anonymous(), &http_options(Duration::from_secs(2)))
            .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(error, Error::TagNotFound { .. }), "{error:?}");
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    let text = error.to_string();
    for part in ["\"v9\"", "demo/app", &registry.host, "2s", "tag-timeout"] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert_eq!(error.exit_code(), 3);
}

/// The digest input must match the registry's answer; the message shows both.
#[test]
fn digest_mismatch_shows_both() {
    let (registry, digest) = anonymous_registry_with("demo/app", "v1", Kind::OciManifest);
    let expected = format!("sha256:{}", "0".repeat(64));
    let image = format!("{}/demo/app:v1", registry.host);
    let error = resolve(&image, Some(&expected), Credentials::anonymous(), &http_options(LONG))
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::DigestMismatch { .. }), "{error:?}");
    assert!(text.contains(&expected) && text.contains(&digest), "{text}");
    // The same digest passes.
    assert!(resolve(&image, Some(&digest), Credentials::anonymous(), &http_options(LONG)).is_ok());
}

/// An image that names a digest is checked by a HEAD of that digest, with or without a tag;
/// an unknown digest fails after tag-timeout.
#[test]
fn image_by_digest_is_checked_not_resolved() {
    let (registry, digest) = anonymous_registry_with("demo/app", "v1", Kind::DockerList);
    registry.clear_requests();
    for image in [
        format!("{}/demo/app@{digest}", registry.host),
        format!("{}/demo/app:other@{digest}", registry.host),
    ] {
        let resolved =
            resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
        assert_eq!(resolved.digest, digest);
    }
    let heads = manifest_requests(&registry.requests(), "HEAD")
        .iter()
        .map(|r| r.path.clone())
        .collect::<Vec<_>>();
    assert!(heads.iter().all(|p| p.ends_with(&digest)), "{heads:?}");
    let missing = format!("{}/demo/app@sha256:{}", registry.host, "1".repeat(64));
    let error =
        resolve(&missing, None, Credentials::anonymous(), &http_options(Duration::from_secs(1)))
            .unwrap_err();
    assert!(matches!(error, Error::DigestNotFound { .. }), "{error:?}");
}

// --- token auth ---------------------------------------------------------------------------

fn token_setup() -> (tempfile::TempDir, TokenServer, Registry, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(certs::signing(dir.path()).unwrap()).unwrap();
    let registry = Registry::start(Setup::Token(&server)).unwrap();
    registry.pusher().unwrap().image("team/app", "v1", Kind::OciIndex, "token").unwrap();
    let digest = registry.stored_digest("team/app", "v1").unwrap();
    (dir, server, registry, digest)
}

/// The anonymous token flow: one token request, one HEAD with the token.
#[test]
fn token_auth_anonymous_costs_one_token_and_one_head() {
    let (_dir, server, registry, digest) = token_setup();
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

/// Basic credentials go to the token service, which issues the token.
#[test]
fn token_auth_with_credentials() {
    let (_dir, server, registry, digest) = token_setup();
    server.anonymous_pull(false);
    server.add_user("ci", "s3cret-pass");
    let image = format!("{}/team/app:v1", registry.host);
    let resolved =
        resolve(&image, None, Credentials::from_inputs("ci", "s3cret-pass"), &http_options(LONG))
            .unwrap();
    assert_eq!(resolved.digest, digest);
    assert_eq!(server.requests().last().and_then(|r| r.user.clone()).as_deref(), Some("ci"));
}

/// A wrong password fails at the token service after one request, with the service's own
/// error and the credential source, never the password.
#[test]
fn token_auth_wrong_password_fails_after_one_try() {
    let (_dir, server, registry, _) = token_setup();
    server.add_user("ci", "right");
    registry.clear_requests();
    let image = format!("{}/team/app:v1", registry.host);
    let error =
        resolve(&image, None, Credentials::from_inputs("ci", "wrong-pass"), &http_options(LONG))
            .unwrap_err();
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
    let (_dir, server, registry, _) = token_setup();
    server.add_user("ci", "pw");
    server.restrict("ci", "other/repo");
    registry.clear_requests();
    let image = format!("{}/team/app:v1", registry.host);
    let error = resolve(&image, None, Credentials::from_inputs("ci", "pw"), &http_options(LONG))
        .unwrap_err();
    assert!(matches!(error, Error::Unauthorized { status: 401, .. }), "{error:?}");
    assert!(error.to_string().contains("insufficient_scope"), "{error}");
    assert_eq!(manifest_requests(&registry.requests(), "HEAD").len(), 1);
}

/// Anonymous access to a private repository explains that credentials are needed.
#[test]
fn private_repository_without_credentials() {
    let (_dir, server, registry, _) = token_setup();
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
    let (_dir, server, registry, _) = token_setup();
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
    let (_dir, server, registry, _) = token_setup();
    let proxy = FaultProxy::start(&format!("http://{}", registry.host)).unwrap();
    // Twice over: a HEAD reaches the registry (404: not pushed yet), the next is refused.
    for _ in 0..2 {
        proxy.add(Rule {
            method: Some("HEAD"),
            ..Rule::any("/manifests/", 1, Action::Delay(Duration::ZERO))
        });
        proxy.add(Rule::status("/manifests/", 1, 401, &[]));
    }
    let pusher = registry.pusher().unwrap();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        pusher.image("team/app", "v2", Kind::OciManifest, "late").unwrap()
    });
    let image = format!("{}/team/app:v2", proxy.host());
    let resolved = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
    assert_eq!(resolved.digest, late.join().unwrap().digest);
    let heads = proxy_heads(&proxy);
    assert_eq!(&heads[..4], [404, 401, 404, 401], "{heads:?}");
    assert_eq!(heads.last(), Some(&200));
    assert_eq!(server.requests().len(), 3, "one token, then one refresh per expiry");
}

/// A docker config identity token is exchanged with the OAuth2 refresh-token POST.
#[test]
fn identity_token_from_docker_config() {
    let (dir, server, registry, digest) = token_setup();
    server.anonymous_pull(false);
    server.add_refresh_token("refresh-123", "ci");
    let config = dir.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    let json = format!(r#"{{"auths":{{"{}":{{"identitytoken":"refresh-123"}}}}}}"#, registry.host);
    std::fs::write(config.join("config.json"), json).unwrap();
    let creds = block_on(credentials::from_docker_config(&config, &registry.host)).unwrap();
    let image = format!("{}/team/app:v1", registry.host);
    assert_eq!(resolve(&image, None, creds, &http_options(LONG)).unwrap().digest, digest);
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

fn tls_options(ca: Vec<Vec<u8>>) -> Options {
    Options { insecure: false, extra_ca: ca, tag_timeout: LONG }
}

/// htpasswd over TLS with the test CA as registry-ca.
#[test]
fn htpasswd_over_tls_with_registry_ca() {
    let (registry, digest, ca) = tls_setup();
    let image = format!("{}/secure/app:v1", registry.host);
    let resolved =
        resolve(&image, None, Credentials::from_inputs("ci", "tls-pass"), &tls_options(ca))
            .unwrap();
    assert_eq!(resolved.digest, digest);
}

/// Without registry-ca the handshake fails, and the message names the fix.
#[test]
fn self_signed_registry_without_ca_names_the_fix() {
    let (registry, _, _) = tls_setup();
    let image = format!("{}/secure/app:v1", registry.host);
    let error =
        resolve(&image, None, Credentials::from_inputs("ci", "tls-pass"), &tls_options(Vec::new()))
            .unwrap_err();
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains("registry-ca"), "{error}");
}

/// A wrong password fails after one try: the registry received exactly one HEAD.
#[test]
fn htpasswd_wrong_password_fails_after_one_try() {
    let (registry, _, ca) = tls_setup();
    registry.clear_requests();
    let image = format!("{}/secure/app:v1", registry.host);
    let error =
        resolve(&image, None, Credentials::from_inputs("ci", "nope-pass"), &tls_options(ca))
            .unwrap_err();
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

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The binary runs a docker-credential helper from PATH, and says so when it is missing.
#[test]
fn credential_helper_from_path() {
    let (registry, digest, _) = tls_setup();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-kstest");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\nread server\n[ \"$server\" = \"{}\" ] || exit 1\necho '{{\"ServerURL\":\"x\",\"Username\":\"ci\",\"Secret\":\"tls-pass\"}}'\n", registry.host),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = dir.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    let write_config = |helper: &str| {
        let json = format!(r#"{{"credHelpers":{{"{}":"{helper}"}}}}"#, registry.host);
        std::fs::write(config.join("config.json"), json).unwrap();
    };
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let ca = registry.tls.as_ref().unwrap().ca_pem.display().to_string();
    let image = format!("{}/secure/app:v1", registry.host);
    let (_sim, kube) = crate::support::cluster_running(&image);
    let kubeconfig = kube.path().join("kubeconfig");
    let vars = [
        ("KUBESHIP_IMAGE", image.as_str()),
        ("KUBESHIP_DEPLOYMENT", "api"),
        ("KUBESHIP_REGISTRY_CA", ca.as_str()),
        ("KUBESHIP_DRY_RUN", "true"),
        ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ("DOCKER_CONFIG", config.to_str().unwrap()),
        ("PATH", path.as_str()),
    ];
    write_config("kstest");
    let output = kubeship(&vars);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains(&digest));

    write_config("absent");
    let output = kubeship(&vars);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("docker-credential-absent, which is not on PATH"),
        "{}",
        stderr(&output)
    );
}

// --- faults through the proxy ---------------------------------------------------------------

fn proxied(kind: Kind) -> (Registry, FaultProxy, String, String) {
    let (registry, digest) = anonymous_registry_with("demo/app", "v1", kind);
    let proxy = FaultProxy::start(&format!("http://{}", registry.host)).unwrap();
    let image = format!("{}/demo/app:v1", proxy.host());
    (registry, proxy, digest, image)
}

fn proxy_heads(proxy: &FaultProxy) -> Vec<u16> {
    proxy.seen().iter().filter(|s| s.method == "HEAD").map(|s| s.status).collect()
}

/// A 429 is retried after its Retry-After.
#[test]
fn rate_limit_waits_out_retry_after() {
    let (_registry, proxy, digest, image) = proxied(Kind::OciManifest);
    proxy.add(Rule::status("/manifests/", 1, 429, &[("Retry-After", "1")]));
    let started = Instant::now();
    let resolved = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
    assert_eq!(resolved.digest, digest);
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(proxy_heads(&proxy), [429, 200]);
}

/// A Retry-After beyond tag-timeout fails at once instead of sleeping past the deadline.
#[test]
fn retry_after_beyond_the_deadline_fails_at_once() {
    let (_registry, proxy, _, image) = proxied(Kind::OciManifest);
    proxy.add(Rule::status("/manifests/", 1, 429, &[("Retry-After", "120")]));
    let started = Instant::now();
    let error =
        resolve(&image, None, Credentials::anonymous(), &http_options(Duration::from_secs(10)))
            .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("wait 120s"), "{error}");
}

/// A burst of 5xx is retried within the deadline.
#[test]
fn server_errors_are_retried() {
    let (_registry, proxy, digest, image) = proxied(Kind::OciIndex);
    proxy.add(Rule::status("/manifests/", 3, 503, &[]));
    let resolved = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
    assert_eq!(resolved.digest, digest);
    assert_eq!(proxy_heads(&proxy), [503, 503, 503, 200]);
}

/// Without Docker-Content-Digest, the manifest is fetched and its exact bytes hashed.
#[test]
fn missing_digest_header_falls_back_to_get() {
    for kind in [Kind::DockerManifest, Kind::OciIndex] {
        let (_registry, proxy, digest, image) = proxied(kind);
        proxy.add(Rule {
            method: Some("HEAD"),
            ..Rule::any("/manifests/", 1, Action::StripHeader("Docker-Content-Digest".into()))
        });
        let resolved =
            resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
        assert_eq!(resolved.digest, digest, "{kind:?}");
        let gets = proxy
            .seen()
            .iter()
            .filter(|s| s.method == "GET" && s.path.contains("/manifests/"))
            .count();
        assert_eq!((proxy_heads(&proxy).len(), gets), (1, 1), "{kind:?}");
    }
}

/// A registry that drops connections is retried, then reported as unavailable.
#[test]
fn unreachable_registry_is_reported() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let image = format!("127.0.0.1:{port}/demo/app:v1");
    let error =
        resolve(&image, None, Credentials::anonymous(), &http_options(Duration::from_secs(1)))
            .unwrap_err();
    assert!(matches!(error, Error::Unavailable { attempts, .. } if attempts > 1), "{error:?}");
    assert!(error.to_string().contains("could not be reached"), "{error}");
}

// --- the binary -----------------------------------------------------------------------------

/// Docker Hub's rate-limit headers are logged.
#[test]
fn binary_logs_the_rate_limit() {
    let (_registry, proxy, digest, image) = proxied(Kind::OciManifest);
    let headers = vec![
        ("ratelimit-limit".to_owned(), "100;w=21600".to_owned()),
        ("ratelimit-remaining".to_owned(), "20;w=21600".to_owned()),
    ];
    proxy.add(Rule::any("/manifests/", 1, Action::AddHeaders(headers)));
    let (_sim, kube) = crate::support::cluster_running(&image);
    let kubeconfig = kube.path().join("kubeconfig");
    let output = kubeship(&[
        ("INPUT_IMAGE", &image),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_INSECURE-REGISTRY", "true"),
        ("INPUT_DRY-RUN", "true"),
        ("KUBECONFIG", kubeconfig.to_str().unwrap()),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("pull rate limit: 20 remaining of 100 per 21600s"),
        "{}",
        stderr(&output)
    );
    let last =
        String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().to_owned();
    let json: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(json["digest"], digest.as_str());
}

/// Exit 2 for a malformed reference (quoted), exit 3 for a tag that never appears.
#[test]
fn binary_exit_codes() {
    let output = kubeship(&[("INPUT_IMAGE", "ghcr.io/Acme/API:v1"), ("INPUT_DEPLOYMENT", "api")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("\"ghcr.io/Acme/API:v1\""), "{}", stderr(&output));

    let (registry, _) = anonymous_registry_with("demo/app", "v1", Kind::OciManifest);
    let image = format!("{}/demo/app:nope", registry.host);
    // The cluster's configuration is checked first, so the run needs one to reach the registry.
    let (sim, kube) = crate::support::cluster_running(&image);
    let output = kubeship(&[
        ("INPUT_IMAGE", &image),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_INSECURE-REGISTRY", "true"),
        ("INPUT_TAG-TIMEOUT", "1s"),
        ("KUBECONFIG", kube.path().join("kubeconfig").to_str().unwrap()),
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(sim.requests().iter().all(|r| r.method == "GET"), "a registry error changes nothing");
    assert!(stderr(&output).contains("tag \"nope\""), "{}", stderr(&output));
}

/// --help lists every input with all its variables and its default; --version prints the
/// version, also after the program's own name; any other argument is exit 2.
#[test]
fn binary_help_and_version() {
    let help =
        std::process::Command::new(env!("CARGO_BIN_EXE_kubeship")).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for input in kubeship::inputs::INPUTS {
        assert!(
            text.contains(&format!("  {} (", input.name)),
            "{} missing from --help",
            input.name
        );
        for variable in input.variables() {
            assert!(text.contains(&variable), "{variable} missing from --help");
        }
    }
    assert!(
        text.contains("tag-timeout (default 60s)") && text.contains("image (required)"),
        "{text}"
    );
    // The program's own name first, as CI systems that insist on a command pass it.
    for args in [&["--version"][..], &["kubeship", "--version"], &["/kubeship", "--version"]] {
        let version =
            std::process::Command::new(env!("CARGO_BIN_EXE_kubeship")).args(args).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&version.stdout),
            format!("kubeship {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
    let other =
        std::process::Command::new(env!("CARGO_BIN_EXE_kubeship")).arg("deploy").output().unwrap();
    assert_eq!(other.status.code(), Some(2));
}

/// A registry that answers slowly is waited for; one that hangs past tag-timeout is given up
/// on at the deadline, not after the request's own timeout.
#[test]
fn slow_and_hanging_registries() {
    let (_registry, proxy, digest, image) = proxied(Kind::OciManifest);
    proxy.add(Rule::any("/manifests/", 1, Action::Delay(Duration::from_secs(2))));
    let resolved = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
    assert_eq!(resolved.digest, digest);

    proxy.add(Rule::any("/manifests/", usize::MAX, Action::Delay(Duration::from_secs(15))));
    let started = Instant::now();
    let error =
        resolve(&image, None, Credentials::anonymous(), &http_options(Duration::from_secs(3)))
            .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3 + 5), "hung for {took:?}");
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
}

/// The registry goes away in the middle of a request (the connection is cut while the
/// answer is held back) and comes back: the resolution retries and succeeds. Gone for good,
/// it is reported as unavailable at tag-timeout.
#[test]
fn registry_dying_mid_request() {
    let (_registry, proxy, digest, _) = proxied(Kind::OciManifest);
    let upstream = proxy.host().parse().unwrap();
    let gate = kubeship_testkit::TcpGate::start(upstream).unwrap();
    let image = format!("{}/demo/app:v1", gate.address);
    proxy.add(Rule::any("/manifests/", 1, Action::Delay(Duration::from_secs(2))));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(700));
            gate.shut();
            std::thread::sleep(Duration::from_millis(800));
            gate.open();
        });
        let resolved =
            resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
        assert_eq!(resolved.digest, digest);
    });
    assert!(proxy_heads(&proxy).len() >= 2, "{:?}", proxy.seen());

    proxy.add(Rule::any("/manifests/", 1, Action::Delay(Duration::from_secs(2))));
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            gate.shut();
        });
        let error =
            resolve(&image, None, Credentials::anonymous(), &http_options(Duration::from_secs(3)))
                .unwrap_err();
        assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    });
    assert!(started.elapsed() < Duration::from_secs(3 + 5), "{:?}", started.elapsed());
}
