//! The planner on clusters written by hand, then on random ones (proptest): steps are applied
//! as Qdrant would complete them, over and over, and every step is checked against the
//! invariants of the module.

use super::*;
use crate::qdrant::{LocalShardInfo, RemoteShardInfo, ShardTransferInfo};
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::fmt;

/// Peer ids of my-cluster-0, -1 and -2: 2^64 - 59, 2^53 + 1 (neither survives a trip through
/// f64) and a small one.
const P0: u64 = 18446744073709551557;
const P1: u64 = 9007199254740993;
const P2: u64 = 42;

/// More steps than any run here needs; reaching it means the plan does not end.
const MAX_STEPS: usize = 500;

fn peer(id: u64, ordinal: u32) -> PeerView {
    PeerView {
        id,
        ordinal: Some(ordinal),
    }
}

fn three_peers() -> Vec<PeerView> {
    vec![peer(P0, 0), peer(P1, 1), peer(P2, 2)]
}

/// A collection with replicas given as (shard, peer, state).
fn collection(name: &str, rf: u32, replicas: &[(u32, u64, &str)]) -> CollectionView {
    let mut shards: BTreeMap<u32, BTreeMap<u64, ReplicaState>> = BTreeMap::new();
    for &(shard_id, peer, state) in replicas {
        shards
            .entry(shard_id)
            .or_default()
            .insert(peer, ReplicaState::from(state));
    }
    CollectionView {
        name: name.into(),
        replication_factor: rf,
        shards,
        transfers: vec![],
    }
}

/// A collection whose replicas, given as (shard, peers), are all Active.
fn active(name: &str, rf: u32, placement: &[(u32, &[u64])]) -> CollectionView {
    let replicas: Vec<(u32, u64, &str)> = placement
        .iter()
        .flat_map(|&(shard, peers)| peers.iter().map(move |&p| (shard, p, "Active")))
        .collect();
    collection(name, rf, &replicas)
}

fn cluster(peers: Vec<PeerView>, collections: Vec<CollectionView>) -> ClusterView {
    ClusterView { peers, collections }
}

/// Three peers, one collection `docs` with replicas given as (shard, peer, state).
fn docs(rf: u32, replicas: &[(u32, u64, &str)]) -> ClusterView {
    cluster(three_peers(), vec![collection("docs", rf, replicas)])
}

/// Three peers, one collection `docs` whose replicas, given as (shard, peers), are all Active.
fn docs_active(rf: u32, placement: &[(u32, &[u64])]) -> ClusterView {
    cluster(three_peers(), vec![active("docs", rf, placement)])
}

fn transfer(shard_id: u32, from: u64, to: u64, sync: bool) -> Transfer {
    Transfer {
        shard_id,
        to_shard_id: None,
        from,
        to,
        sync,
    }
}

fn moved(collection: &str, shard_id: u32, from: u64, to: u64) -> Step {
    Step::Transfer {
        collection: collection.into(),
        shard_id,
        from,
        to,
        method: ShardTransferMethod::StreamRecords,
    }
}

fn replicated(collection: &str, shard_id: u32, from: u64, to: u64) -> Step {
    Step::Replicate {
        collection: collection.into(),
        shard_id,
        from,
        to,
        method: ShardTransferMethod::StreamRecords,
    }
}

fn dropped(collection: &str, shard_id: u32, peer: u64) -> Step {
    Step::DropReplica {
        collection: collection.into(),
        shard_id,
        peer,
    }
}

fn waiting(collection: &str, shard_id: u32, from: u64, to: u64) -> Waiting {
    Waiting {
        collection: collection.into(),
        shard_id,
        from,
        to,
    }
}

// ---------------------------------------------------------------------------------------------
// Simulation: what Qdrant does with each step

/// The step done, its transfer (if any) finished: the target's replica is Active, a move has
/// dropped its source, a dropped replica is gone.
fn apply(view: &mut ClusterView, step: &Step) {
    let c = view
        .collections
        .iter_mut()
        .find(|c| c.name == step.collection())
        .expect("a step names a known collection");
    match step {
        Step::Transfer {
            shard_id, from, to, ..
        } => {
            let replicas = c.shards.get_mut(shard_id).expect("moved shard exists");
            replicas.remove(from);
            replicas.insert(*to, ReplicaState::Active);
        }
        Step::Replicate { shard_id, to, .. } => {
            let replicas = c.shards.get_mut(shard_id).expect("replicated shard exists");
            replicas.insert(*to, ReplicaState::Active);
        }
        Step::DropReplica { shard_id, peer, .. } => {
            let replicas = c.shards.get_mut(shard_id).expect("dropped shard exists");
            replicas.remove(peer);
        }
    }
}

/// The transfer waited for finishes, the same way.
fn finish(view: &mut ClusterView, w: &Waiting) {
    let c = view
        .collections
        .iter_mut()
        .find(|c| c.name == w.collection)
        .expect("waiting in a known collection");
    let i = c
        .transfers
        .iter()
        .position(|t| (t.shard_id, t.from, t.to) == (w.shard_id, w.from, w.to))
        .expect("waiting for a transfer that is under way");
    let t = c.transfers.remove(i);
    let replicas = c.shards.entry(t.shard_id).or_default();
    replicas.insert(t.to, ReplicaState::Active);
    if !t.sync {
        replicas.remove(&t.from);
    }
}

/// The same cluster listed in another order, as another leader may see it.
fn reordered(view: &ClusterView) -> ClusterView {
    let mut view = view.clone();
    view.peers.reverse();
    view.collections.reverse();
    for c in &mut view.collections {
        c.transfers.reverse();
    }
    view
}

/// `GET /collections/{name}/cluster` of every collection as `answering` would give it, turned
/// back into a view: the cluster as a leader that asked that peer sees it.
fn seen_from(view: &ClusterView, answering: u64) -> ClusterView {
    let collections = view
        .collections
        .iter()
        .map(|c| {
            let mut info = CollectionClusterInfo {
                peer_id: answering,
                shard_count: c.shards.len() as u64,
                local_shards: vec![],
                remote_shards: vec![],
                // Consensus keeps them in a set; any order may come.
                shard_transfers: c
                    .transfers
                    .iter()
                    .rev()
                    .map(|t| ShardTransferInfo {
                        shard_id: t.shard_id,
                        to_shard_id: t.to_shard_id,
                        from: t.from,
                        to: t.to,
                        sync: t.sync,
                        method: Some(ShardTransferMethod::StreamRecords),
                        comment: None,
                    })
                    .collect(),
                resharding_operations: None,
            };
            for (&shard_id, replicas) in c.shards.iter().rev() {
                for (&peer_id, state) in replicas {
                    if peer_id == answering {
                        info.local_shards.push(LocalShardInfo {
                            shard_id,
                            shard_key: None,
                            points_count: 10,
                            state: state.clone(),
                        });
                    } else {
                        info.remote_shards.push(RemoteShardInfo {
                            shard_id,
                            shard_key: None,
                            peer_id,
                            state: state.clone(),
                        });
                    }
                }
            }
            CollectionView::from_cluster_info(c.name.as_str(), c.replication_factor, &info)
        })
        .collect();
    let mut peers = view.peers.clone();
    peers.rotate_left(1);
    ClusterView { peers, collections }
}

/// Active replicas of each shard on peers in consensus.
fn active_counts(view: &ClusterView) -> BTreeMap<(String, u32), usize> {
    let mut counts = BTreeMap::new();
    for c in &view.collections {
        for (&shard_id, replicas) in &c.shards {
            let n = replicas
                .iter()
                .filter(|&(&p, s)| *s == ReplicaState::Active && view.in_consensus(p))
                .count();
            counts.insert((c.name.clone(), shard_id), n);
        }
    }
    counts
}

/// Shards that have at least one Active replica on a peer in consensus.
fn served(view: &ClusterView) -> BTreeSet<(String, u32)> {
    active_counts(view)
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(shard, _)| shard)
        .collect()
}

/// A move or a copy that Qdrant accepts and that lands on one of `targets`: the source is
/// Active, the target is in consensus and without the shard, and neither they nor the shard
/// take part in another transfer. Returns the source.
fn assert_copy(view: &ClusterView, step: &Step, targets: &[u64]) -> u64 {
    let (Step::Transfer {
        collection,
        shard_id,
        from,
        to,
        ..
    }
    | Step::Replicate {
        collection,
        shard_id,
        from,
        to,
        ..
    }) = step
    else {
        panic!("not a move or a copy: {step}");
    };
    let (c, shard_id, from, to) = (view.collection(collection).unwrap(), *shard_id, *from, *to);
    assert!(
        targets.contains(&to),
        "{step}: the target is not one of {targets:?}"
    );
    assert!(
        view.in_consensus(to),
        "{step}: the target is not in consensus"
    );
    assert!(
        !c.holds(shard_id, to),
        "{step}: the target holds the shard already"
    );
    assert!(
        c.is_active(shard_id, from),
        "{step}: the source is not Active"
    );
    assert!(
        view.in_consensus(from),
        "{step}: the source is not in consensus"
    );
    assert!(
        c.transfer_of(shard_id).is_none(),
        "{step}: the shard is in a transfer"
    );
    assert!(
        view.transfer_of_peer(from).is_none(),
        "{step}: the source is in a transfer"
    );
    assert!(
        view.transfer_of_peer(to).is_none(),
        "{step}: the target is in a transfer"
    );
    from
}

/// The step is one [`scale_down_step`] may take, and its reason (when blocked) is true.
fn check_scale_down_step(
    view: &ClusterView,
    leaving: &[u64],
    remaining: &[u64],
    step: &ScaleDownStep,
) {
    let staying: Vec<u64> = remaining
        .iter()
        .copied()
        .filter(|p| !leaving.contains(p) && view.in_consensus(*p))
        .collect();
    let c = |name: &str| view.collection(name).expect("a known collection");
    match step {
        ScaleDownStep::Shard(copy @ (Step::Transfer { .. } | Step::Replicate { .. })) => {
            let from = assert_copy(view, copy, &staying);
            if matches!(copy, Step::Transfer { .. }) {
                assert!(
                    leaving.contains(&from),
                    "{step}: moves from a peer that stays"
                );
            }
        }
        ScaleDownStep::Shard(Step::DropReplica {
            collection,
            shard_id,
            peer,
        }) => {
            assert!(leaving.contains(peer), "drops from {peer}, which stays");
            assert!(safe_to_drop(view, collection, *shard_id, *peer), "{step}");
            let c = c(collection);
            let wanted = c.factor().min(staying.len());
            assert!(
                c.active_on(*shard_id, &staying) >= wanted,
                "{step}: factor not met"
            );
        }
        ScaleDownStep::WaitTransfers(w) => {
            let t = c(&w.collection)
                .transfers
                .iter()
                .any(|t| (t.shard_id, t.from, t.to) == (w.shard_id, w.from, w.to));
            assert!(t, "{step}: no such transfer");
        }
        ScaleDownStep::RemovePeer { peer } => {
            assert!(leaving.contains(peer), "removes {peer}, which stays");
            assert!(view.in_consensus(*peer));
            assert!(!peer_holds_data(view, *peer), "{step}: it holds data");
            assert!(!staying.is_empty(), "{step}: no peer would remain");
        }
        ScaleDownStep::Done => {
            assert!(
                leaving.iter().all(|&p| !view.in_consensus(p)),
                "done too early"
            );
        }
        ScaleDownStep::Blocked {
            peer,
            reason,
            collection,
            shard_id,
        } => {
            assert!(leaving.contains(peer));
            match reason {
                BlockedReason::NoRemainingPeer => assert!(staying.is_empty(), "{step}"),
                BlockedReason::NoActiveReplica => {
                    let key = (collection.clone().unwrap(), shard_id.unwrap());
                    assert_eq!(active_counts(view)[&key], 0, "{step}");
                }
                BlockedReason::NoTarget => {
                    let c = c(collection.as_deref().unwrap());
                    let s = shard_id.unwrap();
                    assert!(staying.iter().all(|&p| c.holds(s, p)), "{step}");
                }
            }
        }
    }
}

/// What the simulation does with a step.
enum Effect<'a> {
    Apply(&'a Step),
    Finish(&'a Waiting),
    RemovePeer(u64),
    Stop,
}

/// Asks `plan` for the next step and plays it (see [`Effect`]) until it says stop. Checks
/// every step with `check`, that it does not depend on the order of the view, that no shard
/// loses its last Active replica, and that the plan never returns to a state it left: a pure
/// planner that did would go round forever.
fn run<S: fmt::Debug + PartialEq>(
    start: &ClusterView,
    plan: impl Fn(&ClusterView) -> S,
    check: impl Fn(&ClusterView, &S),
    effect: impl Fn(&S) -> Effect<'_>,
) -> (Vec<S>, ClusterView) {
    let mut view = start.clone();
    let mut seen = vec![view.clone()];
    let mut steps = Vec::new();
    loop {
        let step = plan(&view);
        assert_eq!(plan(&reordered(&view)), step, "another order, another step");
        check(&view, &step);
        let before = served(&view);
        match effect(&step) {
            Effect::Apply(s) => apply(&mut view, s),
            Effect::Finish(w) => finish(&mut view, w),
            Effect::RemovePeer(peer) => view.peers.retain(|p| p.id != peer),
            Effect::Stop => {
                steps.push(step);
                return (steps, view);
            }
        }
        steps.push(step);
        let after = served(&view);
        let lost: Vec<_> = before.difference(&after).collect();
        assert!(
            lost.is_empty(),
            "{lost:?} lost their last Active replica: {steps:#?}"
        );
        assert!(
            !seen.contains(&view),
            "the plan goes round in circles: {steps:#?}"
        );
        seen.push(view.clone());
        assert!(steps.len() < MAX_STEPS, "no end in sight: {steps:#?}");
    }
}

/// [`run`] of [`scale_down_step`], each step checked by [`check_scale_down_step`].
fn drain(
    start: &ClusterView,
    leaving: &[u64],
    remaining: &[u64],
) -> (Vec<ScaleDownStep>, ClusterView) {
    run(
        start,
        |view| scale_down_step(view, leaving, remaining),
        |view, step| check_scale_down_step(view, leaving, remaining, step),
        |step| match step {
            ScaleDownStep::Shard(s) => Effect::Apply(s),
            ScaleDownStep::WaitTransfers(w) => Effect::Finish(w),
            ScaleDownStep::RemovePeer { peer } => Effect::RemovePeer(*peer),
            ScaleDownStep::Done | ScaleDownStep::Blocked { .. } => Effect::Stop,
        },
    )
}

/// [`run`] of [`rebalance_step`] over `peers`: transfers Qdrant accepts, never a drop.
fn rebalance(start: &ClusterView, peers: &[u64]) -> (Vec<RebalanceStep>, ClusterView) {
    let check = |view: &ClusterView, step: &RebalanceStep| {
        let RebalanceStep::Shard(s) = step else {
            return;
        };
        assert!(
            !matches!(s, Step::DropReplica { .. }),
            "a rebalance drops: {s}"
        );
        assert_copy(view, s, peers);
    };
    run(
        start,
        |view| rebalance_step(view, peers),
        check,
        |step| match step {
            RebalanceStep::Shard(s) => Effect::Apply(s),
            RebalanceStep::WaitTransfers(w) => Effect::Finish(w),
            RebalanceStep::Done => Effect::Stop,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The view

#[test]
fn a_view_from_what_one_peer_answers() {
    let info: CollectionClusterInfo = serde_json::from_str(&format!(
        r#"{{
          "peer_id": {P1},
          "shard_count": 3,
          "local_shards": [
            {{"shard_id": 0, "points_count": 100, "state": "Active"}},
            {{"shard_id": 2, "points_count": 0, "state": "Partial"}}
          ],
          "remote_shards": [
            {{"shard_id": 0, "peer_id": {P0}, "state": "Dead"}},
            {{"shard_id": 1, "peer_id": {P0}, "state": "Active"}},
            {{"shard_id": 2, "peer_id": {P2}, "state": "SomethingNew"}}
          ],
          "shard_transfers": [
            {{"shard_id": 2, "from": {P2}, "to": {P1}, "sync": true, "method": "snapshot"}}
          ]
        }}"#
    ))
    .unwrap();
    let c = CollectionView::from_cluster_info("docs", 2, &info);
    assert_eq!(c.name, "docs");
    assert_eq!(c.replication_factor, 2);
    let state = |shard_id: u32, peer: u64| c.shards[&shard_id][&peer].clone();
    assert_eq!(c.shards.values().map(BTreeMap::len).sum::<usize>(), 5);
    assert_eq!(state(0, P1), ReplicaState::Active);
    assert_eq!(state(0, P0), ReplicaState::Dead);
    assert_eq!(state(1, P0), ReplicaState::Active);
    assert_eq!(state(2, P1), ReplicaState::Partial);
    assert_eq!(state(2, P2), ReplicaState::Unknown("SomethingNew".into()));
    assert_eq!(c.transfers, vec![transfer(2, P2, P1, true)]);
}

#[test]
fn the_replication_factor_is_read_from_the_collection_config() {
    let info = |config: serde_json::Value| -> CollectionInfo {
        serde_json::from_value(json!({
            "status": "green", "optimizer_status": "ok", "segments_count": 1, "config": config
        }))
        .unwrap()
    };
    let two = info(json!({"params": {"shard_number": 6, "replication_factor": 2}}));
    assert_eq!(replication_factor(&two), 2);
    // Qdrant's default when the field is absent.
    assert_eq!(replication_factor(&info(json!({"params": {}}))), 1);
    assert_eq!(replication_factor(&info(json!({}))), 1);
}

#[test]
fn peers_take_the_ordinal_of_their_pod() {
    let health = |pod: Option<&str>| PeerHealth {
        peer_id: P1,
        uri: "http://my-cluster-1.my-cluster-headless.ns:6335/".into(),
        pod: pod.map(str::to_owned),
    };
    assert_eq!(PeerView::from(&health(Some("my-cluster-1"))), peer(P1, 1));
    assert_eq!(PeerView::from(&health(None)).ordinal, None);
    assert_eq!(PeerView::from(&health(Some("odd"))).ordinal, None);
}

#[test]
fn what_is_safe_to_drop_and_to_remove() {
    let mut c = collection(
        "docs",
        1,
        &[
            (0, P0, "Active"),
            (0, P1, "Active"),
            (1, P1, "Active"),
            (1, P2, "Dead"),
            (2, P2, "Active"),
            (2, 7, "Active"),
        ],
    );
    c.transfers.push(transfer(3, P0, P1, true));
    c.shards.insert(3, [(P0, ReplicaState::Active)].into());
    let view = cluster(three_peers(), vec![c]);

    // Another Active copy stays.
    assert!(safe_to_drop(&view, "docs", 0, P0));
    assert!(safe_to_drop(&view, "docs", 0, P1));
    // A replica that is not Active can go; the only Active one cannot.
    assert!(safe_to_drop(&view, "docs", 1, P2));
    assert!(!safe_to_drop(&view, "docs", 1, P1));
    // Peer 7 is not in consensus: its copy is none to rely on.
    assert!(!safe_to_drop(&view, "docs", 2, P2));
    // A shard in transfer, a replica that is not there, a collection that is not there.
    assert!(!safe_to_drop(&view, "docs", 3, P0));
    assert!(!safe_to_drop(&view, "docs", 2, P0));
    assert!(!safe_to_drop(&view, "logs", 0, P0));

    assert!(peer_holds_data(&view, P0));
    assert!(peer_holds_data(&view, P2));
    let empty = docs(1, &[(0, P0, "Active")]);
    assert!(!peer_holds_data(&empty, P1));
    // A transfer to a peer is data arriving.
    let mut arriving = empty.clone();
    arriving.collections[0]
        .transfers
        .push(transfer(0, P0, P1, true));
    assert!(peer_holds_data(&arriving, P1));
}

#[test]
fn steps_become_cluster_operations_and_say_what_they_do() {
    let mv = moved("docs", 3, P2, P0);
    assert_eq!(mv.collection(), "docs");
    assert_eq!(
        serde_json::to_value(mv.operation()).unwrap(),
        json!({"move_shard": {"shard_id": 3, "from_peer_id": P2, "to_peer_id": P0,
                              "method": "stream_records"}})
    );
    assert_eq!(
        serde_json::to_value(replicated("docs", 1, P0, P1).operation()).unwrap(),
        json!({"replicate_shard": {"shard_id": 1, "from_peer_id": P0, "to_peer_id": P1,
                                   "method": "stream_records"}})
    );
    assert_eq!(
        serde_json::to_value(dropped("logs", 0, P2).operation()).unwrap(),
        json!({"drop_replica": {"shard_id": 0, "peer_id": P2}})
    );
    assert_eq!(
        mv.to_string(),
        format!("move shard 3 of docs from peer 42 to peer {P0}")
    );
    assert_eq!(
        ScaleDownStep::Shard(dropped("logs", 0, P2)).to_string(),
        "drop the replica of shard 0 of logs on peer 42"
    );
    assert_eq!(
        ScaleDownStep::WaitTransfers(waiting("docs", 1, P2, 7)).to_string(),
        "wait for the transfer of shard 1 of docs from peer 42 to peer 7"
    );
    assert_eq!(
        ScaleDownStep::RemovePeer { peer: P2 }.to_string(),
        "remove peer 42 from the cluster"
    );
    let blocked = ScaleDownStep::Blocked {
        peer: P2,
        reason: BlockedReason::NoActiveReplica,
        collection: Some("docs".into()),
        shard_id: Some(4),
    };
    assert_eq!(
        blocked.to_string(),
        "cannot drain peer 42: shard 4 of docs: no peer holds an Active replica"
    );
    let blocked = ScaleDownStep::Blocked {
        peer: P2,
        reason: BlockedReason::NoRemainingPeer,
        collection: None,
        shard_id: None,
    };
    assert_eq!(
        blocked.to_string(),
        "cannot drain peer 42: no peer would remain to take its replicas"
    );
}

// ---------------------------------------------------------------------------------------------
// Scale-down

/// Six shards, one replica each, shard `i` on my-cluster-`i % 3`.
fn six_shards_rf1() -> ClusterView {
    let ids = [P0, P1, P2];
    let placement: Vec<(u32, [u64; 1])> = (0..6).map(|i| (i, [ids[i as usize % 3]])).collect();
    let placement: Vec<(u32, &[u64])> = placement.iter().map(|(s, p)| (*s, &p[..])).collect();
    docs_active(1, &placement)
}

#[test]
fn three_to_one_with_six_shards_and_one_replica_each() {
    let view = six_shards_rf1();
    // Whatever order the caller lists them in, my-cluster-2 goes first.
    let (steps, end) = drain(&view, &[P1, P2], &[P0]);
    assert_eq!(
        steps,
        vec![
            ScaleDownStep::Shard(moved("docs", 2, P2, P0)),
            ScaleDownStep::Shard(moved("docs", 5, P2, P0)),
            ScaleDownStep::RemovePeer { peer: P2 },
            ScaleDownStep::Shard(moved("docs", 1, P1, P0)),
            ScaleDownStep::Shard(moved("docs", 4, P1, P0)),
            ScaleDownStep::RemovePeer { peer: P1 },
            ScaleDownStep::Done,
        ]
    );
    assert_eq!(end.peers, vec![peer(P0, 0)]);
    let all: Vec<(u32, &[u64])> = (0..6).map(|s| (s, &[P0][..])).collect();
    assert_eq!(end.collections, vec![active("docs", 1, &all)]);
}

#[test]
fn three_to_two_with_two_replicas_each() {
    // Shard i on my-cluster-(i % 3) and my-cluster-((i + 1) % 3).
    let ids = [P0, P1, P2];
    let placement: Vec<(u32, [u64; 2])> = (0..6)
        .map(|i| (i, [ids[i as usize % 3], ids[(i as usize + 1) % 3]]))
        .collect();
    let placement: Vec<(u32, &[u64])> = placement.iter().map(|(s, p)| (*s, &p[..])).collect();
    let view = docs_active(2, &placement);
    let (steps, end) = drain(&view, &[P2], &[P0, P1]);
    // Each replica on my-cluster-2 moves to the one remaining peer without the shard: the
    // factor stays met, nothing is dropped.
    assert_eq!(
        steps,
        vec![
            ScaleDownStep::Shard(moved("docs", 1, P2, P0)),
            ScaleDownStep::Shard(moved("docs", 2, P2, P1)),
            ScaleDownStep::Shard(moved("docs", 4, P2, P0)),
            ScaleDownStep::Shard(moved("docs", 5, P2, P1)),
            ScaleDownStep::RemovePeer { peer: P2 },
            ScaleDownStep::Done,
        ]
    );
    let both: Vec<(u32, &[u64])> = (0..6).map(|s| (s, &[P0, P1][..])).collect();
    assert_eq!(end.collections, vec![active("docs", 2, &both)]);
}

#[test]
fn a_replica_with_enough_active_copies_elsewhere_is_dropped() {
    // rf 1, but shard 0 has a second Active replica: it is dropped, not moved.
    let view = docs_active(1, &[(0, &[P0, P2]), (1, &[P1])]);
    assert_eq!(
        scale_down_step(&view, &[P2], &[P0, P1]),
        ScaleDownStep::Shard(dropped("docs", 0, P2))
    );
    // rf 2 with two remaining peers: the copy on P0 is not enough, the replica moves to P1.
    let view = docs_active(2, &[(0, &[P0, P2]), (1, &[P1])]);
    assert_eq!(
        scale_down_step(&view, &[P2], &[P0, P1]),
        ScaleDownStep::Shard(moved("docs", 0, P2, P1))
    );
    // rf 3 cannot be met by two remaining peers; two Active copies are as good as it gets.
    let view = docs_active(3, &[(0, &[P0, P1, P2])]);
    assert_eq!(
        scale_down_step(&view, &[P2], &[P0, P1]),
        ScaleDownStep::Shard(dropped("docs", 0, P2))
    );
}

#[test]
fn a_replica_that_is_not_active_is_replaced_from_an_active_copy() {
    // rf 2: the Dead replica on my-cluster-2 cannot be copied, so the Active one on
    // my-cluster-0 is replicated to my-cluster-1; then the Dead one goes.
    let view = docs(2, &[(0, P0, "Active"), (0, P2, "Dead")]);
    let (steps, _) = drain(&view, &[P2], &[P0, P1]);
    assert_eq!(
        steps,
        vec![
            ScaleDownStep::Shard(replicated("docs", 0, P0, P1)),
            ScaleDownStep::Shard(dropped("docs", 0, P2)),
            ScaleDownStep::RemovePeer { peer: P2 },
            ScaleDownStep::Done,
        ]
    );
    // The only Active copy may be on another leaving peer: it is the source, the drained
    // peer's replica is not.
    let view = docs(1, &[(0, P1, "Active"), (0, P2, "Partial")]);
    assert_eq!(
        scale_down_step(&view, &[P1, P2], &[P0]),
        ScaleDownStep::Shard(replicated("docs", 0, P1, P0))
    );
}

#[test]
fn blocked_when_the_only_replica_is_dead_on_the_leaving_peer() {
    let view = docs(1, &[(0, P0, "Active"), (1, P2, "Active"), (2, P2, "Dead")]);
    // Shard 1 could move, but the drain cannot finish: nothing moves.
    let (steps, end) = drain(&view, &[P2], &[P0, P1]);
    assert_eq!(
        steps,
        vec![ScaleDownStep::Blocked {
            peer: P2,
            reason: BlockedReason::NoActiveReplica,
            collection: Some("docs".into()),
            shard_id: Some(2),
        }]
    );
    assert_eq!(end, view);
    // A state Qdrant may add one day is not Active either.
    let view = docs(1, &[(0, P2, "Rebalancing")]);
    assert!(matches!(
        scale_down_step(&view, &[P2], &[P0, P1]),
        ScaleDownStep::Blocked {
            reason: BlockedReason::NoActiveReplica,
            ..
        }
    ));
}

#[test]
fn blocked_when_no_remaining_peer_can_take_the_replica() {
    // The only Active replica is on my-cluster-2; the one remaining peer has a Dead replica of
    // the shard, so it cannot take another (Qdrant will recover the Dead one from my-cluster-2).
    let view = cluster(
        vec![peer(P0, 0), peer(P2, 2)],
        vec![collection("docs", 1, &[(0, P0, "Dead"), (0, P2, "Active")])],
    );
    assert_eq!(
        scale_down_step(&view, &[P2], &[P0]),
        ScaleDownStep::Blocked {
            peer: P2,
            reason: BlockedReason::NoTarget,
            collection: Some("docs".into()),
            shard_id: Some(0),
        }
    );
    // Once recovered, the replica on my-cluster-2 is merely one too many.
    let mut recovered = view.clone();
    recovered.collections[0]
        .shards
        .get_mut(&0)
        .unwrap()
        .insert(P0, ReplicaState::Active);
    assert_eq!(
        scale_down_step(&recovered, &[P2], &[P0]),
        ScaleDownStep::Shard(dropped("docs", 0, P2))
    );
}

#[test]
fn blocked_without_a_remaining_peer() {
    let view = six_shards_rf1();
    let blocked = ScaleDownStep::Blocked {
        peer: P2,
        reason: BlockedReason::NoRemainingPeer,
        collection: None,
        shard_id: None,
    };
    assert_eq!(scale_down_step(&view, &[P0, P1, P2], &[]), blocked);
    // A remaining peer that is not in consensus, or is also leaving, is none.
    assert_eq!(scale_down_step(&view, &[P0, P1, P2], &[7, P0]), blocked);
    // Even an empty peer is not removed when it would be the last.
    let empty = cluster(vec![peer(P2, 2)], vec![]);
    assert!(matches!(
        scale_down_step(&empty, &[P2], &[]),
        ScaleDownStep::Blocked {
            reason: BlockedReason::NoRemainingPeer,
            ..
        }
    ));
}

#[test]
fn waits_while_a_transfer_runs() {
    // Shard 2 is being moved off my-cluster-2 already (by a previous leader, say).
    let mut view = six_shards_rf1();
    let c = &mut view.collections[0];
    c.shards
        .get_mut(&2)
        .unwrap()
        .insert(P0, ReplicaState::Partial);
    c.transfers.push(transfer(2, P2, P0, false));
    let wait = ScaleDownStep::WaitTransfers(waiting("docs", 2, P2, P0));
    assert_eq!(scale_down_step(&view, &[P2], &[P0, P1]), wait);
    // Then the plan goes on from where that transfer left it.
    let (steps, _) = drain(&view, &[P2], &[P0, P1]);
    assert_eq!(
        steps,
        vec![
            wait,
            ScaleDownStep::Shard(moved("docs", 5, P2, P1)),
            ScaleDownStep::RemovePeer { peer: P2 },
            ScaleDownStep::Done,
        ]
    );

    // A transfer between remaining peers, of a shard the leaving peer holds, is waited for.
    let mut view = docs(
        2,
        &[(0, P0, "Active"), (0, P1, "Partial"), (0, P2, "Active")],
    );
    view.collections[0]
        .transfers
        .push(transfer(0, P0, P1, true));
    assert_eq!(
        scale_down_step(&view, &[P2], &[P0, P1]),
        ScaleDownStep::WaitTransfers(waiting("docs", 0, P0, P1))
    );

    // So is a transfer, in another collection, that keeps the chosen target busy.
    let mut view = cluster(
        three_peers(),
        vec![
            active("docs", 1, &[(0, &[P2])]),
            collection("logs", 1, &[(0, P1, "Active"), (0, P0, "Partial")]),
        ],
    );
    view.collections[1]
        .transfers
        .push(transfer(0, P1, P0, false));
    assert_eq!(
        scale_down_step(&view, &[P2], &[P0, P1]),
        ScaleDownStep::WaitTransfers(waiting("logs", 0, P1, P0))
    );
}

#[test]
fn the_target_is_the_least_loaded_remaining_peer() {
    // my-cluster-3 is leaving too, and empty: never a target.
    let peers = vec![
        peer(P0, 0),
        peer(P1, 1),
        peer(P2, 2),
        peer(3, 3),
        peer(4, 4),
    ];
    let (leaving, remaining) = ([3, 4], [P2, P1, P0]);
    // The fewest replicas of the collection first: my-cluster-2 has none of docs, though the
    // most overall.
    let view = cluster(
        peers.clone(),
        vec![
            active("docs", 1, &[(0, &[P0]), (1, &[P1]), (2, &[4])]),
            active("logs", 1, &[(0, &[P2]), (1, &[P2]), (2, &[P2])]),
        ],
    );
    assert_eq!(
        scale_down_step(&view, &leaving, &remaining),
        ScaleDownStep::Shard(moved("docs", 2, 4, P2))
    );
    // Tied in docs: the fewest overall (my-cluster-1 and -2), then the lowest ordinal.
    let view = cluster(
        peers.clone(),
        vec![
            active("docs", 1, &[(0, &[P0]), (1, &[P1]), (2, &[4]), (3, &[P2])]),
            active("logs", 1, &[(0, &[P0]), (1, &[P0])]),
        ],
    );
    assert_eq!(
        scale_down_step(&view, &leaving, &remaining),
        ScaleDownStep::Shard(moved("docs", 2, 4, P1))
    );
    // All tied: the lowest ordinal.
    let view = cluster(
        peers,
        vec![active(
            "docs",
            1,
            &[(0, &[P0]), (1, &[P1]), (2, &[4]), (3, &[P2])],
        )],
    );
    assert_eq!(
        scale_down_step(&view, &leaving, &remaining),
        ScaleDownStep::Shard(moved("docs", 2, 4, P0))
    );
}

#[test]
fn peers_no_pod_matches_are_drained_after_the_pods() {
    let peers = vec![
        peer(P0, 0),
        peer(P1, 1),
        PeerView {
            id: 5,
            ordinal: None,
        },
        PeerView {
            id: 3,
            ordinal: None,
        },
    ];
    let view = cluster(peers, vec![]);
    assert_eq!(
        scale_down_step(&view, &[5, 3, P1], &[P0]),
        ScaleDownStep::RemovePeer { peer: P1 }
    );
    assert_eq!(
        scale_down_step(&view, &[5, 3], &[P0, P1]),
        ScaleDownStep::RemovePeer { peer: 3 }
    );
}

#[test]
fn done_when_no_peer_to_remove_is_in_consensus() {
    let view = six_shards_rf1();
    assert_eq!(
        scale_down_step(&view, &[], &[P0, P1, P2]),
        ScaleDownStep::Done
    );
    assert_eq!(
        scale_down_step(&view, &[7, 8], &[P0, P1, P2]),
        ScaleDownStep::Done
    );
}

#[test]
fn resuming_midway_gives_the_same_next_step() {
    let view = six_shards_rf1();
    let (steps, _) = drain(&view, &[P1, P2], &[P0]);
    // After each step, a new leader that asked any one peer computes the same next step.
    let mut now = view.clone();
    for (i, step) in steps.iter().enumerate() {
        for answering in now.peers.iter().map(|p| p.id) {
            let fresh = seen_from(&now, answering);
            assert_eq!(
                scale_down_step(&fresh, &[P2, P1], &[P0]),
                *step,
                "step {i}, asked peer {answering}"
            );
        }
        match step {
            ScaleDownStep::Shard(s) => apply(&mut now, s),
            ScaleDownStep::RemovePeer { peer } => now.peers.retain(|p| p.id != *peer),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rebalance

#[test]
fn rebalance_after_scale_up_spreads_the_replicas() {
    // Two peers held three shards each; my-cluster-2 just joined.
    let view = docs_active(
        1,
        &[
            (0, &[P0]),
            (1, &[P1]),
            (2, &[P0]),
            (3, &[P1]),
            (4, &[P0]),
            (5, &[P1]),
        ],
    );
    let (steps, end) = rebalance(&view, &[P0, P1, P2]);
    assert_eq!(
        steps,
        vec![
            RebalanceStep::Shard(moved("docs", 0, P0, P2)),
            RebalanceStep::Shard(moved("docs", 1, P1, P2)),
            RebalanceStep::Done,
        ]
    );
    for p in [P0, P1, P2] {
        assert_eq!(end.loads().of(p), 2);
    }
}

#[test]
fn rebalance_meets_the_replication_factor_first() {
    let view = docs(
        2,
        &[
            (0, P0, "Active"),
            (1, P0, "Active"),
            (1, P1, "Dead"),
            (2, P0, "Active"),
        ],
    );
    let (steps, end) = rebalance(&view, &[P0, P1, P2]);
    assert_eq!(
        steps,
        vec![
            // my-cluster-1 holds a (Dead) replica already: my-cluster-2 is the least loaded.
            RebalanceStep::Shard(replicated("docs", 0, P0, P2)),
            // The Dead replica is not a copy, and no second one goes next to it.
            RebalanceStep::Shard(replicated("docs", 1, P0, P2)),
            RebalanceStep::Shard(replicated("docs", 2, P0, P1)),
            RebalanceStep::Done,
        ]
    );
    assert_eq!(end.loads().of(P0), 3);
    assert_eq!(end.loads().of(P1), 2);
    assert_eq!(end.loads().of(P2), 2);
}

#[test]
fn rebalance_leaves_shards_in_transfer_and_waits_for_them() {
    let mut view = docs(
        1,
        &[
            (0, P0, "Active"),
            (1, P0, "Active"),
            (2, P0, "Active"),
            (3, P0, "Active"),
            (3, P1, "Partial"),
        ],
    );
    view.collections[0]
        .transfers
        .push(transfer(3, P0, P1, false));
    // The best move would leave my-cluster-0, which is sending already.
    assert_eq!(
        rebalance_step(&view, &[P0, P1, P2]),
        RebalanceStep::WaitTransfers(waiting("docs", 3, P0, P1))
    );
    let (_, end) = rebalance(&view, &[P0, P1, P2]);
    assert!([P0, P1, P2].iter().all(|&p| end.loads().of(p) >= 1));
}

#[test]
fn rebalance_cannot_copy_a_shard_without_an_active_replica() {
    let view = docs(3, &[(0, P0, "Dead"), (1, P1, "Initializing")]);
    assert_eq!(rebalance_step(&view, &[P0, P1, P2]), RebalanceStep::Done);
}

// ---------------------------------------------------------------------------------------------
// Random clusters

fn state(healthy: bool) -> BoxedStrategy<Option<ReplicaState>> {
    if healthy {
        prop_oneof![Just(None), Just(Some(ReplicaState::Active))].boxed()
    } else {
        let other = prop::sample::select(vec![
            ReplicaState::Dead,
            ReplicaState::Partial,
            ReplicaState::Initializing,
            ReplicaState::Listener,
            ReplicaState::Recovery,
            ReplicaState::ActiveRead,
            ReplicaState::ManualRecovery,
            ReplicaState::Unknown("Rebalancing".into()),
        ]);
        prop_oneof![
            4 => Just(None),
            3 => Just(Some(ReplicaState::Active)),
            2 => other.prop_map(Some),
        ]
        .boxed()
    }
}

/// A collection before its peers are known: replication factor; each shard's replica state on
/// each peer, by index; for each shard, perhaps a transfer (an index into its Active replicas,
/// one into the peers without a replica, and whether it is a copy).
type RawCollection = (
    u32,
    Vec<Vec<Option<ReplicaState>>>,
    Vec<Option<(usize, usize, bool)>>,
);

fn raw_collection(peers: usize, healthy: bool) -> impl Strategy<Value = RawCollection> {
    let transfer = prop::option::weighted(0.2, (any::<usize>(), any::<usize>(), any::<bool>()));
    (
        1u32..=3,
        vec(vec(state(healthy), peers), 1..=8),
        vec(transfer, 8),
    )
}

/// 1 to 5 peers (about one in five matching no Pod), 1 to 3 collections of 1 to 8 shards,
/// replication factor 1 to 3. `healthy`: every replica Active, but the targets of transfers
/// (Partial).
fn random_cluster(healthy: bool) -> impl Strategy<Value = ClusterView> {
    btree_set(any::<u64>(), 1..=5)
        .prop_flat_map(move |ids| {
            let n = ids.len();
            (
                Just(ids.into_iter().collect::<Vec<u64>>()).prop_shuffle(),
                vec(prop::bool::weighted(0.2), n),
                vec(raw_collection(n, healthy), 1..=3),
            )
        })
        .prop_map(|(ids, unmatched, raw)| build(&ids, &unmatched, raw))
}

fn build(ids: &[u64], unmatched: &[bool], raw: Vec<RawCollection>) -> ClusterView {
    let peers = ids
        .iter()
        .zip(unmatched)
        .enumerate()
        .map(|(i, (&id, &unmatched))| PeerView {
            id,
            ordinal: (!unmatched).then_some(i as u32),
        })
        .collect();
    let collections = raw
        .into_iter()
        .enumerate()
        .map(|(i, (rf, shards, transfers))| {
            let mut c = collection(&format!("c{i}"), rf, &[]);
            for (shard_id, states) in shards.into_iter().enumerate() {
                let shard_id = shard_id as u32;
                let mut replicas: BTreeMap<u64, ReplicaState> = ids
                    .iter()
                    .zip(states)
                    .filter_map(|(&p, s)| Some((p, s?)))
                    .collect();
                if let Some((a, b, sync)) = transfers[shard_id as usize] {
                    let sources: Vec<u64> = replicas
                        .iter()
                        .filter(|(_, s)| **s == ReplicaState::Active)
                        .map(|(&p, _)| p)
                        .collect();
                    let targets: Vec<u64> = ids
                        .iter()
                        .copied()
                        .filter(|p| !replicas.contains_key(p))
                        .collect();
                    if !sources.is_empty() && !targets.is_empty() {
                        let (from, to) = (sources[a % sources.len()], targets[b % targets.len()]);
                        replicas.insert(to, ReplicaState::Partial);
                        c.transfers.push(transfer(shard_id, from, to, sync));
                    }
                }
                if !replicas.is_empty() {
                    c.shards.insert(shard_id, replicas);
                }
            }
            c
        })
        .collect();
    ClusterView { peers, collections }
}

/// Peers to remove (the bits of `mask` over the peers, plus a peer long gone when bit 7 is
/// set) and the peers that remain.
fn split(view: &ClusterView, mask: u8) -> (Vec<u64>, Vec<u64>) {
    let (mut leaving, mut remaining) = (Vec::new(), Vec::new());
    for (i, p) in view.peers.iter().enumerate() {
        if mask & (1 << i) != 0 {
            leaving.push(p.id);
        } else {
            remaining.push(p.id);
        }
    }
    if mask & 0x80 != 0 && !view.in_consensus(7) {
        leaving.push(7);
    }
    (leaving, remaining)
}

/// Per-peer replica counts of `peers`, per collection and overall, differ by at most one.
fn assert_spread(view: &ClusterView, peers: &[u64]) {
    let spread = |load: &dyn Fn(u64) -> usize| {
        let loads: Vec<usize> = peers.iter().map(|&p| load(p)).collect();
        loads.iter().max().unwrap() - loads.iter().min().unwrap()
    };
    for c in &view.collections {
        assert!(
            spread(&|p| c.load(p)) <= 1,
            "{} is not spread: {view:#?}",
            c.name
        );
    }
    assert!(
        spread(&|p| view.loads().of(p)) <= 1,
        "not spread: {view:#?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the replica states and transfers, no step loses a shard's last Active replica
    /// or removes a peer with data (checked in `drain`), the plan ends, and when it ends done,
    /// each shard has kept its Active replicas up to the factor and the remaining peers.
    #[test]
    fn scale_down_keeps_every_shard(view in random_cluster(false), mask in any::<u8>()) {
        let (leaving, remaining) = split(&view, mask);
        let (steps, end) = drain(&view, &leaving, &remaining);
        if steps.last() == Some(&ScaleDownStep::Done) && !remaining.is_empty() {
            let before = active_counts(&view);
            for c in &end.collections {
                for &shard_id in c.shards.keys() {
                    let kept = c.active_on(shard_id, &remaining);
                    let wanted = before[&(c.name.clone(), shard_id)]
                        .min(c.factor())
                        .min(remaining.len());
                    prop_assert!(kept >= wanted, "{}/{shard_id}: {kept} < {wanted}", c.name);
                }
            }
        }
    }

    /// A healthy cluster with a peer left to hold the data always drains to the end; without
    /// one, it is blocked at once.
    #[test]
    fn scale_down_of_a_healthy_cluster_finishes(view in random_cluster(true), mask in any::<u8>()) {
        let (leaving, remaining) = split(&view, mask);
        let (steps, end) = drain(&view, &leaving, &remaining);
        let last = steps.last().unwrap();
        let must_remove = leaving.iter().any(|&p| view.in_consensus(p));
        if remaining.is_empty() && must_remove {
            let blocked = matches!(
                last,
                ScaleDownStep::Blocked { reason: BlockedReason::NoRemainingPeer, .. }
            );
            prop_assert!(blocked, "{}", last);
        } else {
            prop_assert_eq!(last, &ScaleDownStep::Done);
            let ids: Vec<u64> = end.peers.iter().map(|p| p.id).collect();
            prop_assert_eq!(ids.len(), remaining.len());
        }
    }

    /// A rebalance ends, never loses an Active replica (checked in `rebalance`), and at the end
    /// every shard that can be copied has its factor met, up to the number of peers.
    #[test]
    fn rebalance_ends_with_factors_met(view in random_cluster(false)) {
        let peers: Vec<u64> = view.peers.iter().map(|p| p.id).collect();
        let (_, end) = rebalance(&view, &peers);
        let counts = active_counts(&end);
        for c in &end.collections {
            for &shard_id in c.shards.keys() {
                let active = counts[&(c.name.clone(), shard_id)];
                let everywhere = peers.iter().all(|&p| c.holds(shard_id, p));
                prop_assert!(
                    active == 0 || everywhere || active >= c.factor().min(peers.len()),
                    "{}/{shard_id}: {active} Active", c.name
                );
            }
        }
    }

    /// With every replica Active, a rebalance ends with the factors met and the replicas
    /// spread: any two peers' counts differ by at most one, per collection and overall.
    #[test]
    fn rebalance_of_a_healthy_cluster_spreads_evenly(view in random_cluster(true)) {
        let peers: Vec<u64> = view.peers.iter().map(|p| p.id).collect();
        let (_, end) = rebalance(&view, &peers);
        for c in &end.collections {
            for &shard_id in c.shards.keys() {
                prop_assert!(c.active_on(shard_id, &peers) >= c.factor().min(peers.len()));
            }
        }
        assert_spread(&end, &peers);
    }

    /// A leader that asked any one peer, listing things in any order, plans the same step.
    #[test]
    fn the_next_step_does_not_depend_on_who_answered(
        view in random_cluster(false),
        mask in any::<u8>(),
        answering in any::<prop::sample::Index>(),
    ) {
        let answering = view.peers[answering.index(view.peers.len())].id;
        let fresh = seen_from(&view, answering);
        for (c, f) in view.collections.iter().zip(&fresh.collections) {
            prop_assert_eq!(&c.shards, &f.shards);
        }
        let (leaving, remaining) = split(&view, mask);
        prop_assert_eq!(
            scale_down_step(&fresh, &leaving, &remaining),
            scale_down_step(&view, &leaving, &remaining)
        );
        let peers: Vec<u64> = view.peers.iter().map(|p| p.id).collect();
        prop_assert_eq!(rebalance_step(&fresh, &peers), rebalance_step(&view, &peers));
    }

    /// Forgetting a lost peer never drops a shard's last Active replica: it drops only
    /// replicas copied Active elsewhere, removes the peer only once it holds nothing, and
    /// otherwise stops, blocked, with every replica it did not drop still there.
    #[test]
    fn forgetting_a_lost_peer_never_drops_the_last_active_replica(view in random_cluster(false), pick in any::<prop::sample::Index>()) {
        let lost = view.peers[pick.index(view.peers.len())].id;
        let mut now = view.clone();
        for _ in 0..MAX_STEPS {
            match forget_step(&now, lost) {
                ForgetStep::Drop(step) => {
                    let Step::DropReplica { collection, shard_id, peer } = &step else { panic!("{step:?}") };
                    prop_assert_eq!(*peer, lost);
                    let c = now.collection(collection).unwrap();
                    let others = c.shards[shard_id].iter().filter(|(&p, s)| p != lost && **s == ReplicaState::Active).count();
                    prop_assert!(others >= 1, "dropped the last Active replica of {}/{}", collection, shard_id);
                    apply(&mut now, &step);
                }
                ForgetStep::WaitTransfers(w) => {
                    let c = now.collections.iter_mut().find(|c| c.name == w.collection).unwrap();
                    c.transfers.retain(|t| !(t.shard_id == w.shard_id && t.from == w.from && t.to == w.to));
                }
                ForgetStep::RemovePeer { peer } => {
                    prop_assert!(!peer_holds_data(&now, peer));
                    now.peers.retain(|p| p.id != peer);
                }
                ForgetStep::Done => break,
                ForgetStep::Blocked { collection, shard_id, .. } => {
                    let c = now.collection(&collection).unwrap();
                    prop_assert!(c.shards[&shard_id].contains_key(&lost));
                    break;
                }
            }
        }
    }
}

#[test]
fn a_lost_peer_is_forgotten_replica_by_replica_unless_it_held_the_only_copy() {
    // Shard 0 is also on P1, shard 1 only on the lost P0.
    let view = docs(2, &[(0, P0, "Active"), (0, P1, "Active"), (1, P0, "Active"), (1, P2, "Dead")]);
    assert_eq!(forget_step(&view, P0), ForgetStep::Drop(dropped("docs", 0, P0)));
    let mut after = view.clone();
    apply(&mut after, &dropped("docs", 0, P0));
    assert_eq!(forget_step(&after, P0), ForgetStep::Blocked { collection: "docs".into(), shard_id: 1, peer: P0 });
    // With shard 1 copied elsewhere too, the peer ends up empty and is removed.
    let view = docs(2, &[(0, P0, "Active"), (0, P1, "Active"), (1, P2, "Active")]);
    let mut after = view.clone();
    apply(&mut after, &dropped("docs", 0, P0));
    assert_eq!(forget_step(&after, P0), ForgetStep::RemovePeer { peer: P0 });
    after.peers.retain(|p| p.id != P0);
    assert_eq!(forget_step(&after, P0), ForgetStep::Done);
}
