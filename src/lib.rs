//! kubeship: ship a freshly pushed image to Kubernetes from CI.
//!
//! One run is a pipeline, and the modules follow it:
//!
//! ```text
//! inputs ──► registry ──► targets + patch ──► rollout watch ──► report
//! (env vars)  (tag → digest)  (pin repo@sha256)   (kubectl's rules)   (outputs)
//! ```
//!
//! Exit codes (the contract): 0 success, 1 rollout failed or timed out, 2 invalid input,
//! 3 registry error, 4 Kubernetes API error, 130/143 interrupted.

pub mod cluster;
pub mod error;
pub mod inputs;
pub mod log;
pub mod registry;
pub mod report;
pub mod rollout;
pub mod run;
pub mod targets;
pub mod tls;
pub mod untrusted;
pub mod workload;

pub use error::Error;
