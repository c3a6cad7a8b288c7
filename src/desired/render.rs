//! What `redis-gitops render` shows for a whole revision: every Kubernetes object, and every REST request, that
//! the agent would create, with Secret templates (keys, no secret values).

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::cluster::build_cluster;
use super::database::{
    RuntimeValues, build_alert_settings, build_bdb, build_database_secret, build_database_services, runtime_fields,
};
use crate::manifests::repo::Repository;

/// The rendered revision.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendered {
    /// Kubernetes objects, in apply order per cluster and database.
    pub kubernetes: Vec<Value>,
    /// Redis Enterprise REST requests, per database.
    pub rest: Vec<RestRequest>,
}

/// A REST request the agent would send to a cluster.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestRequest {
    /// `namespace/name` of the database.
    pub database: String,
    /// `namespace/name` of the cluster, or the name it references when the cluster is not in the repository.
    pub cluster: String,
    /// HTTP method.
    pub method: String,
    /// Request URL on the cluster's REST API service.
    pub url: String,
    /// Fields added when the request is sent (from Secrets or the cluster), never shown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filled_in_at_apply: Vec<String>,
    /// What else the agent does once the request succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// JSON body.
    pub body: Value,
}

/// Renders a loaded revision.
pub fn render(repository: &Repository) -> Rendered {
    let mut rendered = Rendered::default();
    for cluster in &repository.clusters {
        let resources = build_cluster(&cluster.validated, None, 0);
        let super::cluster::ClusterResources {
            service_account,
            role,
            role_binding,
            credentials_secret,
            services,
            pod_disruption_budget,
            stateful_set,
        } = resources;
        push(&mut rendered.kubernetes, &service_account);
        push(&mut rendered.kubernetes, &role);
        push(&mut rendered.kubernetes, &role_binding);
        push(&mut rendered.kubernetes, &Some(credentials_secret));
        for service in services {
            push(&mut rendered.kubernetes, &Some(service));
        }
        push(&mut rendered.kubernetes, &Some(pod_disruption_budget));
        push(&mut rendered.kubernetes, &Some(stateful_set));
    }
    for database in &repository.databases {
        let validated = &database.validated;
        let cluster = database.cluster.map(|index| &repository.clusters[index].validated);
        let (cluster_name, cluster_namespace) = match cluster {
            Some(cluster) => (cluster.name.clone(), cluster.namespace.clone()),
            None => (
                validated
                    .cluster_reference
                    .clone()
                    .unwrap_or_else(|| "<the cluster of the namespace>".to_string()),
                validated.namespace.clone(),
            ),
        };
        push(
            &mut rendered.kubernetes,
            &build_database_secret(validated, cluster, validated.port, None),
        );
        let mut note = None;
        match validated.port {
            Some(port) => {
                for service in build_database_services(validated, cluster, port) {
                    push(&mut rendered.kubernetes, &Some(service));
                }
            }
            None => {
                note = Some(
                    "the cluster assigns the port; the Services and the Secret's port keys follow from the created database"
                        .to_string(),
                );
            }
        }
        let base = format!("https://{cluster_name}.{cluster_namespace}.svc:9443");
        let body = build_bdb(validated, &RuntimeValues::default());
        rendered.rest.push(RestRequest {
            database: format!("{}/{}", validated.namespace, validated.name),
            cluster: format!("{cluster_namespace}/{cluster_name}"),
            method: "POST".to_string(),
            url: format!("{base}/v1/bdbs"),
            filled_in_at_apply: runtime_fields(validated).into_iter().map(str::to_string).collect(),
            note,
            body: Value::Object(body),
        });
        if let Some(alerts) = build_alert_settings(validated) {
            rendered.rest.push(RestRequest {
                database: format!("{}/{}", validated.namespace, validated.name),
                cluster: format!("{cluster_namespace}/{cluster_name}"),
                method: "POST".to_string(),
                url: format!("{base}/v1/bdbs/alerts/<uid>"),
                filled_in_at_apply: vec!["<uid> (the database's id, once created)".to_string()],
                note: None,
                body: alerts,
            });
        }
    }
    rendered
}

fn push<T: Serialize>(objects: &mut Vec<Value>, object: &Option<T>) {
    if let Some(object) = object
        && let Ok(value) = serde_json::to_value(object)
    {
        objects.push(value);
    }
}

/// The rendered revision as a `{"kubernetes": [...], "rest": [...]}` JSON value.
pub fn to_json(rendered: &Rendered) -> Value {
    let mut map = Map::new();
    map.insert("kubernetes".to_string(), json!(rendered.kubernetes));
    map.insert("rest".to_string(), json!(rendered.rest));
    Value::Object(map)
}

/// Which part of the rendering to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Only {
    /// Kubernetes objects and REST requests.
    All,
    /// Kubernetes objects only (pipeable to `kubectl apply --dry-run`).
    Kubernetes,
    /// REST requests only.
    Rest,
}

/// The rendered revision as a YAML stream: one document per object, REST requests introduced by a comment.
pub fn to_yaml_stream(rendered: &Rendered, only: Only) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    if only != Only::Rest {
        for object in &rendered.kubernetes {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(object)?);
        }
    }
    if only != Only::Kubernetes {
        for request in &rendered.rest {
            out.push_str(&format!(
                "---\n# Redis Enterprise REST request for database {} (not a Kubernetes object)\n",
                request.database
            ));
            out.push_str(&serde_saphyr::to_string(request)?);
        }
    }
    Ok(out)
}
