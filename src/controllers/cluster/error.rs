//! Failures of a cluster reconcile. Each names the object or REST endpoint and what to do; `category()` is the
//! event reason and metric label. Waiting (pods starting, nodes joining) is not an error.

use crate::enterprise::EnterpriseError;
use crate::runtime::ErrorCategory;
use crate::runtime::errors::{kube_category, kube_error_text, kube_rate_limited};

/// Why a cluster reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The API server refused or failed a request.
    #[error("failed to {action}: {}", kube_error_text(source))]
    Kubernetes {
        /// What was being done, naming the object.
        action: String,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
    /// The credentials Secret exists but lacks a key.
    #[error(
        "the credentials Secret {namespace}/{name} has no `{key}` key; add `username` and `password` to it, or \
         delete it to have the agent generate one"
    )]
    CredentialsSecretInvalid {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The missing key.
        key: &'static str,
    },
    /// The license Secret named by `licenseSecretName` is missing or lacks the `license` key.
    #[error(
        "the license Secret {namespace}/{name} {problem}; create it with a `license` key or fix spec.licenseSecretName"
    )]
    LicenseSecretInvalid {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// `does not exist` or `has no license key`.
        problem: &'static str,
    },
    /// The admin Secret is gone but the cluster already exists: a new password would lock the agent out.
    #[error(
        "the admin credentials Secret {namespace}/{name} does not exist but cluster {namespace}/{cluster} was already \
         bootstrapped ({evidence}); restore the Secret {name} (keys `username` and `password`, with the cluster's \
         current admin password, for example from a backup): the agent never generates a new admin password for an \
         existing cluster"
    )]
    CredentialsSecretMissing {
        /// Namespace of the REC and the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The REC.
        cluster: String,
        /// What shows that the cluster exists.
        evidence: String,
    },
    /// The admin Secret is gone and the agent cannot tell yet whether the cluster exists.
    #[error(
        "the admin credentials Secret {namespace}/{name} does not exist and {reason}, so the agent cannot tell \
         whether cluster {namespace}/{cluster} was bootstrapped; it generates no new password until it can (retrying); \
         if the cluster exists, restore the Secret {name}"
    )]
    CredentialsSecretUnverified {
        /// Namespace of the REC and the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The REC.
        cluster: String,
        /// Which pod did not answer and why.
        reason: String,
    },
    /// The finalizer patch could not be built.
    #[error("failed to build the finalizer patch of RedisEnterpriseCluster {cluster}: {reason}")]
    FinalizerPatch {
        /// `namespace/name` of the REC.
        cluster: String,
        /// Why.
        reason: String,
    },
    /// A Secret value the agent reads as text (credentials, license) is not UTF-8; names the Secret and key.
    #[error("{source}")]
    SecretNotText {
        /// Which Secret and key.
        #[source]
        source: crate::controllers::password::NotUtf8,
    },
    /// A random password could not be generated.
    #[error("failed to generate the admin password for cluster {cluster}: {reason}")]
    PasswordGeneration {
        /// The cluster.
        cluster: String,
        /// What the random source said.
        reason: String,
    },
    /// The REST client could not be set up (for example an unusable `ca.crt`).
    #[error("unable to set up the REST client for {url}: {source}")]
    RestClient {
        /// The REST base URL.
        url: String,
        /// The client error.
        #[source]
        source: EnterpriseError,
    },
    /// A REST call failed.
    #[error("failed to {action}: {source}")]
    Rest {
        /// What was being done, naming the pod or cluster.
        action: String,
        /// The REST error (it names the endpoint).
        #[source]
        source: EnterpriseError,
    },
    /// The spec changes the StatefulSet's claim templates in a way the agent cannot carry out (the API server
    /// refuses claim-template updates; only a growth with `enablePersistentVolumeResize` is done, by growing the
    /// claims and re-creating the StatefulSet around its pods).
    #[error("cannot change the volumes of StatefulSet {namespace}/{name}: {field} {reason}")]
    ClaimTemplateChange {
        /// Namespace of the StatefulSet.
        namespace: String,
        /// The StatefulSet (the REC's name).
        name: String,
        /// The REC field at the origin, e.g. `spec.persistentSpec.volumeSize`.
        field: &'static str,
        /// What changed and how to fix it.
        reason: String,
    },
    /// A node's bootstrap ended in `error`; it is retried with backoff.
    #[error("the bootstrap of pod {pod} failed: {error_code}: {details}; retrying")]
    BootstrapFailed {
        /// The pod.
        pod: String,
        /// The node's `error_code`.
        error_code: String,
        /// The node's `error_details`.
        details: String,
    },
}

impl ErrorCategory for ClusterError {
    /// A stable name of the variant, for event reasons, condition reasons and metric labels.
    fn category(&self) -> &'static str {
        match self {
            Self::Kubernetes { source, .. } => kube_category(source, "KubernetesError"),
            Self::CredentialsSecretInvalid { .. } => "CredentialsSecretInvalid",
            Self::CredentialsSecretMissing { .. } => "CredentialsSecretMissing",
            Self::CredentialsSecretUnverified { .. } => "CredentialsSecretUnverified",
            Self::FinalizerPatch { .. } => "FinalizerPatchFailed",
            Self::LicenseSecretInvalid { .. } => "LicenseSecretInvalid",
            Self::PasswordGeneration { .. } => "PasswordGenerationFailed",
            Self::SecretNotText { .. } => "SecretValueNotText",
            Self::RestClient { .. } => "RestClientInvalid",
            Self::Rest {
                source: EnterpriseError::Busy { .. },
                ..
            } => "RestApiBusy",
            Self::Rest { source, .. } if source.is_transient() => "RestApiUnavailable",
            Self::Rest { .. } => "RestApiError",
            Self::BootstrapFailed { .. } => "BootstrapFailed",
            Self::ClaimTemplateChange { .. } => "VolumeChangeRefused",
        }
    }

    /// Whether the other side asked us to slow down (REST 409 busy, HTTP 429).
    fn is_rate_limited(&self) -> bool {
        match self {
            Self::Rest { source, .. } => source.error_code() == Some("busy"),
            Self::Kubernetes { source, .. } => kube_rate_limited(source),
            _ => false,
        }
    }
}

impl ClusterError {
    /// Whether only a change by the user (a Secret, the spec) can fix it; retries still happen, slowly.
    pub fn is_stalled(&self) -> bool {
        matches!(
            self,
            Self::CredentialsSecretInvalid { .. }
                | Self::CredentialsSecretMissing { .. }
                | Self::LicenseSecretInvalid { .. }
                | Self::SecretNotText { .. }
                | Self::RestClient { .. }
                | Self::ClaimTemplateChange { .. }
        )
    }
}

/// Maps a kube error to [`ClusterError::Kubernetes`] with what was being done.
pub fn kubernetes(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
    let action = action.into();
    move |source| ClusterError::Kubernetes { action, source }
}

/// Maps a REST error to [`ClusterError::Rest`] with what was being done.
pub fn rest(action: impl Into<String>) -> impl FnOnce(EnterpriseError) -> ClusterError {
    let action = action.into();
    move |source| ClusterError::Rest { action, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_tell_busy_unavailable_and_refused_apart() {
        let busy = ClusterError::Rest {
            action: "join pod rec-1".into(),
            source: EnterpriseError::Busy {
                endpoint: "POST /v1/bootstrap/join_cluster".into(),
                attempts: 3,
                description: "busy".into(),
            },
        };
        assert_eq!(busy.category(), "RestApiBusy");
        assert!(busy.is_rate_limited());
        let api = |status| ClusterError::Rest {
            action: "create the cluster on pod rec-0".into(),
            source: EnterpriseError::Api {
                endpoint: "POST /v1/bootstrap/create_cluster".into(),
                status,
                error_code: "x".into(),
                description: "y".into(),
            },
        };
        assert_eq!(api(500).category(), "RestApiUnavailable");
        assert_eq!(api(400).category(), "RestApiError");
        assert!(!api(500).is_rate_limited() && !api(500).is_stalled());
        let secret = ClusterError::CredentialsSecretInvalid {
            namespace: "ns".into(),
            name: "rec".into(),
            key: "password",
        };
        assert!(secret.is_stalled());
        assert!(secret.to_string().contains("has no `password` key"));
    }
}
