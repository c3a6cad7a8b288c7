//! Status stage: turns a sync's outcome into the GitSync's status (through the pure [`super::outcome`]), the event
//! that announces it and the metrics, and writes the status with server-side apply only when it changed. It may
//! write the GitSync's status, publish one event and update metrics.

use kube::api::{Api, Patch};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::commit_status::{CONDITION as COMMIT_STATUS_CONDITION, strip_condition};
use super::controller::{Report, SyncContext};
use super::error::{SyncError, kubernetes};
use super::objects::apply_params;
use super::outcome::{Observed, SyncOutcome, event_for, next_status};
use crate::api::gitsync::{GitSync, GitSyncStatus};
use crate::api::keys;
use crate::telemetry::GitSyncLabels;

/// Reports `report`: the event, the last-applied metric, the status. Returns the next action and the category of a
/// failure reported in status, or the error to retry with backoff.
pub async fn report(
    gitsync: &GitSync,
    context: &SyncContext,
    report: Report,
) -> Result<(kube::runtime::controller::Action, Option<&'static str>), SyncError> {
    let old = gitsync.status.clone().unwrap_or_default();
    let observed = Observed {
        generation: gitsync.metadata.generation,
        reconcile_requested_at: gitsync.annotations().get(keys::RECONCILE_REQUESTED_AT).cloned(),
    };
    let now = context.clock.now();
    let mut new = next_status(&old, &observed, &report.outcome, now);
    new.webhook_path = report.webhook_path.clone();
    if let Some(event) = event_for(&old, &report.outcome) {
        context
            .publish(gitsync, event.type_(), event.reason, event.action, &event.note)
            .await;
    }
    if let SyncOutcome::Applied { fetched, applied } = &report.outcome
        && applied.conflicts.is_empty()
    {
        let labels = GitSyncLabels {
            namespace: gitsync.namespace().unwrap_or_else(|| "default".to_string()),
            name: gitsync.name_any(),
        };
        let gauge = context.metrics.last_applied.get_or_create(&labels);
        if old.last_applied_revision.as_deref() != Some(fetched.text().as_str()) || gauge.get() == 0.0 {
            gauge.set(now.as_millisecond() as f64 / 1000.0);
        }
    }
    context.commit_status.observe(gitsync, &report.outcome);
    write_status(gitsync, context, &old, new).await?;
    match report.retry {
        Some(error) => Err(error),
        None => Ok((report.requeue, report.outcome.failure())),
    }
}

/// Writes `new` unless it equals `old`. The `CommitStatusReported` condition is left to its own field manager.
async fn write_status(
    gitsync: &GitSync,
    context: &SyncContext,
    old: &GitSyncStatus,
    mut new: GitSyncStatus,
) -> Result<(), SyncError> {
    let has_condition = |status: &GitSyncStatus| {
        status
            .conditions
            .as_deref()
            .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == COMMIT_STATUS_CONDITION))
    };
    strip_condition(&mut new.conditions);
    let unchanged = if has_condition(old) {
        let mut old = old.clone();
        strip_condition(&mut old.conditions);
        old == new
    } else {
        *old == new
    };
    if unchanged {
        return Ok(());
    }
    let api: Api<GitSync> = Api::namespaced(context.client.clone(), &gitsync.namespace().unwrap_or_default());
    let body = json!({ "apiVersion": GitSync::api_version(&()), "kind": GitSync::kind(&()), "status": new });
    api.patch_status(&gitsync.name_any(), &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(kubernetes(format!(
            "write the status of GitSync {}",
            gitsync.name_any()
        )))?;
    Ok(())
}
