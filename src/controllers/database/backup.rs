//! Periodic backup of a database run by the cluster (REDB `spec.backup`): which keys of the location's Secret
//! become which fields of the bdb's `backup_location` (the official operator's key names), reading them in the
//! dereference stage, and `status.backupInfo` from what the bdb reports. The Secret values are only ever put into
//! the REST body: never logged, never in errors, events or status (errors name the Secret and the key).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::Value;

use super::DatabaseError;
use super::dereference::Blocked;
use crate::api::database::BackupInfo;
use crate::controllers::password::secret_text;
use crate::enterprise::types::Bdb;
use crate::model::BackupLocation;

/// A key of a backup Secret and the `backup_location` field it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialKey {
    /// The key in the Secret, as the official operator names it (`AWS_ACCESS_KEY_ID`).
    pub secret_key: &'static str,
    /// The REST field of the location (`access_key_id`).
    pub rest_field: &'static str,
    /// Whether the location is refused without it.
    pub required: bool,
}

const fn key(secret_key: &'static str, rest_field: &'static str, required: bool) -> CredentialKey {
    CredentialKey {
        secret_key,
        rest_field,
        required,
    }
}

const S3_KEYS: [CredentialKey; 2] = [
    key("AWS_ACCESS_KEY_ID", "access_key_id", true),
    key("AWS_SECRET_ACCESS_KEY", "secret_access_key", true),
];
const GCS_KEYS: [CredentialKey; 4] = [
    key("CLIENT_ID", "client_id", true),
    key("CLIENT_EMAIL", "client_email", true),
    key("PRIVATE_KEY_ID", "private_key_id", true),
    key("PRIVATE_KEY", "private_key", true),
];
const ABS_KEYS: [CredentialKey; 2] = [
    key("AccountName", "account_name", true),
    key("AccountKey", "account_key", true),
];
// Without a key the cluster uses its own generated SSH key (redis/docs `backup_location`), so `Key` is optional.
const SFTP_KEYS: [CredentialKey; 1] = [key("Key", "key", false)];

/// The Secret a location reads its credentials from, and its keys; `None` for locations without a Secret.
pub fn credential_keys(location: &BackupLocation) -> Option<(&str, &'static [CredentialKey])> {
    match location {
        BackupLocation::S3 { secret_name, .. } => Some((secret_name, &S3_KEYS)),
        BackupLocation::Gcs { secret_name, .. } => Some((secret_name, &GCS_KEYS)),
        BackupLocation::Abs { secret_name, .. } => Some((secret_name, &ABS_KEYS)),
        BackupLocation::Sftp { secret_name, .. } => Some((secret_name, &SFTP_KEYS)),
        BackupLocation::Ftp { .. } | BackupLocation::Mount { .. } => None,
    }
}

/// The credential fields of the location, from `secret` (the location's Secret, `None` when it does not exist):
/// `Err` says what is missing, naming the Secret and key but never a value.
pub fn credentials_from_secret(
    location: &BackupLocation,
    namespace: &str,
    secret: Option<&Secret>,
) -> Result<BTreeMap<String, String>, String> {
    let Some((name, keys)) = credential_keys(location) else {
        return Ok(BTreeMap::new());
    };
    let Some(secret) = secret else {
        let names: Vec<&str> = keys.iter().map(|key| key.secret_key).collect();
        return Err(format!(
            "the backup Secret {namespace}/{name} does not exist; create it with the keys {}",
            names.join(", ")
        ));
    };
    let mut credentials = BTreeMap::new();
    for key in keys {
        match secret_text(secret, key.secret_key) {
            Ok(Some(value)) => {
                credentials.insert(key.rest_field.to_string(), value);
            }
            Ok(None) if key.required => {
                return Err(format!(
                    "the backup Secret {namespace}/{name} has no `{}` key; add it",
                    key.secret_key
                ));
            }
            Ok(None) => {}
            Err(not_text) => return Err(not_text.to_string()),
        }
    }
    Ok(credentials)
}

/// Reads the credentials of the REDB's backup location (none without a backup or for ftp/mount locations). A
/// missing Secret or key blocks the pass until it appears (the cluster would refuse the location without it).
pub async fn read_backup_credentials(
    client: &kube::Client,
    namespace: &str,
    location: Option<&BackupLocation>,
) -> Result<Result<BTreeMap<String, String>, Blocked>, DatabaseError> {
    let Some((location, (name, _))) = location.and_then(|l| credential_keys(l).map(|keys| (l, keys))) else {
        return Ok(Ok(BTreeMap::new()));
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|source| DatabaseError::Kubernetes {
            action: format!("read the backup Secret {namespace}/{name}"),
            source: Box::new(source),
        })?;
    Ok(
        credentials_from_secret(location, namespace, secret.as_ref()).map_err(|message| Blocked {
            stalled: false,
            reason: "BackupSecretInvalid",
            message,
        }),
    )
}

/// `status.backupInfo` from the bdb's backup fields, when the bdb backs up periodically.
pub fn backup_info(bdb: &Bdb) -> Option<BackupInfo> {
    let fields = &bdb.other;
    if fields.get("backup").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let text = |key: &str| {
        fields
            .get(key)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    let number = |key: &str| {
        fields.get(key).and_then(|value| {
            value
                .as_i64()
                .or_else(|| value.as_f64().map(|f| f.round() as i64))
                .or_else(|| {
                    value
                        .as_str()
                        .and_then(|text| text.parse::<f64>().ok())
                        .map(|f| f.round() as i64)
                })
        })
    };
    Some(BackupInfo {
        backup_failure_reason: text("backup_failure_reason"),
        backup_history: number("backup_history"),
        backup_interval: number("backup_interval"),
        backup_interval_offset: number("backup_interval_offset"),
        backup_progress_percentage: number("backup_progress"),
        backup_status: text("backup_status"),
        last_backup_time: text("last_backup_time"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn s3() -> BackupLocation {
        BackupLocation::S3 {
            secret_name: "s3-keys".into(),
            bucket_name: "backups".into(),
            subdir: None,
            region_name: None,
        }
    }

    fn secret(data: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn the_official_key_names_fill_the_documented_location_fields() {
        let keys = secret(&[("AWS_ACCESS_KEY_ID", "AKIA-ID"), ("AWS_SECRET_ACCESS_KEY", "s3-secret")]);
        let credentials = credentials_from_secret(&s3(), "ns", Some(&keys)).expect("complete");
        assert_eq!(
            credentials,
            BTreeMap::from([
                ("access_key_id".to_string(), "AKIA-ID".to_string()),
                ("secret_access_key".to_string(), "s3-secret".to_string())
            ])
        );
        let abs = BackupLocation::Abs {
            secret_name: "abs".into(),
            container: "c".into(),
            subdir: None,
        };
        let keys = secret(&[("AccountName", "acct"), ("AccountKey", "k")]);
        let credentials = credentials_from_secret(&abs, "ns", Some(&keys)).expect("complete");
        assert_eq!(credentials.keys().collect::<Vec<_>>(), ["account_key", "account_name"]);
        let sftp = BackupLocation::Sftp {
            secret_name: "sftp".into(),
            url: "sftp://host/".into(),
        };
        assert!(
            credentials_from_secret(&sftp, "ns", Some(&secret(&[])))
                .expect("optional key")
                .is_empty()
        );
        let mount = BackupLocation::Mount { path: "/b".into() };
        assert!(
            credentials_from_secret(&mount, "ns", None)
                .expect("no Secret")
                .is_empty()
        );
    }

    #[test]
    fn a_missing_secret_or_key_is_named_without_any_value() {
        assert_eq!(
            credentials_from_secret(&s3(), "ns", None).unwrap_err(),
            "the backup Secret ns/s3-keys does not exist; create it with the keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"
        );
        let partial = secret(&[("AWS_ACCESS_KEY_ID", "AKIA-ID")]);
        let error = credentials_from_secret(&s3(), "ns", Some(&partial)).unwrap_err();
        assert_eq!(
            error,
            "the backup Secret ns/s3-keys has no `AWS_SECRET_ACCESS_KEY` key; add it"
        );
        assert!(!error.contains("AKIA-ID"));
    }

    #[test]
    fn backup_info_comes_from_the_bdb_backup_fields() {
        let bdb: Bdb = serde_json::from_value(json!({
            "uid": 1, "backup": true, "backup_interval": 3600, "backup_status": "succeeded",
            "backup_progress": 100.0, "last_backup_time": "2026-12-01T10:00:00Z", "backup_failure_reason": ""
        }))
        .expect("bdb");
        let info = backup_info(&bdb).expect("backing up");
        assert_eq!(info.backup_interval, Some(3600));
        assert_eq!(info.backup_status.as_deref(), Some("succeeded"));
        assert_eq!(info.backup_progress_percentage, Some(100));
        assert_eq!(info.last_backup_time.as_deref(), Some("2026-12-01T10:00:00Z"));
        assert_eq!(info.backup_failure_reason, None, "an empty reason is no reason");
        let off: Bdb = serde_json::from_value(json!({"uid": 1, "backup": false})).expect("bdb");
        assert_eq!(backup_info(&off), None);
    }
}
