//! Conditions in the meta/v1 shape, the one way every controller builds and merges them: `lastTransitionTime`
//! moves only when the status flips, comparisons ignore timestamps (so no-op writes are skipped), conditions of
//! other writers are kept, and the time comes from an injected [`Clock`] (design.md §5). Pure: no I/O.

use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::Condition;

/// Where the current time comes from; tests pass a fixed one.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that always says the same time (tests).
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// `now` as a condition's `lastTransitionTime` (RFC 3339, whole seconds, UTC).
pub fn rfc3339(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The status of a condition. The API type keeps it a string (the CRD schema is a plain string, and other writers
/// may send anything); this is how the agent reads and writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`, and any value that is not `True` or `False`.
    Unknown,
}

impl ConditionStatus {
    /// The status of `condition`.
    pub fn of(condition: &Condition) -> Self {
        Self::parse(&condition.status)
    }

    /// The status spelled `text` (`Unknown` for anything but `True` and `False`).
    pub fn parse(text: &str) -> Self {
        match text {
            "True" => Self::True,
            "False" => Self::False,
            _ => Self::Unknown,
        }
    }

    /// The wire spelling: `True`, `False` or `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds { Self::True } else { Self::False }
    }
}

impl std::fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition of `type_` with `status`, stamped `now`.
pub fn new_condition(
    type_: &str,
    status: impl Into<ConditionStatus>,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.into().as_str().to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: rfc3339(now),
    }
}

/// Whether the condition of `type_` in `conditions` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| ConditionStatus::of(c) == ConditionStatus::True)
}

/// The condition of `type_` in `conditions`.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// `new` with the transition time of `existing` when the status did not flip.
pub fn carry_transition_time(existing: Option<&Condition>, mut new: Condition) -> Condition {
    if let Some(existing) = existing
        && ConditionStatus::of(existing) == ConditionStatus::of(&new)
    {
        new.last_transition_time = existing.last_transition_time.clone();
    }
    new
}

/// Whether two conditions say the same, timestamps aside.
pub fn same_ignoring_time(a: &Condition, b: &Condition) -> bool {
    a.type_ == b.type_
        && ConditionStatus::of(a) == ConditionStatus::of(b)
        && a.reason == b.reason
        && a.message == b.message
        && a.observed_generation == b.observed_generation
}

/// Sets `new` in `conditions`, keeping `lastTransitionTime` from the existing condition of the same type when its
/// status did not flip; conditions of other types (other writers') stay. Returns whether anything other than
/// timestamps changed, so callers skip no-op writes.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let new = carry_transition_time(Some(existing), new);
            let changed = *existing != new;
            *existing = new;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// Removes the condition of `type_`; returns whether there was one.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::types;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conditions = vec![new_condition(types::READY, false, "Pending", "", Some(1), at(1))];
        assert!(!set_condition(
            &mut conditions,
            new_condition(types::READY, false, "Pending", "", Some(1), at(2))
        ));
        assert_eq!(conditions[0].last_transition_time, rfc3339(at(1)));
        assert!(set_condition(
            &mut conditions,
            new_condition(types::READY, false, "Waiting", "", Some(1), at(3))
        ));
        assert_eq!(conditions[0].last_transition_time, rfc3339(at(1)));
        assert!(set_condition(
            &mut conditions,
            new_condition(types::READY, true, "Created", "", Some(1), at(4))
        ));
        assert_eq!(conditions[0].last_transition_time, "1970-01-01T00:00:04Z");
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn other_writers_conditions_are_kept() {
        let mut conditions = vec![new_condition(types::SYNCED, true, "Applied", "", None, at(1))];
        set_condition(
            &mut conditions,
            new_condition(types::READY, true, "Up", "", None, at(2)),
        );
        assert_eq!(conditions.len(), 2);
        assert!(is_true(&conditions, types::SYNCED));
        assert!(remove_condition(&mut conditions, types::READY));
        assert!(!remove_condition(&mut conditions, types::READY));
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn comparison_ignores_timestamps_only() {
        let a = new_condition(types::READY, true, "Up", "m", Some(1), at(1));
        let b = new_condition(types::READY, true, "Up", "m", Some(1), at(9));
        assert!(same_ignoring_time(&a, &b));
        let c = new_condition(types::READY, true, "Up", "other", Some(1), at(1));
        assert!(!same_ignoring_time(&a, &c));
    }

    #[test]
    fn status_spellings_round_trip_and_unknown_catches_the_rest() {
        for status in [ConditionStatus::True, ConditionStatus::False, ConditionStatus::Unknown] {
            assert_eq!(ConditionStatus::parse(status.as_str()), status);
        }
        assert_eq!(ConditionStatus::parse("true"), ConditionStatus::Unknown);
        assert_eq!(ConditionStatus::from(true).to_string(), "True");
        let clock = FixedClock(at(60));
        assert_eq!(rfc3339(clock.now()), "1970-01-01T00:01:00Z");
    }
}
