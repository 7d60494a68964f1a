//! Pure: from the observed StatefulSet (or the validation problems) to the cluster's status.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::build::selector_string;
use crate::crd::{OperationStatus, Phase, QdrantCluster, QdrantClusterStatus};
use crate::operations::health::Health;
use kube::ResourceExt;

/// A condition whose transition time moves only when its status flips (also used for
/// collections and backups).
pub(crate) fn condition(type_: &str, status: bool, reason: &str, message: &str, generation: Option<i64>, previous: &[Condition], now: &Time) -> Condition {
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
        // Qdrant is not asked while the cluster is blocked, and an old view would mislead.
        qdrant: None,
        // An operation under way stays recorded, for whoever resumes it once this is fixed.
        operation: old.operation,
    }
}

/// [`blocked`] for a cluster whose spec decoded.
pub fn blocked_on(qc: &QdrantCluster, reason: &str, message: &str, now: &Time) -> QdrantClusterStatus {
    blocked(&qc.name_any(), qc.metadata.generation, qc.status.as_ref(), reason, message, now)
}

pub const PAUSED_MESSAGE: &str = "spec.paused is true: the operator writes nothing to this cluster's objects or to Qdrant until it is false";

/// Status of a paused cluster: what it was, with the condition `Paused`. Nothing else is
/// looked at while paused, so nothing else is claimed.
pub fn paused(qc: &QdrantCluster, now: &Time) -> QdrantClusterStatus {
    let prev = previous(qc);
    let mut st = qc.status.clone().unwrap_or_default();
    st.conditions.retain(|c| c.type_ != "Paused");
    st.conditions.push(condition("Paused", true, "Paused", PAUSED_MESSAGE, qc.metadata.generation, &prev, now));
    st.observed_generation = qc.metadata.generation;
    st.reason = Some("Paused".into());
    st.message = Some(PAUSED_MESSAGE.into());
    st
}

/// `StorageAsSpecified`, with persistence: whether the StatefulSet's claim templates have the
/// size the spec asks for. A smaller size is never applied (`claims`); a larger one is, unless
/// the StorageClass refuses the expansion, which an Event `VolumeExpansionFailed` reports.
fn storage_condition(qc: &QdrantCluster, sts: &StatefulSet, prev: &[Condition], now: &Time) -> Option<Condition> {
    let wanted = super::build::claim_templates(qc);
    let live = sts.spec.as_ref()?.volume_claim_templates.clone().unwrap_or_default();
    let size = |t: &k8s_openapi::api::core::v1::PersistentVolumeClaim| t.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage").map(|q| q.0.clone());
    let mut problems = Vec::new();
    let mut reason = "AsSpecified";
    for w in &wanted {
        let name = w.metadata.name.clone().unwrap_or_default();
        let Some(l) = live.iter().find(|l| l.metadata.name.as_deref() == Some(name.as_str())) else { continue };
        let (ws, ls) = (size(w).unwrap_or_default(), size(l).unwrap_or_default());
        match (super::claims::bytes(&ws), super::claims::bytes(&ls)) {
            (Some(a), Some(b)) if a < b => {
                reason = "ShrinkRefused";
                problems.push(format!("{name}: the volumes stay at {ls}; shrinking them to {ws} is not possible"));
            }
            (Some(a), Some(b)) if a > b => {
                reason = "ExpansionPending";
                problems.push(format!("{name}: the volumes are {ls}; expanding them to {ws} has not happened yet (see the Events)"));
            }
            _ => {}
        }
    }
    if wanted.is_empty() {
        return None;
    }
    Some(condition("StorageAsSpecified", problems.is_empty(), reason, &problems.join("; "), qc.metadata.generation, prev, now))
}

/// Status from the StatefulSet the API server returned after apply.
pub fn from_stateful_set(qc: &QdrantCluster, sts: &StatefulSet, now: &Time) -> QdrantClusterStatus {
    let prev = previous(qc);
    let g = qc.metadata.generation;
    let desired = qc.spec.replicas;
    let st = sts.status.clone().unwrap_or_default();
    let ready = st.ready_replicas.unwrap_or(0);
    // Pods of the revision a StatefulSet had when it was taken over count as updated while
    // the takeover record stands (see `build::Adoption`): they are not to be restarted.
    let adopted = sts.annotations().get(super::build::ADOPTED_ANNOTATION).and_then(|v| super::build::Adoption::parse(v));
    let kept = match (&adopted, &st.current_revision, &st.update_revision) {
        (Some(a), Some(current), Some(update)) if a.revision == *current && current != update => st.current_replicas.unwrap_or(0),
        _ => 0,
    };
    let updated = st.updated_replicas.unwrap_or(0) + kept;
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
        storage_condition(qc, sts, &prev, now),
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
        qdrant: None,
        operation: None,
    }
}

/// `status.operation.type` of a scale-down, a scale-up and a rolling restart.
pub const OP_SCALE_DOWN: &str = "ScaleDown";
pub const OP_SCALE_UP: &str = "ScaleUp";
pub const OP_ROLLING_RESTART: &str = "RollingRestart";
pub const OP_REPLACE_LOST_PEER: &str = "ReplaceLostPeer";

/// A Qdrant operation to show in the status: what it is (see [`OperationStatus`]) and, when
/// it cannot go on, why.
pub struct Operation {
    pub status: OperationStatus,
    pub blocked: Option<String>,
}

/// Adds the operation under way, if any, to a status made by [`with_health`]: `operation`,
/// `qdrantStatus: OperationInProgress` with the step as the message, and, for a scale-down, the
/// condition `ScaleDownBlocked` (True, reason `DataWouldBeLost`, when the drain cannot go on).
pub fn with_operation(mut status: QdrantClusterStatus, op: Option<Operation>, desired: i32, previous: &[Condition], now: &Time) -> QdrantClusterStatus {
    status.conditions.retain(|c| c.type_ != "ScaleDownBlocked");
    let Some(op) = op else {
        status.operation = None;
        return status;
    };
    status.qdrant_status = Some(Phase::OperationInProgress);
    let from = op.status.from_replicas;
    let (reason, message) = match op.status.type_.as_str() {
        OP_SCALE_DOWN => {
            let g = status.observed_generation;
            let (blocked, reason, message) = match &op.blocked {
                Some(m) => (true, "DataWouldBeLost", m.clone()),
                None => (false, "Draining", op.status.step.clone()),
            };
            status.conditions.push(condition("ScaleDownBlocked", blocked, reason, &message, g, previous, now));
            (if blocked { "ScaleDownBlocked" } else { OP_SCALE_DOWN }, format!("scaling down from {from} to {desired} Pods: {message}"))
        }
        OP_SCALE_UP => (OP_SCALE_UP, format!("scaling up from {from} to {desired} Pods: {}", op.status.step)),
        OP_REPLACE_LOST_PEER => {
            let pod = op.status.pod.as_deref().unwrap_or("a Pod");
            let reason = if op.blocked.is_some() { "PeerLost" } else { OP_REPLACE_LOST_PEER };
            (reason, format!("replacing the peer of {pod}, whose volume was replaced: {}", op.status.step))
        }
        other => (other, format!("restarting Pods one at a time: {}", op.status.step)),
    };
    status.reason = Some(reason.into());
    status.message = Some(message);
    status.operation = Some(op.status);
    status
}

/// Adds Qdrant's own health (see `operations::health::assess`) to a status made by
/// [`from_stateful_set`]: `status.qdrant`, the `Healthy` condition, and:
/// - when every Pod is Ready (`Running`): `qdrantStatus: Healthy` if Qdrant is healthy, else it
///   stays `Running`, with the health's reason;
/// - `Degraded` with the health's reason and message whenever Qdrant is not healthy, except
///   while the cluster is `Pending` (its first Pods starting are expected to be unreachable);
/// - the message says what Qdrant reports.
///
/// `previous` are the conditions of the stored status, so that transition times move only on a
/// flip. The same inputs give the same status.
pub fn with_health(mut status: QdrantClusterStatus, health: &Health, previous: &[Condition], now: &Time) -> QdrantClusterStatus {
    let g = status.observed_generation;
    let healthy = health.is_healthy();
    let reason = health.reason();
    let message = health.message();
    status.qdrant = Some(health.to_status());
    status.conditions.retain(|c| c.type_ != "Healthy");
    status.conditions.push(condition("Healthy", healthy, reason, &message, g, previous, now));
    let settled = matches!(status.qdrant_status, Some(Phase::Running | Phase::Healthy));
    if settled {
        status.qdrant_status = Some(if healthy { Phase::Healthy } else { Phase::Running });
        status.reason = Some(reason.into());
    }
    if !healthy && status.qdrant_status != Some(Phase::Pending) {
        let degraded = condition("Degraded", true, reason, &message, g, previous, now);
        match status.conditions.iter_mut().find(|c| c.type_ == "Degraded") {
            Some(c) => *c = degraded,
            None => status.conditions.push(degraded),
        }
    }
    if settled || !healthy {
        status.message = Some(match status.message.take().filter(|m| !m.is_empty()) {
            Some(m) => format!("{m}; Qdrant: {message}"),
            None => format!("Qdrant: {message}"),
        });
    }
    status
}

/// Whether two statuses differ at most in why some Pod is unreachable. That detail is whatever
/// failed first within the deadline: a name lookup that fails at once one time and takes
/// longer than the deadline the next, with nothing else changed. Writing each such change made
/// every look at an unreachable Pod a status write, and each write a new reconcile (measured: 200
/// idle clusters whose Pods never answer, 150 status writes a minute). The detail shown is the
/// one seen when the Pod's problem began; any other change is written.
pub fn same_but_unreachable_detail(a: &QdrantClusterStatus, b: &QdrantClusterStatus) -> bool {
    let text = |s: &QdrantClusterStatus| serde_json::to_string(s).map(|t| without_unreachable_detail(&t));
    matches!((text(a), text(b)), (Ok(a), Ok(b)) if a == b)
}

/// `text` with every `unreachable (<detail>)` cut to `unreachable` (nested parentheses
/// included).
fn without_unreachable_detail(text: &str) -> String {
    const MARK: &str = "unreachable (";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at + MARK.len() - 2]);
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, ch) in rest[at + MARK.len() - 1..].char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at + MARK.len() - 1 + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::health::{PeerHealth, Problem, Reason};
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
    fn pods_kept_from_a_takeover_count_as_updated() {
        let mut s = sts(3, 3);
        let st = s.status.as_mut().unwrap();
        (st.updated_replicas, st.current_replicas) = (Some(1), Some(2));
        (st.current_revision, st.update_revision) = (Some("c-js".into()), Some("c-ours".into()));
        assert_eq!(from_stateful_set(&qc(3), &s, &now()).qdrant_status, Some(Phase::OperationInProgress), "2 Pods wait for a restart");
        s.metadata.annotations = Some([(super::super::build::ADOPTED_ANNOTATION.to_string(), "c-js 0123abcd".to_string())].into());
        assert_eq!(from_stateful_set(&qc(3), &s, &now()).qdrant_status, Some(Phase::Running));
    }

    #[test]
    fn only_the_detail_of_an_unreachable_pod_may_differ_for_two_statuses_to_be_the_same() {
        assert_eq!(without_unreachable_detail("c-0: unreachable (no answer within 5s); c-1: unreachable (a (b) c), Pod not Ready"), "c-0: unreachable; c-1: unreachable, Pod not Ready");
        assert_eq!(without_unreachable_detail("c-0: unreachable (cut"), "c-0: unreachable");
        let with = |m: &str| QdrantClusterStatus { message: Some(format!("1/1 replicas ready; Qdrant: c-0: {m}")), ..Default::default() };
        let dns = with("unreachable (connect: failed to lookup address information: Name or service not known)");
        assert!(same_but_unreachable_detail(&dns, &with("unreachable (no answer within 5s)")));
        assert!(!same_but_unreachable_detail(&dns, &with("500 Internal Server Error: boom")));
        assert!(!same_but_unreachable_detail(&dns, &QdrantClusterStatus { replicas: Some(2), ..dns.clone() }));
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

    fn health(problems: Vec<Problem>) -> Health {
        let peer = |i: u64, id: u64| PeerHealth { peer_id: id, uri: format!("http://c-{i}.c-headless.ns:6335/"), pod: Some(format!("c-{i}")) };
        Health {
            peers: vec![peer(0, 18446744073709551557), peer(1, 9007199254740993), peer(2, 42)],
            peer_count: Some(3),
            leader_peer_id: Some(9007199254740993),
            leader_pod: Some("c-1".into()),
            term: Some(5),
            commit: Some(9),
            pending_operations: Some(0),
            collections: Some(1),
            replicas_not_active: Some(0),
            replicas_not_active_sample: vec![],
            unreachable: Default::default(),
            rejected: Default::default(),
            answering: Default::default(),
            problems,
        }
    }

    fn unreachable() -> Problem {
        Problem { reason: Reason::PeerUnreachable, message: "c-2: unreachable (connection refused)".into() }
    }

    fn cond<'a>(s: &'a QdrantClusterStatus, type_: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap())
    }

    #[test]
    fn running_and_healthy_is_healthy() {
        let c = qc(3);
        let s = with_health(from_stateful_set(&c, &sts(3, 3), &at(0)), &health(vec![]), &[], &at(0));
        assert_eq!(s.qdrant_status, Some(Phase::Healthy));
        assert_eq!(s.reason.as_deref(), Some("AllPeersHealthy"));
        assert_eq!(s.message.as_deref(), Some("3/3 replicas ready; Qdrant: 3 peers in consensus, Raft leader c-1 (term 5), 1 collection, every shard replica Active"));
        let h = cond(&s, "Healthy");
        assert_eq!((h.status.as_str(), h.reason.as_str(), h.observed_generation), ("True", "AllPeersHealthy", Some(2)));
        assert_eq!(cond(&s, "Degraded").status, "False");
        let q = s.qdrant.as_ref().unwrap();
        assert_eq!((q.health.as_str(), q.peer_count, q.raft_leader.as_deref()), ("Healthy", Some(3), Some("c-1")));
        assert_eq!(q.raft_leader_peer_id.as_deref(), Some("9007199254740993"));
        assert_eq!(q.peers[0].peer_id, "18446744073709551557");
        // As the API server receives it.
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["qdrant"]["peers"][0]["peerId"], serde_json::json!("18446744073709551557"));
        assert_eq!(v["qdrant"]["peerCount"], serde_json::json!(3));
    }

    #[test]
    fn running_but_unhealthy_stays_running_and_is_degraded() {
        let c = qc(3);
        let s = with_health(from_stateful_set(&c, &sts(3, 3), &at(0)), &health(vec![unreachable()]), &[], &at(0));
        assert_eq!(s.qdrant_status, Some(Phase::Running));
        assert_eq!(s.reason.as_deref(), Some("PeerUnreachable"));
        assert_eq!(s.message.as_deref(), Some("3/3 replicas ready; Qdrant: c-2: unreachable (connection refused)"));
        let h = cond(&s, "Healthy");
        assert_eq!((h.status.as_str(), h.reason.as_str()), ("False", "PeerUnreachable"));
        assert_eq!(h.message, "c-2: unreachable (connection refused)");
        let d = cond(&s, "Degraded");
        assert_eq!((d.status.as_str(), d.reason.as_str()), ("True", "PeerUnreachable"));
        assert_eq!(d.message, "c-2: unreachable (connection refused)");
        assert_eq!(s.qdrant.as_ref().unwrap().health, "Degraded");
        // Still one condition of each type.
        assert_eq!(s.conditions.iter().filter(|c| c.type_ == "Degraded").count(), 1);
        assert_eq!(s.conditions.iter().filter(|c| c.type_ == "Healthy").count(), 1);
    }

    #[test]
    fn pods_still_starting_keep_their_phase() {
        let c = qc(3);
        let s = with_health(from_stateful_set(&c, &sts(3, 0), &at(0)), &health(vec![unreachable()]), &[], &at(0));
        assert_eq!(s.qdrant_status, Some(Phase::Pending));
        assert_eq!(s.reason.as_deref(), Some("ReplicasNotReady"));
        assert_eq!(cond(&s, "Degraded").status, "False");
        assert_eq!(cond(&s, "Healthy").status, "False");
        assert_eq!(s.message.as_deref(), Some("0/3 replicas ready; Qdrant: c-2: unreachable (connection refused)"));
        // Healthy Qdrant while Pods roll: the phase and its message are the StatefulSet's.
        let s = with_health(from_stateful_set(&c, &sts(3, 1), &at(0)), &health(vec![]), &[], &at(0));
        assert_eq!(s.qdrant_status, Some(Phase::OperationInProgress));
        assert_eq!(s.message.as_deref(), Some("1/3 replicas ready, 3 updated"));
        assert_eq!(cond(&s, "Healthy").status, "True");
        // A Pod down after the cluster ran: Degraded, naming it, whatever the phase.
        let s = with_health(from_stateful_set(&c, &sts(3, 2), &at(0)), &health(vec![unreachable()]), &[], &at(0));
        assert_eq!(s.qdrant_status, Some(Phase::OperationInProgress));
        let d = cond(&s, "Degraded");
        assert_eq!((d.status.as_str(), d.reason.as_str(), d.message.as_str()), ("True", "PeerUnreachable", "c-2: unreachable (connection refused)"));
        assert_eq!(s.qdrant.as_ref().unwrap().health, "Degraded");
    }

    #[test]
    fn an_unchanged_cluster_gets_a_byte_identical_status_and_flips_move_the_time() {
        let mut c = qc(3);
        let reconcile = |c: &QdrantCluster, h: &Health, now: &Time| {
            let prev = c.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
            with_health(from_stateful_set(c, &sts(3, 3), now), h, &prev, now)
        };
        let first = reconcile(&c, &health(vec![]), &at(0));
        c.status = Some(first.clone());
        let again = reconcile(&c, &health(vec![]), &at(60));
        assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&first).unwrap());

        // Unhealthy: Healthy and Degraded flip at that time, Ready keeps its own.
        let down = reconcile(&c, &health(vec![unreachable()]), &at(120));
        assert_eq!(cond(&down, "Healthy").last_transition_time, at(120));
        assert_eq!(cond(&down, "Degraded").last_transition_time, at(120));
        assert_eq!(cond(&down, "Ready").last_transition_time, at(0));
        c.status = Some(down.clone());
        let still = reconcile(&c, &health(vec![unreachable()]), &at(180));
        assert_eq!(still, down);

        // Back: the flip back is dated too.
        let up = reconcile(&c, &health(vec![]), &at(240));
        assert_eq!(cond(&up, "Healthy").last_transition_time, at(240));
        assert_eq!(cond(&up, "Degraded").last_transition_time, at(240));
        assert_eq!(up.qdrant_status, Some(Phase::Healthy));
    }

    #[test]
    fn a_scale_down_under_way_shows_its_step_and_a_blocked_one_says_why() {
        let c = qc(1);
        let op = |blocked: Option<&str>| Operation {
            status: OperationStatus { type_: "ScaleDown".into(), from_replicas: 3, step: "move shard 0 of a from peer 2 to peer 1".into(), pod: Some("c-2".into()), transfer: None },
            blocked: blocked.map(str::to_owned),
        };
        let s = with_operation(from_stateful_set(&c, &sts(3, 3), &at(0)), Some(op(None)), 1, &[], &at(0));
        assert_eq!(s.qdrant_status, Some(Phase::OperationInProgress));
        assert_eq!(s.message.as_deref(), Some("scaling down from 3 to 1 Pods: move shard 0 of a from peer 2 to peer 1"));
        assert_eq!(cond(&s, "ScaleDownBlocked").status, "False");
        assert_eq!(s.operation.as_ref().unwrap().pod.as_deref(), Some("c-2"));

        let s = with_operation(from_stateful_set(&c, &sts(3, 3), &at(0)), Some(op(Some("cannot drain peer 2: shard 0 of a: no Active replica"))), 1, &[], &at(0));
        let b = cond(&s, "ScaleDownBlocked");
        assert_eq!((b.status.as_str(), b.reason.as_str(), b.message.as_str()), ("True", "DataWouldBeLost", "cannot drain peer 2: shard 0 of a: no Active replica"));
        assert_eq!(s.reason.as_deref(), Some("ScaleDownBlocked"));

        // A scale-up says so, without the scale-down's condition.
        let up = Operation { status: OperationStatus { type_: "ScaleUp".into(), from_replicas: 1, step: "replicate shard 0".into(), pod: None, transfer: None }, blocked: None };
        let u = with_operation(from_stateful_set(&qc(3), &sts(3, 3), &at(0)), Some(up), 3, &[], &at(0));
        assert_eq!((u.reason.as_deref(), u.message.as_deref()), (Some("ScaleUp"), Some("scaling up from 1 to 3 Pods: replicate shard 0")));
        assert!(u.conditions.iter().all(|c| c.type_ != "ScaleDownBlocked"));

        // A rolling restart names its step, without the scale-down's condition.
        let rr = Operation { status: OperationStatus { type_: OP_ROLLING_RESTART.into(), from_replicas: 3, step: "restarting c-2".into(), pod: Some("c-2".into()), transfer: None }, blocked: None };
        let r = with_operation(from_stateful_set(&qc(3), &sts(3, 3), &at(0)), Some(rr), 3, &[], &at(0));
        assert_eq!((r.reason.as_deref(), r.message.as_deref()), (Some("RollingRestart"), Some("restarting Pods one at a time: restarting c-2")));
        assert!(r.conditions.iter().all(|c| c.type_ != "ScaleDownBlocked"));

        // Done: no operation, no condition.
        let s = with_operation(s, None, 1, &[], &at(0));
        assert!(s.operation.is_none() && s.conditions.iter().all(|c| c.type_ != "ScaleDownBlocked"));
    }

    #[test]
    fn invalid_spec_status() {
        let s = blocked_on(&qc(1), "InvalidSpec", &["a", "b"].join("; "), &now());
        assert_eq!(s.qdrant_status, Some(Phase::Error));
        assert_eq!(s.reason.as_deref(), Some("InvalidSpec"));
        assert_eq!(s.message.as_deref(), Some("a; b"));
    }
}
