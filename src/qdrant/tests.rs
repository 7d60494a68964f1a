//! Request shapes, error mapping, deadlines, metrics and TLS of the client, against small local
//! servers on 127.0.0.1. Answers are written by hand after the OpenAPI schemas.

use super::*;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use prometheus::Registry;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BIG: u64 = 18446744073709551557;
const ODD: u64 = 9007199254740993;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone)]
struct Canned {
    status: u16,
    content_type: &'static str,
    body: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn answer(State(canned): State<Canned>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    canned.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: body.to_vec(),
    });
    Response::builder()
        .status(canned.status)
        .header("content-type", canned.content_type)
        .body(Body::from(canned.body.clone()))
        .unwrap()
}

/// Serves `body` with `status` to every request; returns the base URL and the requests seen.
async fn serve(
    status: u16,
    content_type: &'static str,
    body: String,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let canned = Canned {
        status,
        content_type,
        body,
        seen: seen.clone(),
    };
    let app = axum::Router::new().fallback(answer).with_state(canned);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

/// Serves Qdrant's success envelope around `result`.
async fn serve_ok(result: Value) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let body = json!({"result": result, "status": "ok", "time": 0.001}).to_string();
    serve(200, "application/json", body).await
}

/// Serves Qdrant's error envelope.
async fn serve_error(status: u16, message: &str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let body = json!({"status": {"error": message}, "time": 0.0, "result": null}).to_string();
    serve(status, "application/json", body).await
}

fn client_with(api_key: Option<&str>, timeout: Duration) -> (QdrantClient, Registry) {
    let registry = Registry::new();
    let metrics = QdrantMetrics::new(&registry).unwrap();
    let client = QdrantClient::new(
        ClientConfig {
            timeout,
            api_key: api_key.map(str::to_owned),
            ca_pem: None,
        },
        metrics,
    )
    .unwrap();
    (client, registry)
}

fn client() -> (QdrantClient, Registry) {
    client_with(None, Duration::from_secs(5))
}

fn only(seen: &Arc<Mutex<Vec<Seen>>>) -> Seen {
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    seen[0].clone()
}

/// Value of `qdrant_client_requests_total{endpoint, result}`.
fn requests(registry: &Registry, endpoint: &str, result: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "qdrant_client_requests_total")
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            let labels: Vec<(&str, &str)> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            labels.contains(&("endpoint", endpoint)) && labels.contains(&("result", result))
        })
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Samples of `qdrant_client_request_duration_seconds{endpoint}`.
fn durations(registry: &Registry, endpoint: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "qdrant_client_request_duration_seconds")
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.value() == endpoint))
        .map(|m| m.get_histogram().get_sample_count())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Request shapes

#[tokio::test]
async fn cluster_operations_request_shapes() {
    let ops = [
        (
            ClusterOperation::MoveShard(ShardTransfer {
                shard_id: 1,
                from_peer_id: BIG,
                to_peer_id: ODD,
                method: Some(ShardTransferMethod::Snapshot),
            }),
            format!(
                r#"{{"move_shard":{{"shard_id":1,"from_peer_id":{BIG},"to_peer_id":{ODD},"method":"snapshot"}}}}"#
            ),
        ),
        (
            ClusterOperation::ReplicateShard(ShardTransfer {
                shard_id: 2,
                from_peer_id: ODD,
                to_peer_id: BIG,
                method: Some(ShardTransferMethod::StreamRecords),
            }),
            format!(
                r#"{{"replicate_shard":{{"shard_id":2,"from_peer_id":{ODD},"to_peer_id":{BIG},"method":"stream_records"}}}}"#
            ),
        ),
        (
            ClusterOperation::ReplicateShard(ShardTransfer {
                shard_id: 2,
                from_peer_id: 1,
                to_peer_id: 2,
                method: None,
            }),
            r#"{"replicate_shard":{"shard_id":2,"from_peer_id":1,"to_peer_id":2}}"#.to_owned(),
        ),
        (
            ClusterOperation::DropReplica(Replica {
                shard_id: 0,
                peer_id: BIG,
            }),
            format!(r#"{{"drop_replica":{{"shard_id":0,"peer_id":{BIG}}}}}"#),
        ),
        (
            ClusterOperation::AbortTransfer(AbortShardTransfer {
                shard_id: 3,
                from_peer_id: BIG,
                to_peer_id: ODD,
            }),
            format!(
                r#"{{"abort_transfer":{{"shard_id":3,"from_peer_id":{BIG},"to_peer_id":{ODD}}}}}"#
            ),
        ),
    ];
    let (client, registry) = client();
    for (op, expected_body) in ops {
        let (base, seen) = serve_ok(json!(true)).await;
        let peer = client.peer(&base).unwrap();
        assert!(peer
            .update_collection_cluster("my-coll", &op, None)
            .await
            .unwrap());
        let req = only(&seen);
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/collections/my-coll/cluster");
        assert_eq!(req.query, None);
        assert_eq!(req.headers["content-type"], "application/json");
        // Byte for byte: the big ids are written as exact integers.
        assert_eq!(String::from_utf8(req.body).unwrap(), expected_body);
    }
    assert_eq!(
        requests(&registry, "POST /collections/{name}/cluster", "ok"),
        5
    );

    // The server-side wait becomes Qdrant's `timeout` query, in whole seconds rounded up.
    let (base, seen) = serve_ok(json!(true)).await;
    let op = ClusterOperation::DropReplica(Replica {
        shard_id: 0,
        peer_id: 1,
    });
    client
        .peer(&base)
        .unwrap()
        .update_collection_cluster("c", &op, Some(Duration::from_millis(2500)))
        .await
        .unwrap();
    assert_eq!(only(&seen).query.as_deref(), Some("timeout=3"));
}

#[tokio::test]
async fn api_key_header_only_when_configured() {
    let (base, seen) = serve_ok(json!({"status": "disabled"})).await;
    let (with_key, _) = client_with(Some("s3cr3t"), Duration::from_secs(5));
    with_key.peer(&base).unwrap().cluster_info().await.unwrap();
    let req = only(&seen);
    assert_eq!(req.headers["api-key"], "s3cr3t");
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/cluster");

    let (base, seen) = serve_ok(json!({"status": "disabled"})).await;
    let (without, _) = client();
    without.peer(&base).unwrap().cluster_info().await.unwrap();
    let req = only(&seen);
    assert!(req.headers.get("api-key").is_none(), "{:?}", req.headers);
    assert!(req.headers.get("authorization").is_none());

    // The key is not printed by Debug.
    assert!(!format!("{with_key:?}").contains("s3cr3t"));
    let config = ClientConfig {
        timeout: Duration::from_secs(1),
        api_key: Some("s3cr3t".into()),
        ca_pem: None,
    };
    assert!(!format!("{config:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn another_key_on_the_same_pool_replaces_the_key() {
    let (with_key, _) = client_with(Some("first"), Duration::from_secs(5));
    let (base, seen) = serve_ok(json!({"status": "disabled"})).await;
    let other = with_key.with_api_key(Some("k2-s3cr3t")).unwrap();
    other.peer(&base).unwrap().cluster_info().await.unwrap();
    assert_eq!(only(&seen).headers["api-key"], "k2-s3cr3t");

    let (base, seen) = serve_ok(json!({"status": "disabled"})).await;
    with_key.with_api_key(None).unwrap().peer(&base).unwrap().cluster_info().await.unwrap();
    assert!(only(&seen).headers.get("api-key").is_none());

    assert!(matches!(with_key.with_api_key(Some("bad\nkey")), Err(ConfigError::InvalidApiKey)));
    assert!(!format!("{other:?}").contains("k2-s3cr3t"));
}

#[tokio::test]
async fn remove_peer_forces_only_when_asked() {
    let (client, _) = client();

    let (base, seen) = serve_ok(json!(true)).await;
    let peer = client.peer(&base).unwrap();
    assert!(peer.remove_peer(BIG, RemovePeer::Safe, None).await.unwrap());
    let req = only(&seen);
    assert_eq!(req.method, "DELETE");
    assert_eq!(req.path, format!("/cluster/peer/{BIG}"));
    assert_eq!(req.query, None, "no force parameter for a safe removal");

    let (base, seen) = serve_ok(json!(true)).await;
    let peer = client.peer(&base).unwrap();
    peer.remove_peer(ODD, RemovePeer::Force, None)
        .await
        .unwrap();
    let req = only(&seen);
    assert_eq!(req.path, format!("/cluster/peer/{ODD}"));
    assert_eq!(req.query.as_deref(), Some("force=true"));

    let (base, seen) = serve_ok(json!(true)).await;
    let peer = client.peer(&base).unwrap();
    peer.remove_peer(7, RemovePeer::Safe, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(only(&seen).query.as_deref(), Some("timeout=10"));
}

#[tokio::test]
async fn collection_requests_shapes() {
    let (client, _) = client();

    let (base, seen) = serve_ok(json!({"collections": [{"name": "a"}, {"name": "b"}]})).await;
    let names = client
        .peer(&base)
        .unwrap()
        .list_collections()
        .await
        .unwrap();
    assert_eq!(names, vec!["a".to_owned(), "b".to_owned()]);
    let req = only(&seen);
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/collections")
    );

    let (base, seen) = serve_ok(json!(true)).await;
    let create = CreateCollection {
        vectors: Some(VectorsConfig::Named(
            [(
                "text".to_owned(),
                VectorParams {
                    size: 384,
                    distance: Distance::Cosine,
                    on_disk: Some(true),
                    hnsw_config: None,
                    quantization_config: None,
                },
            )]
            .into_iter()
            .collect(),
        )),
        shard_number: Some(6),
        replication_factor: Some(2),
        write_consistency_factor: Some(1),
        on_disk_payload: Some(true),
        hnsw_config: Some(HnswConfigDiff {
            m: Some(16),
            ef_construct: Some(100),
            ..Default::default()
        }),
        quantization_config: Some(json!({"scalar": {"type": "int8", "always_ram": true}})),
    };
    let peer = client.peer(&base).unwrap();
    assert!(peer
        .create_collection("docs", &create, Some(Duration::from_secs(30)))
        .await
        .unwrap());
    let req = only(&seen);
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("PUT", "/collections/docs")
    );
    assert_eq!(req.query.as_deref(), Some("timeout=30"));
    assert_eq!(
        req.json(),
        json!({
            "vectors": {"text": {"size": 384, "distance": "Cosine", "on_disk": true}},
            "shard_number": 6, "replication_factor": 2, "write_consistency_factor": 1,
            "on_disk_payload": true, "hnsw_config": {"m": 16, "ef_construct": 100},
            "quantization_config": {"scalar": {"type": "int8", "always_ram": true}}
        })
    );

    let (base, seen) = serve_ok(json!(false)).await;
    let deleted = client
        .peer(&base)
        .unwrap()
        .delete_collection("docs", None)
        .await
        .unwrap();
    assert!(!deleted);
    let req = only(&seen);
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("DELETE", "/collections/docs")
    );
    assert!(req.body.is_empty());

    let (base, seen) = serve_ok(json!({"count": 123456789012u64})).await;
    let count = client
        .peer(&base)
        .unwrap()
        .count_points("docs", true)
        .await
        .unwrap();
    assert_eq!(count, 123456789012);
    let req = only(&seen);
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/collections/docs/points/count")
    );
    assert_eq!(req.json(), json!({"exact": true}));

    let snapshot = json!({"name": "docs-1-2025-01-01-00-00-00.snapshot",
                          "creation_time": "2025-01-01T00:00:00", "size": 1048576,
                          "checksum": "abc123"});
    let (base, seen) = serve_ok(snapshot.clone()).await;
    let made = client
        .peer(&base)
        .unwrap()
        .create_snapshot("docs")
        .await
        .unwrap();
    assert_eq!(made.size, 1048576);
    assert_eq!(made.checksum.as_deref(), Some("abc123"));
    let req = only(&seen);
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/collections/docs/snapshots")
    );
    assert_eq!(req.query.as_deref(), Some("wait=true"));

    let (base, seen) = serve_ok(json!([snapshot, {"name": "x.snapshot", "size": 0}])).await;
    let list = client
        .peer(&base)
        .unwrap()
        .list_snapshots("docs")
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].creation_time, None);
    let req = only(&seen);
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/collections/docs/snapshots")
    );
}

#[tokio::test]
async fn collection_info_and_cluster_info_over_http() {
    let (client, _) = client();
    let (base, seen) = serve_ok(json!({
        "status": "yellow", "optimizer_status": {"error": "disk full"},
        "indexed_vectors_count": 10, "points_count": null, "segments_count": 2,
        "config": {"params": {}, "hnsw_config": {}, "optimizer_config": {}},
        "payload_schema": {}
    }))
    .await;
    let info = client
        .peer(&base)
        .unwrap()
        .collection_info("docs")
        .await
        .unwrap();
    assert_eq!(info.status, CollectionStatus::Yellow);
    assert_eq!(info.points_count, None);
    assert_eq!(info.optimizer_status, json!({"error": "disk full"}));
    assert_eq!(only(&seen).path, "/collections/docs");

    // Text, so that the big ids reach the client unparsed.
    let body = format!(
        r#"{{"result": {{"peer_id": {BIG}, "shard_count": 1,
             "local_shards": [{{"shard_id": 0, "points_count": 5, "state": "SomethingNew"}}],
             "remote_shards": [{{"shard_id": 0, "peer_id": {ODD}, "state": "Dead"}}],
             "shard_transfers": []}},
            "status": "ok", "time": 0.0001}}"#
    );
    let (base, seen) = serve(200, "application/json", body).await;
    let info = client
        .peer(&base)
        .unwrap()
        .collection_cluster_info("docs")
        .await
        .unwrap();
    assert_eq!(info.peer_id, BIG);
    assert_eq!(
        info.local_shards[0].state,
        ReplicaState::Unknown("SomethingNew".into())
    );
    assert_eq!(info.remote_shards[0].peer_id, ODD);
    assert_eq!(info.remote_shards[0].state, ReplicaState::Dead);
    assert_eq!(only(&seen).path, "/collections/docs/cluster");

    let body = format!(
        r#"{{"result": {{"status": "enabled", "peer_id": {BIG},
             "peers": {{"{BIG}": {{"uri": "http://q-0:6335/"}}, "{ODD}": {{"uri": "http://q-1:6335/"}}}},
             "raft_info": {{"term": 3, "commit": 99, "pending_operations": 0, "leader": {BIG},
                            "role": "Leader", "is_voter": true}},
             "consensus_thread_status": {{"consensus_thread_status": "stopped"}},
             "message_send_failures": {{}}}},
            "status": "ok", "time": 0.0001}}"#
    );
    let (base, _) = serve(200, "application/json", body).await;
    let status = client.peer(&base).unwrap().cluster_info().await.unwrap();
    let cluster = status.enabled().unwrap();
    assert_eq!(cluster.peer_id, BIG);
    assert_eq!(cluster.raft_info.leader, Some(BIG));
    assert_eq!(cluster.raft_info.role, Some(StateRole::Leader));
    assert_eq!(
        cluster.peers.keys().copied().collect::<Vec<_>>(),
        vec![ODD, BIG]
    );
    assert_eq!(
        cluster.consensus_thread_status,
        ConsensusThreadStatus::Stopped
    );
}

#[tokio::test]
async fn names_are_one_encoded_segment_and_base_paths_are_kept() {
    let (client, _) = client();
    let (base, seen) = serve_ok(json!({"count": 0})).await;
    client
        .peer(&format!("{base}/qdrant/?stale=query"))
        .unwrap()
        .count_points("a/b c", false)
        .await
        .unwrap();
    let req = only(&seen);
    assert_eq!(req.path, "/qdrant/collections/a%2Fb%20c/points/count");
    assert_eq!(req.query, None);
    assert_eq!(req.json(), json!({"exact": false}));
}

#[test]
fn invalid_base_urls_are_config_errors() {
    let (client, _) = client();
    for bad in ["not a url", "ftp://q:6333", "unix:/run/q.sock", "http://"] {
        assert!(
            matches!(client.peer(bad), Err(ConfigError::InvalidBaseUrl { .. })),
            "{bad}"
        );
    }
    let peer = client.peer("http://q-0.q-headless.ns:6333").unwrap();
    assert_eq!(peer.base_url(), "http://q-0.q-headless.ns:6333/");
    assert_eq!(peer.timeout(), Duration::from_secs(5));
    assert_eq!(
        peer.with_timeout(Duration::from_secs(60)).timeout(),
        Duration::from_secs(60)
    );
}

// ---------------------------------------------------------------------------------------------
// Health

#[tokio::test]
async fn health_endpoints_are_plain_text() {
    let (client, registry) = client();
    for (path, call) in ["readyz", "livez", "healthz"].into_iter().zip(0..) {
        let (base, seen) = serve(200, "text/plain", "healthz check passed".into()).await;
        let peer = client.peer(&base).unwrap();
        let result = match call {
            0 => peer.readyz().await,
            1 => peer.livez().await,
            _ => peer.healthz().await,
        };
        result.unwrap();
        let req = only(&seen);
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("GET", &*format!("/{path}"))
        );
    }
    let (base, _) = serve(503, "text/plain", "some shards are not ready".into()).await;
    let err = client.peer(&base).unwrap().readyz().await.unwrap_err();
    assert!(
        matches!(&err, QdrantError::Status { status: 503, message, .. } if message == "some shards are not ready"),
        "{err:?}"
    );
    assert_eq!(requests(&registry, "GET /readyz", "ok"), 1);
    assert_eq!(requests(&registry, "GET /readyz", "server_error"), 1);
    assert_eq!(requests(&registry, "GET /livez", "ok"), 1);
    assert_eq!(durations(&registry, "GET /readyz"), 2);
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn http_errors_map_to_variants_with_the_server_message() {
    let (client, registry) = client_with(Some("wrong"), Duration::from_secs(5));

    let (base, _) = serve_error(401, "Unauthorized: Invalid API key or JWT").await;
    let err = client
        .peer(&base)
        .unwrap()
        .cluster_info()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QdrantError::Unauthorized { endpoint: "GET /cluster", message }
                 if message == "Unauthorized: Invalid API key or JWT"),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.category(), "unauthorized");
    assert!(!err.is_unreachable());

    let (base, _) = serve_error(403, "Forbidden: Write access denied").await;
    let op = ClusterOperation::DropReplica(Replica {
        shard_id: 0,
        peer_id: 1,
    });
    let err = client
        .peer(&base)
        .unwrap()
        .update_collection_cluster("c", &op, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QdrantError::Forbidden { message, .. } if message == "Forbidden: Write access denied"),
        "{err:?}"
    );
    assert_eq!(err.category(), "forbidden");

    let (base, _) = serve_error(404, "Not found: Collection `gone` doesn't exist!").await;
    let err = client
        .peer(&base)
        .unwrap()
        .collection_cluster_info("gone")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(
        err.message(),
        Some("Not found: Collection `gone` doesn't exist!")
    );
    assert_eq!(err.endpoint(), "GET /collections/{name}/cluster");

    let (base, _) = serve_error(500, "Service internal error: shard 3 is not found").await;
    let err = client
        .peer(&base)
        .unwrap()
        .remove_peer(1, RemovePeer::Safe, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QdrantError::Status { status: 500, message, .. }
                 if message == "Service internal error: shard 3 is not found"),
        "{err:?}"
    );
    assert_eq!(err.category(), "server_error");
    assert!(err.to_string().contains("shard 3 is not found"));

    let (base, _) = serve_error(400, "Bad request: Shard 9 does not exist").await;
    let err = client
        .peer(&base)
        .unwrap()
        .update_collection_cluster("c", &op, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QdrantError::Status { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(err.category(), "client_error");

    // Not Qdrant's envelope (a proxy in between): the body text, shortened.
    let (base, _) = serve(502, "text/html", "<html>bad gateway</html>".into()).await;
    let err = client.peer(&base).unwrap().livez().await.unwrap_err();
    assert_eq!(err.message(), Some("<html>bad gateway</html>"));
    let (base, _) = serve(500, "text/plain", "é".repeat(1000)).await;
    let err = client.peer(&base).unwrap().livez().await.unwrap_err();
    assert!(err.message().unwrap().len() <= 512 + '…'.len_utf8());
    let (base, _) = serve(503, "text/plain", String::new()).await;
    let err = client.peer(&base).unwrap().livez().await.unwrap_err();
    assert_eq!(err.message(), Some("Service Unavailable"));

    assert_eq!(requests(&registry, "GET /cluster", "unauthorized"), 1);
    assert_eq!(
        requests(&registry, "POST /collections/{name}/cluster", "forbidden"),
        1
    );
    assert_eq!(
        requests(
            &registry,
            "POST /collections/{name}/cluster",
            "client_error"
        ),
        1
    );
    assert_eq!(
        requests(&registry, "GET /collections/{name}/cluster", "not_found"),
        1
    );
    assert_eq!(
        requests(&registry, "DELETE /cluster/peer/{peer_id}", "server_error"),
        1
    );
}

#[tokio::test]
async fn undecodable_answers_are_decode_errors() {
    let (client, registry) = client();
    let (base, _) = serve(200, "application/json", "not json".into()).await;
    let err = client
        .peer(&base)
        .unwrap()
        .cluster_info()
        .await
        .unwrap_err();
    assert!(
        matches!(err, QdrantError::Decode { status: 200, .. }),
        "{err:?}"
    );
    // Envelope fine, result of the wrong shape.
    let (base, _) = serve_ok(json!({"peer_id": "one"})).await;
    let err = client
        .peer(&base)
        .unwrap()
        .collection_cluster_info("c")
        .await
        .unwrap_err();
    assert_eq!(err.category(), "decode");
    assert_eq!(requests(&registry, "GET /cluster", "decode"), 1);
}

#[tokio::test]
async fn refused_connection_is_a_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (client, registry) = client();
    let err = client
        .peer(&format!("http://{addr}"))
        .unwrap()
        .cluster_info()
        .await
        .unwrap_err();
    assert!(matches!(err, QdrantError::Transport { .. }), "{err:?}");
    assert!(err.is_unreachable());
    assert_eq!(err.status(), None);
    assert_eq!(requests(&registry, "GET /cluster", "transport"), 1);
}

/// Accepts connections and never answers.
async fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_deadline() {
    let timeout = Duration::from_millis(300);
    let (client, registry) = client_with(None, timeout);
    let base = black_hole().await;
    let started = Instant::now();
    let err = client
        .peer(&base)
        .unwrap()
        .cluster_info()
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(err, QdrantError::Timeout { timeout: t, endpoint: "GET /cluster" } if t == timeout),
        "{err:?}"
    );
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(err.is_unreachable());
    assert_eq!(requests(&registry, "GET /cluster", "timeout"), 1);

    // A per-handle deadline applies too.
    let started = Instant::now();
    let err = client
        .peer(&base)
        .unwrap()
        .with_timeout(Duration::from_millis(100))
        .readyz()
        .await
        .unwrap_err();
    assert!(matches!(err, QdrantError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_server_stalling_mid_body_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"result\":",
                )
                .await;
            held.push(socket);
        }
    });
    let (client, _) = client_with(None, Duration::from_millis(300));
    let started = Instant::now();
    let err = client
        .peer(&format!("http://{addr}"))
        .unwrap()
        .cluster_info()
        .await
        .unwrap_err();
    assert!(matches!(err, QdrantError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

// ---------------------------------------------------------------------------------------------
// Set-up, metrics registration, TLS

#[test]
fn metrics_register_once_per_registry() {
    let registry = Registry::new();
    QdrantMetrics::new(&registry).unwrap();
    assert!(QdrantMetrics::new(&registry).is_err());
    assert!(ENDPOINTS.contains(&"POST /collections/{name}/cluster"));
    assert!(ENDPOINTS.iter().all(|e| !e.contains("//")));
    assert!(RESULTS.contains(&"ok"));
}

#[test]
fn bad_configuration_is_rejected() {
    let metrics = QdrantMetrics::new(&Registry::new()).unwrap();
    let config = |api_key: Option<&str>, ca_pem: Option<&[u8]>| ClientConfig {
        timeout: Duration::from_secs(1),
        api_key: api_key.map(str::to_owned),
        ca_pem: ca_pem.map(<[u8]>::to_vec),
    };
    let err = QdrantClient::new(config(Some("bad\nkey"), None), metrics.clone()).unwrap_err();
    assert!(matches!(err, ConfigError::InvalidApiKey), "{err:?}");
    let err = QdrantClient::new(config(None, Some(b"no pem here")), metrics.clone()).unwrap_err();
    assert!(matches!(err, ConfigError::CaEmpty), "{err:?}");
    let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let err = QdrantClient::new(config(None, Some(broken)), metrics.clone()).unwrap_err();
    assert!(matches!(err, ConfigError::CaPem(_)), "{err:?}");
    // Without a CA, the platform's roots; no process-wide crypto provider is needed.
    QdrantClient::new(config(None, None), metrics).unwrap();
}

/// A throwaway CA and a server certificate for `localhost` and 127.0.0.1.
struct TestPki {
    ca_pem: String,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn test_pki() -> TestPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "qdrant test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        server_cert: server_cert.der().clone(),
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
    }
}

/// An HTTPS server that answers every request with `body` (JSON, 200) and records the request
/// heads it read.
async fn serve_tls(pki: &TestPki, body: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let body = body.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, heads)
}

#[tokio::test]
async fn https_with_the_cluster_ca() {
    let pki = test_pki();
    let body = json!({"result": {"status": "disabled"}, "status": "ok", "time": 0.0}).to_string();
    let (port, heads) = serve_tls(&pki, body).await;
    let registry = Registry::new();
    let client = QdrantClient::new(
        ClientConfig {
            timeout: Duration::from_secs(5),
            api_key: Some("tls-key".into()),
            ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        },
        QdrantMetrics::new(&registry).unwrap(),
    )
    .unwrap();
    let status = client
        .peer(&format!("https://127.0.0.1:{port}"))
        .unwrap()
        .cluster_info()
        .await
        .unwrap();
    assert_eq!(status, ClusterStatus::Disabled);
    let head = heads.lock().unwrap()[0].to_lowercase();
    assert!(head.starts_with("get /cluster http/1.1"), "{head}");
    assert!(head.contains("api-key: tls-key"), "{head}");

    // A certificate not signed by the configured CA is refused.
    let other = test_pki();
    let stranger = QdrantClient::new(
        ClientConfig {
            timeout: Duration::from_secs(5),
            api_key: None,
            ca_pem: Some(other.ca_pem.into_bytes()),
        },
        QdrantMetrics::new(&Registry::new()).unwrap(),
    )
    .unwrap();
    let err = stranger
        .peer(&format!("https://127.0.0.1:{port}"))
        .unwrap()
        .cluster_info()
        .await
        .unwrap_err();
    assert!(matches!(err, QdrantError::Transport { .. }), "{err:?}");
    assert_eq!(
        heads.lock().unwrap().len(),
        1,
        "no request after a failed handshake"
    );
}

#[tokio::test]
async fn https_by_host_name() {
    let pki = test_pki();
    let body = json!({"result": {"status": "disabled"}, "status": "ok", "time": 0.0}).to_string();
    let (port, _) = serve_tls(&pki, body).await;
    let client = QdrantClient::new(
        ClientConfig {
            timeout: Duration::from_secs(5),
            api_key: None,
            ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        },
        QdrantMetrics::new(&Registry::new()).unwrap(),
    )
    .unwrap();
    let status = client
        .peer(&format!("https://localhost:{port}"))
        .unwrap()
        .cluster_info()
        .await
        .unwrap();
    assert_eq!(status, ClusterStatus::Disabled);
}

#[tokio::test]
async fn without_system_roots_the_client_still_builds_and_https_fails_cleanly() {
    let no_roots = |_| Err(rustls::Error::General("no system roots".into()));
    let tls = super::client::tls_config(None, no_roots).unwrap();
    let config = ClientConfig {
        timeout: Duration::from_secs(5),
        api_key: None,
        ca_pem: None,
    };
    let client =
        QdrantClient::with_tls(config, QdrantMetrics::new(&Registry::new()).unwrap(), tls).unwrap();

    // Plain http works.
    let (base, _) = serve_ok(json!({"status": "disabled"})).await;
    client.peer(&base).unwrap().cluster_info().await.unwrap();

    // https is refused at the handshake, as a transport error.
    let pki = test_pki();
    let (port, heads) = serve_tls(&pki, "{}".into()).await;
    let err = client
        .peer(&format!("https://127.0.0.1:{port}"))
        .unwrap()
        .cluster_info()
        .await
        .unwrap_err();
    assert!(matches!(err, QdrantError::Transport { .. }), "{err:?}");
    assert!(heads.lock().unwrap().is_empty());
}
