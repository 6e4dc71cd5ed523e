//! A world that does not answer: an API server that accepts connections and never replies,
//! and one that stops replying in the middle of the wait. Every stage ends within the
//! run's timeout plus a few seconds, with its outputs written.

use std::time::{Duration, Instant};

use kubeship_testkit::gate::{Silent, TcpGate};
use kubesim::Behaviour;

use crate::world::{World, on_both};

/// The kubeconfig of `w`, pointed at `address` instead of its API server.
fn kubeconfig_via(w: &World, address: std::net::SocketAddr) -> String {
    w.kubeconfig().replace(&w.url(), &format!("https://{address}"))
}

/// A listener that accepts and never answers: exit 4 within timeout + 5 s, the request it
/// hung on named, and the outputs written (status failed, the JSON line last).
#[test]
fn a_silent_api_server_ends_within_the_timeout() {
    let w = World::kubesim();
    let silent = Silent::start().unwrap();
    let started = Instant::now();
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &kubeconfig_via(&w, silent.address)),
        ("INPUT_TIMEOUT", "4s"),
    ]);
    let took = started.elapsed();
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(took < Duration::from_secs(4 + 5), "{took:?}");
    assert!(
        run.stderr.contains("did not answer the request to get deployment/api in prod"),
        "{}",
        run.stderr
    );
    assert_eq!(run.outputs["status"], "failed");
    assert_eq!(run.result["status"], "failed");
    assert_eq!(run.result["digest"], w.v2.as_str(), "the registry stage's facts are kept");
}

on_both!(
    /// The API server stops answering once the wait has begun (connections open, no bytes):
    /// the run ends at its deadline as timed-out, diagnostics bounded, within timeout + 5 s.
    an_api_server_that_stops_answering_mid_wait,
    |w| {
        w.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
        let upstream = w.url().trim_start_matches("https://").parse().unwrap();
        let gate = TcpGate::start(upstream).unwrap();
        let config = w.kubeconfig().replace(&w.url(), &format!("https://{}", gate.address));
        let started = Instant::now();
        let child = w.spawn_waiting(&[("INPUT_KUBECONFIG", &config), ("INPUT_TIMEOUT", "6s")]);
        gate.freeze();
        let run = child.finish(w);
        let took = started.elapsed();
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert_eq!(run.outputs["status"], "timed-out");
        assert!(took < Duration::from_secs(6 + 5), "{took:?}");
        // The diagnostics say they are missing rather than showing nothing.
        assert!(run.stderr.contains("the pods could not be listed within 4s"), "{}", run.stderr);
    }
);

/// An installed exec plugin that never answers (a login prompt): exit 4 within the timeout,
/// outputs written, a message that says why; a SIGTERM meanwhile ends the run at once; a
/// registry failure while it waits ends the run with the registry's error. Whichever way the
/// run ends, the plugin and what it started do not outlive it.
#[test]
fn a_hanging_exec_plugin_is_given_up_on() {
    let w = World::kubesim();
    let plugin = w.dir.path().join("login-prompt");
    std::fs::write(
        &plugin,
        "#!/bin/sh\necho 'open https://login.example/device and enter ABCD' >&2\n\
         sh -c 'echo $$ > \"$0.grandchild\"; exec sleep 120' \"$0\" &\necho $$ > \"$0.pid\"\nwait\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = w.kubeconfig().replace(
        &format!("    token: {}\n", crate::world::TOKEN),
        &format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
            plugin.display()
        ),
    );
    let pid_files = ["login-prompt.pid", "login-prompt.grandchild"].map(|f| w.dir.path().join(f));
    let forget = || pid_files.iter().for_each(|f| drop(std::fs::remove_file(f)));
    let assert_gone = |after: &str| {
        for file in &pid_files {
            let pid = std::fs::read_to_string(file)
                .unwrap_or_else(|e| panic!("{after}: the plugin did not start ({e})"));
            let stat = format!("/proc/{}/stat", pid.trim());
            let gone = || std::fs::read_to_string(&stat).map_or(true, |s| s.contains(") Z "));
            let waited = Instant::now();
            while !gone() && waited.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(gone(), "{after}: {} ({}) is still running", file.display(), pid.trim());
        }
    };

    forget();
    let started = Instant::now();
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &config),
        ("INPUT_TIMEOUT", "4s"),
    ]);
    assert!(started.elapsed() < Duration::from_secs(4 + 5), "{:?}", started.elapsed());
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(run.stderr.contains("exec plugin gave no credentials within 4s"), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "failed");
    assert_gone("given up on");

    forget();
    let child = w.spawn(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &config),
        ("INPUT_TIMEOUT", "60s"),
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    child.signal("-TERM");
    let run = child.finish(&w);
    assert!(sent.elapsed() < Duration::from_secs(3), "{:?}", sent.elapsed());
    assert_eq!(run.code, Some(143), "{}", run.stderr);
    assert_gone("SIGTERM");

    // The registry fails while the plugin still runs: a tag that never appears.
    forget();
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("never-pushed")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &config),
        ("INPUT_TIMEOUT", "60s"),
        ("INPUT_TAG-TIMEOUT", "1s"),
    ]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_gone("a registry failure");
}
