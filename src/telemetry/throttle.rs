//! Log lines for failures that repeat. During an API-server outage every retry fails the same
//! way; one line per retry buries everything else (and costs the log pipeline), so a repeated
//! failure is logged once, then at most once per interval with the number of repeats, and
//! once more when it works again.

use std::time::Duration;

use tokio::time::Instant;

/// How often a failure that keeps repeating is logged again.
pub const REPEAT_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct LogThrottle {
    what: &'static str,
    every: Duration,
    last_logged: Option<Instant>,
    repeats: u64,
    failing_since: Option<Instant>,
}

impl LogThrottle {
    pub fn new(what: &'static str) -> Self {
        Self::every(what, REPEAT_EVERY)
    }

    pub fn every(what: &'static str, every: Duration) -> Self {
        LogThrottle { what, every, last_logged: None, repeats: 0, failing_since: None }
    }

    /// Records one failure; logs it unless one was logged within the interval.
    pub fn record(&mut self, error: &str) {
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        if self.last_logged.is_some_and(|t| now.duration_since(t) < self.every) {
            self.repeats += 1;
            return;
        }
        tracing::warn!(error, repeats = self.repeats, "{} failed", self.what);
        self.last_logged = Some(now);
        self.repeats = 0;
    }

    /// Records a success: one line if it had been failing, then a clean slate.
    pub fn success(&mut self) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(failing_for_seconds = since.elapsed().as_secs_f64(), "{} works again", self.what);
        }
        self.last_logged = None;
        self.repeats = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn logs_once_per_interval_and_counts_the_rest() {
        let mut t = LogThrottle::every("renewing the Lease", Duration::from_secs(30));
        t.record("boom");
        let first = t.last_logged;
        assert!(first.is_some());
        for _ in 0..100 {
            t.record("boom");
        }
        assert_eq!((t.last_logged, t.repeats), (first, 100), "repeats within the interval are counted, not logged");
        tokio::time::advance(Duration::from_secs(30)).await;
        t.record("boom");
        assert_ne!(t.last_logged, first);
        assert_eq!(t.repeats, 0);
        t.success();
        assert!(t.failing_since.is_none() && t.last_logged.is_none());
        t.record("again");
        assert!(t.last_logged.is_some(), "a new failure after recovery is logged at once");
    }
}
