//! A QdrantCollection's `spec.snapshots`, as the older operator read it: backups now or on a
//! schedule, and a restore. Here they become resources the backup controllers run: a
//! QdrantCollectionBackup named after the collection, and a QdrantCollectionRestore per
//! `restoreSnapshotName`, both owned by the collection. The builders are pure; `sync` writes.

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::crd::QdrantCollection;
use crate::backups::crd::{QdrantCollectionBackup, QdrantCollectionRestore, QdrantCollectionTemplateSpec, Snapshots};
use crate::controller::apply::{owned_by, FIELD_MANAGER};
use crate::controller::build::MANAGED_BY;
use crate::controller::Context;
use crate::Error;

fn owned_meta(col: &QdrantCollection, name: &str) -> Value {
    json!({
        "name": name,
        "namespace": col.namespace(),
        "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "qdrant.operator/collection": col.name_any()},
        "ownerReferences": col.controller_owner_ref(&()).map(|o| vec![o]).unwrap_or_default(),
    })
}

/// The collection's `spec.snapshots`, decoded; `Ok(None)` without one.
pub fn settings(col: &QdrantCollection) -> Result<Option<Snapshots>, String> {
    col.spec.snapshots.clone().map(|v| serde_json::from_value::<Snapshots>(v).map_err(|e| format!("spec.snapshots: {e}"))).transpose()
}

/// Pure: the QdrantCollectionBackup the collection asks for (`None`: none). The template's
/// schedule and retention count apply when `spec.snapshots` gives none.
pub fn backup_for(col: &QdrantCollection, template: Option<&QdrantCollectionTemplateSpec>) -> Result<Option<Value>, String> {
    let Some(mut s) = settings(col)? else { return Ok(None) };
    let policy = template.and_then(|t| t.backup.as_ref()).filter(|b| b.enabled);
    if s.backup_schedule.trim().is_empty() {
        s.backup_schedule = policy.and_then(|b| b.schedule.clone()).unwrap_or_default();
    }
    if s.retention_count.is_none() {
        s.retention_count = policy.map(|b| b.retention_count);
    }
    if !s.backup_now && s.backup_schedule.trim().is_empty() {
        return Ok(None);
    }
    s.restore_snapshot_name = String::new();
    Ok(Some(json!({
        "apiVersion": "qdrant.operator/v1alpha1",
        "kind": "QdrantCollectionBackup",
        "metadata": owned_meta(col, &col.name_any()),
        "spec": {"cluster": col.spec.cluster, "collectionName": col.name_any(), "snapshots": s},
    })))
}

/// The name of the restore for `backup_id`: a new `restoreSnapshotName` is a new restore.
pub fn restore_name(col: &str, backup_id: &str) -> String {
    let h = Sha256::digest(backup_id.as_bytes());
    format!("{col}-restore-{}", h.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>())
}

/// Pure: the QdrantCollectionRestore the collection asks for (`None`: none).
pub fn restore_for(col: &QdrantCollection) -> Result<Option<Value>, String> {
    let Some(s) = settings(col)? else { return Ok(None) };
    let backup_id = s.restore_snapshot_name.trim();
    if backup_id.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({
        "apiVersion": "qdrant.operator/v1alpha1",
        "kind": "QdrantCollectionRestore",
        "metadata": owned_meta(col, &restore_name(&col.name_any(), backup_id)),
        "spec": {"collection": col.name_any(), "cluster": col.spec.cluster, "backupId": backup_id},
    })))
}

/// What [`sync`] found: the problem, if any, and the `restoreSnapshotName` whose restore exists
/// (for `status.restoredFrom`).
pub type Synced = (Option<(&'static str, String)>, Option<String>);

/// Writes what the collection asks for; an object of the same name that is not the
/// collection's is left alone and reported. A restore is made once per `restoreSnapshotName`:
/// not again once the status records it, even if the restore was deleted since (it would
/// replace every write made after it).
pub async fn sync(ctx: &Context, col: &QdrantCollection, template: Option<&QdrantCollectionTemplateSpec>) -> Result<Synced, Error> {
    let ns = col.namespace().unwrap_or_default();
    let (backup, restore) = match (backup_for(col, template), restore_for(col)) {
        (Ok(b), Ok(r)) => (b, r),
        (Err(why), _) | (_, Err(why)) => return Ok((Some(("InvalidSpec", why)), None)),
    };
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let backups: Api<QdrantCollectionBackup> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = backups.get_opt(&col.name_any()).await?;
    if let Some(e) = existing.as_ref().filter(|e| !owned_by(col, &e.metadata)) {
        if backup.is_some() {
            return Ok((Some(("BackupConflict", format!("QdrantCollectionBackup {ns}/{} exists and is not this collection's: it is left alone, and spec.snapshots is not applied", e.name_any()))), None));
        }
    }
    match (backup, existing.filter(|e| owned_by(col, &e.metadata))) {
        (Some(b), current) => {
            if current.is_none_or(|c| serde_json::to_value(&c.spec).ok().as_ref() != b.get("spec")) {
                ctx.guard.write(backups.patch(&col.name_any(), &pp, &Patch::Apply(&b))).await??;
            }
        }
        // No longer asked for: no more backups (those in the bucket stay).
        (None, Some(c)) => {
            ctx.guard.write(backups.delete(&c.name_any(), &DeleteParams::default())).await??;
        }
        (None, None) => {}
    }
    let done = col.status.as_ref().and_then(|s| s.restored_from.as_deref());
    let Some(r) = restore.filter(|r| r["spec"]["backupId"].as_str() != done) else { return Ok((None, None)) };
    let restores: Api<QdrantCollectionRestore> = Api::namespaced(ctx.client.clone(), &ns);
    let name = r["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    match restores.get_opt(&name).await? {
        // Created once: its status says how it went.
        Some(e) if owned_by(col, &e.metadata) => {}
        Some(_) => return Ok((Some(("RestoreConflict", format!("QdrantCollectionRestore {ns}/{name} exists and is not this collection's"))), None)),
        None => {
            ctx.guard.write(restores.patch(&name, &pp, &Patch::Apply(&r))).await??;
        }
    }
    Ok((None, r["spec"]["backupId"].as_str().map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(snapshots: Value) -> QdrantCollection {
        let mut c = QdrantCollection::new("my-collection", serde_json::from_value(json!({"cluster": "my-cluster", "vectorSize": 10, "snapshots": snapshots})).unwrap());
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("u1".into());
        c
    }

    const S3: &str = r#"{"s3EndpointURL": "https://storage.googleapis.com/", "s3CredentialsSecretName": "bucket-credentials", "bucketName": "b"}"#;

    fn with(extra: Value) -> Value {
        let mut v: Value = serde_json::from_str(S3).unwrap();
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn backup_now_or_a_schedule_makes_an_owned_backup_resource() {
        let b = backup_for(&col(with(json!({"backupNow": true}))), None).unwrap().unwrap();
        assert_eq!(b["metadata"]["name"], "my-collection");
        assert_eq!(b["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(b["spec"]["collectionName"], "my-collection");
        assert_eq!(b["spec"]["snapshots"]["backupNow"], true);
        assert!(backup_for(&col(with(json!({}))), None).unwrap().is_none(), "S3 settings alone: nothing to do");
        assert!(backup_for(&col(json!({"bucketName": "b"})), None).is_err(), "missing required S3 settings are reported");
    }

    #[test]
    fn the_templates_policy_fills_schedule_and_retention() {
        let t: QdrantCollectionTemplateSpec = serde_json::from_value(json!({"name": "t", "backup": {"enabled": true, "schedule": "0 2 * * *", "retentionCount": 3}})).unwrap();
        let b = backup_for(&col(with(json!({}))), Some(&t)).unwrap().unwrap();
        assert_eq!((b["spec"]["snapshots"]["backupSchedule"].as_str(), b["spec"]["snapshots"]["retentionCount"].as_u64()), (Some("0 2 * * *"), Some(3)));
        let own = backup_for(&col(with(json!({"backupSchedule": "* * * * *", "retentionCount": 1}))), Some(&t)).unwrap().unwrap();
        assert_eq!((own["spec"]["snapshots"]["backupSchedule"].as_str(), own["spec"]["snapshots"]["retentionCount"].as_u64()), (Some("* * * * *"), Some(1)));
    }

    #[test]
    fn a_restore_snapshot_name_makes_one_restore_per_backup_id() {
        let r = restore_for(&col(with(json!({"restoreSnapshotName": "my-cluster/source/2024-01-23-17-58"})))).unwrap().unwrap();
        assert_eq!(r["spec"]["backupId"], "my-cluster/source/2024-01-23-17-58");
        assert_eq!(r["spec"]["collection"], "my-collection");
        assert_ne!(restore_name("c", "a/b/1"), restore_name("c", "a/b/2"));
        assert!(restore_for(&col(with(json!({"restoreSnapshotName": ""})))).unwrap().is_none());
    }
}
