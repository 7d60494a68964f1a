//! A term is one continuous period of leadership. Leader-only work runs inside the current
//! term, so that losing the Lease cancels it and can wait for it to stop: a replica that keeps
//! writing after losing the Lease is the failure this whole design exists to prevent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::elector::Leadership;

#[derive(Clone, Debug)]
pub struct Term {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Term {
    fn new() -> Self {
        Term { token: CancellationToken::new(), tracker: TaskTracker::new() }
    }

    /// Runs `work` as part of this term. Returns `None` if the term ended first, in which case
    /// `work` has been dropped, so it sends nothing more.
    pub async fn run<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        let _in_flight = self.tracker.token();
        tokio::select! {
            biased;
            _ = self.token.cancelled() => None,
            out = work => Some(out),
        }
    }

    /// Cancels the term and waits, at most `bound`, for its work to stop.
    async fn end(&self, bound: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(bound, self.tracker.wait()).await.is_ok()
    }

}

#[derive(Debug, thiserror::Error)]
#[error("leader-only work did not stop within {0:?} after leadership was lost")]
pub struct StuckWork(pub Duration);

/// The current term, shared by the controller (which runs work in it) and the follower task.
#[derive(Clone, Default)]
pub struct Terms {
    current: Arc<Mutex<Option<Term>>>,
}

impl Terms {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current term, if this replica leads.
    pub fn current(&self) -> Option<Term> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// An always-open term, for single-replica mode.
    pub fn start_now(&self) -> Term {
        let t = Term::new();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
        t
    }

    fn take(&self) -> Option<Term> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Follows leadership: opens a term and asks for a full reconcile on every gain; ends the
    /// term on every loss. Returns `Err` when work does not stop within `bound`, and the
    /// caller must then exit: a zombie writer is worse than a restart.
    pub async fn follow(&self, mut leadership: watch::Receiver<Leadership>, bound: Duration, gained: mpsc::UnboundedSender<()>) -> Result<(), StuckWork> {
        loop {
            let leads = leadership.borrow_and_update().is_leader;
            match (leads, self.current().is_some()) {
                (true, false) => {
                    self.start_now();
                    let _ = gained.send(());
                }
                (false, true) => {
                    if let Some(t) = self.take() {
                        if !t.end(bound).await {
                            return Err(StuckWork(bound));
                        }
                        tracing::info!("leader-only work stopped");
                    }
                }
                _ => {}
            }
            if leadership.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Graceful shutdown: ends the current term, so no new work starts and in-flight work is
    /// cancelled at its next await point, and waits at most `bound` for it to stop. Returns
    /// whether it stopped, which decides whether the Lease may be released.
    ///
    /// In-flight work is cancelled rather than let finish: every step is idempotent and
    /// derived from observed state, so the next leader simply does again what was cut short,
    /// and the handover does not wait for a busy leader's queue (with hundreds of clusters
    /// changing at once, finishing them took most of a second).
    pub async fn stop(&self, bound: Duration) -> bool {
        match self.take() {
            Some(t) => t.end(bound).await,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn leadership(is_leader: bool) -> Leadership {
        Leadership { is_leader, holder: None, transitions_observed: 0, since: Instant::now(), last_renew: None, loss_cause: None }
    }

    #[tokio::test(start_paused = true)]
    async fn gain_opens_a_term_and_asks_for_a_full_reconcile_loss_cancels_work() {
        let (tx, rx) = watch::channel(leadership(false));
        let (gtx, mut grx) = mpsc::unbounded_channel();
        let terms = Terms::new();
        let follower = tokio::spawn({
            let terms = terms.clone();
            async move { terms.follow(rx, Duration::from_secs(10), gtx).await }
        });
        tokio::task::yield_now().await;
        assert!(terms.current().is_none());
        tx.send(leadership(true)).unwrap();
        grx.recv().await.unwrap();
        let term = terms.current().expect("a term while leading");
        let work = tokio::spawn(async move { term.run(futures::future::pending::<()>()).await });
        tokio::task::yield_now().await;
        tx.send(leadership(false)).unwrap();
        assert_eq!(work.await.unwrap(), None, "work must be cancelled on loss");
        tokio::task::yield_now().await;
        assert!(terms.current().is_none());
        drop(tx);
        follower.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_will_not_stop_is_reported() {
        let (tx, rx) = watch::channel(leadership(true));
        let (gtx, _grx) = mpsc::unbounded_channel();
        let terms = Terms::new();
        let follower = tokio::spawn({
            let terms = terms.clone();
            async move { terms.follow(rx, Duration::from_secs(10), gtx).await }
        });
        tokio::task::yield_now().await;
        let term = terms.current().unwrap();
        // Work that ignores cancellation: it holds an in-flight token in a blocking section.
        let _stuck = term.tracker.token();
        tx.send(leadership(false)).unwrap();
        let r = follower.await.unwrap();
        assert!(r.is_err(), "stuck work must make follow() fail");
    }

    #[tokio::test(start_paused = true)]
    async fn stop_cancels_work_at_once_and_starts_none() {
        let terms = Terms::new();
        let term = terms.start_now();
        let work = tokio::spawn(async move { term.run(tokio::time::sleep(Duration::from_secs(3))).await });
        tokio::task::yield_now().await;
        let t0 = tokio::time::Instant::now();
        assert!(terms.stop(Duration::from_secs(5)).await);
        assert_eq!(t0.elapsed(), Duration::ZERO, "stop must not wait for the work to finish");
        assert_eq!(work.await.unwrap(), None, "in-flight work is cancelled");
        assert!(terms.current().is_none(), "no term, so no new work starts");
    }
}
