//! Metrics of the Qdrant client: how often each endpoint is called, with what outcome, and how
//! long it takes. Labels are bounded on purpose: `endpoint` is the route template (never the raw
//! path, which would carry collection names and peer ids) and `result` is one of
//! [`RESULTS`].

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::time::Duration;

/// Every value the `result` label takes: `ok` or a [`super::QdrantError::category`].
pub const RESULTS: &[&str] = &[
    "ok",
    "unauthorized",
    "forbidden",
    "not_found",
    "client_error",
    "server_error",
    "timeout",
    "transport",
    "decode",
];

/// Collectors of the client. Cloning shares the same series (the prometheus vectors are
/// reference-counted), so every [`super::QdrantClient`] clone reports into one place.
#[derive(Clone, Debug)]
pub struct QdrantMetrics {
    requests_total: IntCounterVec,
    request_duration_seconds: HistogramVec,
}

impl QdrantMetrics {
    /// Creates the collectors and registers them into `registry`, normally the process's one
    /// registry so that `/metrics` shows them. Fails if they are registered there already.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests_total = IntCounterVec::new(
            Opts::new(
                "qdrant_client_requests_total",
                "Requests of the operator to Qdrant's REST API, by endpoint template and result",
            ),
            &["endpoint", "result"],
        )?;
        // Up to a minute: snapshot creation and cluster operations that wait for consensus
        // commit legitimately take tens of seconds.
        let request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "qdrant_client_request_duration_seconds",
                "Duration of requests of the operator to Qdrant's REST API, by endpoint template",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["endpoint"],
        )?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_duration_seconds.clone()))?;
        Ok(QdrantMetrics {
            requests_total,
            request_duration_seconds,
        })
    }

    pub(crate) fn observe(&self, endpoint: &str, result: &str, elapsed: Duration) {
        self.requests_total
            .with_label_values(&[endpoint, result])
            .inc();
        self.request_duration_seconds
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
    }
}
