//! Registries that misbehave on cue, through the fault proxy: rate limits, 5xx, a missing
//! digest header, hangs, bodies that are huge or never finish, servers that die mid-request.

use std::time::{Duration, Instant};

use kubeship::registry::{Credentials, Error};
use kubeship_testkit::FaultProxy;
use kubeship_testkit::proxy::{Action, Rule};
use kubeship_testkit::push::Kind;

use super::{LONG, proxied, proxy_heads};
use crate::support::{http_options, resolve};

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

fn strip_digest_header(proxy: &FaultProxy) {
    proxy.add(
        Rule::any("/manifests/", 1, Action::StripHeader("Docker-Content-Digest".into()))
            .only("HEAD"),
    );
}

/// Without Docker-Content-Digest, the manifest is fetched and its exact bytes hashed.
#[test]
fn missing_digest_header_falls_back_to_get() {
    for kind in [Kind::DockerManifest, Kind::OciIndex] {
        let (_registry, proxy, digest, image) = proxied(kind);
        strip_digest_header(&proxy);
        let resolved =
            resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
        assert_eq!(resolved.digest, digest, "{kind:?}");
        assert_eq!(resolved.media_type.as_deref(), Some(kind.media_type()));
        let gets = proxy
            .seen()
            .iter()
            .filter(|s| s.method == "GET" && s.path.contains("/manifests/"))
            .count();
        assert_eq!((proxy_heads(&proxy).len(), gets), (1, 1), "{kind:?}");
    }
}

/// A manifest GET whose bytes do not match the registry's own digest header is refused.
#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused() {
    let (_registry, proxy, _, image) = proxied(Kind::OciManifest);
    strip_digest_header(&proxy);
    let wrong = format!("sha256:{}", "e".repeat(64));
    let body = r#"{"schemaVersion":2}"#.to_owned();
    let headers = vec![("Docker-Content-Digest".to_owned(), wrong.clone())];
    proxy.add(
        Rule::any("/manifests/", 1, Action::Respond { status: 200, headers, body }).only("GET"),
    );
    let error = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap_err();
    assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
    assert!(error.to_string().contains(&wrong), "{error}");
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

/// The message of an error, checked to be short and free of control characters.
fn clean_message(error: &Error) -> String {
    let text = error.to_string();
    assert!(text.len() < 1000, "{} bytes: {}", text.len(), &text[..300]);
    assert!(!text.chars().any(char::is_control), "{text:?}");
    text
}

const GIB: u64 = 1 << 30;

/// Resolves through a fresh proxy whose manifest HEADs lack the digest header and whose
/// manifest GETs get `action`: the error and how long it took.
fn get_fallback_answered_with(action: Action, tag_timeout: Duration) -> (Error, Duration) {
    let (_registry, proxy, _, image) = proxied(Kind::OciManifest);
    proxy.add(
        Rule::any("/manifests/", usize::MAX, Action::StripHeader("Docker-Content-Digest".into()))
            .only("HEAD"),
    );
    proxy.add(Rule::any("/manifests/", usize::MAX, action).only("GET"));
    let started = Instant::now();
    let error =
        resolve(&image, None, Credentials::anonymous(), &http_options(tag_timeout)).unwrap_err();
    (error, started.elapsed())
}

/// A manifest of a gigabyte is refused at once; one whose body never finishes ends at
/// tag-timeout; a 503 with a gigabyte body is retried without the body in any message; an
/// error message of kilobytes with control characters is quoted short and clean.
#[test]
fn huge_endless_and_hostile_manifest_answers() {
    let tag_timeout = Duration::from_secs(3);
    let manifest_type =
        vec![("Content-Type".to_owned(), "application/vnd.oci.image.manifest.v1+json".to_owned())];

    let flood = Action::Flood { status: 200, headers: manifest_type, bytes: GIB };
    let (error, took) = get_fallback_answered_with(flood, tag_timeout);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
    assert!(clean_message(&error).contains("larger than 4096 KiB"), "{error}");

    let stall = Action::Stall { status: 200, headers: Vec::new() };
    let (error, took) = get_fallback_answered_with(stall, tag_timeout);
    assert!(took >= tag_timeout && took < tag_timeout + Duration::from_secs(4), "{took:?}");
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    assert!(clean_message(&error).contains("did not arrive whole"), "{error}");

    let flood_503 = Action::Flood { status: 503, headers: Vec::new(), bytes: GIB };
    let (error, took) = get_fallback_answered_with(flood_503, tag_timeout);
    assert!(took < tag_timeout + Duration::from_secs(4), "{took:?}");
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    assert!(clean_message(&error).contains("503"), "{error}");

    let message = format!("denied\r::error::forged\u{1b}[31m {}", "x".repeat(3000));
    let body = serde_json::json!({"errors": [{"code": "DENIED", "message": message}]}).to_string();
    let hostile = Action::Respond { status: 403, headers: Vec::new(), body };
    let (error, _) = get_fallback_answered_with(hostile, tag_timeout);
    assert!(matches!(error, Error::Unauthorized { status: 403, .. }), "{error:?}");
    let text = clean_message(&error);
    assert!(text.contains("DENIED denied\u{FFFD}::error::forged\u{FFFD}[31m"), "{text}");
}

/// A token service that answers with a gigabyte is refused at once; one whose answer never
/// finishes ends at tag-timeout. (Anonymous: a realm on another port is fine then.)
#[test]
fn huge_and_endless_token_answers() {
    let tag_timeout = Duration::from_secs(3);
    for (action, quick) in [
        (Action::Flood { status: 200, headers: Vec::new(), bytes: GIB }, true),
        (Action::Stall { status: 200, headers: Vec::new() }, false),
    ] {
        let (_registry, proxy, _, image) = proxied(Kind::OciManifest);
        let tokens = FaultProxy::start("http://127.0.0.1:9").unwrap();
        tokens.add(Rule::any("/token", usize::MAX, action));
        let challenge = format!(r#"Bearer realm="http://{}/token",service="x""#, tokens.host());
        proxy.add(Rule::status("/v2/", usize::MAX, 401, &[("WWW-Authenticate", &challenge)]));
        let started = Instant::now();
        let error = resolve(&image, None, Credentials::anonymous(), &http_options(tag_timeout))
            .unwrap_err();
        let took = started.elapsed();
        let text = clean_message(&error);
        if quick {
            assert!(took < Duration::from_secs(2), "{took:?}");
            assert!(
                text.contains("a token answer from") && text.contains("larger than 256 KiB"),
                "{text}"
            );
        } else {
            assert!(took >= tag_timeout && took < tag_timeout + Duration::from_secs(4), "{took:?}");
            assert!(text.contains("did not arrive whole"), "{text}");
        }
    }
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
    let manifests = |arrived: &[(String, String)]| {
        arrived.iter().filter(|(_, path)| path.contains("/manifests/")).count()
    };
    proxy.add(Rule::any("/manifests/", 1, Action::Delay(Duration::from_secs(10))));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // The HEAD is held back by the proxy: cut it, then let the retry through.
            proxy.wait_for(LONG, |arrived| manifests(arrived) == 1).unwrap();
            gate.shut();
            gate.open();
        });
        let resolved =
            resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap();
        assert_eq!(resolved.digest, digest);
    });
    assert_eq!(manifests(&proxy.arrived()), 2, "{:?}", proxy.arrived());

    proxy.add(Rule::any("/manifests/", 1, Action::Delay(Duration::from_secs(10))));
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            proxy.wait_for(LONG, |arrived| manifests(arrived) == 3).unwrap();
            gate.shut();
        });
        let error =
            resolve(&image, None, Credentials::anonymous(), &http_options(Duration::from_secs(3)))
                .unwrap_err();
        assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    });
    assert!(started.elapsed() < Duration::from_secs(3 + 5), "{:?}", started.elapsed());
}
