//! Names of the objects created for clusters and databases, in one place so the builders, validation (name
//! collisions) and later the controllers agree.

use super::validated::{DatabaseServiceKinds, ValidatedCluster, ValidatedDatabase};
use crate::api::cluster::ServiceNaming;

/// The headless governing service of a cluster's StatefulSet; pod DNS names are `<rec>-<i>.<rec>-headless`.
pub fn cluster_headless_service(cluster: &ValidatedCluster) -> String {
    format!("{}-headless", cluster.name)
}

/// The UI service of a cluster.
pub fn cluster_ui_service(cluster: &ValidatedCluster) -> String {
    format!("{}-ui", cluster.name)
}

/// The metrics service of a cluster.
pub fn cluster_metrics_service(cluster: &ValidatedCluster) -> String {
    format!("{}-prom", cluster.name)
}

/// Every Service a cluster gets: REST API (`<rec>`), UI, metrics, headless governing service.
pub fn cluster_service_names(cluster: &ValidatedCluster) -> Vec<String> {
    vec![
        cluster.name.clone(),
        cluster_ui_service(cluster),
        cluster_metrics_service(cluster),
        cluster_headless_service(cluster),
    ]
}

/// The base name of a database's Services: the database name, or `redis-<port>` with `serviceNaming: redis-port`.
/// `None` when the naming needs a port that the cluster has not assigned yet.
pub fn database_service_base(
    database: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    port: Option<u16>,
) -> Option<String> {
    match cluster.map_or(ServiceNaming::BdbName, |c| c.service_naming) {
        ServiceNaming::BdbName => Some(database.name.clone()),
        ServiceNaming::RedisPort => port.map(|port| format!("redis-{port}")),
    }
}

/// The kind of one database Service, decided with its name (never guessed back from the name: a REDB called
/// `orders-load-balancer` keeps a ClusterIP main Service).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseServiceKind {
    /// The ClusterIP Service applications use (`<base>`).
    ClusterIp,
    /// The headless Service (`<base>-headless`, `clusterIP: None`).
    Headless,
    /// The LoadBalancer Service (`<base>-load-balancer`).
    LoadBalancer,
}

/// Every Service a database gets with its kind, ClusterIP first (it is the one applications use), as the cluster's
/// `databaseServiceType` says (default: ClusterIP and headless).
pub fn database_services(
    database: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    port: Option<u16>,
) -> Vec<(String, DatabaseServiceKind)> {
    let Some(base) = database_service_base(database, cluster, port) else {
        return Vec::new();
    };
    let kinds = cluster.map_or(
        DatabaseServiceKinds {
            cluster_ip: true,
            headless: true,
            load_balancer: false,
        },
        |c| c.database_services,
    );
    let mut services = Vec::new();
    if kinds.cluster_ip {
        services.push((base.clone(), DatabaseServiceKind::ClusterIp));
    }
    if kinds.headless {
        services.push((format!("{base}-headless"), DatabaseServiceKind::Headless));
    }
    if kinds.load_balancer {
        services.push((format!("{base}-load-balancer"), DatabaseServiceKind::LoadBalancer));
    }
    services
}

/// The names of [`database_services`].
pub fn database_service_names(
    database: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    port: Option<u16>,
) -> Vec<String> {
    database_services(database, cluster, port)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// The longest Service name: a DNS-1035 label.
pub const MAX_SERVICE_NAME: usize = 63;

/// Why a Service name would be refused by the API server (`IsDNS1035Label`), or `None`.
pub fn service_name_problem(name: &str) -> Option<String> {
    let syntax = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if name.len() > MAX_SERVICE_NAME {
        Some(format!(
            "Service name {name} is {} characters long, above the {MAX_SERVICE_NAME} of a DNS label; use a shorter name",
            name.len()
        ))
    } else if !syntax {
        Some(format!(
            "Service name {name} is not a DNS-1035 label (lowercase letters, digits and '-', starting with a letter)"
        ))
    } else {
        None
    }
}

/// The problems of every Service name a database would get (`-headless`, `-load-balancer` included), one line
/// each; checked by the Git path and by the database controller alike.
pub fn database_service_name_problems(
    database: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    port: Option<u16>,
) -> Vec<String> {
    database_service_names(database, cluster, port)
        .iter()
        .filter_map(|name| service_name_problem(name))
        .collect()
}

/// The longest label value and the longest name part of a label or annotation key.
pub const MAX_LABEL_VALUE: usize = 63;
/// The longest key prefix (a DNS subdomain) of a label or annotation key.
pub const MAX_KEY_PREFIX: usize = 253;
/// The most bytes all annotations of one object may take, keys and values together.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
/// The longest cluster name: its StatefulSet's pods carry `controller-revision-hash: <name>-<up to 10
/// characters>`, a label value of at most 63 characters.
pub const MAX_CLUSTER_NAME: usize = 52;

fn qualified_name_part(part: &str) -> bool {
    !part.is_empty()
        && part.starts_with(|c: char| c.is_ascii_alphanumeric())
        && part.ends_with(|c: char| c.is_ascii_alphanumeric())
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn dns_subdomain(text: &str) -> bool {
    text.len() <= MAX_KEY_PREFIX
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && label.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// Why a label or annotation key would be refused by the API server (`IsQualifiedName`: an optional DNS
/// subdomain prefix and `/`, then at most 63 letters, digits, `-`, `_` or `.`, alphanumeric at both ends).
pub fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (name.contains('/') || !dns_subdomain(prefix))
    {
        return Some(format!(
            "key \"{key}\" is not a valid key: the part before '/' must be a DNS subdomain (lowercase letters, digits, \
             '-' and '.', at most {MAX_KEY_PREFIX} characters), for example example.com/{name}"
        ));
    }
    if name.len() > MAX_LABEL_VALUE {
        return Some(format!(
            "key \"{key}\" is not a valid key: its name part is {} characters long, above the {MAX_LABEL_VALUE} allowed",
            name.len()
        ));
    }
    if !qualified_name_part(name) {
        return Some(format!(
            "key \"{key}\" is not a valid key: use letters, digits, '-', '_' and '.', starting and ending with a \
             letter or digit"
        ));
    }
    None
}

/// Why a label value would be refused by the API server (`IsValidLabelValue`: empty, or at most 63 letters,
/// digits, `-`, `_` or `.`, alphanumeric at both ends).
pub fn label_value_problem(value: &str) -> Option<String> {
    if value.len() > MAX_LABEL_VALUE {
        Some(format!(
            "value \"{value}\" is {} characters long; a label value has at most {MAX_LABEL_VALUE}",
            value.len()
        ))
    } else if !value.is_empty() && !qualified_name_part(value) {
        Some(format!(
            "value \"{value}\" is not a valid label value: use letters, digits, '-', '_' and '.', starting and ending \
             with a letter or digit"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_values_as_the_api_server_checks_them() {
        assert_eq!(label_key_problem("app.kubernetes.io/name"), None);
        assert_eq!(label_key_problem("team"), None);
        assert!(label_key_problem("a key").is_some());
        assert!(label_key_problem("Example.com/x").is_some());
        assert!(label_key_problem(&"k".repeat(64)).is_some());
        assert_eq!(label_value_problem(""), None);
        assert_eq!(label_value_problem("v1.2_x-y"), None);
        assert!(label_value_problem("a/b").is_some());
        assert!(
            label_value_problem(&"v".repeat(64))
                .unwrap()
                .contains("64 characters long")
        );
        assert_eq!(service_name_problem("orders-headless"), None);
        assert!(service_name_problem("1orders").is_some());
        assert!(service_name_problem(&format!("{}-load-balancer", "a".repeat(50))).is_some());
    }
}
