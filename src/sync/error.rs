//! Failures of a sync worth a retry with backoff. Each names what was being done; the category is the event reason
//! and metric label.

use crate::runtime::ErrorCategory;
use crate::runtime::UnknownKind;
use crate::runtime::errors::{kube_category, kube_error_text, kube_rate_limited};
use crate::source::SourceError;

/// Why a sync failed in a way worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The Git source failed (unreachable, credentials, ref).
    #[error("failed to fetch the source: {0}")]
    Source(#[source] SourceError),
    /// The API server refused or failed a request.
    #[error("failed to {action}: {}", kube_error_text(source))]
    Kubernetes {
        /// What was being done.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// An object's namespace does not exist and `spec.createNamespace` is off.
    #[error(
        "unable to apply {object}: namespace \"{namespace}\" does not exist: create it or set spec.createNamespace"
    )]
    NamespaceMissing {
        /// `Kind namespace/name` of the object.
        object: String,
        /// The namespace.
        namespace: String,
    },
    /// A blocking task did not finish.
    #[error("failed to run the Git operation: {0}")]
    Task(String),
    /// An inventory entry names a kind the agent does not apply.
    #[error("unable to handle {name}: {source}")]
    UnknownKind {
        /// `namespace/name` of the object.
        name: String,
        /// The kind.
        #[source]
        source: UnknownKind,
    },
}

impl ErrorCategory for SyncError {
    fn category(&self) -> &'static str {
        match self {
            Self::Source(error) => error.category(),
            Self::Kubernetes { source, .. } => kube_category(source, "KubernetesError"),
            Self::NamespaceMissing { .. } => "NamespaceMissing",
            Self::Task(_) => "TaskFailed",
            Self::UnknownKind { .. } => "UnknownKind",
        }
    }

    fn is_rate_limited(&self) -> bool {
        matches!(self, Self::Kubernetes { source, .. } if kube_rate_limited(source))
    }
}

/// Maps a kube error to [`SyncError::Kubernetes`] with what was being done.
pub fn kubernetes(action: impl Into<String>) -> impl FnOnce(kube::Error) -> SyncError {
    let action = action.into();
    move |source| SyncError::Kubernetes { action, source }
}
