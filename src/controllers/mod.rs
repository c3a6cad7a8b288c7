//! The controllers that make the specs real: `cluster` turns a REC into a running Redis Enterprise cluster,
//! `database` turns a REDB into a database (design.md §3). This module holds what both share: how the agent reaches
//! a cluster's REST API (address, CA, admin credentials); the machinery every controller shares (backoff, events,
//! conditions, shutdown) is in [`crate::runtime`].
//! It reads Secrets and RECs; it writes nothing.

pub mod cluster;
pub mod database;
pub mod password;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::api::RedisEnterpriseCluster;
use crate::enterprise::types::Credentials;
use crate::enterprise::{ClientConfig, EnterpriseClient, EnterpriseError, RetryPolicy};
use crate::telemetry::Metrics;

/// Field manager of everything the cluster controller writes (children and REC status).
pub const CLUSTER_FIELD_MANAGER: &str = "redis-gitops/cluster";
/// Field manager of everything the database controller writes (children and REDB status).
pub const DATABASE_FIELD_MANAGER: &str = "redis-gitops/database";
/// Port of the Redis Enterprise REST API on every node and on the `<rec>` Service.
pub const REST_API_PORT: u16 = 9443;
/// Key of an optional PEM CA in the cluster's credentials Secret, trusted for that cluster's REST API.
pub const CA_KEY: &str = "ca.crt";

/// How the agent reaches Redis Enterprise REST APIs.
#[derive(Clone)]
pub struct EnterpriseAccess {
    /// CA bundle (PEM) trusted for every cluster's REST API (`agent --enterprise-ca-file`); a cluster's own
    /// `ca.crt` in its credentials Secret is trusted in addition.
    pub ca_pem: Vec<u8>,
    /// Name resolution instead of the system's (the sandbox maps in-cluster names to loopback addresses).
    pub resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
    /// Time limit of one REST call.
    pub timeout: Duration,
    /// Retries of one REST call (409 busy, 5xx on idempotent calls).
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for EnterpriseAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnterpriseAccess")
            .field("ca_pem", &format!("{} bytes", self.ca_pem.len()))
            .field("resolver", &self.resolver.is_some())
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl EnterpriseAccess {
    /// The REST API of a cluster, through its `<rec>` Service.
    pub fn cluster_url(namespace: &str, cluster: &str) -> String {
        format!("https://{cluster}.{namespace}.svc:{REST_API_PORT}")
    }

    /// The REST API of one node, through the governing headless Service (`<pod>.<rec>-headless.<ns>.svc`).
    pub fn node_url(namespace: &str, cluster: &str, pod: &str) -> String {
        format!("https://{pod}.{cluster}-headless.{namespace}.svc:{REST_API_PORT}")
    }

    /// A client of `base_url` with `credentials`, trusting the agent's CA bundle plus `cluster_ca`.
    pub fn client(
        &self,
        base_url: String,
        credentials: Credentials,
        cluster_ca: Option<&[u8]>,
    ) -> Result<EnterpriseClient, EnterpriseError> {
        let mut ca_pem = self.ca_pem.clone();
        if let Some(extra) = cluster_ca {
            ca_pem.push(b'\n');
            ca_pem.extend_from_slice(extra);
        }
        EnterpriseClient::new(ClientConfig {
            base_url,
            credentials,
            ca_pem,
            timeout: self.timeout,
            retry: self.retry,
            resolver: self.resolver.clone(),
        })
    }
}

/// What every controller of the agent shares.
#[derive(Clone)]
pub struct ControllerContext {
    /// The Kubernetes API client.
    pub client: kube::Client,
    /// How to reach Redis Enterprise REST APIs.
    pub enterprise: EnterpriseAccess,
    /// The agent's metrics.
    pub metrics: Arc<Metrics>,
    /// The pod name of this agent, reported on events.
    pub instance: Option<String>,
    /// REST clients by cluster, reused across reconciles (one connection pool and TLS session cache per cluster).
    pub clients: ClientCache,
}

/// REST clients by cluster URL, each remembered with a digest of the credentials and CA it was built with, so a
/// rotated password or CA builds a new one. Without it, every reconcile of every database built its own client:
/// a TLS handshake per reconcile and, with many databases reconciled at once, a connection pool each.
#[derive(Clone, Default)]
pub struct ClientCache {
    clients: Arc<Mutex<HashMap<String, CachedClient>>>,
}

/// A client and the digest of the credentials and CA it was built with.
type CachedClient = ([u8; 32], EnterpriseClient);

impl ClientCache {
    fn get_or_build(
        &self,
        base_url: String,
        admin: ClusterAdmin,
        build: impl FnOnce(String, Credentials, Option<&[u8]>) -> Result<EnterpriseClient, EnterpriseError>,
    ) -> Result<EnterpriseClient, EnterpriseError> {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for part in [
            admin.credentials.username.as_bytes(),
            admin.credentials.password.as_bytes(),
            admin.ca_pem.as_deref().unwrap_or_default(),
        ] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let digest: [u8; 32] = hasher.finalize().into();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, client)) = clients.get(&base_url)
            && *known == digest
        {
            return Ok(client.clone());
        }
        let client = build(base_url.clone(), admin.credentials, admin.ca_pem.as_deref())?;
        clients.insert(base_url, (digest, client.clone()));
        Ok(client)
    }
}

/// A cluster's administrator credentials, as its credentials Secret holds them. Debug never shows the password.
#[derive(Clone)]
pub struct ClusterAdmin {
    /// User name and password.
    pub credentials: Credentials,
    /// The cluster's own CA (`ca.crt`), when the Secret carries one.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ClusterAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAdmin")
            .field("credentials", &self.credentials)
            .field("ca_pem", &self.ca_pem.is_some())
            .finish()
    }
}

/// Failure to reach a cluster's REST API.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The credentials Secret does not exist (yet).
    #[error("the credentials Secret {namespace}/{name} of cluster {cluster} does not exist")]
    SecretNotFound {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The cluster.
        cluster: String,
    },
    /// A value of the credentials Secret is not UTF-8 text; names the Secret and key.
    #[error("{source}")]
    SecretNotText {
        /// Which Secret and key.
        #[source]
        source: password::NotUtf8,
    },
    /// The credentials Secret lacks a key.
    #[error("the credentials Secret {namespace}/{name} has no `{key}` key; add it (keys `username` and `password`)")]
    SecretKeyMissing {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The missing key.
        key: &'static str,
    },
    /// The API server could not be read.
    #[error(
        "failed to read the credentials Secret {namespace}/{name}: {}",
        crate::runtime::errors::kube_error_text(source)
    )]
    Kubernetes {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
    /// The REST client could not be built (for example an unusable CA).
    #[error("unable to set up the REST client of cluster {cluster}: {source}")]
    Client {
        /// The cluster.
        cluster: String,
        /// The client error.
        #[source]
        source: EnterpriseError,
    },
}

impl ConnectionError {
    /// A stable name of the variant, for event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Self::SecretNotFound { .. } => "CredentialsSecretNotFound",
            Self::SecretKeyMissing { .. } | Self::SecretNotText { .. } => "CredentialsSecretInvalid",
            Self::Kubernetes { source, .. } => crate::runtime::errors::kube_category(source, "Kubernetes"),
            Self::Client { .. } => "RestClient",
        }
    }
}

/// The name of a cluster's credentials Secret: `clusterCredentialSecretName`, or the REC's own name.
pub fn credentials_secret_name(cluster: &RedisEnterpriseCluster) -> String {
    cluster
        .spec
        .cluster_credential_secret_name
        .clone()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| cluster.metadata.name.clone().unwrap_or_default())
}

/// Reads a cluster's administrator credentials from its Secret (keys `username`, `password`, optional `ca.crt`).
pub async fn read_cluster_admin(
    client: &kube::Client,
    namespace: &str,
    cluster: &RedisEnterpriseCluster,
) -> Result<ClusterAdmin, ConnectionError> {
    let name = credentials_secret_name(cluster);
    let cluster_name = cluster.metadata.name.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(&name)
        .await
        .map_err(|source| ConnectionError::Kubernetes {
            namespace: namespace.to_string(),
            name: name.clone(),
            source,
        })?
        .ok_or_else(|| ConnectionError::SecretNotFound {
            namespace: namespace.to_string(),
            name: name.clone(),
            cluster: cluster_name,
        })?;
    let value = |key: &str| secret_value(&secret, key);
    let text =
        |key: &str| password::secret_text(&secret, key).map_err(|source| ConnectionError::SecretNotText { source });
    let missing = |key: &'static str| ConnectionError::SecretKeyMissing {
        namespace: namespace.to_string(),
        name: name.clone(),
        key,
    };
    let username = text("username")?.ok_or_else(|| missing("username"))?;
    let password = text("password")?.ok_or_else(|| missing("password"))?;
    Ok(ClusterAdmin {
        credentials: Credentials { username, password },
        ca_pem: value(CA_KEY),
    })
}

/// One key of a Secret, from `data` or (for Secrets not yet normalised) `stringData`; empty values count as absent.
pub fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| bytes.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(key))
                .map(|text| text.as_bytes().to_vec())
        })
        .filter(|bytes| !bytes.is_empty())
}

/// A client of a cluster's REST API through its `<rec>` Service, with the admin credentials from its Secret.
pub async fn connect_to_cluster(
    context: &ControllerContext,
    namespace: &str,
    cluster: &RedisEnterpriseCluster,
) -> Result<EnterpriseClient, ConnectionError> {
    let admin = read_cluster_admin(&context.client, namespace, cluster).await?;
    let name = cluster.metadata.name.clone().unwrap_or_default();
    context
        .clients
        .get_or_build(
            EnterpriseAccess::cluster_url(namespace, &name),
            admin,
            |url, credentials, ca| context.enterprise.client(url, credentials, ca),
        )
        .map_err(|source| ConnectionError::Client { cluster: name, source })
}

/// How many objects one controller reconciles at once: bounds memory and the load on REST APIs and the API server
/// when a thousand objects want attention together (a cold start), while waiting objects only requeue.
pub const RECONCILE_CONCURRENCY: u16 = 16;

/// The backoff and the jittered resync moved to the shared runtime; re-exported so existing paths resolve.
pub use crate::runtime::{Backoff, resync_interval};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_in_cluster_names() {
        assert_eq!(
            EnterpriseAccess::cluster_url("prod", "rec"),
            "https://rec.prod.svc:9443"
        );
        assert_eq!(
            EnterpriseAccess::node_url("prod", "rec", "rec-2"),
            "https://rec-2.rec-headless.prod.svc:9443"
        );
    }
}
