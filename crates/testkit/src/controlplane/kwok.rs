//! kwok's part: the fake nodes. kwok 0.8 has no built-in stages, so its configuration
//! carries two of ours for nodes: one makes a new node Ready (conditions, addresses, capacity,
//! and the kubelet port of the project's agent, which serves the nodes' `containerLogs`), one
//! refreshes the Ready heartbeat each minute; kwok also renews each node's Lease, which is
//! what the node lifecycle controller watches. No pod stages: the agent plays the kubelet.
//!
//! kwok's own server stays off (no `nodePort`, no `serverAddress`), so the port written into
//! the nodes is the agent's alone.

use serde_json::{Value, json};

/// The annotation kwok selects its nodes by.
pub const ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

/// The Node object for a fake node (kwok fills its status).
pub fn node(node: &kubesim::Node) -> Value {
    let (name, arch) = (&node.name, &node.arch);
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {ANNOTATION.0: ANNOTATION.1},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch, "beta.kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux", "type": "kwok"}},
        "spec": {}})
}

/// kwok's configuration file: options and the node stages. `kubelet_port` is the agent's.
pub fn config(kubelet_port: u16) -> String {
    let ready = conditions("{{ Now | Quote }}");
    let heartbeat = conditions("{{ .metadata.creationTimestamp | Quote }}");
    format!(
        r#"apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  manageNodesWithAnnotationSelector: {key}={value}
  nodeIP: 127.0.0.1
  cidr: 10.244.0.0/16
  nodeLeaseDurationSeconds: 40
  # A configuration file's options get no defaults: every parallelism must be set.
  nodeLeaseParallelism: 2
  nodePlayStageParallelism: 2
  podPlayStageParallelism: 1
  podsOnNodeSyncParallelism: 1
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: kubeship-node-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ["True"]
  next:
    statusTemplate: |
{ready}      addresses:
      - type: InternalIP
        address: 127.0.0.1
      - type: Hostname
        address: {{{{ .metadata.name | Quote }}}}
      daemonEndpoints:
        kubeletEndpoint:
          Port: {kubelet_port}
      capacity: {{cpu: "32", memory: 64Gi, pods: "110"}}
      allocatable: {{cpu: "32", memory: 64Gi, pods: "110"}}
      nodeInfo:
        architecture: {{{{ index .metadata.labels "kubernetes.io/arch" | Quote }}}}
        operatingSystem: linux
        kubeletVersion: {{{{ printf "kwok-%s" Version | Quote }}}}
        containerRuntimeVersion: "kubeship-agent://1"
        kernelVersion: ""
        osImage: ""
        machineID: ""
        systemUUID: ""
        bootID: ""
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: kubeship-node-heartbeat
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: In
      values: ["True"]
  delay:
    durationMilliseconds: 60000
    jitterDurationMilliseconds: 70000
  next:
    statusTemplate: |
{heartbeat}"#,
        key = ANNOTATION.0,
        value = ANNOTATION.1,
    )
}

/// The node conditions of a healthy kubelet, with `since` as their transition time.
fn conditions(since: &str) -> String {
    let rows = [
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ];
    let mut out = String::from("      conditions:\n");
    for (kind, status, reason, message) in rows {
        out.push_str(&format!(
            "      - type: {kind}\n        status: \"{status}\"\n        reason: {reason}\n        message: {message}\n        lastHeartbeatTime: {{{{ Now | Quote }}}}\n        lastTransitionTime: {since}\n"
        ));
    }
    out
}
