//! The EKS token on the real kube-apiserver: its `--authentication-token-webhook-config-file`
//! points at the test kit's verifier (a TokenReview webhook that checks the token as
//! aws-iam-authenticator and STS do, and maps the IAM identity to a Kubernetes user, as an EKS
//! access entry does). kubeship, with no `aws` on PATH, deploys through it; a token for another
//! cluster is the API server's 401, explained.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubeship_testkit::cloud::eks::{Key, Mappings, Verifier, Webhook};
use kubeship_testkit::controlplane::{ControlPlane, Options, TOKEN_USER};
use kubeship_testkit::push::Kind;
use kubeship_testkit::{Registry, Setup};
use kubesim::resources;
use serde_json::json;

const ACCESS_KEY: &str = "AKIAIOSFODNN7REALAPI";
const SECRET: &str = "real/apiserver+secret/KEY0123456789abcdefgh";
const ARN: &str = "arn:aws:iam::123456789012:user/ci";

fn kubeconfig(plane: &ControlPlane, namespace: &str, cluster: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(plane.ca_pem());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: eks\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
         contexts:\n- name: eks\n  context:\n    cluster: eks\n    user: eks\n    namespace: {namespace}\ncurrent-context: eks\n\
         users:\n- name: eks\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n\
         \x20     args: [--region, us-west-2, eks, get-token, --cluster-name, {cluster}, --output, json]\n",
        plane.url()
    )
}

#[test]
fn eks_tokens_on_the_real_api_server() {
    let Some(binaries) = kubeship_testkit::controlplane::binaries().unwrap() else {
        eprintln!(
            "SKIPPED: the real control plane is not built and KUBESHIP_CONTROLPLANE is unset"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = kubeship_testkit::certs::server(dir.path()).unwrap();
    let mut keys = BTreeMap::new();
    keys.insert(
        ACCESS_KEY.to_owned(),
        Key { secret: SECRET.into(), session_token: None, arn: ARN.into() },
    );
    let verifier = Verifier::new("prod", std::sync::Arc::new(std::sync::Mutex::new(keys)));
    // The IAM user maps to the test kit's CI user, which holds the README's Role.
    let mut mappings = BTreeMap::new();
    mappings.insert(ARN.to_owned(), (TOKEN_USER.to_owned(), vec!["deployers".to_owned()]));
    let webhook = Webhook::start(verifier, Mappings(mappings), &certs).unwrap();
    let plane = ControlPlane::start(Options {
        token_webhook: Some(webhook.kubeconfig()),
        binaries: Some(binaries),
        ..Options::default()
    })
    .unwrap();

    let registry = Registry::start(Setup::Anonymous).unwrap();
    let pusher = registry.pusher().unwrap();
    pusher.image("acme/api", "v1", Kind::OciManifest, "one").unwrap();
    pusher.image("acme/api", "v2", Kind::OciManifest, "two").unwrap();
    plane.insecure_registry(&registry.host);
    let namespace = plane.namespace("eks").unwrap();
    let d = json!({"metadata": {"name": "api", "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "app", "image": format!("{}/acme/api:v1", registry.host)}]}}}});
    plane.create(&resources::DEPLOYMENTS, d).unwrap();
    let started = Instant::now();
    while plane.get(&resources::DEPLOYMENTS, &namespace, "api").unwrap()["status"]["availableReplicas"]
        != 1
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first Deployment never became available"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let run = |cluster: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_kubeship"))
            .env_clear()
            .env("PATH", &bin)
            .env("INPUT_IMAGE", format!("{}/acme/api:v2", registry.host))
            .env("INPUT_DEPLOYMENT", "api")
            .env("INPUT_INSECURE-REGISTRY", "true")
            .env("INPUT_TIMEOUT", "60s")
            .env("INPUT_KUBECONFIG", kubeconfig(&plane, &namespace, cluster))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
        (out.status.code(), stdout, stderr)
    };

    let (code, stdout, stderr) = run("prod");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.lines().last().unwrap_or_default().contains("\"status\":\"succeeded\""),
        "{stdout}"
    );
    assert!(
        stderr.contains("kubeship mints the EKS token itself (aws is not in the image)"),
        "{stderr}"
    );
    let reviews = webhook.server.requests().len();
    assert!(reviews > 0, "the API server never asked the webhook");

    // A token for another cluster: the webhook refuses it, the API server answers 401.
    let (code, _, stderr) = run("staging");
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("(401)") && stderr.contains("kubeship authenticated to EKS as"),
        "{stderr}"
    );
    assert!(webhook.server.requests().len() > reviews);
}
