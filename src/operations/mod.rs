//! Qdrant-aware operations: the one place that knows both what Kubernetes runs (Pods, by name
//! and address) and what Qdrant says about itself (consensus, peers, shard replicas).
//!
//! The controller hands it plain names and URLs and gets back plain values; it never sees a
//! Qdrant type, and the Qdrant client never sees a Kubernetes one.
//!
//! - [`health`]: observes every Pod through the REST API, then judges the cluster's health
//!   with a pure function.
//! - [`scale`]: carries out a scale-down drain, one planned step at a time.
//! - [`plan`]: pure planning of shard placement changes: the next safe step to drain peers
//!   before a scale-down, or to spread replicas after a scale-up.

pub mod backup;
pub mod collection;
pub mod health;
pub mod plan;
pub mod scale;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::qdrant::{ClientConfig, ConfigError, QdrantClient, QdrantMetrics};

/// How many distinct CA bundles keep a connection pool of their own. Beyond it the pools are
/// dropped and rebuilt on demand: a cluster whose CA rotates often must not grow the map.
const MAX_POOLS: usize = 64;

/// How one cluster is reached: its API key and, for TLS clusters, the CA that signed its Pods'
/// certificates.
#[derive(Clone, Default)]
pub struct Access {
    pub api_key: Option<String>,
    pub ca_pem: Option<Vec<u8>>,
}

/// Hands out Qdrant clients. One connection pool per CA bundle (plain http shares the
/// no-CA pool), each with the caller's API key on top, so that reconciles do not build a TLS
/// stack each time.
pub struct Qdrant {
    timeout: Duration,
    metrics: QdrantMetrics,
    pools: Mutex<HashMap<Option<Vec<u8>>, QdrantClient>>,
}

impl Qdrant {
    pub fn new(timeout: Duration, metrics: QdrantMetrics) -> Self {
        Qdrant { timeout, metrics, pools: Mutex::default() }
    }

    /// A client for one cluster. Fails only on a CA bundle or key that cannot be used, which
    /// the caller reports as the cluster's problem.
    pub fn client(&self, access: &Access) -> Result<QdrantClient, ConfigError> {
        let pool = {
            let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            match pools.get(&access.ca_pem) {
                Some(pool) => pool.clone(),
                None => {
                    let pool = QdrantClient::new(ClientConfig { timeout: self.timeout, api_key: None, ca_pem: access.ca_pem.clone() }, self.metrics.clone())?;
                    if pools.len() >= MAX_POOLS {
                        pools.clear();
                    }
                    pools.insert(access.ca_pem.clone(), pool.clone());
                    pool
                }
            }
        };
        pool.with_api_key(access.api_key.as_deref())
    }
}
