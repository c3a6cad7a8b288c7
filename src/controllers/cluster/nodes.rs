//! Apply stage, REST side: turns pods into cluster members. Pod 0 creates the cluster (`POST
//! /v1/bootstrap/create_cluster`), every further pod joins it in ordinal order (`join_cluster`, naming an existing
//! member), one bootstrap at a time, each followed through `GET /v1/bootstrap` on later reconciles (a requeue, not
//! a blocking loop). A node whose bootstrap ended in `error` is started again and the failure reported, so retries
//! follow the per-object backoff. Only writes when a node is `idle` or in `error`.

use std::collections::BTreeSet;

use kube::ResourceExt;
use serde_json::Value;

use super::dereference::{Observed, node_client};
use super::error::{ClusterError, rest};
use super::validate::Validated;
use crate::controllers::ControllerContext;
use crate::enterprise::states::{BootstrapState, ClusterState};
use crate::enterprise::types::{BootstrapCluster, BootstrapNode, BootstrapRequest, BootstrapStatus, NodeIdentity};

/// Where the cluster's membership stands after this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodesProgress {
    /// Something is under way; look again soon.
    Waiting {
        /// The cluster state to report.
        state: ClusterState,
        /// Condition reason.
        reason: &'static str,
        /// What is awaited, for users.
        message: String,
    },
    /// Every pod's node is an active member.
    Running {
        /// Active members.
        nodes: usize,
    },
}

/// A Normal event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// PascalCase reason.
    pub reason: &'static str,
    /// What happened.
    pub message: String,
}

/// Brings every pod `0..replicas` into the cluster. `joining` remembers joins this controller started, so their
/// completion is announced once (`NodeJoined`).
pub async fn converge_nodes(
    context: &ControllerContext,
    cluster: &crate::api::RedisEnterpriseCluster,
    validated: &Validated,
    observed: &Observed,
    replicas: i32,
    joining: &mut BTreeSet<String>,
    notes: &mut Vec<Note>,
) -> Result<NodesProgress, ClusterError> {
    let namespace = validated.cluster.namespace.as_str();
    let name = cluster.name_any();
    let pod_name = |ordinal: i32| format!("{name}-{ordinal}");
    let exists = observed.rest.nodes.as_ref().is_some_and(Result::is_ok)
        || observed
            .rest
            .bootstrap
            .values()
            .any(|status| matches!(status, Ok(s) if s.state == BootstrapState::Completed));
    let waiting_state = if exists {
        ClusterState::Initializing
    } else {
        ClusterState::BootstrappingFirstPod
    };
    let ca = observed.cluster_ca.as_deref();
    // A cluster that refuses the request (wrong credentials, for one) is a failure to report, not a wait.
    if let Some(Err(error)) = &observed.rest.nodes
        && !error.is_transient()
    {
        return Err(ClusterError::Rest {
            action: format!("list the nodes of cluster {namespace}/{name}"),
            source: error.clone(),
        });
    }

    for ordinal in 0..replicas {
        let pod = pod_name(ordinal);
        let Some(ip) = observed.pod_ip(ordinal) else {
            return Ok(NodesProgress::Waiting {
                state: waiting_state.clone(),
                reason: "WaitingForPod",
                message: format!("waiting for pod {pod} to be created and get an address"),
            });
        };
        if observed.node_active(ordinal) {
            announce_joined(joining, &pod, notes);
            continue;
        }
        let status = match observed.rest.bootstrap.get(&ordinal) {
            None => {
                return Ok(NodesProgress::Waiting {
                    state: waiting_state.clone(),
                    reason: "WaitingForNode",
                    message: format!("waiting for the Redis Enterprise node of pod {pod} to answer"),
                });
            }
            Some(Err(error)) if !observed.pod_ready(ordinal) || error.is_transient() => {
                return Ok(NodesProgress::Waiting {
                    state: waiting_state.clone(),
                    reason: "WaitingForNode",
                    message: format!("waiting for the Redis Enterprise node of pod {pod} to answer: {error}"),
                });
            }
            Some(Err(error)) => {
                return Err(ClusterError::Rest {
                    action: format!("read the bootstrap status of pod {pod}"),
                    source: error.clone(),
                });
            }
            Some(Ok(status)) => status,
        };
        match &status.state {
            BootstrapState::Completed => {}
            BootstrapState::Idle | BootstrapState::Error => {
                let create = !exists;
                if create && ordinal != 0 {
                    // Only pod 0 creates the cluster; the others wait for it.
                    return Ok(NodesProgress::Waiting {
                        state: waiting_state.clone(),
                        reason: "WaitingForFirstPod",
                        message: format!("waiting for pod {} to create the cluster", pod_name(0)),
                    });
                }
                let member = (0..replicas)
                    .filter(|&other| other != ordinal)
                    .find(|&other| {
                        observed.node_active(other)
                            || matches!(observed.rest.bootstrap.get(&other), Some(Ok(s)) if s.state == BootstrapState::Completed)
                    })
                    .and_then(|other| observed.pod_ip(other));
                if !create && member.is_none() {
                    return Ok(NodesProgress::Waiting {
                        state: waiting_state.clone(),
                        reason: "WaitingForMember",
                        message: format!("pod {pod} waits for another member to be up before it joins"),
                    });
                }
                let request = BootstrapRequest {
                    action: if create { "create_cluster" } else { "join_cluster" }.to_string(),
                    cluster: BootstrapCluster {
                        name: format!("{name}.{namespace}.svc.cluster.local"),
                        nodes: member.map(|m| vec![m.to_string()]).unwrap_or_default(),
                    },
                    node: BootstrapNode {
                        identity: NodeIdentity { addr: ip.to_string() },
                    },
                    credentials: validated.credentials.clone(),
                    license: validated.license.clone(),
                };
                let client = node_client(context, namespace, &name, ordinal, &validated.credentials, ca)?;
                let what = if create {
                    format!("create the cluster on pod {pod}")
                } else {
                    format!("join pod {pod} to the cluster")
                };
                client.start_bootstrap(&request).await.map_err(rest(what))?;
                if status.state == BootstrapState::Error {
                    return Err(bootstrap_failure(&pod, status));
                }
                if create {
                    notes.push(Note {
                        reason: "ClusterBootstrapping",
                        message: format!("pod {pod} is creating cluster {name}.{namespace}.svc.cluster.local"),
                    });
                    return Ok(NodesProgress::Waiting {
                        state: ClusterState::BootstrappingFirstPod,
                        reason: "CreatingCluster",
                        message: format!("pod {pod} is creating the cluster"),
                    });
                }
                joining.insert(pod.clone());
                return Ok(NodesProgress::Waiting {
                    state: ClusterState::Initializing,
                    reason: "NodeJoining",
                    message: format!("pod {pod} is joining the cluster ({} of {replicas})", ordinal + 1),
                });
            }
            other => {
                let creating = !exists || (ordinal == 0 && *other == BootstrapState::CreatingCluster);
                return Ok(NodesProgress::Waiting {
                    state: if creating {
                        ClusterState::BootstrappingFirstPod
                    } else {
                        ClusterState::Initializing
                    },
                    reason: if creating { "CreatingCluster" } else { "NodeJoining" },
                    message: format!("pod {pod} is bootstrapping ({other})"),
                });
            }
        }
    }

    // Every pod bootstrapped: the cluster's own view decides.
    let nodes = match &observed.rest.nodes {
        Some(Ok(nodes)) => nodes,
        Some(Err(error)) => {
            return Err(ClusterError::Rest {
                action: format!("list the nodes of cluster {namespace}/{name}"),
                source: error.clone(),
            });
        }
        None => {
            return Ok(NodesProgress::Waiting {
                state: waiting_state.clone(),
                reason: "WaitingForCluster",
                message: "waiting for the cluster's REST API to answer".to_string(),
            });
        }
    };
    for ordinal in 0..replicas {
        if !observed.node_active(ordinal) {
            let pod = pod_name(ordinal);
            let ip = observed.pod_ip(ordinal).unwrap_or_default();
            let status = nodes
                .iter()
                .find(|node| node.addr == ip)
                .map_or("not a member yet", |node| node.status.as_str());
            return Ok(NodesProgress::Waiting {
                state: waiting_state.clone(),
                reason: "NodeNotActive",
                message: format!("waiting for the node of pod {pod} to become active (it is {status})"),
            });
        }
        announce_joined(joining, &pod_name(ordinal), notes);
    }
    Ok(NodesProgress::Running {
        nodes: usize::try_from(replicas).unwrap_or_default(),
    })
}

fn announce_joined(joining: &mut BTreeSet<String>, pod: &str, notes: &mut Vec<Note>) {
    if joining.remove(pod) {
        notes.push(Note {
            reason: "NodeJoined",
            message: format!("pod {pod} joined the cluster and is active"),
        });
    }
}

/// The error a node reported for its failed bootstrap.
pub fn bootstrap_failure(pod: &str, status: &BootstrapStatus) -> ClusterError {
    let details = match &status.error_details {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => "no details".to_string(),
    };
    ClusterError::BootstrapFailed {
        pod: pod.to_string(),
        error_code: status.error_code.clone().unwrap_or_else(|| "unknown".to_string()),
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_bootstrap_names_the_pod_code_and_details() {
        let status = BootstrapStatus {
            state: BootstrapState::Error,
            error_code: Some("invalid_license".into()),
            error_details: Some(json!("the license has expired")),
        };
        assert_eq!(
            bootstrap_failure("rec-0", &status).to_string(),
            "the bootstrap of pod rec-0 failed: invalid_license: the license has expired; retrying"
        );
    }
}
