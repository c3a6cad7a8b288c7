//! The name and key syntaxes of apimachinery's `util/validation` (qualified names, label values, RFC 1123
//! subdomains and labels, RFC 1035 labels, config-map keys, port names), each returning the same messages.

/// The longest label value and qualified-name name part.
pub const LABEL_VALUE_MAX: usize = 63;
/// The longest RFC 1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
                               or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                                     characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
                                 '-', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start \
                                 with an alphabetic character, and end with an alphanumeric character";

/// apimachinery's `RegexError`: the message, examples and the regular expression.
fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
    let mut text = message.to_string();
    if !examples.is_empty() {
        text.push_str(" (e.g. ");
        for (i, example) in examples.iter().enumerate() {
            if i > 0 {
                text.push_str(" or ");
            }
            text.push_str(&format!("'{example}', "));
        }
        text.push_str(&format!("regex used for validation is '{format}')"));
    }
    text
}

/// apimachinery's `MaxLenError`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name(name: &str) -> bool {
    !name.is_empty()
        && name.starts_with(alnum)
        && name.ends_with(alnum)
        && name.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

fn matches_dns1123_label(label: &str) -> bool {
    !label.is_empty()
        && label.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && label.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `IsQualifiedName`: an optional DNS-subdomain prefix and `/`, then a name part of at most 63 characters.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                errors.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errors.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > LABEL_VALUE_MAX {
        errors.push(format!("name part {}", max_len_error(LABEL_VALUE_MAX)));
    }
    if !matches_qualified_name(name) {
        errors.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errors
}

/// `IsValidLabelValue`: empty, or at most 63 characters of the qualified-name syntax.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errors.push(max_len_error(LABEL_VALUE_MAX));
    }
    if !value.is_empty() && !matches_qualified_name(value) {
        errors.push(regex_error(
            LABEL_VALUE_MSG,
            &format!("({QUALIFIED_NAME_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

/// `IsDNS1123Subdomain`: at most 253 characters of dot-separated RFC 1123 labels.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errors.push(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    if !value.split('.').all(matches_dns1123_label) {
        errors.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errors
}

/// `IsDNS1123Label`: at most 63 lower-case alphanumerics or `-`, alphanumeric at both ends.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errors.push(max_len_error(LABEL_VALUE_MAX));
    }
    if !matches_dns1123_label(value) {
        errors.push(regex_error(
            DNS1123_LABEL_MSG,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errors
}

/// `IsDNS1035Label`: an RFC 1123 label that starts with a letter (Service names).
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errors.push(max_len_error(LABEL_VALUE_MAX));
    }
    if !(matches_dns1123_label(value) && value.starts_with(|c: char| c.is_ascii_lowercase())) {
        errors.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errors
}

/// `IsConfigMapKey`: Secret and ConfigMap data keys.
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errors.push(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    if value.is_empty() || !value.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.')) {
        errors.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if value == "." {
        errors.push("must not be '.'".into());
    } else if value == ".." {
        errors.push("must not be '..'".into());
    } else if value.starts_with("..") {
        errors.push("must not start with '..'".into());
    }
    errors
}

/// `IsValidPortName`: an IANA service name (at most 15 lower-case alphanumerics or `-`, with a letter).
pub fn is_valid_port_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 15 {
        errors.push(max_len_error(15));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        errors.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !value.chars().any(|c| c.is_ascii_lowercase()) {
        errors.push("must contain at least one letter (a-z)".into());
    }
    if value.contains("--") {
        errors.push("must not contain consecutive hyphens".into());
    }
    if value.starts_with('-') || value.ends_with('-') {
        errors.push("must not begin or end with a hyphen".into());
    }
    errors
}

/// The name rule of a kind, as its registry strategy picks it: DNS-1035 labels for Services, DNS-1123 labels for
/// Namespaces, path segments for RBAC objects, DNS-1123 subdomains for the rest. `prefix` is for `generateName`,
/// whose trailing `-` is allowed.
pub fn validate_object_name(group: &str, plural: &str, name: &str, prefix: bool) -> Vec<String> {
    let name = if prefix {
        name.strip_suffix('-').unwrap_or(name)
    } else {
        name
    };
    match (group, plural) {
        ("", "services") => is_dns1035_label(name),
        ("", "namespaces") => is_dns1123_label(name),
        ("rbac.authorization.k8s.io", _) => path_segment_name(name, prefix),
        _ => is_dns1123_subdomain(name),
    }
}

/// `path.IsValidPathSegmentName` (RBAC names like `system:discovery`).
fn path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    if !prefix && (name == "." || name == "..") {
        return vec![format!("may not be '{name}'")];
    }
    let mut errors = Vec::new();
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errors.push(format!("may not contain '{bad}'"));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_as_apimachinery_checks_them() {
        assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
        assert!(is_qualified_name("MyName").is_empty());
        assert_eq!(
            is_qualified_name("a b"),
            vec![
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
                 alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
                 '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        assert_eq!(
            is_qualified_name(&"k".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert_eq!(is_qualified_name("/x"), vec!["prefix part must be non-empty"]);
        assert_eq!(is_qualified_name("a/b/c").len(), 1);
        assert!(is_qualified_name("Example.com/x")[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
    }

    #[test]
    fn label_values_and_dns_names() {
        assert!(is_valid_label_value("").is_empty());
        assert_eq!(
            is_valid_label_value(&"v".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(is_valid_label_value("a/b").len(), 1);
        assert!(is_dns1035_label("orders-headless").is_empty());
        assert_eq!(is_dns1035_label("1orders").len(), 1);
        assert!(is_dns1123_label("1orders").is_empty());
        assert!(is_dns1123_subdomain("a.b-c").is_empty());
        assert_eq!(is_dns1123_subdomain("a..b").len(), 1);
        assert!(validate_object_name("rbac.authorization.k8s.io", "clusterroles", "system:x", false).is_empty());
        assert!(validate_object_name("", "pods", "web-", true).is_empty());
        assert_eq!(is_config_map_key("a b").len(), 1);
        assert!(is_valid_port_name("redis").is_empty());
        assert_eq!(is_valid_port_name("1234").len(), 1);
    }
}
