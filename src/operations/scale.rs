//! Scale-down drains and scale-up rebalancing, carried out one planned step at a time against
//! the live cluster.
//!
//! Each call looks at Qdrant afresh, asks [`plan::scale_down_step`] for the one next step, does
//! it (every write through the leadership guard), and waits a short while for it to finish. So
//! whoever leads next recomputes the same step from the same state: a transfer under way is
//! waited for, never started twice, and a peer is removed only once it holds nothing.

use std::time::Duration;

use tokio::time::Instant;

use super::health::{ordinal, Health, PodTarget};
use super::plan::{self, ClusterView, CollectionView, ForgetStep, PeerView, RebalanceStep, ScaleDownStep, Step, Waiting};
use crate::leader::LeadershipGuard;
use crate::qdrant::{AbortShardTransfer, ClusterOperation, CollectionClusterInfo, Peer, QdrantClient, RemovePeer, ReplicaState};

/// How long one call waits for the step it started (a transfer, a peer removal) to finish
/// before it returns and lets the caller report progress, and look whether the transfer
/// is stuck.
const STEP_WAIT: Duration = Duration::from_secs(5);
/// How often a running transfer is looked at: the pause between a transfer's end and the next
/// step is at most this plus one reconcile.
const POLL: Duration = Duration::from_millis(200);

/// Where an operation stands after one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A step was taken, or a transfer is under way; call again soon. The text says what,
    /// `peer` is the peer being drained, if any, and `running` the transfer still under way
    /// when the call stopped waiting for it.
    Working { step: String, peer: Option<u64>, running: Option<Running> },
    /// Nothing is left to do: for a drain, no peer to remove is in consensus any more (the
    /// StatefulSet may shrink); for a rebalance, the placement is as even as it gets.
    Done,
    /// Going on would lose data; nothing is done until the cluster changes.
    Blocked { message: String },
    /// Qdrant could not be read, or refused the step; nothing changed. Call again later.
    Unavailable { message: String },
}

/// A shard transfer still under way, and the progress its source peer reports (Qdrant's
/// `comment`), which tells a slow transfer from a stuck one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub transfer: Waiting,
    pub progress: Option<String>,
}

/// The peers that run in Pods with an ordinal of `desired` or more, i.e. those a scale-down
/// to `desired` removes, and the others that stay.
pub fn split(health: &Health, desired: u32) -> (Vec<u64>, Vec<u64>) {
    health
        .peers
        .iter()
        .filter_map(|p| Some((p.peer_id, ordinal(p.pod.as_deref()?)?)))
        .fold((Vec::new(), Vec::new()), |(mut leaving, mut staying), (id, ordinal)| {
            if ordinal >= desired {
                leaving.push(id);
            } else {
                staying.push(id);
            }
            (leaving, staying)
        })
}

/// The Pods the StatefulSet must keep while draining: up to the highest ordinal whose peer is
/// still in consensus, and at least `desired`. A Pod whose peer is gone (or never joined) can
/// go at once.
pub fn pods_to_keep(health: &Health, desired: u32) -> u32 {
    health
        .peers
        .iter()
        .filter_map(|p| ordinal(p.pod.as_deref()?))
        .filter(|&o| o >= desired)
        .map(|o| o + 1)
        .max()
        .unwrap_or(desired)
        .max(desired)
}

/// One step of draining the peers of Pods `desired..` (highest first).
pub async fn drain_step(client: &QdrantClient, guard: &LeadershipGuard, targets: &[PodTarget], health: &Health, desired: u32) -> Progress {
    let (leaving, staying) = split(health, desired);
    if leaving.is_empty() {
        return Progress::Done;
    }
    let (peer, view) = match view(client, targets, health).await {
        Ok(v) => v,
        Err(message) => return Progress::Unavailable { message },
    };
    match plan::scale_down_step(&view, &leaving, &staying) {
        ScaleDownStep::Done => Progress::Done,
        blocked @ ScaleDownStep::Blocked { .. } => Progress::Blocked { message: blocked.to_string() },
        ScaleDownStep::WaitTransfers(w) => {
            let running = wait_transfer(client, targets, health, &peer, w.clone()).await;
            Progress::Working { step: w.to_string(), peer: leaving_peer(&view, &leaving), running }
        }
        ScaleDownStep::Shard(step) => match carry_out(client, targets, health, &peer, guard, &step).await {
            Ok(running) => Progress::Working { step: step.to_string(), peer: leaving_peer(&view, &leaving), running },
            Err(message) => Progress::Unavailable { message },
        },
        ScaleDownStep::RemovePeer { peer: id } => remove_empty_peer(&peer, guard, id, format!("removed peer {id} from the cluster")).await,
    }
}

/// One step of spreading shard replicas evenly over every peer of the cluster's Pods, after
/// a scale-up, and of meeting each collection's replication factor. Nothing is ever dropped.
pub async fn rebalance_step(client: &QdrantClient, guard: &LeadershipGuard, targets: &[PodTarget], health: &Health) -> Progress {
    let (_, peers) = split(health, u32::MAX);
    let (peer, view) = match view(client, targets, health).await {
        Ok(v) => v,
        Err(message) => return Progress::Unavailable { message },
    };
    match plan::rebalance_step(&view, &peers) {
        RebalanceStep::Done => Progress::Done,
        RebalanceStep::WaitTransfers(w) => {
            let running = wait_transfer(client, targets, health, &peer, w.clone()).await;
            Progress::Working { step: w.to_string(), peer: None, running }
        }
        RebalanceStep::Shard(step) => match carry_out(client, targets, health, &peer, guard, &step).await {
            Ok(running) => Progress::Working { step: step.to_string(), peer: None, running },
            Err(message) => Progress::Unavailable { message },
        },
    }
}

/// One step of forgetting a peer whose volume was replaced (see [`plan::forget_step`]): its
/// replicas that have an Active copy elsewhere are dropped one at a time, then it is removed
/// from consensus without `force`, which lets its Pod's new peer join with the same URI.
pub async fn forget_step(client: &QdrantClient, guard: &LeadershipGuard, targets: &[PodTarget], health: &Health, lost: u64) -> Progress {
    let (peer, view) = match view(client, targets, health).await {
        Ok(v) => v,
        Err(message) => return Progress::Unavailable { message },
    };
    match plan::forget_step(&view, lost) {
        ForgetStep::Done => Progress::Done,
        blocked @ ForgetStep::Blocked { .. } => Progress::Blocked { message: blocked.to_string() },
        ForgetStep::WaitTransfers(w) => {
            let running = wait_transfer(client, targets, health, &peer, w.clone()).await;
            Progress::Working { step: w.to_string(), peer: Some(lost), running }
        }
        ForgetStep::Drop(step) => match carry_out(client, targets, health, &peer, guard, &step).await {
            Ok(_) => Progress::Working { step: step.to_string(), peer: Some(lost), running: None },
            Err(message) => Progress::Unavailable { message },
        },
        ForgetStep::RemovePeer { peer: id } => remove_empty_peer(&peer, guard, id, format!("removed peer {id}, whose volume was replaced, from the cluster")).await,
    }
}

/// Removes a peer that holds nothing from consensus, without `force` (Qdrant itself refuses
/// while the peer still holds a shard), through the guard; `done` says what was done.
async fn remove_empty_peer(peer: &Peer, guard: &LeadershipGuard, id: u64, done: String) -> Progress {
    match guard.write(peer.remove_peer(id, RemovePeer::Safe, Some(Duration::from_secs(10)))).await {
        Ok(Ok(_)) => Progress::Working { step: done, peer: Some(id), running: None },
        Ok(Err(e)) => Progress::Unavailable { message: format!("removing peer {id}: {e}") },
        Err(_) => Progress::Unavailable { message: "no longer the leader".into() },
    }
}

/// The peer being drained: the first leaving peer still in the view, highest ordinal first.
fn leaving_peer(view: &ClusterView, leaving: &[u64]) -> Option<u64> {
    view.peers.iter().filter(|p| leaving.contains(&p.id)).max_by_key(|p| p.ordinal).map(|p| p.id)
}

/// Sends one planned step, then waits (up to [`STEP_WAIT`]) for the transfer it starts.
async fn carry_out(client: &QdrantClient, targets: &[PodTarget], health: &Health, peer: &Peer, guard: &LeadershipGuard, step: &Step) -> Result<Option<Running>, String> {
    match guard.write(peer.update_collection_cluster(step.collection(), &step.operation(), None)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("{step}: {e}")),
        Err(_) => return Err("no longer the leader".into()),
    }
    Ok(match step {
        Step::Transfer { collection, shard_id, from, to, .. } | Step::Replicate { collection, shard_id, from, to, .. } => {
            let w = Waiting { collection: collection.clone(), shard_id: *shard_id, from: *from, to: *to };
            wait_transfer(client, targets, health, peer, w).await
        }
        Step::DropReplica { .. } => None,
    })
}

/// Waits until the transfer is over, or [`STEP_WAIT`] has passed: then returns it with the
/// progress it reports. Asks the source peer, the only one that reports progress, when its Pod
/// answers, else `peer`.
async fn wait_transfer(client: &QdrantClient, targets: &[PodTarget], health: &Health, peer: &Peer, w: Waiting) -> Option<Running> {
    let source = health
        .peers
        .iter()
        .find(|p| p.peer_id == w.from)
        .and_then(|p| targets.iter().find(|t| Some(&t.pod) == p.pod.as_ref()))
        .and_then(|t| client.peer(&t.base_url).ok());
    let deadline = Instant::now() + STEP_WAIT;
    loop {
        let info = match source.as_ref() {
            Some(s) => match s.collection_cluster_info(&w.collection).await {
                Ok(info) => Ok(info),
                Err(_) => peer.collection_cluster_info(&w.collection).await,
            },
            None => peer.collection_cluster_info(&w.collection).await,
        };
        let Ok(info) = info else { return None };
        let transfer = info.shard_transfers.iter().find(|t| t.shard_id == w.shard_id || t.to_shard_id == Some(w.shard_id));
        match transfer {
            None => return None,
            Some(t) if Instant::now() >= deadline => return Some(Running { transfer: w, progress: t.comment.clone() }),
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Aborts a transfer that made no progress for too long (`POST /collections/{c}/cluster`
/// with `abort_transfer`), through the guard. The replica it was filling is dropped by Qdrant;
/// the source keeps its own, so nothing is lost, and the next step starts the transfer again.
pub async fn abort_transfer(client: &QdrantClient, guard: &LeadershipGuard, targets: &[PodTarget], health: &Health, w: &Waiting) -> Result<(), String> {
    let (peer, _) = view(client, targets, health).await?;
    let op = ClusterOperation::AbortTransfer(AbortShardTransfer { shard_id: w.shard_id, from_peer_id: w.from, to_peer_id: w.to });
    match guard.write(peer.update_collection_cluster(&w.collection, &op, None)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("aborting the transfer of shard {} of {}: {e}", w.shard_id, w.collection)),
        Err(_) => Err("no longer the leader".into()),
    }
}

/// What the planner needs, read through one Pod that answers (the Raft leader's first):
/// placement and transfers are consensus state, so one peer's answer is the whole picture.
async fn view(client: &QdrantClient, targets: &[PodTarget], health: &Health) -> Result<(Peer, ClusterView), String> {
    let mut order: Vec<&PodTarget> = targets.iter().collect();
    order.sort_by_key(|t| Some(&t.pod) != health.leader_pod.as_ref());
    let mut last = "no Pod to ask".to_string();
    for target in order {
        let peer = match client.peer(&target.base_url) {
            Ok(p) => p,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        match read_view(&peer, health).await {
            Ok(view) => return Ok((peer, view)),
            Err(e) => last = format!("{}: {e}", target.pod),
        }
    }
    Err(last)
}

/// The most replicas any shard of the collection has (at least 1).
fn inferred_factor(info: &CollectionClusterInfo) -> u32 {
    let mut per_shard: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
    for shard in info.local_shards.iter().map(|s| s.shard_id).chain(info.remote_shards.iter().map(|s| s.shard_id)) {
        *per_shard.entry(shard).or_default() += 1;
    }
    per_shard.into_values().max().unwrap_or(1).max(1)
}

async fn read_view(peer: &Peer, health: &Health) -> Result<ClusterView, crate::qdrant::QdrantError> {
    let mut collections = Vec::new();
    for name in peer.list_collections().await? {
        let cluster = peer.collection_cluster_info(&name).await?;
        // The factor is in the collection's configuration, but `GET /collections/{name}` may
        // count points through every peer and time out while one does not answer. Without it,
        // the most replicas any shard has is the factor the collection evidently keeps.
        let factor = match peer.collection_info(&name).await {
            Ok(info) => plan::replication_factor(&info),
            Err(_) => inferred_factor(&cluster),
        };
        collections.push(CollectionView::from_cluster_info(name, factor, &cluster));
    }
    // A replica on a Pod that does not answer is no copy to rely on or move: the consensus
    // may still call it Active, but nothing can be read from it now.
    let gone: Vec<u64> = health.peers.iter().filter(|p| p.pod.as_ref().is_some_and(|pod| health.unreachable.contains(pod))).map(|p| p.peer_id).collect();
    for c in &mut collections {
        for replicas in c.shards.values_mut() {
            for (peer, state) in replicas.iter_mut() {
                if gone.contains(peer) {
                    *state = ReplicaState::Dead;
                }
            }
        }
    }
    let peers = health.peers.iter().map(PeerView::from).collect();
    Ok(ClusterView { peers, collections })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::health::PeerHealth;

    fn health(pods: &[Option<&str>]) -> Health {
        let mut h = crate::operations::health::assess(&[], 0);
        h.peers = pods.iter().enumerate().map(|(i, pod)| PeerHealth { peer_id: 100 + i as u64, uri: String::new(), pod: pod.map(str::to_owned) }).collect();
        h
    }

    #[test]
    fn the_peers_of_pods_from_desired_up_go_the_others_stay() {
        let h = health(&[Some("c-0"), Some("c-1"), Some("c-2"), None]);
        assert_eq!(split(&h, 1), (vec![101, 102], vec![100]));
        // A peer without a Pod is neither: a scale-down does not decide about it.
        assert_eq!(split(&h, 3), (vec![], vec![100, 101, 102]));
    }

    #[test]
    fn without_the_configuration_the_factor_is_the_most_replicas_of_a_shard() {
        let info: CollectionClusterInfo = serde_json::from_value(serde_json::json!({
            "peer_id": 1, "shard_count": 2, "shard_transfers": [],
            "local_shards": [{"shard_id": 0, "points_count": 5, "state": "Active"}],
            "remote_shards": [{"shard_id": 0, "peer_id": 2, "state": "Dead"}, {"shard_id": 1, "peer_id": 2, "state": "Active"}]
        }))
        .unwrap();
        assert_eq!(inferred_factor(&info), 2);
        let empty: CollectionClusterInfo = serde_json::from_value(serde_json::json!({"peer_id": 1, "shard_count": 0, "shard_transfers": [], "local_shards": [], "remote_shards": []})).unwrap();
        assert_eq!(inferred_factor(&empty), 1);
    }

    #[test]
    fn pods_stay_up_to_the_highest_peer_still_in_the_cluster() {
        assert_eq!(pods_to_keep(&health(&[Some("c-0"), Some("c-1"), Some("c-2")]), 1), 3);
        // c-2's peer was removed: its Pod can go, c-1's cannot yet.
        assert_eq!(pods_to_keep(&health(&[Some("c-0"), Some("c-1")]), 1), 2);
        assert_eq!(pods_to_keep(&health(&[Some("c-0")]), 1), 1);
        // Never below the target, even when fewer peers are known.
        assert_eq!(pods_to_keep(&health(&[]), 2), 2);
    }
}
