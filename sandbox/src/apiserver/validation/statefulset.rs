//! `ValidateStatefulSet` (the parts the agent's StatefulSets meet: selector matches the template labels, pod
//! template labels and annotations, claim template names) and `ValidateStatefulSetUpdate`: only `replicas`,
//! `ordinals`, `template`, `updateStrategy`, `revisionHistoryLimit`, `persistentVolumeClaimRetentionPolicy` and
//! `minReadySeconds` may change.

use serde_json::{Value, json};

use super::names::is_dns1123_subdomain;
use super::objectmeta::{validate_annotations, validate_labels};
use super::{FieldError, Write, quote};

/// The fields an update of a StatefulSet spec may change.
const MUTABLE_SPEC_FIELDS: [&str; 7] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// kube-apiserver's refusal of any other change.
pub const FORBIDDEN_UPDATE: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', \
                                    'template', 'updateStrategy', 'revisionHistoryLimit', \
                                    'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

/// The spec with the mutable fields removed and the defaults a decode would fill in, for comparison.
fn frozen_spec(object: &Value) -> Value {
    let mut spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(map) = spec.as_object_mut() {
        for field in MUTABLE_SPEC_FIELDS {
            map.remove(field);
        }
        map.entry("podManagementPolicy")
            .or_insert_with(|| json!("OrderedReady"));
        if let Some(templates) = map.get_mut("volumeClaimTemplates").and_then(Value::as_array_mut) {
            for template in templates.iter_mut().filter_map(Value::as_object_mut) {
                template.remove("status");
                template.entry("apiVersion").or_insert_with(|| json!("v1"));
                template.entry("kind").or_insert_with(|| json!("PersistentVolumeClaim"));
                if let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.entry("volumeMode").or_insert_with(|| json!("Filesystem"));
                }
            }
        }
        if map
            .get("volumeClaimTemplates")
            .is_some_and(|t| t.as_array().is_some_and(Vec::is_empty))
        {
            map.remove("volumeClaimTemplates");
        }
    }
    spec
}

/// Whether the selector's `matchLabels` all appear in the template labels (`matchExpressions` are not checked).
fn selector_matches(object: &Value) -> bool {
    let Some(selector) = object.pointer("/spec/selector/matchLabels").and_then(Value::as_object) else {
        return true;
    };
    let labels = object
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Runs the StatefulSet rules for a create or an update of the main resource (status writes are not checked).
pub fn validate(object: &Value, write: Write<'_>, errors: &mut Vec<FieldError>) {
    if let Write::Status(_) = write {
        return;
    }
    if object.pointer("/spec/selector").is_none() {
        errors.push(FieldError::required("spec.selector", ""));
    } else if !selector_matches(object) {
        let labels = object
            .pointer("/spec/template/metadata/labels")
            .cloned()
            .unwrap_or(Value::Null);
        errors.push(FieldError::invalid(
            "spec.template.metadata.labels",
            labels.to_string(),
            "`selector` does not match template `labels`",
        ));
    }
    validate_labels(
        object.pointer("/spec/template/metadata/labels"),
        "spec.template.metadata.labels",
        errors,
    );
    validate_annotations(
        object.pointer("/spec/template/metadata/annotations"),
        "spec.template.metadata.annotations",
        errors,
    );
    if let Some(templates) = object.pointer("/spec/volumeClaimTemplates").and_then(Value::as_array) {
        for (i, template) in templates.iter().enumerate() {
            let name = template
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let field = format!("spec.volumeClaimTemplates[{i}].metadata.name");
            if name.is_empty() {
                errors.push(FieldError::required(field, "name or generateName is required"));
            } else {
                for message in is_dns1123_subdomain(name) {
                    errors.push(FieldError::invalid(field.clone(), quote(name), message));
                }
            }
            validate_labels(
                template.pointer("/metadata/labels"),
                &format!("spec.volumeClaimTemplates[{i}].metadata.labels"),
                errors,
            );
        }
    }
    if let Write::Update(old) = write
        && frozen_spec(object) != frozen_spec(old)
    {
        errors.push(FieldError::forbidden("spec", FORBIDDEN_UPDATE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(size: &str, replicas: i64) -> Value {
        json!({"spec": {"replicas": replicas, "serviceName": "s", "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"resources": {"requests": {"storage": size}}}}]}})
    }

    #[test]
    fn only_the_mutable_fields_may_change() {
        let old = sts("20Gi", 3);
        let mut errors = Vec::new();
        validate(&sts("20Gi", 5), Write::Update(&old), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        validate(&sts("40Gi", 3), Write::Update(&old), &mut errors);
        assert_eq!(errors, vec![FieldError::forbidden("spec", FORBIDDEN_UPDATE)]);
        assert_eq!(errors[0].message(), format!("Forbidden: {FORBIDDEN_UPDATE}"));
    }

    #[test]
    fn the_selector_must_match_the_template() {
        let mut object = sts("1Gi", 1);
        object["spec"]["template"]["metadata"]["labels"] = json!({"app": "b"});
        let mut errors = Vec::new();
        validate(&object, Write::Create, &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field(), "spec.template.metadata.labels");
    }
}
