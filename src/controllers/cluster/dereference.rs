//! Dereference stage: reads everything a cluster's reconcile depends on and changes nothing: the credentials and
//! license Secrets, the live StatefulSet and pods, and the REST API's view (`GET /v1/nodes` on the cluster,
//! `GET /v1/bootstrap` on nodes that are not active members). It also draws the random password a new
//! credentials Secret gets, because that is the one input that is not read from anywhere.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::error::{ClusterError, kubernetes};
use crate::api::RedisEnterpriseCluster;
use crate::controllers::password::{self, secret_text};
use crate::controllers::{ControllerContext, EnterpriseAccess, credentials_secret_name, secret_value};
use crate::desired::cluster::STORAGE_VOLUME;
use crate::enterprise::states::{BootstrapState, ClusterState, NodeStatus};
use crate::enterprise::types::{BootstrapStatus, Credentials, Node};
use crate::enterprise::{EnterpriseClient, EnterpriseError};

/// What was read for one cluster. Its `Debug` shows no Secret data and no password.
pub struct Observed {
    /// The credentials Secret, if it exists.
    pub credentials_secret: Option<Secret>,
    /// Admin credentials: from the Secret when it has both keys, else freshly generated when it does not exist.
    pub credentials: Option<Credentials>,
    /// The cluster's own CA from the credentials Secret (`ca.crt`).
    pub cluster_ca: Option<Vec<u8>>,
    /// The license Secret named by `licenseSecretName`, if set and existing.
    pub license_secret: Option<Secret>,
    /// The live StatefulSet.
    pub stateful_set: Option<StatefulSet>,
    /// The cluster's pods by ordinal.
    pub pods: BTreeMap<i32, Pod>,
    /// What the REST API said.
    pub rest: RestState,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field(
                "credentials_secret",
                &self.credentials_secret.as_ref().map(ResourceExt::name_any),
            )
            .field("credentials", &self.credentials)
            .field("cluster_ca", &self.cluster_ca.as_ref().map(|_| "<redacted>"))
            .field(
                "license_secret",
                &self.license_secret.as_ref().map(ResourceExt::name_any),
            )
            .field("stateful_set", &self.stateful_set.as_ref().map(ResourceExt::name_any))
            .field("pods", &self.pods.keys().collect::<Vec<_>>())
            .field("rest", &self.rest)
            .finish()
    }
}

/// The REST API's view of the cluster.
#[derive(Debug, Default)]
pub struct RestState {
    /// `GET /v1/nodes` on the cluster service, when the cluster exists.
    pub nodes: Option<Result<Vec<Node>, EnterpriseError>>,
    /// `GET /v1/bootstrap` of each pod (with an address) that is not an active member.
    pub bootstrap: BTreeMap<i32, Result<BootstrapStatus, EnterpriseError>>,
}

impl Observed {
    /// Pod `ordinal`'s IP, once it has one.
    pub fn pod_ip(&self, ordinal: i32) -> Option<&str> {
        self.pods
            .get(&ordinal)
            .and_then(|pod| pod.status.as_ref())
            .and_then(|status| status.pod_ip.as_deref())
            .filter(|ip| !ip.is_empty())
    }

    /// Whether pod `ordinal` is Ready.
    pub fn pod_ready(&self, ordinal: i32) -> bool {
        self.pods.get(&ordinal).is_some_and(pod_is_ready)
    }

    /// Whether pod `ordinal`'s node is an `active` member according to `GET /v1/nodes`.
    pub fn node_active(&self, ordinal: i32) -> bool {
        is_active_member(self.rest.nodes.as_ref(), self.pod_ip(ordinal))
    }

    /// The live StatefulSet's replicas.
    pub fn live_replicas(&self) -> Option<i32> {
        self.stateful_set.as_ref()?.spec.as_ref()?.replicas
    }
}

/// Whether a pod has the Ready condition.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A new admin password from the one generator ([`password::generate_password`]); a failing random source is an
/// error naming the cluster.
pub fn generate_password(cluster: &str) -> Result<String, ClusterError> {
    password::generate_password().map_err(|error| ClusterError::PasswordGeneration {
        cluster: cluster.to_string(),
        reason: error.reason,
    })
}

fn ordinal_of(cluster: &str, pod: &Pod) -> Option<i32> {
    pod.name_any().strip_prefix(&format!("{cluster}-"))?.parse().ok()
}

/// Reads everything the reconcile of `cluster` depends on.
pub async fn dereference(
    context: &ControllerContext,
    cluster: &RedisEnterpriseCluster,
) -> Result<Observed, ClusterError> {
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_string());
    let name = cluster.name_any();
    let client = &context.client;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);

    let secret_name = credentials_secret_name(cluster);
    let credentials_secret = secrets.get_opt(&secret_name).await.map_err(kubernetes(format!(
        "read the credentials Secret {namespace}/{secret_name}"
    )))?;
    let (credentials, cluster_ca) = match &credentials_secret {
        Some(secret) => {
            let text = |key| secret_text(secret, key).map_err(|source| ClusterError::SecretNotText { source });
            let credentials = text("username")?
                .zip(text("password")?)
                .map(|(username, password)| Credentials { username, password });
            (credentials, secret_value(secret, crate::controllers::CA_KEY))
        }
        // Generated only when nothing is known about the cluster yet; see `check_never_bootstrapped` below.
        None => {
            let username = cluster
                .spec
                .username
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| crate::manifests::validate::DEFAULT_USERNAME.to_string());
            let password = generate_password(&name)?;
            (Some(Credentials { username, password }), None)
        }
    };

    let license_secret = match cluster.spec.license_secret_name.as_deref().filter(|n| !n.is_empty()) {
        Some(license_name) => secrets.get_opt(license_name).await.map_err(kubernetes(format!(
            "read the license Secret {namespace}/{license_name}"
        )))?,
        None => None,
    };

    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    let stateful_set = stateful_sets
        .get_opt(&name)
        .await
        .map_err(kubernetes(format!("read the StatefulSet {namespace}/{name}")))?;

    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let selector = format!("app=redis-enterprise,redis.io/role=node,redis.io/cluster={name}");
    let pods: BTreeMap<i32, Pod> = pods_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kubernetes(format!("list the pods of cluster {namespace}/{name}")))?
        .items
        .into_iter()
        .filter_map(|pod| ordinal_of(&name, &pod).map(|ordinal| (ordinal, pod)))
        .collect();

    if credentials_secret.is_none() {
        let candidate = credentials.clone().unwrap_or_else(|| Credentials {
            username: String::new(),
            password: String::new(),
        });
        let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
        let claim_name = format!("{STORAGE_VOLUME}-{name}-0");
        let claim_exists = pods.is_empty()
            && claim
                .get_opt(&claim_name)
                .await
                .map_err(kubernetes(format!(
                    "read the PersistentVolumeClaim {namespace}/{claim_name}"
                )))?
                .is_some();
        let mut probes = BTreeMap::new();
        for (ordinal, pod) in &pods {
            let has_address = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .is_some_and(|ip| !ip.is_empty());
            if !has_address {
                probes.insert(*ordinal, Probe::NoAddress);
                continue;
            }
            let node = node_client(context, &namespace, &name, *ordinal, &candidate, None)?;
            let answer = node.bootstrap().await.map(|b| b.bootstrap_status.state);
            probes.insert(*ordinal, Probe::Answered(answer));
        }
        let known_state = cluster
            .status
            .as_ref()
            .and_then(|s| s.state.as_deref())
            .map(ClusterState::from);
        check_never_bootstrapped(&name, known_state, &probes, claim_exists.then_some(claim_name.as_str())).map_err(
            |verdict| match verdict {
                Verdict::Bootstrapped(evidence) => ClusterError::CredentialsSecretMissing {
                    namespace: namespace.clone(),
                    name: secret_name.clone(),
                    cluster: name.clone(),
                    evidence,
                },
                Verdict::Unknown(reason) => ClusterError::CredentialsSecretUnverified {
                    namespace: namespace.clone(),
                    name: secret_name.clone(),
                    cluster: name.clone(),
                    reason,
                },
            },
        )?;
    }

    let mut observed = Observed {
        credentials_secret,
        credentials,
        cluster_ca,
        license_secret,
        stateful_set,
        pods,
        rest: RestState::default(),
    };
    // A Secret that exists without both keys is reported by the validate stage; nothing to ask the cluster then.
    if let Some(credentials) = observed.credentials.clone() {
        observed.rest = read_rest_state(context, cluster, &observed, &credentials).await?;
    }
    Ok(observed)
}

/// What a pod said to `GET /v1/bootstrap` while the admin Secret is missing.
#[derive(Debug)]
pub enum Probe {
    /// The pod has no address yet.
    NoAddress,
    /// Its bootstrap state, or the error.
    Answered(Result<BootstrapState, EnterpriseError>),
}

/// Why no new admin password may be generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The cluster exists; the evidence, for the message.
    Bootstrapped(String),
    /// A pod did not answer; which and why.
    Unknown(String),
}

/// Whether a cluster whose admin Secret is missing was never bootstrapped, so that a new password is safe: its
/// status never reached a state where the cluster exists, every pod answers `idle` (a member answers HTTP 401 to
/// the fresh password, a node that bootstrapped answers another state), and without pods no volume claim of an
/// earlier cluster (`claim`) is left.
pub fn check_never_bootstrapped(
    cluster: &str,
    known_state: Option<ClusterState>,
    probes: &BTreeMap<i32, Probe>,
    claim: Option<&str>,
) -> Result<(), Verdict> {
    if let Some(known) = known_state.filter(ClusterState::cluster_exists) {
        return Err(Verdict::Bootstrapped(format!("its status.state is {known}")));
    }
    let mut unknown = None;
    for (ordinal, probe) in probes {
        let pod = format!("{cluster}-{ordinal}");
        match probe {
            Probe::Answered(Ok(BootstrapState::Idle)) => {}
            Probe::Answered(Ok(state)) => {
                return Err(Verdict::Bootstrapped(format!(
                    "pod {pod} reports bootstrap state {state}"
                )));
            }
            Probe::Answered(Err(EnterpriseError::Unauthorized { .. })) => {
                return Err(Verdict::Bootstrapped(format!(
                    "pod {pod} answers as a cluster member and refuses a new password (HTTP 401)"
                )));
            }
            Probe::Answered(Err(error)) => {
                unknown.get_or_insert_with(|| format!("pod {pod} does not answer GET /v1/bootstrap ({error})"));
            }
            Probe::NoAddress => {
                unknown.get_or_insert_with(|| format!("pod {pod} has no address yet"));
            }
        }
    }
    if let Some(reason) = unknown {
        return Err(Verdict::Unknown(reason));
    }
    if let Some(claim) = claim {
        return Err(Verdict::Bootstrapped(format!(
            "the PersistentVolumeClaim {claim} of its nodes exists; if no cluster ever ran on it, delete the claim \
             instead"
        )));
    }
    Ok(())
}

fn rest_client(
    context: &ControllerContext,
    url: String,
    credentials: &Credentials,
    cluster_ca: Option<&[u8]>,
) -> Result<EnterpriseClient, ClusterError> {
    context
        .enterprise
        .client(url.clone(), credentials.clone(), cluster_ca)
        .map_err(|source| ClusterError::RestClient { url, source })
}

/// A client of pod `ordinal`'s own REST API.
pub fn node_client(
    context: &ControllerContext,
    namespace: &str,
    cluster: &str,
    ordinal: i32,
    credentials: &Credentials,
    cluster_ca: Option<&[u8]>,
) -> Result<EnterpriseClient, ClusterError> {
    let url = EnterpriseAccess::node_url(namespace, cluster, &format!("{cluster}-{ordinal}"));
    rest_client(context, url, credentials, cluster_ca)
}

/// Reads the REST state with as few calls as a healthy cluster needs: one `GET /v1/nodes` when the cluster is
/// known to exist; `GET /v1/bootstrap` only on pods whose node is not an active member.
async fn read_rest_state(
    context: &ControllerContext,
    cluster: &RedisEnterpriseCluster,
    observed: &Observed,
    credentials: &Credentials,
) -> Result<RestState, ClusterError> {
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_string());
    let name = cluster.name_any();
    let ca = observed.cluster_ca.as_deref();
    let cluster_client = rest_client(
        context,
        EnterpriseAccess::cluster_url(&namespace, &name),
        credentials,
        ca,
    )?;
    let known_state = cluster
        .status
        .as_ref()
        .and_then(|s| s.state.as_deref())
        .map(ClusterState::from);
    let mut rest = RestState::default();
    if known_state.as_ref().is_some_and(ClusterState::cluster_exists) {
        rest.nodes = Some(cluster_client.nodes().await);
    }
    let to_probe: Vec<i32> = observed
        .pods
        .keys()
        .copied()
        .filter(|&ordinal| {
            let ip = observed.pod_ip(ordinal);
            ip.is_some() && !is_active_member(rest.nodes.as_ref(), ip)
        })
        .collect();
    for ordinal in to_probe {
        let client = node_client(context, &namespace, &name, ordinal, credentials, ca)?;
        let status = client.bootstrap().await.map(|bootstrap| bootstrap.bootstrap_status);
        rest.bootstrap.insert(ordinal, status);
    }
    let first_completed =
        matches!(rest.bootstrap.get(&0), Some(Ok(status)) if status.state == BootstrapState::Completed);
    if rest.nodes.is_none() && first_completed {
        rest.nodes = Some(cluster_client.nodes().await);
    }
    Ok(rest)
}

/// Whether the node at `ip` is an `active` member in a `GET /v1/nodes` answer.
fn is_active_member(nodes: Option<&Result<Vec<Node>, EnterpriseError>>, ip: Option<&str>) -> bool {
    match (nodes, ip) {
        (Some(Ok(nodes)), Some(ip)) => nodes
            .iter()
            .any(|node| node.addr == ip && node.status == NodeStatus::Active),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_password_only_for_a_cluster_that_never_bootstrapped() {
        let none = BTreeMap::new();
        assert_eq!(check_never_bootstrapped("rec", None, &none, None), Ok(()));
        assert_eq!(
            check_never_bootstrapped("rec", Some(ClusterState::Running), &none, None),
            Err(Verdict::Bootstrapped("its status.state is Running".into()))
        );
        assert_eq!(
            check_never_bootstrapped("rec", None, &none, Some("redis-enterprise-storage-rec-0")),
            Err(Verdict::Bootstrapped(
                "the PersistentVolumeClaim redis-enterprise-storage-rec-0 of its nodes exists; if no cluster ever ran \
                 on it, delete the claim instead"
                    .into()
            ))
        );
        let probes = |answers: Vec<Probe>| -> BTreeMap<i32, Probe> { (0..).zip(answers).collect() };
        let idle = || Probe::Answered(Ok("idle".into()));
        assert_eq!(
            check_never_bootstrapped(
                "rec",
                Some(ClusterState::BootstrappingFirstPod),
                &probes(vec![idle(), idle()]),
                None
            ),
            Ok(())
        );
        assert_eq!(
            check_never_bootstrapped(
                "rec",
                None,
                &probes(vec![idle(), Probe::Answered(Ok("completed".into()))]),
                None
            ),
            Err(Verdict::Bootstrapped(
                "pod rec-1 reports bootstrap state completed".into()
            ))
        );
        let refused = Probe::Answered(Err(EnterpriseError::Unauthorized {
            endpoint: "GET /v1/bootstrap".into(),
        }));
        assert_eq!(
            check_never_bootstrapped("rec", None, &probes(vec![refused]), None),
            Err(Verdict::Bootstrapped(
                "pod rec-0 answers as a cluster member and refuses a new password (HTTP 401)".into()
            ))
        );
        assert_eq!(
            check_never_bootstrapped("rec", None, &probes(vec![idle(), Probe::NoAddress]), None),
            Err(Verdict::Unknown("pod rec-1 has no address yet".into()))
        );
    }

    #[test]
    fn debug_shows_no_secret_data() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "rec"}, "data": {"password": "c2VjcmV0LXZhbHVl"}
        }))
        .expect("secret");
        let observed = Observed {
            credentials_secret: Some(secret),
            credentials: Some(Credentials {
                username: "admin".into(),
                password: "secret-value".into(),
            }),
            cluster_ca: None,
            license_secret: None,
            stateful_set: None,
            pods: BTreeMap::new(),
            rest: RestState::default(),
        };
        let shown = format!("{observed:?}");
        assert!(
            !shown.contains("secret-value") && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
        assert!(shown.contains("\"rec\""), "{shown}");
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let first = generate_password("rec").expect("random");
        let second = generate_password("rec").expect("random");
        assert_eq!(first.len(), 32);
        assert_ne!(first, second);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()), "{first}");
    }
}
