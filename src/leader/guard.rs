//! The leadership guard: a cheap, clonable answer to "may I write now?".
//!
//! It holds the local leadership deadline (start of the last successful renewal plus the renew
//! deadline) and compares it with the monotonic clock on every check. It therefore turns false
//! on time even when the API server never answers, which is what fences a stalled leader:
//! no other replica can take over before `observation + lease duration`, which is later.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[error("this replica is not the leader; write refused")]
pub struct NotLeader;

#[derive(Clone, Debug, Default)]
pub struct LeadershipGuard {
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl LeadershipGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// A guard that always allows writes: single-replica mode (`--leader-elect=false`).
    pub fn always() -> Self {
        let g = Self::new();
        // Far enough to never pass, close enough not to overflow Instant arithmetic.
        g.extend_to(Instant::now() + std::time::Duration::from_secs(100 * 365 * 24 * 3600));
        g
    }

    /// True while the local leadership deadline is in the future.
    pub fn may_write(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() < d)
    }

    /// Call immediately before sending a write.
    pub fn check(&self) -> Result<(), NotLeader> {
        if self.may_write() { Ok(()) } else { Err(NotLeader) }
    }

    /// Sends one write through the guard: refused unless we may write now, and abandoned at
    /// the leadership deadline. A request still waiting for its connection or its answer is
    /// dropped then, so nothing of it (nor any retry) leaves after the deadline.
    ///
    /// The deadline is the one in force when it is reached: renewals made meanwhile extend it,
    /// so a long write (a snapshot streamed to S3) lives as long as the leadership does.
    pub async fn write<F: std::future::Future>(&self, request: F) -> Result<F::Output, NotLeader> {
        self.check()?;
        let mut deadline = self.deadline().ok_or(NotLeader)?;
        tokio::pin!(request);
        loop {
            match tokio::time::timeout_at(deadline, &mut request).await {
                Ok(out) => return Ok(out),
                Err(_) => match self.deadline() {
                    Some(renewed) if renewed > deadline && Instant::now() < renewed => deadline = renewed,
                    _ => return Err(NotLeader),
                },
            }
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn extend_to(&self, deadline: Instant) {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
    }

    pub(crate) fn revoke(&self) {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn turns_false_at_deadline_without_any_call() {
        let g = LeadershipGuard::new();
        assert!(!g.may_write());
        g.extend_to(Instant::now() + Duration::from_secs(10));
        assert!(g.check().is_ok());
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(g.may_write());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(g.check(), Err(NotLeader));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_is_refused_when_closed_and_abandoned_at_the_deadline() {
        let g = LeadershipGuard::new();
        assert_eq!(g.write(async { 1 }).await, Err(NotLeader));
        g.extend_to(Instant::now() + Duration::from_secs(10));
        assert_eq!(g.write(async { 1 }).await, Ok(1));
        let t0 = Instant::now();
        let slow = g.write(tokio::time::sleep(Duration::from_secs(60))).await;
        assert_eq!(slow, Err(NotLeader));
        assert_eq!(t0.elapsed(), Duration::from_secs(10), "dropped exactly at the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_during_a_long_write_extend_it_and_it_ends_at_the_last_deadline() {
        let g = LeadershipGuard::new();
        g.extend_to(Instant::now() + Duration::from_secs(10));
        let renewer = g.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                renewer.extend_to(Instant::now() + Duration::from_secs(10));
            }
        });
        let t0 = Instant::now();
        assert_eq!(g.write(async { tokio::time::sleep(Duration::from_secs(20)).await; 2 }).await, Ok(2), "renewed: the write lives on");
        let slow = g.write(tokio::time::sleep(Duration::from_secs(60))).await;
        assert_eq!(slow, Err(NotLeader));
        assert_eq!(t0.elapsed(), Duration::from_secs(25), "dropped at the last renewal's deadline (15 s + 10 s)");
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_state_and_revoke_is_immediate() {
        let g = LeadershipGuard::always();
        let c = g.clone();
        assert!(c.may_write());
        g.revoke();
        assert!(!c.may_write());
    }
}
