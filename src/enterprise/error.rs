//! Errors of the Redis Enterprise REST client. Each carries the endpoint (method and path, never credentials)
//! and, for API errors, the cluster's `error_code` and description, so they can go into conditions and events.

/// A failed REST call.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EnterpriseError {
    /// The cluster answered with an error status.
    #[error("{endpoint} failed with HTTP {status}: {error_code}: {description}")]
    Api {
        /// `METHOD /path`.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The cluster's `error_code` (`unknown` when the body had none).
        error_code: String,
        /// The cluster's description (or `message`).
        description: String,
    },
    /// The cluster stayed busy (HTTP 409) through every retry.
    #[error("{endpoint} failed: the cluster stayed busy (HTTP 409) after {attempts} attempts: {description}")]
    Busy {
        /// `METHOD /path`.
        endpoint: String,
        /// Attempts made.
        attempts: u32,
        /// The last description.
        description: String,
    },
    /// The credentials were refused (HTTP 401).
    #[error("{endpoint} failed: the cluster refused the admin credentials (HTTP 401); check the credentials Secret")]
    Unauthorized {
        /// `METHOD /path`.
        endpoint: String,
    },
    /// No answer in time.
    #[error("{endpoint} timed out after {seconds} s")]
    Timeout {
        /// `METHOD /path`.
        endpoint: String,
        /// The time limit.
        seconds: u64,
    },
    /// The cluster could not be reached.
    #[error("unable to reach {endpoint}: {reason}")]
    Unreachable {
        /// `METHOD /path`.
        endpoint: String,
        /// What the transport said.
        reason: String,
    },
    /// The answer was not the JSON the documentation describes.
    #[error("{endpoint} returned a body that could not be read: {reason}")]
    Decode {
        /// `METHOD /path`.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
    /// The client could not be configured (bad CA certificate, TLS setup).
    #[error("failed to configure the REST client: {reason}")]
    Configuration {
        /// What was wrong.
        reason: String,
    },
    /// A write refused before it was sent: this agent replica lost (or never held) the leader Lease.
    #[error("refused to send {endpoint}: this replica does not hold the leader lease")]
    NotLeader {
        /// `METHOD /path`.
        endpoint: String,
    },
    /// An action the cluster runs asynchronously failed.
    #[error("action {action_uid} ({name}) failed: {reason}")]
    ActionFailed {
        /// The action's id.
        action_uid: String,
        /// The action's name.
        name: String,
        /// The reason the cluster gave.
        reason: String,
    },
}

impl EnterpriseError {
    /// A stable name of the variant, for event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Api { .. } => "Api",
            Self::Busy { .. } => "Busy",
            Self::Unauthorized { .. } => "Unauthorized",
            Self::Timeout { .. } => "Timeout",
            Self::Unreachable { .. } => "Unreachable",
            Self::Decode { .. } => "Decode",
            Self::Configuration { .. } => "Configuration",
            Self::ActionFailed { .. } => "ActionFailed",
            Self::NotLeader { .. } => "NotLeader",
        }
    }

    /// Whether trying again later may succeed (as opposed to a request the cluster rejects as invalid).
    pub fn is_transient(&self) -> bool {
        match self {
            // 501 Not Implemented says the server cannot do this at all; retrying will not change that.
            Self::Api { status, .. } => *status >= 500 && *status != 501,
            Self::Busy { .. } | Self::Timeout { .. } | Self::Unreachable { .. } => true,
            Self::Unauthorized { .. }
            | Self::Decode { .. }
            | Self::Configuration { .. }
            | Self::ActionFailed { .. }
            | Self::NotLeader { .. } => false,
        }
    }

    /// The cluster's `error_code`, when it gave one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Api { error_code, .. } => Some(error_code),
            Self::Busy { .. } => Some("busy"),
            _ => None,
        }
    }

    /// Whether the cluster said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }
}

/// The most characters of cluster-supplied text (an error description, an `error_code`, an action's reason) kept
/// in an error: errors go into conditions, events and logs, and a cluster (or whatever answers in its place) must
/// not be able to grow those without bound.
pub const MAX_CLUSTER_TEXT: usize = 200;

/// `text` cut to [`MAX_CLUSTER_TEXT`] characters, with `…` when something was cut.
pub fn cap_cluster_text(text: &str) -> String {
    let mut characters = text.chars();
    let cut: String = characters.by_ref().take(MAX_CLUSTER_TEXT).collect();
    if characters.next().is_some() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Reads the documented error body: `error_code` plus `description` (the OpenAPI spelling) or `message` (the
/// prose docs' spelling). Anything else becomes `unknown` with the body's text. Both are cut to
/// [`MAX_CLUSTER_TEXT`] characters.
pub fn parse_error_body(body: &str) -> (String, String) {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str).map(cap_cluster_text);
    let error_code = text("error_code").unwrap_or_else(|| "unknown".to_string());
    let description = text("description").or_else(|| text("message")).unwrap_or_else(|| {
        let cut = cap_cluster_text(body.trim());
        if cut.is_empty() {
            "no description".to_string()
        } else {
            cut
        }
    });
    (error_code, description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_documented_spellings_of_the_error_body_are_read() {
        assert_eq!(
            parse_error_body(r#"{"error_code": "port_unavailable", "description": "port 12000 is in use"}"#),
            ("port_unavailable".to_string(), "port 12000 is in use".to_string())
        );
        assert_eq!(
            parse_error_body(r#"{"error_code": "busy", "message": "an action is running"}"#),
            ("busy".to_string(), "an action is running".to_string())
        );
        assert_eq!(
            parse_error_body("<html>bad gateway</html>"),
            ("unknown".to_string(), "<html>bad gateway</html>".to_string())
        );
    }

    #[test]
    fn a_long_description_or_code_is_cut_to_200_characters() {
        let long = "x".repeat(900_000);
        let body = serde_json::json!({"error_code": long, "description": long}).to_string();
        let (code, description) = parse_error_body(&body);
        assert_eq!(description, format!("{}…", "x".repeat(200)));
        assert_eq!(code, format!("{}…", "x".repeat(200)));
        let (_, description) = parse_error_body(&format!("<html>{}</html>", "é".repeat(1000)));
        assert_eq!(description.chars().count(), 201);
        assert_eq!(cap_cluster_text("short"), "short");
        assert_eq!(cap_cluster_text(&"y".repeat(200)), "y".repeat(200));
    }

    #[test]
    fn server_errors_and_busy_are_transient_but_validation_errors_are_not() {
        let api = |status| EnterpriseError::Api {
            endpoint: "POST /v1/bdbs".into(),
            status,
            error_code: "x".into(),
            description: "y".into(),
        };
        assert!(api(503).is_transient());
        assert!(!api(400).is_transient());
        assert_eq!(api(406).category(), "Api");
        assert!(api(404).is_not_found());
    }
}
