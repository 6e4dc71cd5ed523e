//! Stage 3b: the workloads to pin. `select` chooses their containers.

pub mod select;
