//! RBAC on the real control plane: the README's least-privilege Role, bound to a real
//! service account, is enough for a whole run (fail-fast, events and logs included); without
//! each of its rules, kubeship says what is missing in the words the README documents, and
//! what the rule is needed for decides whether the run fails or only reports less.

use std::time::Duration;

use kubesim::Behaviour;
use serde_json::{Value, json};

use crate::world::{Backend, Cluster, Setup, World};

const ROLES: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles";
const BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings";

/// The README's Role without `verb` on `resource` (None: the whole Role), bound to service
/// account `account` in the world's namespace; its kubeconfig.
fn account_with(w: &World, account: &str, without: Option<(&str, &str)>) -> String {
    let Backend::Real(plane) = &w.backend else { unreachable!("real cluster only") };
    let role = kubeship_testkit::controlplane::readme_role().unwrap();
    let mut rules = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for resource in rule["resources"].as_array().unwrap() {
            let verbs: Vec<&Value> = rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| Some((resource.as_str().unwrap(), v.as_str().unwrap())) != without)
                .collect();
            if !verbs.is_empty() {
                rules.push(json!({"apiGroups": rule["apiGroups"], "resources": [resource], "verbs": verbs}));
            }
        }
    }
    let ns = &w.namespace;
    let role = json!({"metadata": {"name": account, "namespace": ns}, "rules": rules});
    plane.api().post(&ROLES.replace("{ns}", ns), &role).unwrap();
    let binding = json!({"metadata": {"name": account, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}]});
    plane.api().post(&BINDINGS.replace("{ns}", ns), &binding).unwrap();
    plane.service_account_kubeconfig(ns, account).unwrap()
}

fn real() -> Option<World> {
    World::start(Cluster::Real, Setup::default())
}

/// The README's Role is enough: a good rollout succeeds; a configuration error fails fast
/// with its pod's event; a crash shows its previous run's log lines.
#[test]
fn the_readme_role_is_enough() {
    let Some(w) = real() else { return };
    let config = account_with(&w, "ci-deployer", None);
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v2")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &config),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("the credentials lack"), "{}", run.stderr);

    let crash = Some((Duration::from_secs(1), "Error".to_owned(), 3));
    let logs = vec!["panic: cannot reach the database".to_owned()];
    w.registry
        .pusher()
        .unwrap()
        .image("acme/api", "v3", kubeship_testkit::push::Kind::OciManifest, "three")
        .unwrap();
    let v3 = w.registry.stored_digest("acme/api", "v3").unwrap();
    w.script(
        &w.pinned(&v3),
        Behaviour { crash, ready_delay: Duration::from_secs(30), logs, ..Behaviour::default() },
    );
    let run = w.run(&[
        ("INPUT_IMAGE", &w.image("v3")),
        ("INPUT_DEPLOYMENT", "api"),
        ("INPUT_KUBECONFIG", &config),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.message().contains("keeps crashing"), "{}", run.message());
    assert!(!run.stderr.contains("the credentials lack"), "{}", run.stderr);
    assert!(
        run.stderr.contains("    panic: cannot reach the database"),
        "logs need pods/log: get\n{}",
        run.stderr
    );
}

/// Without each rule the workloads need: exit 4 before any write, the verb and resource to
/// grant named as the README's troubleshooting says (with the API server's refusal quoted
/// for the requests it refused).
#[test]
fn each_workload_rule_is_named_when_missing() {
    let Some(w) = real() else { return };
    for verb in ["get", "patch", "list", "watch"] {
        let account = format!("no-{verb}");
        let config = account_with(&w, &account, Some(("deployments", verb)));
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_KUBECONFIG", &config),
            ("INPUT_TIMEOUT", "30s"),
        ]);
        assert_eq!(run.code, Some(4), "without {verb}: {}", run.stderr);
        let grant = format!("Grant the credentials' Role the verb \"{verb}\" on \"deployments\"");
        assert!(run.stderr.contains(&grant), "without {verb}: {}", run.stderr);
        if matches!(verb, "get" | "patch") {
            let user = format!("system:serviceaccount:{}:{account}", w.namespace);
            assert!(run.stderr.contains(&user), "the server's refusal: {}", run.stderr);
        }
        assert!(w.patches().is_empty(), "without {verb}, nothing is changed");
        assert_eq!(w.container_image("api"), w.image("v1"));
    }
}

/// Without what only fail-fast and the failure report use: a warning up front that names the
/// rule and says what it takes away; the verdict is kubectl's all the same.
#[test]
fn report_rules_only_warn_when_missing() {
    let Some(w) = real() else { return };
    let cases = [
        (
            ("pods", "watch"),
            "fail-fast and the failure report's pods, events and logs are off",
            "pods: watch",
        ),
        (
            ("pods", "list"),
            "fail-fast and the failure report's pods, events and logs are off",
            "pods: list",
        ),
        (("events", "list"), "the verdict is the same", "events: list"),
        (("pods/log", "get"), "the verdict is the same", "pods/log: get"),
    ];
    for (i, (rule, said, rule_named)) in cases.into_iter().enumerate() {
        let config = account_with(&w, &format!("no-{}-{i}", rule.1), Some(rule));
        let tag = if i % 2 == 0 { "v2" } else { "v1" };
        let run = w.run(&[
            ("INPUT_IMAGE", &w.image(tag)),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_KUBECONFIG", &config),
        ]);
        assert_eq!(run.code, Some(0), "without {rule:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(said) && run.stderr.contains(rule_named),
            "without {rule:?}: {}",
            run.stderr
        );
    }
}
