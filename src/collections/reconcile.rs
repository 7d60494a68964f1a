//! The Kubernetes half of a QdrantCollection. Reaches the collection's cluster the way that
//! cluster's own reconcile last resolved it (key, CA), through the Pod of ordinal 0, and writes
//! only on the leader. A template named in the spec fills what it leaves out; `spec.snapshots`
//! becomes backup and restore resources (`super::snapshots`).
//!
//! Deletion goes through the finalizer `qdrant.operator/collection`: the collection is deleted
//! in Qdrant first (unless `deletionPolicy: Retain`), then the finalizer is removed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::crd::{DeletionPolicy, QdrantCollection, QdrantCollectionStatus};
use super::plan::{self, Step};
use crate::controller::apply::FIELD_MANAGER;
use crate::controller::{build, Context};
use crate::backups::crd::QdrantCollectionTemplate;
use crate::crd::QdrantCluster;
use crate::operations::collection;
use crate::Error;

pub const FINALIZER: &str = "qdrant.operator/collection";
/// How soon to look again while the cluster or Qdrant is not there yet.
const RETRY: Duration = Duration::from_secs(5);

/// Pure: the status from what Qdrant reports (`None`: not there) and why it is not as wanted.
pub fn status(col: &QdrantCollection, observed: Option<&collection::Observed>, problem: Option<(&str, String)>, now: &Time) -> QdrantCollectionStatus {
    let old = col.status.clone().unwrap_or_default();
    let (ready, reason, message) = match &problem {
        Some((reason, message)) => (false, *reason, message.clone()),
        None => (true, "InSync", "the collection exists as specified".to_owned()),
    };
    QdrantCollectionStatus {
        status: observed.map(|o| o.status.clone()),
        points_count: observed.and_then(|o| o.points),
        segments_count: observed.map(|o| o.segments),
        replicas: observed.map(|o| o.replicas.iter().map(|(s, n)| (s.to_string(), *n)).collect()).unwrap_or_default(),
        observed_generation: col.metadata.generation,
        restored_from: old.restored_from.clone(),
        conditions: vec![crate::controller::status::condition("Ready", ready, reason, &message, col.metadata.generation, &old.conditions, now)],
    }
}

async fn write_status(ctx: &Context, col: &QdrantCollection, st: &QdrantCollectionStatus) -> Result<(), Error> {
    if col.status.as_ref() == Some(st) {
        return Ok(());
    }
    let api: Api<QdrantCollection> = Api::namespaced(ctx.client.clone(), &col.namespace().unwrap_or_default());
    let patch = serde_json::json!({"apiVersion": "qdrant.operator/v1alpha1", "kind": "QdrantCollection", "status": st});
    ctx.guard.write(api.patch_status(&col.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))).await??;
    Ok(())
}

/// Sets the finalizers to `finalizers`, in a patch that fails if the object changed since.
async fn set_finalizers(ctx: &Context, col: &QdrantCollection, finalizers: Vec<String>) -> Result<(), Error> {
    let api: Api<QdrantCollection> = Api::namespaced(ctx.client.clone(), &col.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"resourceVersion": col.metadata.resource_version, "finalizers": finalizers}});
    ctx.guard.write(api.patch(&col.name_any(), &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &Patch::Merge(&patch))).await??;
    Ok(())
}

/// Keeps a template's `usageCount` (the QdrantCollections that name it, but `leaving`) and
/// `lastUsed` (when that count last changed), as the older operator's status had them.
async fn note_template_use(ctx: &Context, t: &QdrantCollectionTemplate, leaving: Option<&str>) -> Result<(), Error> {
    let all = match &ctx.watch_namespace {
        Some(ns) => Api::<QdrantCollection>::namespaced(ctx.client.clone(), ns),
        None => Api::<QdrantCollection>::all(ctx.client.clone()),
    }
    .list(&kube::api::ListParams::default())
    .await?;
    let count = all.items.iter().filter(|c| c.spec.template.as_deref() == Some(&t.name_any()) && c.metadata.uid.as_deref() != leaving && c.metadata.deletion_timestamp.is_none()).count() as u32;
    if t.status.as_ref().and_then(|s| s.usage_count) == Some(count) {
        return Ok(());
    }
    let api: Api<QdrantCollectionTemplate> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({"status": {"usageCount": count, "lastUsed": crate::backups::rfc3339(jiff::Timestamp::now())}});
    ctx.guard.write(api.patch_status(&t.name_any(), &PatchParams::default(), &Patch::Merge(&patch))).await??;
    Ok(())
}

pub async fn reconcile(cached: Arc<QdrantCollection>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(term) = ctx.terms.current() else { return Ok(Action::await_change()) };
    term.run(reconcile_inner(&cached, &ctx)).await.unwrap_or(Err(Error::Cancelled))
}

async fn reconcile_inner(cached: &QdrantCollection, ctx: &Context) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let Some(col) = Api::<QdrantCollection>::namespaced(ctx.client.clone(), &ns).get_opt(&cached.name_any()).await? else { return Ok(Action::await_change()) };
    let name = col.name_any();
    let finalizers = col.finalizers().to_vec();
    let cluster = Api::<QdrantCluster>::namespaced(ctx.client.clone(), &ns).get_opt(&col.spec.cluster).await?;
    let access = ctx.access(&format!("{ns}/{}", col.spec.cluster));
    let target = cluster.as_ref().map(|qc| build::rest_url(qc, &format!("{}-0", col.spec.cluster)));
    let now = Time(jiff::Timestamp::now());
    // Templates are cluster-scoped: an operator that watches one namespace may not read them
    // (403), which is reported, and never stops a deletion.
    let template = match &col.spec.template {
        Some(t) => Api::<QdrantCollectionTemplate>::all(ctx.client.clone()).get_opt(t).await.map_err(|e| format!("QdrantCollectionTemplate {t} cannot be read: {e}")),
        None => Ok(None),
    };
    let settings = plan::effective(&col.spec, template.as_ref().ok().and_then(Option::as_ref).map(|t| &t.spec));

    if col.metadata.deletion_timestamp.is_some() {
        if !finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        if col.spec.deletion_policy == DeletionPolicy::Delete {
            // The cluster itself is gone: so is the collection.
            if let (Some(target), Some(access)) = (&target, &access) {
                let client = ctx.qdrant.client(access).map_err(|e| Error::Spec(e.to_string()))?;
                // A collection that someone else made with other fixed settings is never ours
                // to delete.
                let theirs = match collection::observe(&client, target, &name).await {
                    Ok(o) => match &settings {
                        Ok(e) => matches!(plan::step(&plan::create_body(e), o.as_ref().map(|o| &o.config)), Step::Conflict(_)),
                        // Without its settings it cannot be told apart from someone else's.
                        Err(_) => true,
                    },
                    Err(_) => false,
                };
                let deleted = if theirs { Ok(()) } else { collection::delete(&client, &ctx.guard, target, &name).await };
                if let Err(why) = deleted {
                    write_status(ctx, &col, &status(&col, None, Some(("DeleteFailed", why)), &now)).await?;
                    return Ok(Action::requeue(RETRY));
                }
            } else if cluster.is_some() {
                return Ok(Action::requeue(RETRY));
            }
        }
        set_finalizers(ctx, &col, finalizers.into_iter().filter(|f| f != FINALIZER).collect()).await?;
        if let Ok(Some(t)) = &template {
            note_template_use(ctx, t, col.metadata.uid.as_deref()).await?;
        }
        return Ok(Action::await_change());
    }

    let (Some(qc), Some(target)) = (cluster, target) else {
        let why = format!("QdrantCluster {ns}/{} does not exist", col.spec.cluster);
        write_status(ctx, &col, &status(&col, None, Some(("ClusterNotFound", why)), &now)).await?;
        return Ok(Action::requeue(RETRY));
    };
    let template = match (&col.spec.template, template) {
        (Some(t), Ok(None)) => {
            let why = format!("QdrantCollectionTemplate {t} does not exist");
            write_status(ctx, &col, &status(&col, None, Some(("TemplateNotFound", why)), &now)).await?;
            return Ok(Action::requeue(RETRY));
        }
        (_, Err(why)) => {
            write_status(ctx, &col, &status(&col, None, Some(("TemplateNotReadable", why)), &now)).await?;
            return Ok(Action::requeue(RETRY));
        }
        (_, Ok(t)) => t,
    };
    let settings = match settings {
        Ok(s) => s,
        Err(why) => {
            write_status(ctx, &col, &status(&col, None, Some(("InvalidSpec", why)), &now)).await?;
            return Ok(Action::await_change());
        }
    };
    let mut problems = Vec::new();
    if i64::from(settings.replication_factor) > i64::from(qc.spec.replicas) {
        problems.push(format!("replicationFactor {} is more than the {} peers of {}", settings.replication_factor, qc.spec.replicas, col.spec.cluster));
    }
    if settings.write_consistency_factor.is_some_and(|w| w > settings.replication_factor) {
        problems.push("writeConsistencyFactor is more than replicationFactor".to_owned());
    }
    if !problems.is_empty() {
        write_status(ctx, &col, &status(&col, None, Some(("InvalidSpec", problems.join("; "))), &now)).await?;
        return Ok(Action::await_change());
    }
    let Some(access) = access else {
        write_status(ctx, &col, &status(&col, None, Some(("ClusterNotReady", format!("{} has not been reconciled yet", col.spec.cluster))), &now)).await?;
        return Ok(Action::requeue(RETRY));
    };
    let client = ctx.qdrant.client(&access).map_err(|e| Error::Spec(e.to_string()))?;
    let body = plan::create_body(&settings);
    let observed = match collection::observe(&client, &target, &name).await {
        Ok(o) => o,
        Err(why) => {
            write_status(ctx, &col, &status(&col, None, Some(("QdrantUnavailable", why)), &now)).await?;
            return Ok(Action::requeue(RETRY));
        }
    };
    let step = plan::step(&body, observed.as_ref().map(|o| &o.config));
    if let Step::Conflict(why) = &step {
        let msg = format!("collection {name} exists in Qdrant with other fixed settings; it is left as it is: {}", why.join("; "));
        write_status(ctx, &col, &status(&col, observed.as_ref(), Some(("ConfigConflict", msg)), &now)).await?;
        return Ok(Action::await_change());
    }
    // The finalizer goes on before the collection is created, and only on a collection that
    // is, or will be, as this resource says: deleting the resource deletes that one.
    if !finalizers.iter().any(|f| f == FINALIZER) {
        set_finalizers(ctx, &col, finalizers.into_iter().chain([FINALIZER.to_owned()]).collect()).await?;
        return Ok(Action::requeue(Duration::ZERO));
    }
    if step != Step::InSync {
        if let Err(why) = collection::carry_out(&client, &ctx.guard, &target, &name, &step).await {
            write_status(ctx, &col, &status(&col, observed.as_ref(), Some(("QdrantRefused", why)), &now)).await?;
            return Ok(Action::requeue(RETRY));
        }
        return Ok(Action::requeue(Duration::ZERO));
    }
    let (problem, restored) = super::snapshots::sync(ctx, &col, template.as_ref().map(|t| &t.spec)).await?;
    // Counted when the spec changes (here or in the deletion above), not on every look.
    if let Some(t) = template.as_ref().filter(|_| col.status.as_ref().and_then(|s| s.observed_generation) != col.metadata.generation) {
        note_template_use(ctx, t, None).await?;
    }
    let mut st = status(&col, observed.as_ref(), problem, &now);
    st.restored_from = restored.or(st.restored_from);
    write_status(ctx, &col, &st).await?;
    // Point counts and replica states move without a Kubernetes event.
    Ok(Action::requeue(ctx.health_interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_qdrant_and_keeps_the_transition_time_while_unchanged() {
        let spec = serde_json::from_value(serde_json::json!({"cluster": "c", "vectorSize": 4})).unwrap();
        let mut col = QdrantCollection::new("col", spec);
        col.metadata.generation = Some(3);
        let observed = collection::Observed { config: serde_json::json!({}), status: "green".into(), points: Some(10), segments: 2, replicas: vec![(0, 2), (1, 2)] };
        let t0 = Time(jiff::Timestamp::UNIX_EPOCH);
        let st = status(&col, Some(&observed), None, &t0);
        assert_eq!((st.status.as_deref(), st.points_count, st.replicas.get("1")), (Some("green"), Some(10), Some(&2)));
        assert_eq!((st.conditions[0].status.as_str(), st.observed_generation), ("True", Some(3)));
        col.status = Some(st.clone());
        assert_eq!(status(&col, Some(&observed), None, &Time(jiff::Timestamp::now())), st, "unchanged: byte-identical, no write");
        let bad = status(&col, None, Some(("ClusterNotFound", "x".into())), &t0);
        assert_eq!(bad.conditions[0].reason, "ClusterNotFound");
    }
}
