//! A log of the REST requests the emulator received, so tests can assert which writes a controller made
//! ("exactly one PUT with exactly the changed fields", "no writes on resync"). Password-bearing fields are
//! replaced by `<redacted>` before anything is stored.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Body fields whose values are never stored.
const SECRET_FIELDS: [&str; 11] = [
    "password",
    "authentication_redis_pass",
    "authentication_sasl_pass",
    "credentials",
    "license",
    "access_key_id",
    "secret_access_key",
    "private_key",
    "account_key",
    "sas_token",
    "key",
];

/// One request as the emulator received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method, for example `PUT`.
    pub method: String,
    /// Path without the query, for example `/v1/bdbs/1`.
    pub path: String,
    /// The JSON body (`Null` when there was none), secrets redacted.
    pub body: Value,
}

impl RecordedRequest {
    /// Whether the request may change state (anything but GET and HEAD).
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

/// The shared log of one emulator. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<RecordedRequest>>>,
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if SECRET_FIELDS.contains(&key.as_str()) {
                    *field = Value::String("<redacted>".to_string());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

impl RequestLog {
    /// Records a request; the body is parsed as JSON when it is JSON and redacted.
    pub(crate) fn record(&self, method: &str, path: &str, body: &[u8]) {
        let mut body = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(body).unwrap_or_else(|_| Value::String("<not JSON>".to_string()))
        };
        redact(&mut body);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RecordedRequest {
                method: method.to_string(),
                path: path.to_string(),
                body,
            });
    }

    /// Every request since the start or the last [`Self::clear`], oldest first.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passwords_are_redacted_and_reads_are_not_writes() {
        let log = RequestLog::default();
        log.record(
            "POST",
            "/v1/bdbs",
            br#"{"name": "a", "authentication_redis_pass": "hunter2", "backup_location": {"secret_access_key": "x"}}"#,
        );
        log.record("GET", "/v1/bdbs/1", b"");
        let all = log.all();
        assert_eq!(
            all[0].body,
            json!({"name": "a", "authentication_redis_pass": "<redacted>", "backup_location": {"secret_access_key": "<redacted>"}})
        );
        assert!(all[0].is_write() && !all[1].is_write());
        assert_eq!(all[1].body, Value::Null);
        log.clear();
        assert!(log.all().is_empty());
    }
}
