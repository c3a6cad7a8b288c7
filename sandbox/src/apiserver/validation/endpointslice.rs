//! `ValidateEndpointSlice`: the address type, 1 to 100 addresses per endpoint that parse as that type, at most
//! 1000 endpoints and 100 ports, port names and protocols. (Several addresses in one endpoint are valid; only the
//! first has a meaning, which the API documents and kube-proxy follows.)

use std::collections::HashSet;

use serde_json::Value;

use super::names::{is_dns1123_label, is_dns1123_subdomain};
use super::{FieldError, quote, text};

const ADDRESS_TYPES: [&str; 3] = ["FQDN", "IPv4", "IPv6"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

fn address_errors(address_type: &str, address: &str) -> Vec<String> {
    match address_type {
        "IPv4" if address.parse::<std::net::Ipv4Addr>().is_err() => vec!["must be a valid IPv4 address".into()],
        "IPv6" if address.parse::<std::net::Ipv6Addr>().is_err() => vec!["must be a valid IPv6 address".into()],
        "FQDN" => is_dns1123_subdomain(address),
        _ => Vec::new(),
    }
}

/// Runs the EndpointSlice rules.
pub fn validate(object: &Value, errors: &mut Vec<FieldError>) {
    let address_type = text(object, "/addressType");
    if address_type.is_empty() {
        errors.push(FieldError::required("addressType", ""));
    } else if !ADDRESS_TYPES.contains(&address_type) {
        errors.push(FieldError::not_supported("addressType", address_type, &ADDRESS_TYPES));
    }
    let endpoints = object
        .get("endpoints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if endpoints.len() > 1000 {
        errors.push(FieldError::too_many("endpoints", endpoints.len(), 1000));
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        let field = format!("endpoints[{i}]");
        let addresses = endpoint
            .get("addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if addresses.is_empty() {
            errors.push(FieldError::required(
                format!("{field}.addresses"),
                "must contain at least 1 address",
            ));
        } else if addresses.len() > 100 {
            errors.push(FieldError::too_many(format!("{field}.addresses"), addresses.len(), 100));
        }
        for (j, address) in addresses.iter().enumerate() {
            let address = address.as_str().unwrap_or_default();
            for message in address_errors(address_type, address) {
                errors.push(FieldError::invalid(
                    format!("{field}.addresses[{j}]"),
                    quote(address),
                    message,
                ));
            }
        }
        let hostname = text(endpoint, "/hostname");
        if !hostname.is_empty() {
            for message in is_dns1123_label(hostname) {
                errors.push(FieldError::invalid(
                    format!("{field}.hostname"),
                    quote(hostname),
                    message,
                ));
            }
        }
        let node = text(endpoint, "/nodeName");
        if !node.is_empty() {
            for message in is_dns1123_subdomain(node) {
                errors.push(FieldError::invalid(format!("{field}.nodeName"), quote(node), message));
            }
        }
    }
    let ports = object
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.len() > 100 {
        errors.push(FieldError::too_many("ports", ports.len(), 100));
    }
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let field = format!("ports[{i}]");
        let name = text(port, "/name");
        if !name.is_empty() {
            for message in is_dns1123_label(name) {
                errors.push(FieldError::invalid(format!("{field}.name"), quote(name), message));
            }
        }
        if !names.insert(name.to_string()) {
            errors.push(FieldError::duplicate(format!("{field}.name"), quote(name)));
        }
        let protocol = port.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            errors.push(FieldError::not_supported(
                format!("{field}.protocol"),
                protocol,
                &PROTOCOLS,
            ));
        }
        if let Some(number) = port.get("port").filter(|p| !p.is_null())
            && !number.as_i64().is_some_and(|n| (1..=65535).contains(&n))
        {
            errors.push(FieldError::invalid(
                format!("{field}.port"),
                number.to_string(),
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
}
