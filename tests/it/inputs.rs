//! Bad input, through the binary: each malformed value is exit 2 with a message that names
//! the input, and nothing is sent anywhere (the cluster logs no request; the registry named
//! by the image is a closed port, so reaching it would be exit 3, not 2).

use base64::Engine as _;

use super::support::cluster_running;

/// A valid run but for one thing: the image's registry does not exist.
const IMAGE: &str = "127.0.0.1:9/acme/api:v1";

/// What is wrong, the variables that set it, and the input the message must name.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn malformed_inputs_are_exit_2_and_send_nothing() {
    let huge = "a".repeat(5000);
    let long_label = "a".repeat(64);
    let bad_pem = "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----".to_owned();
    let not_utf8 = b64(&[0xff, 0xfe, 0x00]);
    let cases: Vec<Case> = vec![
        ("empty image", vec![("INPUT_IMAGE", String::new())], "image"),
        ("uppercase repository", vec![("INPUT_IMAGE", "ghcr.io/Acme/api:v1".into())], "image"),
        ("empty tag", vec![("INPUT_IMAGE", "ghcr.io/acme/api:".into())], "image"),
        (
            "bad digest in image",
            vec![("INPUT_IMAGE", "ghcr.io/acme/api@sha256:zz".into())],
            "image",
        ),
        (
            "newline in image",
            vec![("INPUT_IMAGE", "ghcr.io/acme/api:v1\nrm -rf /".into())],
            "image",
        ),
        ("unicode in image", vec![("INPUT_IMAGE", "ghcr.io/acme/ápi:v1".into())], "image"),
        ("huge image", vec![("INPUT_IMAGE", format!("ghcr.io/{huge}:v1"))], "image"),
        ("URL for image", vec![("INPUT_IMAGE", "https://ghcr.io/acme/api:v1".into())], "image"),
        ("short digest", vec![("INPUT_DIGEST", "sha256:123".into())], "digest"),
        ("unknown algorithm", vec![("INPUT_DIGEST", format!("md5:{}", "a".repeat(32)))], "digest"),
        ("uppercase hex", vec![("INPUT_DIGEST", format!("sha256:{}", "A".repeat(64)))], "digest"),
        ("no target", vec![("INPUT_DEPLOYMENT", " , \n".into())], "deployment"),
        ("unknown kind", vec![("INPUT_DEPLOYMENT", "cronjob/nightly".into())], "deployment"),
        ("kind without name", vec![("INPUT_DEPLOYMENT", "deploy/".into())], "deployment"),
        ("uppercase name", vec![("INPUT_DEPLOYMENT", "Api".into())], "deployment"),
        ("two slashes", vec![("INPUT_DEPLOYMENT", "deployment/a/b".into())], "deployment"),
        ("shell in name", vec![("INPUT_DEPLOYMENT", "api;reboot".into())], "deployment"),
        ("uppercase container", vec![("INPUT_CONTAINER", "app,Web".into())], "container"),
        ("container starts with -", vec![("INPUT_CONTAINER", "-app".into())], "container"),
        ("underscore container", vec![("INPUT_CONTAINER", "app_1".into())], "container"),
        ("container over 63", vec![("INPUT_CONTAINER", long_label.clone())], "container"),
        ("uppercase namespace", vec![("INPUT_NAMESPACE", "Prod".into())], "namespace"),
        ("space in namespace", vec![("INPUT_NAMESPACE", "prod ns".into())], "namespace"),
        ("unicode namespace", vec![("INPUT_NAMESPACE", "prodüction".into())], "namespace"),
        ("namespace over 63", vec![("INPUT_NAMESPACE", long_label)], "namespace"),
        ("control character", vec![("INPUT_CONTEXT", "a\u{7}b".into())], "context"),
        ("huge context", vec![("INPUT_CONTEXT", "c".repeat(10_000))], "context"),
        (
            "kubeconfig garbage",
            vec![("INPUT_KUBECONFIG", "not yaml, not base64 !!!".into())],
            "kubeconfig",
        ),
        ("kubeconfig bad base64", vec![("INPUT_KUBECONFIG", "@@@@====".into())], "kubeconfig"),
        ("kubeconfig base64 of bytes", vec![("INPUT_KUBECONFIG", not_utf8)], "kubeconfig"),
        (
            "kubeconfig without clusters",
            vec![("INPUT_KUBECONFIG", "apiVersion: v1\nkind: Config\nclusters: []\n".into())],
            "kubeconfig",
        ),
        (
            "kubeconfig with a bad field",
            vec![("INPUT_KUBECONFIG", "apiVersion: v1\nclusters: 7\n".into())],
            "kubeconfig",
        ),
        ("unknown context", vec![("INPUT_CONTEXT", "nope".into())], "context"),
        ("PEM that is not X.509", vec![("INPUT_REGISTRY-CA", bad_pem)], "registry-ca"),
        (
            "CA file missing",
            vec![("INPUT_REGISTRY-CA", "/nonexistent/ca.pem".into())],
            "registry-ca",
        ),
        (
            "user without password",
            vec![("INPUT_REGISTRY-USERNAME", "bob".into())],
            "registry-password",
        ),
        (
            "password without user",
            vec![("INPUT_REGISTRY-PASSWORD", "pw".into())],
            "registry-username",
        ),
        ("boolean 2", vec![("INPUT_INSECURE-REGISTRY", "2".into())], "insecure-registry"),
        ("boolean maybe", vec![("INPUT_WAIT", "maybe".into())], "wait"),
        ("boolean ja", vec![("INPUT_FAIL-FAST", "ja".into())], "fail-fast"),
        ("boolean typo", vec![("INPUT_DRY-RUN", "tru".into())], "dry-run"),
        (
            "boolean phrase",
            vec![("INPUT_ROLLBACK-ON-FAILURE", "yes please".into())],
            "rollback-on-failure",
        ),
        ("duration unit", vec![("INPUT_TAG-TIMEOUT", "5x".into())], "tag-timeout"),
        ("negative duration", vec![("INPUT_TAG-TIMEOUT", "-5s".into())], "tag-timeout"),
        ("zero timeout", vec![("INPUT_TIMEOUT", "0".into())], "timeout"),
        ("unit missing at the end", vec![("INPUT_TIMEOUT", "1h30".into())], "timeout"),
        ("overflowing duration", vec![("INPUT_TIMEOUT", "99999999999999999999".into())], "timeout"),
        ("negative restarts", vec![("INPUT_MAX-RESTARTS", "-1".into())], "max-restarts"),
        ("restarts in words", vec![("INPUT_MAX-RESTARTS", "two".into())], "max-restarts"),
        (
            "conflicting variables",
            vec![("INPUT_TIMEOUT", "5m".into()), ("KUBESHIP_TIMEOUT", "10m".into())],
            "timeout",
        ),
        (
            "conflicting runner forms",
            vec![("INPUT_TAG-TIMEOUT", "30s".into()), ("INPUT_TAG_TIMEOUT", "60s".into())],
            "tag-timeout",
        ),
    ];
    assert!(cases.len() >= 40);
    let (sim, dir) = cluster_running("127.0.0.1:9/acme/api:v0");
    let kubeconfig = dir.path().join("kubeconfig");
    let mut failures = Vec::new();
    for (what, vars, input) in &cases {
        sim.clear_requests();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kubeship"));
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("KUBECONFIG", &kubeconfig)
            .env("INPUT_IMAGE", IMAGE)
            .env("INPUT_DEPLOYMENT", "api")
            .env("INPUT_INSECURE-REGISTRY", "true")
            .env("INPUT_TAG-TIMEOUT", "1s");
        for (k, v) in vars {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
        let requests = sim.requests();
        if output.status.code() != Some(2) || !first.contains(input) || !requests.is_empty() {
            failures.push(format!(
                "{what}: exit {:?}, {} request(s), {stderr}",
                output.status.code(),
                requests.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// An input error under GitHub Actions is still reported: an `::error::` annotation, the
/// outputs with `status=failed`, the error in the step summary, the result JSON on stdout.
#[test]
fn input_errors_are_reported_to_github() {
    let dir = tempfile::tempdir().unwrap();
    let (output_file, summary_file) = (dir.path().join("output"), dir.path().join("summary"));
    let output = super::support::kubeship(&[
        ("INPUT_IMAGE", IMAGE),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_TIMEOUT", "soon"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_OUTPUT", output_file.to_str().unwrap()),
        ("GITHUB_STEP_SUMMARY", summary_file.to_str().unwrap()),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .starts_with("::error title=kubeship%3A invalid input or configuration::input timeout"),
        "{stderr}"
    );
    let outputs = crate::world::parse_outputs(&std::fs::read_to_string(&output_file).unwrap());
    assert_eq!(outputs["status"], "failed");
    let summary = std::fs::read_to_string(&summary_file).unwrap();
    assert!(summary.contains("**Error:**\n\n```text\ninput timeout (INPUT_TIMEOUT)"), "{summary}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["status"], "failed");
}
