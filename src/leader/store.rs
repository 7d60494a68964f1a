//! Reading and writing the Lease record: a small trait, the production store over
//! `Api<Lease>`, and an in-memory store with the API server's conflict rules for tests.

use std::future::Future;

use futures::stream::BoxStream;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;

use crate::kube_client::{watch_backoff, Clients};

/// The Lease record, as client-go's resourcelock stores it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LeaseRecord {
    pub holder: String,
    pub lease_duration_seconds: i32,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub lease_transitions: i32,
    /// Coordinated leader election fields: kept as found, never acted upon.
    pub strategy: Option<String>,
    pub preferred_holder: Option<String>,
}

/// A record with the resourceVersion it was read or written at.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned {
    pub record: LeaseRecord,
    pub resource_version: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum StoreError {
    #[error("conflict: the Lease changed since it was read")]
    Conflict,
    #[error("the Lease already exists")]
    AlreadyExists,
    #[error("the Lease does not exist")]
    NotFound,
    #[error("{0}")]
    Other(String),
}

/// What the elector needs from the API server, and nothing more.
pub trait LeaseStore: Send + Sync + 'static {
    fn get(&self) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;
    fn create(&self, record: &LeaseRecord) -> impl Future<Output = Result<Versioned, StoreError>> + Send;
    /// Replaces the record only if the stored resourceVersion is still `resource_version`.
    fn update(&self, record: &LeaseRecord, resource_version: &str) -> impl Future<Output = Result<Versioned, StoreError>> + Send;
    /// Every change of the Lease as it happens (`None` when it was deleted), so that a
    /// release is seen within one round trip instead of at the next poll.
    fn changes(&self) -> BoxStream<'static, Option<Versioned>>;
}

/// The production store: the Lease `name` through `Api<Lease>` in one namespace.
#[derive(Clone)]
pub struct KubeLeaseStore {
    api: Api<Lease>,
    /// The same Lease through the watch client (no read timeout).
    watch_api: Api<Lease>,
    name: String,
}

impl KubeLeaseStore {
    pub fn new(clients: &Clients, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(clients.requests.clone(), namespace),
            watch_api: Api::namespaced(clients.watches.clone(), namespace),
            name: name.to_owned(),
        }
    }

    fn to_lease(&self, r: &LeaseRecord, resource_version: Option<&str>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: resource_version.map(str::to_owned),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(r.holder.clone()),
                lease_duration_seconds: Some(r.lease_duration_seconds),
                acquire_time: r.acquire_time.map(MicroTime),
                renew_time: r.renew_time.map(MicroTime),
                lease_transitions: Some(r.lease_transitions),
                strategy: r.strategy.clone(),
                preferred_holder: r.preferred_holder.clone(),
            }),
        }
    }
}

pub fn from_lease(l: &Lease) -> Versioned {
    let s = l.spec.clone().unwrap_or_default();
    Versioned {
        record: LeaseRecord {
            holder: s.holder_identity.unwrap_or_default(),
            lease_duration_seconds: s.lease_duration_seconds.unwrap_or(0),
            acquire_time: s.acquire_time.map(|t| t.0),
            renew_time: s.renew_time.map(|t| t.0),
            lease_transitions: s.lease_transitions.unwrap_or(0),
            strategy: s.strategy,
            preferred_holder: s.preferred_holder,
        },
        resource_version: l.metadata.resource_version.clone().unwrap_or_default(),
    }
}

fn map_err(e: kube::Error) -> StoreError {
    match &e {
        kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists" => StoreError::AlreadyExists,
        kube::Error::Api(s) if s.code == 409 => StoreError::Conflict,
        kube::Error::Api(s) if s.code == 404 => StoreError::NotFound,
        _ => StoreError::Other(e.to_string()),
    }
}

impl LeaseStore for KubeLeaseStore {
    async fn get(&self) -> Result<Option<Versioned>, StoreError> {
        self.api.get_opt(&self.name).await.map(|o| o.as_ref().map(from_lease)).map_err(map_err)
    }

    async fn create(&self, record: &LeaseRecord) -> Result<Versioned, StoreError> {
        self.api.create(&PostParams::default(), &self.to_lease(record, None)).await.map(|l| from_lease(&l)).map_err(map_err)
    }

    async fn update(&self, record: &LeaseRecord, resource_version: &str) -> Result<Versioned, StoreError> {
        let lease = self.to_lease(record, Some(resource_version));
        self.api.replace(&self.name, &PostParams::default(), &lease).await.map(|l| from_lease(&l)).map_err(map_err)
    }

    fn changes(&self) -> BoxStream<'static, Option<Versioned>> {
        let cfg = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        watcher(self.watch_api.clone(), cfg)
            .backoff(watch_backoff())
            .filter_map(|ev| async move {
                match ev {
                    Ok(watcher::Event::Apply(l)) | Ok(watcher::Event::InitApply(l)) => Some(Some(from_lease(&l))),
                    Ok(watcher::Event::Delete(_)) => Some(None),
                    // Errors restart the watch after a backoff; the elector's polling covers
                    // the gap, and its own reads report the outage.
                    _ => None,
                }
            })
            .boxed()
    }
}

/// Test support: an in-memory Lease with the API server's rules: create fails if present, update fails
/// unless the resourceVersion matches, every write bumps the resourceVersion, and every
/// write is broadcast to watchers. Tests can also fail or stall requests on purpose.
#[cfg(test)]
pub mod memory {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::sync::broadcast;

    #[derive(Default)]
    struct Inner {
        current: Option<Versioned>,
        next_rv: u64,
        /// While true, every request waits forever: an API server that stopped answering.
        stalled: bool,
        /// Number of upcoming requests that fail with a server error.
        failing: u32,
        /// Every request made, answered or not.
        requests: u64,
        writes: Vec<(String, LeaseRecord)>,
    }

    #[derive(Clone)]
    pub struct MemoryLeaseStore {
        inner: Arc<Mutex<Inner>>,
        tx: broadcast::Sender<Option<Versioned>>,
        /// The identity this handle writes as, for the write log.
        who: String,
    }

    impl MemoryLeaseStore {
        pub fn new() -> Self {
            let (tx, _) = broadcast::channel(1024);
            Self { inner: Arc::default(), tx, who: String::new() }
        }
        /// Another handle on the same Lease, logging its writes as `who`.
        pub fn handle(&self, who: &str) -> Self {
            Self { inner: self.inner.clone(), tx: self.tx.clone(), who: who.to_owned() }
        }
        pub fn current(&self) -> Option<Versioned> {
            self.inner.lock().unwrap().current.clone()
        }
        pub fn set_stalled(&self, stalled: bool) {
            self.inner.lock().unwrap().stalled = stalled;
        }
        pub fn fail_next(&self, n: u32) {
            self.inner.lock().unwrap().failing = n;
        }
        pub fn requests(&self) -> u64 {
            self.inner.lock().unwrap().requests
        }
        /// Every successful write so far, with the handle that made it.
        pub fn writes(&self) -> Vec<(String, LeaseRecord)> {
            self.inner.lock().unwrap().writes.clone()
        }
        /// Deletes the Lease, as an admin or a GitOps tool would.
        pub fn delete(&self) {
            self.inner.lock().unwrap().current = None;
            let _ = self.tx.send(None);
        }
        /// Writes a record directly, as another tool or replica would.
        pub fn put(&self, record: LeaseRecord) -> Versioned {
            let mut g = self.inner.lock().unwrap();
            g.next_rv += 1;
            let v = Versioned { record, resource_version: g.next_rv.to_string() };
            g.current = Some(v.clone());
            drop(g);
            let _ = self.tx.send(Some(v.clone()));
            v
        }

        async fn gate(&self) -> Result<(), StoreError> {
            let stalled = {
                let mut g = self.inner.lock().unwrap();
                g.requests += 1;
                if g.failing > 0 {
                    g.failing -= 1;
                    return Err(StoreError::Other("injected server error".into()));
                }
                g.stalled
            };
            if stalled {
                futures::future::pending::<()>().await;
            }
            Ok(())
        }

        fn write(&self, record: &LeaseRecord, expect_rv: Option<&str>, create: bool) -> Result<Versioned, StoreError> {
            let mut g = self.inner.lock().unwrap();
            match (&g.current, create) {
                (Some(_), true) => return Err(StoreError::AlreadyExists),
                (None, false) => return Err(StoreError::NotFound),
                (Some(cur), false) if Some(cur.resource_version.as_str()) != expect_rv => return Err(StoreError::Conflict),
                _ => {}
            }
            g.next_rv += 1;
            let v = Versioned { record: record.clone(), resource_version: g.next_rv.to_string() };
            g.current = Some(v.clone());
            g.writes.push((self.who.clone(), record.clone()));
            drop(g);
            let _ = self.tx.send(Some(v.clone()));
            Ok(v)
        }
    }

    impl Default for MemoryLeaseStore {
        fn default() -> Self {
            Self::new()
        }
    }

    impl LeaseStore for MemoryLeaseStore {
        async fn get(&self) -> Result<Option<Versioned>, StoreError> {
            self.gate().await?;
            Ok(self.current())
        }
        async fn create(&self, record: &LeaseRecord) -> Result<Versioned, StoreError> {
            self.gate().await?;
            self.write(record, None, true)
        }
        async fn update(&self, record: &LeaseRecord, resource_version: &str) -> Result<Versioned, StoreError> {
            self.gate().await?;
            self.write(record, Some(resource_version), false)
        }
        fn changes(&self) -> BoxStream<'static, Option<Versioned>> {
            tokio_stream_from(self.tx.subscribe())
        }
    }

    fn tokio_stream_from(rx: broadcast::Receiver<Option<Versioned>>) -> BoxStream<'static, Option<Versioned>> {
        futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(v) => return Some((v, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }
}
