//! The namespaces a sync needs (`spec.createNamespace`, like Argo CD's `CreateNamespace=true`): creates the missing
//! namespaces of the objects it is about to create, labelled as created by redis-gitops, and recognises the API
//! server's answer for a namespace that does not exist. It may create namespaces; it never updates or deletes one.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};

use super::controller::SyncContext;
use super::error::{SyncError, kubernetes};
use super::objects::FIELD_MANAGER;
use crate::api::GitSync;

/// The label on a namespace the sync created (the value is [`CREATED_BY`]).
pub const CREATED_BY_LABEL: &str = "app.kubernetes.io/created-by";
/// The value of [`CREATED_BY_LABEL`].
pub const CREATED_BY: &str = "redis-gitops";
/// The annotation naming the GitSync (`<namespace>/<name>`) that created a namespace.
pub const CREATED_BY_GITSYNC_ANNOTATION: &str = "redisgitops.dev/created-by-gitsync";

/// The namespace a refused request says does not exist (`namespaces "x" not found`, HTTP 404), if that is what
/// `error` is.
pub fn missing_namespace(error: &kube::Error) -> Option<String> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    if status.code != 404 {
        return None;
    }
    if let Some(details) = &status.details
        && details.kind == "namespaces"
        && !details.name.is_empty()
    {
        return Some(details.name.clone());
    }
    let rest = status.message.strip_prefix("namespaces \"")?;
    let (name, tail) = rest.split_once('"')?;
    (tail.trim() == "not found" && !name.is_empty()).then(|| name.to_string())
}

/// The body of a namespace created for `gitsync` (`namespace/name`).
pub fn namespace_body(name: &str, gitsync: &str) -> Namespace {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.to_string());
    namespace.metadata.labels = Some([(CREATED_BY_LABEL.to_string(), CREATED_BY.to_string())].into());
    namespace.metadata.annotations = Some([(CREATED_BY_GITSYNC_ANNOTATION.to_string(), gitsync.to_string())].into());
    namespace
}

/// Creates each of `namespaces` that does not exist (an existing one answers 409 and is left as it is), with a
/// `NamespaceCreated` event on the GitSync per namespace created; returns the namespaces it created.
pub async fn create_missing(
    client: &Client,
    namespaces: &BTreeSet<String>,
    gitsync: &GitSync,
    context: &SyncContext,
) -> Result<Vec<String>, SyncError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let owner = format!("{}/{}", gitsync.namespace().unwrap_or_default(), gitsync.name_any());
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    let mut created = Vec::new();
    for name in namespaces {
        match api.create(&params, &namespace_body(name, &owner)).await {
            Ok(_) => {
                let note =
                    format!("created namespace {name} for the objects of GitSync {owner} (spec.createNamespace)");
                tracing::info!(gitsync = %owner, namespace = %name, "namespace created");
                context
                    .publish(gitsync, EventType::Normal, "NamespaceCreated", "Apply", &note)
                    .await;
                created.push(name.clone());
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => {
                return Err(kubernetes(format!("create namespace {name} (spec.createNamespace)"))(
                    error,
                ));
            }
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found(message: &str, details: Option<(&str, &str)>) -> kube::Error {
        let mut status = kube::core::Status::failure(message, "NotFound").with_code(404);
        status.details = details.map(|(kind, name)| kube::core::response::StatusDetails {
            kind: kind.to_string(),
            name: name.to_string(),
            group: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: 0,
        });
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn a_missing_namespace_is_recognised_from_the_status() {
        let error = not_found(
            "namespaces \"redis-production\" not found",
            Some(("namespaces", "redis-production")),
        );
        assert_eq!(missing_namespace(&error).as_deref(), Some("redis-production"));
        let without_details = not_found("namespaces \"prod\" not found", None);
        assert_eq!(missing_namespace(&without_details).as_deref(), Some("prod"));
        // Another object not found is not a missing namespace.
        let other = not_found(
            "redisenterpriseclusters.app.redislabs.com \"prod\" not found",
            Some(("redisenterpriseclusters", "prod")),
        );
        assert_eq!(missing_namespace(&other), None);
    }

    #[test]
    fn a_created_namespace_says_who_created_it() {
        let body = namespace_body("redis-production", "default/sandbox");
        assert_eq!(body.metadata.name.as_deref(), Some("redis-production"));
        assert_eq!(
            body.labels().get(CREATED_BY_LABEL).map(String::as_str),
            Some(CREATED_BY)
        );
        assert_eq!(
            body.annotations()
                .get(CREATED_BY_GITSYNC_ANNOTATION)
                .map(String::as_str),
            Some("default/sandbox")
        );
    }
}
