//! RBAC authorization as Kubernetes evaluates it (reference/kubernetes.md §3): the request attributes of a path
//! (requestinfo.go), Role/ClusterRole/RoleBinding/ClusterRoleBinding read live from the store, the rule matching of
//! evaluation_helpers.go, the 403 `Status` of a denial, and the bootstrap policy a real cluster starts with.
//!
//! It only reads the store; it never writes an object (the bootstrap policy is returned for the caller to create).
//! Not done: aggregated ClusterRoles (`aggregationRule`; their `rules` are used as stored). The escalation check on
//! writes of roles and bindings is in `escalation`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::auth::{AUTHENTICATED, Identity, UNAUTHENTICATED, parse_service_account_user};
use super::resources::GroupResource;
use super::selector::{FieldSelector, LabelSelector};
use super::store::State;

/// The API group of the RBAC kinds.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The label a real cluster puts on its bootstrap roles and bindings; the sandbox seeds them with it too, so tests
/// comparing an agent's grants with its requests can tell the bootstrap policy apart.
pub const BOOTSTRAP_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");

/// What a request asks to do, as the authorizer sees it (`authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// The verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `impersonate`,
    /// or the lower-case HTTP method for a non-resource request.
    pub verb: String,
    /// Whether the request addresses a resource (`/api/…`, `/apis/<group>/<version>/…`).
    pub resource_request: bool,
    /// The API group (`""` for core).
    pub api_group: String,
    /// The API version.
    pub api_version: String,
    /// The namespace (`""` for cluster-scoped requests).
    pub namespace: String,
    /// The plural resource.
    pub resource: String,
    /// The subresource (`status`, `token`, …) or `""`.
    pub subresource: String,
    /// The object name (or the `metadata.name=` of a list/watch field selector) or `""`.
    pub name: String,
    /// The request path (used by non-resource requests).
    pub path: String,
}

impl Attributes {
    /// A resource request.
    pub fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Attributes {
            verb: verb.to_string(),
            resource_request: true,
            api_group: api_group.to_string(),
            api_version: String::new(),
            namespace: namespace.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            name: name.to_string(),
            path: String::new(),
        }
    }

    /// An `impersonate` check on a resource (filters/impersonation.go).
    pub fn impersonate(api_group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self::resource("impersonate", api_group, resource, "", namespace, name)
    }

    /// A non-resource request.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes {
            verb: verb.to_string(),
            path: path.to_string(),
            ..Attributes::default()
        }
    }

    /// `resource` or `resource/subresource`.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The attributes of an HTTP request, as requestinfo.go derives them from the method, path and query.
pub fn request_attributes(method: &str, path: &str, query: &HashMap<String, String>) -> Attributes {
    let non_resource = Attributes::non_resource(&method.to_ascii_lowercase(), path);
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() < 3 {
        return non_resource;
    }
    let (api_group, rest) = match parts[0] {
        "api" => ("", &parts[1..]),
        "apis" if parts.len() >= 4 => (parts[1], &parts[2..]),
        _ => return non_resource,
    };
    let mut attributes = Attributes {
        resource_request: true,
        api_group: api_group.to_string(),
        api_version: rest[0].to_string(),
        path: path.to_string(),
        ..Attributes::default()
    };
    let mut rest = &rest[1..];
    if rest.first() == Some(&"watch") || rest.first() == Some(&"proxy") {
        if rest.len() < 2 {
            return non_resource;
        }
        attributes.verb = rest[0].to_string();
        rest = &rest[1..];
    } else {
        attributes.verb = match method.to_ascii_uppercase().as_str() {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
    }
    if rest.first() == Some(&"namespaces")
        && let Some(namespace) = rest.get(1)
    {
        attributes.namespace = namespace.to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if let Some(resource) = rest.first() {
        attributes.resource = resource.to_string();
    }
    if let Some(name) = rest.get(1) {
        attributes.name = name.to_string();
    }
    if rest.len() >= 3 && attributes.verb != "proxy" {
        attributes.subresource = rest[2].to_string();
    }
    if attributes.name.is_empty() && attributes.verb == "get" {
        let watch = query
            .get("watch")
            .is_some_and(|w| !matches!(w.to_ascii_lowercase().as_str(), "false" | "0" | ""));
        attributes.verb = if watch { "watch" } else { "list" }.to_string();
        if let Some(name) = query.get("fieldSelector").and_then(|s| exact_name(s)) {
            attributes.name = name;
        }
    }
    if attributes.name.is_empty() && attributes.verb == "delete" {
        attributes.verb = "deletecollection".to_string();
    }
    attributes
}

/// The `X` of a field selector requiring `metadata.name=X` (or `==`), if it is a valid path segment.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        if term.contains("!=") {
            return None;
        }
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))?
            .trim();
        let valid = !value.is_empty() && value != "." && value != ".." && !value.contains('/') && !value.contains('%');
        valid.then(|| value.to_string())
    })
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// `verbs`.
    pub verbs: Vec<String>,
    /// `apiGroups`.
    pub api_groups: Vec<String>,
    /// `resources`.
    pub resources: Vec<String>,
    /// `resourceNames`.
    pub resource_names: Vec<String>,
    /// `nonResourceURLs`.
    pub non_resource_urls: Vec<String>,
}

fn strings(value: &Value, field: &str) -> Vec<String> {
    value
        .get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

impl Rule {
    /// Reads a `PolicyRule` object.
    pub fn from_json(rule: &Value) -> Self {
        Rule {
            verbs: strings(rule, "verbs"),
            api_groups: strings(rule, "apiGroups"),
            resources: strings(rule, "resources"),
            resource_names: strings(rule, "resourceNames"),
            non_resource_urls: strings(rule, "nonResourceURLs"),
        }
    }

    /// Whether this rule allows the request (`RuleAllows`).
    pub fn allows(&self, attributes: &Attributes) -> bool {
        let verb = self.verbs.iter().any(|v| v == "*" || *v == attributes.verb);
        if !verb {
            return false;
        }
        if !attributes.resource_request {
            return self.non_resource_urls.iter().any(|url| {
                url == "*"
                    || *url == attributes.path
                    || (url.ends_with('*') && attributes.path.starts_with(url.trim_end_matches('*')))
            });
        }
        let group = self.api_groups.iter().any(|g| g == "*" || *g == attributes.api_group);
        let combined = attributes.combined_resource();
        let sub = &attributes.subresource;
        let resource = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!sub.is_empty() && r.len() == sub.len() + 2 && r.starts_with("*/") && r.ends_with(sub.as_str()))
        });
        let name = self.resource_names.is_empty() || self.resource_names.contains(&attributes.name);
        group && resource && name
    }
}

/// Which binding, role and rule allowed a request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    /// `ClusterRoleBinding` or `RoleBinding`; `system:masters` when the group bypassed authorization.
    pub binding_kind: String,
    /// The binding's name.
    pub binding_name: String,
    /// The binding's namespace (`""` for a ClusterRoleBinding).
    pub binding_namespace: String,
    /// `ClusterRole` or `Role`.
    pub role_kind: String,
    /// The role's name.
    pub role_name: String,
    /// The index of the rule in the role's `rules`.
    pub rule: usize,
    /// Whether the role is part of the bootstrap policy (label `kubernetes.io/bootstrapping=rbac-defaults`).
    pub bootstrap: bool,
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// `RBAC: allowed by …` when allowed; the joined errors (`RBAC: clusterrole… "x" not found`) or `""` when not.
    pub reason: String,
    /// What allowed it.
    pub grant: Option<Grant>,
}

/// One role's rules as a binding applied them.
struct Visit<'a> {
    grant: Grant,
    describe: String,
    rules: &'a [Value],
}

fn rbac(resource: &str) -> GroupResource {
    GroupResource::new(RBAC_GROUP, resource)
}

fn is_bootstrap(object: &Value) -> bool {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(BOOTSTRAP_LABEL.0))
        .and_then(Value::as_str)
        == Some(BOOTSTRAP_LABEL.1)
}

fn subject_applies(subject: &Value, identity: &Identity, binding_namespace: &str) -> bool {
    let field = |f: &str| subject.get(f).and_then(Value::as_str).unwrap_or_default();
    match field("kind") {
        "User" => identity.user == field("name"),
        "Group" => identity.groups.iter().any(|g| g == field("name")),
        "ServiceAccount" => {
            let namespace = if field("namespace").is_empty() {
                binding_namespace
            } else {
                field("namespace")
            };
            !namespace.is_empty() && parse_service_account_user(&identity.user) == Some((namespace, field("name")))
        }
        _ => false,
    }
}

fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let field = |f: &str| subject.get(f).and_then(Value::as_str).unwrap_or_default();
    if field("kind") == "ServiceAccount" {
        let namespace = if field("namespace").is_empty() {
            binding_namespace
        } else {
            field("namespace")
        };
        format!("{} \"{}/{}\"", field("kind"), field("name"), namespace)
    } else {
        format!("{} \"{}\"", field("kind"), field("name"))
    }
}

/// Calls `visit` for every rule that applies to `identity` in `namespace` (ClusterRoleBindings first, then the
/// RoleBindings of `namespace`) until it returns true; returns the errors of bindings whose role is missing.
fn visit_rules(
    state: &State,
    identity: &Identity,
    namespace: &str,
    mut visit: impl FnMut(&Visit<'_>, usize, &Rule) -> bool,
) -> Vec<String> {
    let mut errors = Vec::new();
    let everything = (LabelSelector::default(), FieldSelector::default());
    let mut bindings: Vec<(&Value, &str)> = state
        .list(&rbac("clusterrolebindings"), None, &everything.0, &everything.1)
        .into_iter()
        .map(|b| (b, "ClusterRoleBinding"))
        .collect();
    if !namespace.is_empty() {
        bindings.extend(
            state
                .list(&rbac("rolebindings"), Some(namespace), &everything.0, &everything.1)
                .into_iter()
                .map(|b| (b, "RoleBinding")),
        );
    }
    for (binding, binding_kind) in bindings {
        let binding_name = binding
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let binding_namespace = if binding_kind == "RoleBinding" { namespace } else { "" };
        let subjects = binding
            .get("subjects")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let Some(subject) = subjects
            .iter()
            .find(|s| subject_applies(s, identity, binding_namespace))
        else {
            continue;
        };
        let role_kind = binding
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role_name = binding
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role = match (binding_kind, role_kind) {
            (_, "ClusterRole") => state.get(&rbac("clusterroles"), "", role_name),
            ("RoleBinding", "Role") => state.get(&rbac("roles"), namespace, role_name),
            _ => continue,
        };
        let Some(role) = role else {
            errors.push(format!(
                "{}.{RBAC_GROUP} \"{role_name}\" not found",
                role_kind.to_ascii_lowercase()
            ));
            continue;
        };
        let binding_description = if binding_kind == "RoleBinding" {
            format!("{binding_kind} \"{binding_name}/{namespace}\"")
        } else {
            format!("{binding_kind} \"{binding_name}\"")
        };
        let rules = role
            .get("rules")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let visited = Visit {
            grant: Grant {
                binding_kind: binding_kind.to_string(),
                binding_name: binding_name.to_string(),
                binding_namespace: binding_namespace.to_string(),
                role_kind: role_kind.to_string(),
                role_name: role_name.to_string(),
                rule: 0,
                bootstrap: is_bootstrap(role),
            },
            describe: format!(
                "{binding_description} of {role_kind} \"{role_name}\" to {}",
                describe_subject(subject, binding_namespace)
            ),
            rules,
        };
        for (index, rule) in visited.rules.iter().enumerate() {
            if visit(&visited, index, &Rule::from_json(rule)) {
                return errors;
            }
        }
    }
    errors
}

fn join_errors(errors: &[String]) -> String {
    match errors {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    }
}

/// Decides a request as kube-apiserver's `system:masters` bypass and RBAC authorizer do.
pub fn authorize(state: &State, identity: &Identity, attributes: &Attributes) -> Decision {
    if identity.is_master() {
        return Decision {
            allowed: true,
            reason: String::new(),
            grant: Some(Grant {
                binding_kind: "system:masters".to_string(),
                binding_name: String::new(),
                binding_namespace: String::new(),
                role_kind: String::new(),
                role_name: String::new(),
                rule: 0,
                bootstrap: false,
            }),
        };
    }
    let mut decision = Decision::default();
    let errors = visit_rules(state, identity, &attributes.namespace, |visit, index, rule| {
        if rule.allows(attributes) {
            decision.allowed = true;
            decision.reason = format!("RBAC: allowed by {}", visit.describe);
            decision.grant = Some(Grant {
                rule: index,
                ..visit.grant.clone()
            });
            true
        } else {
            false
        }
    });
    if !decision.allowed {
        decision.reason = join_errors(&errors);
    }
    decision
}

/// The rules that apply to `identity` in `namespace` (for SelfSubjectRulesReview): the rules, and the errors of
/// bindings whose role is missing.
pub fn rules_for(state: &State, identity: &Identity, namespace: &str) -> (Vec<Rule>, Vec<String>) {
    let mut rules = Vec::new();
    if identity.is_master() {
        rules.push(Rule {
            verbs: vec!["*".into()],
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            ..Rule::default()
        });
        rules.push(Rule {
            verbs: vec!["*".into()],
            non_resource_urls: vec!["*".into()],
            ..Rule::default()
        });
    }
    let errors = visit_rules(state, identity, namespace, |_, _, rule| {
        rules.push(rule.clone());
        false
    });
    (rules, errors)
}

/// The 403 `Status` of a denied request (responsewriters.Forbidden + errors.NewForbidden).
pub fn forbidden_status(user: &str, attributes: &Attributes, reason: &str) -> Value {
    let message = if !attributes.resource_request {
        format!("User {user:?} cannot {} path {:?}", attributes.verb, attributes.path)
    } else if attributes.namespace.is_empty() {
        format!(
            "User {user:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
            attributes.verb,
            attributes.combined_resource(),
            attributes.api_group
        )
    } else {
        format!(
            "User {user:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
            attributes.verb,
            attributes.combined_resource(),
            attributes.api_group,
            attributes.namespace
        )
    };
    let message = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let error = if reason.is_empty() {
        message
    } else {
        format!("{message}: {reason}")
    };
    let mut details = serde_json::Map::new();
    let full = if !attributes.resource_request || attributes.resource.is_empty() {
        format!("forbidden: {error}")
    } else {
        let qualified = GroupResource::new(&attributes.api_group, &attributes.resource).qualified();
        if !attributes.name.is_empty() {
            details.insert("name".into(), json!(attributes.name));
        }
        if !attributes.api_group.is_empty() {
            details.insert("group".into(), json!(attributes.api_group));
        }
        details.insert("kind".into(), json!(attributes.resource));
        if attributes.name.is_empty() {
            format!("{qualified} is forbidden: {error}")
        } else {
            format!("{qualified} {:?} is forbidden: {error}", attributes.name)
        }
    };
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": full,
        "reason": "Forbidden", "details": details, "code": 403})
}

fn bootstrap_metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {BOOTSTRAP_LABEL.0: BOOTSTRAP_LABEL.1},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

/// The bootstrap policy a real cluster starts with (bootstrappolicy/policy.go), as the (apiVersion, kind, object)
/// to create: `cluster-admin` bound to `system:masters`, `system:discovery` and `system:basic-user` bound to
/// `system:authenticated`, `system:public-info-viewer` bound to `system:authenticated` and `system:unauthenticated`.
/// Every object carries the label [`BOOTSTRAP_LABEL`].
pub fn bootstrap_policy() -> Vec<(&'static str, &'static str, Value)> {
    let api_version = "rbac.authorization.k8s.io/v1";
    let role = |name: &str, rules: Value| json!({"apiVersion": api_version, "kind": "ClusterRole", "metadata": bootstrap_metadata(name), "rules": rules});
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": RBAC_GROUP, "kind": "Group", "name": g}))
            .collect();
        json!({"apiVersion": api_version, "kind": "ClusterRoleBinding", "metadata": bootstrap_metadata(name),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name}, "subjects": subjects})
    };
    let roles = [
        role(
            "cluster-admin",
            json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                   {"verbs": ["*"], "nonResourceURLs": ["*"]}]),
        ),
        role(
            "system:discovery",
            json!([{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]}]),
        ),
        role(
            "system:basic-user",
            json!([{"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
                   {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]}]),
        ),
        role(
            "system:public-info-viewer",
            json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]}]),
        ),
    ];
    let bindings = [
        binding("cluster-admin", &["system:masters"]),
        binding("system:discovery", &[AUTHENTICATED]),
        binding("system:basic-user", &[AUTHENTICATED]),
        binding("system:public-info-viewer", &[AUTHENTICATED, UNAUTHENTICATED]),
    ];
    roles
        .into_iter()
        .map(|r| (api_version, "ClusterRole", r))
        .chain(bindings.into_iter().map(|b| (api_version, "ClusterRoleBinding", b)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::store::{Store, WriteOptions};

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn request_attributes_follow_requestinfo() {
        /// verb, group, namespace, resource, subresource, name
        type Expected<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str);
        type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Expected<'a>);
        let cases: Vec<Case> = vec![
            (
                "GET",
                "/api/v1/namespaces/ns1/secrets/db",
                vec![],
                ("get", "", "ns1", "secrets", "", "db"),
            ),
            (
                "GET",
                "/api/v1/namespaces/ns1/secrets",
                vec![],
                ("list", "", "ns1", "secrets", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/ns1/secrets",
                vec![("watch", "true"), ("fieldSelector", "metadata.name=db")],
                ("watch", "", "ns1", "secrets", "", "db"),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/ns1/pods",
                vec![],
                ("watch", "", "ns1", "pods", "", ""),
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/a/statefulsets/s/status",
                vec![],
                ("patch", "apps", "a", "statefulsets", "status", "s"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a/pods",
                vec![],
                ("deletecollection", "", "a", "pods", "", ""),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a",
                vec![],
                ("delete", "", "a", "namespaces", "", "a"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/a/finalize",
                vec![],
                ("update", "", "a", "namespaces", "finalize", "a"),
            ),
            (
                "GET",
                "/api/v1/namespaces",
                vec![],
                ("list", "", "", "namespaces", "", ""),
            ),
            (
                "POST",
                "/api/v1/namespaces/a/serviceaccounts/agent/token",
                vec![],
                ("create", "", "a", "serviceaccounts", "token", "agent"),
            ),
            (
                "GET",
                "/apis/redisgitops.dev/v1alpha1/gitsyncs",
                vec![],
                ("list", "redisgitops.dev", "", "gitsyncs", "", ""),
            ),
        ];
        for (method, path, q, (verb, group, namespace, resource, subresource, name)) in cases {
            let a = request_attributes(method, path, &query(&q));
            assert!(a.resource_request, "{method} {path}");
            assert_eq!(
                (
                    a.verb.as_str(),
                    a.api_group.as_str(),
                    a.namespace.as_str(),
                    a.resource.as_str(),
                    a.subresource.as_str(),
                    a.name.as_str()
                ),
                (verb, group, namespace, resource, subresource, name),
                "{method} {path} {q:?}"
            );
        }
        for path in [
            "/version",
            "/api",
            "/apis",
            "/apis/apps",
            "/healthz",
            "/apis/apps/v1",
            "/openapi/v3",
        ] {
            let a = request_attributes("GET", path, &HashMap::new());
            assert_eq!(
                (a.resource_request, a.verb.as_str(), a.path.as_str()),
                (false, "get", path),
                "{path}"
            );
        }
    }

    fn rule(json: Value) -> Rule {
        Rule::from_json(&json)
    }

    #[test]
    fn rules_match_literally_as_kubernetes_does() {
        let get_pod_status = Attributes::resource("get", "", "pods", "status", "a", "p");
        let get_pod = Attributes::resource("get", "", "pods", "", "a", "p");
        let create_secret = Attributes::resource("create", "", "secrets", "", "a", "");
        let get_secret = Attributes::resource("get", "", "secrets", "", "a", "db");
        let list_secrets = Attributes::resource("list", "", "secrets", "", "a", "");
        let cases = [
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
                &get_pod,
                true,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
                &get_pod_status,
                false,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/status"]}),
                &get_pod_status,
                true,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/status"]}),
                &get_pod_status,
                true,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/*"]}),
                &get_pod_status,
                false,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/*"]}),
                &get_pod_status,
                false,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*"]}),
                &get_pod_status,
                true,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}),
                &get_pod,
                false,
            ),
            (
                json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["pods"]}),
                &get_pod,
                true,
            ),
            (
                json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}),
                &get_pod,
                false,
            ),
            (
                json!({"verbs": ["create"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]}),
                &create_secret,
                false,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]}),
                &get_secret,
                true,
            ),
            (
                json!({"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]}),
                &list_secrets,
                false,
            ),
            (json!({"verbs": ["get"], "nonResourceURLs": ["*"]}), &get_pod, false),
        ];
        for (index, (r, attributes, allowed)) in cases.iter().enumerate() {
            assert_eq!(
                rule(r.clone()).allows(attributes),
                *allowed,
                "case {index}: {r} vs {attributes:?}"
            );
        }
        let healthz = Attributes::non_resource("get", "/healthz/etcd");
        assert!(rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz/*"]})).allows(&healthz));
        assert!(rule(json!({"verbs": ["get"], "nonResourceURLs": ["*"]})).allows(&healthz));
        assert!(!rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz"]})).allows(&healthz));
        assert!(!rule(json!({"verbs": ["post"], "nonResourceURLs": ["*"]})).allows(&healthz));
        assert!(!rule(json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]})).allows(&healthz));
    }

    fn store_with(objects: &[Value]) -> Store {
        let store = Store::new(100);
        {
            let mut state = store.lock();
            for object in objects {
                let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
                let kind = object["kind"].as_str().unwrap_or_default().to_string();
                let info = state.registry.find_kind(&api_version, &kind).expect("kind");
                let namespace = object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let options = WriteOptions {
                    field_manager: "test".into(),
                    ..WriteOptions::default()
                };
                state
                    .create(&info, "v1", namespace.as_deref(), object.clone(), &options)
                    .expect("create");
            }
        }
        store
    }

    fn cluster_role(name: &str, rules: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
    }

    fn binding(kind: &str, name: &str, namespace: Option<&str>, role_kind: &str, role: &str, subjects: Value) -> Value {
        let mut metadata = json!({"name": name});
        if let Some(ns) = namespace {
            metadata["namespace"] = json!(ns);
        }
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role}, "subjects": subjects})
    }

    #[test]
    fn bindings_apply_where_kubernetes_applies_them() {
        let sa = json!([{"kind": "ServiceAccount", "name": "agent"}]);
        let store = store_with(&[
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns2"}}),
            cluster_role(
                "secret-reader",
                json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]),
            ),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "pod-reader", "namespace": "ns1"},
                "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]}),
            // A RoleBinding to a ClusterRole: its rules apply in ns1 only. The SA subject has no namespace, so the
            // binding's namespace is used.
            binding(
                "RoleBinding",
                "read",
                Some("ns1"),
                "ClusterRole",
                "secret-reader",
                sa.clone(),
            ),
            binding("RoleBinding", "pods", Some("ns1"), "Role", "pod-reader", sa.clone()),
            // The same SA subject without namespace in a ClusterRoleBinding matches nothing.
            binding(
                "ClusterRoleBinding",
                "nowhere",
                None,
                "ClusterRole",
                "secret-reader",
                sa,
            ),
            binding(
                "RoleBinding",
                "missing",
                Some("ns2"),
                "ClusterRole",
                "does-not-exist",
                json!([{"kind": "ServiceAccount", "name": "agent", "namespace": "ns1"}]),
            ),
        ]);
        let state = store.lock();
        let agent = Identity::service_account("ns1", "agent", "");
        let decide = |verb: &str, resource: &str, namespace: &str| {
            authorize(
                &state,
                &agent,
                &Attributes::resource(verb, "", resource, "", namespace, "db"),
            )
        };
        let in_ns1 = decide("get", "secrets", "ns1");
        assert!(in_ns1.allowed);
        assert_eq!(
            in_ns1.reason,
            "RBAC: allowed by RoleBinding \"read/ns1\" of ClusterRole \"secret-reader\" to ServiceAccount \"agent/ns1\""
        );
        assert_eq!(
            in_ns1.grant.as_ref().map(|g| (g.role_name.as_str(), g.rule)),
            Some(("secret-reader", 0))
        );
        let cluster_wide = decide("get", "secrets", "");
        assert_eq!((cluster_wide.allowed, cluster_wide.reason.as_str()), (false, ""));
        let ns2 = decide("get", "secrets", "ns2");
        assert_eq!(
            (ns2.allowed, ns2.reason.as_str()),
            (
                false,
                "RBAC: clusterrole.rbac.authorization.k8s.io \"does-not-exist\" not found"
            )
        );
        assert!(decide("list", "pods", "ns1").allowed);
        assert!(!decide("list", "pods", "ns2").allowed);
        let other = Identity::service_account("ns2", "agent", "");
        assert!(
            !authorize(
                &state,
                &other,
                &Attributes::resource("get", "", "secrets", "", "ns1", "db")
            )
            .allowed
        );
        assert!(
            authorize(
                &state,
                &Identity::admin(),
                &Attributes::resource("delete", "", "secrets", "", "ns2", "x")
            )
            .allowed
        );
    }

    #[test]
    fn forbidden_bodies_carry_the_real_messages() {
        let status = forbidden_status(
            "system:serviceaccount:ns1:agent",
            &Attributes::resource("get", "", "secrets", "", "ns1", "db"),
            "",
        );
        assert_eq!(
            status,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden",
                "code": 403, "details": {"name": "db", "kind": "secrets"},
                "message": "secrets \"db\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns1\""})
        );
        let status = forbidden_status(
            "u<1>",
            &Attributes::resource("patch", "apps", "statefulsets", "status", "", ""),
            "RBAC: clusterrole.rbac.authorization.k8s.io \"x\" not found",
        );
        assert_eq!(
            status["message"],
            "statefulsets.apps is forbidden: User \"u&lt;1&gt;\" cannot patch resource \"statefulsets/status\" in API group \"apps\" at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io \"x\" not found"
        );
        assert_eq!(status["details"], json!({"group": "apps", "kind": "statefulsets"}));
        let status = forbidden_status("system:anonymous", &Attributes::non_resource("get", "/metrics"), "");
        assert_eq!(
            status["message"],
            "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
        );
    }

    #[test]
    fn the_bootstrap_policy_lets_every_identity_discover_and_review_itself() {
        let objects: Vec<Value> = bootstrap_policy().into_iter().map(|(_, _, o)| o).collect();
        let store = store_with(&objects);
        let state = store.lock();
        let agent = Identity::service_account("ns1", "agent", "");
        let discovery = authorize(&state, &agent, &Attributes::non_resource("get", "/apis/apps/v1"));
        assert!(discovery.allowed);
        assert!(
            discovery
                .grant
                .is_some_and(|g| g.bootstrap && g.role_name == "system:discovery")
        );
        let review = Attributes::resource("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", "");
        assert!(authorize(&state, &agent, &review).allowed);
        let anonymous = Identity::anonymous();
        assert!(authorize(&state, &anonymous, &Attributes::non_resource("get", "/version")).allowed);
        assert!(!authorize(&state, &anonymous, &Attributes::non_resource("get", "/apis")).allowed);
        assert!(!authorize(&state, &anonymous, &review).allowed);
        let (rules, errors) = rules_for(&state, &agent, "ns1");
        assert!(errors.is_empty());
        assert_eq!(rules.len(), 4);
    }
}
