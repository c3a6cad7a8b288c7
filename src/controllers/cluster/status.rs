//! Status stage: derives the REC's `status` (state, specStatus, clusterCredentialSecretName, observedGeneration
//! and the Ready / Reconciling / Stalled conditions) from what was applied and observed, and writes it with
//! server-side apply under the cluster field manager only when one of these fields changed. Conditions of other
//! writers (the GitSync's `Synced`) and `sourceRevision` are left alone.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use super::error::{ClusterError, kubernetes};
use crate::api::RedisEnterpriseCluster;
use crate::api::cluster::RedisEnterpriseClusterStatus;
use crate::api::conditions::{Condition, types};
use crate::controllers::CLUSTER_FIELD_MANAGER;
use crate::enterprise::states::ClusterState;
use crate::runtime::conditions::{Clock, SystemClock, new_condition, set_condition};
use k8s_openapi::jiff::Timestamp;

/// One condition's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionValue {
    /// True or False.
    pub status: bool,
    /// PascalCase reason.
    pub reason: String,
    /// What a user can act on.
    pub message: String,
}

impl ConditionValue {
    /// A condition that holds.
    pub fn yes(reason: &str, message: impl Into<String>) -> Self {
        Self {
            status: true,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn no(reason: &str, message: impl Into<String>) -> Self {
        Self {
            status: false,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Everything this controller reports about one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `status.state`.
    pub state: ClusterState,
    /// `Valid` or `Invalid`.
    pub spec_status: &'static str,
    /// `clusterCredentialSecretName`, once known.
    pub credentials_secret_name: Option<String>,
    /// Ready: the cluster runs as the spec asks and this generation was observed.
    pub ready: ConditionValue,
    /// Reconciling: work under way.
    pub reconciling: ConditionValue,
    /// Stalled: no progress without a change by the user.
    pub stalled: ConditionValue,
}

const OUR_CONDITIONS: [&str; 3] = [types::READY, types::RECONCILING, types::STALLED];

/// The status fields this controller owns after `report` at `now`, or `None` when the live status already says so.
pub fn next_status(
    old: Option<&RedisEnterpriseClusterStatus>,
    report: &Report,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Value> {
    let old = old.cloned().unwrap_or_default();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let mut changed = false;
    for (type_, value) in OUR_CONDITIONS
        .iter()
        .zip([&report.ready, &report.reconciling, &report.stalled])
    {
        changed |= set_condition(
            &mut conditions,
            new_condition(
                type_,
                value.status,
                &value.reason,
                value.message.clone(),
                generation,
                now,
            ),
        );
    }
    changed |= old.state.as_deref() != Some(report.state.as_str())
        || old.spec_status.as_deref() != Some(report.spec_status)
        || old.observed_generation != generation
        || report.credentials_secret_name.is_some()
            && old.cluster_credential_secret_name != report.credentials_secret_name;
    if !changed {
        return None;
    }
    let ours: Vec<Condition> = conditions
        .into_iter()
        .filter(|c| OUR_CONDITIONS.contains(&c.type_.as_str()))
        .collect();
    let mut status = json!({
        "state": report.state,
        "specStatus": report.spec_status,
        "conditions": ours,
    });
    if let Some(generation) = generation {
        status["observedGeneration"] = json!(generation);
    }
    if let Some(name) = &report.credentials_secret_name {
        status["clusterCredentialSecretName"] = json!(name);
    }
    Some(status)
}

/// Writes `report` into the REC's status when something changed; returns the REC's new resourceVersion then.
pub async fn write_status(
    client: &kube::Client,
    cluster: &RedisEnterpriseCluster,
    report: &Report,
) -> Result<Option<String>, ClusterError> {
    let now = SystemClock.now();
    let Some(status) = next_status(cluster.status.as_ref(), report, cluster.metadata.generation, now) else {
        return Ok(None);
    };
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_string());
    let name = cluster.name_any();
    let api: Api<RedisEnterpriseCluster> = Api::namespaced(client.clone(), &namespace);
    let body = json!({
        "apiVersion": RedisEnterpriseCluster::api_version(&()),
        "kind": RedisEnterpriseCluster::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(CLUSTER_FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(kubernetes(format!(
            "write the status of RedisEnterpriseCluster {namespace}/{name}"
        )))?;
    Ok(Some(written.resource_version().unwrap_or_default()))
}

/// The condition of `type_` in a status.
pub fn condition<'a>(status: Option<&'a RedisEnterpriseClusterStatus>, type_: &str) -> Option<&'a Condition> {
    status?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> Report {
        Report {
            state: ClusterState::Running,
            spec_status: "Valid",
            credentials_secret_name: Some("rec".into()),
            ready: ConditionValue::yes("ClusterRunning", "all 3 nodes are active"),
            reconciling: ConditionValue::no("ReconciliationSucceeded", "nothing to do"),
            stalled: ConditionValue::no("NotStalled", "nothing blocks"),
        }
    }

    #[test]
    fn an_unchanged_report_writes_nothing_and_other_conditions_are_not_sent() {
        let first = next_status(None, &running(), Some(2), Timestamp::UNIX_EPOCH).expect("first write");
        assert_eq!(first["state"], "Running");
        assert_eq!(first["conditions"].as_array().map(Vec::len), Some(3));
        let mut live: RedisEnterpriseClusterStatus = serde_json::from_value(first).expect("status");
        live.conditions.get_or_insert_with(Vec::new).push(Condition {
            type_: types::SYNCED.into(),
            status: "True".into(),
            reason: "Applied".into(),
            message: String::new(),
            observed_generation: Some(2),
            last_transition_time: "t".into(),
        });
        live.source_revision = Some("main@sha1:abc".into());
        assert_eq!(
            next_status(Some(&live), &running(), Some(2), Timestamp::UNIX_EPOCH),
            None
        );
        let newer = next_status(Some(&live), &running(), Some(3), Timestamp::UNIX_EPOCH).expect("new generation");
        let types: Vec<&str> = newer["conditions"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(types, ["Ready", "Reconciling", "Stalled"]);
        assert!(newer.get("sourceRevision").is_none());
    }
}
