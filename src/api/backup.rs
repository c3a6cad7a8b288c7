//! The backup kinds (`redisgitops.dev/v1alpha1`): `RedisBackupSchedule` (committed to Git, a cron schedule of
//! exports), `RedisBackup` (one per run and database, created by the agent or by a user for an on-demand backup,
//! never pruned by a GitSync) and `RedisRestore` (one-shot import of a backup). Types and their CRD docs only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;

/// Exports the listed databases on a cron schedule, one `RedisBackup` per run and database, and prunes old runs.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "redisgitops.dev",
    version = "v1alpha1",
    kind = "RedisBackupSchedule",
    plural = "redisbackupschedules",
    shortname = "rbs",
    namespaced,
    status = "RedisBackupScheduleStatus",
    doc = "Backs up Redis Enterprise databases on a cron schedule, keeping the newest successful backups.",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Last Success","type":"date","jsonPath":".status.lastSuccessfulTime"}"#,
    printcolumn = r#"{"name":"Last Result","type":"string","jsonPath":".status.lastResult"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RedisBackupScheduleSpec {
    /// When to back up: a 5-field cron expression (`minute hour day-of-month month day-of-week`, for example
    /// `0 3 * * *`), a 6-field one with seconds first (`*/10 * * * * *`), or a macro (`@hourly`, `@daily`,
    /// `@weekly`, `@monthly`, `@yearly`). Day of week 0 and 7 are Sunday.
    #[schemars(length(min = 1, max = 256))]
    pub schedule: String,

    /// IANA time zone the schedule is read in, for example `Europe/Berlin` (daylight saving time included).
    /// Default: `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub time_zone: Option<String>,

    /// Names of the RedisEnterpriseDatabases in this namespace to back up. Exactly one of `databases` and
    /// `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub databases: Option<Vec<String>>,

    /// Labels of the RedisEnterpriseDatabases in this namespace to back up. Exactly one of `databases` and
    /// `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Where the backup files go: exactly one of `mount`, `s3` and `sftp`. Every run writes into its own directory
    /// (prefix) named after the RedisBackup.
    pub location: BackupLocation,

    /// Which runs to keep. Default: every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<BackupRetention>,

    /// Start no new runs; runs under way finish. Resuming starts no run for the slots passed while suspended.
    /// Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// A run that cannot start within this many seconds of its slot (the agent was down, the previous run was
    /// still going) is counted as missed instead of started. Default: no deadline (one catch-up run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31536000))]
    pub starting_deadline_seconds: Option<i64>,

    /// Spread the databases' runs over up to this many seconds after each slot: every database gets its own
    /// offset, the same at every slot (derived from the schedule and database names). Default: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub jitter_seconds: Option<i64>,

    /// After each successful run, import the backup into a scratch database on the same cluster, compare the
    /// key count with the one recorded at backup time, record the result in the RedisBackup's `status.verified`,
    /// and delete the scratch database. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
}

/// Where backup files go: exactly one of the fields.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupLocation {
    /// A directory mounted at the same path on every Redis Enterprise node and in the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<MountLocation>,
    /// An S3 bucket (or an S3-compatible one: the REC's `spec.backup.s3.url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Location>,
    /// An SFTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sftp: Option<SftpLocation>,
}

/// A directory mounted on every node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountLocation {
    /// Absolute path of the directory.
    #[schemars(regex(pattern = r"^/"), length(max = 1024))]
    pub path: String,
}

/// An S3 bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Location {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket_name: String,
    /// Region of the bucket. Default: `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub region_name: Option<String>,
    /// Directory inside the bucket under which every run gets its own prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub subdir: Option<String>,
    /// Secret in this namespace with the keys `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, as the official
    /// REDB backup uses.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// An SFTP server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SftpLocation {
    /// `sftp://user@host[:port]/path/`.
    #[schemars(regex(pattern = r"^sftp://"), length(max = 1024))]
    pub url: String,
    /// Secret in this namespace whose key `Key` holds the SSH private key, as the official REDB backup uses.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// Which runs to keep.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRetention {
    /// Keep this many newest successful runs per database; failed runs do not count. Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub keep_last: Option<i64>,
    /// Delete runs older than this duration, for example `720h` (30 days). The newest successful run is always
    /// kept, and pruning happens only after a new run succeeded. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<kube::core::Duration>,
}

/// The observed state of a schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisBackupScheduleStatus {
    /// The latest slot for which a run was started (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// When the latest successful run (of any of its databases) finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// The next slot (RFC 3339, UTC), before jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<String>,
    /// Phase of the latest run: `Pending`, `Running`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// Slots not run because they were past `startingDeadlineSeconds` or a newer slot was due (after downtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_runs: Option<i64>,
    /// Slots not run because the previous run of the database was still going (one run at a time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_runs: Option<i64>,
    /// Per database: its latest slot and result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<Vec<ScheduledDatabase>>,
    /// Whether the schedule was suspended at the last look (so resuming starts no run for past slots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
    /// When the schedule was last evaluated (RFC 3339, UTC): slots up to it are decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<String>,
    /// `Ready` (the schedule is valid and its databases exist) and `Stalled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
    /// The generation of the spec the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Git revision this spec came from, when applied by a GitSync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
}

/// One database of a schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledDatabase {
    /// The RedisEnterpriseDatabase.
    pub name: String,
    /// The latest slot decided for it (run, skipped or missed), RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// When its latest successful run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// Phase of its latest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// The newest successful run retention was last applied after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_after: Option<String>,
}

/// One backup of one database: created by a schedule at a slot, or by a user for an on-demand backup.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "redisgitops.dev",
    version = "v1alpha1",
    kind = "RedisBackup",
    plural = "redisbackups",
    shortname = "rbk",
    namespaced,
    status = "RedisBackupStatus",
    doc = "One backup (export) of one Redis Enterprise database.",
    printcolumn = r#"{"name":"Database","type":"string","jsonPath":".spec.database"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Keys","type":"integer","jsonPath":".status.keyCount"}"#,
    printcolumn = r#"{"name":"Size","type":"integer","jsonPath":".status.totalBytes"}"#,
    printcolumn = r#"{"name":"Verified","type":"boolean","jsonPath":".status.verified"}"#,
    printcolumn = r#"{"name":"Completed","type":"date","jsonPath":".status.completionTime"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.failureReason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RedisBackupSpec {
    /// The RedisEnterpriseDatabase (in this namespace) to back up.
    #[schemars(length(min = 1, max = 253))]
    pub database: String,
    /// Where the files go; the run writes into its own directory (prefix) named after this RedisBackup.
    pub location: BackupLocation,
    /// The schedule that created this run, if any (no owner reference: the backup outlives the schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The schedule's slot this run is for (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<String>,
    /// Verify the backup by importing it into a scratch database (see `RedisBackupSchedule.spec.verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    /// Delete the backup's files when this RedisBackup is deleted (by hand or by retention). Without it, deleting
    /// the object by hand keeps the files. Retention always deletes the files of the runs it prunes.
    /// Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_files_on_deletion: Option<bool>,
}

/// The observed state of one backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisBackupStatus {
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// When the export was started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the export finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Whether the export request was accepted by the cluster (so a restarted agent follows it instead of
    /// starting another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_requested: Option<bool>,
    /// The directory or prefix of this run, for example `/backups/cache-20260101030000` or
    /// `s3://bucket/subdir/cache-20260101030000/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The files of the backup, one per shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<BackupFile>>,
    /// Total size of the files in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<i64>,
    /// Number of keys in the database at backup time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_count: Option<i64>,
    /// Why the export failed, as the cluster reports it (`no-permission`, `wrong-file-path`, `general-error`)
    /// or as the agent saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Details of the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Verification result: true when the backup imported into a scratch database with the recorded key count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// Details of the verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_message: Option<String>,
    /// The database's uid at backup time.
    #[serde(default, rename = "databaseUID", skip_serializing_if = "Option::is_none")]
    pub database_uid: Option<i64>,
}

/// One file of a backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupFile {
    /// File name inside the run's directory (prefix).
    pub name: String,
    /// Size in bytes.
    pub size: i64,
}

/// Restores a backup into a database, once.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "redisgitops.dev",
    version = "v1alpha1",
    kind = "RedisRestore",
    plural = "redisrestores",
    shortname = "rrs",
    namespaced,
    status = "RedisRestoreStatus",
    doc = "Imports a RedisBackup into a Redis Enterprise database, once.",
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".status.backupName"}"#,
    printcolumn = r#"{"name":"Database","type":"string","jsonPath":".status.database"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Completed","type":"date","jsonPath":".status.completionTime"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RedisRestoreSpec {
    /// The RedisBackup (in this namespace) to restore. Exactly one of `backupName` and `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub backup_name: Option<String>,
    /// Restore the latest successful RedisBackup of this RedisBackupSchedule (for `database`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub schedule: Option<String>,
    /// The RedisEnterpriseDatabase to restore into. Default: the backup's database (required with `schedule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub database: Option<String>,
    /// Import into a database that holds keys; the import erases them. Default: false (refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
}

/// The observed state of a restore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisRestoreStatus {
    /// `Pending`, `Running`, `Succeeded` or `Failed`. A finished restore never runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The RedisBackup restored (resolved from `spec.schedule` when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_name: Option<String>,
    /// The RedisEnterpriseDatabase restored into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// When the import started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the import finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Whether the import request was accepted by the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_requested: Option<bool>,
    /// Number of keys after the import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_count: Option<i64>,
    /// Why it failed, as the cluster reports it (`import_failure_reason`) or as the agent saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Details of the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Synced`, for restores that came from Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
    /// The Git revision this spec came from, when applied by a GitSync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
}

/// The phases of a backup or restore run.
pub mod phases {
    /// Accepted, not started.
    pub const PENDING: &str = "Pending";
    /// The export or import is under way.
    pub const RUNNING: &str = "Running";
    /// Finished with files (backup) or data (restore).
    pub const SUCCEEDED: &str = "Succeeded";
    /// Finished without.
    pub const FAILED: &str = "Failed";

    /// Whether `phase` is final.
    pub fn is_finished(phase: Option<&str>) -> bool {
        matches!(phase, Some(SUCCEEDED | FAILED))
    }
}

/// Label on a RedisBackup naming the schedule that created it.
pub const SCHEDULE_LABEL: &str = "redisgitops.dev/backup-schedule";
/// Label on a RedisBackup naming its database.
pub const DATABASE_LABEL: &str = "redisgitops.dev/backup-database";
