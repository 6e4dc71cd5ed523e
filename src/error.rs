//! The top-level error: one variant per stage, each mapped to the contract's exit code.
//! Stage errors carry their own messages; this type only routes them.

use std::fmt::Write as _;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Exit 2: an input or configuration error; nothing was sent.
    #[error(transparent)]
    Inputs(#[from] crate::inputs::Error),
    /// Exit 3 (2 for an unreadable docker config): the registry; nothing was changed.
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    /// Exit 2: the cluster cannot be reached from this configuration; 4 when authenticating
    /// to it failed (an exec plugin, or a cloud that refused kubeship's credentials).
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),
    /// Exit 4 for the API, exit 2 for container choices.
    #[error(transparent)]
    Targets(#[from] crate::targets::Error),
    /// Exit 2: an output destination cannot be written; nothing was sent.
    #[error(transparent)]
    Destinations(#[from] crate::report::files::Error),
}

impl Error {
    /// The process exit code of the contract.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Inputs(_) => 2,
            Self::Registry(e) => e.exit_code(),
            Self::Cluster(e) => e.exit_code(),
            Self::Targets(e) => e.exit_code(),
            Self::Destinations(_) => 2,
        }
    }

    /// The title of the `::error::` annotation under GitHub Actions.
    pub fn title(&self) -> &'static str {
        if let Self::Cluster(crate::cluster::Error::Cloud(e)) = self
            && e.exit_code() == 4
        {
            return "kubeship: cloud login error";
        }
        match self.exit_code() {
            2 => "kubeship: invalid input or configuration",
            3 => "kubeship: registry error",
            _ => "kubeship: Kubernetes API error",
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the line already holds
/// (many libraries repeat their source inside their own message).
pub fn render_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            let _ = write!(line, ": {text}");
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each stage maps to its exit code.
    #[test]
    fn exit_codes() {
        let input = Error::from(crate::inputs::Error::Missing { input: "image" });
        assert_eq!(input.exit_code(), 2);
        let registry = Error::from(crate::registry::Error::DigestMismatch {
            image: "a".into(),
            expected: "b".into(),
            actual: "c".into(),
        });
        assert_eq!(registry.exit_code(), 3);
    }

    /// A cause already quoted by its parent is not printed twice.
    #[test]
    fn chain_skips_repeated_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(render_chain(&e), "outer: inner");
    }
}
