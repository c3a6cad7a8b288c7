//! The cluster's own periodic backup: a trigger that wakes every [`EmulatorConfig::backup_trigger_interval`] (five
//! minutes, as in RS) and backs up each database with `backup: true` whose scheduled slot has passed. Slots are
//! `backup_interval_offset + k × backup_interval` seconds after 00:00 UTC (for 12 h and 24 h intervals without an
//! offset, a stable per-database offset stands for the random one RS picks). A failed backup is retried at the
//! next wake-up; after a success, files of the database older than `backup_history` days (0: keep all) are deleted
//! from the location. A backup is a bdb action (`backup`, busy meanwhile); the trigger starts nothing else.
//!
//! [`EmulatorConfig::backup_trigger_interval`]: crate::enterprise::EmulatorConfig::backup_trigger_interval

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::export::Progress;
use super::locations::Location;
use super::{file_prefix, s3_settings};
use crate::enterprise::actions::ActionKind;
use crate::enterprise::cluster::{TransferStatus, now};
use crate::enterprise::operations::Ops;

const HOUR: u64 = 3600;

/// The offset of a database's slots: the configured one, else (12 h and 24 h) a stable one from its uid, else 0.
fn slot_offset(uid: u64, interval: u64, configured: Option<u64>) -> u64 {
    match configured {
        Some(offset) => offset % interval,
        None if interval == 12 * HOUR || interval == 24 * HOUR => uid.wrapping_mul(2_654_435_761) % interval,
        None => 0,
    }
}

/// The latest slot at or before `now` (seconds since the epoch).
fn latest_slot(now: u64, interval: u64, offset: u64) -> Option<u64> {
    let since = now.checked_sub(offset)?;
    Some(since / interval * interval + offset)
}

/// Whether a backup is due: the latest slot is after the time backups were turned on and was not backed up yet.
fn due(now: u64, interval: u64, offset: u64, enabled_since: u64, last_slot: Option<u64>) -> Option<u64> {
    let slot = latest_slot(now, interval, offset)?;
    (slot > enabled_since && last_slot.is_none_or(|last| slot > last)).then_some(slot)
}

fn epoch_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The trigger loop of one cluster (spawned with it, aborted with it).
pub(crate) async fn trigger(ops: Ops) {
    let period = ops.shared.config.backup_trigger_interval.max(Duration::from_millis(10));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        ops.wake_up();
    }
}

/// One database's backup settings, read from its configuration.
struct Schedule {
    interval: u64,
    offset: Option<u64>,
    history_days: u64,
    location: Value,
}

fn schedule(recorded: &serde_json::Map<String, Value>) -> Option<Schedule> {
    if recorded.get("backup") != Some(&Value::Bool(true)) {
        return None;
    }
    Some(Schedule {
        interval: recorded.get("backup_interval")?.as_u64().filter(|i| *i > 0)?,
        offset: recorded.get("backup_interval_offset").and_then(Value::as_u64),
        history_days: recorded.get("backup_history").and_then(Value::as_u64).unwrap_or(0),
        location: recorded.get("backup_location")?.clone(),
    })
}

impl Ops {
    /// One wake-up of the trigger: starts the backups that are due.
    fn wake_up(&self) {
        let now_seconds = epoch_seconds(SystemTime::now());
        let mut state = self.cluster.lock();
        let s3 = s3_settings(&state);
        let mut starts = Vec::new();
        for bdb in state.bdbs.values_mut() {
            let Some(schedule) = schedule(&bdb.config.recorded) else {
                bdb.backup.enabled_since = None;
                continue;
            };
            let enabled_since = *bdb.backup.enabled_since.get_or_insert(now_seconds);
            let offset = slot_offset(bdb.uid, schedule.interval, schedule.offset);
            let Some(slot) = due(
                now_seconds,
                schedule.interval,
                offset,
                enabled_since,
                bdb.backup.last_slot,
            ) else {
                continue;
            };
            if bdb.busy.is_some() || bdb.status != "active" || bdb.process.is_none() {
                // Busy or down: the next wake-up tries again.
                continue;
            }
            let location = match Location::parse(&schedule.location) {
                Ok(location) => location,
                Err(error) => {
                    bdb.backup.transfer = TransferStatus::finished::<(), _>(&Err(("wrong-file-path", ())));
                    tracing::warn!(bdb = bdb.uid, %error, "the backup location is invalid");
                    continue;
                }
            };
            starts.push((bdb.uid, slot, schedule.history_days, location, bdb.config.name.clone()));
        }
        for (uid, slot, history_days, location, name) in starts {
            if let Some(bdb) = state.bdbs.get_mut(&uid) {
                bdb.backup.transfer = TransferStatus::running("exporting");
            }
            let action_uid = state.start_bdb_action(&self.shared, uid, "backup", ActionKind::Task);
            let ops = self.clone();
            let s3 = s3.clone();
            self.spawn_action(uid, action_uid, async move {
                let outcome = ops.write_backup(uid, &location, &s3, Progress::Backup).await;
                if outcome.is_ok() && history_days > 0 {
                    let before = SystemTime::now() - Duration::from_secs(history_days * 24 * HOUR);
                    match location.prune(&s3, &file_prefix(&name, uid), before).await {
                        Ok(pruned) if !pruned.is_empty() => tracing::info!(bdb = uid, ?pruned, "old backups deleted"),
                        Ok(_) => {}
                        Err((reason, detail)) => {
                            tracing::warn!(bdb = uid, reason, detail, "pruning old backups failed")
                        }
                    }
                }
                let mut state = ops.cluster.lock();
                if let Some(bdb) = state.bdbs.get_mut(&uid) {
                    bdb.backup.transfer = TransferStatus::finished(&outcome);
                    if outcome.is_ok() {
                        bdb.backup.last_slot = Some(slot);
                        bdb.backup.last_backup_time = Some(now());
                    }
                }
                match outcome {
                    Ok(_) => Ok(()),
                    Err((reason, detail)) => {
                        tracing::warn!(
                            bdb = uid,
                            reason,
                            detail,
                            "periodic backup failed; retried at the next wake-up"
                        );
                        Err(detail)
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_interval_and_offset() {
        // 24 h at 02:00 UTC.
        assert_eq!(
            latest_slot(86_400 * 10 + 3 * HOUR, 24 * HOUR, 2 * HOUR),
            Some(86_400 * 10 + 2 * HOUR)
        );
        assert_eq!(
            latest_slot(86_400 * 10 + HOUR, 24 * HOUR, 2 * HOUR),
            Some(86_400 * 9 + 2 * HOUR)
        );
        assert_eq!(slot_offset(7, HOUR, None), 0);
        assert_eq!(slot_offset(7, 24 * HOUR, Some(600)), 600);
        let random = slot_offset(7, 24 * HOUR, None);
        assert!(random < 24 * HOUR);
        assert_eq!(random, slot_offset(7, 24 * HOUR, None), "stable per database");
    }

    #[test]
    fn a_slot_is_due_once_and_only_after_backups_were_enabled() {
        let enabled = 10_030;
        // Interval 60 s: slots at 10_020, 10_080, ...
        assert_eq!(
            due(10_050, 60, 0, enabled, None),
            None,
            "the slot before enabling is not run"
        );
        assert_eq!(due(10_085, 60, 0, enabled, None), Some(10_080));
        assert_eq!(due(10_090, 60, 0, enabled, Some(10_080)), None, "done already");
        assert_eq!(
            due(10_230, 60, 0, enabled, Some(10_080)),
            Some(10_200),
            "one catch-up, the latest slot"
        );
    }
}
