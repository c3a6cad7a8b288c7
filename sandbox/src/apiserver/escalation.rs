//! RBAC escalation prevention on writes of roles and bindings, as Kubernetes' policy-based RBAC storage does it
//! (`pkg/registry/rbac/*/policybased`, `validation.ConfirmNoEscalation`): a user may write a Role or ClusterRole only
//! with rules it holds itself where the role applies, unless it may `escalate` that role; and a RoleBinding or
//! ClusterRoleBinding only to a role whose rules it holds where the binding applies, unless it may `bind` that role.
//! This is why an agent that creates Roles for its pods must itself hold what those Roles grant. Pure: reads the
//! store's state, decides, writes nothing. Aggregated ClusterRoles are checked by the rules they carry.

use serde_json::Value;

use super::auth::Identity;
use super::error::ApiError;
use super::rbac::{Attributes, Rule, authorize};
use super::resources::GroupResource;
use super::store::State;

/// The API group of the RBAC kinds.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Refuses writing `object` (a Role, ClusterRole, RoleBinding or ClusterRoleBinding, as it would be stored, in
/// `namespace`, `""` for cluster-scoped kinds) when it would grant `identity` more than it holds. Other resources
/// and `system:masters` pass.
pub fn check(
    state: &State,
    identity: &Identity,
    resource: &str,
    namespace: &str,
    object: &Value,
) -> Result<(), ApiError> {
    if identity.is_master() {
        return Ok(());
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (rules, scope) = match resource {
        "roles" | "clusterroles" => {
            let escalate = Attributes::resource("escalate", RBAC_GROUP, resource, "", namespace, name);
            if authorize(state, identity, &escalate).allowed {
                return Ok(());
            }
            (rules_of(object), namespace)
        }
        "rolebindings" | "clusterrolebindings" => {
            let kind = object
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role = object
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (role_resource, role_namespace) = if kind == "Role" {
                ("roles", namespace)
            } else {
                ("clusterroles", "")
            };
            let bind = Attributes::resource("bind", RBAC_GROUP, role_resource, "", namespace, role);
            if authorize(state, identity, &bind).allowed {
                return Ok(());
            }
            let Some(referenced) = state.get(&GroupResource::new(RBAC_GROUP, role_resource), role_namespace, role)
            else {
                let singular = role_resource.trim_end_matches('s');
                return Err(forbidden(
                    resource,
                    name,
                    &format!("{singular}.{RBAC_GROUP} {role:?} not found"),
                ));
            };
            (rules_of(referenced), namespace)
        }
        _ => return Ok(()),
    };
    let missing: Vec<String> = rules
        .iter()
        .flat_map(|rule| atoms(rule, scope))
        .filter(|(attributes, _)| !authorize(state, identity, attributes).allowed)
        .map(|(_, text)| text)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let groups: Vec<String> = identity.groups.iter().map(|group| format!("{group:?}")).collect();
    Err(forbidden(
        resource,
        name,
        &format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            identity.user,
            groups.join(" "),
            missing.join("\n")
        ),
    ))
}

fn forbidden(resource: &str, name: &str, reason: &str) -> ApiError {
    ApiError::Forbidden {
        message: format!("{resource}.{RBAC_GROUP} {name:?} is forbidden: {reason}"),
    }
}

fn rules_of(object: &Value) -> Vec<Rule> {
    object
        .get("rules")
        .and_then(Value::as_array)
        .map(|rules| rules.iter().map(Rule::from_json).collect())
        .unwrap_or_default()
}

/// A rule broken into single requests (one verb, group, resource and name each), with the compact form Kubernetes
/// names a missing one by.
fn atoms(rule: &Rule, namespace: &str) -> Vec<(Attributes, String)> {
    let mut atoms = Vec::new();
    if !rule.non_resource_urls.is_empty() {
        for verb in &rule.verbs {
            for url in &rule.non_resource_urls {
                atoms.push((
                    Attributes::non_resource(verb, url),
                    format!("{{NonResourceURLs:[{url:?}], Verbs:[{verb:?}]}}"),
                ));
            }
        }
        return atoms;
    }
    let names: Vec<&str> = if rule.resource_names.is_empty() {
        vec![""]
    } else {
        rule.resource_names.iter().map(String::as_str).collect()
    };
    for verb in &rule.verbs {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let (plural, subresource) = resource.split_once('/').unwrap_or((resource.as_str(), ""));
                for name in &names {
                    let named = if name.is_empty() {
                        String::new()
                    } else {
                        format!(", ResourceNames:[{name:?}]")
                    };
                    atoms.push((
                        Attributes::resource(verb, group, plural, subresource, namespace, name),
                        format!("{{APIGroups:[{group:?}], Resources:[{resource:?}]{named}, Verbs:[{verb:?}]}}"),
                    ));
                }
            }
        }
    }
    atoms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_breaks_into_single_requests_named_as_kubernetes_names_them() {
        let rule = Rule::from_json(&serde_json::json!({
            "apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["get", "list"],
        }));
        let atoms = atoms(&rule, "ns1");
        let texts: Vec<&str> = atoms.iter().map(|(_, text)| text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}",
                "{APIGroups:[\"\"], Resources:[\"pods/status\"], Verbs:[\"get\"]}",
                "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"list\"]}",
                "{APIGroups:[\"\"], Resources:[\"pods/status\"], Verbs:[\"list\"]}",
            ]
        );
        assert_eq!(atoms[1].0.subresource, "status");
        assert_eq!(atoms[1].0.namespace, "ns1");
        let named = Rule::from_json(&serde_json::json!({
            "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"], "verbs": ["patch"],
        }));
        assert_eq!(
            atoms_text(&named),
            ["{APIGroups:[\"apps\"], Resources:[\"deployments\"], ResourceNames:[\"web\"], Verbs:[\"patch\"]}"]
        );
        let urls = Rule::from_json(&serde_json::json!({"nonResourceURLs": ["/metrics"], "verbs": ["get"]}));
        assert_eq!(atoms_text(&urls), ["{NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"]);
    }

    fn atoms_text(rule: &Rule) -> Vec<String> {
        atoms(rule, "").into_iter().map(|(_, text)| text).collect()
    }
}
