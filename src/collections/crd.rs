//! The `QdrantCollection` API (`qdrant.operator/v1alpha1`).
//!
//! Field names and defaults are the older JavaScript operator's (`cluster`, `vectorSize`,
//! `shardNumber`, `replicationFactor`, `onDisk`, `config`, `snapshots`), so its users'
//! manifests apply unchanged; the other fields are this operator's additions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// A Qdrant collection on a QdrantCluster of the same namespace.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[kube(
    group = "qdrant.operator",
    version = "v1alpha1",
    kind = "QdrantCollection",
    plural = "qdrantcollections",
    shortname = "qcol",
    namespaced,
    status = "QdrantCollectionStatus",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(name = "Points", type_ = "integer", json_path = ".status.pointsCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.vectorSize) || has(self.vectors) || has(self.template)", "message": "vectorSize (or vectors) is required unless a template is named"},
    {"rule": "!(has(self.vectorSize) && has(self.vectors))", "message": "vectorSize (one unnamed vector) and vectors (named vectors) exclude each other"}
]))]
pub struct QdrantCollectionSpec {
    /// The QdrantCluster, in this namespace, that holds the collection.
    #[schemars(length(min = 1))]
    pub cluster: String,
    /// Size of the collection's (unnamed) vectors; required unless the template gives it. Fixed once the collection exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub vector_size: Option<u64>,
    /// How the vectors of `vectorSize` are compared: Cosine (the default, and the older operator's only choice), Euclid, Dot or Manhattan. Fixed once the collection exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<Distance>,
    /// This operator's addition: named vectors, by name, where Qdrant keeps several vectors per point (instead of `vectorSize` and `distance`). Fixed once the collection exists, but for `onDisk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub vectors: Option<std::collections::BTreeMap<String, NamedVector>>,
    /// Number of shards (default 1, or the template's). Fixed once the collection exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub shard_number: Option<u32>,
    /// Copies of each shard (default 1, or the template's), at most the cluster's number of peers. Can change later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub replication_factor: Option<u32>,
    /// Replicas that must acknowledge a write, at most `replicationFactor`. Can change later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub write_consistency_factor: Option<u32>,
    /// Keep vectors on disk (memory-mapped) rather than in RAM (default true, or the template's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    /// This operator's addition: a QdrantCollectionTemplate (by `metadata.name`) whose settings fill what this spec leaves out: shards, replication, on-disk, vectors, quantization, and backups (with `snapshots` saying where).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// More of Qdrant's collection settings, as its API names them: `hnsw_config`, `optimizers_config`, `quantization_config`, `on_disk_payload`, `sparse_vectors`. Merged over the fields above when the collection is created; what Qdrant lets change is updated later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub config: Option<serde_json::Value>,
    /// What deleting this resource does to the collection: `Delete` (the default) deletes it in Qdrant; `Retain` leaves it and its data in Qdrant.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// The older operator's backup settings (as QdrantCollectionBackup's `snapshots`): with `backupNow` or a `backupSchedule` (or a template's backup policy), the operator keeps a QdrantCollectionBackup of the same name for this collection; with `restoreSnapshotName`, a QdrantCollectionRestore restores that backup into it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub snapshots: Option<serde_json::Value>,
}

fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// One named vector.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedVector {
    /// Its dimensions.
    #[schemars(range(min = 1))]
    pub size: u64,
    /// How it is compared (default Cosine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<Distance>,
    /// Keep it on disk (default: the collection's `onDisk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
}

/// The metric vectors are compared with.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum Distance {
    #[default]
    Cosine,
    Euclid,
    Dot,
    Manhattan,
}

/// What deleting the resource does to the collection.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Retain,
}

/// The collection as Qdrant reports it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QdrantCollectionStatus {
    /// Qdrant's collection status: green, yellow, grey or red.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Points in the collection (approximate, as Qdrant reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_count: Option<u64>,
    /// Segments of the peer asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments_count: Option<u64>,
    /// Active replicas of each shard, as `shard: count`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub replicas: std::collections::BTreeMap<String, u32>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The `restoreSnapshotName` a QdrantCollectionRestore was made for: never again, even if that restore is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
    /// Ready (the collection exists as specified) and Synced (every changeable setting applied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_yaml_in_crds_is_fresh() {
        use kube::CustomResourceExt;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/qdrant.operator_qdrantcollections.yaml");
        let committed = std::fs::read_to_string(path).unwrap();
        assert!(committed == serde_yaml_ng::to_string(&QdrantCollection::crd()).unwrap(), "crds/ is stale: run `make crds` and commit the result");
    }

    #[test]
    fn the_older_operators_manifests_decode_with_its_defaults() {
        let spec: QdrantCollectionSpec = serde_json::from_value(serde_json::json!({"cluster": "my-cluster", "vectorSize": 10})).unwrap();
        let e = crate::collections::plan::effective(&spec, None).unwrap();
        assert_eq!((e.shard_number, e.replication_factor, &e.vectors), (1, 1, &serde_json::json!({"size": 10, "distance": "Cosine", "on_disk": true})));
        assert_eq!(spec.deletion_policy, DeletionPolicy::Delete);
        let complete: QdrantCollectionSpec = serde_json::from_value(serde_json::json!({
            "cluster": "my-cluster", "vectorSize": 10, "onDisk": false, "shardNumber": 6, "replicationFactor": 2,
            "config": {"hnsw_config": {"m": 16}},
            "snapshots": {"s3EndpointURL": "https://storage.googleapis.com/", "s3CredentialsSecretName": "c", "bucketName": "b", "backupSchedule": "0 0 * * *"}
        })).unwrap();
        let e = crate::collections::plan::effective(&complete, None).unwrap();
        assert_eq!((e.shard_number, e.replication_factor, &e.vectors["on_disk"]), (6, 2, &serde_json::json!(false)));
    }
}
