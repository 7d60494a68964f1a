//! The `QdrantCluster` API (`qdrant.operator/v1alpha1`).
//!
//! Field names, defaults and the `readApikey` rule match the older JavaScript operator, so its
//! users' manifests apply unchanged. Doc comments here become the schema descriptions that
//! `kubectl explain` prints, so they are written for the operator's users.

use k8s_openapi::api::core::v1::{
    Container, NodeAffinity, PodAntiAffinity, Toleration, TopologySpreadConstraint, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The desired state of a Qdrant cluster.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "qdrant.operator",
    version = "v1alpha1",
    kind = "QdrantCluster",
    plural = "qdrantclusters",
    shortname = "qc",
    namespaced,
    status = "QdrantClusterStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.qdrantStatus"),
    printcolumn(name = "Peers", type_ = "integer", json_path = ".status.qdrant.peerCount"),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.qdrant.raftLeader"),
    printcolumn(name = "Health", type_ = "string", json_path = ".status.qdrant.health"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("!has(self.readApikey) || self.readApikey == 'false' || (has(self.apikey) && self.apikey != 'false')").message("spec.readApikey can be used only with spec.apikey enabled"))]
#[serde(rename_all = "camelCase")]
pub struct QdrantClusterSpec {
    /// Number of Qdrant peers (pods). At least 1. Scaling down removes the highest ordinals.
    #[schemars(range(min = 1))]
    pub replicas: i32,

    /// Qdrant container image, for example `qdrant/qdrant:v1.16.3`.
    #[schemars(length(min = 1))]
    pub image: String,

    /// API key for full access: `'false'` turns authentication off, `'true'` generates a random key once (kept in the Secret `<name>-apikey` and never regenerated), and any other value is used as the key itself.
    #[serde(default = "default_false")]
    pub apikey: String,

    /// Read-only API key, with the same three forms as `apikey`. Only allowed when `apikey` is enabled. Stored in the Secret `<name>-read-apikey`.
    #[serde(default = "default_false")]
    pub read_apikey: String,

    /// Free-form Qdrant configuration, merged over the operator's defaults into `production.yaml` (for example `{storage: {performance: {max_search_threads: 2}}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<serde_json::Value>,

    /// Type of the client Service `<name>`: ClusterIP, NodePort or LoadBalancer.
    #[serde(default)]
    pub service: ServiceType,

    /// After a scale-up, move shard replicas so that every peer holds about as many, and copy shards that have fewer replicas than their collection's replication factor. Nothing is ever dropped. `false` leaves the placement to you.
    #[serde(default = "default_true")]
    pub rebalance: bool,

    /// Persistent storage for `/qdrant/storage`. When absent, data lives in an emptyDir and is lost with the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,

    /// CPU and memory for the Qdrant container, as Kubernetes quantities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,

    /// TLS for the REST, gRPC and peer-to-peer ports.
    #[serde(default = "default_tls")]
    pub tls: Tls,

    /// Extra containers run beside Qdrant in every pod.
    #[serde(default)]
    pub sidecar_containers: Vec<Container>,

    /// Extra volumes added to every pod.
    #[serde(default)]
    pub additional_volumes: Vec<Volume>,

    /// Extra mounts for the Qdrant container; each must name a volume from `additionalVolumes`.
    #[serde(default)]
    pub additional_volume_mounts: Vec<VolumeMount>,

    /// Tolerations for the Qdrant pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Node affinity for the Qdrant pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,

    /// Pod anti-affinity for the Qdrant pods, for example to spread peers over nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_anti_affinity: Option<PodAntiAffinity>,

    /// Topology spread constraints for the Qdrant pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,

    /// Scheduled volume snapshots. Accepted for compatibility; not yet acted upon, which the `SnapshotsSupported` condition reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshots: Option<VolumeSnapshots>,
}

fn default_false() -> String {
    "false".into()
}

fn default_true() -> bool {
    true
}

fn default_tls() -> Tls {
    Tls { enabled: false, secret_name: None }
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "Free-form Qdrant configuration, merged over the operator's defaults into production.yaml."
    })
}

/// Type of the client Service.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Persistent storage for Qdrant's data directory.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Persistence {
    /// Size of each peer's volume, as a Kubernetes quantity such as `10Gi`.
    pub size: String,
    /// StorageClass of the volumes; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// VolumeSnapshotClass used for volume snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_class_name: Option<String>,
}

/// Requests and limits for the Qdrant container.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
pub struct Resources {
    /// Upper bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CpuMemory>,
    /// Guaranteed amounts, used for scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<CpuMemory>,
}

/// CPU and memory quantities.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
pub struct CpuMemory {
    /// CPU, for example `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory, for example `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// TLS settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// Serve REST, gRPC and peer traffic over TLS.
    #[serde(default)]
    pub enabled: bool,
    /// Secret holding `cert.pem`, `key.pem` and `cacert.pem`. Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// Volume snapshot settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshots {
    /// Take scheduled snapshots.
    #[serde(default)]
    pub enabled: bool,
    /// VolumeSnapshotClass to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_class_name: Option<String>,
    /// Cron schedule, for example `0 3 * * *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How many snapshots to keep.
    #[serde(default = "default_retention")]
    pub retention_count: i32,
    /// Take one snapshot now.
    #[serde(default)]
    pub create_now: bool,
}

fn default_retention() -> i32 {
    7
}

/// The observed state of a Qdrant cluster.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QdrantClusterStatus {
    /// Phase: Pending, Running, Healthy, OperationInProgress or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdrant_status: Option<Phase>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods the StatefulSet has created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods that are Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Label selector of the Qdrant pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Machine-readable reason for the phase, such as `AllReplicasReady` or `InvalidSpec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable explanation of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Ready, Progressing, Degraded, Healthy and SnapshotsSupported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Qdrant's own view of the cluster (consensus, peers, shard replicas), as last read from the REST API of every Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdrant: Option<QdrantHealthStatus>,
    /// The Qdrant operation under way, such as a scale-down draining a peer; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationStatus>,
}

/// A Qdrant operation under way. It is kept here, not in the operator's memory, so that the
/// next leader resumes it: every step is derived from Qdrant's state plus this.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// `ScaleDown`, `ScaleUp` or `RollingRestart`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Pods the StatefulSet had when the operation began. After a scale-down, the volumes of the Pods from `spec.replicas` up to this are deleted once their peers are out of the cluster.
    pub from_replicas: i32,
    /// The step under way, or what it waits for, in words.
    pub step: String,
    /// The Pod whose peer is being drained, or the Pod being restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The shard transfer being waited for. One that reports no new progress for `--transfer-stall-timeout` is aborted, and started again by the next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferStatus>,
}

/// A shard transfer an operation waits for, and since when it has made no visible progress.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferStatus {
    pub collection: String,
    pub shard_id: u32,
    /// Source peer id, as a decimal string (peer ids exceed what JSON numbers hold exactly).
    pub from: String,
    /// Target peer id, as a decimal string.
    pub to: String,
    /// When the operator first saw the transfer with its current progress.
    pub since: Time,
    /// The source peer's progress report, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

// No observation time is kept here on purpose: an unchanged cluster must give a byte-identical
// status, or the operator would write the status on every reconcile.
/// Qdrant's view of the cluster, from `GET /cluster` and `GET /collections/{name}/cluster` on every Pod.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QdrantHealthStatus {
    /// `Healthy` when every Pod is a voting peer in consensus, the Raft leader is known and every shard replica is Active; else `Degraded`, and the `Healthy` condition says why.
    pub health: String,
    /// Number of peers in Qdrant's consensus, as the most advanced peer that answered sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_count: Option<i32>,
    /// The peers in Qdrant's consensus, each with the Pod it runs in (no `pod` when no Pod of this cluster matches it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<QdrantPeerStatus>,
    /// Pod of Qdrant's Raft leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_leader: Option<String>,
    /// Peer id of Qdrant's Raft leader, as a decimal string (peer ids exceed 2^53, which JSON numbers do not hold exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_leader_peer_id: Option<String>,
    /// Raft term of the consensus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<i64>,
    /// Raft commit index of the consensus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<i64>,
    /// Consensus operations proposed but not yet applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_operations: Option<i64>,
    /// Number of collections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<i32>,
    /// Number of shard replicas, over all collections, that are not Active (unknown states included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_not_active: Option<i64>,
    /// The first few replicas that are not Active, as `collection/shard N@peer ID: State`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas_not_active_sample: Vec<String>,
}

/// A peer of Qdrant's consensus.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QdrantPeerStatus {
    /// The Pod this peer runs in; absent when no Pod of this cluster matches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Qdrant's peer id, as a decimal string (peer ids exceed 2^53, which JSON numbers do not hold exactly).
    pub peer_id: String,
    /// The peer's internal (p2p) URI.
    pub uri: String,
    /// The volume this peer was seen answering from: the uid of its Pod's PersistentVolumeClaim, or of the Pod itself without persistence. A peer whose Pod runs on another volume now lost its data, and is replaced (see `ReplaceLostPeer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
}

/// The phase of a Qdrant cluster, as the older operator's suites read it.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Phase {
    Pending,
    Running,
    Healthy,
    OperationInProgress,
    Error,
}

/// The value of `apikey`/`readApikey`, decoded from its three string forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySetting {
    Off,
    Generate,
    Literal(String),
}

impl KeySetting {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "false" => KeySetting::Off,
            "true" => KeySetting::Generate,
            other => KeySetting::Literal(other.to_owned()),
        }
    }
}

impl QdrantClusterSpec {
    pub fn apikey_setting(&self) -> KeySetting {
        KeySetting::parse(&self.apikey)
    }
    pub fn read_apikey_setting(&self) -> KeySetting {
        KeySetting::parse(&self.read_apikey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn crd_yaml_in_crds_is_fresh() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/qdrant.operator_qdrantclusters.yaml");
        let committed = std::fs::read_to_string(path).unwrap();
        let generated = serde_yaml_ng::to_string(&QdrantCluster::crd()).unwrap();
        assert!(committed == generated, "crds/ is stale: run `make crds` and commit the result");
    }

    #[test]
    fn defaults_of_the_older_operator() {
        let spec: QdrantClusterSpec = serde_json::from_value(serde_json::json!({"replicas": 1, "image": "i"})).unwrap();
        assert_eq!((spec.apikey.as_str(), spec.read_apikey.as_str()), ("false", "false"));
        assert_eq!(spec.service, ServiceType::ClusterIP);
        assert!(!spec.tls.enabled);
        assert!(spec.sidecar_containers.is_empty() && spec.additional_volumes.is_empty());
        let vs: VolumeSnapshots = serde_json::from_value(serde_json::json!({"enabled": true})).unwrap();
        assert_eq!(vs.retention_count, 7);
    }

    #[test]
    fn schema_carries_the_cel_rule_printer_columns_and_subresources() {
        let crd = serde_json::to_value(QdrantCluster::crd()).unwrap();
        let v = &crd["spec"]["versions"][0];
        let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["x-kubernetes-validations"][0]["message"], "spec.readApikey can be used only with spec.apikey enabled");
        assert_eq!(spec["properties"]["replicas"]["minimum"].as_f64(), Some(1.0));
        assert_eq!(spec["properties"]["apikey"]["default"], "false");
        let cols: Vec<_> = v["additionalPrinterColumns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
        assert_eq!(cols, ["Replicas", "Ready", "Status", "Peers", "Leader", "Health", "Age"]);
        assert_eq!(v["subresources"]["scale"]["specReplicasPath"], ".spec.replicas");
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "qc");
    }
}
