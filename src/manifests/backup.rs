//! Semantic checks of the backup kinds that come from Git, one object at a time: a `RedisBackupSchedule`'s cron
//! expression and time zone, its targets (`databases` or `selector`), exactly one location and its retention; a
//! `RedisRestore`'s source (`backupName` or `schedule` + `database`). Checks across objects (the named databases
//! and schedules exist in the revision) are in `repo`. Pure.

use super::diagnostics::{FieldPath, Severity};
use super::validate::Issue;
use crate::api::backup::{BackupLocation, RedisBackupSchedule, RedisRestore};
use crate::backup::schedule::{self, ScheduleError};

fn error(path: FieldPath, message: impl Into<String>) -> Issue {
    Issue {
        severity: Severity::Error,
        path,
        message: message.into(),
    }
}

/// The issues of a schedule (empty when it is valid).
pub fn validate_schedule(object: &RedisBackupSchedule) -> Vec<Issue> {
    let spec = &object.spec;
    let mut issues = Vec::new();
    match schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(_) => {}
        Err(error_value @ ScheduleError::TimeZone { .. }) => {
            issues.push(error(FieldPath::of(&["spec", "timeZone"]), error_value.to_string()));
        }
        Err(error_value) => issues.push(error(FieldPath::of(&["spec", "schedule"]), error_value.to_string())),
    }
    match (&spec.databases, &spec.selector) {
        (Some(_), Some(_)) => issues.push(error(
            FieldPath::of(&["spec", "selector"]),
            "set either databases or selector, not both",
        )),
        (None, None) => issues.push(error(
            FieldPath::of(&["spec", "databases"]),
            "name the databases to back up (databases: [name, ...]) or select them by labels (selector)",
        )),
        (Some(names), None) => {
            if names.is_empty() {
                issues.push(error(
                    FieldPath::of(&["spec", "databases"]),
                    "databases is empty; name at least one",
                ));
            }
            for (index, name) in names.iter().enumerate() {
                if !is_object_name(name) {
                    issues.push(error(
                        FieldPath::of(&["spec", "databases"]).index(index),
                        format!("{name:?} is not a RedisEnterpriseDatabase name (lowercase letters, digits and '-')"),
                    ));
                }
            }
        }
        (None, Some(_)) => {}
    }
    issues.extend(validate_location(&spec.location, &FieldPath::of(&["spec", "location"])));
    if let Some(retention) = &spec.retention {
        if retention.keep_last.is_none() && retention.max_age.is_none() {
            issues.push(error(
                FieldPath::of(&["spec", "retention"]),
                "retention sets neither keepLast nor maxAge; set one, or remove retention to keep every run",
            ));
        }
        if let Some(age) = &retention.max_age
            && std::time::Duration::from(*age).is_zero()
        {
            issues.push(error(
                FieldPath::of(&["spec", "retention", "maxAge"]),
                "maxAge must be longer than 0, for example 720h",
            ));
        }
    }
    issues
}

/// Whether `name` can name a Kubernetes object (a DNS subdomain: lowercase letters, digits, '-' and '.').
fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// The issues of a location: exactly one kind.
pub fn validate_location(location: &BackupLocation, path: &FieldPath) -> Vec<Issue> {
    let set = [location.mount.is_some(), location.s3.is_some(), location.sftp.is_some()]
        .iter()
        .filter(|set| **set)
        .count();
    match set {
        1 => Vec::new(),
        0 => vec![error(path.clone(), "set one location: mount, s3 or sftp")],
        _ => vec![error(path.clone(), "set exactly one location of mount, s3 and sftp")],
    }
}

/// The issues of a restore.
pub fn validate_restore(object: &RedisRestore) -> Vec<Issue> {
    let spec = &object.spec;
    match (&spec.backup_name, &spec.schedule) {
        (Some(_), Some(_)) => vec![error(
            FieldPath::of(&["spec", "schedule"]),
            "set either backupName or schedule, not both",
        )],
        (None, None) => vec![error(
            FieldPath::of(&["spec", "backupName"]),
            "name the RedisBackup to restore (backupName), or a schedule whose latest successful backup to restore",
        )],
        (None, Some(_)) if spec.database.is_none() => vec![error(
            FieldPath::of(&["spec", "database"]),
            "a restore from a schedule needs the database whose backup to restore (database)",
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(yaml: &str) -> RedisBackupSchedule {
        serde_saphyr::from_str(yaml).unwrap_or_else(|error| panic!("bad fixture: {error}"))
    }

    fn messages(issues: &[Issue]) -> Vec<(String, String)> {
        issues
            .iter()
            .map(|issue| (issue.path.to_string(), issue.message.clone()))
            .collect()
    }

    const HEAD: &str = "apiVersion: redisgitops.dev/v1alpha1\nkind: RedisBackupSchedule\nmetadata: {name: nightly}\n";

    #[test]
    fn a_valid_schedule_has_no_issues() {
        let object = schedule(&format!(
            "{HEAD}spec: {{schedule: '0 3 * * *', timeZone: Europe/Berlin, databases: [cache], location: {{mount: {{path: /backups}}}}, retention: {{keepLast: 3, maxAge: 720h}}}}"
        ));
        assert!(
            validate_schedule(&object).is_empty(),
            "{:?}",
            messages(&validate_schedule(&object))
        );
    }

    #[test]
    fn bad_schedules_are_located() {
        let object = schedule(&format!(
            "{HEAD}spec: {{schedule: '0 3 * *', timeZone: Mars/Base, location: {{}}, retention: {{}}}}"
        ));
        let found = messages(&validate_schedule(&object));
        let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            ["spec.timeZone", "spec.databases", "spec.location", "spec.retention"],
            "{found:?}"
        );
        let object = schedule(&format!(
            "{HEAD}spec: {{schedule: 'every day', databases: [Cache], selector: {{matchLabels: {{a: b}}}}, location: {{mount: {{path: /b}}, sftp: {{url: 'sftp://h/', secretName: s}}}}}}"
        ));
        let found = messages(&validate_schedule(&object));
        assert_eq!(found[0].0, "spec.schedule");
        assert!(
            found[0]
                .1
                .starts_with("invalid cron expression \"every day\": it has 2 fields, not 5 or 6"),
            "{found:?}"
        );
        assert_eq!(
            found[1],
            (
                "spec.selector".to_string(),
                "set either databases or selector, not both".to_string()
            )
        );
        assert_eq!(found[2].0, "spec.location");
        assert_eq!(found[2].1, "set exactly one location of mount, s3 and sftp");
    }

    #[test]
    fn restores_name_one_source() {
        let restore = |spec: &str| -> RedisRestore {
            serde_saphyr::from_str(&format!(
                "apiVersion: redisgitops.dev/v1alpha1\nkind: RedisRestore\nmetadata: {{name: r}}\nspec: {spec}\n"
            ))
            .unwrap_or_else(|error| panic!("bad fixture: {error}"))
        };
        assert!(validate_restore(&restore("{backupName: nightly-cache-20260101000000}")).is_empty());
        assert!(validate_restore(&restore("{schedule: nightly, database: cache}")).is_empty());
        assert_eq!(
            messages(&validate_restore(&restore("{schedule: nightly}")))[0].0,
            "spec.database"
        );
        assert_eq!(messages(&validate_restore(&restore("{}")))[0].0, "spec.backupName");
        assert_eq!(
            messages(&validate_restore(&restore("{backupName: a, schedule: b}")))[0].0,
            "spec.schedule"
        );
    }
}
