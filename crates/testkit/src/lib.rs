//! Real components for kubeship's tests, each started on a free loopback port and stopped on
//! drop: Debian's `docker-registry` in three setups, a token server, a fault-injecting proxy,
//! a TCP gate that makes a server go away and come back, ways to put real images into the
//! registry, a real Kubernetes control plane with fake nodes ([`controlplane`]), the clouds'
//! token and cluster services ([`cloud`]), and the GitHub runner as an oracle: its reading of
//! `$GITHUB_OUTPUT`, of the workflow commands in a step's output (`github::runner`) and the
//! step summary's rendering (`github::summary`).
//!
//! Everything here is blocking and runs its servers on their own threads, so tests can be
//! plain `#[test]` functions that start a Tokio runtime only for the code under test.

pub mod certs;
pub mod cloud;
pub mod controlplane;
pub mod gate;
pub mod github;
pub mod proxy;
pub mod push;
pub mod registry;
pub mod token;

pub use gate::TcpGate;
pub use proxy::{FaultProxy, Rule};
pub use registry::{Registry, Setup};
pub use token::TokenServer;

use std::sync::Once;

/// The rustls provider for the test kit's own clients.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Runs a command, failing with its output when it fails.
pub(crate) fn run(command: &mut std::process::Command) -> anyhow::Result<String> {
    let output = command.output().map_err(|e| anyhow::anyhow!("{command:?}: {e}"))?;
    if !output.status.success() {
        anyhow::bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
