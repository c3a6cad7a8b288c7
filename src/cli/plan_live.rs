//! `plan --live`: the base of the plan is what the cluster of the current kubeconfig holds now, not a revision, so
//! the plan shows live drift as well as the change (like `flux diff`). Read-only: it only lists RECs and REDBs.
//! The live objects are turned back into manifest files (each under the file its `redisgitops.dev/source-file`
//! annotation names, without what the agent and the API server added) and loaded like a revision. With the GitSync
//! (`--gitsync FILE`) the live side is everything that GitSync applied, so removals show what pruning does; without
//! it only the live objects the head also has are compared. Binary-private.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use redis_gitops::api::cluster::RedisEnterpriseCluster;
use redis_gitops::api::database::RedisEnterpriseDatabase;
use redis_gitops::manifests::{LoadOptions, Repository, SourceFile, load_files};
use redis_gitops::sync::plan::{
    GITSYNC_NAME_LABEL, GITSYNC_NAMESPACE_LABEL, REVISION_ANNOTATION, SOURCE_FILE_ANNOTATION,
};
use serde_json::{Map, Value};

/// Metadata the agent, kubectl or the API server writes, left out of the live side.
const WRITTEN_BY_OTHERS: [&str; 5] = [
    GITSYNC_NAME_LABEL,
    GITSYNC_NAMESPACE_LABEL,
    SOURCE_FILE_ANNOTATION,
    REVISION_ANNOTATION,
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Which live objects make the base.
#[derive(Clone, Debug)]
pub enum LiveScope {
    /// Everything the GitSync `namespace/name` applied (its labels), in every namespace.
    GitSync {
        /// The GitSync's namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The objects of these `(namespace, name)` pairs per kind, read in their namespaces.
    Head {
        /// RECs of the head.
        clusters: BTreeSet<(String, String)>,
        /// REDBs of the head.
        databases: BTreeSet<(String, String)>,
    },
}

impl LiveScope {
    /// The head's own objects.
    pub fn of_head(head: &Repository) -> Self {
        LiveScope::Head {
            clusters: head
                .clusters
                .iter()
                .map(|c| (c.validated.namespace.clone(), c.validated.name.clone()))
                .collect(),
            databases: head
                .databases
                .iter()
                .map(|d| (d.validated.namespace.clone(), d.validated.name.clone()))
                .collect(),
        }
    }
}

/// The live side, loaded, and how many objects it holds.
pub struct Live {
    /// The objects as a repository.
    pub repository: Repository,
    /// How the side is named in messages.
    pub description: String,
}

/// Reads the live side through the current kubeconfig (`context` overrides its current context).
pub fn read(scope: &LiveScope, context: Option<&str>, options: &LoadOptions) -> Result<Live, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("unable to start the runtime: {error}"))?;
    runtime.block_on(read_async(scope, context, options))
}

async fn client(context: Option<&str>) -> Result<kube::Client, String> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match context {
        Some(_) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|error| format!("unable to read the kubeconfig context: {error}"))?,
        None => kube::Config::infer()
            .await
            .map_err(|error| format!("unable to find a kubeconfig or in-cluster account: {error}"))?,
    };
    kube::Client::try_from(config).map_err(|error| format!("unable to build a Kubernetes client: {error}"))
}

async fn read_async(scope: &LiveScope, context: Option<&str>, options: &LoadOptions) -> Result<Live, String> {
    let client = client(context).await?;
    let kinds = [
        ApiResource::erase::<RedisEnterpriseCluster>(&()),
        ApiResource::erase::<RedisEnterpriseDatabase>(&()),
    ];
    let mut objects = Vec::new();
    for (index, resource) in kinds.iter().enumerate() {
        match scope {
            LiveScope::GitSync { namespace, name } => {
                let selector = format!("{GITSYNC_NAME_LABEL}={name},{GITSYNC_NAMESPACE_LABEL}={namespace}");
                let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
                let list = api
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|error| listing_failed(resource, "every namespace", &error))?;
                objects.extend(list.items.into_iter().map(|o| (resource.clone(), o)));
            }
            LiveScope::Head { clusters, databases } => {
                let wanted = if index == 0 { clusters } else { databases };
                let namespaces: BTreeSet<&String> = wanted.iter().map(|(namespace, _)| namespace).collect();
                for namespace in namespaces {
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
                    let list = api
                        .list(&ListParams::default())
                        .await
                        .map_err(|error| listing_failed(resource, namespace, &error))?;
                    objects.extend(
                        list.items
                            .into_iter()
                            .filter(|o| {
                                let key = (
                                    o.metadata.namespace.clone().unwrap_or_default(),
                                    o.metadata.name.clone().unwrap_or_default(),
                                );
                                wanted.contains(&key)
                            })
                            .map(|o| (resource.clone(), o)),
                    );
                }
            }
        }
    }
    let files = as_files(&objects);
    let count = objects.len();
    let repository = load_files(&files, options).map_err(|diagnostics| {
        let first = diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(ToString::to_string)
            .unwrap_or_default();
        format!("the live objects do not load as manifests: {first}")
    })?;
    Ok(Live {
        repository,
        description: format!("the live cluster ({count} objects)"),
    })
}

fn listing_failed(resource: &ApiResource, namespace: &str, error: &kube::Error) -> String {
    let hint = match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "; --live needs `list` on {}.{} in {namespace}",
            resource.plural, resource.group
        ),
        _ => String::new(),
    };
    format!(
        "failed to list the live {} in {namespace}: {error}{hint}",
        resource.kind
    )
}

/// The live objects as manifest files: grouped by the file they came from, each one JSON document (YAML reads it)
/// with only what a manifest holds.
fn as_files(objects: &[(ApiResource, DynamicObject)]) -> Vec<SourceFile> {
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (resource, object) in objects {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let annotations = object.metadata.annotations.clone().unwrap_or_default();
        let path = annotations
            .get(SOURCE_FILE_ANNOTATION)
            .filter(|path| !path.is_empty() && !path.contains(".."))
            .cloned()
            .unwrap_or_else(|| format!("live/{namespace}/{}-{name}.yaml", resource.plural));
        files
            .entry(path)
            .or_default()
            .push(manifest(resource, object).to_string());
    }
    files
        .into_iter()
        .map(|(path, documents)| SourceFile {
            path,
            content: documents.join("\n---\n").into_bytes(),
        })
        .collect()
}

/// One live object as its manifest: kind, name, namespace, the user's labels and annotations, and the spec.
fn manifest(resource: &ApiResource, object: &DynamicObject) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), object.metadata.name.clone().unwrap_or_default().into());
    if let Some(namespace) = &object.metadata.namespace {
        metadata.insert("namespace".into(), namespace.clone().into());
    }
    for (field, values) in [
        ("labels", object.metadata.labels.as_ref()),
        ("annotations", object.metadata.annotations.as_ref()),
    ] {
        let kept: Map<String, Value> = values
            .into_iter()
            .flatten()
            .filter(|(key, _)| !WRITTEN_BY_OTHERS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect();
        if !kept.is_empty() {
            metadata.insert(field.into(), Value::Object(kept));
        }
    }
    let mut document = Map::new();
    document.insert("apiVersion".into(), resource.api_version.clone().into());
    document.insert("kind".into(), resource.kind.clone().into());
    document.insert("metadata".into(), Value::Object(metadata));
    if let Some(spec) = object.data.get("spec") {
        document.insert("spec".into(), spec.clone());
    }
    Value::Object(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_object_becomes_its_manifest_under_its_source_file() {
        let resource = ApiResource::erase::<RedisEnterpriseDatabase>(&());
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "app.redislabs.com/v1alpha1",
            "kind": "RedisEnterpriseDatabase",
            "metadata": {
                "name": "cache", "namespace": "redis", "uid": "u-1", "resourceVersion": "7",
                "managedFields": [{"manager": "redis-gitops/git"}],
                "labels": {GITSYNC_NAME_LABEL: "sync", "team": "a"},
                "annotations": {SOURCE_FILE_ANNOTATION: "databases/cache.yaml", REVISION_ANNOTATION: "main@sha1:x",
                                "redisgitops.dev/protect": "true"},
            },
            "spec": {"memorySize": "1GB"},
            "status": {"status": "active"},
        }))
        .expect("a dynamic object");
        let files = as_files(&[(resource, object)]);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "databases/cache.yaml");
        let document: Value = serde_json::from_slice(&files[0].content).expect("JSON");
        assert_eq!(
            document,
            serde_json::json!({
                "apiVersion": "app.redislabs.com/v1alpha1",
                "kind": "RedisEnterpriseDatabase",
                "metadata": {"name": "cache", "namespace": "redis", "labels": {"team": "a"},
                             "annotations": {"redisgitops.dev/protect": "true"}},
                "spec": {"memorySize": "1GB"},
            })
        );
    }
}
