//! `ValidateService` and `ValidateServiceUpdate` for what the agent writes: the type, `externalName` for
//! ExternalName Services, ports (range, names, protocol, duplicates, node ports only where allowed), the selector,
//! and the cluster IP, which may not change once set. Also the REST layer's `patchAllocatedValues`: an update that
//! leaves the cluster IP out keeps the allocated one.

use std::collections::HashSet;

use serde_json::Value;

use super::names::{is_dns1123_label, is_dns1123_subdomain, is_valid_port_name};
use super::objectmeta::validate_labels;
use super::{FieldError, quote, text};

const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

fn service_type(object: &Value) -> &str {
    match text(object, "/spec/type") {
        "" => "ClusterIP",
        other => other,
    }
}

/// Copies the allocated `clusterIP`/`clusterIPs` from the stored Service when an update leaves them out and both
/// versions need a cluster IP.
pub fn keep_allocated(object: &mut Value, old: &Value) {
    if service_type(old) == "ExternalName" || service_type(object) == "ExternalName" {
        return;
    }
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let empty = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
    if empty(spec.get("clusterIP"))
        && let Some(ip) = old.pointer("/spec/clusterIP")
    {
        spec.insert("clusterIP".into(), ip.clone());
    }
    if spec
        .get("clusterIPs")
        .is_none_or(|v| v.as_array().is_none_or(Vec::is_empty))
        && let Some(ips) = old.pointer("/spec/clusterIPs")
    {
        spec.insert("clusterIPs".into(), ips.clone());
    }
}

fn port_number(value: Option<&Value>) -> Option<i64> {
    value.and_then(Value::as_i64)
}

fn validate_ports(object: &Value, kind: &str, errors: &mut Vec<FieldError>) {
    let ports = object
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let headless = text(object, "/spec/clusterIP") == "None";
    if ports.is_empty() && !headless && kind != "ExternalName" {
        errors.push(FieldError::required("spec.ports", ""));
    }
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let name = port.get("name").and_then(Value::as_str).unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            errors.push(FieldError::required(format!("{field}.name"), ""));
        } else if !name.is_empty() {
            for message in is_dns1123_label(name) {
                errors.push(FieldError::invalid(format!("{field}.name"), quote(name), message));
            }
            if !names.insert(name.to_string()) {
                errors.push(FieldError::duplicate(format!("{field}.name"), quote(name)));
            }
        }
        let number = port_number(port.get("port"));
        match number {
            Some(n) if (1..=65535).contains(&n) => {}
            _ => errors.push(FieldError::invalid(
                format!("{field}.port"),
                port.get("port").map(Value::to_string).unwrap_or_else(|| "0".into()),
                "must be between 1 and 65535, inclusive",
            )),
        }
        let protocol = port.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            errors.push(FieldError::not_supported(
                format!("{field}.protocol"),
                protocol,
                &PROTOCOLS,
            ));
        }
        if !keys.insert((number, protocol.to_string())) {
            errors.push(FieldError::duplicate(field.clone(), port.to_string()));
        }
        match port.get("targetPort") {
            None | Some(Value::Null) => {}
            Some(Value::String(target)) => {
                for message in is_valid_port_name(target) {
                    errors.push(FieldError::invalid(
                        format!("{field}.targetPort"),
                        quote(target),
                        message,
                    ));
                }
            }
            Some(target) => {
                if !target.as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                    errors.push(FieldError::invalid(
                        format!("{field}.targetPort"),
                        target.to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
        if let Some(node_port) = port.get("nodePort").and_then(Value::as_i64)
            && node_port != 0
            && !matches!(kind, "NodePort" | "LoadBalancer")
        {
            errors.push(FieldError::forbidden(
                format!("{field}.nodePort"),
                format!("may not be used when `type` is '{kind}'"),
            ));
        }
    }
}

/// Runs the Service rules; `old` is the stored Service on update.
pub fn validate(object: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let kind = service_type(object);
    if !TYPES.contains(&kind) {
        errors.push(FieldError::not_supported("spec.type", kind, &TYPES));
    }
    let cluster_ip = text(object, "/spec/clusterIP");
    if kind == "ExternalName" {
        if !cluster_ip.is_empty() {
            errors.push(FieldError::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
        let external = text(object, "/spec/externalName");
        if external.is_empty() {
            errors.push(FieldError::required("spec.externalName", ""));
        } else {
            let bare = external.strip_suffix('.').unwrap_or(external);
            for message in is_dns1123_subdomain(bare) {
                errors.push(FieldError::invalid("spec.externalName", quote(external), message));
            }
        }
    } else {
        if cluster_ip == "None" && matches!(kind, "NodePort" | "LoadBalancer") {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                quote("None"),
                format!("may not be set to 'None' for {kind} services"),
            ));
        }
        if !cluster_ip.is_empty() && cluster_ip != "None" && cluster_ip.parse::<std::net::IpAddr>().is_err() {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                quote(cluster_ip),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    validate_ports(object, kind, errors);
    validate_labels(object.pointer("/spec/selector"), "spec.selector", errors);
    if let Some(old) = old
        && service_type(old) != "ExternalName"
        && kind != "ExternalName"
    {
        let before = text(old, "/spec/clusterIP");
        if !before.is_empty() && cluster_ip != before {
            let ips = object.pointer("/spec/clusterIPs").cloned().unwrap_or(Value::Null);
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                ips.to_string(),
                "may not change once set",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn external_name_needs_the_name_and_no_cluster_ip() {
        let mut errors = Vec::new();
        validate(&json!({"spec": {"type": "ExternalName"}}), None, &mut errors);
        assert_eq!(errors, vec![FieldError::required("spec.externalName", "")]);
        assert_eq!(errors[0].message(), "Required value");
    }

    #[test]
    fn the_cluster_ip_is_kept_and_may_not_change() {
        let old = json!({"spec": {"clusterIP": "10.96.1.2", "clusterIPs": ["10.96.1.2"], "ports": [{"port": 1}]}});
        let mut new = json!({"spec": {"ports": [{"port": 2}]}});
        keep_allocated(&mut new, &old);
        let mut errors = Vec::new();
        validate(&new, Some(&old), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let changed = json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 2}]}});
        validate(&changed, Some(&old), &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].message(),
            "Invalid value: [\"None\"]: may not change once set"
        );
    }

    #[test]
    fn ports_are_checked() {
        let mut errors = Vec::new();
        validate(
            &json!({"spec": {"ports": [{"port": 0}, {"name": "b", "port": 2, "nodePort": 30000}]}}),
            None,
            &mut errors,
        );
        let fields: Vec<&str> = errors.iter().map(FieldError::field).collect();
        assert_eq!(
            fields,
            vec!["spec.ports[0].name", "spec.ports[0].port", "spec.ports[1].nodePort"]
        );
    }
}
