//! Which namespaces the controllers watch: the whole cluster (a ClusterRole), or a list of namespaces (a Role in
//! each, for teams without cluster-wide rights, as the official operator's namespaced install). Builds `Api`s; no
//! requests of its own.

use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource};

/// Where the controllers watch and write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace (the default install, with a ClusterRole).
    #[default]
    Cluster,
    /// Only these namespaces (sorted, without duplicates; never empty).
    Namespaces(Vec<String>),
}

impl WatchScope {
    /// The scope of a `--watch-namespace` list: empty (or only blanks) is the whole cluster.
    pub fn from_list(namespaces: &[String]) -> Self {
        let mut list: Vec<String> = namespaces
            .iter()
            .flat_map(|entry| entry.split(','))
            .map(str::trim)
            .filter(|namespace| !namespace.is_empty())
            .map(str::to_string)
            .collect();
        list.sort();
        list.dedup();
        if list.is_empty() {
            Self::Cluster
        } else {
            Self::Namespaces(list)
        }
    }

    /// One entry per watch to run: `None` for a cluster-wide watch, else each namespace.
    pub fn watches(&self) -> Vec<Option<String>> {
        match self {
            Self::Cluster => vec![None],
            Self::Namespaces(list) => list.iter().cloned().map(Some).collect(),
        }
    }

    /// Whether objects in `namespace` are in scope.
    pub fn includes(&self, namespace: &str) -> bool {
        match self {
            Self::Cluster => true,
            Self::Namespaces(list) => list.iter().any(|entry| entry == namespace),
        }
    }
}

/// The API of namespaced kind `K` for one watch of [`WatchScope::watches`]: all namespaces or one.
pub fn api_in<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_trimmed_sorted_and_deduplicated_and_empty_means_the_cluster() {
        assert_eq!(WatchScope::from_list(&[]), WatchScope::Cluster);
        assert_eq!(WatchScope::from_list(&[" ".into(), ",".into()]), WatchScope::Cluster);
        let scope = WatchScope::from_list(&["team-b, team-a".into(), "team-a".into()]);
        assert_eq!(scope, WatchScope::Namespaces(vec!["team-a".into(), "team-b".into()]));
        assert_eq!(
            scope.watches(),
            vec![Some("team-a".to_string()), Some("team-b".to_string())]
        );
        assert!(scope.includes("team-b"));
        assert!(!scope.includes("team-c"));
        assert_eq!(WatchScope::Cluster.watches(), vec![None]);
        assert!(WatchScope::Cluster.includes("anything"));
    }
}
