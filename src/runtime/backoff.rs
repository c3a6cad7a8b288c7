//! Per-object failure backoff with jitter and rate-limit awareness, and the jittered resync interval. Pure
//! bookkeeping: no I/O.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Per-object exponential backoff for failed reconciles: `base`, 2 × `base`, 4 × `base` ... up to `max`, with up
/// to 20% jitter, reset on success. Rate-limited failures (REST 409 busy, HTTP 429) start 8 times higher.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// A backoff starting at 1 s, capped at `max`.
    pub fn new(max: Duration) -> Self {
        Self::with_base(Duration::from_secs(1), max)
    }

    /// A backoff starting at `base`, capped at `max`.
    pub fn with_base(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str, rate_limited: bool) -> Duration {
        let count = self.record(key);
        let exponent = count.saturating_sub(1).min(16) + if rate_limited { 3 } else { 0 };
        let wait = self.base.saturating_mul(1 << exponent.min(20)).min(self.max);
        // Up to 20% less, so objects that failed together do not retry together.
        wait.saturating_sub(wait.mul_f64(f64::from(jitter_seed() % 200) / 1000.0))
    }

    /// How many failures in a row `key` has now, this one included.
    fn record(&self, key: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(key.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// The periodic requeue after a successful reconcile, with up to 10% jitter: Git and the REST API are not watchable.
pub fn resync_interval(base: Duration) -> Duration {
    base + base.mul_f64(f64::from(jitter_seed() % 100) / 1000.0)
}

fn jitter_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_per_object_and_resets_on_success() {
        let backoff = Backoff::new(Duration::from_secs(300));
        let first = backoff.failed("ns/a", false);
        let second = backoff.failed("ns/a", false);
        let third = backoff.failed("ns/a", false);
        assert!(first <= Duration::from_secs(1) && first >= Duration::from_millis(800));
        assert!(second <= Duration::from_secs(2) && second >= Duration::from_millis(1600));
        assert!(third <= Duration::from_secs(4) && third >= Duration::from_millis(3200));
        // Another object has its own count.
        assert!(backoff.failed("ns/b", false) <= Duration::from_secs(1));
        backoff.succeeded("ns/a");
        assert!(backoff.failed("ns/a", false) <= Duration::from_secs(1));
        // Busy clusters wait longer from the start, and nothing exceeds the cap.
        assert!(backoff.failed("ns/c", true) >= Duration::from_millis(6400));
        for _ in 0..40 {
            assert!(backoff.failed("ns/d", false) <= Duration::from_secs(300));
        }
    }

    #[test]
    fn a_larger_base_scales_every_step() {
        let backoff = Backoff::with_base(Duration::from_secs(5), Duration::from_secs(300));
        let first = backoff.failed("ns/a", false);
        let second = backoff.failed("ns/a", false);
        assert!(first <= Duration::from_secs(5) && first >= Duration::from_secs(4));
        assert!(second <= Duration::from_secs(10) && second >= Duration::from_secs(8));
    }

    #[test]
    fn resync_adds_at_most_ten_percent() {
        let base = Duration::from_secs(100);
        let interval = resync_interval(base);
        assert!(interval >= base && interval <= Duration::from_secs(110));
    }
}
