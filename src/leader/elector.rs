//! The lease state machine: acquire, renew, lose, release.
//!
//! It follows client-go's Lease lock (record format, preconditioned updates) with three
//! deliberate differences: expiry is judged only from the local monotonic instant at which the
//! record last changed (so wall-clock skew cannot make two leaders), followers also watch the
//! Lease (so a release is taken within one round trip instead of at the next poll), and a
//! shutdown releases only after the leader's work has stopped. It publishes [`Leadership`] and
//! drives the [`LeadershipGuard`]; it knows nothing of metrics, Pods, Events or Qdrant.

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::guard::LeadershipGuard;
use super::store::{LeaseRecord, LeaseStore, StoreError, Versioned};
use crate::config::ElectionConfig;
use crate::telemetry::throttle::LogThrottle;

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
    /// The leader's work has stopped: hand the Lease over at once.
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
    /// The observed record was deleted since (`kubectl delete lease`, a GitOps prune). It is
    /// kept as a tombstone: a deletion is no sign that its holder stopped, so the holder keeps
    /// its lease until it expires by our own observation, exactly as if it still existed.
    deleted: bool,
    /// Our own last successful write, while leading.
    mine: Option<Versioned>,
    /// resourceVersions of our own recent writes: their watch events are echoes, not news.
    own_versions: VecDeque<String>,
    next_attempt: Instant,
    renew_failures: LogThrottle,
    acquire_failures: LogThrottle,
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
            deleted: false,
            mine: None,
            own_versions: VecDeque::new(),
            next_attempt: Instant::now(),
            renew_failures: LogThrottle::new("renewing the Lease"),
            acquire_failures: LogThrottle::new("reading or acquiring the Lease"),
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
                    Some(v) if self.is_leader() => {
                        // Our own renewals arrive here too. Anything else means the Lease was
                        // deleted, taken or edited under us: find out now, not at the next
                        // renewal, so that a takeover closes our guard at once.
                        if !v.as_ref().is_some_and(|v| self.own_versions.contains(&v.resource_version)) {
                            self.reassert_now().await;
                        }
                    }
                    Some(v) => {
                        self.observe(v);
                        self.try_acquire(false).await;
                    }
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
            // Once that instant has passed, only the poll: an expiry in the past would wake
            // us at once, again and again, while the API server cannot be reached.
            _ => match self.expiry() {
                Some(e) if e > Instant::now() => self.next_attempt.min(e),
                _ => self.next_attempt,
            },
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

    /// Records what we saw. The expiry clock restarts only when the record itself changed; a
    /// deletion leaves the last record in place as a tombstone (see `deleted`).
    fn observe(&mut self, v: Option<Versioned>) {
        let Some(v) = v else {
            self.deleted = self.observed.is_some();
            return;
        };
        let changed = self.deleted || self.observed.as_ref().map(|o| &o.record) != Some(&v.record);
        if changed {
            self.observed_at = Instant::now();
        }
        self.deleted = false;
        self.observed = Some(v);
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
                Ok(Ok(v)) => {
                    self.acquire_failures.success();
                    self.observe(v);
                }
                Ok(Err(e)) => {
                    self.acquire_failures.record(&e.to_string());
                    return;
                }
                Err(_) => {
                    self.acquire_failures.record("request timed out");
                    return;
                }
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
                let recreate = self.deleted;
                let record = LeaseRecord {
                    holder: me,
                    lease_duration_seconds: self.lease_seconds(),
                    acquire_time: if ours { v.record.acquire_time.or(Some(now)) } else { Some(now) },
                    renew_time: Some(now),
                    lease_transitions: if ours { v.record.lease_transitions } else { v.record.lease_transitions + 1 },
                    strategy: v.record.strategy.clone(),
                    preferred_holder: v.record.preferred_holder.clone(),
                };
                // After a deletion the count goes on from the tombstone, not from 0.
                if recreate {
                    timeout(rt, self.store.create(&record)).await
                } else {
                    timeout(rt, self.store.update(&record, &v.resource_version)).await
                }
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
            // Deleted since we read it: the next attempt sees the tombstone.
            Ok(Err(StoreError::NotFound)) => {
                if let Ok(Ok(v)) = timeout(rt, self.store.get()).await {
                    self.observe(v);
                }
            }
            Ok(Err(e)) => self.acquire_failures.record(&e.to_string()),
            Err(_) => self.acquire_failures.record("request timed out"),
        }
    }

    fn lease_seconds(&self) -> i32 {
        self.cfg.lease_duration.as_secs().min(i32::MAX as u64) as i32
    }

    fn become_leader(&mut self, v: Versioned, start: Instant) {
        self.guard.extend_to(start + self.cfg.renew_deadline);
        self.observed = Some(v.clone());
        self.observed_at = Instant::now();
        self.deleted = false;
        self.next_attempt = start + self.cfg.retry_period;
        let transitions = v.record.lease_transitions;
        self.remember_own(&v);
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

    /// Keeps the last few of our own resourceVersions: the watch may deliver the echo of one
    /// renewal after the next has completed.
    fn remember_own(&mut self, v: &Versioned) {
        if self.own_versions.len() >= 4 {
            self.own_versions.pop_front();
        }
        self.own_versions.push_back(v.resource_version.clone());
    }

    async fn renew(&mut self) {
        let deadline = self.guard.deadline().unwrap_or_else(Instant::now);
        let start = Instant::now();
        self.next_attempt = start + self.cfg.retry_period;
        // The whole renewal, slow path included, must end by the deadline: at that instant we
        // stop being leader whether or not the API server has answered.
        let outcome = timeout_at(deadline, self.renew_once(start)).await;
        // One renewal, one count: the fast path and its retry are a single attempt.
        if !matches!(outcome, Ok(Ok(true))) {
            self.emit(RenewEvent::Failed);
        }
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(cause)) => self.lose(cause),
            Err(_) => self.lose(LossCause::RenewDeadline),
        }
        if self.is_leader() && Instant::now() >= deadline && self.guard.deadline() == Some(deadline) {
            self.lose(LossCause::RenewDeadline);
        }
    }

    /// One renewal: the fast path with our own last resourceVersion, else the slow path of
    /// [`Self::reassert`]. `Ok(true)` when renewed; `Err` when someone else holds the Lease.
    async fn renew_once(&mut self, start: Instant) -> Result<bool, LossCause> {
        let rt = self.cfg.request_timeout();
        let Some(mine) = self.mine.clone() else { return Err(LossCause::LeaseLost) };
        let mut record = mine.record.clone();
        record.renew_time = Some(Timestamp::now());
        record.lease_duration_seconds = self.lease_seconds();
        match timeout(rt, self.store.update(&record, &mine.resource_version)).await {
            Ok(Ok(v)) => {
                self.renewed(v, start);
                return Ok(true);
            }
            Ok(Err(e)) => self.renew_failures.record(&e.to_string()),
            Err(_) => self.renew_failures.record("request timed out"),
        }
        self.emit(RenewEvent::SlowPath);
        self.reassert().await
    }

    /// Re-reads the Lease and acts on what is there: still ours, renew from that version;
    /// deleted, re-create it as it was (same holder, same count) so leadership and
    /// `leaseTransitions` survive a `kubectl delete lease`; anyone else's, we lost.
    async fn reassert(&mut self) -> Result<bool, LossCause> {
        let rt = self.cfg.request_timeout();
        let current = match timeout(rt, self.store.get()).await {
            Ok(Ok(v)) => v,
            _ => return Ok(false), // unknown: keep trying until the deadline
        };
        let me = self.cfg.identity.clone();
        let (record, write) = match &current {
            Some(v) if v.record.holder == me => (v.record.clone(), Some(v.resource_version.clone())),
            None => match &self.mine {
                Some(mine) => (mine.record.clone(), None),
                None => return Err(LossCause::LeaseLost),
            },
            Some(_) => {
                self.observe(current);
                return Err(LossCause::LeaseLost);
            }
        };
        let record = LeaseRecord { renew_time: Some(Timestamp::now()), lease_duration_seconds: self.lease_seconds(), ..record };
        let start = Instant::now();
        let result = match &write {
            Some(rv) => timeout(rt, self.store.update(&record, rv)).await,
            None => {
                tracing::warn!(identity = %me, "the Lease was deleted while we led; re-creating it");
                timeout(rt, self.store.create(&record)).await
            }
        };
        match result {
            Ok(Ok(v)) => {
                self.renewed(v, start);
                Ok(true)
            }
            // Another replica created it first: we lost, and the next read says to whom.
            Ok(Err(StoreError::AlreadyExists)) => {
                if let Ok(Ok(v)) = timeout(rt, self.store.get()).await {
                    self.observe(v);
                }
                Err(LossCause::LeaseLost)
            }
            _ => Ok(false),
        }
    }

    /// The watch showed a change that is not ours: reassert at once, within our deadline.
    async fn reassert_now(&mut self) {
        let deadline = self.guard.deadline().unwrap_or_else(Instant::now);
        match timeout_at(deadline, self.reassert()).await {
            Ok(Ok(_)) => {}
            Ok(Err(cause)) => self.lose(cause),
            Err(_) => self.lose(LossCause::RenewDeadline),
        }
    }

    fn renewed(&mut self, v: Versioned, start: Instant) {
        self.emit(RenewEvent::Renewed(start.elapsed()));
        self.renew_failures.success();
        self.guard.extend_to(start + self.cfg.renew_deadline);
        self.observed = Some(v.clone());
        self.observed_at = Instant::now();
        self.deleted = false;
        self.remember_own(&v);
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
        self.own_versions.clear();
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

    #[tokio::test(start_paused = true)]
    async fn a_deleted_lease_is_recreated_by_its_holder_and_never_doubles_leadership() {
        let store = MemoryLeaseStore::new();
        store.put(LeaseRecord { holder: String::new(), lease_duration_seconds: 1, lease_transitions: 6, ..Default::default() });
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        let b = start(&store, "b");
        let c = start(&store, "c");
        tokio::time::sleep(Duration::from_secs(3)).await;
        for _ in 0..10 {
            store.delete();
            // Sample every few milliseconds across a whole lease duration.
            for _ in 0..400 {
                assert!(!(b.leads() || c.leads()), "a follower led while the holder was alive");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(a.leads(), "the holder must keep leading through a deletion");
            let rec = store.current().expect("re-created").record;
            assert_eq!((rec.holder.as_str(), rec.lease_transitions), ("a", 7), "holder and count survive the deletion");
        }
        assert!(store.writes().iter().all(|(who, _)| who == "a"), "only the holder wrote the Lease");
    }

    #[tokio::test(start_paused = true)]
    async fn the_holder_re_creates_a_deleted_lease_within_one_round_trip() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        store.delete();
        let took = wait_until(|| store.current().is_some(), Duration::from_secs(3)).await;
        assert!(took < Duration::from_millis(50), "re-created after {took:?}: the watch, not the next renewal, must trigger it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deleted_lease_of_a_dead_holder_is_taken_at_expiry_and_counts_on() {
        let store = MemoryLeaseStore::new();
        store.put(held_by("dead"));
        let b = start(&store, "b");
        tokio::time::sleep(Duration::from_secs(5)).await;
        store.delete();
        let t0 = Instant::now();
        wait_until(|| b.leads(), Duration::from_secs(15)).await;
        // Expiry is still judged from the last change seen 5 s before the deletion.
        assert!(t0.elapsed() >= Duration::from_secs(9), "took a deleted lease after {:?}, before it expired", t0.elapsed());
        let rec = store.current().unwrap().record;
        assert_eq!((rec.holder.as_str(), rec.lease_transitions), ("b", 5), "the count goes on from the tombstone");
    }

    #[tokio::test(start_paused = true)]
    async fn a_takeover_seen_on_the_watch_closes_the_guard_at_once() {
        let store = MemoryLeaseStore::new();
        let a = start(&store, "a");
        wait_until(|| a.leads(), Duration::from_millis(100)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.put(held_by("intruder"));
        let took = wait_until(|| !a.handle.guard.may_write(), Duration::from_secs(3)).await;
        assert!(took < Duration::from_millis(50), "guard open {took:?} after another holder appeared");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_renewal_counts_once_and_a_slow_path_success_not_at_all() {
        let store = MemoryLeaseStore::new();
        let (e, handle) = Elector::new(store.handle("a"), ElectionConfig::defaults_for("a"));
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        let (_stop, stop_rx) = oneshot::channel();
        tokio::spawn(e.with_renew_events(ev_tx).run(stop_rx));
        wait_until(|| handle.leadership.borrow().is_leader, Duration::from_millis(100)).await;
        // The fast path fails once, the slow path's re-read and retry succeed.
        store.fail_next(1);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        // Then a renewal fails in both paths.
        store.fail_next(2);
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let mut failed = 0;
        while let Ok(ev) = ev_rx.try_recv() {
            failed += usize::from(ev == RenewEvent::Failed);
        }
        assert_eq!(failed, 1, "one failed renewal");
        assert!(handle.leadership.borrow().is_leader);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_api_server_is_polled_not_hammered_after_expiry() {
        let store = MemoryLeaseStore::new();
        store.put(held_by("dead"));
        let b = start(&store, "b");
        tokio::time::sleep(Duration::from_secs(1)).await;
        store.fail_next(u32::MAX);
        let before = store.requests();
        // Past the holder's expiry and well beyond: every attempt fails.
        tokio::time::sleep(Duration::from_secs(40)).await;
        let made = store.requests() - before;
        // One read per jittered retry period (2 to 4.4 s): at most 20 in 40 s.
        assert!(made <= 20, "{made} requests in 40 s while the API server was failing");
        assert!(!b.leads());
    }
}
