//! The `QdrantCluster` API (`qdrant.operator/v1alpha1`).
//!
//! Field names, defaults and the `readApikey` rule match the older JavaScript operator, so its
//! users' manifests apply unchanged. Doc comments here become the schema descriptions that
//! `kubectl explain` prints, so they are written for the operator's users.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, LocalObjectReference, NodeAffinity, PodAntiAffinity, Toleration, TopologySpreadConstraint, Volume,
    VolumeMount,
};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
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
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("!has(self.readApikey) || self.readApikey == 'false' || (has(self.apikey) && self.apikey != 'false') || has(self.apikeySecretKeyRef)").message("spec.readApikey can be used only with spec.apikey enabled"))]
#[x_kube(validation = Rule::new("!has(self.readApikeySecretKeyRef) || (has(self.apikey) && self.apikey != 'false') || has(self.apikeySecretKeyRef)").message("spec.readApikeySecretKeyRef can be used only with spec.apikey enabled"))]
#[x_kube(validation = Rule::new("!has(self.apikeySecretKeyRef) || !has(self.apikey) || self.apikey == 'false'").message("set spec.apikey or spec.apikeySecretKeyRef, not both"))]
#[x_kube(validation = Rule::new("!has(self.readApikeySecretKeyRef) || !has(self.readApikey) || self.readApikey == 'false'").message("set spec.readApikey or spec.readApikeySecretKeyRef, not both"))]
#[serde(rename_all = "camelCase")]
pub struct QdrantClusterSpec {
    /// Number of Qdrant peers (pods). At least 1. Scaling down removes the highest ordinals.
    #[schemars(range(min = 1))]
    pub replicas: i32,

    /// Qdrant container image, for example `qdrant/qdrant:v1.16.3`.
    #[schemars(length(min = 1))]
    pub image: String,

    /// API key for full access: `'false'` turns authentication off, `'true'` generates a random key once (kept in the Secret `<name>-apikey` and never regenerated; a key already in that Secret is kept), and any other value is used as the key itself. A key written here is readable by anyone who can read QdrantClusters: prefer `apikeySecretKeyRef`.
    #[serde(default = "default_false")]
    pub apikey: String,

    /// Read-only API key, with the same three forms as `apikey`. Only allowed when `apikey` is enabled. Stored in the Secret `<name>-read-apikey`.
    #[serde(default = "default_false")]
    pub read_apikey: String,

    /// Takes the API key from a key of an existing Secret in the cluster's namespace, instead of `apikey` (leave that `'false'`). The safe way to set a chosen key: only those who can read that Secret see it. Changing the Secret rolls the Pods, one at a time, onto the new key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apikey_secret_key_ref: Option<SecretKeyRef>,

    /// Takes the read-only API key from a key of an existing Secret, instead of `readApikey`. Needs an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_apikey_secret_key_ref: Option<SecretKeyRef>,

    /// Stops the operator from acting on this cluster: while true it writes nothing to the cluster's objects or to Qdrant (an operation under way waits where it is), and only reports `Paused` in status. For incidents; set it back to false, or remove it, to resume.
    #[serde(default)]
    pub paused: bool,

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

    /// Node labels the Qdrant pods must run on (the Pod's `nodeSelector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// PriorityClass of the Qdrant pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Secrets for pulling the Qdrant image (and sidecars' images) from a private registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,

    /// Extra annotations on the Qdrant pods (for example for a metrics scraper or a service mesh). Changing them restarts the pods, one at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, String>>,

    /// Annotations on the client Service `<name>`, for example a cloud load balancer's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_annotations: Option<BTreeMap<String, String>>,

    /// Extra environment variables for the Qdrant container, such as `QDRANT__LOG_LEVEL`. The operator's own (`QDRANT__CLUSTER__ENABLED`, `QDRANT_INIT_FILE_PATH`) cannot be set here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,

    /// A startup probe on Qdrant's `/readyz`: Kubernetes holds the liveness probe back until it passes, so a peer that loads large collections is not killed while it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<StartupProbe>,

    /// Keep `/qdrant/snapshots` on a PersistentVolumeClaim per pod (`qdrant-snapshots-<pod>`) instead of an emptyDir, so local snapshots survive a pod's restart. Adding it to an existing cluster re-creates the StatefulSet without its pods (they keep running), and each pod gets its claim when it next restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_persistence: Option<SnapshotPersistence>,

    /// A NetworkPolicy `<name>` for the Qdrant pods: the REST and gRPC ports open to `clientFrom` (everyone when empty), and the peer-to-peer port 6335 open only to the cluster's own pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySettings>,

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
    Tls { enabled: false, secret_name: None, certificate_validity: None, renew_before: None }
}

/// A key of a Secret in the cluster's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key in the Secret whose value is the API key.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// The startup probe's timing.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartupProbe {
    /// Add the probe.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between probes (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub period_seconds: Option<i32>,
    /// Seconds each probe may take (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i32>,
    /// Failed probes before the container is restarted (default 30, so 150 s with the default period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub failure_threshold: Option<i32>,
}

/// The per-pod snapshot volume.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotPersistence {
    /// Size of each pod's snapshot volume, as a Kubernetes quantity such as `20Gi`.
    pub size: String,
    /// StorageClass of the volumes; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// The cluster's NetworkPolicy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySettings {
    /// Create the NetworkPolicy. When false, a NetworkPolicy the operator made is deleted.
    #[serde(default)]
    pub enabled: bool,
    /// Who may reach the REST (6333) and gRPC (6334) ports; everyone when empty. Include the operator's namespace: it reads Qdrant's state over REST.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_from: Vec<NetworkPolicyPeer>,
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
    /// Size of each peer's volume, as a Kubernetes quantity such as `10Gi`. Raising it expands every existing volume in place (the StorageClass must allow volume expansion) and re-creates the StatefulSet without its pods, which keep running; lowering it is refused.
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
    /// Secret holding `cert.pem`, `key.pem` and `cacert.pem`, managed by you. When absent, the operator makes a CA (Secret `<name>-ca`) and a certificate for the client Service, the headless Service and every pod name (Secret `<name>-server-cert`), and renews the certificate before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// How long a certificate the operator makes is valid, as a duration such as `8760h` or `90d` (default 365 days). Not used with `secretName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_validity: Option<String>,
    /// How long before its expiry the operator renews the certificate it made, as a duration such as `720h` (default 30 days, at most the validity). Qdrant reads the renewed files within `tls.cert_ttl` (set to an hour unless `config` sets it), without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
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
    /// From a key of the user's Secret (`apikeySecretKeyRef`, `readApikeySecretKeyRef`).
    FromSecret(SecretKeyRef),
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
        match &self.apikey_secret_key_ref {
            Some(r) => KeySetting::FromSecret(r.clone()),
            None => KeySetting::parse(&self.apikey),
        }
    }
    pub fn read_apikey_setting(&self) -> KeySetting {
        match &self.read_apikey_secret_key_ref {
            Some(r) => KeySetting::FromSecret(r.clone()),
            None => KeySetting::parse(&self.read_apikey),
        }
    }

    /// Whether the operator makes the TLS certificates (TLS on, no `secretName`).
    pub fn generated_tls(&self) -> bool {
        self.tls.enabled && self.tls.secret_name.as_deref().unwrap_or("").is_empty()
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
        assert_eq!(cols, ["Replicas", "Ready", "Status", "Peers", "Leader", "Health", "Paused", "Age"]);
        assert_eq!(v["subresources"]["scale"]["specReplicasPath"], ".spec.replicas");
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "qc");
    }
}
