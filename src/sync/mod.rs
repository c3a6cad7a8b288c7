//! GitOps sync (design.md §3, §5): from a Git revision to applied RECs and REDBs. `plan` is the pure core
//! (apply bodies, drift, prune decisions); the GitSync controller that fetches, applies and reports is built on it.

pub mod apply;
pub mod controller;
pub mod deletion;
pub mod error;
pub mod fetch;
pub mod lease;
pub mod load;
pub mod objects;
pub mod outcome;
pub mod plan;
pub mod prune;
pub mod settings;
pub mod status;
pub mod trigger;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

/// Waits until every CRD of this project is installed and established, checking every few seconds (a watcher
/// started before its CRD exists would only fail and retry).
pub async fn wait_for_crds(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names: Vec<String> = crate::api::crds()
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .collect();
    let mut logged = false;
    loop {
        let mut missing = Vec::new();
        for name in &names {
            let established = match api.get_opt(name).await {
                Ok(Some(crd)) => crd
                    .status
                    .and_then(|status| status.conditions)
                    .is_some_and(|conditions| {
                        conditions
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    }),
                Ok(None) | Err(_) => false,
            };
            if !established {
                missing.push(name.as_str());
            }
        }
        if missing.is_empty() {
            return;
        }
        if !logged {
            tracing::info!(missing = %missing.join(", "), "waiting for the CRDs (kubectl apply -f crds/)");
            logged = true;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}
