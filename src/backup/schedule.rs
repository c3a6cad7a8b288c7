//! Schedule maths, pure: cron expressions (5 fields, an optional seconds field, `@daily` macros) read in an IANA
//! time zone, the slots that are due at `now` (one catch-up run after downtime, older slots missed, a starting
//! deadline), and the stable per-database jitter. `now` is always a parameter; nothing here reads a clock.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The most slots looked at in one decision: a per-second schedule after a long downtime must not loop for long.
const MAX_SLOTS: usize = 10_000;

/// A schedule that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression is not valid.
    #[error(
        "invalid cron expression {expression:?}: {reason}; use 5 fields (`minute hour day-of-month month \
         day-of-week`, for example `0 3 * * *`), 6 with seconds first, or a macro such as `@daily`"
    )]
    Cron {
        /// The expression.
        expression: String,
        /// What the parser said.
        reason: String,
    },
    /// The time zone is not an IANA name.
    #[error("unknown time zone {name:?}; use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`")]
    TimeZone {
        /// The name.
        name: String,
    },
    /// The expression has no slot in the future.
    #[error("cron expression {expression:?} never fires")]
    NeverFires {
        /// The expression.
        expression: String,
    },
}

/// A parsed schedule: a cron expression over the wall clock of a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: cron::Schedule,
    zone: Tz,
}

/// Parses `expression` in `time_zone` (an IANA name; `None` is UTC).
pub fn parse(expression: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
    let zone = match time_zone {
        None => Tz::UTC,
        Some(name) => Tz::from_str(name).map_err(|_| ScheduleError::TimeZone { name: name.to_string() })?,
    };
    let cron_error = |reason: String| ScheduleError::Cron {
        expression: expression.to_string(),
        reason,
    };
    let trimmed = expression.trim();
    let normalized = if trimmed.starts_with('@') {
        trimmed.to_string()
    } else {
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        match fields.len() {
            5 => format!("0 {} {}", fields[..4].join(" "), day_of_week(fields[4])),
            6 => format!("{} {}", fields[..5].join(" "), day_of_week(fields[5])),
            count => return Err(cron_error(format!("it has {count} fields, not 5 or 6"))),
        }
    };
    let cron = cron::Schedule::from_str(&normalized).map_err(|error| cron_error(error.to_string()))?;
    let schedule = Schedule { cron, zone };
    if schedule.slots_after(DateTime::UNIX_EPOCH).next().is_none() {
        return Err(ScheduleError::NeverFires {
            expression: expression.to_string(),
        });
    }
    Ok(schedule)
}

/// A day-of-week field with standard cron numbers (0 and 7 Sunday, 1 Monday) written as names, which the `cron`
/// crate reads the same way (its own numbers start at 1 for Sunday). Steps (`/2`) stay numbers.
fn day_of_week(field: &str) -> String {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    field
        .split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            let range = range
                .split('-')
                .map(|part| match part.parse::<usize>() {
                    Ok(number) if number < NAMES.len() => NAMES[number].to_string(),
                    _ => part.to_string(),
                })
                .collect::<Vec<_>>()
                .join("-");
            match step {
                Some(step) => format!("{range}/{step}"),
                None => range,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Schedule {
    /// The time zone the schedule is read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The slots strictly after `after`, in order, as instants. Cron runs over the zone's wall clock: a wall time
    /// that happens twice (autumn) is one slot, at its first occurrence; a wall time that does not exist (spring)
    /// runs at the instant the clock jumps over it, as cron daemons do, instead of being skipped.
    pub fn slots_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        // The wall clock as if it were UTC; starting a few hours early covers a wall time that repeats.
        let wall = after.with_timezone(&self.zone).naive_local() - Duration::hours(3);
        let mut last: Option<DateTime<Utc>> = None;
        self.cron
            .after_owned(Utc.from_utc_datetime(&wall))
            .map(|fake| self.instant(fake.naive_utc()))
            .filter(move |slot| {
                if *slot <= after || last.is_some_and(|last| *slot <= last) {
                    return false;
                }
                last = Some(*slot);
                true
            })
    }

    /// The instant of a wall time in the zone.
    fn instant(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(time) => time.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => {
                // In a gap: the offset before the gap applies, which lands just past it.
                let before = self.zone.from_local_datetime(&(wall - Duration::hours(3))).earliest();
                match before {
                    Some(before) => {
                        let offset = before.naive_local() - before.naive_utc();
                        Utc.from_utc_datetime(&(wall - offset))
                    }
                    None => Utc.from_utc_datetime(&wall),
                }
            }
        }
    }
}

/// What to do for one database at `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotDecision {
    /// The slot to run now (the latest due one), if any.
    pub run: Option<DateTime<Utc>>,
    /// Slots that will not run: older due slots (one catch-up run, never a storm) and a latest slot past the
    /// starting deadline.
    pub missed: u64,
    /// The latest slot decided (run or missed): the next decision starts after it.
    pub decided: Option<DateTime<Utc>>,
    /// When the next slot of this database is due (its slot plus the jitter offset).
    pub next_due: Option<DateTime<Utc>>,
    /// The next slot itself, before jitter.
    pub next_slot: Option<DateTime<Utc>>,
}

/// Decides the slots after `since` (the last decided slot, or when the schedule was created or resumed) for a
/// database whose runs start `offset` after each slot: the latest slot due by `now` runs unless it is more than
/// `deadline` late; every older due slot is missed.
pub fn decide(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    deadline: Option<Duration>,
    offset: Duration,
) -> SlotDecision {
    // Slots from `from` on: how many are due, the latest due one, the next one; `None` when there are too many.
    let scan = |from: DateTime<Utc>| {
        let mut due = 0u64;
        let mut latest = None;
        for slot in schedule.slots_after(from).take(MAX_SLOTS) {
            if slot + offset > now {
                return Some((due, latest, Some(slot)));
            }
            due += 1;
            latest = Some(slot);
        }
        (due < MAX_SLOTS as u64).then_some((due, latest, None))
    };
    let (mut due, mut latest, mut next_slot) = (0u64, None, None);
    match scan(since) {
        Some(found) => (due, latest, next_slot) = found,
        None => {
            // So many slots passed that counting them all is not worth it: at least MAX_SLOTS were missed, and the
            // latest due one is found from a short window before `now`.
            for window in [
                Duration::days(1),
                Duration::hours(1),
                Duration::minutes(1),
                Duration::seconds(2),
            ] {
                if let Some((_, found_latest, found_next)) = scan((now - offset - window).max(since)) {
                    (due, latest, next_slot) = (MAX_SLOTS as u64 + 1, found_latest, found_next);
                    break;
                }
            }
        }
    }
    let mut missed = due.saturating_sub(1);
    let run = match latest {
        Some(slot) if deadline.is_some_and(|deadline| now - (slot + offset) > deadline) => {
            missed += 1;
            None
        }
        other => other,
    };
    SlotDecision {
        run,
        missed,
        decided: latest,
        next_due: next_slot.map(|slot| slot + offset),
        next_slot,
    }
}

/// The stable jitter offset of one database in a schedule: the same at every slot and on every agent, spread
/// evenly over `0..=max_seconds`, derived from the namespace, schedule and database names.
pub fn jitter_offset(namespace: &str, schedule: &str, database: &str, max_seconds: i64) -> Duration {
    use sha2::Digest;
    if max_seconds <= 0 {
        return Duration::zero();
    }
    let digest = sha2::Sha256::digest(format!("{namespace}/{schedule}/{database}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let spread = max_seconds.unsigned_abs() + 1;
    Duration::seconds((u64::from_le_bytes(bytes) % spread) as i64)
}

/// The name of the RedisBackup of `database` at `slot` of `schedule`: `<schedule>-<database>-<YYYYMMDDhhmmss>`
/// in UTC, so a restarted agent finds the run it started. Long names are cut and made unique with a hash, within
/// the 63 characters a label value (and a directory name) allows.
pub fn run_name(schedule: &str, database: &str, slot: DateTime<Utc>) -> String {
    use sha2::Digest;
    let stamp = slot.format("%Y%m%d%H%M%S").to_string();
    let full = format!("{schedule}-{database}-{stamp}");
    if full.len() <= 63 {
        return full;
    }
    let digest = sha2::Sha256::digest(format!("{schedule}/{database}").as_bytes());
    let hash: String = digest[..4].iter().map(|byte| format!("{byte:02x}")).collect();
    let prefix: String = format!("{schedule}-{database}")
        .chars()
        .take(63 - 1 - 8 - 1 - 14)
        .collect();
    format!("{}-{hash}-{stamp}", prefix.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_else(|error| panic!("bad test time {text}: {error}"))
    }

    fn schedule(expression: &str, zone: Option<&str>) -> Schedule {
        parse(expression, zone).unwrap_or_else(|error| panic!("{expression}: {error}"))
    }

    fn slots(schedule: &Schedule, after: &str, count: usize) -> Vec<String> {
        schedule
            .slots_after(at(after))
            .take(count)
            .map(|slot| slot.to_rfc3339())
            .collect()
    }

    #[test]
    fn expressions_with_five_or_six_fields_and_macros_parse() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "0 3 * * *",
                "2026-01-01T00:00:00Z",
                &["2026-01-01T03:00:00+00:00", "2026-01-02T03:00:00+00:00"],
            ),
            (
                "*/15 * * * * *",
                "2026-01-01T00:00:00Z",
                &["2026-01-01T00:00:15+00:00", "2026-01-01T00:00:30+00:00"],
            ),
            ("@daily", "2026-01-01T12:00:00Z", &["2026-01-02T00:00:00+00:00"]),
            ("@hourly", "2026-01-01T12:30:00Z", &["2026-01-01T13:00:00+00:00"]),
            // Standard day-of-week numbers: 0 is Sunday (2026-01-04 is a Sunday), 1-5 Monday to Friday.
            ("0 0 * * 0", "2026-01-01T00:00:00Z", &["2026-01-04T00:00:00+00:00"]),
            ("0 0 * * 7", "2026-01-01T00:00:00Z", &["2026-01-04T00:00:00+00:00"]),
            ("0 0 * * 1-5", "2026-01-02T12:00:00Z", &["2026-01-05T00:00:00+00:00"]),
        ];
        for (expression, after, expected) in cases {
            assert_eq!(
                slots(&schedule(expression, None), after, expected.len()),
                *expected,
                "{expression}"
            );
        }
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_the_reason() {
        assert!(
            matches!(parse("0 3 * *", None), Err(ScheduleError::Cron { reason, .. }) if reason == "it has 4 fields, not 5 or 6")
        );
        assert!(matches!(parse("61 * * * *", None), Err(ScheduleError::Cron { .. })));
        assert!(matches!(parse("@sometimes", None), Err(ScheduleError::Cron { .. })));
        assert_eq!(
            parse("0 3 * * *", Some("Mars/Olympus")).err(),
            Some(ScheduleError::TimeZone {
                name: "Mars/Olympus".to_string()
            })
        );
        assert!(parse("0 3 * * *", Some("Europe/Berlin")).is_ok());
    }

    #[test]
    fn daylight_saving_time_runs_each_wall_time_once() {
        let berlin = schedule("30 2 * * *", Some("Europe/Berlin"));
        // Spring: 02:30 does not exist on 2026-03-29 (02:00 CET → 03:00 CEST): it runs when the clock jumps.
        assert_eq!(
            slots(&berlin, "2026-03-27T12:00:00Z", 3),
            [
                "2026-03-28T01:30:00+00:00",
                "2026-03-29T01:30:00+00:00",
                "2026-03-30T00:30:00+00:00"
            ]
        );
        // Autumn: 02:30 happens twice on 2026-10-25; one run, at the first.
        assert_eq!(
            slots(&berlin, "2026-10-24T12:00:00Z", 3),
            [
                "2026-10-25T00:30:00+00:00",
                "2026-10-26T01:30:00+00:00",
                "2026-10-27T01:30:00+00:00"
            ]
        );
        // Hourly across the autumn change: the repeated hour runs once.
        let hourly = schedule("0 * * * *", Some("Europe/Berlin"));
        assert_eq!(
            slots(&hourly, "2026-10-24T23:30:00Z", 4),
            [
                "2026-10-25T00:00:00+00:00",
                "2026-10-25T02:00:00+00:00",
                "2026-10-25T03:00:00+00:00",
                "2026-10-25T04:00:00+00:00"
            ]
        );
        // Starting inside the repeated hour does not run its slot again.
        assert_eq!(slots(&hourly, "2026-10-25T01:30:00Z", 1), ["2026-10-25T02:00:00+00:00"]);
    }

    #[test]
    fn decisions_run_the_latest_due_slot_and_count_the_rest_as_missed() {
        let every_minute = schedule("* * * * *", None);
        struct Case {
            name: &'static str,
            since: &'static str,
            now: &'static str,
            deadline: Option<i64>,
            offset: i64,
            run: Option<&'static str>,
            missed: u64,
            next_due: &'static str,
        }
        let cases = [
            Case {
                name: "nothing due yet",
                since: "2026-01-01T00:00:00Z",
                now: "2026-01-01T00:00:59Z",
                deadline: None,
                offset: 0,
                run: None,
                missed: 0,
                next_due: "2026-01-01T00:01:00+00:00",
            },
            Case {
                name: "one slot due",
                since: "2026-01-01T00:00:00Z",
                now: "2026-01-01T00:01:05Z",
                deadline: None,
                offset: 0,
                run: Some("2026-01-01T00:01:00+00:00"),
                missed: 0,
                next_due: "2026-01-01T00:02:00+00:00",
            },
            Case {
                name: "after an hour down: one catch-up run, 59 missed",
                since: "2026-01-01T00:00:00Z",
                now: "2026-01-01T01:00:30Z",
                deadline: None,
                offset: 0,
                run: Some("2026-01-01T01:00:00+00:00"),
                missed: 59,
                next_due: "2026-01-01T01:01:00+00:00",
            },
            Case {
                name: "within the starting deadline",
                since: "2026-01-01T00:00:00Z",
                now: "2026-01-01T00:01:20Z",
                deadline: Some(30),
                offset: 0,
                run: Some("2026-01-01T00:01:00+00:00"),
                missed: 0,
                next_due: "2026-01-01T00:02:00+00:00",
            },
            Case {
                name: "past the starting deadline: missed, not run",
                since: "2026-01-01T00:00:00Z",
                now: "2026-01-01T00:01:40Z",
                deadline: Some(30),
                offset: 0,
                run: None,
                missed: 1,
                next_due: "2026-01-01T00:02:00+00:00",
            },
            Case {
                name: "jitter delays the run by the offset",
                since: "2026-01-01T00:00:00Z",
                now: "2026-01-01T00:01:10Z",
                deadline: None,
                offset: 20,
                run: None,
                missed: 0,
                next_due: "2026-01-01T00:01:20+00:00",
            },
            Case {
                name: "the deadline counts from the jittered start",
                since: "2026-01-01T00:00:00Z",
                now: "2026-01-01T00:01:45Z",
                deadline: Some(30),
                offset: 20,
                run: Some("2026-01-01T00:01:00+00:00"),
                missed: 0,
                next_due: "2026-01-01T00:02:20+00:00",
            },
        ];
        for case in cases {
            let decision = decide(
                &every_minute,
                at(case.since),
                at(case.now),
                case.deadline.map(Duration::seconds),
                Duration::seconds(case.offset),
            );
            assert_eq!(
                decision.run.map(|slot| slot.to_rfc3339()).as_deref(),
                case.run,
                "{}",
                case.name
            );
            assert_eq!(decision.missed, case.missed, "{}", case.name);
            assert_eq!(
                decision.next_due.map(|slot| slot.to_rfc3339()).as_deref(),
                Some(case.next_due),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn a_resumed_schedule_decides_from_the_resume_time_and_fires_no_surprise_run() {
        // Suspended from 00:00 to 05:00: the controller moves `since` to the resume time, so the hourly slots
        // passed while suspended neither run nor count as missed.
        let hourly = schedule("0 * * * *", None);
        let decision = decide(
            &hourly,
            at("2026-01-01T05:00:10Z"),
            at("2026-01-01T05:00:20Z"),
            None,
            Duration::zero(),
        );
        assert_eq!(decision.run, None);
        assert_eq!(decision.missed, 0);
        assert_eq!(decision.next_due, Some(at("2026-01-01T06:00:00Z")));
    }

    #[test]
    fn a_very_long_downtime_is_decided_quickly() {
        let every_second = schedule("* * * * * *", None);
        let decision = decide(
            &every_second,
            at("2025-01-01T00:00:00Z"),
            at("2026-01-01T00:00:00.500Z"),
            None,
            Duration::zero(),
        );
        assert_eq!(decision.run, Some(at("2026-01-01T00:00:00Z")));
        assert!(decision.missed >= 10_000, "missed {}", decision.missed);
    }

    #[test]
    fn jitter_is_stable_per_database_and_within_bounds() {
        let first = jitter_offset("prod", "nightly", "cache", 600);
        assert_eq!(first, jitter_offset("prod", "nightly", "cache", 600));
        assert!(first >= Duration::zero() && first <= Duration::seconds(600));
        let offsets: std::collections::BTreeSet<i64> = (0..20)
            .map(|index| jitter_offset("prod", "nightly", &format!("db-{index}"), 600).num_seconds())
            .collect();
        assert!(offsets.len() > 10, "offsets are spread: {offsets:?}");
        assert_eq!(jitter_offset("prod", "nightly", "cache", 0), Duration::zero());
    }

    #[test]
    fn run_names_are_stable_and_fit_a_label() {
        let slot = at("2026-01-02T03:04:05Z");
        assert_eq!(run_name("nightly", "cache", slot), "nightly-cache-20260102030405");
        let long = run_name(&"s".repeat(40), &"d".repeat(40), slot);
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-20260102030405"), "{long}");
        assert_eq!(long, run_name(&"s".repeat(40), &"d".repeat(40), slot));
        assert_ne!(long, run_name(&"s".repeat(40), &"e".repeat(40), slot));
    }
}
