//! `redisVersion` channel words (`major`, `latest`, as the official operator takes them) resolved against what the
//! cluster offers, so the bdb gets a version string (`redis_version` takes `7.4`, never `latest`): `latest` is the
//! newest version every node supports (`GET /v1/nodes` `supported_database_versions`), `major` the cluster's
//! default version for new databases (`GET /v1/cluster/policy` `default_redis_version`, which follows the cluster's
//! upgrade policy). A channel never moves a database back: resolved below the live version, the live one stays.
//! Pure, except [`read_redis_versions`], which only reads.

use serde_json::Value;

use crate::enterprise::EnterpriseClient;
use crate::enterprise::types::Node;

/// What the cluster offers for new and upgraded databases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisVersions {
    /// The default version of new databases (`default_redis_version`), as `major.minor`.
    pub default: Option<String>,
    /// The versions every node supports, as `major.minor`, oldest first.
    pub supported: Vec<String>,
}

/// Whether `version` is a channel word rather than a version.
pub fn is_channel(version: &str) -> bool {
    matches!(version, "major" | "latest")
}

/// `major.minor` of a version string (`7.2.4` → `7.2`), when it starts with two numbers.
pub fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.split('.');
    let major = parts.next()?.trim().parse().ok()?;
    let minor = parts.next().map_or(Some(0), |minor| minor.trim().parse().ok())?;
    Some((major, minor))
}

fn text((major, minor): (u64, u64)) -> String {
    format!("{major}.{minor}")
}

impl RedisVersions {
    /// From the nodes (versions supported on every node) and the cluster policy.
    pub fn from_cluster(nodes: &[Node], policy: &Value) -> Self {
        let mut supported: Option<Vec<(u64, u64)>> = None;
        for node in nodes {
            let versions: Vec<(u64, u64)> = node
                .other
                .get("supported_database_versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|entry| {
                    entry
                        .get("db_type")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t == "redis")
                })
                .filter_map(|entry| entry.get("version").and_then(Value::as_str).and_then(major_minor))
                .collect();
            supported = Some(match supported {
                None => versions,
                Some(known) => known.into_iter().filter(|v| versions.contains(v)).collect(),
            });
        }
        let mut supported = supported.unwrap_or_default();
        supported.sort_unstable();
        supported.dedup();
        Self {
            default: policy
                .get("default_redis_version")
                .and_then(Value::as_str)
                .and_then(major_minor)
                .map(text),
            supported: supported.into_iter().map(text).collect(),
        }
    }

    /// The version `wanted` stands for: itself when it is a version; for a channel, the version it resolves to,
    /// never below `live` (the bdb's current `redis_version`). `None` when the cluster does not say.
    pub fn resolve(&self, wanted: &str, live: Option<&str>) -> Option<String> {
        if !is_channel(wanted) {
            return Some(wanted.to_string());
        }
        let resolved = match wanted {
            "latest" => self.supported.last().cloned().or_else(|| self.default.clone()),
            _ => self.default.clone().or_else(|| self.supported.last().cloned()),
        }?;
        match (live.and_then(major_minor), major_minor(&resolved)) {
            (Some(current), Some(target)) if current > target => Some(text(current)),
            _ => Some(resolved),
        }
    }
}

/// Reads what the cluster offers (only needed when the spec names a channel).
pub async fn read_redis_versions(rest: &EnterpriseClient) -> Result<RedisVersions, crate::enterprise::EnterpriseError> {
    let nodes = rest.nodes().await?;
    let policy = rest.cluster_policy().await?;
    Ok(RedisVersions::from_cluster(&nodes, &policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(versions: &[&str]) -> Node {
        let supported: Vec<Value> = versions
            .iter()
            .map(|v| json!({"db_type": "redis", "version": v}))
            .collect();
        serde_json::from_value(json!({"uid": 1, "supported_database_versions": supported})).expect("node")
    }

    #[test]
    fn channels_resolve_to_what_every_node_supports_and_the_cluster_default() {
        let versions = RedisVersions::from_cluster(
            &[node(&["6.2.14", "7.2.4", "7.4.2", "8.0.1"]), node(&["7.2.4", "7.4.2"])],
            &json!({"default_redis_version": "7.2"}),
        );
        assert_eq!(versions.supported, ["7.2", "7.4"]);
        assert_eq!(versions.resolve("latest", None).as_deref(), Some("7.4"));
        assert_eq!(versions.resolve("major", None).as_deref(), Some("7.2"));
        assert_eq!(
            versions.resolve("7.2", Some("7.4")).as_deref(),
            Some("7.2"),
            "a version is kept as given"
        );
        assert_eq!(
            versions.resolve("major", Some("7.4.2")).as_deref(),
            Some("7.4"),
            "a channel never moves a database back"
        );
        assert_eq!(RedisVersions::default().resolve("latest", None), None);
        assert!(is_channel("major") && !is_channel("8.0"));
        assert_eq!(major_minor("8"), Some((8, 0)));
        assert_eq!(major_minor("x.1"), None);
    }
}
