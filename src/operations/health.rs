//! The health of a Qdrant cluster, as Qdrant itself sees it: who the peers are and which Pod
//! each runs in, who leads Raft, and whether every shard replica is Active.
//!
//! Two halves:
//! - [`observe`] asks every Pod (`GET /cluster`, `GET /collections`, then each collection's
//!   `/cluster`) and keeps whatever it got, errors included, as plain values;
//! - [`assess`] is pure: from those observations to a [`Health`], whose message names every
//!   problem found. It is where all the judgement is, so it is tested without any server.
//!
//! Peer ids are random `u64`s, often above 2^53. They stay `u64` here and are rendered as
//! decimal strings in the status ([`Health::to_status`]), because Kubernetes JSON clients and
//! `kubectl` read numbers as floats and would round them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use futures::StreamExt;
use reqwest::{StatusCode, Url};

use super::{Access, Qdrant};
use crate::crd::{QdrantHealthStatus, QdrantPeerStatus};
use crate::qdrant::{
    truncate, ClusterInfo, ClusterStatus, CollectionClusterInfo, ConsensusThreadStatus, Peer,
    QdrantClient, QdrantError, ReplicaState,
};

#[cfg(test)]
mod tests;

/// How many replicas that are not Active are named in the status; the count is always exact.
pub const SAMPLE: usize = 5;

/// Longest [`Health::message`]: it becomes a condition message, which the API server caps at
/// 32768 bytes, and a status line people read.
const MAX_MESSAGE: usize = 4096;

/// How many `GET /collections/{name}/cluster` calls one Pod gets at once: enough to finish a
/// few dozen collections within a couple of deadlines, few enough not to load a busy peer.
const COLLECTION_CONCURRENCY: usize = 4;

// ---------------------------------------------------------------------------------------------
// Observations

/// A Pod to ask: its name, the base URL of its REST API (e.g.
/// `http://my-cluster-0.my-cluster-headless.ns:6333`) and whether Kubernetes counts it Ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    pub pod: String,
    pub base_url: String,
    pub kube_ready: bool,
}

/// What one Pod answered. Errors are kept as [`Failure`]s, so tests build observations by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct PodObservation {
    pub pod: String,
    pub base_url: String,
    pub kube_ready: bool,
    /// `GET /cluster`. Distributed mode being off is a [`FailureKind::ClusterDisabled`].
    pub cluster: Result<ClusterInfo, Failure>,
    /// `GET /collections`, then each collection's `GET /collections/{name}/cluster`.
    pub collections: Result<Vec<CollectionObservation>, Failure>,
}

/// One collection as one Pod reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionObservation {
    pub name: String,
    pub cluster: Result<CollectionClusterInfo, Failure>,
}

/// Why a call gave no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer: connection refused, DNS, TLS handshake, timeout.
    Unreachable,
    /// 401: the API key is missing or wrong.
    Unauthorized,
    /// 403: the API key may not do this.
    Forbidden,
    /// 404.
    NotFound,
    /// Any other HTTP error status.
    Http(u16),
    /// A 2xx answer that is not what the API specifies.
    Decode,
    /// The Pod's base URL is not usable.
    InvalidUrl,
    /// `GET /cluster` says distributed mode is off.
    ClusterDisabled,
    /// No client could be built for the cluster: its CA bundle or API key is not usable.
    ClientConfig,
}

/// A failed call, reduced to what the status needs: the kind, and a message that is stable for
/// the same cause (no durations measured, no addresses that change per attempt), so that an
/// unchanged outage gives an unchanged status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// The condition reason this failure stands for, when it stops a Pod from being judged.
    fn reason(&self) -> Reason {
        match self.kind {
            FailureKind::Unreachable => Reason::PeerUnreachable,
            FailureKind::Unauthorized | FailureKind::Forbidden => Reason::Unauthorized,
            _ => Reason::PeerError,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Qdrant's message, when there is one, after a colon.
        let m = if self.message.is_empty() {
            String::new()
        } else {
            format!(": {}", self.message)
        };
        match self.kind {
            FailureKind::Unreachable => write!(f, "unreachable ({})", self.message),
            // Qdrant's own 401 text varies by version and says nothing the user can act on.
            FailureKind::Unauthorized => {
                f.write_str("401 Unauthorized: the operator's API key is rejected")
            }
            FailureKind::Forbidden => write!(
                f,
                "403 Forbidden: the operator's API key may not read this{m}"
            ),
            FailureKind::NotFound => write!(f, "404 Not Found{m}"),
            FailureKind::Http(status) => {
                let name = StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason());
                match name {
                    Some(name) => write!(f, "{status} {name}{m}"),
                    None => write!(f, "HTTP {status}{m}"),
                }
            }
            FailureKind::Decode => write!(f, "undecodable answer{m}"),
            FailureKind::InvalidUrl => write!(f, "invalid address{m}"),
            FailureKind::ClusterDisabled => f.write_str("Qdrant's distributed mode is off"),
            FailureKind::ClientConfig => write!(f, "the operator cannot build a client for this cluster{m}"),
        }
    }
}

impl From<&QdrantError> for Failure {
    fn from(error: &QdrantError) -> Self {
        match error {
            QdrantError::Timeout { timeout, .. } => Failure::new(
                FailureKind::Unreachable,
                format!("no answer within {timeout:?}"),
            ),
            QdrantError::Transport { source, .. } => {
                Failure::new(FailureKind::Unreachable, transport_detail(source))
            }
            QdrantError::Unauthorized { message, .. } => {
                Failure::new(FailureKind::Unauthorized, message.as_str())
            }
            QdrantError::Forbidden { message, .. } => {
                Failure::new(FailureKind::Forbidden, message.as_str())
            }
            QdrantError::NotFound { message, .. } => {
                Failure::new(FailureKind::NotFound, message.as_str())
            }
            QdrantError::Status {
                status, message, ..
            } => Failure::new(FailureKind::Http(*status), message.as_str()),
            QdrantError::Decode { source, .. } => {
                Failure::new(FailureKind::Decode, source.to_string())
            }
        }
    }
}

/// The cause of a transport error, in a few words. reqwest's own text is "error sending
/// request for url (...)"; what matters is at the bottom of the source chain.
fn transport_detail(error: &reqwest::Error) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = error;
    let mut io_kind = None;
    loop {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        match cause.source() {
            Some(next) => cause = next,
            None => break,
        }
    }
    match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".into(),
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset".into(),
        Some(std::io::ErrorKind::TimedOut) => "connect timed out".into(),
        _ => {
            let text = cause.to_string();
            if error.is_connect() && !text.starts_with("connect") {
                format!("connect: {text}")
            } else {
                text
            }
        }
    }
}

/// Observes every Pod of a cluster and judges its health: what the controller calls.
/// `expected_pods` is how many Pods the cluster should have.
pub async fn check(qdrant: &Qdrant, access: &Access, pods: &[PodTarget], expected_pods: usize) -> Health {
    let observations = match qdrant.client(access) {
        Ok(client) => observe(&client, pods).await,
        Err(e) => {
            let failure = Failure::new(FailureKind::ClientConfig, e.to_string());
            pods.iter()
                .map(|t| PodObservation {
                    pod: t.pod.clone(),
                    base_url: t.base_url.clone(),
                    kube_ready: t.kube_ready,
                    cluster: Err(failure.clone()),
                    collections: Err(failure.clone()),
                })
                .collect()
        }
    };
    assess(&observations, expected_pods)
}

/// Asks every Pod, all at once: `GET /cluster`, `GET /collections` and then each collection's
/// `GET /collections/{name}/cluster`, each call within the client's deadline. Never fails:
/// every error is kept in the observation, for [`assess`] to judge and name.
pub async fn observe(client: &QdrantClient, pods: &[PodTarget]) -> Vec<PodObservation> {
    futures::future::join_all(pods.iter().map(|target| observe_pod(client, target))).await
}

async fn observe_pod(client: &QdrantClient, target: &PodTarget) -> PodObservation {
    let observation =
        |cluster: Result<ClusterInfo, Failure>,
         collections: Result<Vec<CollectionObservation>, Failure>| PodObservation {
            pod: target.pod.clone(),
            base_url: target.base_url.clone(),
            kube_ready: target.kube_ready,
            cluster,
            collections,
        };
    let peer = match client.peer(&target.base_url) {
        Ok(peer) => peer,
        Err(e) => {
            let failure = Failure::new(FailureKind::InvalidUrl, e.to_string());
            return observation(Err(failure.clone()), Err(failure));
        }
    };
    let (cluster, collections) = tokio::join!(peer.cluster_info(), observe_collections(&peer));
    let cluster = match cluster {
        Ok(ClusterStatus::Enabled(info)) => Ok(info),
        Ok(ClusterStatus::Disabled) => Err(Failure::new(FailureKind::ClusterDisabled, "")),
        Err(e) => Err(Failure::from(&e)),
    };
    observation(cluster, collections)
}

async fn observe_collections(peer: &Peer) -> Result<Vec<CollectionObservation>, Failure> {
    let names = peer
        .list_collections()
        .await
        .map_err(|e| Failure::from(&e))?;
    let collections = futures::stream::iter(names.into_iter().map(|name| async move {
        let cluster = peer
            .collection_cluster_info(&name)
            .await
            .map_err(|e| Failure::from(&e));
        CollectionObservation { name, cluster }
    }))
    .buffered(COLLECTION_CONCURRENCY)
    .collect()
    .await;
    Ok(collections)
}

// ---------------------------------------------------------------------------------------------
// Judgement

/// Why a cluster is not healthy, as a condition reason. The order is severity: the condition
/// shows the first that applies, the message names them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The operator's API key is rejected (401) or not allowed to read (403).
    Unauthorized,
    /// A Pod did not answer.
    PeerUnreachable,
    /// A Pod answered with an error, or with something undecodable.
    PeerError,
    /// Qdrant has a peer that no Pod of this cluster matches.
    UnknownPeer,
    /// A Pod is not a voting member of the consensus, or its consensus thread stopped.
    PeerNotInConsensus,
    /// No peer knows a Raft leader.
    NoRaftLeader,
    /// Peers disagree on the term, the leader or the membership.
    ConsensusDisagreement,
    /// Fewer Pods exist than the cluster should have.
    PodsMissing,
    /// A collection's shard placement could not be read from any Pod.
    CollectionsUnknown,
    /// Some shard replica is not Active.
    ReplicasNotActive,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unauthorized => "Unauthorized",
            Reason::PeerUnreachable => "PeerUnreachable",
            Reason::PeerError => "PeerError",
            Reason::UnknownPeer => "UnknownPeer",
            Reason::PeerNotInConsensus => "PeerNotInConsensus",
            Reason::NoRaftLeader => "NoRaftLeader",
            Reason::ConsensusDisagreement => "ConsensusDisagreement",
            Reason::PodsMissing => "PodsMissing",
            Reason::CollectionsUnknown => "CollectionsUnknown",
            Reason::ReplicasNotActive => "ReplicasNotActive",
        }
    }
}

/// The condition reason of a healthy cluster.
pub const HEALTHY_REASON: &str = "AllPeersHealthy";

/// One thing wrong, in words that name the Pod, peer or replica concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
}

/// A peer of Qdrant's consensus and the Pod it runs in, if one matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHealth {
    pub peer_id: u64,
    pub uri: String,
    pub pod: Option<String>,
}

/// The cluster's health as [`assess`] judged it. Every value is `None` (or empty) when no Pod
/// could tell it, which is not the same as zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Qdrant's peers, those in a Pod first (by ordinal), then the others by id.
    pub peers: Vec<PeerHealth>,
    /// Peers in consensus, as the most advanced view has it.
    pub peer_count: Option<usize>,
    pub leader_peer_id: Option<u64>,
    pub leader_pod: Option<String>,
    pub term: Option<u64>,
    pub commit: Option<u64>,
    pub pending_operations: Option<u64>,
    pub collections: Option<usize>,
    /// Exact count of replicas that are not Active, unknown states included.
    pub replicas_not_active: Option<u64>,
    /// The first [`SAMPLE`] of them, as `collection/shard N@peer ID: State`.
    pub replicas_not_active_sample: Vec<String>,
    /// Pods that did not answer `GET /cluster` at all: whatever the consensus says about
    /// their replicas, nothing can be read from them now.
    pub unreachable: BTreeSet<String>,
    /// Pods that refused the operator's API key (401): they run with another key, typically an
    /// older one until they restart.
    pub rejected: BTreeSet<String>,
    /// The peers that answered for themselves, and the Pod each answered from.
    pub answering: BTreeMap<u64, String>,
    /// Everything wrong; empty when healthy.
    pub problems: Vec<Problem>,
}

impl Health {
    /// Every Pod is a voting peer in consensus, every peer is a Pod, the leader is known, every
    /// replica is Active, and nothing failed to answer.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// [`HEALTHY_REASON`], or the most severe problem's reason.
    pub fn reason(&self) -> &'static str {
        self.problems
            .iter()
            .map(|p| p.reason)
            .min()
            .map_or(HEALTHY_REASON, Reason::as_str)
    }

    /// A summary when healthy; else every problem, the most severe kinds first, joined by `; `.
    pub fn message(&self) -> String {
        if self.is_healthy() {
            return self.summary();
        }
        let mut problems: Vec<&Problem> = self.problems.iter().collect();
        // Stable: problems of one reason keep their order (Pods by ordinal).
        problems.sort_by_key(|p| p.reason);
        let text = problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        truncate(text, MAX_MESSAGE)
    }

    fn summary(&self) -> String {
        let peers = self.peer_count.unwrap_or(self.peers.len());
        let leader = match (&self.leader_pod, self.leader_peer_id) {
            (Some(pod), _) => pod.clone(),
            (None, Some(id)) => format!("peer {id}"),
            (None, None) => "unknown".into(),
        };
        let term = self
            .term
            .map(|t| format!(" (term {t})"))
            .unwrap_or_default();
        let collections = self.collections.unwrap_or(0);
        format!(
            "{}, Raft leader {leader}{term}, {}, every shard replica Active",
            plural(peers, "peer in consensus", "peers in consensus"),
            plural(collections, "collection", "collections"),
        )
    }

    /// The `status.qdrant` of the QdrantCluster. Peer ids become decimal strings (see the
    /// module documentation); nothing time-dependent is added, so an unchanged cluster gives
    /// an identical value.
    pub fn to_status(&self) -> QdrantHealthStatus {
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        QdrantHealthStatus {
            // One word for `kubectl get qc`; the `Healthy` condition carries the reason.
            health: if self.is_healthy() { "Healthy" } else { "Degraded" }.into(),
            peer_count: self
                .peer_count
                .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            peers: self
                .peers
                .iter()
                .map(|p| QdrantPeerStatus {
                    pod: p.pod.clone(),
                    peer_id: p.peer_id.to_string(),
                    uri: p.uri.clone(),
                    // Kubernetes knows the volumes; the controller adds them.
                    volume: None,
                })
                .collect(),
            raft_leader: self.leader_pod.clone(),
            raft_leader_peer_id: self.leader_peer_id.map(|id| id.to_string()),
            term: self.term.map(int),
            commit: self.commit.map(int),
            pending_operations: self.pending_operations.map(int),
            collections: self
                .collections
                .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            replicas_not_active: self.replicas_not_active.map(int),
            replicas_not_active_sample: self.replicas_not_active_sample.clone(),
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The ordinal of a StatefulSet Pod (`my-cluster-2` → 2), for ordering.
pub fn ordinal(pod: &str) -> Option<u32> {
    pod.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

fn pod_order(pod: &str) -> (u32, &str) {
    (ordinal(pod).unwrap_or(u32::MAX), pod)
}

/// Whether a peer URI names this Pod: its host is the Pod's DNS name, bare or followed by the
/// headless Service's domain (`my-cluster-1.my-cluster-headless.ns[.svc.cluster.local]`). The
/// dot keeps `my-cluster-1` from matching `my-cluster-10`.
fn uri_names_pod(uri: &str, pod: &str) -> bool {
    let Some(host) = Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let pod = pod.to_ascii_lowercase();
    host == pod
        || host
            .strip_prefix(&pod)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Groups `(pod, reason, text)` findings with identical text, so that three Pods rejecting the
/// key make one clause that names the three.
fn grouped(findings: Vec<(&str, Reason, String)>) -> Vec<Problem> {
    let mut groups: Vec<(Reason, String, Vec<&str>)> = Vec::new();
    for (pod, reason, text) in findings {
        match groups
            .iter_mut()
            .find(|(r, t, _)| *r == reason && *t == text)
        {
            Some((_, _, pods)) => pods.push(pod),
            None => groups.push((reason, text, vec![pod])),
        }
    }
    groups
        .into_iter()
        .map(|(reason, text, pods)| Problem {
            reason,
            message: format!("{}: {text}", pods.join(", ")),
        })
        .collect()
}

/// Describes a leader for messages: `peer 7 (my-cluster-1)`, or `none`.
fn leader_text(leader: Option<u64>, pods: &BTreeMap<u64, String>) -> String {
    match leader {
        Some(id) => match pods.get(&id) {
            Some(pod) => format!("peer {id} ({pod})"),
            None => format!("peer {id}"),
        },
        None => "none".into(),
    }
}

/// Judges the cluster from what its Pods answered. Pure and deterministic: the same
/// observations, in any order, give the same [`Health`].
///
/// Qdrant's own view is taken from the most advanced answering peer (highest term, then
/// commit; the lowest ordinal on a tie). Each Pod is matched to a peer by the id it reports for
/// itself, and a Pod that did not answer by the host of the peer URIs. `expected_pods` is how
/// many Pods the cluster should have.
pub fn assess(observations: &[PodObservation], expected_pods: usize) -> Health {
    let mut pods: Vec<&PodObservation> = observations.iter().collect();
    pods.sort_by(|a, b| pod_order(&a.pod).cmp(&pod_order(&b.pod)));

    let mut problems = Vec::new();
    if pods.len() < expected_pods {
        problems.push(Problem {
            reason: Reason::PodsMissing,
            message: format!("{} of {expected_pods} Pods exist", pods.len()),
        });
    }

    // Pods that could not say anything about consensus.
    let failures = pods
        .iter()
        .filter_map(|o| {
            let f = o.cluster.as_ref().err()?;
            let mut text = f.to_string();
            if f.kind == FailureKind::Unreachable && !o.kube_ready {
                text.push_str(", Pod not Ready");
            }
            Some((o.pod.as_str(), f.reason(), text))
        })
        .collect();
    problems.extend(grouped(failures));

    let views: Vec<(&PodObservation, &ClusterInfo)> = pods
        .iter()
        .filter_map(|o| o.cluster.as_ref().ok().map(|info| (*o, info)))
        .collect();
    let mut auth: Option<(&PodObservation, &ClusterInfo)> = None;
    for &(o, info) in &views {
        let key = (info.raft_info.term, info.raft_info.commit);
        match auth {
            Some((_, best)) if (best.raft_info.term, best.raft_info.commit) >= key => {}
            _ => auth = Some((o, info)),
        }
    }

    let mut health = Health {
        peers: Vec::new(),
        peer_count: None,
        leader_peer_id: None,
        leader_pod: None,
        term: None,
        commit: None,
        pending_operations: None,
        collections: None,
        replicas_not_active: None,
        replicas_not_active_sample: Vec::new(),
        unreachable: pods
            .iter()
            .filter(|o| matches!(&o.cluster, Err(f) if f.kind == FailureKind::Unreachable))
            .map(|o| o.pod.clone())
            .collect(),
        rejected: pods
            .iter()
            .filter(|o| matches!(&o.cluster, Err(f) if f.kind == FailureKind::Unauthorized))
            .map(|o| o.pod.clone())
            .collect(),
        answering: BTreeMap::new(),
        problems: Vec::new(),
    };

    // Which Pod each peer id is; empty without a view.
    let mut pod_of: BTreeMap<u64, String> = BTreeMap::new();
    // Pods whose /cluster answer places them in the consensus of `auth`.
    let mut members: Vec<&PodObservation> = Vec::new();
    if let Some((auth_pod, auth_info)) = auth {
        let raft = &auth_info.raft_info;
        health.term = Some(raft.term);
        health.commit = Some(raft.commit);
        health.pending_operations = Some(raft.pending_operations);
        health.peer_count = Some(auth_info.peers.len());
        health.leader_peer_id = raft.leader;

        // Each answering Pod says who it is; two claiming one id share a copied volume.
        let mut self_ids: BTreeMap<u64, &str> = BTreeMap::new();
        for &(o, info) in &views {
            if let Some(first) = self_ids.get(&info.peer_id) {
                problems.push(Problem {
                    reason: Reason::PeerNotInConsensus,
                    message: format!("{} answers as peer {}, like {first}", o.pod, info.peer_id),
                });
            } else {
                self_ids.insert(info.peer_id, &o.pod);
            }
        }
        health.answering = self_ids.iter().map(|(id, pod)| (*id, pod.to_string())).collect();

        for (&id, peer) in &auth_info.peers {
            let by_self = self_ids.get(&id).map(|p| p.to_string());
            // A Pod that did not answer is recognised by its DNS name in the URI.
            let by_uri = || {
                pods.iter()
                    .find(|o| o.cluster.is_err() && uri_names_pod(&peer.uri, &o.pod))
                    .map(|o| o.pod.clone())
            };
            let pod = by_self.or_else(by_uri);
            match &pod {
                Some(pod) => {
                    pod_of.insert(id, pod.clone());
                }
                None => {
                    // The URI may name a Pod that now answers as another peer: its volume was
                    // replaced, and the old peer was never removed.
                    let renamed = views
                        .iter()
                        .find(|(o, _)| uri_names_pod(&peer.uri, &o.pod))
                        .map(|(o, info)| format!(": {} answers as peer {}", o.pod, info.peer_id))
                        .unwrap_or_default();
                    problems.push(Problem {
                        reason: Reason::UnknownPeer,
                        message: format!(
                            "peer {id} ({}) is not a Pod of this cluster{renamed}",
                            peer.uri
                        ),
                    });
                }
            }
            health.peers.push(PeerHealth {
                peer_id: id,
                uri: peer.uri.clone(),
                pod,
            });
        }
        fn key(p: &PeerHealth) -> (bool, Option<(u32, &str)>) {
            (p.pod.is_none(), p.pod.as_deref().map(pod_order))
        }
        health
            .peers
            .sort_by(|a, b| key(a).cmp(&key(b)).then(a.peer_id.cmp(&b.peer_id)));
        health.leader_pod = raft.leader.and_then(|id| pod_of.get(&id).cloned());
        if raft.leader.is_none() {
            problems.push(Problem {
                reason: Reason::NoRaftLeader,
                message: format!("no Raft leader is known (term {})", raft.term),
            });
        }

        let in_consensus: BTreeSet<&str> = pod_of.values().map(String::as_str).collect();
        for o in &pods {
            if in_consensus.contains(o.pod.as_str()) {
                continue;
            }
            let message = match &o.cluster {
                // Its id is a peer's, claimed by another Pod first: named above.
                Ok(info) if auth_info.peers.contains_key(&info.peer_id) => continue,
                Ok(info) => format!(
                    "{} (peer {}) is not among the peers of {}",
                    o.pod, info.peer_id, auth_pod.pod
                ),
                Err(_) => format!("{} is not among Qdrant's peers", o.pod),
            };
            problems.push(Problem {
                reason: Reason::PeerNotInConsensus,
                message,
            });
        }

        let auth_ids: Vec<u64> = auth_info.peers.keys().copied().collect();
        for &(o, info) in &views {
            if !auth_info.peers.contains_key(&info.peer_id) {
                // Named above as not among the peers; comparing a foreign view says no more.
                continue;
            }
            let r = &info.raft_info;
            if !std::ptr::eq(o, auth_pod) && (r.term, r.leader) != (raft.term, raft.leader) {
                problems.push(Problem {
                    reason: Reason::ConsensusDisagreement,
                    message: format!(
                        "{} sees term {} and leader {}, {} sees term {} and leader {}",
                        o.pod,
                        r.term,
                        leader_text(r.leader, &pod_of),
                        auth_pod.pod,
                        raft.term,
                        leader_text(raft.leader, &pod_of),
                    ),
                });
            }
            let ids: Vec<u64> = info.peers.keys().copied().collect();
            if ids != auth_ids {
                problems.push(Problem {
                    reason: Reason::ConsensusDisagreement,
                    message: format!(
                        "{} sees {} ({}), {} sees {}",
                        o.pod,
                        plural(ids.len(), "peer", "peers"),
                        ids.iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        auth_pod.pod,
                        plural(auth_ids.len(), "peer", "peers"),
                    ),
                });
            }
            if !r.is_voter {
                problems.push(Problem {
                    reason: Reason::PeerNotInConsensus,
                    message: format!("{} is a learner, not yet a voting peer", o.pod),
                });
            }
            match &info.consensus_thread_status {
                ConsensusThreadStatus::Stopped => problems.push(Problem {
                    reason: Reason::PeerNotInConsensus,
                    message: format!("{}: consensus thread stopped", o.pod),
                }),
                ConsensusThreadStatus::StoppedWithErr { err } => problems.push(Problem {
                    reason: Reason::PeerNotInConsensus,
                    message: format!("{}: consensus thread stopped: {err}", o.pod),
                }),
                ConsensusThreadStatus::Working { .. } | ConsensusThreadStatus::Unknown => {}
            }
            members.push(o);
        }
        // The most advanced view first, for the collections too.
        members.sort_by_key(|o| !std::ptr::eq(*o, auth_pod));
    }

    // Collections: from the members of the consensus, the most advanced first; then from Pods
    // that could not say who they are. A Pod in another consensus would describe another
    // cluster's collections.
    let mut sources = members.clone();
    sources.extend(pods.iter().copied().filter(|o| o.cluster.is_err()));
    let collection_failures = sources
        .iter()
        .filter(|o| o.cluster.is_ok())
        .filter_map(|o| {
            let f = o.collections.as_ref().err()?;
            Some((o.pod.as_str(), f.reason(), format!("GET /collections: {f}")))
        })
        .collect();
    problems.extend(grouped(collection_failures));

    let listed = sources.iter().find_map(|o| o.collections.as_ref().ok());
    if let Some(listed) = listed {
        let names: BTreeSet<&str> = listed.iter().map(|c| c.name.as_str()).collect();
        let mut count = 0;
        let mut not_active: Vec<String> = Vec::new();
        let mut not_active_total: u64 = 0;
        for name in names {
            let reports: Vec<&CollectionObservation> = sources
                .iter()
                .filter_map(|o| o.collections.as_ref().ok())
                .filter_map(|list| list.iter().find(|c| c.name == name))
                .collect();
            let Some(info) = reports.iter().find_map(|c| c.cluster.as_ref().ok()) else {
                let errors: Vec<&Failure> = reports
                    .iter()
                    .filter_map(|c| c.cluster.as_ref().err())
                    .collect();
                // Deleted between the list and the look-up: not a collection any more.
                if errors.iter().all(|f| f.kind == FailureKind::NotFound) {
                    continue;
                }
                count += 1;
                let first = errors
                    .iter()
                    .find(|f| f.kind != FailureKind::NotFound)
                    .map(|f| f.to_string())
                    .unwrap_or_default();
                problems.push(Problem {
                    reason: Reason::CollectionsUnknown,
                    message: format!("collection {name}: shard placement unknown: {first}"),
                });
                continue;
            };
            count += 1;
            let mut replicas: Vec<(u32, u64, &ReplicaState)> = info
                .local_shards
                .iter()
                .map(|s| (s.shard_id, info.peer_id, &s.state))
                .chain(
                    info.remote_shards
                        .iter()
                        .map(|s| (s.shard_id, s.peer_id, &s.state)),
                )
                .filter(|(_, _, state)| **state != ReplicaState::Active)
                .collect();
            replicas.sort_by_key(|&(shard, peer, _)| (shard, peer));
            for (shard, peer, state) in replicas {
                not_active_total += 1;
                if not_active.len() < SAMPLE {
                    not_active.push(format!("{name}/shard {shard}@peer {peer}: {state}"));
                }
            }
        }
        if not_active_total > 0 {
            let more = not_active_total.saturating_sub(not_active.len() as u64);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            problems.push(Problem {
                reason: Reason::ReplicasNotActive,
                message: format!(
                    "{not_active_total} shard {} not Active: {}{more}",
                    if not_active_total == 1 {
                        "replica is"
                    } else {
                        "replicas are"
                    },
                    not_active.join(", ")
                ),
            });
        }
        health.collections = Some(count);
        health.replicas_not_active = Some(not_active_total);
        health.replicas_not_active_sample = not_active;
    }

    health.problems = problems;
    health
}
