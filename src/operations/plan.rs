//! What to change next in a Qdrant cluster's shard placement, and whether a change is safe:
//! draining peers before a scale-down ([`scale_down_step`]), spreading replicas after a scale-up
//! ([`rebalance_step`]).
//!
//! Everything here is pure. A [`ClusterView`] goes in (the peers in consensus and, for each
//! collection, which peer holds a replica of which shard, in what state, and the transfers under
//! way); one step comes out. The caller applies it, waits for Qdrant to settle, observes again
//! and asks again. Nothing is remembered between calls, on purpose: the operator may lose its
//! leadership between two steps, and the new leader, observing the same cluster, must compute
//! the same next step. A plan kept in memory would be lost with the old leader, or replayed
//! against a cluster that has moved on. For the same reason the answer never depends on the
//! order in which peers, collections or transfers are listed.
//!
//! Only `Active` replicas count as copies of a shard's data: they alone serve reads and writes,
//! and they alone are used as the source of a transfer. A replica in any other state, unknown
//! ones included, is not a copy to rely on, but it occupies its peer: no second replica of the
//! shard is put there.
//!
//! The invariant every step keeps: none removes the last Active replica of a shard, and no peer
//! is removed while it holds any replica or takes part in a transfer. Qdrant itself refuses to
//! drop the last replica and to remove (without force) a peer that holds shards, but that is not
//! enough: a shard whose only Active replica is dropped is lost even when Dead copies remain.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;

use super::health::{ordinal, PeerHealth};
use crate::qdrant::{
    ClusterOperation, CollectionClusterInfo, CollectionInfo, Replica, ReplicaState, ShardTransfer,
    ShardTransferMethod,
};

#[cfg(test)]
mod tests;

/// The transfer method of the steps planned here: Qdrant's own default. The caller may set
/// another on a step before applying it (`snapshot` is faster for large shards).
pub const DEFAULT_METHOD: ShardTransferMethod = ShardTransferMethod::StreamRecords;

// ---------------------------------------------------------------------------------------------
// The view

/// A peer in consensus, and the ordinal of the StatefulSet Pod it runs in (`None` when no Pod
/// matches it). Ordinals decide which peer is drained first and break ties between targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerView {
    pub id: u64,
    pub ordinal: Option<u32>,
}

impl From<&PeerHealth> for PeerView {
    fn from(peer: &PeerHealth) -> Self {
        PeerView {
            id: peer.peer_id,
            ordinal: peer.pod.as_deref().and_then(ordinal),
        }
    }
}

/// A shard transfer under way (`ShardTransferInfo`, without its progress text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub shard_id: u32,
    /// The shard written to when it differs from `shard_id` (resharding only).
    pub to_shard_id: Option<u32>,
    pub from: u64,
    pub to: u64,
    /// True when the source keeps its replica (replication), false for a move.
    pub sync: bool,
}

impl Transfer {
    fn touches_shard(&self, shard_id: u32) -> bool {
        self.shard_id == shard_id || self.to_shard_id == Some(shard_id)
    }

    fn touches_peer(&self, peer: u64) -> bool {
        self.from == peer || self.to == peer
    }
}

/// One collection's shard placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionView {
    pub name: String,
    /// The collection's `replication_factor`: how many replicas each shard should have.
    pub replication_factor: u32,
    /// For each shard id, the peers holding a replica of it and each replica's state.
    pub shards: BTreeMap<u32, BTreeMap<u64, ReplicaState>>,
    pub transfers: Vec<Transfer>,
}

impl CollectionView {
    /// The placement as `GET /collections/{name}/cluster` gave it: `local_shards` are the
    /// answering peer's replicas, `remote_shards` every other peer's. Placement and transfers
    /// are consensus state, so the answer of any one peer in consensus is the whole picture (as
    /// of the last entry that peer applied).
    /// The replication factor is not part of that answer; see [`replication_factor`].
    pub fn from_cluster_info(
        name: impl Into<String>,
        replication_factor: u32,
        info: &CollectionClusterInfo,
    ) -> Self {
        let mut shards: BTreeMap<u32, BTreeMap<u64, ReplicaState>> = BTreeMap::new();
        for local in &info.local_shards {
            shards
                .entry(local.shard_id)
                .or_default()
                .insert(info.peer_id, local.state.clone());
        }
        for remote in &info.remote_shards {
            shards
                .entry(remote.shard_id)
                .or_default()
                .insert(remote.peer_id, remote.state.clone());
        }
        let transfers = info
            .shard_transfers
            .iter()
            .map(|t| Transfer {
                shard_id: t.shard_id,
                to_shard_id: t.to_shard_id,
                from: t.from,
                to: t.to,
                sync: t.sync,
            })
            .collect();
        CollectionView {
            name: name.into(),
            replication_factor,
            shards,
            transfers,
        }
    }

    /// The factor to meet; a factor of 0 (never valid in Qdrant) is taken as 1.
    fn factor(&self) -> usize {
        self.replication_factor.max(1) as usize
    }

    fn holds(&self, shard_id: u32, peer: u64) -> bool {
        self.shards
            .get(&shard_id)
            .is_some_and(|replicas| replicas.contains_key(&peer))
    }

    fn is_active(&self, shard_id: u32, peer: u64) -> bool {
        self.shards
            .get(&shard_id)
            .and_then(|replicas| replicas.get(&peer))
            .is_some_and(|state| *state == ReplicaState::Active)
    }

    /// How many of `peers` hold an Active replica of the shard.
    fn active_on(&self, shard_id: u32, peers: &[u64]) -> usize {
        peers
            .iter()
            .filter(|&&p| self.is_active(shard_id, p))
            .count()
    }

    /// Replicas on the peer, in any state: each takes its share of disk and memory.
    fn load(&self, peer: u64) -> usize {
        self.shards
            .values()
            .filter(|replicas| replicas.contains_key(&peer))
            .count()
    }

    /// The first transfer (by shard, source, target) writing or reading the shard.
    fn transfer_of(&self, shard_id: u32) -> Option<&Transfer> {
        self.transfers
            .iter()
            .filter(|t| t.touches_shard(shard_id))
            .min_by_key(|t| (t.shard_id, t.from, t.to))
    }
}

/// The replication factor in a collection's configuration (`config.params`); Qdrant's default,
/// 1, when it is not there.
pub fn replication_factor(info: &CollectionInfo) -> u32 {
    info.config
        .pointer("/params/replication_factor")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
}

/// What the planner looks at: the peers in Qdrant's consensus and every collection's
/// placement. Replicas on peers that are not in `peers` are ignored: they are neither copies to
/// rely on nor sources nor targets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterView {
    pub peers: Vec<PeerView>,
    pub collections: Vec<CollectionView>,
}

/// Replicas per peer, across all collections.
struct Loads(BTreeMap<u64, usize>);

impl Loads {
    fn of(&self, peer: u64) -> usize {
        self.0.get(&peer).copied().unwrap_or(0)
    }
}

/// The order of peers wherever one must be picked: Pods by ordinal, lowest first, then peers
/// no Pod matches, by id.
type Rank = (bool, u32, u64);

impl ClusterView {
    fn in_consensus(&self, peer: u64) -> bool {
        self.peers.iter().any(|p| p.id == peer)
    }

    fn rank(&self, peer: u64) -> Rank {
        match self
            .peers
            .iter()
            .find(|p| p.id == peer)
            .and_then(|p| p.ordinal)
        {
            Some(ordinal) => (false, ordinal, peer),
            None => (true, 0, peer),
        }
    }

    /// The given peers that are in consensus, each once, in [`Rank`] order.
    fn members(&self, ids: &[u64]) -> Vec<u64> {
        let mut members: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&id| self.in_consensus(id))
            .collect();
        members.sort_by_key(|&id| self.rank(id));
        members.dedup();
        members
    }

    /// Collections by name.
    fn sorted_collections(&self) -> Vec<&CollectionView> {
        let mut collections: Vec<&CollectionView> = self.collections.iter().collect();
        collections.sort_by(|a, b| a.name.cmp(&b.name));
        collections
    }

    fn collection(&self, name: &str) -> Option<&CollectionView> {
        self.collections.iter().find(|c| c.name == name)
    }

    /// Replicas on each peer across all collections, counted once per decision rather than
    /// for every candidate of every shard.
    fn loads(&self) -> Loads {
        let mut loads = BTreeMap::new();
        for replicas in self.collections.iter().flat_map(|c| c.shards.values()) {
            for &peer in replicas.keys() {
                *loads.entry(peer).or_insert(0) += 1;
            }
        }
        Loads(loads)
    }

    /// The first transfer (by collection, shard, source, target) the peer takes part in.
    fn transfer_of_peer(&self, peer: u64) -> Option<Waiting> {
        self.sorted_collections().into_iter().find_map(|c| {
            c.transfers
                .iter()
                .filter(|t| t.touches_peer(peer))
                .min_by_key(|t| (t.shard_id, t.from, t.to))
                .map(|t| Waiting::new(c, t))
        })
    }

    /// Where a new replica of the shard goes: among `candidates`, those not holding the shard
    /// in any state, the one with the fewest replicas of this collection, then overall, then
    /// the first by [`Rank`].
    fn target(
        &self,
        c: &CollectionView,
        shard_id: u32,
        candidates: &[u64],
        loads: &Loads,
    ) -> Option<u64> {
        candidates
            .iter()
            .copied()
            .filter(|&p| !c.holds(shard_id, p))
            .min_by_key(|&p| (c.load(p), loads.of(p), self.rank(p)))
    }

    /// An Active replica to copy the shard from, other than `except`'s: on one of `preferred`
    /// if any (the first by [`Rank`]), else on any other peer in consensus.
    fn source(
        &self,
        c: &CollectionView,
        shard_id: u32,
        preferred: &[u64],
        except: Option<u64>,
    ) -> Option<u64> {
        let replicas = c.shards.get(&shard_id)?;
        replicas
            .iter()
            .filter(|&(&p, state)| {
                Some(p) != except && *state == ReplicaState::Active && self.in_consensus(p)
            })
            .map(|(&p, _)| p)
            .min_by_key(|&p| (!preferred.contains(&p), self.rank(p)))
    }
}

// ---------------------------------------------------------------------------------------------
// Steps

/// One change of a collection's placement: one `POST /collections/{name}/cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `move_shard`: copy the shard's replica on `from` to `to`, then drop it from `from`.
    Transfer {
        collection: String,
        shard_id: u32,
        from: u64,
        to: u64,
        method: ShardTransferMethod,
    },
    /// `replicate_shard`: copy the shard from `from`'s Active replica to `to`; `from` keeps it.
    Replicate {
        collection: String,
        shard_id: u32,
        from: u64,
        to: u64,
        method: ShardTransferMethod,
    },
    /// `drop_replica`: remove the shard's replica on `peer`.
    DropReplica {
        collection: String,
        shard_id: u32,
        peer: u64,
    },
}

impl Step {
    /// A `move_shard` of `c`'s shard, by [`DEFAULT_METHOD`].
    fn move_shard(c: &CollectionView, shard_id: u32, from: u64, to: u64) -> Step {
        Step::Transfer {
            collection: c.name.clone(),
            shard_id,
            from,
            to,
            method: DEFAULT_METHOD,
        }
    }

    /// A `replicate_shard` of `c`'s shard, by [`DEFAULT_METHOD`].
    fn replicate(c: &CollectionView, shard_id: u32, from: u64, to: u64) -> Step {
        Step::Replicate {
            collection: c.name.clone(),
            shard_id,
            from,
            to,
            method: DEFAULT_METHOD,
        }
    }

    /// The collection whose `/cluster` endpoint takes the [`operation`](Step::operation).
    pub fn collection(&self) -> &str {
        match self {
            Step::Transfer { collection, .. }
            | Step::Replicate { collection, .. }
            | Step::DropReplica { collection, .. } => collection,
        }
    }

    /// The request body that performs the step.
    pub fn operation(&self) -> ClusterOperation {
        let transfer =
            |shard_id: u32, from: u64, to: u64, method: &ShardTransferMethod| ShardTransfer {
                shard_id,
                from_peer_id: from,
                to_peer_id: to,
                method: Some(method.clone()),
            };
        match self {
            Step::Transfer {
                shard_id,
                from,
                to,
                method,
                ..
            } => ClusterOperation::MoveShard(transfer(*shard_id, *from, *to, method)),
            Step::Replicate {
                shard_id,
                from,
                to,
                method,
                ..
            } => ClusterOperation::ReplicateShard(transfer(*shard_id, *from, *to, method)),
            Step::DropReplica { shard_id, peer, .. } => ClusterOperation::DropReplica(Replica {
                shard_id: *shard_id,
                peer_id: *peer,
            }),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Transfer {
                collection,
                shard_id,
                from,
                to,
                ..
            } => write!(
                f,
                "move shard {shard_id} of {collection} from peer {from} to peer {to}"
            ),
            Step::Replicate {
                collection,
                shard_id,
                from,
                to,
                ..
            } => write!(
                f,
                "replicate shard {shard_id} of {collection} from peer {from} to peer {to}"
            ),
            Step::DropReplica {
                collection,
                shard_id,
                peer,
            } => write!(
                f,
                "drop the replica of shard {shard_id} of {collection} on peer {peer}"
            ),
        }
    }
}

/// A transfer under way that a plan waits for before going on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub collection: String,
    pub shard_id: u32,
    pub from: u64,
    pub to: u64,
}

impl Waiting {
    fn new(c: &CollectionView, t: &Transfer) -> Self {
        Waiting {
            collection: c.name.clone(),
            shard_id: t.shard_id,
            from: t.from,
            to: t.to,
        }
    }
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wait for the transfer of shard {} of {} from peer {} to peer {}",
            self.shard_id, self.collection, self.from, self.to
        )
    }
}

/// Why a peer cannot be drained without losing data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedReason {
    /// No peer in consensus would remain to take the peer's replicas.
    NoRemainingPeer,
    /// The shard has no Active replica on any peer in consensus to copy from.
    NoActiveReplica,
    /// The remaining peers hold too few Active replicas of the shard, and every one of them
    /// already holds a replica of it in another state, so none can take a new one. Qdrant
    /// usually recovers such replicas by itself; the drain goes on once it has.
    NoTarget,
}

impl fmt::Display for BlockedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockedReason::NoRemainingPeer => "no peer would remain to take its replicas",
            BlockedReason::NoActiveReplica => "no peer holds an Active replica",
            BlockedReason::NoTarget => {
                "too few Active replicas remain and every remaining peer already holds one in \
                 another state"
            }
        })
    }
}

/// The next step of a scale-down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleDownStep {
    /// Move, copy or drop one replica of the peer being drained.
    Shard(Step),
    /// A transfer is under way that involves the peer being drained, a shard it holds, or the
    /// source or target of the next step.
    WaitTransfers(Waiting),
    /// The peer holds no replica and takes part in no transfer: remove it from consensus
    /// (`DELETE /cluster/peer/{peer}`, without force).
    RemovePeer { peer: u64 },
    /// No peer to remove is in consensus any more.
    Done,
    /// The peer cannot be drained without losing data; nothing is to be done until the cluster
    /// changes. `collection` and `shard_id` name the shard concerned, when there is one.
    Blocked {
        peer: u64,
        reason: BlockedReason,
        collection: Option<String>,
        shard_id: Option<u32>,
    },
}

impl fmt::Display for ScaleDownStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScaleDownStep::Shard(step) => step.fmt(f),
            ScaleDownStep::WaitTransfers(waiting) => waiting.fmt(f),
            ScaleDownStep::RemovePeer { peer } => write!(f, "remove peer {peer} from the cluster"),
            ScaleDownStep::Done => f.write_str("no peer left to remove"),
            ScaleDownStep::Blocked {
                peer,
                reason,
                collection: Some(c),
                shard_id: Some(s),
            } => write!(f, "cannot drain peer {peer}: shard {s} of {c}: {reason}"),
            ScaleDownStep::Blocked { peer, reason, .. } => {
                write!(f, "cannot drain peer {peer}: {reason}")
            }
        }
    }
}

/// The next step of a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceStep {
    /// Copy or move one replica.
    Shard(Step),
    /// The best step involves a peer already in a transfer, or nothing is left to do but
    /// transfers are under way that will change the placement.
    WaitTransfers(Waiting),
    /// Nothing more can improve the placement.
    Done,
}

/// What one replica of a peer being drained needs.
enum Next {
    Step(Step),
    Wait(Waiting),
    Blocked(BlockedReason),
}

/// `step` if neither of its peers takes part in a transfer, else the first such transfer to
/// wait for: Qdrant limits how many transfers a peer sends and receives at once (one each by
/// default), and a peer busy copying is slow enough already.
fn unless_busy(view: &ClusterView, step: Step) -> Result<Step, Waiting> {
    let (from, to) = match &step {
        Step::Transfer { from, to, .. } | Step::Replicate { from, to, .. } => (*from, *to),
        Step::DropReplica { .. } => return Ok(step),
    };
    match view
        .transfer_of_peer(from)
        .or_else(|| view.transfer_of_peer(to))
    {
        Some(waiting) => Err(waiting),
        None => Ok(step),
    }
}

// ---------------------------------------------------------------------------------------------
// Safety

/// Whether dropping `peer`'s replica of the shard loses no data: the peer holds one, no
/// transfer of the shard is under way (its source or target may be the very copy counted on),
/// and another peer in consensus holds an Active replica. Says nothing of the replication
/// factor; [`scale_down_step`] asks for more before it drops.
pub fn safe_to_drop(view: &ClusterView, collection: &str, shard_id: u32, peer: u64) -> bool {
    let Some(c) = view.collection(collection) else {
        return false;
    };
    c.holds(shard_id, peer)
        && c.transfer_of(shard_id).is_none()
        && c.shards[&shard_id]
            .iter()
            .any(|(&p, state)| p != peer && *state == ReplicaState::Active && view.in_consensus(p))
}

/// Whether the peer holds a replica of any shard, in any state, or takes part in a transfer.
/// A peer for which this is false can be removed from consensus without losing anything.
pub fn peer_holds_data(view: &ClusterView, peer: u64) -> bool {
    view.collections.iter().any(|c| {
        c.shards
            .values()
            .any(|replicas| replicas.contains_key(&peer))
            || c.transfers.iter().any(|t| t.touches_peer(peer))
    })
}

// ---------------------------------------------------------------------------------------------
// Scale-down

/// The next step to drain `peers_to_remove` onto `remaining`, one peer at a time, the highest
/// ordinal first (as a StatefulSet shrinks), then peers no Pod matches. Only peers in consensus
/// count: a peer already removed is done, and only a remaining peer in consensus can take
/// replicas. A peer in both lists is leaving.
///
/// For each replica on the peer being drained, by collection name and shard id:
/// - while a transfer of that shard is under way, wait;
/// - when the remaining peers hold as many Active replicas as the replication factor asks (or
///   as there are remaining peers, if fewer), drop it: another Active copy stays;
/// - else add one to the remaining peers: move it there if it is Active, or, if it is not (it
///   cannot be copied from), replicate the shard from another Active replica;
/// - and when that cannot be done, the drain is blocked ([`BlockedReason`]).
///
/// A blocked replica stops the drain before anything of that peer moves: a drain that cannot
/// finish should be reported at once, not after hours of transfers. Once the peer holds nothing
/// and takes part in no transfer, it is removed; then the next peer is drained.
///
/// A replica that is not Active is not dropped either until the remaining peers meet the
/// factor: a shard that lacked Active replicas gets them, copied from one it has, before the
/// drained peer lets go of its own.
pub fn scale_down_step(
    view: &ClusterView,
    peers_to_remove: &[u64],
    remaining: &[u64],
) -> ScaleDownStep {
    let mut leaving = view.members(peers_to_remove);
    leaving.sort_by_key(|&p| {
        let (unmatched, ordinal, id) = view.rank(p);
        (unmatched, Reverse(ordinal), id)
    });
    let Some(&peer) = leaving.first() else {
        return ScaleDownStep::Done;
    };
    let remaining: Vec<u64> = view
        .members(remaining)
        .into_iter()
        .filter(|p| !leaving.contains(p))
        .collect();
    let blocked = |reason, collection: Option<&str>, shard_id| ScaleDownStep::Blocked {
        peer,
        reason,
        collection: collection.map(str::to_owned),
        shard_id,
    };
    if remaining.is_empty() {
        return blocked(BlockedReason::NoRemainingPeer, None, None);
    }

    let loads = view.loads();
    let mut first: Option<Next> = None;
    for c in view.sorted_collections() {
        for (&shard_id, replicas) in &c.shards {
            let Some(state) = replicas.get(&peer) else {
                continue;
            };
            match drain_replica(view, c, shard_id, peer, state, &remaining, &loads) {
                Next::Blocked(reason) => return blocked(reason, Some(&c.name), Some(shard_id)),
                next => {
                    first.get_or_insert(next);
                }
            }
        }
    }
    if let Some(waiting) = view.transfer_of_peer(peer) {
        return ScaleDownStep::WaitTransfers(waiting);
    }
    match first {
        Some(Next::Step(step)) => ScaleDownStep::Shard(step),
        Some(Next::Wait(waiting)) => ScaleDownStep::WaitTransfers(waiting),
        // Blocked returned above.
        Some(Next::Blocked(_)) | None => ScaleDownStep::RemovePeer { peer },
    }
}

/// What to do with `peer`'s replica (in `state`) of one shard; see [`scale_down_step`].
fn drain_replica(
    view: &ClusterView,
    c: &CollectionView,
    shard_id: u32,
    peer: u64,
    state: &ReplicaState,
    remaining: &[u64],
    loads: &Loads,
) -> Next {
    if let Some(t) = c.transfer_of(shard_id) {
        return Next::Wait(Waiting::new(c, t));
    }
    let wanted = c.factor().min(remaining.len());
    if c.active_on(shard_id, remaining) >= wanted {
        return Next::Step(Step::DropReplica {
            collection: c.name.clone(),
            shard_id,
            peer,
        });
    }
    let active = *state == ReplicaState::Active;
    let from = if active {
        peer
    } else {
        match view.source(c, shard_id, remaining, Some(peer)) {
            Some(source) => source,
            None => return Next::Blocked(BlockedReason::NoActiveReplica),
        }
    };
    let Some(to) = view.target(c, shard_id, remaining, loads) else {
        return Next::Blocked(BlockedReason::NoTarget);
    };
    let step = if active {
        Step::move_shard(c, shard_id, from, to)
    } else {
        Step::replicate(c, shard_id, from, to)
    };
    match unless_busy(view, step) {
        Ok(step) => Next::Step(step),
        Err(waiting) => Next::Wait(waiting),
    }
}

// ---------------------------------------------------------------------------------------------
// Rebalance

/// The next step to spread every collection over `peers` (those in consensus; typically all
/// of them, after a scale-up). Shards with a transfer under way are left alone. In order:
/// 1. meet the replication factor: a shard with fewer Active replicas on `peers` than the
///    factor (or than there are peers, if fewer) is replicated, from an Active replica, onto
///    the peer of `peers` with the fewest replicas that holds none of it;
/// 2. spread each collection: while one peer holds at least two more of its replicas than
///    another, move one of its Active replicas to the least loaded peer not holding that shard;
/// 3. spread the total: while one peer holds at least two more replicas than another, move one
///    from a collection of which it holds more than the other does, so that step 2 still holds.
///
/// Each move lowers the spread (the sum of the squares of the per-peer counts, per collection,
/// then overall) and each replication adds an Active replica, so the steps come to an end. With
/// every replica Active, the end is a placement where the counts of any two peers differ by at
/// most one, per collection and overall. Replicas on peers outside `peers` are left where they
/// are and not counted, though they may be copied from. Nothing is ever dropped.
pub fn rebalance_step(view: &ClusterView, peers: &[u64]) -> RebalanceStep {
    let peers = view.members(peers);
    let collections = view.sorted_collections();
    let loads = view.loads();
    match best_move(view, &peers, &collections, &loads).map(|step| unless_busy(view, step)) {
        Some(Ok(step)) => RebalanceStep::Shard(step),
        Some(Err(waiting)) => RebalanceStep::WaitTransfers(waiting),
        None => match peers.iter().find_map(|&p| view.transfer_of_peer(p)) {
            Some(waiting) => RebalanceStep::WaitTransfers(waiting),
            None => RebalanceStep::Done,
        },
    }
}

/// The first step of [`rebalance_step`]'s order, ignoring whether its peers are busy.
fn best_move(
    view: &ClusterView,
    peers: &[u64],
    collections: &[&CollectionView],
    loads: &Loads,
) -> Option<Step> {
    let idle = |c: &CollectionView, shard_id: u32| c.transfer_of(shard_id).is_none();

    // 1. The replication factor.
    for c in collections {
        let wanted = c.factor().min(peers.len());
        for &shard_id in c.shards.keys() {
            if !idle(c, shard_id) || c.active_on(shard_id, peers) >= wanted {
                continue;
            }
            let source = view.source(c, shard_id, peers, None);
            let target = view.target(c, shard_id, peers, loads);
            if let (Some(from), Some(to)) = (source, target) {
                return Some(Step::replicate(c, shard_id, from, to));
            }
        }
    }

    // 2. Each collection, from its most loaded peers first.
    for c in collections {
        let mut sources = peers.to_vec();
        sources.sort_by_key(|&p| (Reverse(c.load(p)), Reverse(loads.of(p)), view.rank(p)));
        let least = peers.iter().map(|&p| c.load(p)).min().unwrap_or(0);
        for from in sources {
            if c.load(from) < least + 2 {
                // Neither this peer nor any after it has two more than another.
                break;
            }
            for &shard_id in c.shards.keys() {
                if !idle(c, shard_id) || !c.is_active(shard_id, from) {
                    continue;
                }
                let Some(to) = view.target(c, shard_id, peers, loads) else {
                    continue;
                };
                if c.load(from) >= c.load(to) + 2 {
                    return Some(Step::move_shard(c, shard_id, from, to));
                }
            }
        }
    }

    // 3. The total, from the most loaded peer to the least loaded.
    let mut sources = peers.to_vec();
    sources.sort_by_key(|&p| (Reverse(loads.of(p)), view.rank(p)));
    let mut targets = peers.to_vec();
    targets.sort_by_key(|&p| (loads.of(p), view.rank(p)));
    for &from in &sources {
        for &to in &targets {
            if loads.of(from) < loads.of(to) + 2 {
                break;
            }
            for c in collections.iter().filter(|c| c.load(from) > c.load(to)) {
                let movable = c
                    .shards
                    .keys()
                    .copied()
                    .find(|&s| idle(c, s) && c.is_active(s, from) && !c.holds(s, to));
                if let Some(shard_id) = movable {
                    return Some(Step::move_shard(c, shard_id, from, to));
                }
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// A lost peer

/// The next step in forgetting a peer whose data is gone (its Pod runs on a new, empty
/// volume): Qdrant keeps it in consensus, with its URI, so the Pod's new peer cannot join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgetStep {
    /// Drop the lost peer's replica of a shard that has an Active replica elsewhere.
    Drop(Step),
    /// Wait for a transfer that involves the lost peer to end (Qdrant aborts those whose
    /// peer is gone).
    WaitTransfers(Waiting),
    /// The lost peer holds nothing: remove it from consensus, without `force`.
    RemovePeer { peer: u64 },
    /// The peer is not in consensus any more.
    Done,
    /// A shard's only copy was on the lost peer: nothing is dropped or removed, since only
    /// the user can say the data is gone for good (or bring the volume back).
    Blocked { collection: String, shard_id: u32, peer: u64 },
}

impl fmt::Display for ForgetStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForgetStep::Drop(step) => step.fmt(f),
            ForgetStep::WaitTransfers(w) => w.fmt(f),
            ForgetStep::RemovePeer { peer } => write!(f, "remove peer {peer}, whose volume was replaced, from the cluster"),
            ForgetStep::Done => f.write_str("the lost peer is out of the cluster"),
            ForgetStep::Blocked { collection, shard_id, peer } => write!(
                f,
                "peer {peer} lost its volume and held the only Active replica of shard {shard_id} of {collection}: \
                 restore that shard from a snapshot, or remove the peer with force to accept the loss"
            ),
        }
    }
}

/// What to do about a lost peer: drop its replicas one at a time where another peer in
/// consensus has an Active one ([`safe_to_drop`]), then remove it. Never drops the last
/// Active replica of a shard; a shard with no Active replica but the lost one blocks.
pub fn forget_step(view: &ClusterView, lost: u64) -> ForgetStep {
    if !view.in_consensus(lost) {
        return ForgetStep::Done;
    }
    for c in &view.collections {
        for (&shard_id, replicas) in &c.shards {
            if !replicas.contains_key(&lost) {
                continue;
            }
            if let Some(t) = c.transfer_of(shard_id) {
                return ForgetStep::WaitTransfers(Waiting::new(c, t));
            }
            if safe_to_drop(view, &c.name, shard_id, lost) {
                return ForgetStep::Drop(Step::DropReplica { collection: c.name.clone(), shard_id, peer: lost });
            }
            return ForgetStep::Blocked { collection: c.name.clone(), shard_id, peer: lost };
        }
    }
    if let Some((c, t)) = view.collections.iter().find_map(|c| c.transfers.iter().find(|t| t.touches_peer(lost)).map(|t| (c, t))) {
        return ForgetStep::WaitTransfers(Waiting::new(c, t));
    }
    ForgetStep::RemovePeer { peer: lost }
}
