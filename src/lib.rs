//! qdrant-operator: runs Qdrant clusters from `QdrantCluster` resources, with exactly one
//! writing replica, the holder of the Lease `qdrant-operator`.
#![forbid(unsafe_code)]
#![deny(warnings)]

pub mod app;
pub mod config;
pub mod controller;
pub mod crd;
pub mod kube_client;
pub mod leader;
pub mod operations;
pub mod qdrant;
pub mod telemetry;

/// Errors of a reconcile. Each has a stable category for metrics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    NotLeader(#[from] leader::NotLeader),
    #[error("cancelled: leadership ended")]
    Cancelled,
    #[error("no randomness for a generated key: {0}")]
    Random(String),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => "invalid",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::NotLeader(_) => "not_leader",
            Error::Cancelled => "cancelled",
            Error::Random(_) => "random",
        }
    }

    /// Errors that mean "not ours to do any more", not failures.
    pub fn is_leadership(&self) -> bool {
        matches!(self, Error::NotLeader(_) | Error::Cancelled)
    }
}
