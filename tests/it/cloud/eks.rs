//! EKS: kubeship's token against a verifier that checks it as aws-iam-authenticator and STS
//! do; the credential chain against the fake STS; the `cluster` input against `DescribeCluster`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use kubeship::cluster::cloud::aws::{Credentials, token};
use kubeship_testkit::cloud::eks::{Key, Keys, Mappings, Verifier, Webhook};
use kubeship_testkit::cloud::github_oidc::GitHubOidc;
use kubeship_testkit::cloud::sts::{Config, FakeSts};
use secrecy::{ExposeSecret as _, SecretString};

use super::{World, issuer};

const STATIC_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const STATIC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const USER_ARN: &str = "arn:aws:iam::123456789012:user/ci";
const WEB_ROLE: &str = "arn:aws:iam::123456789012:role/ci-web";
const DEPLOY_ROLE: &str = "arn:aws:iam::123456789012:role/deploy";

fn keys(entries: &[(&str, &str, Option<&str>, &str)]) -> Keys {
    let map = entries
        .iter()
        .map(|(id, secret, token, arn)| {
            let key = Key {
                secret: (*secret).into(),
                session_token: token.map(str::to_owned),
                arn: (*arn).into(),
            };
            ((*id).to_owned(), key)
        })
        .collect::<BTreeMap<_, _>>();
    std::sync::Arc::new(std::sync::Mutex::new(map))
}

fn credentials(id: &str, secret: &str, session_token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: id.into(),
        secret: SecretString::from(secret),
        session_token: session_token.map(SecretString::from),
        expires: None,
    }
}

fn mint(c: &Credentials, region: Option<&str>, cluster: &str, at: SystemTime) -> String {
    token(c, region, cluster, at).unwrap().expose_secret().to_owned()
}

/// The token is accepted as aws-iam-authenticator and STS accept it, and refused for another
/// cluster, another secret, a stale date, a session token left out.
#[test]
fn tokens_verify_as_aws_iam_authenticator_and_sts_check_them() {
    let session = "FwoGZXIvYXdzE+a/b==";
    let v = Verifier::new(
        "prod",
        keys(&[
            (STATIC_ID, STATIC_SECRET, None, USER_ARN),
            (
                "ASIATEMP",
                "temp-secret",
                Some(session),
                "arn:aws:sts::123456789012:assumed-role/deploy/kubeship",
            ),
        ]),
    );
    let now = SystemTime::now();
    let user = credentials(STATIC_ID, STATIC_SECRET, None);
    let temporary = credentials("ASIATEMP", "temp-secret", Some(session));
    assert_eq!(v.verify(&mint(&user, Some("us-west-2"), "prod", now), now).unwrap().arn, USER_ARN);
    assert!(v.verify(&mint(&temporary, Some("eu-central-1"), "prod", now), now).is_ok());
    assert!(v.verify(&mint(&user, None, "prod", now), now).is_ok(), "the global endpoint");
    let fourteen_minutes_ago = now - Duration::from_secs(14 * 60);
    assert!(v.verify(&mint(&user, Some("us-west-2"), "prod", fourteen_minutes_ago), now).is_ok());

    let refused = |token: String, why: &str| {
        let e = v.verify(&token, now).unwrap_err();
        assert!(e.contains(why), "{why}: {e}");
    };
    refused(mint(&user, Some("us-west-2"), "staging", now), "SignatureDoesNotMatch");
    refused(
        mint(&credentials(STATIC_ID, "wrong", None), Some("us-west-2"), "prod", now),
        "SignatureDoesNotMatch",
    );
    refused(mint(&user, Some("us-west-2"), "prod", now - Duration::from_secs(16 * 60)), "expired");
    refused(
        mint(&credentials("ASIATEMP", "temp-secret", None), Some("us-west-2"), "prod", now),
        "session token",
    );
    refused(
        mint(&credentials("AKIDUNKNOWN", "x", None), Some("us-west-2"), "prod", now),
        "InvalidClientTokenId",
    );
    refused(
        mint(&user, Some("us-west-2"), "prod", now).replace("k8s-aws-v1.", "k8s-aws-v2."),
        "prefix",
    );
}

/// The verifier as a TokenReview webhook: a mapped identity is a user with its groups, an
/// unmapped one or a bad token is not authenticated. (`cloud/real.rs` puts the same webhook
/// behind the real kube-apiserver.)
#[test]
fn token_review_webhook() {
    kubeship_testkit::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let certs = kubeship_testkit::certs::server(dir.path()).unwrap();
    let v = Verifier::new("prod", keys(&[(STATIC_ID, STATIC_SECRET, None, USER_ARN)]));
    let mut map = BTreeMap::new();
    map.insert(USER_ARN.to_owned(), ("ci-deployer".to_owned(), vec!["deployers".to_owned()]));
    let webhook = Webhook::start(v, Mappings(map), &certs).unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.ca_pem).unwrap()).unwrap();
    let client = reqwest::blocking::Client::builder().add_root_certificate(ca).build().unwrap();
    let review = |token: &str| -> serde_json::Value {
        let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
        let answer = client
            .post(format!("{}/tokenreview", webhook.server.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        serde_json::from_str(&answer.text().unwrap()).unwrap()
    };
    let good = mint(
        &credentials(STATIC_ID, STATIC_SECRET, None),
        Some("us-west-2"),
        "prod",
        SystemTime::now(),
    );
    let answer = review(&good);
    assert_eq!(answer["kind"], "TokenReview");
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    assert_eq!(answer["status"]["user"]["username"], "ci-deployer");
    assert_eq!(answer["status"]["user"]["groups"][0], "deployers");
    let other = mint(
        &credentials(STATIC_ID, STATIC_SECRET, None),
        Some("us-west-2"),
        "other",
        SystemTime::now(),
    );
    assert_eq!(review(&other)["status"]["authenticated"], false);
    assert_eq!(review("garbage")["status"]["authenticated"], false);
    assert!(webhook.kubeconfig().contains("/tokenreview"));
}

/// configure-aws-credentials' variables and a kubeconfig from `aws eks update-kubeconfig`,
/// with no `aws` on PATH: kubeship mints the token, the cluster's verifier accepts it, and no
/// secret reaches any output.
#[test]
fn static_keys_and_aws_eks_get_token() {
    let v = Verifier::new("prod", keys(&[(STATIC_ID, STATIC_SECRET, None, USER_ARN)]));
    let w = World::start(move |t| v.verify(t, SystemTime::now()).is_ok());
    let config = w.exec_kubeconfig(
        "aws",
        &[
            "--region",
            "us-west-2",
            "eks",
            "get-token",
            "--cluster-name",
            "prod",
            "--output",
            "json",
        ],
        &[("AWS_STS_REGIONAL_ENDPOINTS", "regional")],
    );
    let run = w.run(&[
        ("INPUT_KUBECONFIG", &config),
        ("AWS_ACCESS_KEY_ID", STATIC_ID),
        ("AWS_SECRET_ACCESS_KEY", STATIC_SECRET),
    ]);
    run.assert_succeeded();
    assert!(
        run.stderr.contains("kubeship mints the EKS token itself (aws is not in the image)"),
        "{}",
        run.stderr
    );
    let seen = w.seen();
    assert!(!seen.is_empty() && seen.iter().all(|t| t.starts_with("k8s-aws-v1.")), "{seen:?}");
    let mut secrets = seen;
    secrets.push(STATIC_SECRET.into());
    run.assert_secret_free(&secrets);
}

fn sts_config(
    roles: &[(&str, &[&str])],
    issuer: Option<kubeship_testkit::cloud::oidc::Issuer>,
) -> Config {
    Config {
        roles: roles
            .iter()
            .map(|(r, p)| ((*r).to_owned(), p.iter().map(|s| (*s).to_owned()).collect()))
            .collect(),
        issuer,
        lifetime: Duration::from_secs(3600),
        clusters: BTreeMap::new(),
    }
}

/// A web identity token file (`AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`), then the
/// plugin's role assumed with those credentials: STS sees both calls in order, and the cluster
/// gets a token signed by the second role's session.
#[test]
fn web_identity_then_the_plugins_role() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path());
    let keys = keys(&[]);
    let web_session = "arn:aws:sts::123456789012:assumed-role/ci-web/kubeship";
    let sts = FakeSts::start(
        sts_config(&[(WEB_ROLE, &[]), (DEPLOY_ROLE, &[web_session])], Some(issuer.clone())),
        keys.clone(),
        None,
    )
    .unwrap();
    let v = Verifier::new("prod", keys.clone());
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = accepted.clone();
    let w = World::start(move |t| {
        let verified = v.verify(t, SystemTime::now());
        let ok = verified.is_ok();
        if let Ok(id) = verified {
            log.lock().unwrap().push(id.arn);
        }
        ok
    });
    let web_token = issuer.mint("sts.amazonaws.com", "system:serviceaccount:ci:runner", 600);
    let token_file = w.file("web-identity-token", &web_token);
    let config = w.exec_kubeconfig(
        "aws-iam-authenticator",
        &["token", "-i", "prod", "-r", DEPLOY_ROLE, "--region", "us-west-2"],
        &[],
    );
    let run = w.run(&[
        ("INPUT_KUBECONFIG", &config),
        ("AWS_ROLE_ARN", WEB_ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file),
        ("AWS_ENDPOINT_URL_STS", &sts.server.url),
    ]);
    run.assert_succeeded();
    assert!(run.stderr.contains("(aws-iam-authenticator is not in the image)"), "{}", run.stderr);
    assert_eq!(sts.actions(), ["AssumeRoleWithWebIdentity", "AssumeRole"]);
    let arns = accepted.lock().unwrap().clone();
    assert!(
        arns.iter().all(|a| a == "arn:aws:sts::123456789012:assumed-role/deploy/kubeship"),
        "{arns:?}"
    );
    let mut secrets: Vec<String> = keys
        .lock()
        .unwrap()
        .values()
        .flat_map(|k| [k.secret.clone()].into_iter().chain(k.session_token.clone()))
        .collect();
    secrets.push(web_token);
    secrets.extend(w.seen());
    run.assert_secret_free(&secrets);
}

/// The registry is asked while the cloud login is under way, not after it: STS answers only
/// once the registry has seen the manifest request (a frozen gate before it, thawed then), so
/// a run that logged in first and resolved after would wait on STS until its timeout.
#[test]
fn the_registry_is_asked_during_the_login() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path());
    let keys = keys(&[]);
    let sts =
        FakeSts::start(sts_config(&[(WEB_ROLE, &[])], Some(issuer.clone())), keys.clone(), None)
            .unwrap();
    let upstream = sts.server.url.trim_start_matches("http://").parse().unwrap();
    let gate = kubeship_testkit::gate::TcpGate::start(upstream).unwrap();
    gate.freeze();
    let v = Verifier::new("prod", keys);
    let w = World::start(move |t| v.verify(t, SystemTime::now()).is_ok());
    let web_token = issuer.mint("sts.amazonaws.com", "system:serviceaccount:ci:runner", 600);
    let token_file = w.file("web-identity-token", &web_token);
    let config = w.exec_kubeconfig(
        "aws",
        &["eks", "get-token", "--cluster-name", "prod", "--region", "us-west-2"],
        &[],
    );
    let sts_url = format!("http://{}", gate.address);
    w.registry.clear_requests(); // the pushes
    let (run, thawed) = std::thread::scope(|scope| {
        let thawed = scope.spawn(|| {
            // Each look waits for the registry's log to settle (at least 100 ms).
            for _ in 0..100 {
                let requests = w.registry.requests();
                if requests.iter().any(|r| r.method == "HEAD" && r.path.contains("/manifests/")) {
                    gate.thaw();
                    return true;
                }
            }
            false
        });
        let run = w.run(&[
            ("INPUT_KUBECONFIG", &config),
            ("INPUT_TIMEOUT", "20s"),
            ("AWS_ROLE_ARN", WEB_ROLE),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file),
            ("AWS_ENDPOINT_URL_STS", &sts_url),
        ]);
        (run, thawed.join().unwrap())
    });
    assert!(thawed, "the registry was never asked: {}", run.stderr);
    run.assert_succeeded();
    assert_eq!(sts.actions(), ["AssumeRoleWithWebIdentity"]);
}

/// No kubeconfig: `cluster` and `aws-role-arn` with GitHub's OIDC token. STS gets the token
/// GitHub issued for `sts.amazonaws.com`; EKS `DescribeCluster` gives the endpoint and CA.
#[test]
fn github_oidc_and_the_cluster_input() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path());
    let github = GitHubOidc::start(issuer.clone(), 300).unwrap();
    let keys = keys(&[]);
    let mut config = sts_config(&[(DEPLOY_ROLE, &[])], Some(issuer));
    let v = Verifier::new("prod", keys.clone());
    let w = World::start(move |t| v.verify(t, SystemTime::now()).is_ok());
    config.clusters.insert("prod".into(), (w.sim.url(), w.sim.ca_pem().unwrap().to_owned()));
    let sts = FakeSts::start(config, keys.clone(), None).unwrap();
    let [(url_var, url), (token_var, request_token)] = github.env();
    let run = w.run(&[
        ("INPUT_CLUSTER", "eks:us-west-2/prod"),
        ("INPUT_AWS-ROLE-ARN", DEPLOY_ROLE),
        ("AWS_ENDPOINT_URL", &sts.server.url),
        (url_var, &url),
        (token_var, &request_token),
    ]);
    run.assert_succeeded();
    assert!(run.stderr.contains("kubeship found EKS cluster prod in us-west-2"), "{}", run.stderr);
    assert_eq!(github.audiences(), ["sts.amazonaws.com"]);
    let paths: Vec<String> =
        sts.server.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, ["POST /", "GET /clusters/prod"]);
    let mut secrets: Vec<String> =
        keys.lock().unwrap().values().filter_map(|k| k.session_token.clone()).collect();
    secrets.extend(github.minted());
    secrets.push(request_token);
    secrets.extend(w.seen());
    run.assert_secret_free(&secrets);
}

/// A token the cluster does not take is a 401 that names the identity and what to grant;
/// exit 4, nothing patched.
#[test]
fn unauthorized_names_the_identity_and_the_grant() {
    let w = World::start(|_| false);
    let config = w.exec_kubeconfig("aws", &["eks", "get-token", "--cluster-name", "prod"], &[]);
    let run = w.run(&[
        ("INPUT_KUBECONFIG", &config),
        ("AWS_ACCESS_KEY_ID", STATIC_ID),
        ("AWS_SECRET_ACCESS_KEY", STATIC_SECRET),
        ("AWS_REGION", "us-west-2"),
    ]);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(run.stderr.contains("kubeship authenticated to EKS as"), "{}", run.stderr);
    assert!(run.stderr.contains("access entry"), "{}", run.stderr);
    // Which keys: as `aws configure list` shows them; no kubeconfig refresh advice, there is
    // nothing in the kubeconfig to refresh.
    assert!(run.stderr.contains("the access key ...MPLE in AWS_ACCESS_KEY_ID"), "{}", run.stderr);
    assert!(run.stderr.contains("the cloud token kubeship minted (401)"), "{}", run.stderr);
    assert!(!run.stderr.contains("refresh the kubeconfig"), "{}", run.stderr);
    assert!(w.sim.requests().iter().all(|r| r.method != "PATCH"));
    run.assert_secret_free(&[STATIC_SECRET.into()]);
}

/// STS's refusal is exit 4 before anything else is asked, with its code, message and advice.
#[test]
fn sts_refusal_is_exit_4_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path());
    let sts = FakeSts::start(sts_config(&[], Some(issuer.clone())), keys(&[]), None).unwrap();
    let w = World::start(|_| true);
    let web_token = issuer.mint("sts.amazonaws.com", "repo:acme/app:ref:refs/heads/main", 600);
    let config = w.exec_kubeconfig(
        "aws",
        &["eks", "get-token", "--cluster-name", "prod", "--region", "us-west-2"],
        &[],
    );
    let run = w.run(&[
        ("INPUT_KUBECONFIG", &config),
        ("AWS_ROLE_ARN", WEB_ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &w.file("t", &web_token)),
        ("AWS_ENDPOINT_URL_STS", &sts.server.url),
    ]);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("trust policy"), "{}", run.stderr);
    assert!(w.seen().is_empty(), "the cluster was asked");
    run.assert_secret_free(&[web_token]);
}

/// A key id whose secret came out empty (a workflow run from a fork) names the empty one.
#[test]
fn an_empty_secret_key_is_named() {
    let w = World::start(|_| true);
    let config = w.exec_kubeconfig("aws", &["eks", "get-token", "--cluster-name", "prod"], &[]);
    let run = w.run(&[
        ("INPUT_KUBECONFIG", &config),
        ("AWS_ACCESS_KEY_ID", STATIC_ID),
        ("AWS_SECRET_ACCESS_KEY", ""),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is empty"),
        "{}",
        run.stderr
    );
}

/// No credentials at all is a configuration error (exit 2) that says which step gives them;
/// an STS endpoint over plain http elsewhere than loopback is refused before it is used.
#[test]
fn configuration_errors_are_exit_2() {
    let w = World::start(|_| true);
    let config = w.exec_kubeconfig("aws", &["eks", "get-token", "--cluster-name", "prod"], &[]);
    let run = w.run(&[("INPUT_KUBECONFIG", &config)]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("no AWS credentials")
            && run.stderr.contains("configure-aws-credentials"),
        "{}",
        run.stderr
    );
    let run = w.run(&[
        ("INPUT_KUBECONFIG", &config),
        ("AWS_ROLE_ARN", WEB_ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent"),
        ("AWS_ENDPOINT_URL_STS", "http://sts.example.com"),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("AWS_ENDPOINT_URL_STS must be an https URL"), "{}", run.stderr);
    // An exec plugin kubeship cannot stand in for keeps today's error.
    let other = w.exec_kubeconfig(
        "doctl",
        &["kubernetes", "cluster", "kubeconfig", "exec-credential", "x"],
        &[],
    );
    let run = w.run(&[("INPUT_KUBECONFIG", &other)]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("exec plugin \"doctl\", which is not on PATH"), "{}", run.stderr);
}

/// STS over HTTPS with a private CA: trusted through `AWS_CA_BUNDLE`, refused without it.
#[test]
fn aws_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let certs = kubeship_testkit::certs::server(dir.path()).unwrap();
    let issuer = issuer(dir.path());
    let keys = keys(&[]);
    let sts = FakeSts::start(
        sts_config(&[(WEB_ROLE, &[])], Some(issuer.clone())),
        keys.clone(),
        Some(&certs),
    )
    .unwrap();
    let v = Verifier::new("prod", keys);
    let w = World::start(move |t| v.verify(t, SystemTime::now()).is_ok());
    let web_token = issuer.mint("sts.amazonaws.com", "ci", 600);
    let config = w.exec_kubeconfig(
        "aws",
        &["eks", "get-token", "--cluster-name", "prod", "--region", "us-west-2"],
        &[],
    );
    let token_file = w.file("t", &web_token);
    let ca = certs.ca_pem.display().to_string();
    let base = [
        ("INPUT_KUBECONFIG", config.as_str()),
        ("AWS_ROLE_ARN", WEB_ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.as_str()),
        ("AWS_ENDPOINT_URL_STS", sts.server.url.as_str()),
    ];
    let run = w.run(&base);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(run.stderr.contains("could not be reached"), "{}", run.stderr);
    let mut with_ca = base.to_vec();
    with_ca.push(("AWS_CA_BUNDLE", &ca));
    w.run(&with_ca).assert_succeeded();
}

/// A web identity login (`AWS_ROLE_ARN`, the token file, the `aws` plugin's kubeconfig) with
/// `vars` added, under a 4 s `timeout`: it is given up on within it, exit 4, a cloud login
/// error naming what did not answer.
fn assert_login_given_up_on(w: &World, vars: &[(&str, &str)]) {
    let config = w.exec_kubeconfig("aws", &["eks", "get-token", "--cluster-name", "prod"], &[]);
    let mut all = vec![
        ("INPUT_KUBECONFIG", config.as_str()),
        ("INPUT_TIMEOUT", "4s"),
        ("AWS_ROLE_ARN", WEB_ROLE),
        ("AWS_REGION", "us-west-2"),
    ];
    all.extend_from_slice(vars);
    let started = std::time::Instant::now();
    let run = w.run(&all);
    assert!(started.elapsed() < Duration::from_secs(4 + 5), "{:?}", started.elapsed());
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(run.stderr.contains("::error title=kubeship%3A cloud login error::"), "{}", run.stderr);
    assert!(run.stderr.contains("no complete answer within 4s"), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "failed");
}

/// A token service that accepts and never answers: the login gets the run's `timeout` like
/// every other request.
#[test]
fn a_silent_sts_is_given_up_on_within_the_timeout() {
    let w = World::start(|_| true);
    let silent = kubeship_testkit::gate::Silent::start().unwrap();
    let token = w.file("token", "eyJhbGciOi.x.y");
    let sts = format!("http://{}", silent.address);
    assert_login_given_up_on(
        &w,
        &[("AWS_WEB_IDENTITY_TOKEN_FILE", &token), ("AWS_ENDPOINT_URL_STS", &sts)],
    );
}

/// A web identity token file that never ends (a pipe no one writes to): its read does not
/// hold the run's only thread past the timeout.
#[test]
fn a_token_file_that_never_ends_is_given_up_on() {
    let w = World::start(|_| true);
    let fifo = w.dir.path().join("token-pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    assert_login_given_up_on(&w, &[("AWS_WEB_IDENTITY_TOKEN_FILE", fifo.to_str().unwrap())]);
}
