//! A collection's life in Qdrant, for QdrantCollection resources: what Qdrant has, and the
//! one step that brings it to what is wanted (`collections::plan`), each write through the
//! leadership guard. Plain values in and out: the reconciler sees no Qdrant type.

use std::time::Duration;

use serde_json::Value;

use crate::collections::plan::Step;
use crate::leader::LeadershipGuard;
use crate::qdrant::{QdrantClient, ReplicaState};

/// How long Qdrant may take to commit a collection change to consensus.
const WAIT: Duration = Duration::from_secs(30);

/// What Qdrant reports of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// `config` of `GET /collections/{name}`: what `plan::step` compares with.
    pub config: Value,
    /// green, yellow, grey or red.
    pub status: String,
    pub points: Option<u64>,
    pub segments: u64,
    /// Active replicas per shard id, from `GET /collections/{name}/cluster` of the peer asked.
    pub replicas: Vec<(u32, u32)>,
}

/// What Qdrant has of collection `name`, asked through the peer at `base_url`; `None` when
/// it does not exist.
pub async fn observe(client: &QdrantClient, base_url: &str, name: &str) -> Result<Option<Observed>, String> {
    let peer = client.peer(base_url).map_err(|e| e.to_string())?;
    let info = match peer.collection_info(name).await {
        Ok(info) => info,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let status = serde_json::to_value(&info.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let cluster = peer.collection_cluster_info(name).await.map_err(|e| e.to_string())?;
    let mut replicas = std::collections::BTreeMap::<u32, u32>::new();
    let shards = cluster.local_shards.iter().map(|s| (s.shard_id, &s.state)).chain(cluster.remote_shards.iter().map(|s| (s.shard_id, &s.state)));
    for (shard, state) in shards {
        *replicas.entry(shard).or_default() += u32::from(*state == ReplicaState::Active);
    }
    Ok(Some(Observed { config: info.config, status, points: info.points_count, segments: info.segments_count, replicas: replicas.into_iter().collect() }))
}

/// Takes `step` through the peer at `base_url`. `Conflict` and `InSync` write nothing.
pub async fn carry_out(client: &QdrantClient, guard: &LeadershipGuard, base_url: &str, name: &str, step: &Step) -> Result<(), String> {
    let peer = client.peer(base_url).map_err(|e| e.to_string())?;
    let result = match step {
        Step::Create(body) => guard.write(peer.create_collection(name, body, Some(WAIT))).await,
        Step::Update(body) => guard.write(peer.update_collection(name, body, Some(WAIT))).await,
        Step::InSync | Step::Conflict(_) => return Ok(()),
    };
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(not_leader) => Err(not_leader.to_string()),
    }
}

/// Deletes collection `name`; one that is already gone is fine.
pub async fn delete(client: &QdrantClient, guard: &LeadershipGuard, base_url: &str, name: &str) -> Result<(), String> {
    let peer = client.peer(base_url).map_err(|e| e.to_string())?;
    match guard.write(peer.delete_collection(name, Some(WAIT))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is_not_found() => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(not_leader) => Err(not_leader.to_string()),
    }
}
