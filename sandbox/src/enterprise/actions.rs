//! Async actions (reference §4.5): every bdb change runs as an action with an `action_uid` that
//! moves `pending` → `active` → `completed` | `failed` (or the other final states, `cancelled` and `aborted`),
//! with a progress percentage, readable through `GET /v1/actions/{uid}` and `GET /v1/actions`. The v1 view
//! reports `progress` as a string, as v1 clusters do; v2 as a number. Also the clock helpers for the API's
//! timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The state of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionStatus {
    /// Accepted, not started.
    Pending,
    /// Running.
    Active,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped on request before it finished (final).
    Cancelled,
    /// Stopped by the cluster before it finished (final).
    Aborted,
}

impl ActionStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Aborted => "aborted",
        }
    }

    /// Whether the action ended (no state follows).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled | Self::Aborted)
    }
}

/// A progress percentage as v1 clusters report it: a string of the number (`"100"`, `"45.5"`).
pub fn progress_text(progress: f64) -> String {
    format!("{progress}")
}

/// Whether an action is a bdb state machine (`state-machines` in `GET /v1/actions`) or a task
/// (export, import: `actions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// SMCreateBDB, SMUpdateBDB, SMDeleteBDB, SMUpgradeBDB.
    StateMachine,
    /// export, import.
    Task,
}

/// One action.
#[derive(Debug, Clone)]
pub struct Action {
    /// `action_uid`.
    pub uid: String,
    /// `name` (`SMCreateBDB`, `export`, ...).
    pub name: String,
    /// `object_name`, e.g. `bdb:1`.
    pub object_name: String,
    /// The node that runs it.
    pub node_uid: Option<u64>,
    /// State machine or task.
    pub kind: ActionKind,
    /// `status`.
    pub status: ActionStatus,
    /// `progress`, 0–100.
    pub progress: f64,
    /// The failure, when `failed`.
    pub error: Option<String>,
    /// When it was created (ISO 8601).
    pub creation_time: String,
}

impl Action {
    /// A new pending action.
    pub fn new(uid: String, name: &str, object_name: String, kind: ActionKind) -> Self {
        Self {
            uid,
            name: name.to_string(),
            object_name,
            node_uid: None,
            kind,
            status: ActionStatus::Pending,
            progress: 0.0,
            error: None,
            creation_time: iso8601(SystemTime::now()),
        }
    }

    /// The `GET /v1/actions/{uid}` view.
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "action_uid": self.uid,
            "name": self.name,
            "object_name": self.object_name,
            "status": self.status.as_str(),
            "progress": progress_text(self.progress),
            "creation_time": self.creation_time,
        });
        if let Some(node_uid) = self.node_uid {
            value["node_uid"] = json!(node_uid.to_string());
        }
        if let Some(error) = &self.error {
            value["error"] = json!(error);
        }
        value
    }
}

impl Action {
    /// The `GET /v2/actions/{uid}` view.
    pub fn to_json_v2(&self) -> Value {
        let (object_type, object_uid) = self
            .object_name
            .split_once(':')
            .unwrap_or((self.object_name.as_str(), ""));
        let status = match self.status {
            ActionStatus::Pending => "queued",
            ActionStatus::Active => "running",
            ActionStatus::Completed => "completed",
            ActionStatus::Failed => "failed",
            ActionStatus::Cancelled => "cancelled",
            ActionStatus::Aborted => "aborted",
        };
        let mut info = json!({
            "description": format!("{} of {}", self.name, self.object_name),
            "object_type": object_type,
            "object_uid": object_uid,
        });
        if let Some(error) = &self.error {
            info["error"] = json!(error);
        }
        json!({
            "action_uid": self.uid,
            "action_type": match self.kind {
                ActionKind::StateMachine => "state-machine",
                ActionKind::Task => "task",
            },
            "creation_time": self.creation_time,
            "name": self.name,
            "progress": self.progress,
            "status": status,
            "additional_info": info,
        })
    }
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn iso8601(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn v1_progress_is_a_string_v2_a_number_and_every_end_is_final() {
        let mut action = Action::new("a1".into(), "SMUpdateBDB", "bdb:1".into(), ActionKind::StateMachine);
        action.progress = 100.0;
        action.status = ActionStatus::Cancelled;
        assert_eq!(action.to_json()["progress"], json!("100"));
        assert_eq!(action.to_json()["status"], json!("cancelled"));
        assert_eq!(action.to_json_v2()["progress"], json!(100.0));
        assert_eq!(action.to_json_v2()["status"], json!("cancelled"));
        action.progress = 45.5;
        assert_eq!(action.to_json()["progress"], json!("45.5"));
        let finals: Vec<&str> = [
            ActionStatus::Pending,
            ActionStatus::Active,
            ActionStatus::Completed,
            ActionStatus::Failed,
            ActionStatus::Cancelled,
            ActionStatus::Aborted,
        ]
        .into_iter()
        .filter(|status| status.is_final())
        .map(ActionStatus::as_str)
        .collect();
        assert_eq!(finals, ["completed", "failed", "cancelled", "aborted"]);
    }

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661);
        assert_eq!(iso8601(leap_day), "2000-02-29T01:01:01Z");
        let late = UNIX_EPOCH + Duration::from_secs(1_795_996_799);
        assert_eq!(iso8601(late), "2026-11-29T23:59:59Z");
    }
}
