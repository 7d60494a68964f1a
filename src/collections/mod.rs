//! QdrantCollections: the API types, the pure planning of what to ask Qdrant, the reconcile,
//! and the backup and restore resources a collection's `spec.snapshots` asks for.

pub mod crd;
pub mod plan;
pub mod reconcile;
pub mod snapshots;
