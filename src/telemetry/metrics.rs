//! The one metrics registry of the process. Names follow docs/leader-election.md and the older
//! operator's names (docs/upgrade.md), which existing dashboards and alerts query.

use crate::qdrant::QdrantMetrics;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder, CounterVec, GaugeVec,
};

pub struct Metrics {
    registry: Registry,
    pub operator_leader: IntGaugeVec,
    pub leader_transitions_total: IntCounterVec,
    pub time_as_leader_seconds_total: CounterVec,
    pub lease_transitions: IntGaugeVec,
    pub master_status: IntGaugeVec,
    pub compat_leader: IntGauge,
    pub renew_duration_seconds: Histogram,
    pub renew_failures_total: IntCounter,
    pub renew_slow_path_total: IntCounter,
    pub reconcile_total: IntCounterVec,
    pub reconcile_duration_seconds: HistogramVec,
    pub errors_total: IntCounterVec,
    pub clusters_managed: IntGauge,
    pub undecodable_objects: IntGaugeVec,
    /// The Qdrant client's requests and latency, in this same registry.
    pub qdrant: QdrantMetrics,
    /// Per cluster, as the leader last judged it; see [`Metrics::cluster_health`].
    pub cluster_healthy: IntGaugeVec,
    pub cluster_peers: IntGaugeVec,
    pub cluster_replicas_not_active: IntGaugeVec,
    /// 1 while a scale-down waits because going on would lose data.
    pub scale_down_blocked: IntGaugeVec,
    /// Shard transfers aborted because they made no progress (each is started again).
    pub transfers_aborted: IntCounterVec,
    /// Backups, per QdrantCollectionBackup (`backup_namespace`, `backup_name`); see
    /// [`Metrics::backup_schedule`]. Exported by the leader only.
    pub backup_last_success: GaugeVec,
    pub backup_schedule_interval: GaugeVec,
    pub backups_total: IntCounterVec,
    pub backup_duration_seconds: HistogramVec,
    pub backup_size_bytes: IntGaugeVec,
    pub restores_total: IntCounterVec,
    pub restore_duration_seconds: Histogram,
    /// The collection each backup resource's series were last exported for.
    backup_collections: std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
}

/// Registers a collector. Called once at start-up with static, unique names and valid label
/// sets, so a failure here is a programming error found by the first test that runs.
fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone())).expect("metric registered twice");
    c
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        Metrics {
            operator_leader: reg(&r, IntGaugeVec::new(Opts::new("operator_leader", "1 while this replica holds the leader Lease, else 0"), &["pod"]).unwrap()),
            leader_transitions_total: reg(&r, IntCounterVec::new(Opts::new("operator_leader_transitions_total", "Times this replica became leader"), &["pod"]).unwrap()),
            time_as_leader_seconds_total: reg(&r, CounterVec::new(Opts::new("operator_time_as_leader_seconds_total", "Seconds this replica has spent as leader"), &["pod"]).unwrap()),
            lease_transitions: reg(&r, IntGaugeVec::new(Opts::new("operator_lease_transitions", "spec.leaseTransitions of the Lease as last observed; equal on every replica"), &["lease"]).unwrap()),
            master_status: reg(&r, IntGaugeVec::new(Opts::new("leader_election_master_status", "client-go compatible: 1 while this replica leads"), &["name"]).unwrap()),
            compat_leader: reg(&r, IntGauge::new("qdrant_operator_leader", "Compatibility gauge of the older operator: 1 while this replica leads").unwrap()),
            renew_duration_seconds: reg(&r, Histogram::with_opts(HistogramOpts::new("operator_lease_renew_duration_seconds", "Latency of Lease renew requests").buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])).unwrap()),
            renew_failures_total: reg(&r, IntCounter::new("operator_lease_renew_failures_total", "Lease renew requests that failed").unwrap()),
            renew_slow_path_total: reg(&r, IntCounter::new("operator_lease_renew_slow_path_total", "Renewals that had to re-read the Lease after a conflict or error").unwrap()),
            reconcile_total: reg(&r, IntCounterVec::new(Opts::new("qdrant_operator_reconcile_total", "Reconciles by result"), &["resource_type", "result"]).unwrap()),
            reconcile_duration_seconds: reg(&r, HistogramVec::new(HistogramOpts::new("qdrant_operator_reconcile_duration_seconds", "Reconcile duration").buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]), &["resource_type"]).unwrap()),
            errors_total: reg(&r, IntCounterVec::new(Opts::new("qdrant_operator_errors_total", "Reconcile errors by category"), &["type"]).unwrap()),
            clusters_managed: reg(&r, IntGauge::new("qdrant_operator_clusters_managed", "QdrantClusters in the watched namespaces").unwrap()),
            undecodable_objects: reg(&r, IntGaugeVec::new(Opts::new("qdrant_operator_undecodable_objects", "Stored objects the operator cannot decode, so does not act upon (each also has an Event and, where it can be written, a status)"), &["kind"]).unwrap()),
            qdrant: QdrantMetrics::new(&r).expect("Qdrant client metrics registered twice"),
            cluster_healthy: reg(&r, IntGaugeVec::new(Opts::new("qdrant_operator_cluster_healthy", "1 when Qdrant reports the cluster healthy (every Pod a peer in consensus, a Raft leader, every shard replica Active), else 0. Exported by the leader only"), &["cluster_namespace", "cluster_name"]).unwrap()),
            cluster_peers: reg(&r, IntGaugeVec::new(Opts::new("qdrant_operator_cluster_peers", "Peers in the cluster's Raft consensus, as Qdrant reports them. Exported by the leader only"), &["cluster_namespace", "cluster_name"]).unwrap()),
            cluster_replicas_not_active: reg(&r, IntGaugeVec::new(Opts::new("qdrant_operator_cluster_replicas_not_active", "Shard replicas of the cluster that are not Active. Exported by the leader only"), &["cluster_namespace", "cluster_name"]).unwrap()),
            scale_down_blocked: reg(&r, IntGaugeVec::new(Opts::new("qdrant_operator_scale_down_blocked", "1 while the cluster's scale-down cannot go on without losing data (its ScaleDownBlocked condition is True), else 0. Exported by the leader only"), &["cluster_namespace", "cluster_name"]).unwrap()),
            transfers_aborted: reg(&r, IntCounterVec::new(Opts::new("qdrant_operator_transfers_aborted_total", "Shard transfers of the cluster that the operator aborted because their source peer reported no progress for --transfer-stall-timeout; each is started again. Exported by the leader only"), &["cluster_namespace", "cluster_name"]).unwrap()),
            backup_last_success: reg(&r, GaugeVec::new(Opts::new("qdrant_operator_backup_last_success_timestamp_seconds", "When the last good backup completed (Unix time); until the first one, when the QdrantCollectionBackup was created. Exported by the leader only"), &["backup_namespace", "backup_name", "collection"]).unwrap()),
            backup_schedule_interval: reg(&r, GaugeVec::new(Opts::new("qdrant_operator_backup_schedule_interval_seconds", "Seconds between two scheduled backups; 0 without a schedule. Exported by the leader only"), &["backup_namespace", "backup_name", "collection"]).unwrap()),
            backups_total: reg(&r, IntCounterVec::new(Opts::new("qdrant_operator_backups_total", "Backups ended, by result (succeeded, failed). Exported by the leader only"), &["backup_namespace", "backup_name", "result"]).unwrap()),
            backup_duration_seconds: reg(&r, HistogramVec::new(HistogramOpts::new("qdrant_operator_backup_duration_seconds", "Duration of good backups, from the first snapshot to the manifest").buckets(vec![0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0]), &["backup_namespace", "backup_name"]).unwrap()),
            backup_size_bytes: reg(&r, IntGaugeVec::new(Opts::new("qdrant_operator_backup_size_bytes", "Bytes of the last good backup's snapshot files. Exported by the leader only"), &["backup_namespace", "backup_name"]).unwrap()),
            restores_total: reg(&r, IntCounterVec::new(Opts::new("qdrant_operator_restores_total", "Restores ended, by result (completed, failed)"), &["result"]).unwrap()),
            restore_duration_seconds: reg(&r, Histogram::with_opts(HistogramOpts::new("qdrant_operator_restore_duration_seconds", "Duration of completed restores").buckets(vec![0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0])).unwrap()),
            backup_collections: Default::default(),
            registry: r,
        }
    }

    /// Records a backup resource's schedule and its last good backup (or, before the first,
    /// its creation), which `QdrantBackupMissing` compares; the counters and the duration are
    /// exported at zero from here on, so that `increase()` sees the first failure and the
    /// dashboard finds every series.
    pub fn backup_schedule(&self, namespace: &str, name: &str, collection: &str, interval: f64, last_success: f64) {
        // A resource whose collection changed drops the series of the old one, which would
        // otherwise stay frozen and, two intervals on, fire QdrantBackupMissing for good.
        let before = self.backup_collections.lock().unwrap_or_else(|p| p.into_inner()).insert((namespace.to_owned(), name.to_owned()), collection.to_owned());
        if let Some(old) = before.filter(|old| old != collection) {
            for g in [&self.backup_schedule_interval, &self.backup_last_success] {
                let _ = g.remove_label_values(&[namespace, name, &old]);
            }
        }
        let labels = [namespace, name, collection];
        self.backup_schedule_interval.with_label_values(&labels).set(interval);
        self.backup_last_success.with_label_values(&labels).set(last_success);
        for result in ["succeeded", "failed"] {
            self.backups_total.with_label_values(&[namespace, name, result]);
        }
        self.backup_duration_seconds.with_label_values(&[namespace, name]);
    }

    /// Drops a backup resource's series: it was deleted.
    pub fn forget_backup(&self, namespace: &str, name: &str, collection: &str) {
        self.backup_collections.lock().unwrap_or_else(|p| p.into_inner()).remove(&(namespace.to_owned(), name.to_owned()));
        for g in [&self.backup_schedule_interval, &self.backup_last_success] {
            let _ = g.remove_label_values(&[namespace, name, collection]);
        }
        for result in ["succeeded", "failed"] {
            let _ = self.backups_total.remove_label_values(&[namespace, name, result]);
        }
        let _ = self.backup_size_bytes.remove_label_values(&[namespace, name]);
        let _ = self.backup_duration_seconds.remove_label_values(&[namespace, name]);
    }

    /// Exports every per-pod series at zero from start-up, so `sum(operator_leader)` counts
    /// leaders over all replicas, followers included.
    pub fn init_identity(&self, pod: &str, lease: &str) {
        self.operator_leader.with_label_values(&[pod]).set(0);
        self.leader_transitions_total.with_label_values(&[pod]);
        self.time_as_leader_seconds_total.with_label_values(&[pod]);
        self.lease_transitions.with_label_values(&[lease]);
        self.master_status.with_label_values(&[lease]).set(0);
        self.compat_leader.set(0);
        self.undecodable_objects.with_label_values(&["QdrantCluster"]).set(0);
        for result in ["success", "error"] {
            self.reconcile_total.with_label_values(&["QdrantCluster", result]);
        }
        for category in crate::Error::FAILURE_CATEGORIES {
            self.errors_total.with_label_values(&[category]);
        }
    }

    /// Records a cluster's health as just judged: `None` for what Qdrant did not tell. The
    /// cluster's abort counter is exported from here on, at zero until a transfer is aborted.
    pub fn cluster_health(&self, namespace: &str, name: &str, healthy: bool, peers: Option<usize>, not_active: Option<u64>) {
        let labels = [namespace, name];
        self.cluster_healthy.with_label_values(&labels).set(i64::from(healthy));
        self.transfers_aborted.with_label_values(&labels);
        let set = |g: &IntGaugeVec, v: Option<i64>| match v {
            Some(v) => g.with_label_values(&labels).set(v),
            None => drop(g.remove_label_values(&labels)),
        };
        set(&self.cluster_peers, peers.map(|n| n as i64));
        set(&self.cluster_replicas_not_active, not_active.map(|n| i64::try_from(n).unwrap_or(i64::MAX)));
    }

    /// Drops a cluster's series: it was deleted, or is blocked and Qdrant is not asked.
    pub fn forget_cluster(&self, namespace: &str, name: &str) {
        for g in [&self.cluster_healthy, &self.cluster_peers, &self.cluster_replicas_not_active, &self.scale_down_blocked] {
            let _ = g.remove_label_values(&[namespace, name]);
        }
        let _ = self.transfers_aborted.remove_label_values(&[namespace, name]);
    }

    /// Drops every cluster's series when this replica stops leading: only the leader looks at
    /// Qdrant, so a follower's values would only grow stale and confuse alerts.
    pub fn forget_clusters(&self) {
        for g in [&self.cluster_healthy, &self.cluster_peers, &self.cluster_replicas_not_active, &self.scale_down_blocked] {
            g.reset();
        }
        self.transfers_aborted.reset();
        self.backup_last_success.reset();
        self.backup_schedule_interval.reset();
        self.backup_size_bytes.reset();
        self.backup_collections.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series dashboards and alerts query exist before the first event that moves them.
    #[test]
    fn counters_are_exported_at_zero_before_any_event() {
        let m = Metrics::new();
        m.init_identity("op-0", "qdrant-operator");
        let text = m.render();
        for category in crate::Error::FAILURE_CATEGORIES {
            assert!(text.contains(&format!("qdrant_operator_errors_total{{type=\"{category}\"}} 0\n")), "{category}:\n{text}");
        }
        assert!(!text.contains("qdrant_operator_transfers_aborted_total"), "no cluster judged yet:\n{text}");
        m.cluster_health("ns", "c", true, Some(3), Some(0));
        assert!(m.render().contains("qdrant_operator_transfers_aborted_total{cluster_name=\"c\",cluster_namespace=\"ns\"} 0\n"));
        m.forget_cluster("ns", "c");
        assert!(!m.render().contains("qdrant_operator_transfers_aborted_total"));
    }
}
