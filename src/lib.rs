//! kubeship: ship a freshly pushed image to Kubernetes from CI.
//!
//! One run is a pipeline, and the modules follow it; [`run`] is where the stages meet:
//!
//! ```text
//! inputs ──► registry ──► cluster ──► targets ──► rollout ──► report
//! (env vars)  (tag → digest)  (kubeconfig,   (read, dry run,  (kubectl's    (outputs,
//!                             client)        patch)           rules)        summary)
//! ```
//!
//! Beside them: [`workload`] (the one place the three workload kinds differ), [`untrusted`]
//! and [`log`] (text from outside, and printing it where the GitHub runner cannot take it for
//! a command), [`tls`].
//!
//! Exit codes (the contract): 0 success, 1 rollout failed or timed out, 2 invalid input,
//! 3 registry error, 4 Kubernetes API error, 130/143 interrupted.

pub mod cluster;
pub mod dns;
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
