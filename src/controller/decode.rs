//! QdrantClusters as they are stored, whether or not our types can read them.
//!
//! One object the types cannot parse must never stop the others: with plain
//! `Api<QdrantCluster>`, a single bad object fails the whole LIST, so no cluster is reconciled
//! at all. kube's `DeserializeGuard` does not cover every case either: it buffers the object
//! into a generic value first, and serde_json refuses JSON nested deeper than 128 levels
//! (a free-form `spec.config` can be), so the LIST still fails. Here the object is captured as
//! raw JSON, which serde_json scans without recursion, and decoded from that; when decoding
//! fails, enough of it is kept (name, namespace, uid, generation, the status we last wrote)
//! to report the problem on the object itself.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::crd::{QdrantCluster, QdrantClusterStatus};

/// A stored QdrantCluster: decoded, or the reason it could not be.
#[derive(Clone, Debug)]
pub struct Stored(pub Result<QdrantCluster, Undecodable>);

/// What is known of an object our types could not decode.
#[derive(Clone, Debug, PartialEq)]
pub struct Undecodable {
    pub metadata: ObjectMeta,
    /// The status as we last wrote it, when it still decodes: the next status is derived
    /// from it, so an unchanged problem gives an identical status and no write.
    pub status: Option<QdrantClusterStatus>,
    pub error: String,
}

/// The metadata fields the operator uses. `managedFields` is skipped on purpose: it mirrors
/// the object's own nesting, so it is as deep as the object that failed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    deletion_timestamp: Option<Time>,
}

#[derive(Deserialize)]
struct Shell {
    metadata: Meta,
    status: Option<Box<RawValue>>,
}

impl<'de> Deserialize<'de> for Stored {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let error = match serde_json::from_str::<QdrantCluster>(raw.get()) {
            Ok(qc) => return Ok(Stored(Ok(qc))),
            // Without serde's "at line L column C": the position moves whenever the object
            // grows (our own status write does), and the status message must stay the same
            // while the problem does.
            Err(e) => {
                let full = e.to_string();
                full.split(" at line ").next().unwrap_or(&full).to_owned()
            }
        };
        let shell: Shell = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        let m = shell.metadata;
        let metadata = ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            deletion_timestamp: m.deletion_timestamp,
            ..Default::default()
        };
        let status = shell.status.and_then(|s| serde_json::from_str(s.get()).ok());
        Ok(Stored(Err(Undecodable { metadata, status, error })))
    }
}

impl Resource for Stored {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        QdrantCluster::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        QdrantCluster::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        QdrantCluster::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        QdrantCluster::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.0.as_ref().map_or_else(|u| &u.metadata, QdrantCluster::meta)
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.as_mut().map_or_else(|u| &mut u.metadata, QdrantCluster::meta_mut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{ObjectList, WatchEvent};

    fn cluster(config: &str) -> String {
        format!(
            r#"{{"apiVersion":"qdrant.operator/v1alpha1","kind":"QdrantCluster","metadata":{{"name":"deep","namespace":"default","uid":"u1","generation":3,"resourceVersion":"7","managedFields":[{{"fieldsV1":{config}}}]}},"spec":{{"replicas":1,"image":"qdrant/qdrant:v1.16.3","config":{config}}},"status":{{"qdrantStatus":"Error","reason":"Undecodable"}}}}"#
        )
    }

    fn nested(depth: usize) -> String {
        format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn a_deeply_nested_object_is_kept_as_undecodable_with_its_metadata_and_status() {
        let Stored(r) = serde_json::from_str(&cluster(&nested(200))).unwrap();
        let u = r.unwrap_err();
        assert_eq!((u.metadata.name.as_deref(), u.metadata.uid.as_deref(), u.metadata.generation), (Some("deep"), Some("u1"), Some(3)));
        assert_eq!(u.error, "recursion limit exceeded", "no position in the message");
        assert_eq!(u.status.and_then(|s| s.reason).as_deref(), Some("Undecodable"));
    }

    #[test]
    fn one_bad_object_does_not_fail_a_list_or_a_watch_event() {
        let list = format!(r#"{{"apiVersion":"v1","kind":"List","metadata":{{"resourceVersion":"9"}},"items":[{},{}]}}"#, cluster(&nested(200)), cluster(r#"{"a":1}"#));
        let list: ObjectList<Stored> = serde_json::from_str(&list).unwrap();
        assert!(list.items[0].0.is_err());
        assert_eq!(list.items[1].0.as_ref().unwrap().spec.config, Some(serde_json::json!({"a": 1})));
        let ev = format!(r#"{{"type":"MODIFIED","object":{}}}"#, cluster(&nested(300)));
        let ev: WatchEvent<Stored> = serde_json::from_str(&ev).unwrap();
        assert!(matches!(ev, WatchEvent::Modified(Stored(Err(_)))));
    }

    #[test]
    fn a_wrong_type_is_undecodable_too() {
        let json = cluster("1").replace(r#""replicas":1"#, r#""replicas":"three""#);
        let Stored(r) = serde_json::from_str(&json).unwrap();
        assert!(r.unwrap_err().error.contains("invalid type"));
    }
}
