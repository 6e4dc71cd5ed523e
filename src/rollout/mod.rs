//! Stage 4: waiting on the rollout. `status` holds kubectl's verdicts as pure functions.

pub mod status;
