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

/// A simulated cluster whose Deployment `api` runs `image`, and a kubeconfig for it; for
/// tests of the registry stage that run the whole binary (with `dry-run`).
pub fn cluster_running(image: &str) -> (kubesim::Simulator, tempfile::TempDir) {
    let sim = kubesim::Simulator::start(kubesim::Options {
        manual_clock: true,
        ..kubesim::Options::default()
    })
    .expect("simulator");
    let deployment = serde_json::json!({"metadata": {"name": "api", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "app", "image": image}]}}}});
    sim.create(&kubesim::resources::DEPLOYMENTS, deployment).expect("deployment");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("kubeconfig"), sim.kubeconfig(None)).expect("kubeconfig");
    (sim, dir)
}
