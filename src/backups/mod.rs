//! Backups of Qdrant collections to S3-compatible storage, and restores from them
//! (QdrantCollectionBackup, QdrantCollectionRestore), compatible with the older JavaScript
//! operator's resources.
//!
//! The work runs in the operator's leader, not in Jobs: it needs the cluster's API key and CA,
//! which the leader already holds, and its writes to Qdrant, S3 and Kubernetes pass the same
//! leadership guard as every other write. Snapshot files are streamed from each Qdrant Pod to
//! S3 and never held whole in memory. A leader change cancels the work; the next leader
//! resumes it from the status (a backup as a new attempt in the same directory, a restore
//! from the start), so a backup is never recorded good without its manifest, and never runs
//! twice at once.

pub mod crd;
pub mod plan;
pub mod reconcile;
pub mod restore;
pub mod run;
pub mod s3;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Resource};

use crate::controller::{build, Context};
use crate::crd::QdrantCluster;
use crate::operations::backup::{Failure, PodRef};
use crate::qdrant::QdrantClient;
use crate::Error;
use crd::Snapshots;

/// The Secret keys of S3 credentials, as the older operator named them.
pub const ACCESS_KEY: &str = "ACCESS_KEY";
pub const SECRET_KEY: &str = "SECRET_KEY";
const DEFAULT_REGION: &str = "us-east-1";
/// How long a backup or restore waits for this leader to have reconciled its cluster.
const ACCESS_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Backups and restores running in this process, by `kind/namespace/name`, so that a
/// reconcile never starts a second copy of one still running, and a new leader (which has
/// none) resumes what its predecessor left.
#[derive(Clone, Default)]
pub struct Runs(Arc<Mutex<HashSet<String>>>);

/// Removes its key from [`Runs`] when the work ends, however it ends (done, failed, or
/// cancelled with the leadership term).
pub struct RunGuard(Runs, String);

impl Runs {
    /// Marks `key` running; `None` if it already is.
    pub fn start(&self, key: String) -> Option<RunGuard> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone()).then(|| RunGuard(self.clone(), key))
    }

    pub fn is_running(&self, key: &str) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).contains(key)
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.1);
    }
}

/// A cluster's Qdrant as a backup or restore reaches it: its client and its Pods.
pub struct Target {
    pub client: QdrantClient,
    pub pods: Vec<PodRef>,
}

/// The cluster's Qdrant, reached the way its own reconcile last resolved it (key, CA).
pub async fn target(ctx: &Context, ns: &str, cluster: &str) -> Result<Target, Failure> {
    let qc = Api::<QdrantCluster>::namespaced(ctx.client.clone(), ns).get_opt(cluster).await.map_err(|e| Failure { reason: "KubernetesError", message: e.to_string() })?;
    let Some(qc) = qc else { return Err(Failure { reason: "ClusterNotFound", message: format!("QdrantCluster {ns}/{cluster} does not exist") }) };
    // A new leader learns how to reach a cluster (key, CA) from its first reconcile of it,
    // which may come after a backup it resumes: that is waited for, not failed.
    let key = format!("{ns}/{cluster}");
    let deadline = tokio::time::Instant::now() + ACCESS_WAIT;
    let access = loop {
        if let Some(a) = ctx.access(&key) {
            break a;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure { reason: "ClusterNotReady", message: format!("QdrantCluster {key} has not been reconciled by this leader within {ACCESS_WAIT:?} (paused, or blocked: see its status)") });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let client = ctx.qdrant.client(&access).map_err(|e| Failure { reason: "ClusterNotReady", message: e.to_string() })?;
    let pods = (0..qc.spec.replicas.max(0))
        .map(|i| {
            let pod = format!("{cluster}-{i}");
            PodRef { url: build::rest_url(&qc, &pod), pod }
        })
        .collect();
    Ok(Target { client, pods })
}

/// The bucket of `s`, with the credentials of its Secret.
pub async fn store(ctx: &Context, ns: &str, s: &Snapshots) -> Result<s3::Store, Failure> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns).get_opt(&s.s3_credentials_secret_name).await.map_err(|e| Failure { reason: "KubernetesError", message: e.to_string() })?;
    let missing = |why: String| Failure { reason: "SecretNotFound", message: why };
    let Some(secret) = secret else { return Err(missing(format!("Secret {ns}/{} does not exist", s.s3_credentials_secret_name))) };
    let data = secret.data.unwrap_or_default();
    let key = |k: &str| {
        data.get(k).map(|v| String::from_utf8_lossy(&v.0).trim().to_owned()).filter(|v| !v.is_empty()).ok_or_else(|| missing(format!("Secret {ns}/{} has no {k}", s.s3_credentials_secret_name)))
    };
    let (access, secret_key) = (key(ACCESS_KEY)?, key(SECRET_KEY)?);
    let http = s3::http_client().map_err(|e| Failure { reason: "InvalidS3Settings", message: e })?;
    s3::Store::new(http, &s.s3_endpoint_url, &s.bucket_name, s.region.as_deref().unwrap_or(DEFAULT_REGION), &access, &secret_key).map_err(|e| Failure { reason: e.reason(), message: e.to_string() })
}

/// Changes an object's status with `change`, applied to a fresh read and written back with
/// its resourceVersion, so that the reconcile and a running backup never undo each other's
/// writes. `change` returns false when there is nothing to write. As the leader only.
pub async fn update_status<K>(ctx: &Context, ns: &str, name: &str, change: impl Fn(&mut K) -> bool) -> Result<Option<K>, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    for _ in 0..5 {
        let Some(mut obj) = api.get_opt(name).await? else { return Ok(None) };
        if !change(&mut obj) {
            return Ok(Some(obj));
        }
        match ctx.guard.write(api.replace_status(name, &PostParams::default(), &obj)).await? {
            Ok(written) => return Ok(Some(written)),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Spec(format!("the status of {ns}/{name} kept changing under this write")))
}

/// RFC 3339 in UTC, seconds precision: how statuses show times.
pub fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
