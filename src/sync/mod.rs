//! GitOps sync (design.md §3, §5): from a Git revision to applied RECs and REDBs. `plan` is the pure core
//! (apply bodies, drift, prune decisions); the GitSync controller that fetches, applies and reports is built on it.

pub mod controller;
pub mod plan;
pub mod settings;
