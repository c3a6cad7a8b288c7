//! Installing the agent: the objects of `deploy/` (the CRDs, the namespace, the ServiceAccount, the RBAC, the
//! Service, the PodDisruptionBudget and the Deployment), built into the binary so `redis-gitops install --export`
//! prints exactly what `kubectl apply --server-side -k deploy` applies, and `install` / `uninstall` against the
//! current kubeconfig. Uninstalling never deletes the CRDs or any REC, REDB or GitSync: deleting a CRD deletes every
//! object of its kind, and the REDB finalizer would then delete every database.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiResource, Discovery, Scope};
use serde_json::Value;

/// Field manager of `redis-gitops install`.
pub const FIELD_MANAGER: &str = "redis-gitops/install";
/// The namespace the agent runs in.
pub const NAMESPACE: &str = "redis-gitops-system";

/// The files of `deploy/base/`, in the order `kustomization.yaml` lists them (and they are applied).
const BASE_FILES: [(&str, &str); 6] = [
    ("namespace.yaml", include_str!("../deploy/base/namespace.yaml")),
    (
        "serviceaccount.yaml",
        include_str!("../deploy/base/serviceaccount.yaml"),
    ),
    ("rbac.yaml", include_str!("../deploy/base/rbac.yaml")),
    ("service.yaml", include_str!("../deploy/base/service.yaml")),
    (
        "poddisruptionbudget.yaml",
        include_str!("../deploy/base/poddisruptionbudget.yaml"),
    ),
    ("deployment.yaml", include_str!("../deploy/base/deployment.yaml")),
];

/// A failure to install or uninstall.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file of `deploy/base/` built into the binary is not valid YAML (a build defect, caught by the tests).
    #[error("failed to read deploy/base/{file}: {message}")]
    Manifest {
        /// The file.
        file: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A CRD could not be serialized.
    #[error("failed to build the CRDs: {0}")]
    Crds(String),
    /// The API server's resource list could not be read.
    #[error("unable to read the API server's resource types: {}", crate::runtime::errors::kube_error_text(.0))]
    Discovery(#[source] Box<kube::Error>),
    /// The API server does not serve a kind the install needs.
    #[error("the API server does not serve {api_version} {kind}; install needs a Kubernetes 1.29 or newer API server")]
    UnknownKind {
        /// The object's apiVersion.
        api_version: String,
        /// The object's kind.
        kind: String,
    },
    /// Fields of an object are managed by another writer with other values.
    #[error(
        "failed to apply {kind} {name}: its fields are set differently by another manager ({}); check who \
         installed it, and run install --force-conflicts to take the fields over",
        crate::runtime::errors::kube_error_text(source)
    )]
    Conflict {
        /// The object's kind.
        kind: String,
        /// The object's name (with its namespace).
        name: String,
        /// The API server's answer.
        source: Box<kube::Error>,
    },
    /// A request failed.
    #[error(
        "failed to {action} {kind} {name}: {}",
        crate::runtime::errors::kube_error_text(source)
    )]
    Request {
        /// What was being done (apply, delete).
        action: &'static str,
        /// The object's kind.
        kind: String,
        /// The object's name (with its namespace).
        name: String,
        /// The API server's answer.
        source: Box<kube::Error>,
    },
}

impl InstallError {
    /// A stable name of the failure (the variant).
    pub fn category(&self) -> &'static str {
        match self {
            Self::Manifest { .. } => "Manifest",
            Self::Crds(_) => "Crds",
            Self::Discovery(_) => "Discovery",
            Self::UnknownKind { .. } => "UnknownKind",
            Self::Conflict { .. } => "Conflict",
            Self::Request { .. } => "Request",
        }
    }
}

/// Every object the install applies, in apply order: the namespace, the CRDs, then the rest of `deploy/base/`.
pub fn install_objects() -> Result<Vec<Value>, InstallError> {
    let mut base = Vec::new();
    for (file, text) in BASE_FILES {
        for document in text.split("\n---\n") {
            let value: Value = serde_saphyr::from_str(document).map_err(|error| InstallError::Manifest {
                file,
                message: error.to_string(),
            })?;
            if !value.is_null() {
                base.push(value);
            }
        }
    }
    let mut crds = Vec::new();
    for crd in crate::api::crds() {
        let value = serde_json::to_value(&crd).map_err(|error| InstallError::Crds(error.to_string()))?;
        crds.push(whole_numbers_as_integers(value));
    }
    let (namespaces, rest): (Vec<Value>, Vec<Value>) =
        base.into_iter().partition(|object| kind_of(object) == "Namespace");
    Ok(namespaces.into_iter().chain(crds).chain(rest).collect())
}

/// The install objects as one YAML stream (`install --export`).
pub fn export_yaml() -> Result<String, InstallError> {
    let mut text = String::new();
    for object in install_objects()? {
        let yaml = serde_saphyr::to_string(&object).map_err(|error| InstallError::Crds(error.to_string()))?;
        text.push_str("---\n");
        text.push_str(&yaml);
    }
    Ok(text)
}

/// The schemas' `minimum: 0.0` as `0`, as kubectl sends the same files: one value, one spelling, so an install
/// after `kubectl apply -k deploy` finds the fields equal instead of conflicting.
fn whole_numbers_as_integers(value: Value) -> Value {
    match value {
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 9.0e15 => {
                // Exact: a whole float below 2^53 is an integer.
                Value::from(float as i64)
            }
            _ => Value::Number(number),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers_as_integers).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, field)| (key, whole_numbers_as_integers(field)))
                .collect(),
        ),
        other => other,
    }
}

fn kind_of(object: &Value) -> &str {
    object.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn text_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn display_name(object: &Value) -> String {
    let name = text_at(object, "/metadata/name");
    match text_at(object, "/metadata/namespace") {
        "" => name.to_string(),
        namespace => format!("{namespace}/{name}"),
    }
}

/// The API of one object, found in discovery.
fn api_of(client: &kube::Client, discovery: &Discovery, object: &Value) -> Result<Api<DynamicObject>, InstallError> {
    let api_version = text_at(object, "/apiVersion");
    let kind = kind_of(object);
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let unknown = || InstallError::UnknownKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    };
    let (resource, capabilities) = discovery
        .get(group)
        .and_then(|found| {
            found
                .versioned_resources(version)
                .into_iter()
                .find(|(resource, _)| resource.kind == kind)
        })
        .ok_or_else(unknown)?;
    let resource: ApiResource = resource;
    Ok(match capabilities.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => Api::namespaced_with(client.clone(), text_at(object, "/metadata/namespace"), &resource),
    })
}

/// What one apply or delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `Kind namespace/name`.
    pub object: String,
    /// For install: whether the object changed (a new resourceVersion); for uninstall: whether it was deleted
    /// (false: it was already gone).
    pub changed: bool,
}

/// Applies every install object with server-side apply (field manager [`FIELD_MANAGER`]); the CRDs first are
/// followed by a fresh discovery, as kubectl does, so nothing the install needs is missing.
///
/// Like `kubectl apply --server-side`, a field another manager set to a different value is a conflict, not taken
/// over (for example a CRD of the same name that another operator installed), unless `force_conflicts`.
pub async fn install(client: &kube::Client, force_conflicts: bool) -> Result<Vec<Step>, InstallError> {
    let objects = install_objects()?;
    let mut discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|error| InstallError::Discovery(Box::new(error)))?;
    let mut params = PatchParams::apply(FIELD_MANAGER);
    if force_conflicts {
        params = params.force();
    }
    let mut steps = Vec::new();
    let mut rediscover = false;
    for object in &objects {
        if rediscover && kind_of(object) != "CustomResourceDefinition" {
            discovery = Discovery::new(client.clone())
                .run()
                .await
                .map_err(|error| InstallError::Discovery(Box::new(error)))?;
            rediscover = false;
        }
        let api = api_of(client, &discovery, object)?;
        let name = text_at(object, "/metadata/name");
        let before = api
            .get_opt(name)
            .await
            .map_err(|source| request_failed("read", object, source))?
            .and_then(|live| live.metadata.resource_version);
        let applied = api
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(|source| request_failed("apply", object, source))?;
        rediscover |= kind_of(object) == "CustomResourceDefinition";
        steps.push(Step {
            object: format!("{} {}", kind_of(object), display_name(object)),
            changed: before != applied.metadata.resource_version,
        });
    }
    Ok(steps)
}

/// Removes the agent: the Deployment first (so nothing reconciles while the rest goes), then the
/// PodDisruptionBudget, the Service, the RBAC and the ServiceAccount. Keeps the CRDs, the namespace (it holds the
/// leader Lease and may hold GitSyncs) and every REC, REDB and GitSync with their databases.
pub async fn uninstall(client: &kube::Client) -> Result<Vec<Step>, InstallError> {
    let objects = install_objects()?;
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|error| InstallError::Discovery(Box::new(error)))?;
    let mut steps = Vec::new();
    for object in objects.iter().rev() {
        if matches!(kind_of(object), "CustomResourceDefinition" | "Namespace") {
            continue;
        }
        let api = api_of(client, &discovery, object)?;
        let name = text_at(object, "/metadata/name");
        let deleted = match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(source) => return Err(request_failed("delete", object, source)),
        };
        steps.push(Step {
            object: format!("{} {}", kind_of(object), display_name(object)),
            changed: deleted,
        });
    }
    Ok(steps)
}

fn request_failed(action: &'static str, object: &Value, source: kube::Error) -> InstallError {
    if matches!(&source, kube::Error::Api(status) if status.code == 409) && action == "apply" {
        return InstallError::Conflict {
            kind: kind_of(object).to_string(),
            name: display_name(object),
            source: Box::new(source),
        };
    }
    InstallError::Request {
        action,
        kind: kind_of(object).to_string(),
        name: display_name(object),
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_objects_come_in_apply_order_with_the_agent_last() {
        let objects = install_objects().expect("deploy/base parses");
        let kinds: Vec<&str> = objects.iter().map(kind_of).collect();
        assert_eq!(kinds.first(), Some(&"Namespace"));
        assert_eq!(kinds.last(), Some(&"Deployment"));
        assert_eq!(
            kinds.iter().filter(|kind| **kind == "CustomResourceDefinition").count(),
            6
        );
        let position = |kind: &str| kinds.iter().position(|k| *k == kind).expect(kind);
        assert!(position("CustomResourceDefinition") < position("ServiceAccount"));
        assert!(position("ClusterRoleBinding") < position("Deployment"));
        for object in &objects {
            if !matches!(
                kind_of(object),
                "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
            ) {
                assert_eq!(
                    text_at(object, "/metadata/namespace"),
                    NAMESPACE,
                    "{}",
                    display_name(object)
                );
            }
        }
    }

    #[test]
    fn the_deployment_meets_the_restricted_profile() {
        let objects = install_objects().expect("deploy/base parses");
        let deployment = objects
            .iter()
            .find(|o| kind_of(o) == "Deployment")
            .expect("a Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
        let container = &pod["containers"][0];
        assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(container["securityContext"]["capabilities"]["drop"][0], "ALL");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    }
}
