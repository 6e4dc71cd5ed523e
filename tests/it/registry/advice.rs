//! What the user is told, through `registry::resolve` and the binary: a registry spoken to in
//! the wrong protocol, a host that is not a registry, an image and digest that disagree,
//! references shown as written, the rate limit, exit codes, `--help` and `--version`.

use std::time::{Duration, Instant};

use kubeship::registry::{Credentials, Error, Options};
use kubeship_testkit::proxy::{Action, Rule};
use kubeship_testkit::push::Kind;
use kubeship_testkit::{Registry, Setup};

use super::{LONG, anonymous_registry_with, proxied};
use crate::support::{cluster_running, http_options, kubeship, resolve, stderr};

/// A plain-HTTP registry without insecure-registry is told so at once, not to give its CA.
#[test]
fn plain_http_registry_without_insecure_registry() {
    let (registry, _) = anonymous_registry_with("demo/app", "v1", Kind::OciManifest);
    let image = format!("{}/demo/app:v1", registry.host);
    let options = Options { insecure: false, extra_ca: Vec::new(), tag_timeout: LONG };
    let started = Instant::now();
    let error = resolve(&image, None, Credentials::anonymous(), &options).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(matches!(error, Error::PlainHttp { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("speaks plain HTTP") && text.contains("insecure-registry: true"),
        "{text}"
    );
    assert!(!text.contains("registry-ca"), "{text}");
    assert_eq!(error.exit_code(), 3);
}

/// insecure-registry against a TLS registry is told to drop it, not about captive portals.
#[test]
fn insecure_registry_against_an_https_registry() {
    let registry = Registry::start(Setup::Htpasswd { user: "ci", password: "pw" }).unwrap();
    let image = format!("{}/secure/app:v1", registry.host);
    let started = Instant::now();
    let error = resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(matches!(error, Error::SpeaksHttps { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("drop insecure-registry") && text.contains("registry-ca"), "{text}");
    assert!(!text.contains("captive"), "{text}");
}

/// A host whose `/v2/` is 404, or a web page, is not a registry: said at once (exit 3),
/// instead of waiting out tag-timeout and calling the tag unknown.
#[test]
fn a_host_that_is_not_a_registry() {
    let html = vec![("Content-Type".to_owned(), "text/html; charset=utf-8".to_owned())];
    let page = "<html><body>Welcome</body></html>".to_owned();
    for (status, answer) in [(404, "404 Not Found"), (200, "200 OK with a web page")] {
        let (_registry, proxy, _, image) = proxied(Kind::OciManifest);
        let respond = Action::Respond { status, headers: html.clone(), body: page.clone() };
        proxy.add(Rule::any("/", usize::MAX, respond));
        let started = Instant::now();
        let error =
            resolve(&image, None, Credentials::anonymous(), &http_options(LONG)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert!(matches!(error, Error::NotARegistry { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains("does not serve the registry API at /v2/") && text.contains(answer),
            "{text}"
        );
        assert_eq!(proxy.seen().len(), 1, "only the version check: {:?}", proxy.seen());
    }
}

/// Through the binary: a web server named as the registry is exit 3 within seconds.
#[test]
fn binary_says_a_host_is_not_a_registry() {
    let (_registry, proxy, _, image) = proxied(Kind::OciManifest);
    let (_sim, kube) = cluster_running(&image);
    proxy.add(Rule::status("/", usize::MAX, 404, &[("Content-Type", "text/html")]));
    let started = Instant::now();
    let output = kubeship(&[
        ("INPUT_IMAGE", &image),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_INSECURE-REGISTRY", "true"),
        ("KUBECONFIG", kube.path().join("kubeconfig").to_str().unwrap()),
    ]);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("does not serve the registry API"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("not found on"), "{}", stderr(&output));
}

/// An image pinned by one digest and a digest input naming another: exit 2 before any
/// request, naming both.
#[test]
fn binary_refuses_an_image_and_digest_that_disagree() {
    let (a, b) = (format!("sha256:{}", "a".repeat(64)), format!("sha256:{}", "b".repeat(64)));
    let (_registry, proxy, _, image) = proxied(Kind::OciManifest);
    let pinned = format!("{}/demo/app@{a}", proxy.host());
    let (sim, kube) = cluster_running(&image);
    let (proxy_before, sim_before) = (proxy.arrived().len(), sim.requests().len());
    let output = kubeship(&[
        ("INPUT_IMAGE", &pinned),
        ("INPUT_DIGEST", &b),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_INSECURE-REGISTRY", "true"),
        ("KUBECONFIG", kube.path().join("kubeconfig").to_str().unwrap()),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains(&a) && stderr(&output).contains(&b), "{}", stderr(&output));
    assert_eq!(proxy.arrived().len(), proxy_before, "the registry was asked");
    assert_eq!(sim.requests().len(), sim_before, "the cluster was asked");
}

/// `repo@sha256:…` is shown as written, never as `repo:latest@sha256:…`.
#[test]
fn binary_shows_a_digest_reference_as_written() {
    let (registry, digest) = anonymous_registry_with("demo/app", "v1", Kind::OciManifest);
    let image = format!("{}/demo/app@{digest}", registry.host);
    let (_sim, kube) = cluster_running(&image);
    let output = kubeship(&[
        ("INPUT_IMAGE", &image),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_INSECURE-REGISTRY", "true"),
        ("INPUT_DRY-RUN", "true"),
        ("KUBECONFIG", kube.path().join("kubeconfig").to_str().unwrap()),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("Resolve {image}")), "{}", stderr(&output));
    assert!(!stderr(&output).contains(":latest"), "{}", stderr(&output));
}

/// Docker Hub's rate-limit headers are logged as numbers; a header that holds anything else
/// is not printed at all.
#[test]
fn binary_logs_the_rate_limit() {
    let (_registry, proxy, digest, image) = proxied(Kind::OciManifest);
    let (_sim, kube) = cluster_running(&image);
    let kubeconfig = kube.path().join("kubeconfig");
    let run = |remaining: &str| {
        let headers = vec![
            ("ratelimit-limit".to_owned(), "100;w=21600".to_owned()),
            ("ratelimit-remaining".to_owned(), remaining.to_owned()),
        ];
        proxy.add(Rule::any("/manifests/", 1, Action::AddHeaders(headers)));
        kubeship(&[
            ("INPUT_IMAGE", &image),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_INSECURE-REGISTRY", "true"),
            ("INPUT_DRY-RUN", "true"),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ])
    };
    let output = run("20;w=21600");
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

    let output = run("::add-mask::sha256 ::stop-commands::x");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(!text.contains("rate limit") && !text.contains("add-mask::sha256"), "{text}");
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
    let (sim, kube) = cluster_running(&image);
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
