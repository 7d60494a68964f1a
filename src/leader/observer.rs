//! Makes leadership visible without logs: metrics, the `qdrant.operator/leader` annotation on
//! the operator's Pods, Kubernetes Events on the Lease, and one log line per transition.
//!
//! Annotation writes are leader work and pass the guard, so every Pod write in the audit log
//! comes from the Lease holder: the leader marks itself `"true"` and every other operator Pod
//! `"false"` (a new Pod, or a stale `"true"` left by a crashed leader). A replica that lost the
//! Lease without shutting down does not write at all; its successor corrects its annotation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::elector::{Leadership, RenewEvent};
use super::guard::LeadershipGuard;
use crate::config::ElectionConfig;
use crate::kube_client::{watch_backoff, Clients};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::throttle::LogThrottle;

pub const LEADER_ANNOTATION: &str = "qdrant.operator/leader";
pub const OPERATOR_POD_SELECTOR: &str = "app=qdrant-operator";

#[derive(Clone)]
pub struct Observer {
    cfg: ElectionConfig,
    metrics: Arc<Metrics>,
    guard: LeadershipGuard,
    pods: Api<Pod>,
    watch_pods: Api<Pod>,
    recorder: Recorder,
    /// Held across every annotation write. `true` once the shutdown wrote our final
    /// `"false"`: from then on no write may turn it back, even one already under way when
    /// the shutdown began (it finishes first, because it holds the lock).
    retired: Arc<tokio::sync::Mutex<bool>>,
}

impl Observer {
    pub fn new(clients: &Clients, cfg: ElectionConfig, metrics: Arc<Metrics>, guard: LeadershipGuard) -> Self {
        let reporter = Reporter { controller: "qdrant-operator".into(), instance: Some(cfg.identity.clone()) };
        Observer {
            pods: Api::namespaced(clients.requests.clone(), &cfg.namespace),
            watch_pods: Api::namespaced(clients.watches.clone(), &cfg.namespace),
            recorder: Recorder::new(clients.requests.clone(), reporter),
            cfg,
            metrics,
            guard,
            retired: Arc::default(),
        }
    }

    fn lease_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("coordination.k8s.io/v1".into()),
            kind: Some("Lease".into()),
            name: Some(self.cfg.lease_name.clone()),
            namespace: Some(self.cfg.namespace.clone()),
            ..Default::default()
        }
    }

    /// Events on the Lease come from every replica by design (a follower reports what it saw),
    /// so they do not pass the guard; they are published in the background so that a slow API
    /// server never delays the metrics.
    fn event(&self, type_: EventType, reason: &str, note: String) {
        let this = self.clone();
        let reason = reason.to_owned();
        tokio::spawn(async move { this.publish(type_, &reason, note).await });
    }

    async fn publish(&self, type_: EventType, reason: &str, note: String) {
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: "LeaderElection".into(), secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &self.lease_ref()).await {
            tracing::warn!(error = %e, "publishing a leader-election Event failed");
        }
    }

    /// The `LostLeadership` Event of a graceful shutdown, awaited: the process exits right
    /// after, which would drop a background publish.
    pub async fn shutdown_event(&self) {
        let me = &self.cfg.identity;
        self.publish(EventType::Normal, "LostLeadership", format!("{me} lost leadership: shutdown")).await;
    }

    /// Sets the leader annotation on one operator Pod, through the guard. The caller holds
    /// the `retired` lock.
    async fn annotate(&self, pod: &str, leader: bool) -> anyhow::Result<()> {
        let patch = serde_json::json!({"metadata": {"annotations": {LEADER_ANNOTATION: leader.to_string()}}});
        match self.guard.write(self.pods.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))).await? {
            Ok(_) => Ok(()),
            // Deleted meanwhile: nothing left to mark.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The graceful shutdown's last leader write: our own Pod says `"false"`, and no later
    /// annotation write of this process can say otherwise.
    pub async fn retire(&self) -> anyhow::Result<()> {
        let mut retired = self.retired.lock().await;
        *retired = true;
        self.annotate(&self.cfg.identity, false).await
    }

    /// Runs until the leadership channel closes.
    pub async fn run(self, mut leadership: watch::Receiver<Leadership>, mut renew_events: mpsc::UnboundedReceiver<RenewEvent>) {
        let me = self.cfg.identity.clone();
        self.metrics.init_identity(&me, &self.cfg.lease_name);
        if self.cfg.enabled {
            self.event(EventType::Normal, "LeaderElectionStarted", format!("{me} started leader election"));
        }
        let mut pod_events = watcher(self.watch_pods.clone(), watcher::Config::default().labels(OPERATOR_POD_SELECTOR)).backoff(watch_backoff()).boxed();
        let mut watch_errors = LogThrottle::new("watching the operator Pods");
        // Last known annotation of every operator Pod, from the watch.
        let mut pods: BTreeMap<String, Option<String>> = BTreeMap::new();
        // Start from "not leading" and apply the current state as a transition, so a replica
        // that leads from the start (single-replica mode) is reported like any other leader.
        let mut prev = Leadership::initial();
        let first = leadership.borrow_and_update().clone();
        self.transition(&prev, &first);
        let mut fix_pods = first.is_leader;
        prev = first;
        let mut last_tick = Instant::now();
        let mut annotation_errors = LogThrottle::new("setting the leader annotation");
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                changed = leadership.changed() => {
                    if changed.is_err() { break; }
                    let cur = leadership.borrow_and_update().clone();
                    self.account_time(&prev, &mut last_tick);
                    self.transition(&prev, &cur);
                    fix_pods |= cur.is_leader && !prev.is_leader;
                    prev = cur;
                }
                Some(ev) = renew_events.recv() => match ev {
                    RenewEvent::Renewed(d) => self.metrics.renew_duration_seconds.observe(d.as_secs_f64()),
                    RenewEvent::Failed => self.metrics.renew_failures_total.inc(),
                    RenewEvent::SlowPath => self.metrics.renew_slow_path_total.inc(),
                },
                Some(ev) = pod_events.next() => {
                    if ev.is_ok() {
                        watch_errors.success();
                    }
                    match ev {
                        Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                            let value = p.metadata.annotations.as_ref().and_then(|a| a.get(LEADER_ANNOTATION).cloned());
                            pods.insert(p.metadata.name.unwrap_or_default(), value);
                        }
                        Ok(watcher::Event::Delete(p)) => { pods.remove(&p.metadata.name.unwrap_or_default()); }
                        Ok(watcher::Event::Init) => pods.clear(),
                        Ok(watcher::Event::InitDone) => {
                            if !pods.contains_key(&me) {
                                tracing::warn!(pod = %me, "own Pod not found (running outside a cluster?); it cannot carry the leader annotation");
                            }
                        }
                        Err(e) => watch_errors.record(&e.to_string()),
                    }
                    fix_pods = true;
                }
                _ = tick.tick() => {
                    self.account_time(&prev, &mut last_tick);
                    // Retry annotation writes that failed.
                    fix_pods |= prev.is_leader;
                }
            }
            if fix_pods && prev.is_leader && self.guard.may_write() {
                fix_pods = !self.fix_annotations(&pods, &mut annotation_errors).await;
            }
        }
    }

    /// Marks this Pod `"true"` and every other operator Pod `"false"`. Returns true when all
    /// writes succeeded.
    async fn fix_annotations(&self, pods: &BTreeMap<String, Option<String>>, failures: &mut LogThrottle) -> bool {
        let retired = self.retired.lock().await;
        if *retired {
            return true;
        }
        let me = &self.cfg.identity;
        let mut ok = true;
        // Only Pods the watch has seen: our own Pod may not exist (running outside a cluster),
        // and then there is nothing to annotate.
        let targets: Vec<String> = pods
            .iter()
            .filter(|(name, v)| v.as_deref() != Some(if *name == me { "true" } else { "false" }))
            .map(|(n, _)| n.clone())
            .collect();
        for name in targets {
            if let Err(e) = self.annotate(&name, &name == me).await {
                failures.record(&format!("{name}: {e:#}"));
                ok = false;
            }
        }
        if ok {
            failures.success();
        }
        drop(retired);
        ok
    }

    fn account_time(&self, prev: &Leadership, last_tick: &mut Instant) {
        let now = Instant::now();
        if prev.is_leader {
            self.metrics
                .time_as_leader_seconds_total
                .with_label_values(&[&self.cfg.identity])
                .inc_by(now.duration_since(*last_tick).as_secs_f64());
        }
        *last_tick = now;
    }

    fn transition(&self, prev: &Leadership, cur: &Leadership) {
        let me = &self.cfg.identity;
        let m = &self.metrics;
        let v = i64::from(cur.is_leader);
        m.operator_leader.with_label_values(&[me]).set(v);
        m.master_status.with_label_values(&[&self.cfg.lease_name]).set(v);
        m.compat_leader.set(v);
        m.lease_transitions.with_label_values(&[&self.cfg.lease_name]).set(i64::from(cur.transitions_observed));
        let leader = cur.holder.clone().unwrap_or_default();
        let time_as_leader = m.time_as_leader_seconds_total.with_label_values(&[me]).get();
        if cur.is_leader && !prev.is_leader {
            m.leader_transitions_total.with_label_values(&[me]).inc();
            tracing::info!(identity = %me, leader = %leader, reason = "became_leader", time_as_leader, "leadership transition");
            self.event(EventType::Normal, "BecameLeader", format!("{me} became leader (lease transitions: {})", cur.transitions_observed));
        } else if !cur.is_leader && prev.is_leader {
            m.forget_clusters();
            let cause = cur.loss_cause.map_or("lease_lost", |c| c.as_str());
            tracing::info!(identity = %me, leader = %leader, reason = cause, time_as_leader, "leadership transition");
            // A shutdown publishes its Event itself, awaited, before the process exits.
            if cur.loss_cause != Some(super::elector::LossCause::Shutdown) {
                self.event(EventType::Normal, "LostLeadership", format!("{me} lost leadership: {cause}"));
            }
        } else if !cur.is_leader && cur.holder.is_some() && cur.holder != prev.holder {
            tracing::info!(identity = %me, leader = %leader, reason = "new_leader_observed", time_as_leader, "leadership transition");
            self.event(EventType::Normal, "NewLeaderObserved", format!("{me} observed new leader {leader}"));
        }
    }
}
