//! Fault injection for tests: fail the next N requests matching a method and path prefix with a chosen
//! status, delay matching responses, and (through the store) drop every open watch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::ApiError;

#[derive(Debug, Clone)]
struct FailRule {
    method: Option<String>,
    path_prefix: String,
    remaining: usize,
    code: u16,
    message: String,
}

#[derive(Debug, Clone)]
struct DelayRule {
    method: Option<String>,
    path_prefix: String,
    delay: Duration,
}

#[derive(Debug, Default)]
struct Rules {
    failures: Vec<FailRule>,
    delays: Vec<DelayRule>,
}

/// Shared fault rules, checked by the HTTP layer before each request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Rules>>,
}

fn method_matches(rule: &Option<String>, method: &str) -> bool {
    rule.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
}

impl Faults {
    /// Makes the next `count` requests with this method (`None`: any) whose path starts with `path_prefix`
    /// fail with HTTP `code` and a Status body carrying `message`.
    pub fn fail_next(&self, method: Option<&str>, path_prefix: &str, count: usize, code: u16, message: &str) {
        self.lock().failures.push(FailRule {
            method: method.map(str::to_string),
            path_prefix: path_prefix.to_string(),
            remaining: count,
            code,
            message: message.to_string(),
        });
    }

    /// Delays every matching request by `delay` until `clear` is called.
    pub fn delay(&self, method: Option<&str>, path_prefix: &str, delay: Duration) {
        self.lock().delays.push(DelayRule {
            method: method.map(str::to_string),
            path_prefix: path_prefix.to_string(),
            delay,
        });
    }

    /// Removes every failure and delay rule.
    pub fn clear(&self) {
        let mut rules = self.lock();
        rules.failures.clear();
        rules.delays.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The delay and injected error for one request (consumes one count of the first matching failure rule).
    pub fn check(&self, method: &str, path: &str) -> (Option<Duration>, Option<ApiError>) {
        let mut rules = self.lock();
        let delay = rules
            .delays
            .iter()
            .filter(|d| method_matches(&d.method, method) && path.starts_with(&d.path_prefix))
            .map(|d| d.delay)
            .max();
        let mut error = None;
        if let Some(rule) = rules
            .failures
            .iter_mut()
            .find(|r| r.remaining > 0 && method_matches(&r.method, method) && path.starts_with(&r.path_prefix))
        {
            rule.remaining -= 1;
            error = Some(ApiError::Injected {
                code: rule.code,
                message: rule.message.clone(),
            });
        }
        rules.failures.retain(|r| r.remaining > 0);
        (delay, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_rule_is_consumed() {
        let faults = Faults::default();
        faults.fail_next(Some("GET"), "/api/v1/pods", 1, 503, "boom");
        assert!(faults.check("POST", "/api/v1/pods").1.is_none());
        assert_eq!(faults.check("GET", "/api/v1/pods?x").1.map(|e| e.code()), Some(503));
        assert!(faults.check("GET", "/api/v1/pods").1.is_none());
    }
}
