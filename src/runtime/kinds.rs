//! The one table from (group, kind) to the API resource the agent reads and writes it through (plural, scope).
//! A kind not in the table is an error, never a guess. Pure.

use kube::Resource;
use kube::api::ApiResource;

use crate::api::{GitSync, RedisBackupSchedule, RedisEnterpriseCluster, RedisEnterpriseDatabase, RedisRestore};

/// How a kind is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindResource {
    /// API group.
    pub group: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name.
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

/// A kind the agent does not handle.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "kind {kind} of API group {group:?} is not one the agent applies (RedisEnterpriseCluster, RedisEnterpriseDatabase, GitSync, RedisBackupSchedule, RedisRestore)"
)]
pub struct UnknownKind {
    /// The group asked for.
    pub group: String,
    /// The kind asked for.
    pub kind: String,
}

fn table() -> [KindResource; 5] {
    fn entry<K: Resource<DynamicType = ()>>(
        group: &'static str,
        kind: &'static str,
        plural: &'static str,
    ) -> KindResource {
        debug_assert_eq!(K::plural(&()), plural);
        debug_assert_eq!(K::group(&()), group);
        KindResource {
            group,
            kind,
            plural,
            namespaced: true,
        }
    }
    [
        entry::<RedisEnterpriseCluster>("app.redislabs.com", "RedisEnterpriseCluster", "redisenterpriseclusters"),
        entry::<RedisEnterpriseDatabase>(
            "app.redislabs.com",
            "RedisEnterpriseDatabase",
            "redisenterprisedatabases",
        ),
        entry::<GitSync>("redisgitops.dev", "GitSync", "gitsyncs"),
        entry::<RedisBackupSchedule>("redisgitops.dev", "RedisBackupSchedule", "redisbackupschedules"),
        entry::<RedisRestore>("redisgitops.dev", "RedisRestore", "redisrestores"),
    ]
}

/// The resource of `kind` in `group`.
pub fn kind_resource(group: &str, kind: &str) -> Result<KindResource, UnknownKind> {
    table()
        .into_iter()
        .find(|entry| entry.group == group && entry.kind == kind)
        .ok_or_else(|| UnknownKind {
            group: group.to_string(),
            kind: kind.to_string(),
        })
}

/// The `ApiResource` of `kind` at `api_version` (`group/version`), for dynamic clients.
pub fn api_resource(api_version: &str, kind: &str) -> Result<(ApiResource, bool), UnknownKind> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let found = kind_resource(group, kind)?;
    let resource = ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        plural: found.plural.to_string(),
    };
    Ok((resource, found.namespaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_its_own_plural() {
        let (rec, namespaced) = api_resource("app.redislabs.com/v1", "RedisEnterpriseCluster").expect("REC");
        assert_eq!(rec.plural, "redisenterpriseclusters");
        assert_eq!((rec.group.as_str(), rec.version.as_str()), ("app.redislabs.com", "v1"));
        assert!(namespaced);
        let (redb, _) = api_resource("app.redislabs.com/v1alpha1", "RedisEnterpriseDatabase").expect("REDB");
        assert_eq!(redb.plural, "redisenterprisedatabases");
        let (gitsync, _) = api_resource("redisgitops.dev/v1alpha1", "GitSync").expect("GitSync");
        assert_eq!(gitsync.plural, "gitsyncs");
    }

    #[test]
    fn an_unknown_kind_or_group_is_an_error() {
        let error = api_resource("app.redislabs.com/v1alpha1", "RedisEnterpriseActiveActiveDatabase")
            .expect_err("not in the table");
        assert_eq!(error.kind, "RedisEnterpriseActiveActiveDatabase");
        assert!(api_resource("example.com/v1", "RedisEnterpriseDatabase").is_err());
        assert!(api_resource("v1", "ConfigMap").is_err());
    }
}
