//! Fault injection for tests: make the next N REST requests that match a method and path prefix fail
//! with a given status and error body, or answer only after a delay (to provoke client timeouts), and
//! hold async actions in `active` until released (to observe 409 `busy` deterministically).
//! Killing a database's process is on [`super::EnterpriseEmulator::kill_database_process`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use tokio::sync::watch;

use super::error::ApiError;

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this error instead of running the request.
    Fail(ApiError),
    /// Run the request, but only after this delay.
    Delay(Duration),
}

/// One rule: the next `remaining` requests matching `method` and `path_prefix` get `action`.
#[derive(Debug, Clone)]
struct FaultRule {
    method: Option<Method>,
    path_prefix: String,
    remaining: usize,
    action: FaultAction,
}

/// The fault handle shared by every listener of one emulator. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Faults {
    rules: Arc<Mutex<Vec<FaultRule>>>,
    hold_actions: watch::Sender<bool>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Arc::default(),
            hold_actions: watch::Sender::new(false),
        }
    }
}

impl Faults {
    fn add(&self, method: Option<Method>, path_prefix: &str, count: usize, action: FaultAction) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).push(FaultRule {
            method,
            path_prefix: path_prefix.to_string(),
            remaining: count,
            action,
        });
    }

    /// The next `count` requests (`method`, or any method when `None`) whose path starts with
    /// `path_prefix` fail with `status` and the body `{"error_code", "description"}`.
    pub fn fail_next(
        &self,
        method: Option<Method>,
        path_prefix: &str,
        count: usize,
        status: StatusCode,
        error_code: &str,
    ) {
        let error = ApiError::new(
            status,
            error_code,
            format!("fault injected by the test on {path_prefix}"),
        );
        self.add(method, path_prefix, count, FaultAction::Fail(error));
    }

    /// The next `count` matching requests get 409 `busy`, as RS answers while a database changes.
    pub fn busy_next(&self, method: Option<Method>, path_prefix: &str, count: usize) {
        self.fail_next(method, path_prefix, count, StatusCode::CONFLICT, "busy");
    }

    /// The next `count` matching requests are answered only after `delay`.
    pub fn delay_next(&self, method: Option<Method>, path_prefix: &str, count: usize, delay: Duration) {
        self.add(method, path_prefix, count, FaultAction::Delay(delay));
    }

    /// Forgets every pending rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// While held, every async action stops at `active` (progress 10) and its database stays busy.
    pub fn hold_actions(&self, hold: bool) {
        self.hold_actions.send_replace(hold);
    }

    /// Waits until actions are not held.
    pub(crate) async fn wait_actions_released(&self) {
        let mut receiver = self.hold_actions.subscribe();
        // An error means the sender is gone: nothing can hold actions any more.
        let _ = receiver.wait_for(|held| !*held).await;
    }

    /// The action for this request, consuming one use of the first matching rule.
    pub(crate) fn take(&self, method: &Method, path: &str) -> Option<FaultAction> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let index = rules.iter().position(|rule| {
            rule.remaining > 0
                && rule.method.as_ref().is_none_or(|m| m == method)
                && path.starts_with(&rule.path_prefix)
        })?;
        let rule = &mut rules[index];
        rule.remaining -= 1;
        let action = rule.action.clone();
        if rule.remaining == 0 {
            rules.remove(index);
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_used_up_in_order() {
        let faults = Faults::default();
        faults.fail_next(
            Some(Method::GET),
            "/v1/bdbs",
            2,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
        );
        assert_eq!(faults.take(&Method::PUT, "/v1/bdbs/1"), None);
        assert_eq!(faults.take(&Method::GET, "/v1/nodes"), None);
        for _ in 0..2 {
            match faults.take(&Method::GET, "/v1/bdbs/1") {
                Some(FaultAction::Fail(error)) => {
                    assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR)
                }
                other => panic!("expected a failure, got {other:?}"),
            }
        }
        assert_eq!(faults.take(&Method::GET, "/v1/bdbs/1"), None);
    }
}
