//! Qdrant-aware operations: the one place that knows both what Kubernetes runs (Pods, by name
//! and address) and what Qdrant says about itself (consensus, peers, shard replicas).
//!
//! The controller hands it plain names and URLs and gets back plain values; it never sees a
//! Qdrant type, and the Qdrant client never sees a Kubernetes one.
//!
//! - [`health`]: observes every Pod through the REST API, then judges the cluster's health
//!   with a pure function.

pub mod health;
