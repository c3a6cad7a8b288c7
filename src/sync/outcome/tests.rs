//! One test per outcome: the status and the event that follow from it.

use super::*;
use crate::manifests::Severity;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn fetched(is_new: bool) -> Fetched {
    Fetched {
        revision: Revision {
            ref_name: Some("main".into()),
            commit: COMMIT.into(),
        },
        is_new,
    }
}

fn observed() -> Observed {
    Observed {
        generation: Some(3),
        reconcile_requested_at: None,
    }
}

fn entry(kind: &str, name: &str) -> InventoryEntry {
    InventoryEntry {
        api_version: "app.redislabs.com/v1alpha1".into(),
        kind: kind.into(),
        namespace: "prod".into(),
        name: name.into(),
        file: None,
    }
}

fn get<'a>(status: &'a GitSyncStatus, type_: &str) -> Option<&'a Condition> {
    find(status.conditions.as_deref().unwrap_or_default(), type_)
}

fn says(status: &GitSyncStatus, type_: &str) -> Option<(String, String)> {
    get(status, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

fn pair(status: &str, reason: &str) -> Option<(String, String)> {
    Some((status.to_string(), reason.to_string()))
}

fn error(message: &str) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: "dbs/cache.yaml".into(),
        line: 4,
        column: 3,
        field: Some("spec.memorySize".into()),
        message: message.into(),
    }
}

/// The status after a good sync of `main@sha1:0123456`.
fn applied_before() -> GitSyncStatus {
    let outcome = SyncOutcome::Applied {
        fetched: fetched(true),
        applied: Applied {
            entries: vec![entry("RedisEnterpriseDatabase", "cache")],
            written: 1,
            ..Applied::default()
        },
    };
    next_status(&GitSyncStatus::default(), &observed(), &outcome, at(10))
}

#[test]
fn applied_sets_ready_the_revision_the_inventory_and_announces_the_writes() {
    let status = applied_before();
    assert_eq!(says(&status, types::READY), pair("True", "Applied"));
    assert_eq!(
        get(&status, types::READY).map(|c| c.message.as_str()),
        Some("Applied revision main@sha1:0123456")
    );
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(format!("main@sha1:{COMMIT}").as_str())
    );
    assert_eq!(status.last_attempted_revision, status.last_applied_revision);
    assert_eq!(status.last_sync_time.as_deref(), Some("1970-01-01T00:00:10Z"));
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(
        status.inventory_entries(),
        vec![entry("RedisEnterpriseDatabase", "cache")]
    );
    let outcome = SyncOutcome::Applied {
        fetched: fetched(true),
        applied: Applied {
            written: 2,
            ..Applied::default()
        },
    };
    let event = event_for(&GitSyncStatus::default(), &outcome).expect("an Applied event");
    assert_eq!((event.warning, event.reason, event.action), (false, "Applied", "Apply"));
    assert_eq!(event.note, format!("revision main@sha1:{COMMIT}: 2 objects written"));
    assert_eq!(outcome.failure(), None);
}

#[test]
fn an_unchanged_resync_changes_nothing_and_announces_nothing() {
    let old = applied_before();
    let outcome = SyncOutcome::Applied {
        fetched: fetched(false),
        applied: Applied {
            entries: vec![entry("RedisEnterpriseDatabase", "cache")],
            ..Applied::default()
        },
    };
    let new = next_status(&old, &observed(), &outcome, at(99));
    assert_eq!(new, old, "same status: the write is skipped, and no timestamp moved");
    assert_eq!(event_for(&old, &outcome), None);
}

#[test]
fn prune_blocked_is_stalled_but_the_revision_counts_as_applied() {
    let kept = vec![(
        entry("RedisEnterpriseCluster", "rec"),
        KeepReason::ClusterHasDatabases {
            databases: vec!["prod/cache".into()],
        },
    )];
    let outcome = SyncOutcome::Applied {
        fetched: fetched(true),
        applied: Applied {
            kept,
            ..Applied::default()
        },
    };
    let status = next_status(&applied_before(), &observed(), &outcome, at(20));
    assert_eq!(says(&status, types::READY), pair("False", "PruneBlocked"));
    assert_eq!(says(&status, types::STALLED), pair("True", "PruneBlocked"));
    let message = &get(&status, types::READY).expect("ready").message;
    assert!(
        message.starts_with(
            "Applied revision main@sha1:0123456; pruning blocked: RedisEnterpriseCluster prod/rec still holds databases"
        ),
        "{message}"
    );
    assert!(status.last_applied_revision.is_some());
    // The kept cluster stays tracked, so a later prune still knows it.
    assert!(
        status
            .inventory_entries()
            .contains(&entry("RedisEnterpriseCluster", "rec"))
    );
    assert_eq!(outcome.failure(), None);
}

#[test]
fn objects_kept_for_another_reason_keep_ready_with_a_note() {
    let outcome = SyncOutcome::Applied {
        fetched: fetched(false),
        applied: Applied {
            kept: vec![(entry("RedisEnterpriseDatabase", "old"), KeepReason::PruneDisabled)],
            ..Applied::default()
        },
    };
    let status = next_status(&applied_before(), &observed(), &outcome, at(20));
    assert_eq!(says(&status, types::READY), pair("True", "Applied"));
    assert_eq!(
        get(&status, types::READY).map(|c| c.message.as_str()),
        Some("Applied revision main@sha1:0123456; 1 removed from Git but kept (see events)")
    );
}

#[test]
fn a_conflict_is_stalled_keeps_the_last_applied_revision_and_warns_once() {
    let old = applied_before();
    let mut next = fetched(true);
    next.revision.commit = "f".repeat(40);
    let outcome = SyncOutcome::Applied {
        fetched: next,
        applied: Applied {
            entries: vec![
                entry("RedisEnterpriseDatabase", "cache"),
                entry("RedisEnterpriseDatabase", "taken"),
            ],
            conflicts: vec![Conflict {
                entry: entry("RedisEnterpriseDatabase", "taken"),
                owner: "team-b/sync".into(),
            }],
            ..Applied::default()
        },
    };
    let status = next_status(&old, &observed(), &outcome, at(30));
    assert_eq!(says(&status, types::READY), pair("False", "Conflict"));
    assert_eq!(says(&status, types::STALLED), pair("True", "Conflict"));
    assert_eq!(status.last_applied_revision, old.last_applied_revision);
    assert_eq!(
        status.inventory_entries(),
        vec![entry("RedisEnterpriseDatabase", "cache")]
    );
    let event = event_for(&old, &outcome).expect("a Conflict warning");
    assert!(event.warning && event.reason == "Conflict");
    assert!(
        event
            .note
            .starts_with("RedisEnterpriseDatabase prod/taken belongs to GitSync team-b/sync; not applied")
    );
    // Once the status says so, the same conflict is not announced again.
    assert_eq!(event_for(&status, &outcome), None);
    assert_eq!(outcome.failure(), Some("Conflict"));
}

#[test]
fn validation_failed_lists_the_errors_applies_nothing_and_warns_on_a_new_revision_only() {
    let old = applied_before();
    let errors = vec![
        error("memorySize must be a size"),
        error("shardCount must be at least 1"),
    ];
    let outcome = SyncOutcome::ValidationFailed {
        fetched: fetched(true),
        errors: errors.clone(),
    };
    let status = next_status(&old, &observed(), &outcome, at(40));
    assert_eq!(says(&status, types::READY), pair("False", "ValidationFailed"));
    assert_eq!(says(&status, types::STALLED), pair("True", "ValidationFailed"));
    assert_eq!(
        get(&status, types::STALLED).map(|c| c.message.as_str()),
        Some("fix the errors in Git")
    );
    let message = &get(&status, types::READY).expect("ready").message;
    assert!(
        message.starts_with("revision 0123456 is invalid (2 errors), nothing was applied"),
        "{message}"
    );
    assert_eq!(status.errors.as_ref().map(Vec::len), Some(2));
    assert_eq!(status.last_applied_revision, old.last_applied_revision);
    let event = event_for(&old, &outcome).expect("a warning");
    assert_eq!((event.reason, event.action), ("ValidationFailed", "Validate"));
    assert_eq!(event.note.lines().count(), 2);
    let again = SyncOutcome::ValidationFailed {
        fetched: fetched(false),
        errors,
    };
    assert_eq!(event_for(&status, &again), None);
    assert_eq!(again.failure(), Some("ValidationFailed"));
}

#[test]
fn the_transition_time_of_ready_moves_only_when_it_flips() {
    let old = applied_before();
    let failed = SyncOutcome::ValidationFailed {
        fetched: fetched(true),
        errors: vec![error("bad")],
    };
    let first = next_status(&old, &observed(), &failed, at(50));
    assert_eq!(
        get(&first, types::READY).map(|c| c.last_transition_time.as_str()),
        Some("1970-01-01T00:00:50Z")
    );
    let second = next_status(&first, &observed(), &failed, at(60));
    assert_eq!(
        get(&second, types::READY).map(|c| c.last_transition_time.as_str()),
        Some("1970-01-01T00:00:50Z")
    );
}

#[test]
fn inventory_too_large_is_stalled_and_warns_on_a_new_revision() {
    let outcome = SyncOutcome::InventoryTooLarge {
        fetched: fetched(true),
        objects: 9000,
        bytes: 999_999,
    };
    let status = next_status(&GitSyncStatus::default(), &observed(), &outcome, at(1));
    assert_eq!(says(&status, types::READY), pair("False", "InventoryTooLarge"));
    assert_eq!(says(&status, types::STALLED), pair("True", "InventoryTooLarge"));
    let event = event_for(&GitSyncStatus::default(), &outcome).expect("a warning");
    assert!(
        event
            .note
            .contains("the inventory of its 9000 objects would take 999999 bytes")
    );
    assert_eq!(outcome.failure(), Some("InventoryTooLarge"));
}

#[test]
fn apply_failed_part_way_tracks_what_reached_the_revision_and_retries() {
    let old = applied_before();
    let outcome = SyncOutcome::ApplyFailed {
        fetched: fetched(true),
        done: vec![entry("RedisEnterpriseDatabase", "new")],
        total: 3,
        error: "failed to apply RedisEnterpriseDatabase prod/x: 500".into(),
    };
    let status = next_status(&old, &observed(), &outcome, at(70));
    assert_eq!(says(&status, types::READY), pair("False", "ApplyFailed"));
    assert_eq!(says(&status, types::RECONCILING), pair("True", "ProgressingWithRetry"));
    assert_eq!(status.last_applied_revision, old.last_applied_revision);
    let inventory = status.inventory_entries();
    assert!(inventory.contains(&entry("RedisEnterpriseDatabase", "new")));
    assert!(inventory.contains(&entry("RedisEnterpriseDatabase", "cache")));
    let message = &get(&status, types::READY).expect("ready").message;
    assert!(
        message.starts_with("revision 0123456 was not fully applied (1 of 3 objects at it): failed to apply"),
        "{message}"
    );
    assert!(message.ends_with("stays the last applied revision, retrying with backoff"));
    let event = event_for(&old, &outcome).expect("a warning");
    assert_eq!(
        (event.reason, event.action, event.note.as_str()),
        ("ApplyFailed", "Apply", message.as_str())
    );
}

#[test]
fn fetch_failed_says_the_last_revision_stays_and_warns() {
    let outcome = SyncOutcome::FetchFailed {
        reason: "AuthenticationFailed",
        error: "authentication failed".into(),
    };
    let old = applied_before();
    let status = next_status(&old, &observed(), &outcome, at(80));
    assert_eq!(says(&status, types::READY), pair("False", "AuthenticationFailed"));
    assert_eq!(says(&status, types::RECONCILING), pair("False", "AuthenticationFailed"));
    assert_eq!(status.last_attempted_revision, old.last_attempted_revision);
    let event = event_for(&old, &outcome).expect("a warning");
    assert_eq!(event.note, "authentication failed; the last applied revision stays");
    assert_eq!(event.action, "Fetch");
    assert_eq!(outcome.failure(), Some("AuthenticationFailed"));
}

#[test]
fn suspended_keeps_ready_as_it_was_and_names_both_revisions() {
    let old = applied_before();
    let mut next = fetched(true);
    next.revision.commit = "a".repeat(40);
    let outcome = SyncOutcome::Suspended(next);
    let status = next_status(&old, &observed(), &outcome, at(90));
    assert_eq!(says(&status, types::READY), pair("True", "Suspended"));
    assert_eq!(
        get(&status, types::READY).map(|c| c.message.clone()),
        Some(format!(
            "suspended: main@sha1:{COMMIT} stays applied; the source is at main@sha1:{}",
            "a".repeat(40)
        ))
    );
    assert_eq!(
        status.last_attempted_revision,
        Some(format!("main@sha1:{}", "a".repeat(40)))
    );
    assert_eq!(event_for(&old, &outcome), None);
    assert_eq!(outcome.failure(), None);
    let never_ready = next_status(&GitSyncStatus::default(), &observed(), &outcome, at(90));
    assert_eq!(says(&never_ready, types::READY), pair("False", "Suspended"));
}

#[test]
fn an_invalid_spec_and_a_missing_secret_are_stalled_without_events() {
    let requested = Observed {
        generation: Some(4),
        reconcile_requested_at: Some("2026-12-01T10:00:00Z".into()),
    };
    for (outcome, reason) in [
        (
            SyncOutcome::InvalidSpec {
                message: "spec.interval: bad".into(),
            },
            "InvalidSpec",
        ),
        (
            SyncOutcome::SecretNotFound {
                message: "Secret prod/git does not exist".into(),
            },
            "SecretNotFound",
        ),
    ] {
        let status = next_status(&GitSyncStatus::default(), &requested, &outcome, at(5));
        assert_eq!(says(&status, types::READY), pair("False", reason));
        assert_eq!(says(&status, types::STALLED), pair("True", reason));
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(
            status.last_handled_reconcile_at.as_deref(),
            Some("2026-12-01T10:00:00Z")
        );
        assert_eq!(event_for(&GitSyncStatus::default(), &outcome), None);
        assert_eq!(outcome.failure(), Some(reason));
    }
}

#[test]
fn a_new_revision_is_announced_once() {
    let event = new_revision_event(&fetched(true)).expect("new");
    assert_eq!(
        (event.reason, event.note),
        ("NewRevision", format!("new revision main@sha1:{COMMIT}"))
    );
    assert_eq!(new_revision_event(&fetched(false)), None);
}

#[test]
fn long_messages_are_cut_in_conditions() {
    let outcome = SyncOutcome::InvalidSpec {
        message: "x".repeat(MAX_MESSAGE_CHARS * 2),
    };
    let status = next_status(&GitSyncStatus::default(), &observed(), &outcome, at(5));
    let message = &get(&status, types::READY).expect("ready").message;
    assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
    assert!(message.ends_with('…'));
}
