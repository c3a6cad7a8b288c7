//! The registry of resource types the server serves: the built-in kinds the agent and kubectl use, and the
//! kinds added by registered CustomResourceDefinitions (names, scope, versions, schemas, printer columns).

use std::sync::Arc;

use serde_json::Value;

use super::error::ApiError;

/// Identifies a resource type independent of version: API group plus plural name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// The API group, empty for core.
    pub group: String,
    /// The plural resource name, e.g. `pods`.
    pub plural: String,
}

impl GroupResource {
    /// Builds a group-resource from its parts.
    pub fn new(group: &str, plural: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            plural: plural.to_string(),
        }
    }

    /// `plural` for core, `plural.group` otherwise, as in Kubernetes error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// One additional printer column of a CRD version (or of a built-in kind's default table).
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub column_type: String,
    /// Optional format hint.
    pub format: String,
    /// Column description.
    pub description: String,
    /// 0 is shown by default, higher only with `-o wide`.
    pub priority: i64,
    /// The JSONPath (subset) selecting the value.
    pub json_path: String,
}

/// One served version of a resource.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// Version name, e.g. `v1`.
    pub name: String,
    /// Whether the version is served.
    pub served: bool,
    /// Whether objects are stored in this version.
    pub storage: bool,
    /// The `openAPIV3Schema` for custom resources.
    pub schema: Option<Value>,
    /// The additional printer columns.
    pub printer_columns: Vec<PrinterColumn>,
    /// Whether the status subresource is enabled for this version.
    pub status_subresource: bool,
    /// The scale subresource, if enabled.
    pub scale: Option<ScalePaths>,
}

/// Where a resource keeps what its `/scale` subresource shows (JSONPaths such as `.spec.replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// The desired replicas.
    pub spec_replicas: String,
    /// The observed replicas.
    pub status_replicas: String,
    /// A label selector in string form, if any (built-ins derive it from `.spec.selector`).
    pub label_selector: Option<String>,
}

/// Everything the server knows about one resource type.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group, empty for core.
    pub group: String,
    /// The versions (one for built-ins).
    pub versions: Vec<VersionInfo>,
    /// Plural name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// List kind.
    pub list_kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories (e.g. `all`).
    pub categories: Vec<String>,
    /// Whether this resource comes from a CRD.
    pub custom: bool,
}

impl ResourceInfo {
    /// The version-independent identity.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }

    /// Whether this is `events.k8s.io` events, stored with (and converted to/from) core/v1 events so that
    /// `kubectl describe` shows what controllers record through either API.
    pub fn is_event_alias(&self) -> bool {
        self.group == "events.k8s.io" && self.plural == "events"
    }

    /// Where objects of this resource are stored.
    pub fn storage_resource(&self) -> GroupResource {
        if self.is_event_alias() {
            GroupResource::new("", "events")
        } else {
            self.group_resource()
        }
    }

    /// `group/version` or `version` for core.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The served version named `version`.
    pub fn version(&self, version: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == version && v.served)
    }

    /// The storage version name.
    pub fn storage_version(&self) -> &str {
        self.versions
            .iter()
            .find(|v| v.storage)
            .or(self.versions.first())
            .map(|v| v.name.as_str())
            .unwrap_or("v1")
    }

    /// The preferred version: the served one of highest Kubernetes version priority.
    pub fn preferred_version(&self) -> &str {
        self.versions
            .iter()
            .filter(|v| v.served)
            .min_by_key(|v| version_priority(&v.name))
            .map(|v| v.name.as_str())
            .unwrap_or("v1")
    }

    /// Whether writes to the main resource ignore `status` and `/status` writes ignore everything else.
    pub fn has_status_subresource(&self) -> bool {
        self.versions.iter().any(|v| v.status_subresource)
    }
}

fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short_names: &[&str],
    status: bool,
) -> ResourceInfo {
    ResourceInfo {
        group: group.to_string(),
        versions: vec![VersionInfo {
            name: version.to_string(),
            served: true,
            storage: true,
            schema: None,
            printer_columns: Vec::new(),
            status_subresource: status,
            scale: (group == "apps").then(|| ScalePaths {
                spec_replicas: ".spec.replicas".into(),
                status_replicas: ".status.replicas".into(),
                label_selector: None,
            }),
        }],
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        kind: kind.to_string(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        custom: false,
    }
}

/// The built-in resource types served from start.
pub fn builtin_resources() -> Vec<ResourceInfo> {
    let mut all = vec![
        builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        builtin("", "v1", "secrets", "Secret", true, &[], false),
        builtin("", "v1", "services", "Service", true, &["svc"], true),
        builtin("", "v1", "pods", "Pod", true, &["po"], true),
        builtin("", "v1", "events", "Event", true, &["ev"], false),
        builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], false),
        builtin("", "v1", "endpoints", "Endpoints", true, &["ep"], false),
        builtin(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            true,
        ),
        builtin("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"], true),
        builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"], true),
        builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            &["pdb"],
            true,
        ),
        builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[], false),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
            &["netpol"],
            false,
        ),
        builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[], false),
        // The database controller keeps the endpoints of its selector-less Services here.
        builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            &[],
            false,
        ),
        builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"], false),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
    ];
    for info in &mut all {
        if matches!(
            info.plural.as_str(),
            "pods"
                | "services"
                | "statefulsets"
                | "deployments"
                | "configmaps"
                | "secrets"
                | "serviceaccounts"
                | "persistentvolumeclaims"
        ) && info.group != "events.k8s.io"
        {
            info.categories = vec!["all".to_string()];
        }
        if matches!(info.plural.as_str(), "secrets" | "configmaps" | "serviceaccounts") {
            info.categories.clear();
        }
    }
    all
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut current = value;
    for key in path {
        current = current.get(key)?;
    }
    current.as_str()
}

/// Turns a stored CRD object into the resource type it defines, checking the names it must carry.
pub fn resource_from_crd(crd: &Value) -> Result<ResourceInfo, ApiError> {
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    let invalid = |field: &str, message: &str| ApiError::Invalid {
        kind: "CustomResourceDefinition".into(),
        group: "apiextensions.k8s.io".into(),
        name: name.to_string(),
        summary: format!("{field}: {message}"),
        causes: vec![super::error::Cause {
            reason: "FieldValueInvalid".into(),
            message: message.to_string(),
            field: field.to_string(),
        }],
    };
    let group = str_at(crd, &["spec", "group"]).ok_or_else(|| invalid("spec.group", "Required value"))?;
    let plural =
        str_at(crd, &["spec", "names", "plural"]).ok_or_else(|| invalid("spec.names.plural", "Required value"))?;
    let kind = str_at(crd, &["spec", "names", "kind"]).ok_or_else(|| invalid("spec.names.kind", "Required value"))?;
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            "metadata.name",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = str_at(crd, &["spec", "scope"]).unwrap_or("Namespaced");
    let singular = str_at(crd, &["spec", "names", "singular"])
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = str_at(crd, &["spec", "names", "listKind"])
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let strings = |path: &[&str]| -> Vec<String> {
        let mut current = crd;
        for key in path {
            match current.get(key) {
                Some(v) => current = v,
                None => return Vec::new(),
            }
        }
        current
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut versions = Vec::new();
    for version in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let vname = version
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("spec.versions[].name", "Required value"))?;
        let printer_columns = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: c.get("name").and_then(Value::as_str).unwrap_or_default().into(),
                        column_type: c.get("type").and_then(Value::as_str).unwrap_or("string").into(),
                        format: c.get("format").and_then(Value::as_str).unwrap_or_default().into(),
                        description: c.get("description").and_then(Value::as_str).unwrap_or_default().into(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: c.get("jsonPath").and_then(Value::as_str).unwrap_or_default().into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        versions.push(VersionInfo {
            name: vname.to_string(),
            served: version.get("served").and_then(Value::as_bool).unwrap_or(true),
            storage: version.get("storage").and_then(Value::as_bool).unwrap_or(false),
            schema: version.pointer("/schema/openAPIV3Schema").cloned(),
            printer_columns,
            status_subresource: version.pointer("/subresources/status").is_some(),
            scale: version.pointer("/subresources/scale").map(|scale| ScalePaths {
                spec_replicas: scale
                    .get("specReplicasPath")
                    .and_then(Value::as_str)
                    .unwrap_or(".spec.replicas")
                    .into(),
                status_replicas: scale
                    .get("statusReplicasPath")
                    .and_then(Value::as_str)
                    .unwrap_or(".status.replicas")
                    .into(),
                label_selector: scale
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }),
        });
    }
    if versions.is_empty() {
        return Err(invalid(
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    if versions.iter().filter(|v| v.storage).count() != 1 {
        return Err(invalid(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    Ok(ResourceInfo {
        group: group.to_string(),
        versions,
        plural: plural.to_string(),
        singular,
        kind: kind.to_string(),
        list_kind,
        namespaced: scope != "Cluster",
        short_names: strings(&["spec", "names", "shortNames"]),
        categories: strings(&["spec", "names", "categories"]),
        custom: true,
    })
}

/// Sort key of a Kubernetes version name: GA before beta before alpha, higher numbers first, other names last
/// in alphabetical order (the order discovery lists versions in, the first being preferred).
pub fn version_priority(version: &str) -> (u8, i64, i64, String) {
    let parse = |rest: &str| -> Option<(u8, i64, i64)> {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        for (stage, rank) in [("beta", 1u8), ("alpha", 2u8)] {
            if let Some(n) = tail.strip_prefix(stage) {
                let minor: i64 = n.parse().ok()?;
                return Some((rank, -major, -minor));
            }
        }
        None
    };
    match version.strip_prefix('v').and_then(parse) {
        Some((rank, major, minor)) => (rank, major, minor, String::new()),
        None => (3, 0, 0, version.to_string()),
    }
}

/// The registry: all served resource types.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    resources: Vec<Arc<ResourceInfo>>,
}

impl Registry {
    /// A registry with the built-in kinds.
    pub fn with_builtins() -> Self {
        Registry {
            resources: builtin_resources().into_iter().map(Arc::new).collect(),
        }
    }

    /// All resource types.
    pub fn all(&self) -> &[Arc<ResourceInfo>] {
        &self.resources
    }

    /// Adds or replaces a resource type (CRD registration and update).
    pub fn upsert(&mut self, info: ResourceInfo) {
        if let Some(existing) = self
            .resources
            .iter_mut()
            .find(|r| r.group == info.group && r.plural == info.plural)
        {
            *existing = Arc::new(info);
        } else {
            self.resources.push(Arc::new(info));
        }
    }

    /// Removes a custom resource type (CRD deletion).
    pub fn remove(&mut self, group: &str, plural: &str) {
        self.resources
            .retain(|r| !(r.custom && r.group == group && r.plural == plural));
    }

    /// The resource served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.plural == plural && r.version(version).is_some())
            .cloned()
    }

    /// The resource type with this group-resource, any version.
    pub fn get(&self, gr: &GroupResource) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == gr.group && r.plural == gr.plural)
            .cloned()
    }

    /// The resource type for an apiVersion + kind.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind && r.version(version).is_some())
            .cloned()
    }

    /// The served groups in registration order, each with its versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.resources {
            if r.group.is_empty() {
                continue;
            }
            let served: Vec<String> = r.versions.iter().filter(|v| v.served).map(|v| v.name.clone()).collect();
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    for v in served {
                        if !versions.contains(&v) {
                            versions.push(v);
                        }
                    }
                }
                None => groups.push((r.group.clone(), served)),
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by_key(|v| version_priority(v));
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes_discovery() {
        let mut versions = vec!["v1alpha1", "foo", "v2beta1", "v1", "v1beta2", "v2"];
        versions.sort_by_key(|v| version_priority(v));
        assert_eq!(versions, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }
}
