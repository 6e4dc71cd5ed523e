//! TLS roots without an OS trust store (the scratch image has none): a kubeconfig without a CA
//! is trusted with the public roots compiled into kubeship, so no file in /etc/ssl is needed
//! (nor read on every run).

use std::process::Command;

/// With the OS trust store pointed at nothing, a kubeconfig without a CA still gives a client:
/// the run gets as far as the registry (exit 3 for a closed port), not a configuration error.
#[test]
fn no_os_trust_store_needed() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:9\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n",
    )
    .unwrap();
    let empty = dir.path().join("no-certs");
    std::fs::create_dir(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubeship"))
        .env_clear()
        .env("KUBECONFIG", &kubeconfig)
        .env("SSL_CERT_FILE", empty.join("none.pem"))
        .env("SSL_CERT_DIR", &empty)
        .env("INPUT_IMAGE", "127.0.0.1:1/acme/api:v1")
        .env("INPUT_DEPLOYMENT", "api")
        .env("INPUT_INSECURE-REGISTRY", "true")
        .env("INPUT_TAG-TIMEOUT", "1s")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
}
