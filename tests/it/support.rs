//! Helpers shared by the integration tests.

use std::process::{Command, Output};
use std::time::Duration;

use kubeship::registry::{self, Credentials, ImageRef, Resolved};

/// Runs a future on a fresh runtime: tests are plain `#[test]` so the blocking test kit never
/// runs inside an async context.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Options for a plain-HTTP test registry.
pub fn http_options(tag_timeout: Duration) -> registry::Options {
    registry::Options { insecure: true, extra_ca: Vec::new(), tag_timeout }
}

/// Resolves `image` with `credentials` and `options`.
pub fn resolve(
    image: &str,
    expected: Option<&str>,
    credentials: Credentials,
    options: &registry::Options,
) -> Result<Resolved, registry::Error> {
    let image = ImageRef::parse(image).expect("test image reference");
    block_on(registry::resolve(&image, expected, credentials, options))
}

/// Runs the kubeship binary with exactly `vars` as its environment (plus a minimal PATH).
pub fn kubeship(vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubeship"));
    command.env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().expect("kubeship runs")
}

/// Standard error as text, for assertions.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits (up to 20 s) until `condition` holds, polling every 5 ms.
pub fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(20), "waited 20s for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A simulated cluster whose Deployment `api` runs `image`, and a kubeconfig for it; for
/// tests of the registry stage that run the whole binary (with `dry-run`). The image's
/// registry is reached over plain HTTP, as the test kit's registries and proxies serve (a
/// kubelet trying HTTPS against one waits out its timeout); the pod's pull has finished when
/// this returns, so it takes no proxy rule meant for kubeship.
pub fn cluster_running(image: &str) -> (kubesim::Simulator, tempfile::TempDir) {
    cluster_with(
        image,
        kubesim::Options {
            insecure_registries: vec![image.split('/').next().unwrap_or_default().to_owned()],
            ..kubesim::Options::default()
        },
    )
}

/// [`cluster_running`] for an image on an HTTPS registry whose CA is `ca_pem`.
pub fn cluster_running_tls(image: &str, ca_pem: &str) -> (kubesim::Simulator, tempfile::TempDir) {
    cluster_with(
        image,
        kubesim::Options { registry_ca: Some(ca_pem.to_owned()), ..kubesim::Options::default() },
    )
}

fn cluster_with(image: &str, options: kubesim::Options) -> (kubesim::Simulator, tempfile::TempDir) {
    let sim = kubesim::Simulator::start(kubesim::Options { manual_clock: true, ..options })
        .expect("simulator");
    let deployment = serde_json::json!({"metadata": {"name": "api", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "app", "image": image}]}}}});
    sim.create(&kubesim::resources::DEPLOYMENTS, deployment).expect("deployment");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("kubeconfig"), sim.kubeconfig(None)).expect("kubeconfig");
    (sim, dir)
}
