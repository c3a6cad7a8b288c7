//! The commands of the `redis-gitops` binary that are more than a call into the library: the sandbox command and its
//! `--once` summary and progress, `plan` (with its comment and live base), and the Flux-style verbs. Binary-private;
//! they wire the agent library and the sandbox crate together and print.

pub mod plan;
pub mod plan_comment;
pub mod plan_live;
pub mod prerequisites;
pub mod progress;
pub mod sandbox;
pub mod settle;
pub mod verbs;
