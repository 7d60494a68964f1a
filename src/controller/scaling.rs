//! The Kubernetes half of scaling (`operations::scale` is the Qdrant half):
//! - a scale-down keeps every Pod whose peer Qdrant has not yet drained, then deletes the
//!   volumes of drained Pods once their peers are out of the cluster;
//! - a scale-up, once the new peers have joined, spreads shard replicas over them
//!   (`spec.rebalance`).
//!
//! Nothing here is remembered in memory: the StatefulSet's replicas, Qdrant's state and
//! `status.operation` say where an operation stands, so a new leader picks it up where the old
//! one left it.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::status::{Operation, OP_REPLACE_LOST_PEER as REPLACE, OP_ROLLING_RESTART, OP_SCALE_DOWN as SCALE_DOWN, OP_SCALE_UP as SCALE_UP};
use super::{build, health, volumes, Context, RECHECK};
use crate::crd::{OperationStatus, QdrantCluster, TransferStatus};
use crate::operations::health::{Health, PodTarget};
use crate::operations::scale::{self, Progress, Running};
use crate::operations::Access;
use crate::qdrant::QdrantClient;
use crate::Error;

/// How soon to look again while a drain makes progress: each look is one step, and a step that
/// waits for a transfer waits inside the look (up to 5 s), so this is no busy loop. The
/// operator's own status write does not bring the next look (see `controller::run`), so this
/// is the whole pause between a step and the next: measured by `make bench` across a peer
/// removal, 200 ms made it 1.09 s, over the 1 s target.
const NEXT_STEP: Duration = Duration::from_millis(20);
/// How soon to look again when Qdrant could not be read or refused a step.
const RETRY: Duration = Duration::from_secs(5);

/// What the reconcile does about scaling: the Pods the StatefulSet keeps, the operation to
/// show, and when to look again (`None`: on the next change).
pub struct Decision {
    pub keep: i32,
    pub op: Option<Operation>,
    pub requeue: Option<Duration>,
}

/// Takes the next step of the scaling under way, if any. A scale-down drains the highest peer
/// that goes, removes it from consensus once empty, then deletes drained Pods' volumes; a
/// scale-up rebalances ([`scale_up`]).
pub async fn next(ctx: &Context, qc: &QdrantCluster, access: &Access) -> Result<Decision, Error> {
    let desired = qc.spec.replicas;
    let idle = Decision { keep: desired, op: None, requeue: None };
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &qc.namespace().unwrap_or_default());
    let Some(current) = sts_api.get_opt(&qc.name_any()).await?.and_then(|s| s.spec?.replicas) else { return Ok(idle) };
    let any = qc.status.as_ref().and_then(|s| s.operation.clone());
    // A lost peer is replaced before anything else goes on: a rolling restart waits for the
    // cluster to be whole, which it is not until then.
    if volumes::may_have_lost(qc) && any.as_ref().is_none_or(|o| o.type_ == REPLACE || o.type_ == OP_ROLLING_RESTART) {
        if let Some(decision) = replace_lost_peer(ctx, qc, access, current, any.as_ref()).await? {
            return Ok(decision);
        }
    }
    if current <= desired && any.as_ref().is_none_or(|o| o.type_ == SCALE_UP || o.type_ == REPLACE) {
        return scale_up(ctx, qc, access, current, any).await;
    }
    let recorded = any.filter(|o| o.type_ == SCALE_DOWN);
    let from = recorded.as_ref().map_or(current, |o| o.from_replicas.max(current));
    let op = |step: String, pod: Option<String>, blocked: Option<String>| Some(Operation { status: OperationStatus { type_: SCALE_DOWN.into(), from_replicas: from, step, pod, transfer: None }, blocked });

    if current <= desired {
        // The StatefulSet has shrunk (or never had to): what is left is the drained Pods'
        // volumes, when the scale-down recorded in the status is not finished yet.
        if recorded.is_none() {
            return Ok(idle);
        }
        let (_, qdrant) = health::observe(ctx, qc, access).await?;
        let left = delete_drained_volumes(ctx, qc, desired, from, &qdrant).await?;
        if left.is_empty() {
            ctx.event(&qc.object_ref(&()), EventType::Normal, "ScaledDown", format!("Scaled down from {from} to {desired} Pods; every shard kept")).await;
            return Ok(idle);
        }
        return Ok(Decision { keep: desired, op: op(format!("waiting for {} to go before deleting its volume", left.join(", ")), None, None), requeue: Some(Duration::from_secs(1)) });
    }

    let (targets, qdrant) = health::observe(ctx, qc, access).await?;
    let client = match ctx.qdrant.client(access) {
        Ok(c) => c,
        Err(e) => return Ok(Decision { keep: current, op: op(format!("cannot reach Qdrant: {e}"), None, None), requeue: Some(RECHECK) }),
    };
    let wanted = u32::try_from(desired).unwrap_or(0);
    let drain = scale::drain_step(&client, &ctx.guard, &targets, &qdrant, wanted).await;
    let pod_of = |peer: Option<u64>| peer.and_then(|id| qdrant.peers.iter().find(|p| p.peer_id == id)?.pod.clone());
    // Without a view of the consensus nothing is known to be drained: keep every Pod.
    let keep_draining = if qdrant.peer_count.is_some() { i32::try_from(scale::pods_to_keep(&qdrant, wanted)).unwrap_or(current).min(current) } else { current };
    Ok(match drain {
        Progress::Done => Decision { keep: desired, op: op("every peer that goes is out of the cluster".into(), None, None), requeue: Some(Duration::from_secs(1)) },
        Progress::Working { step, peer, running } => {
            let mut shown = op(step, pod_of(peer), None);
            if let Some(o) = shown.as_mut() {
                o.status.transfer = follow_transfer(ctx, qc, &client, &targets, &qdrant, recorded.as_ref(), running).await;
            }
            Decision { keep: keep_draining, op: shown, requeue: Some(NEXT_STEP) }
        }
        Progress::Unavailable { message } => Decision { keep: current, op: op(message, None, None), requeue: Some(RETRY) },
        Progress::Blocked { message } => {
            let first = recorded.as_ref().is_none_or(|o| o.step != message);
            if first {
                ctx.event(&qc.object_ref(&()), EventType::Warning, "ScaleDownBlocked", message.clone()).await;
            }
            Decision { keep: current, op: op(message.clone(), None, Some(message)), requeue: Some(RECHECK) }
        }
    })
}

/// Forgets a peer whose volume was replaced (see `volumes`), one step per call: its replicas
/// that have Active copies elsewhere are dropped, then it is removed from consensus, which
/// lets its Pod's new peer join. A shard whose only copy it held blocks that, and is reported.
/// `None` when no peer is lost; once it is gone, [`scale_up`] carries on with the
/// `ReplaceLostPeer` operation and brings every shard back to its replication factor.
async fn replace_lost_peer(ctx: &Context, qc: &QdrantCluster, access: &Access, current: i32, recorded: Option<&OperationStatus>) -> Result<Option<Decision>, Error> {
    let (targets, qdrant) = health::observe(ctx, qc, access).await?;
    let Some((peer, pod)) = volumes::lost(ctx, qc, &qdrant).await?.into_iter().next() else { return Ok(None) };
    let op = |step: String, blocked: Option<String>| Some(Operation { status: OperationStatus { type_: REPLACE.into(), from_replicas: current, step, pod: Some(pod.clone()), transfer: None }, blocked });
    let client = match ctx.qdrant.client(access) {
        Ok(c) => c,
        Err(e) => return Ok(Some(Decision { keep: current, op: op(format!("cannot reach Qdrant: {e}"), None), requeue: Some(RECHECK) })),
    };
    Ok(Some(match scale::forget_step(&client, &ctx.guard, &targets, &qdrant, peer).await {
        Progress::Done => Decision { keep: current, op: op(format!("peer {peer} is out of the cluster; waiting for {pod} to join again"), None), requeue: Some(Duration::from_secs(1)) },
        Progress::Working { step, running, .. } => {
            let mut shown = op(step, None);
            if let Some(o) = shown.as_mut() {
                o.status.transfer = follow_transfer(ctx, qc, &client, &targets, &qdrant, recorded, running).await;
            }
            Decision { keep: current, op: shown, requeue: Some(NEXT_STEP) }
        }
        Progress::Unavailable { message } => Decision { keep: current, op: op(message, None), requeue: Some(RETRY) },
        Progress::Blocked { message } => {
            if recorded.is_none_or(|o| o.step != message) {
                ctx.event(&qc.object_ref(&()), EventType::Warning, "PeerLost", message.clone()).await;
            }
            Decision { keep: current, op: op(message.clone(), Some(message)), requeue: Some(RECHECK) }
        }
    }))
}

/// A scale-up: once every new Pod's peer is in the cluster, one rebalancing step per call,
/// until the placement is as even as it gets. Starts when the StatefulSet has fewer Pods than
/// wanted and `spec.rebalance` is on; `status.operation` carries it over to the next calls.
/// The same ends the replacement of a lost peer, whose Pod's new peer joins empty.
async fn scale_up(ctx: &Context, qc: &QdrantCluster, access: &Access, current: i32, recorded: Option<OperationStatus>) -> Result<Decision, Error> {
    let desired = qc.spec.replicas;
    let idle = Decision { keep: desired, op: None, requeue: None };
    if !qc.spec.rebalance {
        return Ok(idle);
    }
    let from = match &recorded {
        Some(o) => o.from_replicas,
        // From no Pods at all (a new cluster, a StatefulSet scaled to 0 by hand) there is
        // nothing to spread.
        None if current < desired && current > 0 => current,
        None => return Ok(idle),
    };
    let kind = recorded.as_ref().map_or(SCALE_UP, |o| o.type_.as_str()).to_owned();
    let pod = recorded.as_ref().and_then(|o| o.pod.clone());
    let op = |step: String| Some(Operation { status: OperationStatus { type_: kind.clone(), from_replicas: from, step, pod: pod.clone(), transfer: None }, blocked: None });
    let (targets, qdrant) = health::observe(ctx, qc, access).await?;
    let joined = (0..desired).all(|i| qdrant.peers.iter().any(|p| p.pod.as_deref() == Some(format!("{}-{i}", qc.name_any()).as_str())));
    if !joined {
        return Ok(Decision { keep: desired, op: op(format!("waiting for the peers of all {desired} Pods to join")), requeue: Some(Duration::from_secs(2)) });
    }
    let client = match ctx.qdrant.client(access) {
        Ok(c) => c,
        Err(e) => return Ok(Decision { keep: desired, op: op(format!("cannot reach Qdrant: {e}")), requeue: Some(RECHECK) }),
    };
    Ok(match scale::rebalance_step(&client, &ctx.guard, &targets, &qdrant).await {
        Progress::Done => {
            let note = match &pod {
                Some(pod) if kind == REPLACE => format!("{pod} joined again with a new peer; every shard is back to its replication factor"),
                _ => format!("Scaled up from {from} to {desired} Pods; shard replicas spread over every peer"),
            };
            ctx.event(&qc.object_ref(&()), EventType::Normal, if kind == REPLACE { "PeerReplaced" } else { "Rebalanced" }, note).await;
            idle
        }
        Progress::Working { step, running, .. } => {
            let mut shown = op(step);
            if let Some(o) = shown.as_mut() {
                o.status.transfer = follow_transfer(ctx, qc, &client, &targets, &qdrant, recorded.as_ref(), running).await;
            }
            Decision { keep: desired, op: shown, requeue: Some(NEXT_STEP) }
        }
        Progress::Unavailable { message } | Progress::Blocked { message } => Decision { keep: desired, op: op(message), requeue: Some(RETRY) },
    })
}

/// Follows the transfer an operation waits for. One whose source peer reported no new progress
/// for `--transfer-stall-timeout` (counted from the status, so across leaders) is aborted, which
/// loses nothing: the next step starts it again. The abort is reported by an Event and
/// `qdrant_operator_transfers_aborted_total`. Returns what the status records of the transfer.
async fn follow_transfer(ctx: &Context, qc: &QdrantCluster, client: &QdrantClient, targets: &[PodTarget], qdrant: &Health, recorded: Option<&OperationStatus>, running: Option<Running>) -> Option<TransferStatus> {
    let running = running?;
    let tracked = track(recorded.and_then(|o| o.transfer.as_ref()), &running, &super::now());
    let quiet = jiff::Timestamp::now().duration_since(tracked.since.0).unsigned_abs();
    if quiet < ctx.transfer_stall_timeout {
        return Some(tracked);
    }
    let w = &running.transfer;
    let what = format!("the transfer of shard {} of {} from peer {} to peer {}", w.shard_id, w.collection, w.from, w.to);
    match scale::abort_transfer(client, &ctx.guard, targets, qdrant, w).await {
        Ok(()) => {
            let (ns, name) = (qc.namespace().unwrap_or_default(), qc.name_any());
            ctx.metrics.transfers_aborted.with_label_values(&[ns.as_str(), name.as_str()]).inc();
            let note = format!("Aborted {what}: no progress for {}s; it is started again", quiet.as_secs());
            ctx.event(&qc.object_ref(&()), EventType::Warning, "TransferAborted", note).await;
            None
        }
        Err(e) => {
            tracing::warn!(cluster = %qc.name_any(), error = %e, "aborting a stalled transfer failed");
            Some(tracked)
        }
    }
}

/// The status of a running transfer: since when it shows its current progress. The same
/// transfer with the same progress as recorded keeps its time; anything else starts now.
fn track(recorded: Option<&TransferStatus>, running: &Running, now: &Time) -> TransferStatus {
    let w = &running.transfer;
    let fresh = TransferStatus { collection: w.collection.clone(), shard_id: w.shard_id, from: w.from.to_string(), to: w.to.to_string(), since: now.clone(), progress: running.progress.clone() };
    match recorded {
        Some(r) if TransferStatus { since: r.since.clone(), ..fresh.clone() } == *r => r.clone(),
        _ => fresh,
    }
}

/// Deletes the volume of every Pod from `desired` to `from` that is gone and whose peer is out
/// of the cluster; returns the Pods still waited for (still running, or still a peer).
async fn delete_drained_volumes(ctx: &Context, qc: &QdrantCluster, desired: i32, from: i32, qdrant: &crate::operations::health::Health) -> Result<Vec<String>, Error> {
    let (ns, name) = (qc.namespace().unwrap_or_default(), qc.name_any());
    let running: Vec<String> = ctx.pods.pods(&ns, &name).unwrap_or_default().into_iter().map(|(p, _)| p).collect();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let mut left = Vec::new();
    for ordinal in desired..from {
        let pod = format!("{name}-{ordinal}");
        if running.contains(&pod) || qdrant.peers.iter().any(|p| p.pod.as_deref() == Some(pod.as_str())) {
            left.push(pod);
            continue;
        }
        let claim = build::storage_claim_name(&pod);
        let Some(pvc) = claims.get_metadata_opt(&claim).await? else { continue };
        // Only a claim of this cluster's StatefulSet, never one a user made with that name.
        if pvc.labels().get("clustername") != Some(&name) || pvc.metadata.deletion_timestamp.is_some() {
            continue;
        }
        ctx.guard.write(claims.delete(&claim, &DeleteParams::default())).await??;
        ctx.event(&qc.object_ref(&()), EventType::Normal, "VolumeDeleted", format!("Deleted {claim}: its peer was drained and removed")).await;
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::plan::Waiting;

    fn at(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn a_transfer_keeps_its_time_only_while_it_shows_the_same_progress() {
        let running = |shard_id, progress: Option<&str>| Running { transfer: Waiting { collection: "c".into(), shard_id, from: u64::MAX - 58, to: 7 }, progress: progress.map(str::to_owned) };
        let first = track(None, &running(1, None), &at(100));
        assert_eq!((first.from.as_str(), first.to.as_str(), first.since.clone()), ("18446744073709551557", "7", at(100)));
        // Seen again, unchanged: still since 100, so its quiet time grows across reconciles
        // and leaders.
        assert_eq!(track(Some(&first), &running(1, None), &at(200)).since, at(100));
        // Progress, or another transfer: the clock starts again.
        assert_eq!(track(Some(&first), &running(1, Some("Transferring records (10/100)")), &at(200)).since, at(200));
        assert_eq!(track(Some(&first), &running(2, None), &at(200)).since, at(200));
    }
}
