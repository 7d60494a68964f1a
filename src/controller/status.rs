//! Pure: from the observed StatefulSet (or the validation problems) to the cluster's status.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::build::selector_string;
use crate::crd::{Phase, QdrantCluster, QdrantClusterStatus};
use kube::ResourceExt;

fn condition(type_: &str, status: bool, reason: &str, message: &str, generation: Option<i64>, previous: &[Condition], now: &Time) -> Condition {
    let status = if status { "True" } else { "False" };
    // The transition time moves only when the status flips, so an unchanged cluster gets a
    // byte-identical status and no write.
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition { type_: type_.into(), status: status.into(), reason: reason.into(), message: message.into(), observed_generation: generation, last_transition_time: last }
}

fn previous(qc: &QdrantCluster) -> Vec<Condition> {
    qc.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default()
}

fn snapshots_condition(qc: &QdrantCluster, prev: &[Condition], now: &Time) -> Option<Condition> {
    qc.spec.volume_snapshots.as_ref().filter(|v| v.enabled)?;
    Some(condition("SnapshotsSupported", false, "NotImplemented", "spec.volumeSnapshots is accepted but not acted upon yet", qc.metadata.generation, prev, now))
}

/// Status for a cluster the operator does not act on until someone fixes something:
/// `qdrantStatus: Error`, with `reason` and `message` saying what. The replica counts are kept
/// from before, since nothing was changed.
pub fn blocked(name: &str, generation: Option<i64>, old: Option<&QdrantClusterStatus>, reason: &str, message: &str, now: &Time) -> QdrantClusterStatus {
    let prev = old.map(|s| s.conditions.clone()).unwrap_or_default();
    let old = old.cloned().unwrap_or_default();
    let g = generation;
    QdrantClusterStatus {
        qdrant_status: Some(Phase::Error),
        observed_generation: g,
        replicas: old.replicas,
        ready_replicas: old.ready_replicas,
        selector: Some(selector_string(name)),
        reason: Some(reason.into()),
        message: Some(message.into()),
        conditions: vec![
            condition("Ready", false, reason, message, g, &prev, now),
            condition("Progressing", false, reason, "nothing is applied until this is fixed", g, &prev, now),
            condition("Degraded", true, reason, message, g, &prev, now),
        ],
    }
}

/// [`blocked`] for a cluster whose spec decoded.
pub fn blocked_on(qc: &QdrantCluster, reason: &str, message: &str, now: &Time) -> QdrantClusterStatus {
    blocked(&qc.name_any(), qc.metadata.generation, qc.status.as_ref(), reason, message, now)
}

/// Status from the StatefulSet the API server returned after apply.
pub fn from_stateful_set(qc: &QdrantCluster, sts: &StatefulSet, now: &Time) -> QdrantClusterStatus {
    let prev = previous(qc);
    let g = qc.metadata.generation;
    let desired = qc.spec.replicas;
    let st = sts.status.clone().unwrap_or_default();
    let ready = st.ready_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let current = st.replicas;
    let sts_synced = st.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0);
    let settled = sts_synced && ready == desired && updated >= desired && current == desired;
    let (phase, reason, message) = if settled {
        (Phase::Running, "AllReplicasReady", format!("{ready}/{desired} replicas ready"))
    } else if ready == 0 {
        (Phase::Pending, "ReplicasNotReady", format!("0/{desired} replicas ready"))
    } else {
        (Phase::OperationInProgress, "StatefulSetUpdate", format!("{ready}/{desired} replicas ready, {updated} updated"))
    };
    let conditions = [
        Some(condition("Ready", settled, if settled { "AllReplicasReady" } else { "ReplicasNotReady" }, &format!("{ready}/{desired} replicas ready"), g, &prev, now)),
        Some(condition("Progressing", !settled, if settled { "Settled" } else { "StatefulSetUpdate" }, &message, g, &prev, now)),
        Some(condition("Degraded", false, "AsExpected", "", g, &prev, now)),
        snapshots_condition(qc, &prev, now),
    ]
    .into_iter()
    .flatten()
    .collect();
    QdrantClusterStatus {
        qdrant_status: Some(phase),
        observed_generation: g,
        replicas: Some(current),
        ready_replicas: Some(ready),
        selector: Some(selector_string(&qc.name_any())),
        reason: Some(reason.into()),
        message: Some(message),
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;

    fn qc(replicas: i32) -> QdrantCluster {
        let spec = serde_json::from_value(serde_json::json!({"replicas": replicas, "image": "qdrant/qdrant:v1.16.3"})).unwrap();
        let mut qc = QdrantCluster::new("c", spec);
        qc.metadata.generation = Some(2);
        qc
    }

    fn sts(replicas: i32, ready: i32) -> StatefulSet {
        let mut s = StatefulSet::default();
        s.metadata.generation = Some(1);
        s.status = Some(StatefulSetStatus { replicas, ready_replicas: Some(ready), updated_replicas: Some(replicas), observed_generation: Some(1), ..Default::default() });
        s
    }

    fn now() -> Time {
        Time(jiff::Timestamp::now())
    }

    #[test]
    fn phases() {
        assert_eq!(from_stateful_set(&qc(1), &sts(1, 0), &now()).qdrant_status, Some(Phase::Pending));
        let s = from_stateful_set(&qc(1), &sts(1, 1), &now());
        assert_eq!(s.qdrant_status, Some(Phase::Running));
        assert_eq!((s.ready_replicas, s.observed_generation), (Some(1), Some(2)));
        assert!(s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "AllReplicasReady"));
        assert_eq!(from_stateful_set(&qc(3), &sts(3, 1), &now()).qdrant_status, Some(Phase::OperationInProgress));
        assert_eq!(s.selector.as_deref(), Some("clustername=c,component=qdrant"));
    }

    #[test]
    fn unchanged_input_gives_an_identical_status() {
        let mut c = qc(1);
        let first = from_stateful_set(&c, &sts(1, 1), &now());
        c.status = Some(first.clone());
        let later = Time(jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_secs(60)).unwrap());
        assert_eq!(from_stateful_set(&c, &sts(1, 1), &later), first);
    }

    #[test]
    fn invalid_spec_status() {
        let s = blocked_on(&qc(1), "InvalidSpec", &["a", "b"].join("; "), &now());
        assert_eq!(s.qdrant_status, Some(Phase::Error));
        assert_eq!(s.reason.as_deref(), Some("InvalidSpec"));
        assert_eq!(s.message.as_deref(), Some("a; b"));
    }
}
