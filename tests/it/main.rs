//! kubeship's integration tests: real components on loopback, one test binary.

// Test helpers unwrap: a panic in a test is a failure with a location, which is what we want.
#![allow(clippy::unwrap_used)]

// Shared helpers: a runtime for the code under test, and running the kubeship binary.
mod support;

// One world for the end-to-end scenarios, on kubesim or on the real control plane.
mod world;

// Digest resolution against a real docker-registry: every manifest kind, the three auth
// setups, read-after-push lag, faults, and what the registry received.
mod registry;

// Malformed inputs through the binary: exit 2, the input named, nothing sent.
mod inputs;

// The scenario table: the whole run on kubesim and on the real control plane, with a real
// registry behind their kubelets; exit codes, outputs, the cluster's state, kubectl's verdict.
mod deploy;

// The container image built from the Dockerfile's runtime stage, run by podman as the
// GitHub runner, `docker run` and a pod run it.
mod image;

// Secrets stay secret; credentials only for their registry; TLS checked by default.
mod security;

// Text from the cluster cannot command the GitHub runner or render live in the summary.
mod injection;

// Servers that never answer, or stop answering: every stage ends on time, outputs written.
mod bounded;

// Output destinations checked before any request.
mod outputs;

// The README's least-privilege Role on the real control plane: enough, and each rule named
// when missing.
mod rbac;

// action.yml, the README and the contract against the inputs and outputs kubeship has.
mod action;

// EKS, GKE and AKS tokens minted by kubeship against the clouds' protocols, on loopback.
mod cloud;

// TLS trust without an OS trust store.
mod trust;
