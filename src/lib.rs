//! qdrant-operator: runs Qdrant clusters from `QdrantCluster` resources, with exactly one
//! writing replica, the holder of the Lease `qdrant-operator`.
#![forbid(unsafe_code)]
#![deny(warnings)]

pub mod app;
pub mod backups;
pub mod collections;
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
    #[error("making a TLS certificate failed: {0}")]
    Certificate(String),
    /// Something the spec refers to went missing after it was checked.
    #[error("{0}")]
    Spec(String),
}

impl Error {
    /// The categories of failed reconciles (every [`Error::category`] but those of
    /// [`Error::is_leadership`]). `qdrant_operator_errors_total` exports each at zero from
    /// start-up, so that `rate()` sees a category's first error, and dashboards and alerts
    /// find the series before anything has failed.
    pub const FAILURE_CATEGORIES: &'static [&'static str] = &["conflict", "invalid", "api", "transport", "random", "certificate"];

    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => "invalid",
            Error::Spec(_) => "invalid",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::NotLeader(_) => "not_leader",
            Error::Cancelled => "cancelled",
            Error::Random(_) => "random",
            Error::Certificate(_) => "certificate",
        }
    }

    /// Errors that mean "not ours to do any more", not failures.
    pub fn is_leadership(&self) -> bool {
        matches!(self, Error::NotLeader(_) | Error::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_category_is_listed_and_leadership_is_not_a_failure() {
        let api = |code| Error::Kube(kube::Error::Api(kube::core::Status::failure("m", "r").with_code(code).boxed()));
        let failures = [api(409), api(422), api(400), api(500), Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded), Error::Random("x".into()), Error::Certificate("x".into()), Error::Spec("x".into())];
        for e in &failures {
            assert!(!e.is_leadership(), "{e}");
            assert!(Error::FAILURE_CATEGORIES.contains(&e.category()), "{} is not in FAILURE_CATEGORIES", e.category());
        }
        let mut seen: Vec<&str> = failures.iter().map(Error::category).collect();
        seen.sort_unstable();
        seen.dedup();
        let mut listed = Error::FAILURE_CATEGORIES.to_vec();
        listed.sort_unstable();
        assert_eq!(seen, listed, "a listed category no error has");
        for e in [Error::NotLeader(leader::NotLeader), Error::Cancelled] {
            assert!(e.is_leadership() && !Error::FAILURE_CATEGORIES.contains(&e.category()));
        }
    }
}
