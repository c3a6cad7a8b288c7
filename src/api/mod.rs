//! The API users write YAML against: the official operator's `RedisEnterpriseCluster` and
//! `RedisEnterpriseDatabase` (group `app.redislabs.com`), our `GitSync` (group `redisgitops.dev`), their CRDs,
//! and the labels and annotations the agent puts on what it manages.

pub mod backup;
pub mod cluster;
pub mod conditions;
pub mod database;
pub mod gitsync;

pub use backup::{RedisBackup, RedisBackupSchedule, RedisRestore};
pub use cluster::{RedisEnterpriseCluster, RedisEnterpriseClusterSpec, RedisEnterpriseClusterStatus};
pub use database::{RedisEnterpriseDatabase, RedisEnterpriseDatabaseSpec, RedisEnterpriseDatabaseStatus};
pub use gitsync::{GitSync, GitSyncSpec, GitSyncStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of the official operator's kinds.
pub const REDIS_GROUP: &str = "app.redislabs.com";
/// API group of this project's own kinds.
pub const GITOPS_GROUP: &str = "redisgitops.dev";

/// Label and annotation keys the agent writes.
pub mod keys {
    /// `app.kubernetes.io/name` of every child object.
    pub const NAME: &str = "app.kubernetes.io/name";
    /// `app.kubernetes.io/instance`: the REC or REDB a child belongs to.
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    /// `app.kubernetes.io/managed-by`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// `app.kubernetes.io/component`: which part of a cluster or database a child is.
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    /// The value of `managed-by` on everything this project creates.
    pub const MANAGER: &str = "redis-gitops";
    /// Hash of everything that should restart Redis Enterprise pods when it changes.
    pub const POD_TEMPLATE_HASH: &str = "redisgitops.dev/pod-template-hash";
    /// Marks an object that pruning must never delete.
    pub const PROTECT: &str = "redisgitops.dev/protect";
    /// On a REDB: adopt the existing database (bdb) of the REDB's name on its cluster; the value is that name or
    /// the bdb's uid. Without it an existing database of that name is never taken over.
    pub const ADOPT_DATABASE: &str = "redisgitops.dev/adopt-database";
    /// On a REC: the other namespaces whose REDBs may use this cluster, comma-separated, or `*` for all.
    pub const ALLOWED_DATABASE_NAMESPACES: &str = "redisgitops.dev/allowed-database-namespaces";
    /// On a REDB: `orphan` lets the REDB be deleted while its database (bdb) and its Secret stay.
    pub const DELETION_POLICY: &str = "redisgitops.dev/deletion-policy";
    /// The value of [`DELETION_POLICY`] that keeps the database.
    pub const DELETION_POLICY_ORPHAN: &str = "orphan";
    /// On a RedisBackup: `"true"` deletes its files when the object is deleted (same as
    /// `spec.deleteFilesOnDeletion`, for objects whose spec one does not want to edit).
    pub const DELETE_BACKUP_FILES: &str = "redisgitops.dev/delete-backup-files";
    /// On a GitSync: any new value asks for a sync at once (like Flux's `reconcile.fluxcd.io/requestedAt`); the
    /// value handled last is recorded in `status.lastHandledReconcileAt`.
    pub const RECONCILE_REQUESTED_AT: &str = "redisgitops.dev/reconcile-requested-at";
}

/// Every CRD this project serves, in a stable order: RECs (v1 storage, v1alpha1 served with the same schema),
/// REDBs, GitSyncs, then the backup kinds (schedules, backups, restores).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        cluster_crd(),
        RedisEnterpriseDatabase::crd(),
        GitSync::crd(),
        RedisBackupSchedule::crd(),
        RedisBackup::crd(),
        RedisRestore::crd(),
    ]
}

/// The REC CRD with both official versions. The official CRD serves `v1alpha1` beside the storage version `v1`
/// with the same fields, so the second version is the first one under another name, not served from storage.
fn cluster_crd() -> CustomResourceDefinition {
    let mut crd = RedisEnterpriseCluster::crd();
    if let Some(storage) = crd.spec.versions.first().cloned() {
        let mut alpha = storage;
        alpha.name = "v1alpha1".to_string();
        alpha.storage = false;
        alpha.served = true;
        crd.spec.versions.push(alpha);
    }
    crd
}

/// Schema transform for enum types: drops the type's own description so the description of the field that uses
/// it (which names the default and the allowed values) is what `kubectl explain` shows. Without it kube's
/// optional-field rewrite lets the enum's description replace the field's.
pub(crate) fn drop_type_description(schema: &mut schemars::Schema) {
    if let Some(object) = schema.as_object_mut() {
        object.remove("description");
    }
}

/// Failure to produce the CRD files.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// A CRD could not be written as YAML.
    #[error("failed to write CRD {name} as YAML: {source}")]
    Serialize {
        /// The CRD's name.
        name: String,
        /// Why.
        source: serde_saphyr::SerializeError,
    },
    /// A file could not be written.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The file name of a CRD in `crds/`: `<plural>.<group>.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default())
}

/// One CRD as a YAML document.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
    serde_saphyr::to_string(crd)
        .map(|text| format!("---\n{text}"))
        .map_err(|source| CrdError::Serialize {
            name: crd.metadata.name.clone().unwrap_or_default(),
            source,
        })
}

/// Every CRD as one YAML stream.
pub fn crds_yaml() -> Result<String, CrdError> {
    crds().iter().map(crd_yaml).collect()
}

/// The name of the kustomization beside the CRD files, so `deploy/` installs exactly these files (`../crds`).
pub const CRDS_KUSTOMIZATION: &str = "kustomization.yaml";

/// The kustomization that lists the CRD files (`deploy/kustomization.yaml` includes `crds/` through it).
pub fn crds_kustomization() -> String {
    let mut text = String::from(
        "# Generated by `redis-gitops crds --output-dir crds`: the CRD files, for `deploy/` (kubectl apply -k).\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for crd in crds() {
        text.push_str(&format!("  - {}\n", crd_file_name(&crd)));
    }
    text
}

/// Writes one file per CRD and the kustomization listing them into `directory`, and returns their paths.
pub fn write_crds(directory: &std::path::Path) -> Result<Vec<std::path::PathBuf>, CrdError> {
    std::fs::create_dir_all(directory).map_err(|source| CrdError::Write {
        path: directory.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for crd in crds() {
        let path = directory.join(crd_file_name(&crd));
        std::fs::write(&path, crd_yaml(&crd)?).map_err(|source| CrdError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    let path = directory.join(CRDS_KUSTOMIZATION);
    std::fs::write(&path, crds_kustomization()).map_err(|source| CrdError::Write {
        path: path.clone(),
        source,
    })?;
    written.push(path);
    Ok(written)
}
