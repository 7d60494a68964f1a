//! The lease state machine: acquire, renew, lose, release.
//!
//! It follows client-go's Lease lock (record format, preconditioned updates) with three
//! deliberate differences: expiry is judged only from the local monotonic instant at which the
//! record last changed (so wall-clock skew cannot make two leaders), followers also watch the
//! Lease (so a release is taken within one round trip instead of at the next poll), and a
//! shutdown releases only after the leader's work has stopped. It publishes [`Leadership`] and
//! drives the [`LeadershipGuard`]; it knows nothing of metrics, Pods, Events or Qdrant.

use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::guard::LeadershipGuard;
use super::store::{LeaseRecord, LeaseStore, StoreError, Versioned};
use crate::config::ElectionConfig;

/// Why a replica stopped leading. The names are the `LostLeadership` Event's causes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossCause {
    /// Another replica holds the Lease, or it was deleted.
    LeaseLost,
    /// No renewal succeeded within the renew deadline.
    RenewDeadline,
    /// The process is shutting down.
    Shutdown,
}

impl LossCause {
    pub fn as_str(self) -> &'static str {
        match self {
            LossCause::LeaseLost => "lease_lost",
            LossCause::RenewDeadline => "renew_deadline",
            LossCause::Shutdown => "shutdown",
        }
    }
}

/// What every other component knows about leadership.
#[derive(Clone, Debug, PartialEq)]
pub struct Leadership {
    pub is_leader: bool,
    /// The holder of the Lease as last observed (`None` when free or unknown).
    pub holder: Option<String>,
    /// `spec.leaseTransitions` as last observed.
    pub transitions_observed: i32,
    /// When `is_leader` last changed.
    pub since: Instant,
    /// Start of the last successful renewal, while leading.
    pub last_renew: Option<Instant>,
    /// Why leadership was last lost.
    pub loss_cause: Option<LossCause>,
}

impl Leadership {
    /// Not leading, nothing observed yet.
    pub fn initial() -> Self {
        Leadership { is_leader: false, holder: None, transitions_observed: 0, since: Instant::now(), last_renew: None, loss_cause: None }
    }
}

/// Renewal health, for the observer's metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RenewEvent {
    Renewed(Duration),
    Failed,
    SlowPath,
}

/// How to stop the elector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// The leader's work has drained: hand the Lease over at once.
    Release,
    /// Work may still be running: keep the Lease until it expires.
    Keep,
}

/// Handles held by the rest of the process.
#[derive(Clone)]
pub struct ElectorHandle {
    pub leadership: watch::Receiver<Leadership>,
    pub guard: LeadershipGuard,
}

pub struct Elector<S: LeaseStore> {
    store: S,
    cfg: ElectionConfig,
    guard: LeadershipGuard,
    tx: watch::Sender<Leadership>,
    renew_events: Option<mpsc::UnboundedSender<RenewEvent>>,
    observed: Option<Versioned>,
    observed_at: Instant,
    /// Our own last successful write, while leading.
    mine: Option<Versioned>,
    next_attempt: Instant,
}

impl<S: LeaseStore> Elector<S> {
    pub fn new(store: S, cfg: ElectionConfig) -> (Self, ElectorHandle) {
        let guard = LeadershipGuard::new();
        let (tx, rx) = watch::channel(Leadership::initial());
        let e = Elector {
            store,
            cfg,
            guard: guard.clone(),
            tx,
            renew_events: None,
            observed: None,
            observed_at: Instant::now(),
            mine: None,
            next_attempt: Instant::now(),
        };
        (e, ElectorHandle { leadership: rx, guard })
    }

    pub fn with_renew_events(mut self, tx: mpsc::UnboundedSender<RenewEvent>) -> Self {
        self.renew_events = Some(tx);
        self
    }

    fn is_leader(&self) -> bool {
        self.mine.is_some()
    }

    fn emit(&self, ev: RenewEvent) {
        if let Some(tx) = &self.renew_events {
            let _ = tx.send(ev);
        }
    }

    /// Runs until `stop` fires, then releases or keeps the Lease as asked.
    pub async fn run(mut self, mut stop: oneshot::Receiver<StopMode>) {
        let mut changes = self.store.changes();
        let mut changes_open = true;
        loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                mode = &mut stop => {
                    self.stop(mode.unwrap_or(StopMode::Keep)).await;
                    return;
                }
                ev = changes.next(), if changes_open => match ev {
                    // Our own renewals also arrive here; the leader acts on its timer only.
                    Some(v) if !self.is_leader() => {
                        self.observe(v);
                        self.try_acquire(false).await;
                    }
                    Some(_) => {}
                    None => changes_open = false,
                },
                _ = sleep_until(wake) => {
                    if self.is_leader() { self.renew().await } else { self.try_acquire(true).await }
                }
            }
        }
    }

    fn next_wake(&self) -> Instant {
        match self.guard.deadline() {
            Some(d) if self.is_leader() => self.next_attempt.min(d),
            // A follower also wakes exactly when the holder's lease expires by its own
            // observation, so a crashed leader is replaced at expiry rather than at the next
            // jittered poll (up to 2.2 retry periods later). Racing followers are settled by
            // the resourceVersion precondition.
            _ => self.expiry().map_or(self.next_attempt, |e| self.next_attempt.min(e)),
        }
    }

    /// When the observed holder's lease expires, judged from our own observation.
    fn expiry(&self) -> Option<Instant> {
        let v = self.observed.as_ref().filter(|v| !v.record.holder.is_empty() && v.record.holder != self.cfg.identity)?;
        Some(self.observed_at + Duration::from_secs(v.record.lease_duration_seconds.max(0) as u64))
    }

    fn jittered_retry(&self) -> Duration {
        self.cfg.retry_period.mul_f64(1.0 + fastrand::f64() * self.cfg.jitter)
    }

    /// Records what we saw. The expiry clock restarts only when the record itself changed.
    fn observe(&mut self, v: Option<Versioned>) {
        let changed = self.observed.as_ref().map(|o| &o.record) != v.as_ref().map(|n| &n.record);
        if changed {
            self.observed_at = Instant::now();
        }
        self.observed = v;
        let holder = self.observed.as_ref().map(|v| v.record.holder.clone()).filter(|h| !h.is_empty());
        let transitions = self.observed.as_ref().map_or(0, |v| v.record.lease_transitions);
        self.tx.send_if_modified(|l| {
            let modified = l.holder != holder || l.transitions_observed != transitions;
            l.holder = holder;
            l.transitions_observed = transitions;
            modified
        });
    }

    fn expired(&self) -> bool {
        match &self.observed {
            None => true,
            Some(v) => Instant::now() >= self.observed_at + Duration::from_secs(v.record.lease_duration_seconds.max(0) as u64),
        }
    }

    async fn try_acquire(&mut self, fresh_read: bool) {
        self.next_attempt = Instant::now() + self.jittered_retry();
        let rt = self.cfg.request_timeout();
        if fresh_read {
            match timeout(rt, self.store.get()).await {
                Ok(Ok(v)) => self.observe(v),
                Ok(Err(e)) => return tracing::debug!(error = %e, "reading the Lease failed"),
                Err(_) => return tracing::debug!("reading the Lease timed out"),
            }
        }
        let me = self.cfg.identity.clone();
        let now = Timestamp::now();
        let start = Instant::now();
        let result = match self.observed.clone() {
            None => {
                let record = LeaseRecord {
                    holder: me,
                    lease_duration_seconds: self.lease_seconds(),
                    acquire_time: Some(now),
                    renew_time: Some(now),
                    lease_transitions: 0,
                    strategy: None,
                    preferred_holder: None,
                };
                timeout(rt, self.store.create(&record)).await
            }
            Some(v) => {
                let held_by_other = !v.record.holder.is_empty() && v.record.holder != me;
                if held_by_other && !self.expired() {
                    return;
                }
                let ours = v.record.holder == me;
                let record = LeaseRecord {
                    holder: me,
                    lease_duration_seconds: self.lease_seconds(),
                    acquire_time: if ours { v.record.acquire_time.or(Some(now)) } else { Some(now) },
                    renew_time: Some(now),
                    lease_transitions: if ours { v.record.lease_transitions } else { v.record.lease_transitions + 1 },
                    strategy: v.record.strategy.clone(),
                    preferred_holder: v.record.preferred_holder.clone(),
                };
                timeout(rt, self.store.update(&record, &v.resource_version)).await
            }
        };
        match result {
            Ok(Ok(v)) => self.become_leader(v, start),
            // Another replica won the race; its write reaches us through the watch.
            Ok(Err(StoreError::Conflict | StoreError::AlreadyExists)) => {
                tracing::debug!("lost the race for the Lease");
                // The record changed under us, so it counts as just observed: the winner gets
                // a full lease duration from now even if its own write reaches us late.
                self.observed_at = Instant::now();
                if let Ok(Ok(v)) = timeout(rt, self.store.get()).await {
                    self.observe(v);
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "acquiring the Lease failed"),
            Err(_) => tracing::warn!("acquiring the Lease timed out"),
        }
    }

    fn lease_seconds(&self) -> i32 {
        self.cfg.lease_duration.as_secs().min(i32::MAX as u64) as i32
    }

    fn become_leader(&mut self, v: Versioned, start: Instant) {
        self.guard.extend_to(start + self.cfg.renew_deadline);
        self.observed = Some(v.clone());
        self.observed_at = Instant::now();
        self.next_attempt = start + self.cfg.retry_period;
        let transitions = v.record.lease_transitions;
        self.mine = Some(v);
        let me = self.cfg.identity.clone();
        self.tx.send_modify(|l| {
            l.is_leader = true;
            l.holder = Some(me);
            l.transitions_observed = transitions;
            l.since = Instant::now();
            l.last_renew = Some(start);
            l.loss_cause = None;
        });
    }

    async fn renew(&mut self) {
        let deadline = self.guard.deadline().unwrap_or_else(Instant::now);
        let start = Instant::now();
        self.next_attempt = start + self.cfg.retry_period;
        // The whole renewal, slow path included, must end by the deadline: at that instant we
        // stop being leader whether or not the API server has answered.
        match timeout_at(deadline, self.renew_once(start)).await {
            Ok(Ok(())) => {}
            Ok(Err(cause)) => self.lose(cause),
            Err(_) => self.lose(LossCause::RenewDeadline),
        }
        if self.is_leader() && Instant::now() >= deadline && self.guard.deadline() == Some(deadline) {
            self.lose(LossCause::RenewDeadline);
        }
    }

    /// One renewal: the fast path with our own last resourceVersion, else a re-read and one
    /// retry. `Err` means we know someone else holds the Lease.
    async fn renew_once(&mut self, start: Instant) -> Result<(), LossCause> {
        let rt = self.cfg.request_timeout();
        let Some(mine) = self.mine.clone() else { return Err(LossCause::LeaseLost) };
        let mut record = mine.record.clone();
        record.renew_time = Some(Timestamp::now());
        record.lease_duration_seconds = self.lease_seconds();
        match timeout(rt, self.store.update(&record, &mine.resource_version)).await {
            Ok(Ok(v)) => {
                self.renewed(v, start);
                return Ok(());
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "renewing the Lease failed; re-reading it"),
            Err(_) => tracing::warn!("renewing the Lease timed out; re-reading it"),
        }
        self.emit(RenewEvent::Failed);
        self.emit(RenewEvent::SlowPath);
        let current = match timeout(rt, self.store.get()).await {
            Ok(Ok(v)) => v,
            _ => return Ok(()), // unknown: keep trying until the deadline
        };
        match current {
            Some(v) if v.record.holder == self.cfg.identity => {
                let start = Instant::now();
                let mut record = v.record.clone();
                record.renew_time = Some(Timestamp::now());
                record.lease_duration_seconds = self.lease_seconds();
                match timeout(rt, self.store.update(&record, &v.resource_version)).await {
                    Ok(Ok(v)) => self.renewed(v, start),
                    _ => self.emit(RenewEvent::Failed),
                }
                Ok(())
            }
            other => {
                self.observe(other);
                Err(LossCause::LeaseLost)
            }
        }
    }

    fn renewed(&mut self, v: Versioned, start: Instant) {
        self.emit(RenewEvent::Renewed(start.elapsed()));
        self.guard.extend_to(start + self.cfg.renew_deadline);
        self.observed = Some(v.clone());
        self.observed_at = Instant::now();
        self.mine = Some(v);
        self.tx.send_if_modified(|l| {
            l.last_renew = Some(start);
            false // renewals are not transitions; readers poll last_renew when they need it
        });
    }

    fn lose(&mut self, cause: LossCause) {
        self.guard.revoke();
        if self.mine.take().is_none() {
            return;
        }
        // Judge the next takeover from now: we no longer trust our view of the record.
        self.observed_at = Instant::now();
        self.next_attempt = Instant::now() + self.jittered_retry();
        let holder = self.observed.as_ref().map(|v| v.record.holder.clone()).filter(|h| !h.is_empty() && *h != self.cfg.identity);
        self.tx.send_modify(|l| {
            l.is_leader = false;
            l.holder = holder;
            l.since = Instant::now();
            l.last_renew = None;
            l.loss_cause = Some(cause);
        });
    }

    async fn stop(&mut self, mode: StopMode) {
        let was_leader = self.is_leader() && self.guard.may_write();
        // Nothing may write from here on, whatever happens to the release.
        self.guard.revoke();
        if was_leader && mode == StopMode::Release {
            self.release().await;
        }
        if self.mine.is_some() {
            self.mine = None;
            self.tx.send_modify(|l| {
                l.is_leader = false;
                l.since = Instant::now();
                l.last_renew = None;
                l.loss_cause = Some(LossCause::Shutdown);
            });
        }
    }

    /// Hands the Lease over: holder `""`, a one-second duration (so client-go followers also
    /// take over at once), transitions unchanged. Conditioned on our own last write; on a
    /// conflict, released only if we still hold it.
    async fn release(&mut self) {
        let Some(mine) = self.mine.clone() else { return };
        let rt = self.cfg.request_timeout();
        let now = Timestamp::now();
        let record = LeaseRecord {
            holder: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(now),
            renew_time: Some(now),
            ..mine.record.clone()
        };
        match timeout(rt, self.store.update(&record, &mine.resource_version)).await {
            Ok(Ok(v)) => {
                self.observe(Some(v));
                tracing::info!(identity = %self.cfg.identity, "released the Lease");
            }
            Ok(Err(StoreError::Conflict)) => match timeout(rt, self.store.get()).await {
                Ok(Ok(Some(v))) if v.record.holder == self.cfg.identity => {
                    if timeout(rt, self.store.update(&record, &v.resource_version)).await.is_ok_and(|r| r.is_ok()) {
                        tracing::info!(identity = %self.cfg.identity, "released the Lease after a re-read");
                    }
                }
                _ => tracing::info!("not releasing: the Lease is no longer ours"),
            },
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing the Lease failed; it will expire"),
            Err(_) => tracing::warn!("releasing the Lease timed out; it will expire"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leader::store::memory::MemoryLeaseStore;

    struct Running {
        handle: ElectorHandle,
        stop: Option<oneshot::Sender<StopMode>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Running {
        fn leads(&self) -> bool {
            self.handle.leadership.borrow().is_leader
        }
        async fn stop(mut self, mode: StopMode) {
            let _ = self.stop.take().unwrap().send(mode);
            self.task.await.unwrap();
        }
    }

    fn start(store: &MemoryLeaseStore, id: &str) -> Running {
        let (e, handle) = Elector::new(store.handle(id), ElectionConfig::defaults_for(id));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(e.run(rx));
        Running { handle, stop: Some(tx), task }
    }

    async fn wait_until(mut f: impl FnMut() -> bool, limit: Duration) -> Duration {
        let t0 = Instant::now();
        while !f() {
            assert!(t0.elapsed() <= limit, "condition not met within {limit:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        t0.elapsed()
    }

    fn held_by(holder: &str) -> LeaseRecord {
        LeaseRecord { holder: holder.into(), lease_duration_seconds: 15, lease_transitions: 4, renew_time: Some(Timestamp::now()), ..Default::default() }
    }

    #[tokio::test(start_paused = true)]
    async fn acquires_when_absent() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        let rec = store.current().unwrap().record;
        assert_eq!(rec.holder, "a");
        assert_eq!(rec.lease_transitions, 0);
        assert_eq!(rec.lease_duration_seconds, 15);
        assert!(a.handle.guard.may_write());
    }

    #[tokio::test(start_paused = true)]
    async fn takes_a_released_lease_at_once_through_the_watch() {
        let store = MemoryLeaseStore::new();
        store.put(LeaseRecord { holder: "old".into(), lease_duration_seconds: 15, lease_transitions: 4, ..Default::default() });
        let b = start(&store, "b");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!b.leads(), "must not take a valid lease");
        // A release as the old leader writes it.
        let cur = store.current().unwrap();
        store.put(LeaseRecord { holder: String::new(), lease_duration_seconds: 1, ..cur.record });
        let took = wait_until(|| b.leads(), Duration::from_secs(1)).await;
        assert!(took < Duration::from_millis(50), "took {took:?}: the watch, not the poll, must trigger");
        assert_eq!(store.current().unwrap().record.lease_transitions, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn acquires_only_after_expiry_measured_from_observation() {
        let store = MemoryLeaseStore::new();
        store.put(held_by("dead"));
        let b = start(&store, "b");
        let t0 = Instant::now();
        wait_until(|| b.leads(), Duration::from_secs(30)).await;
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_secs(15), "took over after {waited:?}, before the lease expired");
        // At expiry, not at the next jittered poll after it.
        assert!(waited <= Duration::from_millis(15_050), "{waited:?}");
        let rec = store.current().unwrap().record;
        assert_eq!((rec.holder.as_str(), rec.lease_transitions), ("b", 5));
    }

    #[tokio::test(start_paused = true)]
    async fn no_acquire_while_the_holder_renews() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        let b = start(&store, "b");
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(a.leads() && !b.leads());
        assert!(store.writes().iter().all(|(who, _)| who == "a"), "b wrote the Lease while it was held");
    }

    #[tokio::test(start_paused = true)]
    async fn renews_every_retry_period_and_extends_the_guard() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        let first = store.current().unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let second = store.current().unwrap();
        assert_ne!(first.resource_version, second.resource_version);
        assert!(second.record.renew_time > first.record.renew_time);
        assert_eq!(second.record.acquire_time, first.record.acquire_time);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(a.handle.guard.may_write(), "guard must stay open while renewals succeed");
        let renewals = store.writes().len();
        assert!((30..=32).contains(&renewals), "{renewals} writes in ~62s at a 2s period");
    }

    #[tokio::test(start_paused = true)]
    async fn conflict_means_exactly_one_winner() {
        let store = MemoryLeaseStore::new();
        store.put(LeaseRecord { holder: String::new(), lease_duration_seconds: 1, lease_transitions: 7, ..Default::default() });
        let b = start(&store, "b");
        let c = start(&store, "c");
        wait_until(|| b.leads() || c.leads(), Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(b.leads() ^ c.leads(), "exactly one leader");
        assert_eq!(store.current().unwrap().record.lease_transitions, 8);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_trips_the_guard_with_no_api_answer() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        // Let one renewal succeed, then the API server goes silent.
        tokio::time::sleep(Duration::from_millis(2010)).await;
        store.set_stalled(true);
        let deadline = a.handle.guard.deadline().unwrap();
        tokio::time::sleep_until(deadline - Duration::from_millis(1)).await;
        assert!(a.handle.guard.may_write());
        tokio::time::sleep_until(deadline).await;
        assert!(!a.handle.guard.may_write(), "guard open past the renew deadline");
        wait_until(|| !a.leads(), Duration::from_millis(100)).await;
        assert_eq!(a.handle.leadership.borrow().loss_cause, Some(LossCause::RenewDeadline));
    }

    #[tokio::test(start_paused = true)]
    async fn failing_renewals_lose_at_the_deadline_then_recover() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        store.fail_next(1000);
        wait_until(|| !a.leads(), Duration::from_secs(11)).await;
        assert_eq!(a.handle.leadership.borrow().loss_cause, Some(LossCause::RenewDeadline));
        store.fail_next(0);
        // Nobody else took it: the record is still ours, so we take it back.
        wait_until(|| a.leads(), Duration::from_secs(30)).await;
        assert_eq!(store.current().unwrap().record.lease_transitions, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn lease_taken_by_another_is_lost() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        store.put(held_by("intruder"));
        wait_until(|| !a.leads(), Duration::from_secs(3)).await;
        assert!(!a.handle.guard.may_write());
        let l = a.handle.leadership.borrow().clone();
        assert_eq!(l.loss_cause, Some(LossCause::LeaseLost));
        assert_eq!(l.holder.as_deref(), Some("intruder"));
    }

    #[tokio::test(start_paused = true)]
    async fn release_record_contents() {
        let store = MemoryLeaseStore::new();
        store.put(LeaseRecord { holder: String::new(), lease_transitions: 3, strategy: Some("OldestEmulationVersion".into()), preferred_holder: Some("x".into()), ..Default::default() });
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        let guard = a.handle.guard.clone();
        let mut l = a.handle.leadership.clone();
        a.stop(StopMode::Release).await;
        let rec = store.current().unwrap().record;
        assert_eq!(rec.holder, "");
        assert_eq!(rec.lease_duration_seconds, 1);
        assert_eq!(rec.lease_transitions, 4, "release keeps the count");
        assert_eq!(rec.strategy.as_deref(), Some("OldestEmulationVersion"));
        assert_eq!(rec.preferred_holder.as_deref(), Some("x"));
        assert!(rec.renew_time.is_some() && rec.acquire_time.is_some());
        assert!(!guard.may_write());
        assert_eq!(l.borrow_and_update().loss_cause, Some(LossCause::Shutdown));
    }

    #[tokio::test(start_paused = true)]
    async fn release_skipped_when_the_holder_changed() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        // Someone takes the Lease between our last renewal and our shutdown.
        store.put(held_by("b"));
        a.stop(StopMode::Release).await;
        assert_eq!(store.current().unwrap().record.holder, "b");
    }

    #[tokio::test(start_paused = true)]
    async fn keep_mode_never_releases() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        a.stop(StopMode::Keep).await;
        assert_eq!(store.current().unwrap().record.holder, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn follower_stop_writes_nothing() {
        let store = MemoryLeaseStore::new();
        store.put(held_by("other"));
        let b = start(&store, "b");
        tokio::time::sleep(Duration::from_secs(3)).await;
        b.stop(StopMode::Release).await;
        assert!(store.writes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn renew_time_skew_changes_nothing() {
        for skew in [jiff::SignedDuration::from_hours(24 * 365 * 50), jiff::SignedDuration::from_hours(-24 * 365 * 50)] {
            let store = MemoryLeaseStore::new();
            let far = Timestamp::now().checked_add(skew).unwrap();
            store.put(LeaseRecord { renew_time: Some(far), acquire_time: Some(far), ..held_by("skewed") });
            let b = start(&store, "b");
            tokio::time::sleep(Duration::from_millis(14_900)).await;
            assert!(!b.leads(), "skew {skew:?} made us take a lease that is not expired by observation");
            wait_until(|| b.leads(), Duration::from_millis(4500)).await;
            b.stop(StopMode::Keep).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_by_holder_restart_the_expiry_clock() {
        let store = MemoryLeaseStore::new();
        store.put(held_by("a"));
        let b = start(&store, "b");
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let cur = store.current().unwrap().record;
            store.put(LeaseRecord { renew_time: Some(Timestamp::now()), ..cur });
        }
        assert!(!b.leads());
    }

    #[tokio::test(start_paused = true)]
    async fn graceful_handover_between_two_electors() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        let b = start(&store, "b");
        tokio::time::sleep(Duration::from_secs(10)).await;
        a.stop(StopMode::Release).await;
        let took = wait_until(|| b.leads(), Duration::from_secs(2)).await;
        assert!(took < Duration::from_millis(50), "{took:?}");
        assert_eq!(store.current().unwrap().record.lease_transitions, 1);
    }
}
