//! Dereference and fetch stage: reads the GitSync's credentials Secret, polls the source and reads the tree at the
//! revision (Git work runs on a blocking thread), and announces a new revision. It may read Secrets, talk to the
//! Git remote and publish the `NewRevision` event; it writes nothing else.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::EventType;

use super::controller::{Halt, SyncContext};
use super::error::{SyncError, kubernetes};
use super::outcome::{Fetched, SyncOutcome, new_revision_event};
use super::settings::{Settings, credentials};
use crate::api::GitSync;
use crate::source::{Credentials, GitSource, ReadOptions, Revision, SourceConfig, TreeEntry};
use crate::telemetry::Metrics;

/// The credentials `spec.secretRef` names (none without one); a missing Secret stops the sync as
/// [`SyncOutcome::SecretNotFound`].
pub async fn read_credentials(gitsync: &GitSync, context: &SyncContext) -> Result<Credentials, Halt> {
    let Some(reference) = &gitsync.spec.secret_ref else {
        return Ok(Credentials::none());
    };
    let namespace = gitsync.namespace().unwrap_or_else(|| "default".to_string());
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    match secrets
        .get_opt(&reference.name)
        .await
        .map_err(kubernetes(format!("read Secret {}", reference.name)))?
    {
        Some(secret) => Ok(credentials(&secret.data.unwrap_or_default())),
        None => Err(Halt::outcome(SyncOutcome::SecretNotFound {
            message: format!(
                "Secret {namespace}/{} does not exist; create it or fix spec.secretRef",
                reference.name
            ),
        })),
    }
}

/// `status.webhookPath` of a GitSync with `spec.webhook` (`None` without): read from its Secret's key `token`. A
/// missing Secret or key stops the sync as [`SyncOutcome::SecretNotFound`], like a missing credentials Secret.
pub async fn read_webhook_path(gitsync: &GitSync, context: &SyncContext) -> Result<Option<String>, Halt> {
    let Some(webhook) = &gitsync.spec.webhook else {
        return Ok(None);
    };
    let namespace = gitsync.namespace().unwrap_or_else(|| "default".to_string());
    let name = &webhook.secret_ref.name;
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(kubernetes(format!("read Secret {name}")))?;
    let token = secret.and_then(|secret| secret.data?.remove(crate::webhook::SECRET_KEY));
    match token {
        Some(token) if !token.0.is_empty() => Ok(Some(crate::webhook::webhook_path(
            &token.0,
            &namespace,
            &gitsync.name_any(),
        ))),
        _ => Err(Halt::outcome(SyncOutcome::SecretNotFound {
            message: format!(
                "Secret {namespace}/{name} (spec.webhook.secretRef) does not exist or has no key `{}`; create it \
                 with the webhook secret or fix spec.webhook.secretRef",
                crate::webhook::SECRET_KEY
            ),
        })),
    }
}

/// Polls the source and reads the tree at its revision; a source failure stops the sync as
/// [`SyncOutcome::FetchFailed`], retried with backoff. Publishes `NewRevision` for a revision not attempted before.
pub async fn fetch(
    gitsync: &GitSync,
    context: &SyncContext,
    settings: &Settings,
    credentials: Credentials,
) -> Result<(Fetched, Vec<TreeEntry>), Halt> {
    let config = SourceConfig {
        url: gitsync.spec.url.clone(),
        reference: settings.reference.clone(),
        credentials,
        cache_dir: context.cache_dir.clone(),
        timeout: settings.timeout,
    };
    let (revision, entries) = match poll_and_read(config, settings.path.clone(), &context.metrics).await {
        Ok(fetched) => fetched,
        Err(SyncError::Source(error)) => {
            let outcome = SyncOutcome::FetchFailed {
                reason: error.category(),
                error: error.to_string(),
            };
            return Err(Halt::Retry(Box::new(outcome), SyncError::Source(error)));
        }
        Err(other) => return Err(Halt::Fail(other)),
    };
    let last_attempted = gitsync
        .status
        .as_ref()
        .and_then(|s| s.last_attempted_revision.as_deref());
    let fetched = Fetched {
        is_new: last_attempted != Some(revision.to_string().as_str()),
        revision,
    };
    if let Some(event) = new_revision_event(&fetched) {
        context
            .publish(gitsync, EventType::Normal, event.reason, event.action, &event.note)
            .await;
    }
    Ok((fetched, entries))
}

async fn poll_and_read(
    config: SourceConfig,
    path: String,
    metrics: &Metrics,
) -> Result<(Revision, Vec<TreeEntry>), SyncError> {
    let histogram = metrics.fetch_duration.clone();
    tokio::task::spawn_blocking(move || {
        let source = GitSource::new(config).map_err(SyncError::Source)?;
        let started = std::time::Instant::now();
        let outcome = source.poll();
        histogram.observe(started.elapsed().as_secs_f64());
        let outcome = outcome.map_err(SyncError::Source)?;
        let entries = source
            .read_tree(&outcome.revision, &path, &ReadOptions::default())
            .map_err(SyncError::Source)?;
        Ok((outcome.revision, entries))
    })
    .await
    .map_err(|error| SyncError::Task(error.to_string()))?
}
