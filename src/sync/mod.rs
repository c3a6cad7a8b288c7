//! GitOps sync (design.md §3, §5): from a Git revision to applied RECs and REDBs. `plan` is the pure core
//! (apply bodies, drift, prune decisions); the GitSync controller that fetches, applies and reports is built on it.

pub mod apply;
pub mod commit_status;
pub mod controller;
pub mod deletion;
pub mod error;
pub mod fetch;
pub mod lease;
pub mod load;
pub mod namespaces;
pub mod objects;
pub mod outcome;
pub mod plan;
pub mod prune;
pub mod settings;
pub mod status;
pub mod trigger;

use std::time::Duration;

use kube::api::ListParams;

use crate::api::gitsync::GitSync;
use crate::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use crate::runtime::{WatchScope, api_in};

/// Waits until every kind of this project can be listed where the agent watches (a watcher started before its CRD
/// is established would only fail and retry), checking every few seconds. Listing needs no permission beyond what
/// the controllers use anyway, so a namespaced install (no ClusterRole, no access to CRDs) waits the same way.
pub async fn wait_for_crds(client: &kube::Client, scope: &WatchScope) {
    let mut logged = false;
    let params = ListParams::default().limit(1);
    loop {
        let mut missing = Vec::new();
        for namespace in scope.watches() {
            let namespace = namespace.as_deref();
            if api_in::<GitSync>(client, namespace)
                .list_metadata(&params)
                .await
                .is_err()
            {
                missing.push("gitsyncs.redisgitops.dev");
            }
            if api_in::<RedisEnterpriseCluster>(client, namespace)
                .list_metadata(&params)
                .await
                .is_err()
            {
                missing.push("redisenterpriseclusters.app.redislabs.com");
            }
            if api_in::<RedisEnterpriseDatabase>(client, namespace)
                .list_metadata(&params)
                .await
                .is_err()
            {
                missing.push("redisenterprisedatabases.app.redislabs.com");
            }
        }
        if missing.is_empty() {
            return;
        }
        missing.sort_unstable();
        missing.dedup();
        if !logged {
            tracing::info!(
                missing = %missing.join(", "),
                "waiting until these kinds can be listed (install the CRDs: kubectl apply --server-side -k crds; \
                 and check the agent's RBAC)"
            );
            logged = true;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}
