//! The components' command lines and configuration files, as plain functions of the ports
//! and paths they are given: what each flag is for is said here, once.

use std::path::Path;

/// The controllers kube-controller-manager runs: the workloads', what namespaces and
/// service accounts need, garbage collection and node health.
pub const CONTROLLERS: &str = "deployment-controller,replicaset-controller,statefulset-controller,\
daemonset-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,\
serviceaccount-token-controller,node-lifecycle-controller,pod-garbage-collector-controller,\
root-ca-certificate-publisher-controller";

fn s(path: &Path) -> String {
    path.display().to_string()
}

/// etcd with one member, its data under `dir/etcd`, no fsync (test data is disposable).
pub fn etcd(dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name=node0".to_owned(),
        format!("--data-dir={}", s(&dir.join("etcd"))),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=node0={peer}"),
        "--unsafe-no-fsync=true".to_owned(),
        "--log-level=warn".to_owned(),
    ]
}

/// Where the API server writes its audit log, in its directory.
pub const AUDIT_LOG: &str = "audit.log";

/// What the audit log records: metadata of every write to an apps workload (not their
/// status), nothing else, so the file stays small.
pub const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete]
  resources:
  - group: apps
    resources: [deployments, statefulsets, daemonsets]
- level: None
";

/// kube-apiserver on 127.0.0.1:`port`; its files (certificates, keys, tokens.csv, the token
/// webhook's kubeconfig when `webhook`) are in `dir`.
pub fn apiserver(dir: &Path, port: u16, etcd_port: u16, webhook: bool) -> Vec<String> {
    let mut args = vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        "--bind-address=127.0.0.1".to_owned(),
        // Accepted on loopback because the endpoint reconciler is off.
        "--advertise-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        "--endpoint-reconciler-type=none".to_owned(),
        format!("--tls-cert-file={}", s(&dir.join("apiserver.crt"))),
        format!("--tls-private-key-file={}", s(&dir.join("apiserver.key"))),
        format!("--client-ca-file={}", s(&dir.join("ca.crt"))),
        format!("--token-auth-file={}", s(&dir.join("tokens.csv"))),
        "--authorization-mode=Node,RBAC".to_owned(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
        // The public key: a PKCS#8 private key file is not read for it.
        format!("--service-account-key-file={}", s(&dir.join("sa.pub"))),
        format!("--service-account-signing-key-file={}", s(&dir.join("sa.key"))),
        "--service-cluster-ip-range=10.96.0.0/16".to_owned(),
        "--allow-privileged=true".to_owned(),
        // The fake nodes' kubelet endpoint (the agent's) is their InternalIP, 127.0.0.1; their
        // Hostname does not resolve.
        "--kubelet-preferred-address-types=InternalIP".to_owned(),
        "--profiling=false".to_owned(),
        // The audit log is the tests' record of what a client sent (verb, URI, user agent).
        format!("--audit-policy-file={}", s(&dir.join("audit-policy.yaml"))),
        format!("--audit-log-path={}", s(&dir.join(AUDIT_LOG))),
        "--audit-log-format=json".to_owned(),
        "--audit-log-mode=blocking".to_owned(),
    ];
    if webhook {
        args.push(format!(
            "--authentication-token-webhook-config-file={}",
            s(&dir.join("token-webhook.kubeconfig"))
        ));
    }
    args
}

/// kube-controller-manager: leader election off, a client certificate of its own (and
/// service-account credentials per controller, as clusters run it).
pub fn controller_manager(dir: &Path, port: u16, kubeconfig: &Path) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", s(kubeconfig)),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        "--leader-elect=false".to_owned(),
        "--use-service-account-credentials=true".to_owned(),
        format!("--service-account-private-key-file={}", s(&dir.join("sa.key"))),
        format!("--root-ca-file={}", s(&dir.join("ca.crt"))),
        format!("--controllers={CONTROLLERS}"),
        "--kube-api-qps=100".to_owned(),
        "--kube-api-burst=200".to_owned(),
        "--min-resync-period=30s".to_owned(),
        "--profiling=false".to_owned(),
    ]
}

/// The scheduler's configuration file: its kubeconfig, no leader election.
pub fn scheduler_config(kubeconfig: &Path) -> String {
    format!(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n\
         clientConnection:\n  kubeconfig: {}\n  qps: 100\n  burst: 200\n\
         leaderElection:\n  leaderElect: false\n",
        s(kubeconfig)
    )
}

/// kube-scheduler with the configuration file `config`.
pub fn scheduler(config: &Path, port: u16) -> Vec<String> {
    vec![
        format!("--config={}", s(config)),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        "--profiling=false".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_webhook_flag_only_when_asked() {
        let dir = Path::new("/tmp/x");
        let flag = "--authentication-token-webhook-config-file=/tmp/x/token-webhook.kubeconfig";
        assert!(apiserver(dir, 1, 2, true).iter().any(|a| a == flag));
        assert!(
            !apiserver(dir, 1, 2, false)
                .iter()
                .any(|a| a.starts_with("--authentication-token-webhook"))
        );
    }

    #[test]
    fn every_controller_the_workloads_need() {
        for c in [
            "deployment",
            "replicaset",
            "statefulset",
            "daemonset",
            "garbage-collector",
            "namespace",
            "serviceaccount",
            "serviceaccount-token",
            "node-lifecycle",
        ] {
            assert!(CONTROLLERS.split(',').any(|x| x == format!("{c}-controller")), "{c}");
        }
    }
}
