//! Digest resolution, timed against `skopeo inspect --raw` on the same local registry.
//!
//! Run with `cargo bench --bench resolve`. Prints a Markdown table and writes it to
//! `target/bench/resolve.md`. Both tools are timed as processes (what a CI step pays), and
//! kubeship also in-process (the resolution alone, without process start-up). The binary's
//! kubeconfig names a closed port, so its run ends right after the resolution, when it first
//! asks the cluster for the target (connection refused, exit 4).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use kubeship::registry::{self, Credentials, ImageRef};
use kubeship_testkit::push::Kind;
use kubeship_testkit::{Registry, Setup, TokenServer, certs};

const RUNS: usize = 50;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median of each of `jobs`, run in turns (one of each, `runs` times over) after one
/// warm-up each: on a shared machine a slow spell then falls on every tool alike, and the
/// ratios hold better than with one tool's runs after the other's.
fn time_in_turns(runs: usize, jobs: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    for job in jobs.iter_mut() {
        job(); // page cache, the registry's first-request work
    }
    let mut samples = vec![Vec::with_capacity(runs); jobs.len()];
    for _ in 0..runs {
        for (job, samples) in jobs.iter_mut().zip(&mut samples) {
            let started = Instant::now();
            job();
            samples.push(started.elapsed());
        }
    }
    samples.into_iter().map(median).collect()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let registry = Registry::start(Setup::Anonymous).unwrap();
    registry.pusher().unwrap().image("bench/app", "v1", Kind::OciIndex, "bench").unwrap();
    let image = format!("{}/bench/app:v1", registry.host);
    let expected = registry.stored_digest("bench/app", "v1").unwrap();

    let mut skopeo = || {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{image}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // With the cluster's CA, as kubeconfigs have it: without one, kube-client loads the OS
    // trust store (every file in /etc/ssl/certs), a cost that is not the resolution's.
    let ca = std::fs::read(certs::server(dir.path()).unwrap().ca_pem).unwrap();
    let ca = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca);
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: closed\n  cluster:\n    server: https://127.0.0.1:9\n\
             \x20   certificate-authority-data: {ca}\n\
             contexts:\n- name: closed\n  context:\n    cluster: closed\n    user: none\n\
             current-context: closed\nusers:\n- name: none\n  user: {{}}\n"
        ),
    )
    .unwrap();
    // The binary as cargo builds it, and the static one the image ships (scripts/bench builds
    // it): a static binary has no dynamic loader to run, which is a sixth of a run's time.
    let dynamic = std::path::PathBuf::from(env!("CARGO_BIN_EXE_kubeship"));
    let shipped = std::env::var_os("KUBESHIP_STATIC_BINARY").map(std::path::PathBuf::from);
    let run_binary = |binary: std::path::PathBuf, kubeconfig: std::path::PathBuf| {
        let (image, expected) = (image.clone(), expected.clone());
        move || {
            let out = Command::new(&binary)
                .env_clear()
                .env("KUBECONFIG", &kubeconfig)
                .env("INPUT_IMAGE", &image)
                .env("INPUT_DEPLOYMENT", "bench")
                .env("INPUT_INSECURE-REGISTRY", "true")
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
            assert!(String::from_utf8_lossy(&out.stdout).contains(&expected));
        }
    };
    // Without a CA, on a plain-HTTP server: no trust store should be read for it.
    let plain = dir.path().join("kubeconfig-http");
    std::fs::write(
        &plain,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: closed\n  cluster:\n    server: http://127.0.0.1:9\n\
         contexts:\n- name: closed\n  context:\n    cluster: closed\n    user: none\n\
         current-context: closed\nusers:\n- name: none\n  user: {}\n",
    )
    .unwrap();
    let mut binary = run_binary(dynamic.clone(), kubeconfig.clone());
    let mut binary_no_ca = run_binary(dynamic, plain.clone());
    let mut jobs: Vec<&mut dyn FnMut()> = vec![&mut skopeo, &mut binary, &mut binary_no_ca];
    let (mut shipped_ca, mut shipped_no_ca);
    if let Some(shipped) = &shipped {
        shipped_ca = run_binary(shipped.clone(), kubeconfig);
        shipped_no_ca = run_binary(shipped.clone(), plain);
        jobs.extend([&mut shipped_ca as &mut dyn FnMut(), &mut shipped_no_ca]);
    }
    let medians = time_in_turns(RUNS, &mut jobs);
    let (skopeo, binary, binary_no_ca) = (medians[0], medians[1], medians[2]);
    let static_figures = medians.get(3..5).map(|m| (m[0], m[1]));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let reference = ImageRef::parse(&image).unwrap();
    let options = registry::Options {
        insecure: true,
        extra_ca: Vec::new(),
        tag_timeout: Duration::from_secs(10),
    };
    let in_process = time_in_turns(
        RUNS,
        &mut [&mut || {
            let resolved = runtime
                .block_on(registry::resolve(&reference, None, Credentials::anonymous(), &options))
                .unwrap();
            assert_eq!(resolved.digest, expected);
        }],
    )[0];

    // Requests per resolution with token auth: what the registry and token service received.
    let tokens = TokenServer::start(certs::signing(dir.path()).unwrap()).unwrap();
    let token_registry = Registry::start(Setup::Token(&tokens)).unwrap();
    token_registry.pusher().unwrap().image("bench/app", "v1", Kind::OciIndex, "bench").unwrap();
    token_registry.clear_requests();
    let before = tokens.requests().len();
    let token_image = ImageRef::parse(&format!("{}/bench/app:v1", token_registry.host)).unwrap();
    runtime
        .block_on(registry::resolve(&token_image, None, Credentials::anonymous(), &options))
        .unwrap();
    let received = token_registry.requests();
    let heads = received.iter().filter(|r| r.method == "HEAD").count();
    let gets =
        received.iter().filter(|r| r.method == "GET" && r.path.contains("/manifests/")).count();
    let token_requests = tokens.requests().len() - before;

    let ratio = |d: Duration| format!("{:.2}", d.as_secs_f64() / skopeo.as_secs_f64());
    let mut table = format!(
        "| digest resolution, local registry, median of {RUNS} runs in turns | time | / skopeo (target ≤ 0.30) |\n\
         |---|---|---|\n\
         | `skopeo inspect --raw` (process) | {} | |\n\
         | `kubeship`, cargo's build (process, up to its first cluster request) | {} | {} |\n\
         | `kubeship`, cargo's build, kubeconfig without a CA (`http://` server) | {} | {} |\n",
        ms(skopeo),
        ms(binary),
        ratio(binary),
        ms(binary_no_ca),
        ratio(binary_no_ca),
    );
    match static_figures {
        Some((with_ca, without)) => table.push_str(&format!(
            "| `kubeship`, the static binary the image ships | {} | {} |\n\
             | `kubeship`, the static binary, kubeconfig without a CA | {} | {} |\n",
            ms(with_ca),
            ratio(with_ca),
            ms(without),
            ratio(without),
        )),
        None => table.push_str(
            "| `kubeship`, the static binary the image ships | not measured (set KUBESHIP_STATIC_BINARY; scripts/bench does) | |\n",
        ),
    }
    table.push_str(&format!(
        "| kubeship `registry::resolve` (in process) | {} | {} |\n\n\
         | requests for one resolution with token auth | count |\n|---|---|\n\
         | manifest HEAD | {heads} |\n| manifest GET | {gets} |\n| token | {token_requests} |\n\
         | registry total (incl. the `/v2/` version check) | {} |\n",
        ms(in_process),
        ratio(in_process),
        received.len()
    ));
    print!("{table}");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("resolve.md"), &table).unwrap();
}
