//! The backup APIs (`qdrant.operator/v1alpha1`): `QdrantCollectionBackup`,
//! `QdrantCollectionRestore` and `QdrantCollectionTemplate`.
//!
//! Field names and defaults are the older JavaScript operator's, so its users' manifests apply
//! unchanged; the fields it did not have are marked as this operator's additions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Backups of one Qdrant collection to S3-compatible storage: one now, on a schedule, or both.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[kube(
    group = "qdrant.operator",
    version = "v1alpha1",
    kind = "QdrantCollectionBackup",
    plural = "qdrantcollectionbackups",
    shortname = "qcbackup",
    shortname = "qcbak",
    namespaced,
    status = "QdrantCollectionBackupStatus",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Collection", type_ = "string", json_path = ".spec.collectionName"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.snapshots.backupSchedule"),
    printcolumn(name = "Last Backup", type_ = "date", json_path = ".status.lastSuccessTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct QdrantCollectionBackupSpec {
    /// The QdrantCluster, in this namespace, that holds the collection.
    #[schemars(length(min = 1))]
    pub cluster: String,
    /// The Qdrant collection to back up.
    #[schemars(length(min = 1))]
    pub collection_name: String,
    /// Where backups go and when they are taken.
    pub snapshots: Snapshots,
}

/// S3 settings and triggers, as the older operator named them (`spec.snapshots` of its
/// QdrantCollection and QdrantCollectionBackup).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Snapshots {
    /// The S3 endpoint, e.g. `https://s3.amazonaws.com` or `http://minio.storage:9000`.
    #[serde(rename = "s3EndpointURL")]
    #[schemars(length(min = 1))]
    pub s3_endpoint_url: String,
    /// A Secret in this namespace with the keys `ACCESS_KEY` and `SECRET_KEY`.
    #[schemars(length(min = 1))]
    pub s3_credentials_secret_name: String,
    /// The bucket; it must exist.
    #[schemars(length(min = 1))]
    pub bucket_name: String,
    /// Take one backup for each `metadata.generation` in which this is true.
    #[serde(default)]
    pub backup_now: bool,
    /// A cron schedule (five fields, UTC), e.g. `0 2 * * *`; empty for none.
    #[serde(default)]
    pub backup_schedule: String,
    /// Accepted for compatibility and not acted upon here: restores are QdrantCollectionRestore resources.
    #[serde(default)]
    pub restore_snapshot_name: String,
    /// This operator's addition: the bucket's region (SigV4 signing). Default `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// This operator's addition: a prefix for every object key, e.g. `prod/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// This operator's addition: how many good backups to keep; older ones are deleted after each new good one. Unset: all are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub retention_count: Option<u32>,
}

/// What happened to each backup.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QdrantCollectionBackupStatus {
    /// Recent backups, newest first: every one still kept in the bucket, and the latest failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupRecord>,
    /// The `backupId` of the newest good backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<String>,
    /// When the newest good backup completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<String>,
    /// The schedule time of the newest scheduled backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// The next schedule time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<String>,
    /// The generation whose `backupNow` has been acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_now_generation: Option<i64>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready: the last backup succeeded and the settings are usable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One backup.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// The start time, `YYYY-MM-DD-HH-MM-SS` (UTC).
    pub id: String,
    /// What QdrantCollectionRestore's `backupId` names it by: `<cluster>/<collection>/<id>`.
    pub backup_id: String,
    /// Running, Succeeded or Failed. Only Succeeded backups have a manifest in the bucket.
    pub state: BackupState,
    /// Manual (`backupNow`) or Scheduled.
    pub trigger: String,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Bytes of all its snapshot files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// `s3://<bucket>/<key prefix>/`: the manifest is `manifest.json` there.
    pub location: String,
    /// Snapshot files: one per shard replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pieces: Option<u32>,
    /// Points in the collection when the snapshots were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_count: Option<u64>,
    /// Attempts so far: a leader change resumes a running backup as a new attempt.
    pub attempt: u32,
    /// Why it failed, as a CamelCase word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum BackupState {
    #[default]
    Running,
    Succeeded,
    Failed,
}

/// Recovers a collection from a backup, onto the same cluster or another.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[kube(
    group = "qdrant.operator",
    version = "v1alpha1",
    kind = "QdrantCollectionRestore",
    plural = "qdrantcollectionrestores",
    shortname = "qcrestore",
    shortname = "qcr",
    namespaced,
    status = "QdrantCollectionRestoreStatus",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Collection", type_ = "string", json_path = ".spec.collection"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Points", type_ = "integer", json_path = ".status.pointsCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct QdrantCollectionRestoreSpec {
    /// The Qdrant collection to restore into; created from the backup if missing.
    #[schemars(length(min = 1))]
    pub collection: String,
    /// The QdrantCluster, in this namespace, to restore onto.
    #[schemars(length(min = 1))]
    pub cluster: String,
    /// The backup: `<cluster>/<collection>/<id>`, as a QdrantCollectionBackup's status lists it.
    #[schemars(length(min = 1))]
    pub backup_id: String,
    /// `replace` (the default): each shard's points become the backup's. `merge` is not supported and is reported.
    #[serde(default)]
    pub mode: RestoreMode,
    /// Accepted for compatibility: Qdrant has no write pause, and each shard is replaced at once.
    #[serde(default = "yes")]
    pub pause_writes: bool,
    /// This operator's addition: the QdrantCollectionBackup whose S3 settings to read the backup with. Without it: one whose status lists `backupId`, else the QdrantCollection named `collection`'s `spec.snapshots`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RestoreMode {
    #[default]
    Replace,
    Merge,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QdrantCollectionRestoreStatus {
    /// Pending, InProgress, Completed or Failed. Completed and Failed are final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// This operator's addition: why it failed, as a CamelCase word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Points counted (exactly) after the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_count: Option<u64>,
    /// Points the backup held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_points: Option<u64>,
    /// Shards recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// Attempts so far: a leader change runs the restore again, which is idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum RestorePhase {
    Pending,
    InProgress,
    Completed,
    Failed,
}

/// Defaults that QdrantCollections name with `template` (cluster-scoped, as in the older operator).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[kube(
    group = "qdrant.operator",
    version = "v1alpha1",
    kind = "QdrantCollectionTemplate",
    plural = "qdrantcollectiontemplates",
    shortname = "qct",
    shortname = "qctemplate",
    status = "QdrantCollectionTemplateStatus",
    printcolumn(name = "Shards", type_ = "integer", json_path = ".spec.shards"),
    printcolumn(name = "Replication", type_ = "integer", json_path = ".spec.replicationFactor"),
    printcolumn(name = "Used By", type_ = "integer", json_path = ".status.usageCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct QdrantCollectionTemplateSpec {
    /// The template's name, as the older operator's API took it; collections name the template by `metadata.name`.
    #[schemars(regex(pattern = "^[a-z0-9-]+$"))]
    pub name: String,
    /// Number of shards.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub shards: u32,
    /// Copies of each shard.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub replication_factor: u32,
    /// Keep vectors on disk.
    #[serde(default = "yes")]
    pub on_disk: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<TemplateVectors>,
    /// Backups of the collections that name this template (their `spec.snapshots` says where).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<TemplateBackup>,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct TemplateVectors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<TemplateDistance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<TemplateQuantization>,
}

/// The distances the older operator's templates allowed.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum TemplateDistance {
    Cosine,
    Euclid,
    Dot,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct TemplateQuantization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<ScalarQuantization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<ProductQuantization>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct ScalarQuantization {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<ScalarType>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScalarType {
    Int8,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct ProductQuantization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    X4,
    X8,
    X16,
    X32,
    X64,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateBackup {
    #[serde(default)]
    pub enabled: bool,
    /// Cron schedule (five fields, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Good backups to keep.
    #[serde(default = "seven")]
    #[schemars(range(min = 1))]
    pub retention_count: u32,
}

fn seven() -> u32 {
    7
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QdrantCollectionTemplateStatus {
    /// QdrantCollections that name this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_count: Option<u32>,
    /// When a collection last took settings from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_yaml_in_crds_is_fresh() {
        use kube::CustomResourceExt;
        for (file, crd) in [
            ("qdrant.operator_qdrantcollectionbackups.yaml", QdrantCollectionBackup::crd()),
            ("qdrant.operator_qdrantcollectionrestores.yaml", QdrantCollectionRestore::crd()),
            ("qdrant.operator_qdrantcollectiontemplates.yaml", QdrantCollectionTemplate::crd()),
        ] {
            let committed = std::fs::read_to_string(format!("{}/crds/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_default();
            assert!(committed == serde_yaml_ng::to_string(&crd).unwrap(), "crds/{file} is stale: run `make crds` and commit the result");
        }
    }

    #[test]
    fn the_older_operators_manifests_decode_with_its_defaults() {
        let b: QdrantCollectionBackupSpec = serde_json::from_value(serde_json::json!({"cluster": "my-cluster", "collectionName": "my-collection",
            "snapshots": {"s3EndpointURL": "https://storage.googleapis.com/", "s3CredentialsSecretName": "bucket-credentials", "bucketName": "b", "backupNow": true}})).unwrap();
        assert!(b.snapshots.backup_now && b.snapshots.backup_schedule.is_empty() && b.snapshots.retention_count.is_none());
        let r: QdrantCollectionRestoreSpec = serde_json::from_value(serde_json::json!({"collection": "c", "cluster": "k", "backupId": "k/c/2024-01-21-23-38"})).unwrap();
        assert_eq!((r.mode, r.pause_writes), (RestoreMode::Replace, true));
        let t: QdrantCollectionTemplateSpec = serde_json::from_value(serde_json::json!({"name": "default-vectors", "shards": 6, "replicationFactor": 2, "onDisk": true,
            "vectors": {"size": 768, "distance": "Cosine"}, "backup": {"enabled": true, "schedule": "0 2 * * *", "retentionCount": 7}})).unwrap();
        assert_eq!((t.shards, t.backup.unwrap().retention_count), (6, 7));
    }
}
