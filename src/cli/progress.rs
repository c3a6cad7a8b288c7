//! Progress of `sandbox --once` while it waits, on standard error (standard output keeps only the summary table, for
//! scripts): on a terminal one line refreshed in place with a carriage return, otherwise a line every few seconds and
//! whenever the counts change. It only formats and writes; no escape sequences, so `NO_COLOR` has nothing to strip.

use std::io::Write;
use std::time::{Duration, Instant};

use super::settle::{Outcome, Summary};

/// How often a line is written when standard error is not a terminal (and nothing changed).
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// How many objects each state holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Ready for their current generation.
    pub ready: usize,
    /// Still being worked on.
    pub reconciling: usize,
    /// Stalled: they need a change.
    pub stalled: usize,
}

impl Counts {
    /// The counts of the objects of `summary` (the GitSync itself is not counted).
    pub fn of(summary: &Summary) -> Self {
        let mut counts = Self::default();
        for object in &summary.objects {
            match object.outcome {
                Outcome::Ready => counts.ready += 1,
                Outcome::InProgress => counts.reconciling += 1,
                Outcome::Failed => counts.stalled += 1,
            }
        }
        counts
    }

    /// All objects.
    pub fn total(&self) -> usize {
        self.ready + self.reconciling + self.stalled
    }
}

/// The progress line for `summary` after `elapsed`: the GitSync while it has not applied its revision, then the
/// counts of its objects.
pub fn line(summary: &Summary, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    if summary.gitsync.outcome != Outcome::Ready && summary.objects.is_empty() {
        let detail = match (
            summary.gitsync.reason.is_empty(),
            summary.gitsync.message.lines().next(),
        ) {
            (false, Some(message)) if !message.is_empty() => format!("{}: {message}", summary.gitsync.reason),
            (false, _) => summary.gitsync.reason.clone(),
            (true, message) => message.unwrap_or_default().to_string(),
        };
        return format!(
            "waiting {seconds}s: GitSync {}/{} {detail}",
            summary.gitsync.namespace, summary.gitsync.name
        );
    }
    let counts = Counts::of(summary);
    format!(
        "waiting {seconds}s: {}/{} objects Ready, {} reconciling, {} stalled",
        counts.ready,
        counts.total(),
        counts.reconciling,
        counts.stalled
    )
}

/// Writes progress lines to standard error.
pub struct Reporter {
    terminal: bool,
    started: Instant,
    last: Option<(Instant, String)>,
    /// Width of the line on screen, blanked by the next refresh.
    shown: usize,
}

impl Reporter {
    /// A reporter refreshing in place when `terminal` (standard error is one), line by line otherwise.
    pub fn new(terminal: bool) -> Self {
        Self {
            terminal,
            started: Instant::now(),
            last: None,
            shown: 0,
        }
    }

    /// A reporter for this process's standard error.
    pub fn for_stderr() -> Self {
        Self::new(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    }

    /// What to write for `summary` now, if anything: every poll on a terminal; otherwise when the counts changed
    /// (the seconds aside) or [`LINE_INTERVAL`] passed.
    pub fn next(&mut self, summary: &Summary, now: Instant) -> Option<String> {
        let text = line(summary, now.saturating_duration_since(self.started));
        let counts = text
            .split_once(": ")
            .map(|(_, counts)| counts.to_string())
            .unwrap_or_default();
        let due = match &self.last {
            None => true,
            Some((at, previous)) => {
                self.terminal || *previous != counts || now.saturating_duration_since(*at) >= LINE_INTERVAL
            }
        };
        if !due {
            return None;
        }
        self.last = Some((now, counts));
        if self.terminal {
            let width = text.chars().count();
            let pad = self.shown.saturating_sub(width);
            self.shown = width;
            Some(format!("\r{text}{}", " ".repeat(pad)))
        } else {
            Some(format!("{text}\n"))
        }
    }

    /// Reports `summary` on standard error (errors writing it are ignored: progress is a courtesy).
    pub fn report(&mut self, summary: &Summary) {
        if let Some(text) = self.next(summary, Instant::now()) {
            let mut stderr = std::io::stderr();
            let _ = stderr.write_all(text.as_bytes());
            let _ = stderr.flush();
        }
    }

    /// Ends the in-place line on a terminal so that what follows starts on a line of its own.
    pub fn finish(&mut self) {
        if self.terminal && self.shown > 0 {
            let _ = writeln!(std::io::stderr());
            self.shown = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::settle::ObjectSummary;

    fn object(name: &str, outcome: Outcome) -> ObjectSummary {
        ObjectSummary {
            kind: "RedisEnterpriseDatabase".into(),
            namespace: "prod".into(),
            name: name.into(),
            outcome,
            reason: "Reason".into(),
            message: String::new(),
        }
    }

    fn summary(objects: Vec<ObjectSummary>) -> Summary {
        Summary {
            gitsync: ObjectSummary {
                kind: "GitSync".into(),
                ..object("sandbox", Outcome::Ready)
            },
            revision: Some("main@sha1:abc".into()),
            objects,
            timed_out: false,
        }
    }

    #[test]
    fn the_line_counts_each_state() {
        let summary = summary(vec![
            object("a", Outcome::Ready),
            object("b", Outcome::InProgress),
            object("c", Outcome::Failed),
            object("d", Outcome::Ready),
        ]);
        assert_eq!(
            line(&summary, Duration::from_secs(7)),
            "waiting 7s: 2/4 objects Ready, 1 reconciling, 1 stalled"
        );
        let mut waiting = self::summary(Vec::new());
        waiting.gitsync.outcome = Outcome::InProgress;
        waiting.gitsync.reason = "Progressing".into();
        waiting.gitsync.message = "fetching".into();
        assert_eq!(
            line(&waiting, Duration::ZERO),
            "waiting 0s: GitSync prod/sandbox Progressing: fetching"
        );
    }

    #[test]
    fn off_a_terminal_a_line_every_few_seconds_or_on_change() {
        let mut reporter = Reporter::new(false);
        let start = reporter.started;
        let before = summary(vec![object("a", Outcome::InProgress)]);
        assert!(reporter.next(&before, start).is_some());
        // Same counts a second later: nothing.
        assert_eq!(reporter.next(&before, start + Duration::from_secs(1)), None);
        // Changed counts: a line at once.
        let after = summary(vec![object("a", Outcome::Ready)]);
        assert_eq!(
            reporter.next(&after, start + Duration::from_secs(2)).as_deref(),
            Some("waiting 2s: 1/1 objects Ready, 0 reconciling, 0 stalled\n")
        );
        // Unchanged, but the interval passed.
        assert!(reporter.next(&after, start + Duration::from_secs(8)).is_some());
    }

    #[test]
    fn on_a_terminal_the_line_is_redrawn_in_place_without_escape_codes() {
        let mut reporter = Reporter::new(true);
        let start = reporter.started;
        let many = summary(
            (0..12)
                .map(|i| object(&format!("db{i}"), Outcome::InProgress))
                .collect(),
        );
        let first = reporter.next(&many, start).expect("drawn");
        assert!(first.starts_with("\rwaiting 0s: 0/12 objects Ready"));
        let few = summary(vec![object("a", Outcome::Ready)]);
        let second = reporter.next(&few, start + Duration::from_secs(1)).expect("redrawn");
        // The shorter line blanks what is left of the longer one.
        assert_eq!(second.chars().count(), first.chars().count());
        assert!(!first.contains('\u{1b}') && !second.contains('\u{1b}'));
    }
}
