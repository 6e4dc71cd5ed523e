//! Digest resolution against Debian's docker-registry (distribution 2.8), in its three setups,
//! with a fault proxy in front where a real registry cannot misbehave on cue.

// Token services and credentials: realms, identity tokens, htpasswd over TLS, helpers.
mod auth;
// Faults through the proxy: rate limits, 5xx, hangs, huge and endless bodies, dying servers.
mod faults;
// What the user is told: the wrong protocol, a host that is no registry, input conflicts,
// and the binary's own behaviour.
mod advice;

use std::time::{Duration, Instant};

use kubeship::registry::{Credentials, Error};
use kubeship_testkit::push::{self, Kind};
use kubeship_testkit::registry::Request;
use kubeship_testkit::{FaultProxy, Registry, Setup};

use crate::support::{http_options, resolve, wait_until};

const LONG: Duration = Duration::from_secs(20);

fn manifest_requests<'a>(requests: &'a [Request], method: &str) -> Vec<&'a Request> {
    requests.iter().filter(|r| r.method == method && r.path.contains("/manifests/")).collect()
}

/// A registry behind a fault proxy, with `demo/app:v1` of `kind`: the registry, the proxy,
/// the stored digest and the image reference through the proxy.
fn proxied(kind: Kind) -> (Registry, FaultProxy, String, String) {
    let (registry, digest) = anonymous_registry_with("demo/app", "v1", kind);
    let proxy = FaultProxy::start(&format!("http://{}", registry.host)).unwrap();
    let image = format!("{}/demo/app:v1", proxy.host());
    (registry, proxy, digest, image)
}

/// The statuses of the manifest HEADs the proxy answered.
fn proxy_heads(proxy: &FaultProxy) -> Vec<u16> {
    proxy.seen().iter().filter(|s| s.method == "HEAD").map(|s| s.status).collect()
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
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

/// A tag pushed while kubeship waits (after it was first told 404) is found.
#[test]
fn tag_pushed_while_waiting_is_found() {
    let registry = Registry::start(Setup::Anonymous).unwrap();
    let pusher = registry.pusher().unwrap();
    let image = format!("{}/lag/app:v2", registry.host);
    let (resolved, pushed) = std::thread::scope(|scope| {
        let late = scope.spawn(|| {
            wait_until("kubeship's first HEAD", || {
                manifest_requests(&registry.requests(), "HEAD").iter().any(|r| r.status == 404)
            });
            pusher.image("lag/app", "v2", Kind::DockerManifest, "late").unwrap()
        });
        let resolved =
            resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
        (resolved, late.join().unwrap())
    });
    assert_eq!(resolved.digest, pushed.digest);
    assert!(resolved.attempts > 1, "found after {} attempts", resolved.attempts);
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
