//! The Qdrant half of backups and restores: which peer holds which shard replica, shard
//! snapshots taken and fetched through each peer's own address (a snapshot through one peer
//! covers only its shards), and shards recovered from a URL. Plain values in and out; every
//! write passes the leadership guard.

use std::time::Duration;

use serde_json::Value;

use crate::leader::LeadershipGuard;
use crate::qdrant::{Download, Peer, QdrantClient, QdrantError, ReplicaState, SnapshotPriority};

/// How long a snapshot, or a recovery from one, may take on one peer.
pub const LONG: Duration = Duration::from_secs(1800);
/// How long Qdrant may take to commit a collection's creation.
const WAIT: Duration = Duration::from_secs(30);

/// A Qdrant Pod: its name and REST base URL.
#[derive(Debug, Clone)]
pub struct PodRef {
    pub pod: String,
    pub url: String,
}

/// One shard replica on one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub shard: u32,
    pub peer_id: u64,
    pub pod: String,
    pub url: String,
    pub active: bool,
}

/// The collection as the peers that answered see it.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `config` of `GET /collections/{name}`.
    pub config: Value,
    pub shard_number: u32,
    /// Every replica on a peer that answered, by shard then peer.
    pub replicas: Vec<Replica>,
    /// Pods that did not answer, with why.
    pub unreachable: Vec<(String, String)>,
}

/// Why a Qdrant step failed: a CamelCase reason and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    fn qdrant(what: &str, e: &QdrantError) -> Self {
        Failure { reason: "QdrantError", message: format!("{what}: {e}") }
    }
}

/// The handle on one Pod's REST API.
fn peer(client: &QdrantClient, url: &str) -> Result<Peer, Failure> {
    client.peer(url).map_err(|e| Failure { reason: "QdrantError", message: e.to_string() })
}

/// Sends one Qdrant write through the leadership guard; `what` names it in a failure.
async fn guarded<T>(guard: &LeadershipGuard, write: impl std::future::Future<Output = Result<T, QdrantError>>, what: &str) -> Result<T, Failure> {
    match guard.write(write).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::qdrant(what, &e)),
        Err(_) => Err(Failure { reason: "LeadershipLost", message: "leadership ended".into() }),
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// Asks every Pod for its replicas of `collection` (and its peer id, which comes with them). `Ok(None)`: no Pod that
/// answered has the collection.
pub async fn layout(client: &QdrantClient, pods: &[PodRef], collection: &str) -> Result<Option<Layout>, Failure> {
    let mut config = None;
    let mut replicas = Vec::new();
    let mut unreachable = Vec::new();
    let mut missing = 0;
    for p in pods {
        let peer = peer(client, &p.url)?;
        if config.is_none() {
            match peer.collection_info(collection).await {
                Ok(info) => config = Some(info.config),
                Err(e) if e.is_not_found() => {
                    missing += 1;
                    continue;
                }
                Err(e) => {
                    unreachable.push((p.pod.clone(), e.to_string()));
                    continue;
                }
            }
        }
        match peer.collection_cluster_info(collection).await {
            Ok(info) => replicas.extend(info.local_shards.iter().map(|s| Replica { shard: s.shard_id, peer_id: info.peer_id, pod: p.pod.clone(), url: p.url.clone(), active: s.state == ReplicaState::Active })),
            Err(e) if e.is_not_found() => missing += 1,
            Err(e) => unreachable.push((p.pod.clone(), e.to_string())),
        }
    }
    let Some(config) = config else {
        if missing > 0 {
            return Ok(None);
        }
        let why = unreachable.iter().map(|(p, e)| format!("{p}: {e}")).collect::<Vec<_>>().join("; ");
        return Err(Failure { reason: "QdrantUnavailable", message: format!("no Pod answered: {why}") });
    };
    replicas.sort_by_key(|r| (r.shard, r.peer_id));
    let shard_number = config.pointer("/params/shard_number").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
    Ok(Some(Layout { config, shard_number, replicas, unreachable }))
}

/// Shards without an Active replica on a peer that answered: a backup without them would be
/// incomplete.
pub fn uncovered(layout: &Layout) -> Vec<u32> {
    (0..layout.shard_number).filter(|s| !layout.replicas.iter().any(|r| r.shard == *s && r.active)).collect()
}

/// Exact point count, through the peer at `url`.
pub async fn count(client: &QdrantClient, url: &str, collection: &str) -> Result<u64, Failure> {
    peer(client, url)?.with_timeout(LONG).count_points(collection, true).await.map_err(|e| Failure::qdrant("counting points", &e))
}

/// A shard snapshot made on the replica's peer: (its name, Qdrant's sha256 if given).
pub async fn snapshot(client: &QdrantClient, guard: &LeadershipGuard, r: &Replica, collection: &str) -> Result<(String, Option<String>), Failure> {
    let peer = peer(client, &r.url)?.with_timeout(LONG);
    let s = guarded(guard, peer.create_shard_snapshot(collection, r.shard), &format!("snapshot of shard {} on {}", r.shard, r.pod)).await?;
    Ok((s.name, s.checksum))
}

/// The bytes of a shard snapshot, streamed from the replica's peer.
pub async fn download(client: &QdrantClient, r: &Replica, collection: &str, name: &str) -> Result<Download, Failure> {
    peer(client, &r.url)?.download_shard_snapshot(collection, r.shard, name).await.map_err(|e| Failure::qdrant(&format!("download of shard {} from {}", r.shard, r.pod), &e))
}

/// Deletes a shard snapshot from its peer once it is stored elsewhere (snapshots take the
/// peer's disk). A failure is only reported: the backup itself is whole.
pub async fn drop_snapshot(client: &QdrantClient, guard: &LeadershipGuard, r: &Replica, collection: &str, name: &str) -> Result<(), Failure> {
    let peer = peer(client, &r.url)?;
    let gone = async { peer.delete_shard_snapshot(collection, r.shard, name).await.map(drop).or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) }) };
    guarded(guard, gone, "deleting a shard snapshot").await
}

/// Creates `collection` with `body` through the peer at `url`.
pub async fn create(client: &QdrantClient, guard: &LeadershipGuard, url: &str, collection: &str, body: &Value) -> Result<(), Failure> {
    let peer = peer(client, url)?;
    guarded(guard, peer.create_collection(collection, body, Some(WAIT)), &format!("creating collection {collection}")).await.map(drop)
}

/// Has the replica's peer fetch the snapshot at `location`, check it against `sha256`, and
/// replace the shard's points with it, on every replica (priority `snapshot`).
pub async fn recover(client: &QdrantClient, guard: &LeadershipGuard, r: &Replica, collection: &str, location: &str, sha256: &str) -> Result<(), Failure> {
    let peer = peer(client, &r.url)?.with_timeout(LONG);
    guarded(guard, peer.recover_shard_snapshot(collection, r.shard, location, Some(sha256), SnapshotPriority::Snapshot), &format!("recovering shard {} on {}", r.shard, r.pod)).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_without_an_active_replica_that_answered_is_uncovered() {
        let r = |shard, peer_id, active| Replica { shard, peer_id, pod: format!("p{peer_id}"), url: String::new(), active };
        let layout = Layout { config: Value::Null, shard_number: 3, replicas: vec![r(0, 1, true), r(1, 1, false), r(1, 2, true), r(2, 2, false)], unreachable: vec![] };
        assert_eq!(uncovered(&layout), [2]);
    }
}
