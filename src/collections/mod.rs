//! QdrantCollections (work in progress, not yet wired into the controller): the API types and
//! the pure planning of what to ask Qdrant.

pub mod crd;
pub mod plan;
pub mod reconcile;
