//! Validate stage (no I/O): the spec through the shared semantic validation (`manifests::validate`), then the
//! references the dereference stage read: the credentials Secret must carry `username` and `password`, the license
//! Secret (when named) a `license` key.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::dereference::Observed;
use super::error::ClusterError;
use crate::api::{RedisEnterpriseCluster, keys};
use crate::controllers::{credentials_secret_name, secret_value};
use crate::enterprise::types::Credentials;
use crate::manifests::Severity;
use crate::manifests::validate::validate_cluster;
use crate::model::ValidatedCluster;

/// A spec that failed validation: one line per problem, `path: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSpec {
    /// Every error, `spec.nodes: ...`.
    pub message: String,
}

/// Everything the build and apply stages need, checked. Its `Debug` shows neither the password nor the license.
#[derive(Clone)]
pub struct Validated {
    /// The spec with defaults applied.
    pub cluster: ValidatedCluster,
    /// Admin credentials.
    pub credentials: Credentials,
    /// The license, when one is configured (inline or from its Secret).
    pub license: Option<String>,
    /// Whether the credentials Secret is the agent's own (created by it), as opposed to a user's.
    pub owns_credentials_secret: bool,
}

impl std::fmt::Debug for Validated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validated")
            .field("cluster", &self.cluster.name)
            .field("credentials", &self.credentials)
            .field("license", &self.license.as_ref().map(|_| "<redacted>"))
            .field("owns_credentials_secret", &self.owns_credentials_secret)
            .finish()
    }
}

/// Whether `secret` is the credentials Secret the agent created for `cluster`: it carries the agent's labels for
/// that cluster (it has no owner reference, so it outlives the REC), or the owner reference older agents gave it.
pub fn is_agent_credentials_secret(cluster: &RedisEnterpriseCluster, secret: &Secret) -> bool {
    let labels = secret.labels();
    let name = cluster.name_any();
    let labelled = labels.get(keys::MANAGED_BY).map(String::as_str) == Some(keys::MANAGER)
        && labels.get(keys::INSTANCE) == Some(&name)
        && labels.get(keys::COMPONENT).map(String::as_str) == Some("credentials");
    let uid = cluster.uid();
    labelled
        || secret
            .owner_references()
            .iter()
            .any(|owner| owner.controller == Some(true) && Some(&owner.uid) == uid.as_ref())
}

/// Validates the spec alone.
pub fn validate_spec(cluster: &RedisEnterpriseCluster) -> Result<ValidatedCluster, InvalidSpec> {
    validate_cluster(cluster)
        .map(|(validated, _warnings)| validated)
        .map_err(|issues| InvalidSpec {
            message: issues
                .iter()
                .filter(|issue| issue.severity == Severity::Error)
                .map(|issue| format!("{}: {}", issue.path, issue.message))
                .collect::<Vec<_>>()
                .join("; "),
        })
}

/// Checks the references the dereference stage read.
pub fn validate_references(
    cluster: &RedisEnterpriseCluster,
    validated: ValidatedCluster,
    observed: &Observed,
) -> Result<Validated, ClusterError> {
    let namespace = validated.namespace.clone();
    let credentials = match (&observed.credentials_secret, &observed.credentials) {
        (_, Some(credentials)) => credentials.clone(),
        (Some(secret), None) => {
            let key = if secret_value(secret, "username").is_none() {
                "username"
            } else {
                "password"
            };
            return Err(ClusterError::CredentialsSecretInvalid {
                namespace,
                name: credentials_secret_name(cluster),
                key,
            });
        }
        (None, None) => {
            return Err(ClusterError::CredentialsSecretInvalid {
                namespace,
                name: credentials_secret_name(cluster),
                key: "password",
            });
        }
    };
    let license = match &validated.license_secret_name {
        Some(name) => {
            let secret = observed
                .license_secret
                .as_ref()
                .ok_or_else(|| ClusterError::LicenseSecretInvalid {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    problem: "does not exist",
                })?;
            let license = crate::controllers::password::secret_text(secret, "license")
                .map_err(|source| ClusterError::SecretNotText { source })?
                .ok_or_else(|| ClusterError::LicenseSecretInvalid {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    problem: "has no `license` key",
                })?;
            Some(license)
        }
        None => cluster.spec.license.clone().filter(|l| !l.trim().is_empty()),
    };
    let owns_credentials_secret = match &observed.credentials_secret {
        None => true,
        Some(secret) => is_agent_credentials_secret(cluster, secret),
    };
    Ok(Validated {
        cluster: validated,
        credentials,
        license,
        owns_credentials_secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_even_node_count_is_reported_with_its_path() {
        let cluster: RedisEnterpriseCluster = serde_saphyr::from_str(
            "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata: {name: rec, namespace: ns}\nspec: {nodes: 4}\n",
        )
        .expect("fixture");
        let invalid = validate_spec(&cluster).expect_err("4 nodes is invalid");
        assert!(
            invalid
                .message
                .starts_with("spec.nodes: a cluster of 4 nodes cannot keep a quorum"),
            "{}",
            invalid.message
        );
    }
}
