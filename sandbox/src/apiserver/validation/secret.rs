//! `ValidateSecret`/`ValidateSecretUpdate` and `ValidateConfigMap`/`ValidateConfigMapUpdate`: data keys, the 1 MiB
//! size, the keys a Secret type requires, `type` immutable, and `immutable: true` freezing the data.

use base64::Engine;
use serde_json::Value;

use super::names::is_config_map_key;
use super::{FieldError, quote, text};

/// The largest Secret or ConfigMap payload.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

const IMMUTABLE: &str = "field is immutable when `immutable` is set";

fn check_keys(object: &Value, field: &str, decode: bool, errors: &mut Vec<FieldError>) -> usize {
    let mut size = 0;
    if let Some(data) = object.get(field).and_then(Value::as_object) {
        for (key, value) in data {
            for message in is_config_map_key(key) {
                errors.push(FieldError::invalid(format!("{field}[{key}]"), quote(key), message));
            }
            let text = value.as_str().unwrap_or_default();
            size += key.len()
                + if decode {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_or(text.len(), |b| b.len())
                } else {
                    text.len()
                };
        }
    }
    size
}

fn immutable_rules(object: &Value, old: &Value, fields: &[&str], errors: &mut Vec<FieldError>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if object.get("immutable").and_then(Value::as_bool) != Some(true) {
        errors.push(FieldError::forbidden("immutable", IMMUTABLE));
    }
    for field in fields {
        if object.get(*field) != old.get(*field) {
            errors.push(FieldError::forbidden(*field, IMMUTABLE));
        }
    }
}

/// Runs the Secret rules; `old` is the stored Secret on update.
pub fn validate_secret(object: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let size = check_keys(object, "data", true, errors);
    if size > MAX_DATA_SIZE {
        errors.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let kind = text(object, "/type");
    let has = |key: &str| object.pointer(&format!("/data/{key}")).is_some();
    let required: &[&str] = match kind {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    for key in required {
        if !has(key) {
            errors.push(FieldError::required(format!("data[{key}]"), ""));
        }
    }
    if kind == "kubernetes.io/basic-auth" && !has("username") && !has("password") {
        errors.push(FieldError::required(
            "data[username]",
            "either username or password is required",
        ));
    }
    if let Some(old) = old {
        let before = text(old, "/type");
        if kind != before {
            errors.push(FieldError::invalid("type", quote(kind), "field is immutable"));
        }
        immutable_rules(object, old, &["data"], errors);
    }
}

/// Runs the ConfigMap rules; `old` is the stored ConfigMap on update.
pub fn validate_configmap(object: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let size = check_keys(object, "data", false, errors) + check_keys(object, "binaryData", true, errors);
    if size > MAX_DATA_SIZE {
        errors.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
    if let Some(old) = old {
        immutable_rules(object, old, &["data", "binaryData"], errors);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn type_is_immutable_and_immutable_freezes_data() {
        let old = json!({"type": "Opaque", "immutable": true, "data": {"a": "eA=="}});
        let mut errors = Vec::new();
        validate_secret(
            &json!({"type": "kubernetes.io/tls", "immutable": true, "data": {"tls.crt": "", "tls.key": ""}}),
            Some(&old),
            &mut errors,
        );
        let messages: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field(), e.message()))
            .collect();
        assert_eq!(
            messages,
            vec![
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable".to_string(),
                "data: Forbidden: field is immutable when `immutable` is set".to_string(),
            ]
        );
    }

    #[test]
    fn tls_secrets_need_both_keys() {
        let mut errors = Vec::new();
        validate_secret(
            &json!({"type": "kubernetes.io/tls", "data": {"tls.crt": ""}}),
            None,
            &mut errors,
        );
        assert_eq!(errors, vec![FieldError::required("data[tls.key]", "")]);
    }
}
