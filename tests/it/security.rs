//! Secrets and trust: no secret in anything kubeship prints or writes, credentials only for
//! the image's registry, TLS checked by default, a warning for a kubeconfig that skips it.

use kubeship_testkit::proxy::Action;
use kubeship_testkit::push::Kind;
use kubeship_testkit::{FaultProxy, Registry, Rule, Setup};

use super::support::{cluster_running, kubeship, stderr};
use crate::world::{TOKEN, World};

/// Everything a run leaves behind, as text: standard output and error, and the files.
fn everything(output: &std::process::Output, dir: &std::path::Path) -> String {
    let mut text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for file in ["output", "summary", "deploy.env"] {
        text.push_str(&std::fs::read_to_string(dir.join(file)).unwrap_or_default());
    }
    text
}

/// A wrong registry password over TLS, under GitHub Actions: exit 3, and the password
/// appears only in the `::add-mask::` line, nowhere in the logs, errors, outputs, summary or
/// dotenv report; outside Actions it appears nowhere at all.
#[test]
fn a_registry_password_never_leaks() {
    let password = "pw-9c41-secret";
    let registry = Registry::start(Setup::Htpasswd { user: "ci", password: "right-one" }).unwrap();
    registry.pusher().unwrap().image("secure/app", "v1", Kind::OciManifest, "s").unwrap();
    let image = format!("{}/secure/app:v1", registry.host);
    let (_sim, dir) = cluster_running(&image);
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    for github in ["true", "false"] {
        let output = kubeship(&[
            ("INPUT_IMAGE", &image),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_REGISTRY-CA", &registry.ca_pem().unwrap()),
            ("INPUT_REGISTRY-USERNAME", "ci"),
            ("INPUT_REGISTRY-PASSWORD", password),
            ("INPUT_DOTENV-FILE", &path("deploy.env")),
            ("KUBECONFIG", &path("kubeconfig")),
            ("GITHUB_ACTIONS", github),
            ("GITHUB_OUTPUT", &path("output")),
            ("GITHUB_STEP_SUMMARY", &path("summary")),
            ("RUNNER_DEBUG", "1"),
        ]);
        assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
        let text = everything(&output, dir.path());
        assert!(text.contains("401") || text.contains("unauthorized"), "{text}");
        let leaks: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(password) && *l != format!("::add-mask::{password}"))
            .collect();
        assert!(leaks.is_empty(), "the password leaked: {leaks:?}");
        assert_eq!(text.contains(password), github == "true", "{text}");
    }
}

/// A kubeconfig token, through a run the cluster forbids (403): exit 4, the server's
/// message, and the token nowhere.
#[test]
fn a_kubeconfig_token_never_leaks() {
    let w = World::kubesim();
    w.sim().set_faults(kubesim::Faults {
        forbid: vec![("get".into(), "deployments".into())],
        ..kubesim::Faults::default()
    });
    let output = w
        .command(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_DOTENV-FILE", w.dir.path().join("deploy.env").to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", w.dir.path().join("summary").to_str().unwrap()),
            ("RUNNER_DEBUG", "1"),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let text = everything(&output, w.dir.path());
    assert!(text.contains("forbidden"), "{text}");
    assert!(!text.contains(TOKEN), "the token leaked: {text}");
}

/// A registry that asks for credentials: the docker config has some only for another
/// registry, so none are sent (and the run fails with 401, exit 3); with an entry for this
/// registry, they are.
#[test]
fn credentials_go_only_to_their_registry() {
    let registry = Registry::start(Setup::Anonymous).unwrap();
    registry.pusher().unwrap().image("acme/api", "v1", Kind::OciManifest, "c").unwrap();
    let proxy = FaultProxy::start(&format!("http://{}", registry.host)).unwrap();
    let challenge =
        vec![("WWW-Authenticate".to_owned(), format!("Basic realm=\"{}\"", proxy.host()))];
    proxy.add(Rule::any(
        "/v2/",
        usize::MAX,
        Action::Respond { status: 401, headers: challenge, body: String::new() },
    ));
    let image = format!("{}/acme/api:v1", proxy.host());
    let (_sim, dir) = cluster_running(&image);
    let docker = tempfile::tempdir().unwrap();
    let auth = |user: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:hunter2-7f"))
    };
    for (entry, expect_sent) in [("other.example:5000", false), (proxy.host().as_str(), true)] {
        std::fs::write(
            docker.path().join("config.json"),
            format!(r#"{{"auths":{{"{entry}":{{"auth":"{}"}}}}}}"#, auth("ci")),
        )
        .unwrap();
        let before = proxy.seen().len();
        let output = kubeship(&[
            ("INPUT_IMAGE", &image),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_INSECURE-REGISTRY", "true"),
            ("DOCKER_CONFIG", docker.path().to_str().unwrap()),
            ("KUBECONFIG", dir.path().join("kubeconfig").to_str().unwrap()),
        ]);
        assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
        let seen = proxy.seen();
        let sent = seen[before..].iter().any(|s| s.authorization.is_some());
        assert_eq!(sent, expect_sent, "entry for {entry}: {:?}", &seen[before..]);
        assert!(!stderr(&output).contains("hunter2-7f"));
    }
}

/// A kubeconfig with insecure-skip-tls-verify works, with a warning that says what to do
/// (an annotation under GitHub Actions).
#[test]
fn skipping_tls_verification_is_warned_about() {
    let w = World::kubesim();
    let config = std::fs::read_to_string(w.dir.path().join("kubeconfig")).unwrap();
    let start = config.find("    certificate-authority-data:").unwrap();
    let end = start + config[start..].find('\n').unwrap() + 1;
    let insecure =
        format!("{}    insecure-skip-tls-verify: true\n{}", &config[..start], &config[end..]);
    let output = w
        .command(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_DRY-RUN", "true"),
            ("INPUT_KUBECONFIG", &insecure),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("warning: the kubeconfig sets insecure-skip-tls-verify")
            && text.contains("certificate-authority-data"),
        "{text}"
    );
    // Under GitHub Actions the same warning is a `::warning::` annotation.
    let output = w
        .command(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_DRY-RUN", "true"),
            ("INPUT_KUBECONFIG", &insecure),
            ("GITHUB_ACTIONS", "true"),
        ])
        .output()
        .unwrap();
    let text = stderr(&output);
    assert!(
        text.lines()
            .any(|l| l.starts_with("::warning::the kubeconfig sets insecure-skip-tls-verify")),
        "{text}"
    );
    // Without the CA and without the flag, the API server's certificate is refused.
    let untrusted = format!("{}{}", &config[..start], &config[end..]);
    let output = w
        .command(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_DRY-RUN", "true"),
            ("INPUT_KUBECONFIG", &untrusted),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
}

/// Lines of `text` holding `secret`, other than the runner's `::add-mask::` for it.
fn leaks<'a>(text: &'a str, secret: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(secret) && !l.starts_with("::add-mask::")).collect()
}

/// An installed exec plugin that fails: exit 4 (authentication), its name and exit status,
/// its last stderr lines redacted; the secrets in its environment, its arguments and its
/// output appear nowhere, with or without GitHub Actions.
#[test]
fn a_failing_exec_plugin_leaks_nothing() {
    let w = World::kubesim();
    let plugin = w.dir.path().join("cloud-login");
    std::fs::write(
        &plugin,
        "#!/bin/sh\necho \"login failed for $CLOUD_SECRET with $3\" >&2\necho \"try again\" >&2\nexit 3\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (env_secret, arg_secret) = ("env-s3cret-71ac", "arg-s3cret-93bd");
    let config = w.sim().kubeconfig(Some("prod")).replace(
        &format!("    token: {TOKEN}\n"),
        &format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      \
             args: [get-token, --token, {arg_secret}]\n      env:\n      - name: CLOUD_SECRET\n        value: {env_secret}\n      \
             interactiveMode: Never\n",
            plugin.display()
        ),
    );
    for github in ["false", "true"] {
        let summary = w.dir.path().join("summary");
        let output = w
            .command(&[
                ("INPUT_IMAGE", &w.image("v2")),
                ("INPUT_DEPLOYMENT", "api"),
                ("INPUT_KUBECONFIG", &config),
                ("GITHUB_ACTIONS", github),
                ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
                ("RUNNER_DEBUG", "1"),
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
        let text = everything(&output, w.dir.path());
        assert!(text.contains("cloud-login failed (exit status: 3)"), "{text}");
        assert!(
            text.contains("login failed for *** with ***") && text.contains("try again"),
            "{text}"
        );
        for secret in [env_secret, arg_secret] {
            assert!(leaks(&text, secret).is_empty(), "{secret} leaked: {text}");
        }
    }
}

/// A kubeconfig that does not parse, given as base64 (which the runner cannot mask): exit 2,
/// line and column, and no line of the file anywhere.
#[test]
fn a_broken_kubeconfig_quotes_none_of_it() {
    use base64::Engine as _;
    let (token, key) = ("t0k3n-6b2e-secret", "a2V5LWRhdGEtc2VjcmV0LTQ0Zg==");
    let broken = format!(
        "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {token}\n    \
         client-key-data: {key}\n    oops: [unclosed\nclusters: []\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary");
    for config in [broken.clone(), base64::engine::general_purpose::STANDARD.encode(&broken)] {
        let output = kubeship(&[
            ("INPUT_IMAGE", "127.0.0.1:1/acme/api:v1"),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_KUBECONFIG", &config),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let text = everything(&output, dir.path());
        assert!(text.contains("line") && text.contains("column"), "{text}");
        for secret in [token, key, "unclosed", "client-key-data"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

/// A bearer token to an API server over plain HTTP is sent (kube's client does), with a
/// warning that says so.
#[test]
fn a_token_over_plain_http_is_warned_about() {
    let sim = kubesim::Simulator::start(kubesim::Options {
        manual_clock: true,
        token: Some(TOKEN.to_owned()),
        ..kubesim::Options::default()
    })
    .unwrap();
    let config = sim.kubeconfig(None);
    assert!(config.contains("server: http://") && config.contains(TOKEN), "{config}");
    let output = kubeship(&[
        (
            "INPUT_IMAGE",
            "127.0.0.1:1/acme/api@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &config),
        ("INPUT_TAG-TIMEOUT", "1s"),
    ]);
    let text = stderr(&output);
    assert!(
        text.contains("warning: the kubeconfig sends credentials to http://")
            && text.contains("plain HTTP"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
}
