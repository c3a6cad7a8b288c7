//! Error categories derived one way: every controller's error names a stable category (its variant name, or the
//! kind of the underlying failure), used as event reason and metric label, never error text. Pure.

/// An error with a stable category and a hint whether the other side asked to slow down.
pub trait ErrorCategory {
    /// A stable PascalCase name for event reasons and metric labels.
    fn category(&self) -> &'static str;

    /// Whether the failure was a request to slow down (HTTP 429, REST 409 busy): it backs off longer.
    fn is_rate_limited(&self) -> bool {
        false
    }
}

/// Whether a Kubernetes API error is the API server asking to slow down (429).
pub fn kube_rate_limited(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(response) if response.code == 429)
}
