//! Human-readable progress on standard error. Standard output is kept for the result.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

/// Turns debug lines on (`RUNNER_DEBUG=1` under GitHub Actions, `KUBESHIP_DEBUG=1` elsewhere).
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// A progress line.
pub fn info(message: impl Display) {
    eprintln!("{message}");
}

/// Something the user should look at, that does not stop the run.
pub fn warn(message: impl Display) {
    eprintln!("warning: {message}");
}

/// A failure: what went wrong and what to do.
pub fn error(message: impl Display) {
    eprintln!("error: {message}");
}

/// Detail for debugging a run.
pub fn debug(message: impl Display) {
    if DEBUG.load(Ordering::Relaxed) {
        eprintln!("debug: {message}");
    }
}
