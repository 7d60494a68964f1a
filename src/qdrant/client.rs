//! The HTTP side of the client: one shared connection pool ([`QdrantClient`]) and cheap per-Pod
//! handles ([`Peer`]), because the operator must ask each Pod about itself (its peer id, its
//! local shards) rather than whichever Pod a Service picks.

use super::error::{ConfigError, QdrantError};
use super::metrics::QdrantMetrics;
use super::types::{
    ClusterOperation, ClusterStatus, CollectionClusterInfo, CollectionInfo, CollectionsResponse,
    CountRequest, CountResult, ShardSnapshotRecover, SnapshotDescription, SnapshotPriority,
};
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the client reaches Qdrant.
#[derive(Clone)]
pub struct ClientConfig {
    /// Deadline of each call, from sending the request to the last byte of the answer. Calls
    /// that make Qdrant wait for consensus get their server-side wait added on top.
    pub timeout: Duration,
    /// Sent as the `api-key` header when set.
    pub api_key: Option<String>,
    /// PEM bundle of the CA that signed the Qdrant Pods' certificates, for `https://` peers.
    /// When set, only these roots are trusted. When absent, the platform's roots are.
    pub ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for ClientConfig {
    // Never print the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("timeout", &self.timeout)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .finish()
    }
}

/// Whether `DELETE /cluster/peer/{id}` may remove a peer that still holds replicas. There is no
/// default on purpose: forcing loses the data only that peer holds, so it must be spelled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovePeer {
    /// Qdrant refuses if the peer still holds shards (`force` is not sent; it defaults to false).
    Safe,
    /// `force=true`: remove the peer even with shards on it.
    Force,
}

/// A route of the API. `template` is both the metrics label and the error context, so it never
/// holds a collection name or peer id.
#[derive(Debug, Clone, Copy)]
struct Endpoint {
    verb: Verb,
    template: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Patch => Method::PATCH,
            Verb::Put => Method::PUT,
            Verb::Delete => Method::DELETE,
        }
    }
}

macro_rules! endpoints {
    ($($name:ident = $verb:ident $template:literal;)+) => {
        $(const $name: Endpoint = Endpoint { verb: Verb::$verb, template: $template };)+
        /// Every `endpoint` label value of the client's metrics.
        pub const ENDPOINTS: &[&str] = &[$($template),+];
    };
}

endpoints! {
    CLUSTER = Get "GET /cluster";
    REMOVE_PEER = Delete "DELETE /cluster/peer/{peer_id}";
    LIST_COLLECTIONS = Get "GET /collections";
    GET_COLLECTION = Get "GET /collections/{name}";
    CREATE_COLLECTION = Put "PUT /collections/{name}";
    UPDATE_COLLECTION = Patch "PATCH /collections/{name}";
    DELETE_COLLECTION = Delete "DELETE /collections/{name}";
    COLLECTION_CLUSTER = Get "GET /collections/{name}/cluster";
    UPDATE_COLLECTION_CLUSTER = Post "POST /collections/{name}/cluster";
    COUNT_POINTS = Post "POST /collections/{name}/points/count";
    CREATE_SNAPSHOT = Post "POST /collections/{name}/snapshots";
    LIST_SNAPSHOTS = Get "GET /collections/{name}/snapshots";
    CREATE_SHARD_SNAPSHOT = Post "POST /collections/{name}/shards/{shard_id}/snapshots";
    DOWNLOAD_SHARD_SNAPSHOT = Get "GET /collections/{name}/shards/{shard_id}/snapshots/{snapshot}";
    DELETE_SHARD_SNAPSHOT = Delete "DELETE /collections/{name}/shards/{shard_id}/snapshots/{snapshot}";
    RECOVER_SHARD_SNAPSHOT = Put "PUT /collections/{name}/shards/{shard_id}/snapshots/recover";
    READYZ = Get "GET /readyz";
    LIVEZ = Get "GET /livez";
    HEALTHZ = Get "GET /healthz";
}

/// Longest error body kept in a [`QdrantError`] message, so that an HTML error page of a proxy
/// does not flood logs and Kubernetes events.
const MAX_MESSAGE: usize = 512;

/// A Qdrant REST client with one connection pool for all Pods. Cheap to clone.
#[derive(Clone, Debug)]
pub struct QdrantClient {
    http: reqwest::Client,
    /// Marked sensitive, so `Debug` prints no key.
    api_key: Option<HeaderValue>,
    timeout: Duration,
    metrics: QdrantMetrics,
}

impl QdrantClient {
    pub fn new(config: ClientConfig, metrics: QdrantMetrics) -> Result<Self, ConfigError> {
        let tls = tls_config(
            config.ca_pem.as_deref(),
            rustls_platform_verifier::Verifier::new,
        )?;
        Self::with_tls(config, metrics, tls)
    }

    pub(super) fn with_tls(
        config: ClientConfig,
        metrics: QdrantMetrics,
        tls: rustls::ClientConfig,
    ) -> Result<Self, ConfigError> {
        let api_key = header_value(config.api_key.as_deref())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            // Pods are reached directly; a proxy from the environment would misroute them.
            .no_proxy()
            // Qdrant does not redirect. Following one would send the api-key header (which
            // reqwest does not treat as a credential) to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout)
            // Pods come and go; do not keep sockets to a replaced Pod's address for long.
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("qdrant-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ConfigError::Http)?;
        Ok(QdrantClient {
            http,
            api_key,
            timeout: config.timeout,
            metrics,
        })
    }

    /// The same connection pool with another API key: clusters that share a CA share sockets
    /// and TLS sessions, whatever their keys.
    pub fn with_api_key(&self, api_key: Option<&str>) -> Result<Self, ConfigError> {
        Ok(QdrantClient {
            api_key: header_value(api_key)?,
            ..self.clone()
        })
    }

    /// A handle on the Qdrant REST API at `base_url`, e.g.
    /// `http://my-cluster-0.my-cluster-headless.ns:6333`. A path in it is kept as a prefix.
    pub fn peer(&self, base_url: &str) -> Result<Peer, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidBaseUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        base.set_query(None);
        base.set_fragment(None);
        Ok(Peer {
            client: self.clone(),
            base,
            timeout: self.timeout,
        })
    }
}

/// The `api-key` header, marked sensitive so that no `Debug` output shows it.
fn header_value(key: Option<&str>) -> Result<Option<HeaderValue>, ConfigError> {
    key.map(|key| {
        let mut value = HeaderValue::from_str(key).map_err(|_| ConfigError::InvalidApiKey)?;
        value.set_sensitive(true);
        Ok(value)
    })
    .transpose()
}

/// Builds the rustls configuration handed to reqwest, on the ring provider explicitly: reqwest
/// is built without a provider of its own, and no process-wide default has to be installed.
///
/// Without a CA bundle the platform's roots are trusted, through `platform` (the platform
/// verifier). If the system has no roots at all (a scratch image), the client is still built
/// with an empty trust store: plain-http clusters must keep working, and an https peer then
/// fails its handshake with an unknown-issuer error that says what is missing.
pub(crate) fn tls_config(
    ca_pem: Option<&[u8]>,
    platform: impl FnOnce(
        Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<rustls_platform_verifier::Verifier, rustls::Error>,
) -> Result<rustls::ClientConfig, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(ConfigError::Tls)?;
    let mut config = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ConfigError::CaPem(e.to_string()))?;
                roots.add(cert).map_err(ConfigError::CaCertificate)?;
            }
            if roots.is_empty() {
                return Err(ConfigError::CaEmpty);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => match platform(provider) {
            Ok(verifier) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth(),
            Err(error) => {
                tracing::warn!(
                    %error,
                    "no system CA roots: https Qdrant peers need the cluster's CA configured"
                );
                builder
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }
        },
    };
    // reqwest is built for HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The REST API of one Qdrant Pod. Owns a clone of the client, so it can move into a task.
#[derive(Clone, Debug)]
pub struct Peer {
    client: QdrantClient,
    base: Url,
    timeout: Duration,
}

/// A snapshot being downloaded: its length, when the server gave one, and its bytes.
pub struct Download {
    pub length: Option<u64>,
    pub chunks: futures::stream::BoxStream<'static, Result<bytes::Bytes, QdrantError>>,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download").field("length", &self.length).finish_non_exhaustive()
    }
}

/// The success envelope `{result, status, time}`; only `result` is used.
#[derive(Deserialize)]
struct Envelope<T> {
    result: T,
}

impl Peer {
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The deadline of this handle's calls.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The same peer with another per-call deadline, e.g. longer for snapshots.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `GET /cluster`: this peer's id and its view of the cluster and of consensus.
    pub async fn cluster_info(&self) -> Result<ClusterStatus, QdrantError> {
        let url = self.url(&["cluster"]);
        self.json(CLUSTER, self.request(CLUSTER, url), self.timeout)
            .await
    }

    /// `DELETE /cluster/peer/{peer_id}`: removes a peer from the cluster's consensus.
    /// `wait` is how long Qdrant may wait for the change to commit (`timeout` query).
    pub async fn remove_peer(
        &self,
        peer_id: u64,
        mode: RemovePeer,
        wait: Option<Duration>,
    ) -> Result<bool, QdrantError> {
        let mut url = self.url(&["cluster", "peer", &peer_id.to_string()]);
        add_wait(&mut url, wait);
        if mode == RemovePeer::Force {
            url.query_pairs_mut().append_pair("force", "true");
        }
        let req = self.request(REMOVE_PEER, url);
        self.json(REMOVE_PEER, req, self.deadline(wait)).await
    }

    /// `GET /collections`: the names of all collections.
    pub async fn list_collections(&self) -> Result<Vec<String>, QdrantError> {
        let url = self.url(&["collections"]);
        let list: CollectionsResponse = self
            .json(
                LIST_COLLECTIONS,
                self.request(LIST_COLLECTIONS, url),
                self.timeout,
            )
            .await?;
        Ok(list.collections.into_iter().map(|c| c.name).collect())
    }

    /// `GET /collections/{name}`.
    pub async fn collection_info(&self, name: &str) -> Result<CollectionInfo, QdrantError> {
        let url = self.url(&["collections", name]);
        self.json(
            GET_COLLECTION,
            self.request(GET_COLLECTION, url),
            self.timeout,
        )
        .await
    }

    /// `GET /collections/{name}/cluster`: the collection's shards as this peer sees them.
    pub async fn collection_cluster_info(
        &self,
        name: &str,
    ) -> Result<CollectionClusterInfo, QdrantError> {
        let url = self.url(&["collections", name, "cluster"]);
        let req = self.request(COLLECTION_CLUSTER, url);
        self.json(COLLECTION_CLUSTER, req, self.timeout).await
    }

    /// `POST /collections/{name}/cluster`: moves, replicates or drops a replica, or aborts a
    /// transfer. Qdrant answers once the operation is committed to consensus (within `wait`, the
    /// `timeout` query), not when a transfer has finished.
    pub async fn update_collection_cluster(
        &self,
        name: &str,
        operation: &ClusterOperation,
        wait: Option<Duration>,
    ) -> Result<bool, QdrantError> {
        let mut url = self.url(&["collections", name, "cluster"]);
        add_wait(&mut url, wait);
        let req = self.request(UPDATE_COLLECTION_CLUSTER, url).json(operation);
        self.json(UPDATE_COLLECTION_CLUSTER, req, self.deadline(wait))
            .await
    }

    /// `PUT /collections/{name}`, with a [`super::types::CreateCollection`] or a body made elsewhere (a
    /// QdrantCollection's, which passes Qdrant's settings through as JSON).
    pub async fn create_collection<B: serde::Serialize + ?Sized>(
        &self,
        name: &str,
        collection: &B,
        wait: Option<Duration>,
    ) -> Result<bool, QdrantError> {
        let mut url = self.url(&["collections", name]);
        add_wait(&mut url, wait);
        let req = self.request(CREATE_COLLECTION, url).json(collection);
        self.json(CREATE_COLLECTION, req, self.deadline(wait)).await
    }

    /// `PATCH /collections/{name}`: changes the settings Qdrant lets change in place.
    pub async fn update_collection<B: serde::Serialize + ?Sized>(
        &self,
        name: &str,
        update: &B,
        wait: Option<Duration>,
    ) -> Result<bool, QdrantError> {
        let mut url = self.url(&["collections", name]);
        add_wait(&mut url, wait);
        let req = self.request(UPDATE_COLLECTION, url).json(update);
        self.json(UPDATE_COLLECTION, req, self.deadline(wait)).await
    }

    /// `DELETE /collections/{name}`: `true` if Qdrant deleted it.
    pub async fn delete_collection(
        &self,
        name: &str,
        wait: Option<Duration>,
    ) -> Result<bool, QdrantError> {
        let mut url = self.url(&["collections", name]);
        add_wait(&mut url, wait);
        let req = self.request(DELETE_COLLECTION, url);
        self.json(DELETE_COLLECTION, req, self.deadline(wait)).await
    }

    /// `POST /collections/{name}/points/count`: `exact` counts precisely, else approximately
    /// (faster, unreliable while indexing).
    pub async fn count_points(&self, name: &str, exact: bool) -> Result<u64, QdrantError> {
        let url = self.url(&["collections", name, "points", "count"]);
        let req = self
            .request(COUNT_POINTS, url)
            .json(&CountRequest { exact });
        let result: CountResult = self.json(COUNT_POINTS, req, self.timeout).await?;
        Ok(result.count)
    }

    /// `POST /collections/{name}/snapshots?wait=true`: snapshots this peer's shards of the
    /// collection and answers when done, which can take long: use [`Peer::with_timeout`].
    pub async fn create_snapshot(&self, name: &str) -> Result<SnapshotDescription, QdrantError> {
        let mut url = self.url(&["collections", name, "snapshots"]);
        url.query_pairs_mut().append_pair("wait", "true");
        let req = self.request(CREATE_SNAPSHOT, url);
        self.json(CREATE_SNAPSHOT, req, self.timeout).await
    }

    /// `GET /collections/{name}/snapshots`: the snapshots stored on this peer.
    pub async fn list_snapshots(
        &self,
        name: &str,
    ) -> Result<Vec<SnapshotDescription>, QdrantError> {
        let url = self.url(&["collections", name, "snapshots"]);
        self.json(
            LIST_SNAPSHOTS,
            self.request(LIST_SNAPSHOTS, url),
            self.timeout,
        )
        .await
    }

    /// `POST /collections/{name}/shards/{shard}/snapshots?wait=true`: snapshots this peer's
    /// replica of one shard. Can take long: use [`Peer::with_timeout`].
    pub async fn create_shard_snapshot(
        &self,
        name: &str,
        shard: u32,
    ) -> Result<SnapshotDescription, QdrantError> {
        let mut url = self.url(&["collections", name, "shards", &shard.to_string(), "snapshots"]);
        url.query_pairs_mut().append_pair("wait", "true");
        let req = self.request(CREATE_SHARD_SNAPSHOT, url);
        self.json(CREATE_SHARD_SNAPSHOT, req, self.timeout).await
    }

    /// `GET /collections/{name}/shards/{shard}/snapshots/{snapshot}`: the snapshot's bytes, as a
    /// stream, so that a large file never sits in the operator's memory. The headers must
    /// arrive within this handle's deadline, and each chunk within it after the one before.
    pub async fn download_shard_snapshot(
        &self,
        name: &str,
        shard: u32,
        snapshot: &str,
    ) -> Result<Download, QdrantError> {
        let endpoint = DOWNLOAD_SHARD_SNAPSHOT;
        let url = self.url(&["collections", name, "shards", &shard.to_string(), "snapshots", snapshot]);
        let started = Instant::now();
        let idle = self.timeout;
        let transport = move |source: reqwest::Error| {
            if source.is_timeout() {
                QdrantError::Timeout { endpoint: endpoint.template, timeout: idle }
            } else {
                QdrantError::Transport { endpoint: endpoint.template, source }
            }
        };
        let sent = tokio::time::timeout(idle, self.request(endpoint, url).send()).await;
        let result = match sent {
            Err(_) => Err(QdrantError::Timeout { endpoint: endpoint.template, timeout: idle }),
            Ok(Err(e)) => Err(transport(e)),
            Ok(Ok(resp)) if resp.status().is_success() => Ok(resp),
            Ok(Ok(resp)) => {
                let status = resp.status();
                let body = tokio::time::timeout(idle, resp.bytes()).await.ok().and_then(Result::ok).unwrap_or_default();
                Err(http_error(endpoint.template, status, &body))
            }
        };
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.category(),
        };
        self.client.metrics.observe(endpoint.template, label, started.elapsed());
        let resp = result?;
        let length = resp.content_length();
        let chunks = futures::stream::unfold(Some(resp), move |resp| async move {
            let mut resp = resp?;
            match tokio::time::timeout(idle, resp.chunk()).await {
                Err(_) => Some((Err(QdrantError::Timeout { endpoint: endpoint.template, timeout: idle }), None)),
                Ok(Err(e)) => Some((Err(transport(e)), None)),
                Ok(Ok(None)) => None,
                Ok(Ok(Some(chunk))) => Some((Ok(chunk), Some(resp))),
            }
        });
        Ok(Download { length, chunks: Box::pin(chunks) })
    }

    /// `DELETE /collections/{name}/shards/{shard}/snapshots/{snapshot}?wait=true`.
    pub async fn delete_shard_snapshot(
        &self,
        name: &str,
        shard: u32,
        snapshot: &str,
    ) -> Result<bool, QdrantError> {
        let mut url = self.url(&["collections", name, "shards", &shard.to_string(), "snapshots", snapshot]);
        url.query_pairs_mut().append_pair("wait", "true");
        let req = self.request(DELETE_SHARD_SNAPSHOT, url);
        self.json(DELETE_SHARD_SNAPSHOT, req, self.timeout).await
    }

    /// `PUT /collections/{name}/shards/{shard}/snapshots/recover?wait=true`: this peer fetches
    /// the snapshot at `location` (an http(s) URL), checks it against `checksum` (sha256, hex)
    /// and replaces its replica with it; with `priority` Snapshot, the other replicas too. Can
    /// take long: use [`Peer::with_timeout`].
    pub async fn recover_shard_snapshot(
        &self,
        name: &str,
        shard: u32,
        location: &str,
        checksum: Option<&str>,
        priority: SnapshotPriority,
    ) -> Result<bool, QdrantError> {
        let mut url = self.url(&["collections", name, "shards", &shard.to_string(), "snapshots", "recover"]);
        url.query_pairs_mut().append_pair("wait", "true");
        let req = self
            .request(RECOVER_SHARD_SNAPSHOT, url)
            .json(&ShardSnapshotRecover { location, priority, checksum });
        self.json(RECOVER_SHARD_SNAPSHOT, req, self.timeout).await
    }

    /// `GET /readyz`: Ok when the peer is ready to serve (in a cluster: consensus caught up).
    pub async fn readyz(&self) -> Result<(), QdrantError> {
        self.probe(READYZ, "readyz").await
    }

    /// `GET /livez`: Ok while the process is alive.
    pub async fn livez(&self) -> Result<(), QdrantError> {
        self.probe(LIVEZ, "livez").await
    }

    /// `GET /healthz`: Ok while the process is alive.
    pub async fn healthz(&self) -> Result<(), QdrantError> {
        self.probe(HEALTHZ, "healthz").await
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment (a `/`
    /// in a collection name cannot reach another route).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // Cannot fail: `peer` admits only http(s) URLs, which always have a path.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, endpoint: Endpoint, url: Url) -> RequestBuilder {
        let req = self.client.http.request(endpoint.verb.method(), url);
        match &self.client.api_key {
            Some(key) => req.header("api-key", key.clone()),
            None => req,
        }
    }

    /// The client-side deadline of a call that lets Qdrant wait up to `wait` server-side.
    fn deadline(&self, wait: Option<Duration>) -> Duration {
        self.timeout.saturating_add(wait.unwrap_or_default())
    }

    async fn probe(&self, endpoint: Endpoint, path: &str) -> Result<(), QdrantError> {
        let url = self.url(&[path]);
        let req = self.request(endpoint, url);
        self.call(endpoint, req, self.timeout, |_, _| Ok(())).await
    }

    /// Sends, then decodes the `result` of a 2xx JSON envelope.
    async fn json<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        req: RequestBuilder,
        deadline: Duration,
    ) -> Result<T, QdrantError> {
        self.call(endpoint, req, deadline, |status, body| {
            serde_json::from_slice::<Envelope<T>>(body)
                .map(|e| e.result)
                .map_err(|source| QdrantError::Decode {
                    endpoint: endpoint.template,
                    status: status.as_u16(),
                    source,
                })
        })
        .await
    }

    /// Sends `req` within `deadline`, maps non-2xx answers to errors, decodes 2xx ones with
    /// `decode`, and records the outcome in the metrics.
    async fn call<T>(
        &self,
        endpoint: Endpoint,
        req: RequestBuilder,
        deadline: Duration,
        decode: impl FnOnce(StatusCode, &[u8]) -> Result<T, QdrantError>,
    ) -> Result<T, QdrantError> {
        let started = Instant::now();
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                QdrantError::Timeout {
                    endpoint: endpoint.template,
                    timeout: deadline,
                }
            } else {
                QdrantError::Transport {
                    endpoint: endpoint.template,
                    source,
                }
            }
        };
        // One deadline over connect, request, and the whole body, so a peer that stalls
        // mid-answer cannot hold a reconcile.
        let exchange = async {
            let resp = req.send().await.map_err(transport)?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(transport)?;
            Ok::<_, QdrantError>((status, body))
        };
        let result = match tokio::time::timeout(deadline, exchange).await {
            Err(_elapsed) => Err(QdrantError::Timeout {
                endpoint: endpoint.template,
                timeout: deadline,
            }),
            Ok(Err(e)) => Err(e),
            Ok(Ok((status, body))) if status.is_success() => decode(status, &body),
            Ok(Ok((status, body))) => Err(http_error(endpoint.template, status, &body)),
        };
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.category(),
        };
        self.client
            .metrics
            .observe(endpoint.template, label, started.elapsed());
        result
    }
}

/// Sets Qdrant's `timeout` query (whole seconds, at least 1) from a server-side wait.
fn add_wait(url: &mut Url, wait: Option<Duration>) {
    if let Some(wait) = wait {
        let secs = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0))
            .max(1);
        url.query_pairs_mut()
            .append_pair("timeout", &secs.to_string());
    }
}

/// Maps a non-2xx answer to its error, with Qdrant's `status.error` message if the body is the
/// error envelope, else the body text.
fn http_error(endpoint: &'static str, status: StatusCode, body: &[u8]) -> QdrantError {
    let message = error_message(status, body);
    match status {
        StatusCode::UNAUTHORIZED => QdrantError::Unauthorized { endpoint, message },
        StatusCode::FORBIDDEN => QdrantError::Forbidden { endpoint, message },
        StatusCode::NOT_FOUND => QdrantError::NotFound { endpoint, message },
        _ => QdrantError::Status {
            endpoint,
            status: status.as_u16(),
            message,
        },
    }
}

fn error_message(status: StatusCode, body: &[u8]) -> String {
    let from_envelope = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("status")
                .and_then(|s| s.get("error"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        });
    let text = match from_envelope {
        Some(message) => message,
        None => String::from_utf8_lossy(body).trim().to_owned(),
    };
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no message").to_owned();
    }
    truncate(text, MAX_MESSAGE)
}

/// `text` cut to at most `max` bytes (on a character boundary), with `…` when cut.
pub(crate) fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}
