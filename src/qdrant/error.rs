//! Errors of the Qdrant client. Configuration problems ([`ConfigError`]) are kept apart from the
//! failures of a call ([`QdrantError`]): the first are fixed by the user, the second are what a
//! reconcile retries, reports or acts on (a 404 is often an answer, not a failure).

use std::time::Duration;

/// The client or a peer handle could not be set up from the given configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the API key is not a valid HTTP header value")]
    InvalidApiKey,
    #[error("the CA bundle is not valid PEM: {0}")]
    CaPem(String),
    #[error("the CA bundle holds no certificate")]
    CaEmpty,
    #[error("a CA certificate was rejected: {0}")]
    CaCertificate(rustls::Error),
    #[error("TLS set-up failed: {0}")]
    Tls(rustls::Error),
    #[error("HTTP client set-up failed: {0}")]
    Http(reqwest::Error),
    #[error("invalid Qdrant base URL {url:?}: {reason}")]
    InvalidBaseUrl { url: String, reason: String },
}

/// A call to Qdrant failed. `endpoint` is the route template, as in the metrics, e.g.
/// `"GET /collections/{name}/cluster"`. `message` is Qdrant's own `status.error` when the body
/// had one, else the (shortened) body text.
#[derive(Debug, thiserror::Error)]
pub enum QdrantError {
    /// No complete answer within the deadline: the peer may be down, overloaded or partitioned.
    #[error("{endpoint}: no answer within {timeout:?}")]
    Timeout {
        endpoint: &'static str,
        timeout: Duration,
    },
    /// Connection refused or reset, DNS failure, TLS handshake failure, ...
    #[error("{endpoint}: transport error: {source}")]
    Transport {
        endpoint: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// 401: no API key, or the wrong one.
    #[error("{endpoint}: unauthorized (401): {message}")]
    Unauthorized {
        endpoint: &'static str,
        message: String,
    },
    /// 403: the key is valid but may not do this (e.g. a read-only key).
    #[error("{endpoint}: forbidden (403): {message}")]
    Forbidden {
        endpoint: &'static str,
        message: String,
    },
    /// 404: the collection (or peer, snapshot) does not exist on this peer.
    #[error("{endpoint}: not found (404): {message}")]
    NotFound {
        endpoint: &'static str,
        message: String,
    },
    /// Any other non-2xx answer, e.g. 400 for an invalid operation or 500/503.
    #[error("{endpoint}: HTTP {status}: {message}")]
    Status {
        endpoint: &'static str,
        status: u16,
        message: String,
    },
    /// A 2xx answer whose body is not what the API specifies.
    #[error("{endpoint}: undecodable answer (HTTP {status}): {source}")]
    Decode {
        endpoint: &'static str,
        status: u16,
        #[source]
        source: serde_json::Error,
    },
}

impl QdrantError {
    /// A stable, bounded name of the failure kind: the `result` label of
    /// `qdrant_client_requests_total`.
    pub fn category(&self) -> &'static str {
        match self {
            QdrantError::Timeout { .. } => "timeout",
            QdrantError::Transport { .. } => "transport",
            QdrantError::Unauthorized { .. } => "unauthorized",
            QdrantError::Forbidden { .. } => "forbidden",
            QdrantError::NotFound { .. } => "not_found",
            QdrantError::Status { status, .. } if *status >= 500 => "server_error",
            QdrantError::Status { .. } => "client_error",
            QdrantError::Decode { .. } => "decode",
        }
    }

    /// The HTTP status of the answer, if one arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            QdrantError::Timeout { .. } | QdrantError::Transport { .. } => None,
            QdrantError::Unauthorized { .. } => Some(401),
            QdrantError::Forbidden { .. } => Some(403),
            QdrantError::NotFound { .. } => Some(404),
            QdrantError::Status { status, .. } | QdrantError::Decode { status, .. } => {
                Some(*status)
            }
        }
    }

    /// Qdrant's error message (or the body text) of an HTTP error answer.
    pub fn message(&self) -> Option<&str> {
        match self {
            QdrantError::Unauthorized { message, .. }
            | QdrantError::Forbidden { message, .. }
            | QdrantError::NotFound { message, .. }
            | QdrantError::Status { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The route template of the failed call.
    pub fn endpoint(&self) -> &'static str {
        match self {
            QdrantError::Timeout { endpoint, .. }
            | QdrantError::Transport { endpoint, .. }
            | QdrantError::Unauthorized { endpoint, .. }
            | QdrantError::Forbidden { endpoint, .. }
            | QdrantError::NotFound { endpoint, .. }
            | QdrantError::Status { endpoint, .. }
            | QdrantError::Decode { endpoint, .. } => endpoint,
        }
    }

    /// True when the peer could not be reached or did not answer in time: the peer's health is
    /// unknown, unlike an HTTP error, which proves it is up.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            QdrantError::Timeout { .. } | QdrantError::Transport { .. }
        )
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, QdrantError::NotFound { .. })
    }
}
