//! The pure core of a GitSync's report: what one sync came to ([`SyncOutcome`]), the status that follows from it
//! ([`next_status`]), the event that announces it ([`event_for`]) and how it counts in metrics. No I/O: the clock
//! is a parameter, and every outcome has a unit test.

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::plan::{KeepReason, MAX_INVENTORY_BYTES, MAX_MESSAGE_CHARS, cap_message, inventory_bytes, quote_names};
use crate::api::conditions::{Condition, types};
use crate::api::gitsync::{GitSyncStatus, InventoryEntry, SourceError as StatusError};
use crate::manifests::Diagnostic;
use crate::runtime::conditions::{ConditionStatus, find, new_condition, remove_condition, rfc3339, set_condition};
use crate::source::Revision;

/// At most this many errors are kept in a GitSync's status.
pub const MAX_STATUS_ERRORS: usize = 50;

/// The revision a sync fetched, and whether it is new to this GitSync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The revision.
    pub revision: Revision,
    /// Whether it differs from `status.lastAttemptedRevision`.
    pub is_new: bool,
}

impl Fetched {
    /// The revision in Flux's format, `main@sha1:<40 hex>`.
    pub fn text(&self) -> String {
        self.revision.to_string()
    }

    /// The revision with a short commit, `main@sha1:<7 hex>`.
    pub fn short(&self) -> String {
        match &self.revision.ref_name {
            Some(name) => format!("{name}@sha1:{}", self.revision.short_commit()),
            None => format!("sha1:{}", self.revision.short_commit()),
        }
    }
}

/// An object of the revision that another GitSync owns (its ownership labels name it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The object.
    pub entry: InventoryEntry,
    /// `namespace/name` of the owning GitSync.
    pub owner: String,
}

/// What an apply and prune that ran to the end did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Every object of the revision.
    pub entries: Vec<InventoryEntry>,
    /// How many objects were written.
    pub written: usize,
    /// Objects not applied because another GitSync owns them.
    pub conflicts: Vec<Conflict>,
    /// Objects removed from Git and kept, with the reason.
    pub kept: Vec<(InventoryEntry, KeepReason)>,
}

/// What one sync of a GitSync came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The spec is unusable (interval, ref, path): nothing is fetched until it changes.
    InvalidSpec {
        /// What is wrong.
        message: String,
    },
    /// `spec.secretRef` names a Secret that does not exist.
    SecretNotFound {
        /// What is missing and how to fix it.
        message: String,
    },
    /// The source could not be fetched or read; retried with backoff.
    FetchFailed {
        /// The source error's category.
        reason: &'static str,
        /// The source error.
        error: String,
    },
    /// `spec.suspend` is set: nothing is applied.
    Suspended(Fetched),
    /// The revision does not load or validate: nothing is applied.
    ValidationFailed {
        /// The revision.
        fetched: Fetched,
        /// The errors (warnings excluded), in order.
        errors: Vec<Diagnostic>,
    },
    /// The revision's inventory would not fit in the status: nothing is applied.
    InventoryTooLarge {
        /// The revision.
        fetched: Fetched,
        /// How many objects it has.
        objects: usize,
        /// How many bytes of status their inventory would take.
        bytes: usize,
    },
    /// The apply or prune failed part way; retried with backoff.
    ApplyFailed {
        /// The revision.
        fetched: Fetched,
        /// The objects that reached the revision before the failure.
        done: Vec<InventoryEntry>,
        /// How many objects the revision has.
        total: usize,
        /// The failure.
        error: String,
    },
    /// The revision was applied and pruned (pruning may have been blocked, and nothing may have changed).
    Applied {
        /// The revision.
        fetched: Fetched,
        /// What the apply and prune did.
        applied: Applied,
    },
}

/// What the status says about the object itself, besides the outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The value of the `reconcile.fluxcd.io/requestedAt`-style annotation, when set.
    pub reconcile_requested_at: Option<String>,
}

/// An event to publish about the GitSync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncEvent {
    /// Normal or Warning.
    pub warning: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// The stage: `Fetch`, `Validate`, `Apply`.
    pub action: &'static str,
    /// What happened.
    pub note: String,
}

impl SyncEvent {
    /// The event type.
    pub fn type_(&self) -> EventType {
        if self.warning {
            EventType::Warning
        } else {
            EventType::Normal
        }
    }
}

impl SyncOutcome {
    /// The category of a failure reported in status (counted as a failed sync), or `None` for a success.
    pub fn failure(&self) -> Option<&'static str> {
        match self {
            Self::InvalidSpec { .. } => Some("InvalidSpec"),
            Self::SecretNotFound { .. } => Some("SecretNotFound"),
            Self::FetchFailed { reason, .. } => Some(reason),
            Self::ValidationFailed { .. } => Some("ValidationFailed"),
            Self::InventoryTooLarge { .. } => Some("InventoryTooLarge"),
            Self::ApplyFailed { .. } => Some("ApplyFailed"),
            Self::Applied { applied, .. } if !applied.conflicts.is_empty() => Some("Conflict"),
            Self::Suspended(_) | Self::Applied { .. } => None,
        }
    }

    /// The revision fetched, when the sync got that far.
    pub fn fetched(&self) -> Option<&Fetched> {
        match self {
            Self::InvalidSpec { .. } | Self::SecretNotFound { .. } | Self::FetchFailed { .. } => None,
            Self::Suspended(fetched)
            | Self::ValidationFailed { fetched, .. }
            | Self::InventoryTooLarge { fetched, .. }
            | Self::ApplyFailed { fetched, .. }
            | Self::Applied { fetched, .. } => Some(fetched),
        }
    }
}

/// A condition with the message cut to [`MAX_MESSAGE_CHARS`].
fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    new_condition(
        type_,
        status,
        reason,
        cap_message(message, MAX_MESSAGE_CHARS),
        generation,
        now,
    )
}

/// Sets conditions in a status, stamping `now` on the ones whose status flips.
struct Conditions<'a> {
    list: &'a mut Vec<Condition>,
    generation: Option<i64>,
    now: Timestamp,
}

impl Conditions<'_> {
    fn set(&mut self, type_: &str, status: bool, reason: &str, message: &str) -> &mut Self {
        set_condition(
            self.list,
            condition(type_, status, reason, message, self.generation, self.now),
        );
        self
    }

    fn remove(&mut self, type_: &str) -> &mut Self {
        remove_condition(self.list, type_);
        self
    }

    /// `Ready=False` and `Stalled=True`, both with `reason` and `message`.
    fn stalled(&mut self, reason: &str, message: &str) -> &mut Self {
        self.set(types::READY, false, reason, message)
            .set(types::STALLED, true, reason, message)
    }
}

/// The status after `outcome`, from the status before it (`old`), at `now`.
pub fn next_status(old: &GitSyncStatus, observed: &Observed, outcome: &SyncOutcome, now: Timestamp) -> GitSyncStatus {
    let mut status = old.clone();
    status.observed_generation = observed.generation;
    // Any new value of the annotation triggered this sync through the watch; record it as handled, like Flux.
    if let Some(requested) = &observed.reconcile_requested_at {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    if let Some(fetched) = outcome.fetched() {
        status.last_attempted_revision = Some(fetched.text());
    }
    let mut list = status.conditions.take().unwrap_or_default();
    let mut conditions = Conditions {
        list: &mut list,
        generation: observed.generation,
        now,
    };
    match outcome {
        SyncOutcome::InvalidSpec { message } => {
            conditions.stalled("InvalidSpec", message);
        }
        SyncOutcome::SecretNotFound { message } => {
            conditions.stalled("SecretNotFound", message);
        }
        SyncOutcome::FetchFailed { reason, error } => {
            conditions
                .set(types::READY, false, reason, &fetch_failed_message(error))
                .set(types::RECONCILING, false, reason, "");
        }
        SyncOutcome::Suspended(fetched) => {
            let ready = find(old.conditions.as_deref().unwrap_or_default(), types::READY)
                .is_some_and(|c| ConditionStatus::of(c) == ConditionStatus::True);
            conditions.set(types::READY, ready, "Suspended", &suspended_message(old, fetched));
        }
        SyncOutcome::ValidationFailed { fetched, errors } => {
            status.errors = Some(errors.iter().take(MAX_STATUS_ERRORS).map(status_error).collect());
            conditions
                .set(
                    types::READY,
                    false,
                    "ValidationFailed",
                    &invalid_message(fetched, errors),
                )
                .set(types::STALLED, true, "ValidationFailed", "fix the errors in Git");
        }
        SyncOutcome::InventoryTooLarge {
            fetched,
            objects,
            bytes,
        } => {
            conditions.stalled("InventoryTooLarge", &too_large_message(fetched, *objects, *bytes));
        }
        SyncOutcome::ApplyFailed { done, .. } => {
            let mut inventory = old.inventory_entries();
            inventory.extend(done.iter().cloned());
            inventory.sort();
            inventory.dedup();
            status.set_inventory(&inventory);
            conditions
                .set(types::READY, false, "ApplyFailed", &apply_failed_message(old, outcome))
                .set(types::RECONCILING, true, "ProgressingWithRetry", "retrying the apply");
        }
        SyncOutcome::Applied { fetched, applied } => {
            applied_status(&mut status, &mut conditions, old, fetched, applied);
        }
    }
    status.conditions = Some(list);
    if let SyncOutcome::Applied { fetched, applied } = outcome
        && (applied.written > 0
            || fetched.is_new
            || applied.conflicts.is_empty() && old.last_applied_revision.as_deref() != Some(fetched.text().as_str()))
    {
        status.last_sync_time = Some(rfc3339(now));
    }
    status
}

/// The status fields of a revision applied to the end: inventory, last applied revision, and Ready or Stalled.
fn applied_status(
    status: &mut GitSyncStatus,
    conditions: &mut Conditions<'_>,
    old: &GitSyncStatus,
    fetched: &Fetched,
    applied: &Applied,
) {
    status.errors = None;
    let mut inventory: Vec<InventoryEntry> = applied
        .entries
        .iter()
        .filter(|entry| !applied.conflicts.iter().any(|conflict| same(&conflict.entry, entry)))
        .cloned()
        .collect();
    let untracked = add_kept_within_budget(&mut inventory, &applied.kept);
    status.set_inventory(&inventory);
    if !applied.conflicts.is_empty() {
        // A revision with a conflict is not applied completely, so like Flux we report it as failed: the last
        // applied revision stays, the rest of the revision is applied and tracked, and the GitSync is Stalled until
        // the other GitSync lets go of the object or this one stops claiming it.
        conditions
            .stalled("Conflict", &conflict_message(old, fetched, &applied.conflicts))
            .remove(types::RECONCILING);
        return;
    }
    status.last_applied_revision = Some(fetched.text());
    let blocked = blocked_prunes(&applied.kept);
    if blocked.is_empty() {
        let mut message = format!("Applied revision {}", fetched.short());
        if !applied.kept.is_empty() {
            message.push_str(&format!(
                "; {} removed from Git but kept (see events)",
                applied.kept.len()
            ));
        }
        if untracked > 0 {
            message.push_str(&format!("; {untracked} of them no longer tracked (inventory full)"));
        }
        conditions
            .set(types::READY, true, "Applied", &message)
            .remove(types::STALLED)
            .remove(types::RECONCILING);
    } else {
        let message = format!(
            "Applied revision {}; pruning blocked: {}; a cluster is deleted only with spec.prune and \
             spec.allowDatabaseDeletion once no database lives on it",
            fetched.short(),
            blocked.join("; ")
        );
        conditions.stalled("PruneBlocked", &message).remove(types::RECONCILING);
    }
}

/// The event that announces `outcome` (besides the events of the stages themselves), given the status before it.
pub fn event_for(old: &GitSyncStatus, outcome: &SyncOutcome) -> Option<SyncEvent> {
    let warning = |reason, action, note: String| {
        Some(SyncEvent {
            warning: true,
            reason,
            action,
            note,
        })
    };
    match outcome {
        SyncOutcome::InvalidSpec { .. } | SyncOutcome::SecretNotFound { .. } | SyncOutcome::Suspended(_) => None,
        SyncOutcome::FetchFailed { reason, error } => warning(reason, "Fetch", fetch_failed_message(error)),
        SyncOutcome::ValidationFailed { fetched, errors } if fetched.is_new => {
            let listed: Vec<String> = errors
                .iter()
                .take(3)
                .map(|d| cap_message(&d.to_string(), MAX_MESSAGE_CHARS / 3))
                .collect();
            warning("ValidationFailed", "Validate", listed.join("\n"))
        }
        SyncOutcome::InventoryTooLarge {
            fetched,
            objects,
            bytes,
        } if fetched.is_new => warning(
            "InventoryTooLarge",
            "Validate",
            too_large_message(fetched, *objects, *bytes),
        ),
        SyncOutcome::ValidationFailed { .. } | SyncOutcome::InventoryTooLarge { .. } => None,
        SyncOutcome::ApplyFailed { .. } => warning("ApplyFailed", "Apply", apply_failed_message(old, outcome)),
        SyncOutcome::Applied { fetched, applied } if !applied.conflicts.is_empty() => {
            let message = cap_message(&conflict_message(old, fetched, &applied.conflicts), MAX_MESSAGE_CHARS);
            let old_ready = find(old.conditions.as_deref().unwrap_or_default(), types::READY);
            if old_ready.is_some_and(|c| c.message == message) {
                return None;
            }
            warning("Conflict", "Apply", message)
        }
        SyncOutcome::Applied { fetched, applied } => {
            let revision = fetched.text();
            let announce = applied.written > 0
                || fetched.is_new
                || old.last_applied_revision.as_deref() != Some(revision.as_str());
            announce.then(|| SyncEvent {
                warning: false,
                reason: "Applied",
                action: "Apply",
                note: format!("revision {revision}: {} objects written", applied.written),
            })
        }
    }
}

/// The event of a revision seen for the first time.
pub fn new_revision_event(fetched: &Fetched) -> Option<SyncEvent> {
    fetched.is_new.then(|| SyncEvent {
        warning: false,
        reason: "NewRevision",
        action: "Fetch",
        note: format!("new revision {}", fetched.text()),
    })
}

fn fetch_failed_message(error: &str) -> String {
    format!("{error}; the last applied revision stays")
}

fn suspended_message(old: &GitSyncStatus, fetched: &Fetched) -> String {
    let applied = old.last_applied_revision.as_deref().unwrap_or("nothing");
    format!(
        "suspended: {applied} stays applied; the source is at {}",
        fetched.text()
    )
}

fn invalid_message(fetched: &Fetched, errors: &[Diagnostic]) -> String {
    let not_listed = match errors.len().saturating_sub(MAX_STATUS_ERRORS) {
        0 => String::new(),
        more => format!("; status.errors lists the first {MAX_STATUS_ERRORS}, {more} more not shown"),
    };
    format!(
        "revision {} is invalid ({} errors{not_listed}), nothing was applied; the last applied revision stays. \
         First: {}",
        fetched.revision.short_commit(),
        errors.len(),
        errors.first().map(ToString::to_string).unwrap_or_default()
    )
}

fn too_large_message(fetched: &Fetched, objects: usize, bytes: usize) -> String {
    format!(
        "revision {} is too large to track: the inventory of its {objects} objects would take {bytes} bytes of \
         status, more than the {MAX_INVENTORY_BYTES} a GitSync may hold; nothing was applied; split the objects \
         across several GitSyncs (spec.path)",
        fetched.revision.short_commit(),
    )
}

/// `Ready=False` naming the object and the error, the last applied revision unchanged (the new one is only
/// attempted). The error (which may quote an API server's long answer) is what gets cut, so the message keeps its
/// end.
fn apply_failed_message(old: &GitSyncStatus, outcome: &SyncOutcome) -> String {
    let SyncOutcome::ApplyFailed {
        fetched,
        done,
        total,
        error,
    } = outcome
    else {
        return String::new();
    };
    let stays = old.last_applied_revision.as_deref().unwrap_or("nothing");
    let message = |error: &str| {
        format!(
            "revision {} was not fully applied ({} of {total} objects at it): {error}; {stays} stays the last applied \
             revision, retrying with backoff",
            fetched.revision.short_commit(),
            done.len(),
        )
    };
    let room = MAX_MESSAGE_CHARS.saturating_sub(message("").chars().count()).max(80);
    message(&cap_message(error, room))
}

fn conflict_message(old: &GitSyncStatus, fetched: &Fetched, conflicts: &[Conflict]) -> String {
    let Some(first) = conflicts.first() else {
        return String::new();
    };
    let stays = match &old.last_applied_revision {
        Some(applied) => format!("{applied} stays the last applied revision"),
        None => "no revision is applied completely yet".to_string(),
    };
    let more = match conflicts.len() {
        1 => String::new(),
        count => format!(" (and {} more objects owned elsewhere)", count - 1),
    };
    format!(
        "{} {}/{} belongs to GitSync {}; not applied{more}; the rest of revision {} was applied; {stays}; \
         remove the object from one of the two GitSyncs",
        first.entry.kind,
        first.entry.namespace,
        first.entry.name,
        first.owner,
        fetched.short()
    )
}

/// The kept objects that block pruning a cluster, as sentences.
fn blocked_prunes(kept: &[(InventoryEntry, KeepReason)]) -> Vec<String> {
    kept.iter()
        .filter(|(_, reason)| reason.blocks_cluster_prune())
        .map(|(entry, reason)| match reason {
            KeepReason::ClusterHasDatabases { databases } => format!(
                "{} {}/{} still holds databases {}",
                entry.kind,
                entry.namespace,
                entry.name,
                quote_names(databases)
            ),
            _ => format!(
                "{} {}/{} needs spec.allowDatabaseDeletion",
                entry.kind, entry.namespace, entry.name
            ),
        })
        .collect()
}

/// Adds the objects kept by pruning to `inventory` while the inventory stays within [`MAX_INVENTORY_BYTES`]
/// (counted generously: each entry as if it opened its own group); returns how many no longer fit. Those stay in
/// the cluster, labelled, and are simply no longer tracked: they can never be pruned by accident.
fn add_kept_within_budget(inventory: &mut Vec<InventoryEntry>, kept: &[(InventoryEntry, KeepReason)]) -> usize {
    let mut size = inventory_bytes(inventory);
    let mut untracked = 0;
    let key = |entry: &InventoryEntry| (entry.kind.clone(), entry.namespace.clone(), entry.name.clone());
    let mut tracked: std::collections::BTreeSet<_> = inventory.iter().map(key).collect();
    for (entry, _) in kept {
        if !tracked.insert(key(entry)) {
            continue;
        }
        let cost = entry.name.len() + entry.namespace.len() + entry.kind.len() + entry.api_version.len() + 64;
        if size + cost > MAX_INVENTORY_BYTES {
            untracked += 1;
            continue;
        }
        size += cost;
        inventory.push(entry.clone());
    }
    untracked
}

fn status_error(diagnostic: &Diagnostic) -> StatusError {
    StatusError {
        file: cap_message(&diagnostic.file, MAX_MESSAGE_CHARS),
        line: diagnostic.line,
        column: diagnostic.column,
        field: diagnostic
            .field
            .as_deref()
            .map(|field| cap_message(field, MAX_MESSAGE_CHARS)),
        message: cap_message(&diagnostic.message, MAX_MESSAGE_CHARS),
    }
}

/// Whether two entries name the same object.
pub fn same(a: &InventoryEntry, b: &InventoryEntry) -> bool {
    a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
}

#[cfg(test)]
mod tests;
