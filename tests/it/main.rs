//! kubeship's integration tests: real components on loopback, one test binary.

// Test helpers unwrap: a panic in a test is a failure with a location, which is what we want.
#![allow(clippy::unwrap_used)]

// Shared helpers: a runtime for the code under test, and running the kubeship binary.
mod support;

// Digest resolution against a real docker-registry: every manifest kind, the three auth
// setups, read-after-push lag, faults, and what the registry received.
mod registry;

// Malformed inputs through the binary: exit 2, the input named, nothing sent.
mod inputs;

// The whole run against the simulated cluster, with a real registry behind its kubelet:
// exit codes, outputs, and the requests the cluster received.
mod deploy;

// The container image built from the Dockerfile's runtime stage, run by podman as the
// GitHub runner, `docker run` and a pod run it.
mod image;

// Secrets stay secret; credentials only for their registry; TLS checked by default.
mod security;

// action.yml, the README and the contract against the inputs and outputs kubeship has.
mod action;

// EKS, GKE and AKS tokens minted by kubeship against the clouds' protocols, on loopback.
mod cloud;
