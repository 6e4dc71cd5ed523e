//! kubeship's integration tests: real components on loopback, one test binary.

// Test helpers unwrap: a panic in a test is a failure with a location, which is what we want.
#![allow(clippy::unwrap_used)]

// Shared helpers: a runtime for the code under test, and running the kubeship binary.
mod support;

// Digest resolution against a real docker-registry: every manifest kind, the three auth
// setups, read-after-push lag, faults, and what the registry received.
mod registry;

// The whole run against the simulated cluster, with a real registry behind its kubelet:
// exit codes, outputs, and the requests the cluster received.
mod deploy;
