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

/// Every Service a database gets, ClusterIP first (it is the one applications use), as the cluster's
/// `databaseServiceType` says (default: ClusterIP and headless).
pub fn database_service_names(
    database: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    port: Option<u16>,
) -> Vec<String> {
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
    let mut names = Vec::new();
    if kinds.cluster_ip {
        names.push(base.clone());
    }
    if kinds.headless {
        names.push(format!("{base}-headless"));
    }
    if kinds.load_balancer {
        names.push(format!("{base}-load-balancer"));
    }
    names
}
