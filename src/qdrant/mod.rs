//! A typed client of Qdrant's REST API (as specified by its OpenAPI documents for v1.16 and
//! v1.18), for the operator to inspect and steer Qdrant clusters: cluster and consensus state,
//! shard placement and transfers, peer removal, health, and a few collection calls.
//!
//! It knows nothing of Kubernetes: callers pass each Pod's base URL ([`QdrantClient::peer`]), so
//! the same code serves tests against a local server. Every call has a deadline, sends the
//! `api-key` header when one is configured, and is counted in [`QdrantMetrics`].

mod client;
mod error;
mod metrics;
mod types;

#[cfg(test)]
mod tests;

pub use client::{ClientConfig, Download, Peer, QdrantClient, RemovePeer, ENDPOINTS};
pub(crate) use client::{tls_config, truncate};
pub use error::{ConfigError, QdrantError};
pub use metrics::{QdrantMetrics, RESULTS};
pub use types::{
    AbortShardTransfer, ClusterInfo, ClusterOperation, ClusterStatus, CollectionClusterInfo,
    CollectionInfo, CollectionStatus, CollectionWarning, ConsensusThreadStatus, CreateCollection,
    Distance, HnswConfigDiff, LocalShardInfo, MessageSendErrors, PeerInfo, RaftInfo,
    RemoteShardInfo, Replica, ReplicaState, ReshardingDirection, ReshardingInfo, ShardKey,
    ShardTransfer, ShardTransferInfo, ShardTransferMethod, SnapshotDescription, SnapshotPriority, StateRole,
    VectorParams, VectorsConfig,
};
