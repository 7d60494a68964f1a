//! Requests and answers of Qdrant's REST API, as its OpenAPI documents (v1.16, v1.18) specify
//! them. Only the fields the operator reads are typed; unknown fields are ignored, so newer
//! Qdrant versions still decode.
//!
//! Two rules matter for a cluster manager:
//! - Peer ids are random `u64`s, often above 2^53. They are decoded as integers straight into
//!   `u64` (serde_json does not go through `f64` for them), and the `peers` map, whose keys JSON
//!   can only spell as strings, has its keys parsed as `u64` explicitly.
//! - Enumerations that Qdrant extends between versions (replica states, transfer methods, ...)
//!   keep a value they do not know as `Unknown(String)` instead of failing the whole answer, so a
//!   newer Qdrant never blinds the operator; it decides what an unknown state means.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// Defines an "open" string enumeration: the known wire values as variants, plus
/// `Unknown(String)` that keeps any other value. Serializes back to the same string.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know (e.g. from a newer Qdrant), kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $wire => $name::$variant, )+
                    other => $name::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                Ok($name::from(s.as_str()))
            }
        }
    };
}

open_enum! {
    /// State of one replica of a shard (`ReplicaState`). Only `Active` replicas serve reads and
    /// writes; the others are being built, moved, repaired or are lost.
    pub enum ReplicaState {
        Active = "Active",
        Dead = "Dead",
        Partial = "Partial",
        Initializing = "Initializing",
        Listener = "Listener",
        PartialSnapshot = "PartialSnapshot",
        Recovery = "Recovery",
        Resharding = "Resharding",
        ReshardingScaleDown = "ReshardingScaleDown",
        ActiveRead = "ActiveRead",
        /// Since Qdrant 1.18.
        ManualRecovery = "ManualRecovery",
    }
}

open_enum! {
    /// How a shard is copied between peers (`ShardTransferMethod`).
    pub enum ShardTransferMethod {
        StreamRecords = "stream_records",
        Snapshot = "snapshot",
        WalDelta = "wal_delta",
        /// Used by Qdrant itself for resharding; listed so transfers in progress decode.
        ReshardingStreamRecords = "resharding_stream_records",
    }
}

open_enum! {
    /// Raft role of a peer in the current term (`StateRole`).
    pub enum StateRole {
        Follower = "Follower",
        Candidate = "Candidate",
        Leader = "Leader",
        PreCandidate = "PreCandidate",
    }
}

open_enum! {
    /// Health of a collection (`CollectionStatus`): green all good, yellow optimizing, grey
    /// optimizations pending but not triggered, red an operation failed.
    pub enum CollectionStatus {
        Green = "green",
        Yellow = "yellow",
        Grey = "grey",
        Red = "red",
    }
}

open_enum! {
    /// Direction of a resharding (`ReshardingDirection`).
    pub enum ReshardingDirection {
        Up = "up",
        Down = "down",
    }
}

/// Decodes a JSON object whose keys are decimal `u64`s (peer ids). JSON keys are always strings,
/// so they are parsed here, exactly, rather than left to a deserializer that may not.
fn u64_keys<'de, D, V>(deserializer: D) -> Result<BTreeMap<u64, V>, D::Error>
where
    D: Deserializer<'de>,
    V: DeserializeOwned,
{
    let raw = BTreeMap::<String, V>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(k, v)| match k.parse::<u64>() {
            Ok(id) => Ok((id, v)),
            Err(_) => Err(D::Error::custom(format!("peer id {k:?} is not a u64"))),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// GET /cluster

/// Answer of `GET /cluster` (`ClusterStatus`): distributed mode is off, or the cluster as this
/// peer sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ClusterStatus {
    Disabled,
    Enabled(ClusterInfo),
}

impl ClusterStatus {
    /// The cluster view, if distributed mode is on.
    pub fn enabled(&self) -> Option<&ClusterInfo> {
        match self {
            ClusterStatus::Enabled(info) => Some(info),
            ClusterStatus::Disabled => None,
        }
    }
}

// Decoded by hand rather than with serde's internally tagged enums: those buffer the object and
// then cannot turn the string keys of `peers` back into integers.
impl<'de> Deserialize<'de> for ClusterStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        match value.get("status").and_then(serde_json::Value::as_str) {
            Some("disabled") => Ok(ClusterStatus::Disabled),
            Some("enabled") => ClusterInfo::deserialize(value)
                .map(ClusterStatus::Enabled)
                .map_err(D::Error::custom),
            Some(other) => Err(D::Error::custom(format!(
                "unknown cluster status {other:?}"
            ))),
            None => Err(D::Error::missing_field("status")),
        }
    }
}

/// The cluster as one peer sees it (`ClusterStatus`, enabled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Id of the peer that answered.
    pub peer_id: u64,
    /// Every peer of the cluster, by id.
    #[serde(deserialize_with = "u64_keys")]
    pub peers: BTreeMap<u64, PeerInfo>,
    pub raft_info: RaftInfo,
    pub consensus_thread_status: ConsensusThreadStatus,
    /// Consecutive failures to send consensus messages, by peer address (URI, not id).
    #[serde(default)]
    pub message_send_failures: BTreeMap<String, MessageSendErrors>,
}

/// `PeerInfo`: where a peer is reached for internal (p2p) traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub uri: String,
}

/// `RaftInfo`: this peer's view of consensus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftInfo {
    pub term: u64,
    pub commit: u64,
    pub pending_operations: u64,
    /// Leader of the current term, if known.
    #[serde(default)]
    pub leader: Option<u64>,
    #[serde(default)]
    pub role: Option<StateRole>,
    /// False for a learner that does not vote yet.
    pub is_voter: bool,
}

/// `ConsensusThreadStatus`: whether the peer's consensus loop runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "consensus_thread_status", rename_all = "snake_case")]
pub enum ConsensusThreadStatus {
    Working {
        last_update: String,
    },
    Stopped,
    StoppedWithErr {
        err: String,
    },
    /// A status this client does not know.
    #[serde(other)]
    Unknown,
}

/// `MessageSendErrors`: consecutive consensus message failures towards one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSendErrors {
    pub count: u64,
    #[serde(default)]
    pub latest_error: Option<String>,
    #[serde(default)]
    pub latest_error_timestamp: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// GET /collections, GET /collections/{name}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CollectionsResponse {
    pub collections: Vec<CollectionDescription>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CollectionDescription {
    pub name: String,
}

/// `CollectionInfo`: statistics and configuration of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionInfo {
    pub status: CollectionStatus,
    /// `"ok"` or `{"error": "..."}`.
    pub optimizer_status: serde_json::Value,
    /// Approximate.
    #[serde(default)]
    pub points_count: Option<u64>,
    #[serde(default)]
    pub indexed_vectors_count: Option<u64>,
    pub segments_count: u64,
    /// `CollectionConfig` (params, hnsw, optimizers, wal, quantization, ...), kept as JSON: it
    /// is large and changes between Qdrant versions.
    pub config: serde_json::Value,
    #[serde(default)]
    pub warnings: Vec<CollectionWarning>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionWarning {
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// GET /collections/{name}/cluster

/// `CollectionClusterInfo`: where the shards of a collection live, as one peer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionClusterInfo {
    /// Id of the peer that answered; its replicas are `local_shards`.
    pub peer_id: u64,
    pub shard_count: u64,
    pub local_shards: Vec<LocalShardInfo>,
    pub remote_shards: Vec<RemoteShardInfo>,
    pub shard_transfers: Vec<ShardTransferInfo>,
    #[serde(default)]
    pub resharding_operations: Option<Vec<ReshardingInfo>>,
}

/// A user-defined shard key: a keyword or a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShardKey {
    Number(u64),
    Keyword(String),
}

/// `LocalShardInfo`: a replica held by the answering peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalShardInfo {
    pub shard_id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<ShardKey>,
    pub points_count: u64,
    pub state: ReplicaState,
}

/// `RemoteShardInfo`: a replica held by another peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteShardInfo {
    pub shard_id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<ShardKey>,
    pub peer_id: u64,
    pub state: ReplicaState,
}

/// `ShardTransferInfo`: a shard copy in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTransferInfo {
    pub shard_id: u32,
    /// Target shard if it differs from the source one (resharding only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_shard_id: Option<u32>,
    /// Source peer id.
    pub from: u64,
    /// Destination peer id.
    pub to: u64,
    /// True: replicating (the source keeps its replica); false: moving.
    pub sync: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<ShardTransferMethod>,
    /// Human-readable progress, reported by the source peer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `ReshardingInfo`: a resharding in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshardingInfo {
    pub direction: ReshardingDirection,
    pub shard_id: u32,
    pub peer_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<ShardKey>,
}

// ---------------------------------------------------------------------------------------------
// POST /collections/{name}/cluster

/// The collection cluster operations the operator performs (`ClusterOperations`). Serializes
/// as Qdrant expects, e.g. `{"move_shard": {"shard_id": 0, "from_peer_id": 1, ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterOperation {
    /// Copy the shard to `to_peer_id`, then drop it from `from_peer_id`.
    MoveShard(ShardTransfer),
    /// Copy the shard to `to_peer_id`, keeping it on `from_peer_id`.
    ReplicateShard(ShardTransfer),
    /// Remove one replica. Qdrant refuses to drop the last one.
    DropReplica(Replica),
    /// Stop a transfer in progress.
    AbortTransfer(AbortShardTransfer),
}

/// `MoveShard` / `ReplicateShard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTransfer {
    pub shard_id: u32,
    pub from_peer_id: u64,
    pub to_peer_id: u64,
    /// Qdrant's default (`stream_records`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<ShardTransferMethod>,
}

/// `Replica`: one shard on one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub shard_id: u32,
    pub peer_id: u64,
}

/// `AbortShardTransfer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortShardTransfer {
    pub shard_id: u32,
    pub from_peer_id: u64,
    pub to_peer_id: u64,
}

// ---------------------------------------------------------------------------------------------
// PUT /collections/{name}

/// `CreateCollection`, reduced to what the operator sets. Absent fields take the server's
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateCollection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<VectorsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_consistency_factor: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk_payload: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw_config: Option<HnswConfigDiff>,
    /// `QuantizationConfig` (scalar, product, binary, ...), passed through as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_config: Option<serde_json::Value>,
}

/// `VectorsConfig`: one unnamed vector, or named vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VectorsConfig {
    Single(VectorParams),
    Named(BTreeMap<String, VectorParams>),
}

/// `VectorParams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorParams {
    pub size: u64,
    pub distance: Distance,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw_config: Option<HnswConfigDiff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_config: Option<serde_json::Value>,
}

/// `Distance`: the metric vectors are compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distance {
    Cosine,
    Euclid,
    Dot,
    Manhattan,
}

/// `HnswConfigDiff`: only the fields set are sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswConfigDiff {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construct: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_scan_threshold: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_indexing_threads: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_m: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// points/count, snapshots

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CountRequest {
    pub exact: bool,
}

/// `SnapshotPriority`: whose points win when a recovered shard has other replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotPriority {
    /// The snapshot's points replace every replica's.
    Snapshot,
    /// Only this replica takes the snapshot; the others keep theirs.
    NoSync,
    /// An Active replica elsewhere wins over the snapshot (Qdrant's default).
    Replica,
}

/// `ShardSnapshotRecover`: a shard snapshot to recover from, by URL.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ShardSnapshotRecover<'a> {
    pub location: &'a str,
    pub priority: SnapshotPriority,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<&'a str>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CountResult {
    pub count: u64,
}

/// `SnapshotDescription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDescription {
    pub name: String,
    /// Server-local time without zone, e.g. `2022-08-04T10:49:10`.
    #[serde(default)]
    pub creation_time: Option<String>,
    pub size: u64,
    #[serde(default)]
    pub checksum: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2^64 - 59 (the largest prime below 2^64) and 2^53 + 1: neither survives a trip through f64.
    const BIG: u64 = 18446744073709551557;
    const ODD: u64 = 9007199254740993;

    fn cluster_json() -> String {
        // Written by hand after the `ClusterStatus` schema (enabled variant). Kept as text so
        // the big integers are never parsed by anything but the code under test.
        format!(
            r#"{{
              "status": "enabled",
              "peer_id": {BIG},
              "peers": {{
                "{BIG}": {{"uri": "http://q-0.q-headless.ns:6335/"}},
                "{ODD}": {{"uri": "http://q-1.q-headless.ns:6335/"}},
                "42": {{"uri": "http://q-2.q-headless.ns:6335/"}}
              }},
              "raft_info": {{
                "term": 7, "commit": 1234, "pending_operations": 0,
                "leader": {ODD}, "role": "Follower", "is_voter": true
              }},
              "consensus_thread_status": {{
                "consensus_thread_status": "working",
                "last_update": "2025-01-01T00:00:00.000000Z"
              }},
              "message_send_failures": {{
                "http://q-2.q-headless.ns:6335/": {{
                  "count": 3, "latest_error": "connection refused",
                  "latest_error_timestamp": "2025-01-01T00:00:00Z"
                }}
              }}
            }}"#
        )
    }

    #[test]
    fn big_peer_ids_are_exact_also_as_map_keys() {
        let status: ClusterStatus = serde_json::from_str(&cluster_json()).unwrap();
        let info = status.enabled().unwrap();
        assert_eq!(info.peer_id, BIG);
        assert_eq!(info.raft_info.leader, Some(ODD));
        assert_eq!(info.raft_info.role, Some(StateRole::Follower));
        let ids: Vec<u64> = info.peers.keys().copied().collect();
        assert_eq!(ids, vec![42, ODD, BIG]);
        assert_eq!(info.peers[&BIG].uri, "http://q-0.q-headless.ns:6335/");
        assert_eq!(info.peers[&ODD].uri, "http://q-1.q-headless.ns:6335/");
        assert!(matches!(
            info.consensus_thread_status,
            ConsensusThreadStatus::Working { .. }
        ));
        assert_eq!(
            info.message_send_failures["http://q-2.q-headless.ns:6335/"].count,
            3
        );

        // And back: the ids are written as the same digits, keys included.
        let text = serde_json::to_string(&status).unwrap();
        assert!(text.contains(&format!("\"peer_id\":{BIG}")), "{text}");
        assert!(text.contains(&format!("\"{ODD}\":{{\"uri\"")), "{text}");
        assert!(text.contains(&format!("\"leader\":{ODD}")), "{text}");
        let again: ClusterStatus = serde_json::from_str(&text).unwrap();
        assert_eq!(again, status);
    }

    #[test]
    fn cluster_disabled_and_minimal_enabled() {
        let status: ClusterStatus = serde_json::from_str(r#"{"status":"disabled"}"#).unwrap();
        assert_eq!(status, ClusterStatus::Disabled);
        assert!(status.enabled().is_none());

        // A peer early in its life: no leader yet, no role, a stopped consensus thread.
        let status: ClusterStatus = serde_json::from_value(json!({
            "status": "enabled", "peer_id": 5, "peers": {"5": {"uri": "http://a:6335/"}},
            "raft_info": {"term": 0, "commit": 0, "pending_operations": 2, "leader": null,
                          "role": null, "is_voter": false},
            "consensus_thread_status": {"consensus_thread_status": "stopped_with_err",
                                        "err": "boom"},
            "message_send_failures": {}
        }))
        .unwrap();
        let info = status.enabled().unwrap();
        assert_eq!(info.raft_info.leader, None);
        assert_eq!(info.raft_info.role, None);
        assert!(!info.raft_info.is_voter);
        assert_eq!(
            info.consensus_thread_status,
            ConsensusThreadStatus::StoppedWithErr { err: "boom".into() }
        );
    }

    #[test]
    fn bad_peer_key_and_unknown_status_are_errors() {
        let bad_key = cluster_json().replace("\"42\"", "\"forty-two\"");
        assert!(serde_json::from_str::<ClusterStatus>(&bad_key).is_err());
        assert!(serde_json::from_str::<ClusterStatus>(r#"{"status":"sideways"}"#).is_err());
        assert!(serde_json::from_str::<ClusterStatus>(r#"{"peer_id":1}"#).is_err());
        // A negative or oversized id is not silently wrapped.
        let over = cluster_json().replace("\"42\"", "\"18446744073709551616\"");
        assert!(serde_json::from_str::<ClusterStatus>(&over).is_err());
    }

    #[test]
    fn replica_states_known_and_unknown() {
        let known = [
            ("Active", ReplicaState::Active),
            ("Dead", ReplicaState::Dead),
            ("Partial", ReplicaState::Partial),
            ("Initializing", ReplicaState::Initializing),
            ("Listener", ReplicaState::Listener),
            ("PartialSnapshot", ReplicaState::PartialSnapshot),
            ("Recovery", ReplicaState::Recovery),
            ("Resharding", ReplicaState::Resharding),
            ("ReshardingScaleDown", ReplicaState::ReshardingScaleDown),
            ("ActiveRead", ReplicaState::ActiveRead),
            ("ManualRecovery", ReplicaState::ManualRecovery),
        ];
        for (wire, state) in known {
            let parsed: ReplicaState = serde_json::from_value(json!(wire)).unwrap();
            assert_eq!(parsed, state);
            assert_eq!(serde_json::to_value(&parsed).unwrap(), json!(wire));
        }
        let parsed: ReplicaState = serde_json::from_value(json!("SomethingNew")).unwrap();
        assert_eq!(parsed, ReplicaState::Unknown("SomethingNew".into()));
        assert_eq!(parsed.to_string(), "SomethingNew");
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            json!("SomethingNew")
        );
    }

    #[test]
    fn collection_cluster_info_keeps_unknown_states() {
        // After the `CollectionClusterInfo` schema.
        let text = format!(
            r#"{{
              "peer_id": {BIG},
              "shard_count": 2,
              "local_shards": [
                {{"shard_id": 0, "points_count": 100, "state": "Active"}},
                {{"shard_id": 1, "shard_key": "region_1", "points_count": 0,
                  "state": "SomethingNew"}}
              ],
              "remote_shards": [
                {{"shard_id": 0, "peer_id": {ODD}, "state": "Partial"}},
                {{"shard_id": 1, "shard_key": 12, "peer_id": 42, "state": "ManualRecovery"}}
              ],
              "shard_transfers": [
                {{"shard_id": 0, "from": {BIG}, "to": {ODD}, "sync": true,
                  "method": "wal_delta", "comment": "Transferring records (10/100)"}},
                {{"shard_id": 1, "to_shard_id": 2, "from": 42, "to": {BIG}, "sync": false,
                  "method": "brand_new_method"}},
                {{"shard_id": 1, "from": 42, "to": {BIG}, "sync": false}}
              ],
              "resharding_operations": [
                {{"direction": "up", "shard_id": 2, "peer_id": {BIG}}}
              ]
            }}"#
        );
        let info: CollectionClusterInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(info.peer_id, BIG);
        assert_eq!(
            info.local_shards[1].state,
            ReplicaState::Unknown("SomethingNew".into())
        );
        assert_eq!(
            info.local_shards[1].shard_key,
            Some(ShardKey::Keyword("region_1".into()))
        );
        assert_eq!(info.remote_shards[0].peer_id, ODD);
        assert_eq!(info.remote_shards[1].shard_key, Some(ShardKey::Number(12)));
        assert_eq!(info.remote_shards[1].state, ReplicaState::ManualRecovery);
        let t = &info.shard_transfers;
        assert_eq!((t[0].from, t[0].to, t[0].sync), (BIG, ODD, true));
        assert_eq!(t[0].method, Some(ShardTransferMethod::WalDelta));
        assert_eq!(t[1].to_shard_id, Some(2));
        assert_eq!(
            t[1].method,
            Some(ShardTransferMethod::Unknown("brand_new_method".into()))
        );
        assert_eq!(t[2].method, None);
        let resharding = info.resharding_operations.as_ref().unwrap();
        assert_eq!(resharding[0].direction, ReshardingDirection::Up);
        assert_eq!(resharding[0].peer_id, BIG);
    }

    #[test]
    fn cluster_operations_serialize_as_the_spec_says() {
        let mv = ClusterOperation::MoveShard(ShardTransfer {
            shard_id: 3,
            from_peer_id: BIG,
            to_peer_id: ODD,
            method: Some(ShardTransferMethod::WalDelta),
        });
        assert_eq!(
            serde_json::to_string(&mv).unwrap(),
            format!(
                r#"{{"move_shard":{{"shard_id":3,"from_peer_id":{BIG},"to_peer_id":{ODD},"method":"wal_delta"}}}}"#
            )
        );
        let rep = ClusterOperation::ReplicateShard(ShardTransfer {
            shard_id: 0,
            from_peer_id: 1,
            to_peer_id: 2,
            method: None,
        });
        assert_eq!(
            serde_json::to_value(&rep).unwrap(),
            json!({"replicate_shard": {"shard_id": 0, "from_peer_id": 1, "to_peer_id": 2}})
        );
        for (method, wire) in [
            (ShardTransferMethod::StreamRecords, "stream_records"),
            (ShardTransferMethod::Snapshot, "snapshot"),
            (ShardTransferMethod::WalDelta, "wal_delta"),
        ] {
            assert_eq!(serde_json::to_value(&method).unwrap(), json!(wire));
        }
    }

    #[test]
    fn create_collection_shapes() {
        let single = CreateCollection {
            vectors: Some(VectorsConfig::Single(VectorParams {
                size: 384,
                distance: Distance::Cosine,
                on_disk: None,
                hnsw_config: None,
                quantization_config: None,
            })),
            replication_factor: Some(2),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&single).unwrap(),
            json!({"vectors": {"size": 384, "distance": "Cosine"}, "replication_factor": 2})
        );
        let named: VectorsConfig = serde_json::from_value(json!({
            "image": {"size": 512, "distance": "Dot"},
            "text": {"size": 384, "distance": "Manhattan", "on_disk": true}
        }))
        .unwrap();
        assert!(matches!(&named, VectorsConfig::Named(m) if m.len() == 2));
        let single: VectorsConfig =
            serde_json::from_value(json!({"size": 4, "distance": "Euclid"})).unwrap();
        assert!(matches!(
            single,
            VectorsConfig::Single(VectorParams { size: 4, .. })
        ));
    }

    #[test]
    fn collection_info_decodes() {
        // After the `CollectionInfo` schema, with a trimmed `config`.
        let info: CollectionInfo = serde_json::from_value(json!({
            "status": "green",
            "optimizer_status": "ok",
            "indexed_vectors_count": 0,
            "points_count": 1000,
            "segments_count": 4,
            "config": {
                "params": {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 2,
                           "replication_factor": 2, "write_consistency_factor": 1,
                           "on_disk_payload": true},
                "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
                "optimizer_config": {"deleted_threshold": 0.2}
            },
            "payload_schema": {},
            "update_queue": {"length": 0}
        }))
        .unwrap();
        assert_eq!(info.status, CollectionStatus::Green);
        assert_eq!(info.points_count, Some(1000));
        assert_eq!(info.segments_count, 4);
        assert_eq!(info.config["params"]["shard_number"], json!(2));
        assert!(info.warnings.is_empty());
    }
}
