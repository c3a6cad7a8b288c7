//! Retention, pure: which runs of one database to prune. Keep the `keepLast` newest successful runs and drop runs
//! older than `maxAge`, but only after a new run succeeded, and never the newest successful one; failed runs do
//! not count toward `keepLast`. Nothing here deletes anything.

use chrono::{DateTime, Duration, Utc};

/// One finished run, as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedRun {
    /// The RedisBackup's name.
    pub name: String,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// When it finished (or was created, for a run without a completion time).
    pub time: DateTime<Utc>,
}

/// The retention settings of a schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep this many newest successful runs.
    pub keep_last: Option<usize>,
    /// Drop runs older than this.
    pub max_age: Option<Duration>,
}

/// The runs to prune, oldest first. `pruned_after` is the newest successful run retention was last applied after:
/// nothing is pruned until a newer run succeeded. Runs still under way are not given to this function.
pub fn runs_to_prune(
    runs: &[FinishedRun],
    policy: RetentionPolicy,
    now: DateTime<Utc>,
    pruned_after: Option<DateTime<Utc>>,
) -> Vec<String> {
    let mut successful: Vec<&FinishedRun> = runs.iter().filter(|run| run.succeeded).collect();
    successful.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
    let Some(newest) = successful.first() else {
        // Without any good backup nothing is pruned, failed runs included: they are the only record.
        return Vec::new();
    };
    if pruned_after.is_some_and(|after| newest.time <= after) {
        return Vec::new();
    }
    if policy.keep_last.is_none() && policy.max_age.is_none() {
        return Vec::new();
    }
    let too_old = |run: &FinishedRun| policy.max_age.is_some_and(|age| now - run.time > age);
    let keep_last = policy.keep_last.unwrap_or(usize::MAX).max(1);
    let mut pruned: Vec<&FinishedRun> = Vec::new();
    for (index, run) in successful.iter().enumerate() {
        if index == 0 {
            continue;
        }
        if index >= keep_last || too_old(run) {
            pruned.push(run);
        }
    }
    // The oldest successful run that stays: failed runs before it are history nobody needs; failed runs after
    // the newest success stay until they age out, so a failure is visible.
    let oldest_kept = successful
        .iter()
        .filter(|run| !pruned.iter().any(|gone| gone.name == run.name))
        .map(|run| run.time)
        .min()
        .unwrap_or(newest.time);
    for run in runs.iter().filter(|run| !run.succeeded) {
        if run.time < oldest_kept || too_old(run) {
            pruned.push(run);
        }
    }
    pruned.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.name.cmp(&b.name)));
    pruned.into_iter().map(|run| run.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, succeeded: bool, hour: i64) -> FinishedRun {
        FinishedRun {
            name: name.to_string(),
            succeeded,
            time: DateTime::UNIX_EPOCH + Duration::hours(hour),
        }
    }

    fn now(hour: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::hours(hour)
    }

    fn keep(count: usize) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: Some(count),
            max_age: None,
        }
    }

    #[test]
    fn keeps_the_newest_successful_runs_and_failed_runs_do_not_count() {
        let runs = [
            run("a", true, 1),
            run("b", true, 2),
            run("c", false, 3),
            run("d", true, 4),
            run("e", false, 5),
            run("f", true, 6),
        ];
        // keepLast 2: f and d stay; b and a go; c is older than d (the oldest kept) and goes; e stays.
        assert_eq!(runs_to_prune(&runs, keep(2), now(7), None), ["a", "b", "c"]);
    }

    #[test]
    fn never_prunes_without_a_new_success() {
        let runs = [
            run("a", true, 1),
            run("b", true, 2),
            run("c", false, 3),
            run("d", false, 4),
        ];
        // The newest success (b) was already pruned after: failures since then prune nothing.
        assert!(runs_to_prune(&runs, keep(1), now(5), Some(now(2))).is_empty());
        // Only failures: nothing at all.
        assert!(runs_to_prune(&[run("x", false, 1), run("y", false, 2)], keep(1), now(100), None).is_empty());
    }

    #[test]
    fn max_age_never_removes_the_newest_successful_run() {
        let policy = RetentionPolicy {
            keep_last: None,
            max_age: Some(Duration::hours(24)),
        };
        let runs = [run("old-good", true, 1), run("old-bad", false, 2)];
        // Everything is older than a day; the only good backup stays, the old failure goes.
        assert_eq!(runs_to_prune(&runs, policy, now(100), None), ["old-bad"]);
        let runs = [run("a", true, 1), run("b", true, 90), run("c", true, 99)];
        assert_eq!(runs_to_prune(&runs, policy, now(100), None), ["a"]);
    }

    #[test]
    fn no_policy_keeps_everything() {
        let runs = [run("a", true, 1), run("b", false, 2), run("c", true, 3)];
        assert!(runs_to_prune(&runs, RetentionPolicy::default(), now(4), None).is_empty());
    }

    #[test]
    fn keep_last_zero_still_keeps_one() {
        let runs = [run("a", true, 1), run("b", true, 2)];
        assert_eq!(runs_to_prune(&runs, keep(0), now(3), None), ["a"]);
    }
}
