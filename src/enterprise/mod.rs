//! The Redis Enterprise REST API client (reference/redis-enterprise.md §4): typed requests and responses with
//! the documented field names, HTTPS with the cluster's CA or a pinned certificate ([`trust`]), basic auth, time limits, retries with backoff on
//! 409 busy and 5xx, errors that carry the endpoint and the cluster's `error_code`. Passwords never reach logs,
//! errors or Debug output.
//!
//! Why our own client and not the `redis-enterprise` crate: that crate builds its own HTTP client with no way to
//! plug in name resolution (the sandbox resolves in-cluster names to loopback addresses, and the agent must run
//! unchanged there), returns API errors as raw text instead of `error_code`/`description`, and does not retry.

pub mod client;
pub mod error;
pub mod hosts;
pub mod states;
pub mod trust;
pub mod types;

pub use client::{ClientConfig, EnterpriseClient, RetryPolicy};
pub use error::EnterpriseError;
