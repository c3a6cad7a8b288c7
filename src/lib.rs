//! redis-gitops: keep Redis Enterprise clusters and databases exactly as a Git repository describes them.
//!
//! The library holds all logic; `main.rs` only parses the command line and wires things up.
//! See `design.md` (shared with the team) for the layout; each module's `//!` says what it may do.

pub mod agent;
pub mod api;
pub mod backup;
pub mod controllers;
pub mod desired;
pub mod enterprise;
pub mod forge;
pub mod install;
pub mod manifests;
pub mod model;
pub mod review;
pub mod runtime;
pub mod source;
pub mod sync;
pub mod telemetry;
pub mod webhook;
