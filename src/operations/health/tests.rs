//! [`assess`] on observations written by hand, and [`observe`] against small local servers
//! that answer like Qdrant (after its OpenAPI schemas), refuse, or reject the key.

use super::*;
use crate::qdrant::{
    ClientConfig, LocalShardInfo, MessageSendErrors, PeerInfo, QdrantMetrics, RaftInfo,
    RemoteShardInfo, StateRole,
};
use serde_json::json;
use std::time::Duration;

/// 2^64 - 59 and 2^53 + 1: neither survives a trip through f64.
const BIG: u64 = 18446744073709551557;
const ODD: u64 = 9007199254740993;
const SMALL: u64 = 42;
/// Peer ids of my-cluster-0, -1 and -2.
const IDS: [u64; 3] = [BIG, ODD, SMALL];

fn pod(i: usize) -> String {
    format!("my-cluster-{i}")
}

fn uri(i: usize) -> String {
    format!("http://my-cluster-{i}.my-cluster-headless.ns:6335/")
}

fn peers(members: &[(u64, String)]) -> BTreeMap<u64, PeerInfo> {
    members
        .iter()
        .map(|(id, uri)| (*id, PeerInfo { uri: uri.clone() }))
        .collect()
}

fn three_peers() -> BTreeMap<u64, PeerInfo> {
    peers(&[(BIG, uri(0)), (ODD, uri(1)), (SMALL, uri(2))])
}

/// `GET /cluster` of a peer in a settled term.
fn info(
    self_id: u64,
    peers: BTreeMap<u64, PeerInfo>,
    term: u64,
    commit: u64,
    leader: Option<u64>,
) -> ClusterInfo {
    ClusterInfo {
        peer_id: self_id,
        peers,
        raft_info: RaftInfo {
            term,
            commit,
            pending_operations: 0,
            leader,
            role: Some(if leader == Some(self_id) {
                StateRole::Leader
            } else {
                StateRole::Follower
            }),
            is_voter: true,
        },
        // Differs per peer and per call; must not show in the health.
        consensus_thread_status: ConsensusThreadStatus::Working {
            last_update: format!("2025-01-01T00:00:0{}.000Z", self_id % 10),
        },
        message_send_failures: BTreeMap::new(),
    }
}

/// One collection `docs` with three shards, one replica each, all Active, as `self_id` sees it.
fn docs(self_id: u64) -> CollectionObservation {
    collection("docs", self_id, &[(0, BIG), (1, ODD), (2, SMALL)], &[])
}

/// A collection as `self_id` reports it: `replicas` (shard, peer) Active, `other` (shard,
/// peer, state) in another state.
fn collection(
    name: &str,
    self_id: u64,
    replicas: &[(u32, u64)],
    other: &[(u32, u64, &str)],
) -> CollectionObservation {
    let all = replicas
        .iter()
        .map(|&(s, p)| (s, p, ReplicaState::Active))
        .chain(
            other
                .iter()
                .map(|&(s, p, st)| (s, p, ReplicaState::from(st))),
        );
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for (shard_id, peer_id, state) in all {
        if peer_id == self_id {
            local.push(LocalShardInfo {
                shard_id,
                shard_key: None,
                points_count: 10,
                state,
            });
        } else {
            remote.push(RemoteShardInfo {
                shard_id,
                shard_key: None,
                peer_id,
                state,
            });
        }
    }
    CollectionObservation {
        name: name.into(),
        cluster: Ok(CollectionClusterInfo {
            peer_id: self_id,
            shard_count: 3,
            local_shards: local,
            remote_shards: remote,
            shard_transfers: vec![],
            resharding_operations: None,
        }),
    }
}

fn obs(
    i: usize,
    cluster: Result<ClusterInfo, Failure>,
    collections: Result<Vec<CollectionObservation>, Failure>,
) -> PodObservation {
    PodObservation {
        pod: pod(i),
        base_url: format!("http://my-cluster-{i}.my-cluster-headless.ns:6333"),
        kube_ready: true,
        cluster,
        collections,
    }
}

/// Three Pods, three peers, leader my-cluster-1 in term 5, two collections, all Active.
fn healthy() -> Vec<PodObservation> {
    (0..3)
        .map(|i| {
            let me = IDS[i];
            let mut logs = collection("logs", me, &[(0, BIG), (0, SMALL)], &[]);
            if let Ok(info) = &mut logs.cluster {
                info.shard_count = 1;
            }
            obs(
                i,
                Ok(info(me, three_peers(), 5, 100 + i as u64, Some(ODD))),
                Ok(vec![docs(me), logs]),
            )
        })
        .collect()
}

fn unreachable(message: &str) -> Failure {
    Failure::new(FailureKind::Unreachable, message)
}

fn reasons(h: &Health) -> Vec<Reason> {
    h.problems.iter().map(|p| p.reason).collect()
}

// ---------------------------------------------------------------------------------------------
// assess

#[test]
fn a_healthy_three_peer_cluster() {
    let h = assess(&healthy(), 3);
    assert!(h.is_healthy(), "{:?}", h.problems);
    assert_eq!(h.reason(), "AllPeersHealthy");
    let mapped: Vec<(Option<&str>, u64)> = h
        .peers
        .iter()
        .map(|p| (p.pod.as_deref(), p.peer_id))
        .collect();
    assert_eq!(
        mapped,
        vec![
            (Some("my-cluster-0"), BIG),
            (Some("my-cluster-1"), ODD),
            (Some("my-cluster-2"), SMALL)
        ]
    );
    assert_eq!(h.peers[2].uri, uri(2));
    assert_eq!(h.peer_count, Some(3));
    assert_eq!(h.leader_peer_id, Some(ODD));
    assert_eq!(h.leader_pod.as_deref(), Some("my-cluster-1"));
    // The most advanced view: the highest commit.
    assert_eq!(
        (h.term, h.commit, h.pending_operations),
        (Some(5), Some(102), Some(0))
    );
    assert_eq!(h.collections, Some(2));
    assert_eq!(h.replicas_not_active, Some(0));
    assert!(h.replicas_not_active_sample.is_empty());
    assert_eq!(
        h.message(),
        "3 peers in consensus, Raft leader my-cluster-1 (term 5), 2 collections, every shard \
         replica Active"
    );
    let st = h.to_status();
    assert_eq!(st.health, "Healthy");
    assert_eq!(st.peer_count, Some(3));
    assert_eq!(st.raft_leader.as_deref(), Some("my-cluster-1"));
    assert_eq!(st.collections, Some(2));
    assert_eq!(st.replicas_not_active, Some(0));
}

#[test]
fn peer_ids_above_2_53_stay_exact_and_are_rendered_as_strings() {
    assert_ne!(ODD as f64 as u64, ODD, "the test ids must not survive f64");
    let h = assess(&healthy(), 3);
    assert_eq!(h.peers[0].peer_id, BIG);
    let st = h.to_status();
    assert_eq!(st.peers[0].peer_id, "18446744073709551557");
    assert_eq!(st.peers[1].peer_id, "9007199254740993");
    assert_eq!(st.raft_leader_peer_id.as_deref(), Some("9007199254740993"));
    // As the API server stores it: strings, not numbers, so no JSON client rounds them.
    let v = serde_json::to_value(&st).unwrap();
    assert_eq!(v["peers"][0]["peerId"], json!("18446744073709551557"));
    assert_eq!(v["raftLeaderPeerId"], json!("9007199254740993"));
    assert_eq!(v["peers"][1]["pod"], json!("my-cluster-1"));
    let back: QdrantHealthStatus = serde_json::from_value(v).unwrap();
    assert_eq!(back, st);
    assert_eq!(back.peers[0].peer_id.parse::<u64>().unwrap(), BIG);
}

#[test]
fn an_unreachable_pod_is_named_with_the_cause() {
    let mut o = healthy();
    o[2].cluster = Err(unreachable("connection refused"));
    o[2].collections = Err(unreachable("connection refused"));
    o[2].kube_ready = false;
    let h = assess(&o, 3);
    assert!(!h.is_healthy());
    assert_eq!(h.reason(), "PeerUnreachable");
    assert_eq!(
        h.message(),
        "my-cluster-2: unreachable (connection refused), Pod not Ready"
    );
    // Still a peer of the consensus: recognised by its DNS name in the peer URI.
    assert_eq!(h.peers[2].pod.as_deref(), Some("my-cluster-2"));
    // The others still tell the rest.
    assert_eq!(h.leader_pod.as_deref(), Some("my-cluster-1"));
    assert_eq!(h.collections, Some(2));
    assert_eq!(h.to_status().health, "Degraded");
    // A drain must not rely on what that Pod holds.
    assert_eq!(h.unreachable.iter().collect::<Vec<_>>(), vec!["my-cluster-2"]);
    assert!(assess(&healthy(), 3).unreachable.is_empty());
}

#[test]
fn a_qdrant_peer_that_no_pod_matches_is_named() {
    let mut o = healthy();
    let mut members = three_peers();
    members.insert(
        1234,
        PeerInfo {
            uri: "http://x:6335".into(),
        },
    );
    for (i, p) in o.iter_mut().enumerate() {
        p.cluster = Ok(info(IDS[i], members.clone(), 5, 100, Some(ODD)));
    }
    let h = assess(&o, 3);
    assert_eq!(reasons(&h), vec![Reason::UnknownPeer]);
    assert_eq!(
        h.message(),
        "peer 1234 (http://x:6335) is not a Pod of this cluster"
    );
    assert_eq!(h.peer_count, Some(4));
    // Listed last, without a Pod.
    let last = h.peers.last().unwrap();
    assert_eq!((last.peer_id, last.pod.as_deref()), (1234, None));
    let st = h.to_status();
    assert_eq!(st.peers[3].pod, None);
    assert_eq!(st.peers[3].peer_id, "1234");
    assert_eq!(st.health, "Degraded");
}

#[test]
fn a_peer_left_behind_by_a_scale_down_is_named() {
    // my-cluster-2 is gone from Kubernetes, but Qdrant still lists its peer.
    let o: Vec<PodObservation> = healthy().into_iter().take(2).collect();
    let h = assess(&o, 2);
    assert_eq!(reasons(&h), vec![Reason::UnknownPeer]);
    assert_eq!(
        h.message(),
        format!("peer 42 ({}) is not a Pod of this cluster", uri(2))
    );
}

#[test]
fn a_pod_in_a_consensus_of_its_own_is_named_on_both_sides() {
    // my-cluster-2 lost its volume and founded a cluster of its own as peer 77; the others
    // still list its old peer.
    let mut o = healthy();
    o[2].cluster = Ok(info(77, peers(&[(77, uri(2))]), 1, 3, Some(77)));
    o[2].collections = Ok(vec![]);
    let h = assess(&o, 3);
    assert_eq!(
        reasons(&h),
        vec![Reason::UnknownPeer, Reason::PeerNotInConsensus]
    );
    let m = h.message();
    assert!(
        m.contains(&format!(
            "peer 42 ({}) is not a Pod of this cluster: my-cluster-2 answers as peer 77",
            uri(2)
        )),
        "{m}"
    );
    assert!(
        m.contains("my-cluster-2 (peer 77) is not among the peers of my-cluster-1"),
        "{m}"
    );
    // Its term and empty collection list describe another cluster: neither is compared.
    assert!(!m.contains("sees term"), "{m}");
    assert_eq!(h.collections, Some(2));
    assert_eq!(h.term, Some(5));
}

#[test]
fn a_pod_that_qdrant_does_not_list_is_named() {
    let mut o = healthy();
    let two = peers(&[(BIG, uri(0)), (ODD, uri(1))]);
    for (i, p) in o.iter_mut().enumerate().take(2) {
        p.cluster = Ok(info(IDS[i], two.clone(), 5, 100, Some(ODD)));
    }
    o[2].cluster = Err(unreachable("connection refused"));
    let h = assess(&o, 3);
    let m = h.message();
    assert!(
        m.contains("my-cluster-2: unreachable (connection refused)"),
        "{m}"
    );
    assert!(
        m.contains("my-cluster-2 is not among Qdrant's peers"),
        "{m}"
    );
    assert_eq!(h.peer_count, Some(2));
}

#[test]
fn an_unknown_replica_state_is_counted_and_named() {
    let mut o = healthy();
    for (i, p) in o.iter_mut().enumerate() {
        p.collections = Ok(vec![collection(
            "docs",
            IDS[i],
            &[(0, BIG), (2, SMALL)],
            &[(1, SMALL, "SomethingNew")],
        )]);
    }
    let h = assess(&o, 3);
    assert_eq!(reasons(&h), vec![Reason::ReplicasNotActive]);
    assert_eq!(h.replicas_not_active, Some(1));
    assert_eq!(
        h.replicas_not_active_sample,
        vec!["docs/shard 1@peer 42: SomethingNew"]
    );
    assert_eq!(
        h.message(),
        "1 shard replica is not Active: docs/shard 1@peer 42: SomethingNew"
    );
    assert_eq!(h.to_status().health, "Degraded");
}

#[test]
fn the_sample_is_capped_but_the_count_is_exact() {
    let mut o = healthy();
    // Eight replicas not Active over two collections, known states and unknown ones.
    let dead: Vec<(u32, u64, &str)> = (0..4).map(|s| (s, BIG, "Dead")).collect();
    let partial: Vec<(u32, u64, &str)> = (0..4)
        .map(|s| (s, ODD, if s % 2 == 0 { "Partial" } else { "Weird" }))
        .collect();
    for (i, p) in o.iter_mut().enumerate() {
        p.collections = Ok(vec![
            collection("b", IDS[i], &[(0, SMALL)], &partial),
            collection("a", IDS[i], &[(0, SMALL)], &dead),
        ]);
    }
    let h = assess(&o, 3);
    assert_eq!(h.replicas_not_active, Some(8));
    assert_eq!(h.replicas_not_active_sample.len(), SAMPLE);
    // Sorted by collection, shard, peer: independent of the order Qdrant listed them in.
    assert_eq!(
        h.replicas_not_active_sample,
        vec![
            format!("a/shard 0@peer {BIG}: Dead"),
            format!("a/shard 1@peer {BIG}: Dead"),
            format!("a/shard 2@peer {BIG}: Dead"),
            format!("a/shard 3@peer {BIG}: Dead"),
            format!("b/shard 0@peer {ODD}: Partial"),
        ]
    );
    assert!(h.message().ends_with(" and 3 more"), "{}", h.message());
    assert!(h.message().starts_with("8 shard replicas are not Active: "));
    let st = h.to_status();
    assert_eq!(st.replicas_not_active, Some(8));
    assert_eq!(st.replicas_not_active_sample.len(), 5);
}

#[test]
fn a_rejected_api_key_says_so_once_for_all_pods() {
    let o: Vec<PodObservation> = (0..3)
        .map(|i| {
            let f = Failure::new(FailureKind::Unauthorized, "Invalid API key or JWT");
            obs(i, Err(f.clone()), Err(f))
        })
        .collect();
    let h = assess(&o, 3);
    assert_eq!(reasons(&h), vec![Reason::Unauthorized]);
    assert_eq!(
        h.message(),
        "my-cluster-0, my-cluster-1, my-cluster-2: 401 Unauthorized: the operator's API key is \
         rejected"
    );
    assert_eq!(h.reason(), "Unauthorized");
    // Nothing is known, and nothing pretends to be zero.
    assert_eq!((h.peer_count, h.term, h.collections), (None, None, None));
    assert_eq!(h.replicas_not_active, None);
    assert!(h.peers.is_empty());
    let st = h.to_status();
    assert_eq!(st.health, "Degraded");
    assert_eq!(st.collections, None);
}

#[test]
fn a_forbidden_key_is_unauthorized_too() {
    let mut o = healthy();
    o[0].cluster = Err(Failure::new(FailureKind::Forbidden, "read-only"));
    let h = assess(&o, 3);
    assert_eq!(h.reason(), "Unauthorized");
    assert!(h.message().starts_with(
        "my-cluster-0: 403 Forbidden: the operator's API key may not read this: read-only"
    ));
}

#[test]
fn a_server_error_is_named_with_its_message() {
    let mut o = healthy();
    o[1].cluster = Err(Failure::new(
        FailureKind::Http(500),
        "Service internal error: consensus is not ready",
    ));
    let h = assess(&o, 3);
    assert_eq!(h.reason(), "PeerError");
    assert_eq!(
        h.message(),
        "my-cluster-1: 500 Internal Server Error: Service internal error: consensus is not ready"
    );
    // The leader's Pod answered with an error, yet the others place it.
    assert_eq!(h.leader_pod.as_deref(), Some("my-cluster-1"));
}

#[test]
fn an_unknown_leader_is_not_healthy() {
    let o: Vec<PodObservation> = (0..3)
        .map(|i| obs(i, Ok(info(IDS[i], three_peers(), 3, 7, None)), Ok(vec![])))
        .collect();
    let h = assess(&o, 3);
    assert!(!h.is_healthy());
    assert_eq!(reasons(&h), vec![Reason::NoRaftLeader]);
    assert_eq!(h.message(), "no Raft leader is known (term 3)");
    assert_eq!((h.leader_peer_id, h.leader_pod.as_deref()), (None, None));
    assert_eq!(h.collections, Some(0));
    assert_eq!(h.to_status().raft_leader_peer_id, None);
}

#[test]
fn disagreeing_terms_are_reported_and_the_highest_term_is_shown() {
    let mut o = healthy();
    // my-cluster-2 is behind: an older term, another leader, and a higher commit (which must
    // not make its view win).
    o[2].cluster = Ok(info(SMALL, three_peers(), 4, 999, Some(SMALL)));
    for observations in [o.clone(), o.into_iter().rev().collect()] {
        let h = assess(&observations, 3);
        assert_eq!(reasons(&h), vec![Reason::ConsensusDisagreement]);
        assert_eq!((h.term, h.commit), (Some(5), Some(101)));
        assert_eq!(h.leader_pod.as_deref(), Some("my-cluster-1"));
        assert_eq!(
            h.message(),
            format!(
                "my-cluster-2 sees term 4 and leader peer 42 (my-cluster-2), my-cluster-1 sees \
                 term 5 and leader peer {ODD} (my-cluster-1)"
            )
        );
    }
}

#[test]
fn disagreeing_membership_is_reported() {
    let mut o = healthy();
    o[1].cluster = Ok(info(
        ODD,
        peers(&[(BIG, uri(0)), (ODD, uri(1))]),
        5,
        100,
        Some(ODD),
    ));
    let h = assess(&o, 3);
    assert_eq!(reasons(&h), vec![Reason::ConsensusDisagreement]);
    assert_eq!(
        h.message(),
        format!("my-cluster-1 sees 2 peers ({ODD}, {BIG}), my-cluster-2 sees 3 peers")
    );
}

#[test]
fn learners_and_stopped_consensus_threads_are_not_in_consensus() {
    let mut o = healthy();
    if let Ok(info) = &mut o[0].cluster {
        info.raft_info.is_voter = false;
    }
    if let Ok(info) = &mut o[2].cluster {
        info.consensus_thread_status = ConsensusThreadStatus::StoppedWithErr {
            err: "storage full".into(),
        };
    }
    let h = assess(&o, 3);
    assert_eq!(
        reasons(&h),
        vec![Reason::PeerNotInConsensus, Reason::PeerNotInConsensus]
    );
    assert_eq!(
        h.message(),
        "my-cluster-0 is a learner, not yet a voting peer; my-cluster-2: consensus thread \
         stopped: storage full"
    );
}

#[test]
fn two_pods_answering_as_one_peer_are_named() {
    let mut o = healthy();
    o[2].cluster = Ok(info(ODD, three_peers(), 5, 100, Some(ODD)));
    let h = assess(&o, 3);
    let m = h.message();
    assert!(
        m.contains(&format!(
            "my-cluster-2 answers as peer {ODD}, like my-cluster-1"
        )),
        "{m}"
    );
    assert!(!h.is_healthy());
}

#[test]
fn missing_pods_and_no_pods() {
    let o: Vec<PodObservation> = healthy().into_iter().collect();
    let h = assess(&o, 4);
    assert_eq!(reasons(&h), vec![Reason::PodsMissing]);
    assert_eq!(h.message(), "3 of 4 Pods exist");

    let h = assess(&[], 3);
    assert!(!h.is_healthy());
    assert_eq!(h.message(), "0 of 3 Pods exist");
    assert_eq!(h.peer_count, None);
}

#[test]
fn a_disabled_distributed_mode_is_named() {
    let mut o = healthy();
    o[0].cluster = Err(Failure::new(FailureKind::ClusterDisabled, ""));
    let h = assess(&o, 3);
    assert!(h
        .message()
        .contains("my-cluster-0: Qdrant's distributed mode is off"));
    assert_eq!(h.reason(), "PeerError");
}

#[test]
fn collections_come_from_any_member_that_can_tell() {
    let mut o = healthy();
    // The most advanced view (my-cluster-2) fails on `docs`; my-cluster-0 answers it.
    if let Ok(list) = &mut o[2].collections {
        list[0].cluster = Err(Failure::new(FailureKind::Http(500), "boom"));
    }
    let h = assess(&o, 3);
    assert!(h.is_healthy(), "{:?}", h.problems);
    assert_eq!(h.collections, Some(2));

    // Failing everywhere: named, and counted.
    for p in &mut o {
        if let Ok(list) = &mut p.collections {
            list[0].cluster = Err(Failure::new(FailureKind::Http(500), "boom"));
        }
    }
    let h = assess(&o, 3);
    assert_eq!(reasons(&h), vec![Reason::CollectionsUnknown]);
    assert_eq!(
        h.message(),
        "collection docs: shard placement unknown: 500 Internal Server Error: boom"
    );
    assert_eq!(h.collections, Some(2));

    // Deleted between the list and the look-up: not a collection any more, not a problem.
    for p in &mut o {
        if let Ok(list) = &mut p.collections {
            list[0].cluster = Err(Failure::new(FailureKind::NotFound, "Not found: docs"));
        }
    }
    let h = assess(&o, 3);
    assert!(h.is_healthy(), "{:?}", h.problems);
    assert_eq!(h.collections, Some(1));
}

#[test]
fn a_failed_collection_list_is_named_for_its_pod() {
    let mut o = healthy();
    o[1].collections = Err(Failure::new(FailureKind::Http(503), "overloaded"));
    let h = assess(&o, 3);
    assert_eq!(reasons(&h), vec![Reason::PeerError]);
    assert_eq!(
        h.message(),
        "my-cluster-1: GET /collections: 503 Service Unavailable: overloaded"
    );
    assert_eq!(h.collections, Some(2));
}

#[test]
fn the_most_severe_reason_wins_and_the_message_names_all() {
    let mut o = healthy();
    o[0].cluster = Err(unreachable("connection refused"));
    o[1].cluster = Err(Failure::new(FailureKind::Unauthorized, ""));
    if let Ok(list) = &mut o[2].collections {
        *list = vec![collection("docs", SMALL, &[], &[(0, BIG, "Dead")])];
    }
    let h = assess(&o, 3);
    assert_eq!(h.reason(), "Unauthorized");
    let m = h.message();
    let at = |s: &str| m.find(s).unwrap_or_else(|| panic!("{s:?} not in {m}"));
    assert!(at("my-cluster-1: 401") < at("my-cluster-0: unreachable"));
    assert!(at("my-cluster-0: unreachable") < at("1 shard replica is not Active"));
}

#[test]
fn identical_inputs_give_identical_health_in_any_order() {
    let o = healthy();
    let a = assess(&o, 3);
    let b = assess(&o.iter().rev().cloned().collect::<Vec<_>>(), 3);
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a.to_status()).unwrap(),
        serde_json::to_string(&b.to_status()).unwrap()
    );

    // Values that change on every call (last_update, send failures) do not reach the status.
    let mut c = o.clone();
    for p in &mut c {
        if let Ok(info) = &mut p.cluster {
            info.consensus_thread_status = ConsensusThreadStatus::Working {
                last_update: "2030-06-01T00:00:00Z".into(),
            };
            info.message_send_failures.insert(
                uri(2),
                MessageSendErrors {
                    count: 3,
                    latest_error: Some("x".into()),
                    latest_error_timestamp: None,
                },
            );
        }
    }
    assert_eq!(assess(&c, 3).to_status(), a.to_status());
}

#[test]
fn the_message_is_capped() {
    let mut members = three_peers();
    for id in 1000..1400 {
        members.insert(
            id,
            PeerInfo {
                uri: format!("http://stranger-{id}.elsewhere:6335"),
            },
        );
    }
    let o: Vec<PodObservation> = (0..3)
        .map(|i| {
            obs(
                i,
                Ok(info(IDS[i], members.clone(), 5, 1, Some(BIG))),
                Ok(vec![]),
            )
        })
        .collect();
    let h = assess(&o, 3);
    assert_eq!(h.problems.len(), 400);
    let m = h.message();
    assert!(m.len() <= MAX_MESSAGE + '…'.len_utf8(), "{}", m.len());
    assert!(m.ends_with('…'));
}

#[test]
fn peer_uris_match_pods_by_dns_name() {
    for u in [
        "http://my-cluster-1.my-cluster-headless.ns:6335/",
        "http://my-cluster-1.my-cluster-headless.ns.svc.cluster.local:6335",
        "https://MY-CLUSTER-1.my-cluster-headless.ns:6335/",
        "http://my-cluster-1:6335",
    ] {
        assert!(uri_names_pod(u, "my-cluster-1"), "{u}");
    }
    for u in [
        "http://my-cluster-10.my-cluster-headless.ns:6335/",
        "http://other-my-cluster-1.x:6335/",
        "http://10.0.0.7:6335/",
        "not a uri",
    ] {
        assert!(!uri_names_pod(u, "my-cluster-1"), "{u}");
    }
    assert_eq!(ordinal("my-cluster-12"), Some(12));
    assert_eq!(ordinal("weird"), None);
}

#[test]
fn pods_sort_by_ordinal_not_by_text() {
    // my-cluster-10 after my-cluster-2.
    let members = peers(
        &(0..11)
            .map(|i| (100 + i as u64, uri(i)))
            .collect::<Vec<_>>(),
    );
    let o: Vec<PodObservation> = (0..11)
        .map(|i| {
            obs(
                i,
                Ok(info(100 + i as u64, members.clone(), 1, 1, Some(100))),
                Ok(vec![]),
            )
        })
        .collect();
    let h = assess(&o, 11);
    assert!(h.is_healthy(), "{:?}", h.problems);
    let names: Vec<&str> = h.peers.iter().filter_map(|p| p.pod.as_deref()).collect();
    assert_eq!(names[2], "my-cluster-2");
    assert_eq!(names[10], "my-cluster-10");
}

#[test]
fn failures_from_client_errors() {
    let timeout = QdrantError::Timeout {
        endpoint: "GET /cluster",
        timeout: Duration::from_secs(2),
    };
    let f = Failure::from(&timeout);
    assert_eq!(f.kind, FailureKind::Unreachable);
    assert_eq!(f.to_string(), "unreachable (no answer within 2s)");
    let status = QdrantError::Status {
        endpoint: "GET /cluster",
        status: 503,
        message: "busy".into(),
    };
    assert_eq!(
        Failure::from(&status).to_string(),
        "503 Service Unavailable: busy"
    );
    let odd = Failure::new(FailureKind::Http(599), "?");
    assert_eq!(odd.to_string(), "HTTP 599: ?");
    // No dangling colon without a message.
    let bare = Failure::new(FailureKind::Http(502), "");
    assert_eq!(bare.to_string(), "502 Bad Gateway");
    let unauthorized = QdrantError::Unauthorized {
        endpoint: "GET /cluster",
        message: "Invalid API key".into(),
    };
    assert_eq!(Failure::from(&unauthorized).kind, FailureKind::Unauthorized);
    assert_eq!(Failure::from(&unauthorized).message, "Invalid API key");
}

// ---------------------------------------------------------------------------------------------
// observe, against local servers

mod servers {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::Json;
    use serde_json::{json, Value};
    use tokio::net::TcpListener;

    async fn listen(app: axum::Router) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn ok(result: Value) -> Response {
        Json(json!({"result": result, "status": "ok", "time": 0.001})).into_response()
    }

    /// A Qdrant peer: `cluster` for `GET /cluster`, one collection `docs` with
    /// `collection` for its `/cluster`, and `gone` listed but answering 404. Requires the
    /// `api-key` header `secret`.
    pub async fn qdrant(cluster: String, collection: String) -> String {
        #[derive(Clone)]
        struct Answers {
            cluster: String,
            collection: String,
        }
        /// `answer` with the right key, else Qdrant's 401.
        fn authorized(headers: &HeaderMap, answer: impl FnOnce() -> Response) -> Response {
            match headers.get("api-key").and_then(|v| v.to_str().ok()) {
                Some("secret") => answer(),
                _ => (
                    StatusCode::UNAUTHORIZED,
                    "Must provide an API key or an Authorization bearer token",
                )
                    .into_response(),
            }
        }
        let raw = |text: &str| {
            // Wrapped by hand, so big ids are never parsed by anything but the client.
            let body = format!(r#"{{"result":{text},"status":"ok","time":0.0}}"#);
            ([("content-type", "application/json")], body).into_response()
        };
        let app = axum::Router::new()
            .route(
                "/cluster",
                get(move |State(a): State<Answers>, h: HeaderMap| async move {
                    authorized(&h, || raw(&a.cluster))
                }),
            )
            .route(
                "/collections",
                get(|h: HeaderMap| async move {
                    authorized(&h, || {
                        ok(json!({"collections": [{"name": "docs"}, {"name": "gone"}]}))
                    })
                }),
            )
            .route(
                "/collections/docs/cluster",
                get(move |State(a): State<Answers>, h: HeaderMap| async move {
                    authorized(&h, || raw(&a.collection))
                }),
            )
            .route(
                "/collections/gone/cluster",
                get(|| async {
                    (
                        StatusCode::NOT_FOUND,
                        Json(json!({"status": {"error": "Not found: Collection `gone` doesn't exist!"}, "time": 0.0})),
                    )
                }),
            )
            .with_state(Answers {
                cluster,
                collection,
            });
        listen(app).await
    }

    /// Answers every request with `status` and Qdrant's error envelope.
    pub async fn failing(status: u16, message: &'static str) -> String {
        let app = axum::Router::new().fallback(move || async move {
            (
                StatusCode::from_u16(status).unwrap(),
                Json(json!({"status": {"error": message}, "time": 0.0, "result": null})),
            )
        });
        listen(app).await
    }

    /// An address nothing listens on.
    pub async fn refused() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    }

    /// Accepts connections and never answers.
    pub async fn black_hole() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        format!("http://{addr}")
    }
}

fn client(api_key: &str, timeout: Duration) -> QdrantClient {
    let registry = prometheus::Registry::new();
    QdrantClient::new(
        ClientConfig {
            timeout,
            api_key: Some(api_key.into()),
            ca_pem: None,
        },
        QdrantMetrics::new(&registry).unwrap(),
    )
    .unwrap()
}

fn cluster_text(self_id: u64, leader: u64) -> String {
    format!(
        r#"{{"status":"enabled","peer_id":{self_id},
            "peers":{{"{BIG}":{{"uri":"{}"}},"{ODD}":{{"uri":"{}"}},"{SMALL}":{{"uri":"{}"}}}},
            "raft_info":{{"term":9,"commit":50,"pending_operations":1,"leader":{leader},
                          "role":"Follower","is_voter":true}},
            "consensus_thread_status":{{"consensus_thread_status":"working",
                                        "last_update":"2025-01-01T00:00:00Z"}},
            "message_send_failures":{{}}}}"#,
        uri(0),
        uri(1),
        uri(2)
    )
}

fn collection_text(self_id: u64) -> String {
    format!(
        r#"{{"peer_id":{self_id},"shard_count":2,
            "local_shards":[{{"shard_id":0,"points_count":5,"state":"Active"}}],
            "remote_shards":[{{"shard_id":1,"peer_id":{ODD},"state":"Recovery"}},
                             {{"shard_id":1,"peer_id":{SMALL},"state":"Active"}}],
            "shard_transfers":[]}}"#
    )
}

fn target(i: usize, base_url: String) -> PodTarget {
    PodTarget {
        pod: pod(i),
        base_url,
        kube_ready: true,
    }
}

#[tokio::test]
async fn observe_keeps_every_answer_and_every_failure() {
    let good = servers::qdrant(cluster_text(BIG, ODD), collection_text(BIG)).await;
    let targets = vec![
        target(0, good.clone()),
        target(1, servers::refused().await),
        target(
            2,
            servers::failing(500, "Service internal error: boom").await,
        ),
        target(3, "not a url".into()),
    ];
    let o = observe(&client("secret", Duration::from_secs(5)), &targets).await;
    assert_eq!(o.len(), 4);
    assert_eq!(
        o.iter().map(|p| p.pod.as_str()).collect::<Vec<_>>(),
        vec![
            "my-cluster-0",
            "my-cluster-1",
            "my-cluster-2",
            "my-cluster-3"
        ]
    );

    let info = o[0].cluster.as_ref().unwrap();
    assert_eq!((info.peer_id, info.raft_info.leader), (BIG, Some(ODD)));
    let collections = o[0].collections.as_ref().unwrap();
    assert_eq!(collections[0].name, "docs");
    assert_eq!(collections[0].cluster.as_ref().unwrap().peer_id, BIG);
    assert_eq!(collections[1].name, "gone");
    assert_eq!(
        collections[1].cluster.as_ref().unwrap_err().kind,
        FailureKind::NotFound
    );

    let refused = o[1].cluster.as_ref().unwrap_err();
    assert_eq!(refused.kind, FailureKind::Unreachable);
    assert_eq!(refused.to_string(), "unreachable (connection refused)");
    assert_eq!(
        o[2].cluster.as_ref().unwrap_err().to_string(),
        "500 Internal Server Error: Service internal error: boom"
    );
    assert_eq!(
        o[3].cluster.as_ref().unwrap_err().kind,
        FailureKind::InvalidUrl
    );
    assert_eq!(
        o[3].collections.as_ref().unwrap_err().kind,
        FailureKind::InvalidUrl
    );

    // And judged: Pod 0 speaks for the cluster; the others are named.
    let h = assess(&o, 4);
    assert_eq!(h.leader_pod.as_deref(), Some("my-cluster-1"));
    assert_eq!((h.term, h.pending_operations), (Some(9), Some(1)));
    assert_eq!(h.collections, Some(1), "`gone` vanished in between");
    assert_eq!(h.replicas_not_active, Some(1));
    assert_eq!(
        h.replicas_not_active_sample,
        vec![format!("docs/shard 1@peer {ODD}: Recovery")]
    );
    let m = h.message();
    for part in [
        "my-cluster-1: unreachable (connection refused)",
        "my-cluster-2: 500 Internal Server Error: Service internal error: boom",
        "my-cluster-3: invalid address",
        "my-cluster-3 is not among Qdrant's peers",
        "1 shard replica is not Active",
    ] {
        assert!(m.contains(part), "{part:?} not in {m}");
    }
    assert_eq!(h.to_status().raft_leader_peer_id, Some(ODD.to_string()));
}

#[tokio::test]
async fn observe_with_a_wrong_key_reports_it() {
    let good = servers::qdrant(cluster_text(BIG, BIG), collection_text(BIG)).await;
    let o = observe(&client("wrong", Duration::from_secs(5)), &[target(0, good)]).await;
    assert_eq!(
        o[0].cluster.as_ref().unwrap_err().kind,
        FailureKind::Unauthorized
    );
    assert_eq!(
        o[0].collections.as_ref().unwrap_err().kind,
        FailureKind::Unauthorized
    );
    let h = assess(&o, 1);
    assert_eq!(h.reason(), "Unauthorized");
    assert_eq!(
        h.message(),
        "my-cluster-0: 401 Unauthorized: the operator's API key is rejected"
    );
}

#[tokio::test]
async fn observe_asks_all_pods_at_once_within_the_deadline() {
    // Three silent Pods: together they take one deadline, not three.
    let targets = vec![
        target(0, servers::black_hole().await),
        target(1, servers::black_hole().await),
        target(2, servers::black_hole().await),
    ];
    let started = std::time::Instant::now();
    let o = observe(&client("secret", Duration::from_secs(1)), &targets).await;
    let elapsed = started.elapsed();
    // One after the other would take at least 3 s.
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    for p in &o {
        let f = p.cluster.as_ref().unwrap_err();
        assert_eq!(f.to_string(), "unreachable (no answer within 1s)");
    }
    let h = assess(&o, 3);
    assert_eq!(
        h.message(),
        "my-cluster-0, my-cluster-1, my-cluster-2: unreachable (no answer within 1s)"
    );
}
