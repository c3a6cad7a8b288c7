//! Where one run's files live: the REST location bodies of an export and an import (which carry credentials and
//! are never logged), a display form without them, and listing and deleting the files through `object_store`
//! (local paths for `mount`, S3 and S3-compatible endpoints for `s3`). SFTP files are exported and imported by the
//! cluster; the agent cannot list or delete them.

use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;
use serde_json::{Value, json};

use crate::api::backup::BackupFile;

/// An opened store and the run's prefix in it.
type OpenStore = (Arc<dyn ObjectStore>, StorePath);

/// Credentials of an S3 location. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S3Credentials(..)")
    }
}

/// The directory (prefix) of one run at its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunLocation {
    /// `<path>/<run>` on a mount every node and the agent see.
    Mount {
        /// The run's directory.
        directory: PathBuf,
    },
    /// `s3://<bucket>/<subdir>/<run>/`.
    S3 {
        /// Bucket.
        bucket: String,
        /// Region.
        region: String,
        /// The run's prefix inside the bucket, without slashes at either end.
        prefix: String,
        /// An S3-compatible endpoint (the REC's `spec.backup.s3.url`), or AWS.
        endpoint: Option<String>,
        /// Keys.
        credentials: S3Credentials,
    },
    /// `sftp://user@host/path/<run>/`.
    Sftp {
        /// The run's URL, ending in `/`.
        url: String,
        /// The SSH private key.
        key: Option<String>,
    },
}

/// Failure to list or delete a run's files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be set up.
    #[error("unable to open the backup location {location}: {reason}")]
    Open {
        /// Display form of the location.
        location: String,
        /// Why.
        reason: String,
    },
    /// Listing failed.
    #[error("failed to list the backup files at {location}: {reason}")]
    List {
        /// Display form of the location.
        location: String,
        /// Why.
        reason: String,
    },
    /// Deleting failed.
    #[error("failed to delete the backup file {file} at {location}: {reason}")]
    Delete {
        /// Display form of the location.
        location: String,
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The run directory could not be created.
    #[error("unable to create the backup directory {directory}: {reason}")]
    CreateDirectory {
        /// The directory.
        directory: String,
        /// Why.
        reason: String,
    },
}

impl StoreError {
    /// A stable name of the variant.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Open { .. } => "BackupLocationUnusable",
            Self::List { .. } => "BackupListFailed",
            Self::Delete { .. } => "BackupDeleteFailed",
            Self::CreateDirectory { .. } => "BackupDirectoryFailed",
        }
    }
}

impl RunLocation {
    /// Where the run's files are, without credentials (for status, events and logs).
    pub fn display(&self) -> String {
        match self {
            Self::Mount { directory } => directory.display().to_string(),
            Self::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}/"),
            Self::Sftp { url, .. } => strip_password(url),
        }
    }

    /// The `export_location` of `POST /v1/bdbs/{uid}/actions/export` (holds credentials).
    pub fn export_location(&self) -> Value {
        match self {
            Self::Mount { directory } => json!({"type": "mount_point", "path": directory.display().to_string()}),
            Self::S3 {
                bucket,
                region,
                prefix,
                credentials,
                ..
            } => json!({
                "type": "s3",
                "bucket_name": bucket,
                "subdir": prefix,
                "region_name": region,
                "access_key_id": credentials.access_key_id,
                "secret_access_key": credentials.secret_access_key,
            }),
            Self::Sftp { url, key } => {
                let mut location = json!({"type": "sftp", "sftp_url": url});
                if let Some(key) = key {
                    location["key"] = Value::String(key.clone());
                }
                location
            }
        }
    }

    /// One `dataset_import_sources` entry of `POST /v1/bdbs/{uid}/actions/import` (holds credentials).
    pub fn import_source(&self, file: &str) -> Value {
        let mut source = self.export_location();
        match self {
            Self::Mount { .. } | Self::S3 { .. } => source["filename"] = Value::String(file.to_string()),
            Self::Sftp { url, .. } => source["sftp_url"] = Value::String(format!("{url}{file}")),
        }
        source
    }

    /// Creates the run's directory where the agent can (a mount); the cluster writes into it.
    pub fn prepare(&self) -> Result<(), StoreError> {
        if let Self::Mount { directory } = self {
            std::fs::create_dir_all(directory).map_err(|error| StoreError::CreateDirectory {
                directory: directory.display().to_string(),
                reason: error.to_string(),
            })?;
        }
        Ok(())
    }

    /// Whether this is a mount directory that does not exist (so holds no files).
    fn is_missing_directory(&self) -> bool {
        matches!(self, Self::Mount { directory } if !directory.is_dir())
    }

    /// The store and the run's prefix in it; `None` for SFTP (not listable by the agent).
    fn store(&self) -> Result<Option<OpenStore>, StoreError> {
        let open = |reason: String| StoreError::Open {
            location: self.display(),
            reason,
        };
        match self {
            Self::Mount { directory } => {
                let store = object_store::local::LocalFileSystem::new_with_prefix(directory)
                    .map_err(|error| open(error.to_string()))?;
                Ok(Some((Arc::new(store), StorePath::default())))
            }
            Self::S3 {
                bucket,
                region,
                prefix,
                endpoint,
                credentials,
            } => {
                // object_store builds its own reqwest client, which takes the process's default rustls provider;
                // the workspace builds rustls with ring only (a no-op when a provider is installed already).
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(&credentials.access_key_id)
                    .with_secret_access_key(&credentials.secret_access_key);
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let store = builder.build().map_err(|error| open(error.to_string()))?;
                Ok(Some((Arc::new(store), StorePath::from(prefix.as_str()))))
            }
            Self::Sftp { .. } => Ok(None),
        }
    }

    /// The run's files with their sizes, by name; `None` where the agent cannot list (SFTP).
    pub async fn list(&self) -> Result<Option<Vec<BackupFile>>, StoreError> {
        if self.is_missing_directory() {
            return Ok(Some(Vec::new()));
        }
        let Some((store, prefix)) = self.store()? else {
            return Ok(None);
        };
        let prefix_arg = (!prefix.as_ref().is_empty()).then_some(&prefix);
        let objects: Vec<object_store::ObjectMeta> =
            store
                .list(prefix_arg)
                .try_collect()
                .await
                .map_err(|error| StoreError::List {
                    location: self.display(),
                    reason: error.to_string(),
                })?;
        let mut files: Vec<BackupFile> = objects
            .into_iter()
            .filter_map(|object| {
                let name = object.location.filename()?.to_string();
                // Partial files of an export under way.
                (!name.starts_with('.')).then_some(BackupFile {
                    name,
                    size: object.size as i64,
                })
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(files))
    }

    /// Deletes every file of the run (and its directory on a mount). Files already gone count as deleted.
    pub async fn delete_all(&self) -> Result<(), StoreError> {
        if self.is_missing_directory() {
            return Ok(());
        }
        let Some((store, prefix)) = self.store()? else {
            return Ok(());
        };
        let prefix_arg = (!prefix.as_ref().is_empty()).then_some(&prefix);
        let objects: Vec<object_store::ObjectMeta> =
            store
                .list(prefix_arg)
                .try_collect()
                .await
                .map_err(|error| StoreError::List {
                    location: self.display(),
                    reason: error.to_string(),
                })?;
        for object in objects {
            match store.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    return Err(StoreError::Delete {
                        location: self.display(),
                        file: object.location.to_string(),
                        reason: error.to_string(),
                    });
                }
            }
        }
        if let Self::Mount { directory } = self {
            match std::fs::remove_dir_all(directory) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(StoreError::Delete {
                        location: self.display(),
                        file: directory.display().to_string(),
                        reason: error.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// `sftp://user:password@host/...` without the password.
fn strip_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}/{path}")
        }
        None => url.to_string(),
    }
}
