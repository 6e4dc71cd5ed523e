//! End to end: the kubeship binary, a real registry, and a cluster. The scenario table runs
//! every scenario on kubesim and on the real control plane with the same assertions
//! ([`on_both!`]); each checks kubeship's verdict against the cluster's own state, and where
//! `kubectl rollout status` reaches a verdict, that it is the same. The kubesim-only tests at
//! the end inject what a real API server cannot be made to do on demand.

use std::time::{Duration, Instant};

use kubesim::{Behaviour, resources};
use serde_json::{Value, json};

use crate::world::{Run, Setup, TOKEN, World, on_both};

/// The pods of Deployment `name` that the cluster reports Ready, with their first container's
/// image and imageID.
fn ready_pods(w: &World, name: &str) -> Vec<(String, String)> {
    w.list(&resources::PODS)
        .into_iter()
        .filter(|p| {
            p["metadata"]["labels"]["app"] == name && p["metadata"]["deletionTimestamp"].is_null()
        })
        .filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
        .map(|p| {
            let status = &p["status"]["containerStatuses"][0];
            (
                p["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_owned(),
                status["imageID"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The Deployment's rollout is over on the cluster: every replica updated, Ready and
/// running `image`, no old pod left.
fn cluster_runs(w: &World, name: &str, image: &str, replicas: usize) {
    w.until(&format!("{name} runs {image} on the cluster"), || {
        let pods = ready_pods(w, name);
        (pods.len() == replicas && pods.iter().all(|(i, _)| i == image)).then_some(())
    });
}

/// kubectl's `rollout status` on the same target ends the same way: success with the same
/// message, or an error.
fn kubectl_agrees(w: &World, run: &Run, target: &str) {
    let (code, text) = w.kubectl_rollout_status(target, "30s");
    let ours = run.message();
    match run.result["targets"][0]["status"].as_str() {
        Some("succeeded") => {
            assert_eq!(code, Some(0), "kubectl: {text}");
            assert!(text.ends_with(&format!("{ours}\n")), "kubectl: {text} kubeship: {ours}");
        }
        _ => assert_eq!(code, Some(1), "kubectl reached another verdict: {text}"),
    }
}

/// A short progress deadline on `name`, so that kubectl reaches its verdict too.
fn progress_deadline(w: &World, name: &str, seconds: u32) {
    w.merge_patch(
        &resources::DEPLOYMENTS,
        name,
        json!({"spec": {"progressDeadlineSeconds": seconds}}),
    );
}

on_both!(
    /// A good rollout: the digest pinned on the matching container only, with field manager
    /// kubeship after one dry run, kubectl's success, the outputs of the contract, and pods
    /// on the cluster running what the registry serves.
    good_rollout_pins_the_digest,
    |w| {
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api")]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.result["status"], "succeeded");
        assert_eq!(run.result["digest"], w.v2.as_str());
        let target = &run.result["targets"][0];
        assert_eq!(
            (target["kind"].as_str(), target["namespace"].as_str(), target["name"].as_str()),
            (Some("Deployment"), Some(w.namespace.as_str()), Some("api"))
        );
        assert_eq!(target["message"], "deployment \"api\" successfully rolled out");
        assert_eq!(
            target["containers"],
            json!([{"name": "app", "previous_image": w.image("v1"), "image": w.pinned(&w.v2)}])
        );
        let d = w.get(&resources::DEPLOYMENTS, "api").unwrap();
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], w.pinned(&w.v2).as_str());
        assert_eq!(d["spec"]["template"]["spec"]["containers"][1]["image"], "envoy:1");
        assert_eq!(
            d["metadata"]["annotations"]["kubernetes.io/change-cause"],
            format!("kubeship: {}", w.pinned(&w.v2))
        );
        let all = w.all_patches();
        assert_eq!(all.len(), 2, "one dry run, one patch: {all:?}");
        assert_eq!(all[0].query.get("dryRun").map(String::as_str), Some("All"));
        for patch in &all {
            assert_eq!(patch.query.get("fieldManager").map(String::as_str), Some("kubeship"));
            let agent = patch.user_agent.as_deref().unwrap_or_default();
            assert!(agent.starts_with("kubeship/"), "User-Agent {agent:?}");
            if let Some(content_type) = &patch.content_type {
                assert_eq!(content_type, "application/strategic-merge-patch+json");
            }
        }
        assert_eq!(run.outputs["status"], "succeeded");
        assert_eq!(run.outputs["changed"], "true");
        assert_eq!(run.outputs["digest"], w.v2);
        assert_eq!(run.outputs["image"], w.pinned(&w.v2));
        assert_eq!(run.outputs["previous-image"], w.image("v1"));
        assert_eq!(run.outputs["revision"], "2");
        assert_eq!(run.outputs["ready-replicas"], "2");
        let result: Value = serde_json::from_str(&run.outputs["result"]).unwrap();
        assert_eq!(result, run.result);
        // The cluster's truth: every Ready pod runs the pin and reports it as its image ID.
        cluster_runs(w, "api", &w.pinned(&w.v2), 2);
        let pods = ready_pods(w, "api");
        assert!(pods.iter().all(|(_, id)| id.ends_with(&w.v2)), "{pods:?}");
        assert_eq!(target["image_ids"], json!([w.pinned(&w.v2)]));
        kubectl_agrees(w, &run, "deployment/api");
    }
);

on_both!(
    /// Already at the digest: nothing is patched (not even a dry run), changed=false, success.
    already_pinned_is_a_no_op,
    |w| {
        w.deployment("web", &w.pinned(&w.v1), 1);
        let run = w.run(&[("INPUT_IMAGE", &w.image("v1")), ("INPUT_DEPLOYMENT", "web")]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(
            (run.outputs["changed"].as_str(), run.outputs["status"].as_str()),
            ("false", "succeeded")
        );
        assert!(w.all_patches().is_empty());
        kubectl_agrees(w, &run, "deployment/web");
    }
);

on_both!(
    /// A container that does not exist: exit 2, its containers listed, nothing sent.
    unknown_container_changes_nothing,
    |w| {
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_CONTAINER", "nope"),
        ]);
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert!(
            run.stderr.contains("has no container \"nope\"") && run.stderr.contains("proxy (envoy:1)"),
            "{}",
            run.stderr
        );
        assert!(w.all_patches().is_empty());
        assert_eq!(w.container_image("api"), w.image("v1"));
    }
);

on_both!(
    /// Missing targets: exit 4 naming every one of them, before any write.
    missing_targets_are_all_named,
    |w| {
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api,sts/db,ds/agent")]);
        assert_eq!(run.code, Some(4), "{}", run.stderr);
        let expected = format!("statefulset/db, daemonset/agent not found in namespace {}", w.namespace);
        assert!(run.stderr.contains(&expected), "{}", run.stderr);
        assert!(w.all_patches().is_empty());
        assert_eq!(w.container_image("api"), w.image("v1"));
    }
);

on_both!(
    /// dry-run: the patch is sent with dryRun=All only, nothing changes, and the report says
    /// so (changed=false, no new revision, the real replica count); wait=false: applied, with
    /// the revision the patch made and the real counts, not those from before the patch.
    dry_run_and_no_wait,
    |w| {
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_DRY-RUN", "true"),
        ]);
        assert_eq!((run.code, run.outputs["status"].as_str()), (Some(0), "dry-run"), "{}", run.stderr);
        let patches = w.all_patches();
        assert_eq!(patches.len(), 1);
        assert_eq!(patches[0].query.get("dryRun").map(String::as_str), Some("All"));
        assert_eq!(w.container_image("api"), w.image("v1"));
        let target = &run.result["targets"][0];
        assert_eq!((target["status"].as_str(), target["changed"].as_bool()), (Some("dry-run"), Some(false)));
        assert_eq!((run.outputs["changed"].as_str(), run.outputs["revision"].as_str()), ("false", ""));
        assert_eq!(target["replicas"], 2);
        assert_eq!(target["containers"][0]["image"], w.pinned(&w.v2).as_str(), "what would change");

        let run = w.run(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_WAIT", "false"),
        ]);
        assert_eq!((run.code, run.outputs["status"].as_str()), (Some(0), "applied"), "{}", run.stderr);
        assert_eq!(w.container_image("api"), w.pinned(&w.v2));
        let d = w.get(&resources::DEPLOYMENTS, "api").unwrap();
        let revision = d["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str().unwrap();
        assert_eq!(run.outputs["revision"], revision, "the revision the patch made");
        assert_eq!(revision, "2");
        assert_eq!(run.result["targets"][0]["replicas"], 2);
    }
);

on_both!(
    /// Pods that never get ready: the progress deadline fails the run with kubectl's words,
    /// as soon as the controller says so, and kubectl agrees.
    progress_deadline_fails_the_run,
    |w| {
        w.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
        progress_deadline(w, "api", 3);
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api"), ("INPUT_TIMEOUT", "2m")]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert_eq!(run.outputs["status"], "failed");
        assert_eq!(run.message(), "deployment \"api\" exceeded its progress deadline");
        let d = w.get(&resources::DEPLOYMENTS, "api").unwrap();
        let progressing = d["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").cloned();
        assert_eq!(progressing.unwrap()["reason"], "ProgressDeadlineExceeded");
        kubectl_agrees(w, &run, "deployment/api");
    }
);

on_both!(
    /// The run's own deadline: timed-out, exit 1, the last waiting message kept; kubectl with
    /// the same timeout does not succeed either.
    timeout_is_timed_out,
    |w| {
        w.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api"), ("INPUT_TIMEOUT", "3s")]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert_eq!(run.outputs["status"], "timed-out");
        let message = run.message();
        assert!(message.starts_with("deployment/api did not finish rolling out within"), "{message}");
        assert!(message.contains("Waiting for deployment \"api\" rollout to finish"), "{message}");
        assert!(ready_pods(w, "api").iter().all(|(i, _)| *i == w.image("v1")), "no new pod is Ready");
        let (code, text) = w.kubectl_rollout_status("deployment/api", "3s");
        assert_eq!(code, Some(1), "{text}");
    }
);

on_both!(
    /// The new pods cannot pull the image: the run fails on the pull error within seconds,
    /// where kubectl sits out the progress deadline (shortened here so it gets there).
    image_pull_failure_fails_fast,
    Setup { unreachable_registry: true },
    |w| {
        progress_deadline(w, "api", 10);
        let started = Instant::now();
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api"), ("INPUT_CONTAINER", "app")]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
        assert_eq!(run.outputs["status"], "failed");
        let message = run.message();
        assert!(message.contains("ImagePullBackOff") || message.contains("ErrImagePull"), "{message}");
        assert!(message.starts_with("deployment/api: pod api-") && message.contains("imagePullSecrets"), "{message}");
        // The cluster's truth: a pod of the new revision waits on its pull.
        let pulling = w.list(&resources::PODS).into_iter().any(|p| {
            let reason = &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
            p["spec"]["containers"][0]["image"] == w.pinned(&w.v2).as_str()
                && (reason == "ErrImagePull" || reason == "ImagePullBackOff")
        });
        assert!(pulling, "no pod of the new revision is stuck pulling");
        kubectl_agrees(w, &run, "deployment/api");
    }
);

on_both!(
    /// A crash loop with OOMKilled: the run fails with the termination's reason and exit
    /// code, and shows the previous run's last log lines; kubectl agrees (after its deadline).
    crash_loop_fails_fast_with_the_cause,
    |w| {
        let crash = Some((Duration::from_secs(1), "OOMKilled".to_owned(), 137));
        // Crashing a second after start, before its readiness delay: it never becomes ready.
        let logs = vec!["starting".to_owned(), "allocating cache".to_owned(), "out of memory".to_owned()];
        w.script(
            &w.pinned(&w.v2),
            Behaviour { crash, ready_delay: Duration::from_secs(30), logs, ..Behaviour::default() },
        );
        progress_deadline(w, "api", 15);
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api"), ("INPUT_TIMEOUT", "60s")]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let message = run.message();
        assert!(message.contains("keeps crashing") && message.contains("OOMKilled (exit code 137)"), "{message}");
        assert!(run.stderr.contains("last log lines of app (previous run):"), "{}", run.stderr);
        assert!(run.stderr.contains("    out of memory"), "{}", run.stderr);
        let crashed = w.list(&resources::PODS).into_iter().any(|p| {
            let status = &p["status"]["containerStatuses"][0];
            p["spec"]["containers"][0]["image"] == w.pinned(&w.v2).as_str()
                && status["lastState"]["terminated"]["reason"] == "OOMKilled"
                && status["lastState"]["terminated"]["exitCode"] == 137
        });
        assert!(crashed, "no pod of the new revision was OOMKilled");
        kubectl_agrees(w, &run, "deployment/api");
    }
);

on_both!(
    /// Restarts above max-restarts fail the run even while the container runs (it passes its
    /// readiness check, then exits; minReadySeconds keeps the rollout open meanwhile).
    restarts_above_the_limit_fail,
    |w| {
        w.merge_patch(&resources::DEPLOYMENTS, "api", json!({"spec": {"minReadySeconds": 30}}));
        // Ready at once, then exits with code 1 every second.
        let crash = Some((Duration::from_secs(1), "Error".to_owned(), 1));
        w.script(&w.pinned(&w.v2), Behaviour { crash, ready_delay: Duration::ZERO, ..Behaviour::default() });
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_MAX-RESTARTS", "0"),
            ("INPUT_TIMEOUT", "60s"),
        ]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let message = run.message();
        assert!(message.contains("keeps crashing") && message.contains("Error (exit code 1)"), "{message}");
    }
);

on_both!(
    /// A configuration error fails at once, with the pod's event under it; with fail-fast off
    /// the run waits for its deadline.
    config_error_and_fail_fast_off,
    |w| {
        let config_error = Some("secret \"db\" not found".to_owned());
        w.script(&w.pinned(&w.v2), Behaviour { config_error, ..Behaviour::default() });
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api"), ("INPUT_TIMEOUT", "60s")]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let message = run.message();
        assert!(message.contains("CreateContainerConfigError: secret \"db\" not found"), "{message}");
        assert!(run.stderr.contains("event Failed: Error: secret \"db\" not found"), "{}", run.stderr);
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_TIMEOUT", "3s"),
            ("INPUT_FAIL-FAST", "false"),
        ]);
        assert_eq!(run.outputs["status"], "timed-out", "{}", run.stderr);
    }
);

on_both!(
    /// Pods the ReplicaSet cannot create (an admission policy refuses them): ReplicaFailure
    /// ends the run at once with the reason.
    pods_that_cannot_be_created_fail,
    |w| {
        let create_error = Some("pods of this image are not allowed here".to_owned());
        w.script(&w.pinned(&w.v2), Behaviour { create_error, ..Behaviour::default() });
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api"), ("INPUT_TIMEOUT", "60s")]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let message = run.message();
        assert!(message.contains("cannot create its pods (FailedCreate)"), "{message}");
        assert!(message.contains("not allowed here"), "{message}");
    }
);

on_both!(
    /// A paused Deployment: kubeship fails at once and says how to resume; kubectl waits.
    paused_deployment_fails_fast,
    |w| {
        w.merge_patch(&resources::DEPLOYMENTS, "api", json!({"spec": {"paused": true}}));
        let started = Instant::now();
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api"), ("INPUT_TIMEOUT", "60s")]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(started.elapsed() < Duration::from_secs(10));
        let message = run.message();
        assert!(message.contains("is paused") && message.contains("kubectl rollout resume deployment/api"), "{message}");
        assert!(ready_pods(w, "api").iter().all(|(i, _)| *i == w.image("v1")), "nothing rolled");
    }
);

on_both!(
    /// SIGTERM (a cancelled CI job) while waiting: stop within 2 s, report the state with
    /// status=cancelled, exit 143; SIGINT exits 130.
    interrupted_while_waiting,
    |w| {
        w.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
        for (signal, code) in [("-TERM", 143), ("-INT", 130)] {
            let child = w.spawn_waiting(&[("INPUT_TIMEOUT", "5m")]);
            let sent = Instant::now();
            child.signal(signal);
            let run = child.finish(w);
            assert!(sent.elapsed() < Duration::from_secs(2), "{:?}", sent.elapsed());
            assert_eq!(run.code, Some(code), "{}", run.stderr);
            assert_eq!(run.outputs["status"], "cancelled");
            assert_eq!(run.result["targets"][0]["status"], "cancelled");
            assert!(run.message().starts_with("interrupted while waiting for deployment/api"), "{}", run.message());
        }
    }
);

on_both!(
    /// Three targets, one failing: with rollback-on-failure every changed target gets its
    /// previous images back, the cluster runs them again, and the run reports rolled-back.
    rollback_on_failure_restores_every_target,
    |w| {
        w.deployment("worker", &w.image("v1"), 1);
        w.deployment("web", &w.image("v1"), 1);
        let config_error = Some("secret \"web-tls\" not found".to_owned());
        let behaviour = Behaviour { config_error, ..Behaviour::default() };
        match &w.backend {
            crate::world::Backend::Sim(sim) => sim.script_template(("app", "web"), &w.pinned(&w.v2), behaviour),
            crate::world::Backend::Real(plane) => plane.script_template(("app", "web"), &w.pinned(&w.v2), behaviour),
        }
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api,worker,web"),
            ("INPUT_ROLLBACK-ON-FAILURE", "true"),
            ("INPUT_TIMEOUT", "60s"),
        ]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert_eq!(run.outputs["status"], "rolled-back");
        let statuses: Vec<&str> =
            run.result["targets"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["rolled-back", "rolled-back", "rolled-back"]);
        let web = run.result["targets"][2]["message"].as_str().unwrap();
        assert!(web.contains("CreateContainerConfigError") && web.contains("rolled back"), "{web}");
        for (name, replicas) in [("api", 2), ("worker", 1), ("web", 1)] {
            assert_eq!(w.container_image(name), w.image("v1"), "{name}");
            cluster_runs(w, name, &w.image("v1"), replicas);
        }
        // Two patches per target: the pin and the way back, each with field manager kubeship.
        let patches = w.patches();
        assert_eq!(patches.len(), 6);
        assert!(patches.iter().all(|p| p.query.get("fieldManager").map(String::as_str) == Some("kubeship")));
    }
);

on_both!(
    /// The target deleted mid-rollout: failed, saying so.
    deleted_target_fails,
    |w| {
        w.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
        let child = w.spawn_waiting(&[("INPUT_TIMEOUT", "30s")]);
        w.delete(&resources::DEPLOYMENTS, "api");
        let run = child.finish(w);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.message().contains("was deleted during the rollout"), "{}", run.result);
    }
);

on_both!(
    /// StatefulSet with a partition, a DaemonSet, and an OnDelete StatefulSet (applied, with a
    /// warning), in one run; kubectl's messages for each, and the pods on the cluster.
    statefulset_daemonset_and_on_delete,
    |w| {
        w.workload(
            &resources::STATEFULSETS,
            "db",
            json!({"replicas": 3, "serviceName": "db",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
        );
        w.workload(&resources::DAEMONSETS, "agent", json!({}));
        w.workload(
            &resources::STATEFULSETS,
            "cache",
            json!({"replicas": 1, "serviceName": "cache", "updateStrategy": {"type": "OnDelete"}}),
        );
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "sts/db,ds/agent,statefulset/cache"),
            ("INPUT_TIMEOUT", "60s"),
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let targets = run.result["targets"].as_array().unwrap();
        assert_eq!(targets[0]["message"], "partitioned roll out complete: 2 new pods have been updated...");
        assert!(run.stderr.contains("statefulset/db: partitioned roll out complete"), "{}", run.stderr);
        assert_eq!(targets[1]["message"], "daemon set \"agent\" successfully rolled out");
        assert_eq!(targets[2]["status"], "applied");
        assert_eq!(targets[2]["replicas"], 1);
        assert!(run.stderr.contains("statefulset/cache uses the OnDelete update strategy"), "{}", run.stderr);
        let image = |n: &str| w.get(&resources::PODS, n).unwrap()["spec"]["containers"][0]["image"].clone();
        assert_eq!((image("db-0"), image("db-2")), (json!(w.image("v1")), json!(w.pinned(&w.v2))));
        assert_eq!(image("cache-0"), json!(w.image("v1")), "OnDelete: the pod keeps its image");
        for (target, i) in [("sts/db", 0), ("ds/agent", 1)] {
            let (code, text) = w.kubectl_rollout_status(target, "30s");
            assert_eq!(code, Some(0), "{text}");
            assert!(text.ends_with(&format!("{}\n", targets[i]["message"].as_str().unwrap())), "{text}");
        }
    }
);

on_both!(
    /// Under GitHub Actions the change cause names the repository, commit and run.
    change_cause_under_github_actions,
    |w| {
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("GITHUB_REPOSITORY", "acme/api"),
            ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_SERVER_URL", "https://github.com"),
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let d = w.get(&resources::DEPLOYMENTS, "api").unwrap();
        assert_eq!(
            d["metadata"]["annotations"]["kubernetes.io/change-cause"],
            format!(
                "kubeship: {} from acme/api@0123456789ab (https://github.com/acme/api/actions/runs/42)",
                w.pinned(&w.v2)
            )
        );
    }
);

on_both!(
    /// New pods that cannot be scheduled (every node cordoned) only warn; when a node is
    /// back, the rollout completes.
    unschedulable_pods_warn_then_recover,
    |w| {
        let nodes = w.nodes();
        for node in &nodes {
            w.cordon(node, true);
        }
        let child = w.spawn_waiting(&[("INPUT_TIMEOUT", "60s")]);
        w.until("a pod of the new revision marked unschedulable", || {
            w.list(&resources::PODS).into_iter().find(|p| {
                p["spec"]["containers"][0]["image"] == w.pinned(&w.v2).as_str()
                    && p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter().any(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable")
                    })
            })
        });
        w.cordon(&nodes[0], false);
        let run = child.finish(w);
        for node in &nodes {
            w.cordon(node, false);
        }
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stderr.contains("cannot be scheduled yet"), "{}", run.stderr);
        assert_eq!(run.outputs["status"], "succeeded");
        cluster_runs(w, "api", &w.pinned(&w.v2), 2);
    }
);

on_both!(
    /// Two deploys of the same Deployment: while the first waits on a slow rollout of v2,
    /// the second ships v3. The first ends superseded (exit 1), naming the generation and
    /// image that replaced it and no image IDs of its own; the second succeeds, and the
    /// cluster runs v3.
    a_later_deploy_supersedes_the_first,
    |w| {
        w.registry.pusher().unwrap().image("acme/api", "v3", kubeship_testkit::push::Kind::OciManifest, "three").unwrap();
        let v3 = w.registry.stored_digest("acme/api", "v3").unwrap();
        w.merge_patch(&resources::DEPLOYMENTS, "api", json!({"spec": {"replicas": 4}}));
        w.until("four replicas", || {
            let d = w.get(&resources::DEPLOYMENTS, "api")?;
            (d["status"]["availableReplicas"] == 4).then_some(())
        });
        w.script(&w.pinned(&w.v2), Behaviour { ready_delay: Duration::from_secs(30), ..Behaviour::default() });
        let first = w.spawn_waiting(&[("INPUT_TIMEOUT", "90s")]);
        let second = w.command(&[("INPUT_IMAGE", &w.image("v3")), ("INPUT_DEPLOYMENT", "api"), ("INPUT_TIMEOUT", "90s")])
            .env("GITHUB_OUTPUT", w.dir.path().join("output-2"))
            .output()
            .unwrap();
        assert_eq!(second.status.code(), Some(0), "{}", String::from_utf8_lossy(&second.stderr));
        let run = first.finish(w);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert_eq!(run.outputs["status"], "superseded");
        let message = run.message();
        assert!(message.contains("changed by another writer") && message.contains(&w.pinned(&v3)), "{message}");
        // Generation 2 was the scale, 3 the first run's patch, 4 the second's.
        assert!(message.contains("generation 4"), "{message}");
        assert!(run.result["targets"][0]["image_ids"].is_null(), "{}", run.result);
        assert!(!run.stderr.contains(&format!("pods run {}", w.pinned(&w.v2))), "{}", run.stderr);
        cluster_runs(w, "api", &w.pinned(&v3), 4);
    }
);

on_both!(
    /// A scale during the wait keeps this run's images: it is followed, and the run succeeds
    /// with the new count.
    a_scale_mid_rollout_is_followed,
    |w| {
        w.script(&w.pinned(&w.v2), Behaviour { ready_delay: Duration::from_secs(2), ..Behaviour::default() });
        let child = w.spawn_waiting(&[("INPUT_TIMEOUT", "90s")]);
        w.merge_patch(&resources::DEPLOYMENTS, "api", json!({"spec": {"replicas": 3}}));
        let run = child.finish(w);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.outputs["status"], "succeeded");
        assert_eq!(run.result["targets"][0]["replicas"], 3);
        cluster_runs(w, "api", &w.pinned(&w.v2), 3);
    }
);

on_both!(
    /// The second of two targets is refused (an admission policy), dry runs included: the
    /// preflight stops the run before any write, exit 4; the refused target is failed with the
    /// server's words, the other skipped, and both still run v1.
    a_refused_target_changes_nothing,
    |w| {
        w.deployment("web", &w.image("v1"), 1);
        w.refuse_patches_of("web", true);
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api,web")]);
        assert_eq!(run.code, Some(4), "{}", run.stderr);
        assert!(run.stderr.contains("dry run of the patches was refused, so nothing was changed"), "{}", run.stderr);
        let statuses: Vec<(&str, &str)> = run.result["targets"].as_array().unwrap().iter()
            .map(|t| (t["name"].as_str().unwrap(), t["status"].as_str().unwrap())).collect();
        assert_eq!(statuses, [("api", "skipped"), ("web", "failed")]);
        assert!(w.patches().is_empty(), "no real patch");
        assert_eq!((w.container_image("api"), w.container_image("web")), (w.image("v1"), w.image("v1")));
    }
);

on_both!(
    /// The second real patch fails after the first landed (its dry run passed): without
    /// rollback-on-failure the first is reported applied and left; with it, the first is put
    /// back and waited on; exit 4 either way, each target with its own truth.
    a_failed_second_patch,
    |w| {
        w.deployment("web", &w.image("v1"), 1);
        w.refuse_patches_of("web", false);
        let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api,web")]);
        assert_eq!(run.code, Some(4), "{}", run.stderr);
        let statuses: Vec<&str> = run.result["targets"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["applied", "failed"], "{}", run.result);
        assert_eq!(run.result["targets"][0]["changed"], true);
        assert_eq!(w.container_image("api"), w.pinned(&w.v2), "left patched");
        assert_eq!(w.container_image("web"), w.image("v1"));
        cluster_runs(w, "api", &w.pinned(&w.v2), 2);

        w.merge_patch(&resources::DEPLOYMENTS, "api", json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": w.image("v1")}]}}}}));
        cluster_runs(w, "api", &w.image("v1"), 2);
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api,web"),
            ("INPUT_ROLLBACK-ON-FAILURE", "true"),
        ]);
        assert_eq!(run.code, Some(4), "{}", run.stderr);
        let statuses: Vec<&str> = run.result["targets"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["rolled-back", "failed"], "{}", run.result);
        assert_eq!(w.container_image("api"), w.image("v1"), "put back");
        cluster_runs(w, "api", &w.image("v1"), 2);
    }
);

on_both!(
    /// The API server goes away mid-wait (its port refuses connections, open watches are cut)
    /// and comes back before the deadline: the run reconnects and reports the real end.
    api_server_gone_mid_wait_and_back,
    |w| {
        let ready_delay = Duration::from_secs(2);
        w.script(&w.pinned(&w.v2), Behaviour { ready_delay, ..Behaviour::default() });
        let upstream = w.url().trim_start_matches("https://").parse().unwrap();
        let gate = kubeship_testkit::TcpGate::start(upstream).unwrap();
        let config = w.kubeconfig().replace(&w.url(), &format!("https://{}", gate.address));
        let child = w.spawn_waiting(&[("INPUT_KUBECONFIG", &config), ("INPUT_TIMEOUT", "60s")]);
        gate.shut();
        // Back once the rollout is over on the cluster: the run learns its end only then.
        cluster_runs(w, "api", &w.pinned(&w.v2), 2);
        gate.open();
        let run = child.finish(w);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.outputs["status"], "succeeded");
        cluster_runs(w, "api", &w.pinned(&w.v2), 2);
    }
);

// --- kubesim only: what a real API server cannot be made to do on demand --------------------

/// The kubeconfig input as base64, a context picked by name; an unknown context lists them.
#[test]
fn kubeconfig_input_and_context() {
    let w = World::kubesim();
    let config = w.kubeconfig();
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &base64(&config)),
        ("INPUT_CONTEXT", "kubesim"),
        ("KUBECONFIG", "/nonexistent"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_CONTEXT", "staging"),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("has no context \"staging\": set the context input to one of: kubesim"),
        "{}",
        run.stderr
    );
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// An exec credential plugin that is not installed is named (the EKS/GKE case), exit 2.
#[test]
fn missing_exec_plugin_is_named() {
    let w = World::kubesim();
    let config = w.kubeconfig().replace(
        &format!("    token: {TOKEN}\n"),
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token]\n",
    );
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &config),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("exec plugin \"aws\", which is not on PATH"), "{}", run.stderr);
    assert!(w.all_patches().is_empty());
}

/// An exec credential plugin that exists is run, and its token authenticates every request.
#[test]
fn exec_plugin_supplies_the_token() {
    let w = World::kubesim();
    let plugin = w.dir.path().join("get-token");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho \"$1\" > \"$(dirname \"$0\")/plugin-ran\"\n\
             printf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{TOKEN}\"}}}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = w.kubeconfig().replace(
        &format!("    token: {TOKEN}\n"),
        &format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      args: [cluster-a]\n      interactiveMode: Never\n",
            plugin.display()
        ),
    );
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &config),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "succeeded");
    assert_eq!(std::fs::read_to_string(w.dir.path().join("plugin-ran")).unwrap(), "cluster-a\n");
    assert_eq!(w.patches().len(), 1);
}

/// RBAC on kubesim: a 403 is exit 4, quoting the server and naming the rule to grant.
#[test]
fn forbidden_is_exit_4_with_the_permissions() {
    let w = World::kubesim();
    w.sim().set_faults(kubesim::Faults {
        forbid: vec![("get".into(), "deployments".into())],
        ..Default::default()
    });
    let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api")]);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot get resource \"deployments\" in API group \"apps\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the verb \"get\" on \"deployments\"")
            && run.stderr.contains("Permissions"),
        "{}",
        run.stderr
    );
}

/// Credentials that may not list or watch pods: a warning up front that fail-fast and
/// diagnostics are off, naming the rule; the configuration error then runs to the timeout.
#[test]
fn no_pod_access_is_said_up_front() {
    let w = World::kubesim();
    w.script(
        &w.pinned(&w.v2),
        Behaviour { config_error: Some("secret \"db\" not found".into()), ..Behaviour::default() },
    );
    w.sim().set_faults(kubesim::Faults {
        forbid: vec![("list".into(), "pods".into()), ("watch".into(), "pods".into())],
        ..Default::default()
    });
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_TIMEOUT", "3s"),
    ]);
    assert_eq!(run.outputs["status"], "timed-out", "{}", run.stderr);
    assert!(
        run.stderr.contains("fail-fast and the failure report's pods, events and logs are off")
            && run.stderr.contains("pods: list, watch"),
        "{}",
        run.stderr
    );
}

/// Watches dropped after every event, a burst of 429s, expired history, and the watch cut
/// while the Deployment changes and its history expires (so the resumed watch gets a 410):
/// the run still follows the rollout to its end, and it did re-list after the 410.
#[test]
fn survives_dropped_watches_410_and_429() {
    let w = World::kubesim();
    w.script(
        &w.pinned(&w.v2),
        Behaviour { ready_delay: Duration::from_secs(2), ..Behaviour::default() },
    );
    let upstream = w.url().trim_start_matches("https://").parse().unwrap();
    let gate = kubeship_testkit::TcpGate::start(upstream).unwrap();
    let config = w.kubeconfig().replace(&w.url(), &format!("https://{}", gate.address));
    let child = w.spawn_waiting(&[("INPUT_KUBECONFIG", &config), ("INPUT_TIMEOUT", "60s")]);
    w.sim().set_faults(kubesim::Faults {
        close_watches_after: Some(1),
        throttle: Some((3, true)),
        ..Default::default()
    });
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(150));
        w.sim().expire_history();
    }
    gate.shut();
    w.merge_patch(
        &resources::DEPLOYMENTS,
        "api",
        json!({"metadata": {"labels": {"touched": "yes"}}}),
    );
    w.sim().expire_history();
    gate.open();
    let run = child.finish(&w);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "succeeded");
    let deployments = |watch: bool| {
        w.sim()
            .requests()
            .iter()
            .filter(|r| {
                r.method == "GET"
                    && r.path.ends_with("/deployments")
                    && r.query.contains_key("watch") == watch
            })
            .count()
    };
    assert!(deployments(false) >= 2, "a re-list after a 410: {} lists", deployments(false));
    assert!(deployments(true) >= 2, "the watch was resumed: {}", deployments(true));
}

/// The target deleted while the watch is down, the history expired (a 410 on the resumed
/// watch) and a re-list without it: failed at once as deleted, not at the timeout.
#[test]
fn a_deletion_across_a_relist_is_seen() {
    let w = World::kubesim();
    w.script(&w.pinned(&w.v2), Behaviour { never_ready: true, ..Behaviour::default() });
    let upstream = w.url().trim_start_matches("https://").parse().unwrap();
    let gate = kubeship_testkit::TcpGate::start(upstream).unwrap();
    let config = w.kubeconfig().replace(&w.url(), &format!("https://{}", gate.address));
    let child = w.spawn_waiting(&[("INPUT_KUBECONFIG", &config), ("INPUT_TIMEOUT", "60s")]);
    gate.shut();
    w.delete(&resources::DEPLOYMENTS, "api");
    w.sim().expire_history();
    gate.open();
    let started = Instant::now();
    let run = child.finish(&w);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.message().contains("was deleted during the rollout"), "{}", run.result);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

/// The GitLab dotenv report and the Tekton results, next to $GITHUB_OUTPUT.
#[test]
fn dotenv_and_tekton_results() {
    let w = World::kubesim();
    let dotenv = w.dir.path().join("deploy.env");
    let results = w.dir.path().join("results");
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_DOTENV-FILE", dotenv.to_str().unwrap()),
        ("INPUT_RESULTS-DIR", results.to_str().unwrap()),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let text = std::fs::read_to_string(&dotenv).unwrap();
    assert!(
        text.contains(&format!("KUBESHIP_DIGEST={}\n", w.v2))
            && text.contains("KUBESHIP_STATUS=succeeded\n"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.starts_with("KUBESHIP_") && l.contains('=')), "{text}");
    assert_eq!(std::fs::read_to_string(results.join("status")).unwrap(), "succeeded");
    assert_eq!(std::fs::read_to_string(results.join("image")).unwrap(), w.pinned(&w.v2));
}

/// Under GitHub Actions: a group per phase, `::debug::` with RUNNER_DEBUG, the failure as an
/// `::error::` annotation, masks for the registry password and the kubeconfig token before
/// anything else is printed (and nowhere else), the step summary with the cause, and nothing
/// written to the working directory (the workspace).
#[test]
fn github_actions_commands_summary_and_masks() {
    let w = World::kubesim_with(false, Setup { unreachable_registry: true });
    let password = "reg-pass-5d2f9";
    let summary_path = w.dir.path().join("summary.md");
    let workspace = w.dir.path().join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    let output = w
        .command(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_CONTAINER", "app"),
            ("INPUT_KUBECONFIG", &w.kubeconfig()),
            ("INPUT_REGISTRY-USERNAME", "ci"),
            ("INPUT_REGISTRY-PASSWORD", password),
            ("GITHUB_ACTIONS", "true"),
            ("RUNNER_DEBUG", "1"),
            ("GITHUB_STEP_SUMMARY", summary_path.to_str().unwrap()),
            ("KUBECONFIG", "/nonexistent"),
        ])
        .current_dir(&workspace)
        .output()
        .unwrap();
    let run = w.finish(output.clone());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    for expected in [
        format!("::add-mask::{password}"),
        format!("::add-mask::{TOKEN}"),
        format!("::group::Resolve {}", w.image("v2")),
        "::group::Read the targets".to_owned(),
        "::group::Patch".to_owned(),
        "::group::Wait for the rollout".to_owned(),
        "::endgroup::".to_owned(),
    ] {
        assert!(lines.contains(&expected.as_str()), "no {expected:?} in\n{}", run.stderr);
    }
    assert!(lines.iter().any(|l| l.starts_with("::debug::")), "{}", run.stderr);
    let error = lines
        .iter()
        .find(|l| {
            l.starts_with("::error title=kubeship%3A rollout failed::deployment/api: pod api-")
        })
        .unwrap_or_else(|| panic!("no error annotation in\n{}", run.stderr));
    assert!(error.contains("ImagePull") || error.contains("ErrImagePull"), "{error}");
    // Both masks come before the first line that is not a mask: nothing could print a
    // secret before the runner knows to hide it.
    let masks: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("::add-mask::"))
        .map(|(i, _)| i)
        .collect();
    let first_other = lines
        .iter()
        .position(|l| !l.starts_with("::add-mask::") && !l.starts_with("::debug::"))
        .unwrap();
    let token_mask = lines.iter().position(|l| *l == format!("::add-mask::{TOKEN}")).unwrap();
    assert!(token_mask < first_other, "the token is masked first: {masks:?} vs {first_other}");

    let summary = std::fs::read_to_string(&summary_path).unwrap();
    assert!(summary.starts_with("### kubeship: failed\n"), "{summary}");
    assert!(summary.contains("| `deployment/api in prod` | failed | `app` | `"), "{summary}");
    assert!(summary.contains("ImagePullBackOff") || summary.contains("ErrImagePull"), "{summary}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let written = std::fs::read_to_string(w.dir.path().join("output")).unwrap();
    for secret in [password, TOKEN] {
        let unmasked: Vec<&&str> =
            lines.iter().filter(|l| l.contains(secret) && !l.starts_with("::add-mask::")).collect();
        assert!(unmasked.is_empty(), "{secret} in {unmasked:?}");
        assert!(!stdout.contains(secret) && !written.contains(secret) && !summary.contains(secret));
    }
    assert_eq!(std::fs::read_dir(&workspace).unwrap().count(), 0, "wrote into the workspace");
}

/// 500s on every PATCH: the preflight's dry runs fail, so exit 4 with the server's words, no
/// real patch, every target reported as refused, and no workload changed.
#[test]
fn server_errors_on_patch_change_nothing() {
    let w = World::kubesim();
    for name in ["web", "jobs"] {
        w.deployment(name, &w.image("v1"), 1);
    }
    w.sim().set_faults(kubesim::Faults { fail_verbs: vec!["patch".into()], ..Default::default() });
    let run = w.run(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api,web,jobs")]);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(run.stderr.contains("dry run of the patches was refused"), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "failed");
    let statuses: Vec<(&str, bool)> = run.result["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["status"].as_str().unwrap(), t["changed"].as_bool().unwrap()))
        .collect();
    assert_eq!(statuses, [("failed", false); 3], "{}", run.result);
    assert_eq!(w.all_patches().len(), 3, "one dry run per target");
    assert!(w.patches().is_empty(), "no real patch");
    for name in ["api", "web", "jobs"] {
        assert_eq!(w.container_image(name), w.image("v1"), "{name}");
    }
}

/// SIGTERM while a patch is in flight: that patch completes (a patch is never cut in half),
/// no other is sent, and each target says what happened to it; exit 143, well within the
/// deadline.
#[test]
fn sigterm_during_the_patch_phase() {
    let w = World::kubesim();
    for name in ["web", "jobs"] {
        w.deployment(name, &w.image("v1"), 1);
    }
    w.sim().set_faults(kubesim::Faults {
        delay: Some(Duration::from_millis(1500)),
        ..Default::default()
    });
    w.sim().clear_requests();
    let child = w.spawn(&[("INPUT_IMAGE", &w.image("v2")), ("INPUT_DEPLOYMENT", "api,web,jobs")]);
    let started = Instant::now();
    while w.patches().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "no PATCH was sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.signal("-TERM");
    let run = child.finish(&w);
    assert_eq!(run.code, Some(143), "{}", run.stderr);
    assert_eq!(run.outputs["status"], "cancelled");
    assert_eq!(w.patches().len(), 1);
    let statuses: Vec<(&str, &str, bool)> = run.result["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["status"].as_str().unwrap(),
                t["changed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [("api", "cancelled", true), ("web", "skipped", false), ("jobs", "skipped", false)]
    );
    w.sim().set_faults(kubesim::Faults::default());
    assert_eq!(w.container_image("api"), w.pinned(&w.v2));
    assert_eq!(w.container_image("web"), w.image("v1"));
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}
