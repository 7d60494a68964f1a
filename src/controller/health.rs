//! The Kubernetes half of a health check: which Pods to ask, at which address, with which key
//! and CA, and the status written from the answer. Qdrant itself is asked by
//! `operations::health`, which sees none of this.
//!
//! Two callers: every reconcile, after it applied the children, and [`refresh_loop`], which
//! looks again every `--health-interval` without applying anything (Qdrant changes without
//! any Kubernetes event, and a no-op apply is still a write request).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use super::decode::Stored;
use super::{build, key, now, status, write_status, Context};
use crate::crd::{Phase, QdrantCluster};
use crate::operations::health::{self, Health, PodTarget};
use crate::operations::Access;
use crate::Error;

/// The key in a TLS Secret that holds the CA bundle (see `Tls::secret_name`).
pub const CA_KEY: &str = "cacert.pem";

/// How many clusters [`refresh_loop`] looks at at once.
const REFRESH_CONCURRENCY: usize = 8;

/// How the operator reaches a cluster's Qdrant: the read-write key (the read-only one is
/// refused some of the calls the operator needs) and, with TLS, the CA from `tls.secretName`,
/// or `generated_ca`, the one the operator made.
pub async fn access(ctx: &Context, qc: &QdrantCluster, api_key: Option<String>, generated_ca: Option<&str>) -> Result<Access, Error> {
    let ca_pem = match (qc.spec.tls.enabled, &qc.spec.tls.secret_name, generated_ca) {
        (true, _, Some(ca)) => Some(ca.as_bytes().to_vec()),
        (true, Some(secret), None) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &qc.namespace().unwrap_or_default());
            // Checked to exist, with this key, before anything was applied; an empty bundle
            // is reported as the cluster's problem by the health check.
            let s = secrets.get(secret).await?;
            Some(s.data.and_then(|mut d| d.remove(CA_KEY)).map(|b| b.0).unwrap_or_default())
        }
        _ => None,
    };
    Ok(Access { api_key, ca_pem })
}

/// Asks every Pod of the cluster how Qdrant is: the Pods asked, and the judgement.
pub async fn observe(ctx: &Context, qc: &QdrantCluster, access: &Access) -> Result<(Vec<PodTarget>, Health), Error> {
    let (ns, name) = (qc.namespace().unwrap_or_default(), qc.name_any());
    let pods = match ctx.pods.pods(&ns, &name) {
        Some(pods) => pods,
        // The Pod index is still being filled (just after start-up): ask the API server.
        None => {
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            let listed = api.list(&ListParams::default().labels(&build::selector_string(&name))).await?;
            listed.items.iter().map(|p| (p.name_any(), super::pods::is_ready(p))).collect()
        }
    };
    let expected = usize::try_from(qc.spec.replicas).unwrap_or(0);
    let targets = targets(qc, &pods);
    let qdrant = health::check(&ctx.qdrant, access, &targets, expected).await;
    Ok((targets, qdrant))
}

/// Asks every Pod how Qdrant is, then writes the status that the StatefulSet, Qdrant's answers
/// and the operation under way give, the per-cluster gauges, and an Event when health flips.
/// Returns whether Qdrant is healthy.
pub async fn refresh(ctx: &Context, qc: &QdrantCluster, sts: &StatefulSet, access: &Access, op: Option<status::Operation>) -> Result<bool, Error> {
    let (ns, name) = (qc.namespace().unwrap_or_default(), qc.name_any());
    let (_, qdrant) = observe(ctx, qc, access).await?;
    ctx.metrics.cluster_health(&ns, &name, qdrant.is_healthy(), qdrant.peer_count, qdrant.replicas_not_active);
    let blocked = op.as_ref().is_some_and(|o| o.blocked.is_some());
    ctx.metrics.scale_down_blocked.with_label_values(&[ns.as_str(), name.as_str()]).set(i64::from(blocked));

    let old = qc.status.clone().unwrap_or_default();
    let t = now();
    let mut st = status::with_health(status::from_stateful_set(qc, sts, &t), &qdrant, &old.conditions, &t);
    if let Some(q) = st.qdrant.as_mut() {
        super::volumes::record(ctx, qc, &qdrant, q, old.qdrant.as_ref()).await?;
    }
    let st = status::with_operation(st, op, qc.spec.replicas, &old.conditions, &t);
    if !qc.status.as_ref().is_some_and(|o| status::same_but_unreachable_detail(o, &st)) {
        write_status(ctx, &qc.metadata, qc.status.as_ref(), &st).await?;
    }
    let was_healthy = old.conditions.iter().find(|c| c.type_ == "Healthy").map(|c| c.status == "True");
    let obj = qc.object_ref(&());
    match (was_healthy, qdrant.is_healthy()) {
        (Some(true) | None, false) if st.qdrant_status != Some(Phase::Pending) => ctx.event(&obj, EventType::Warning, qdrant.reason(), qdrant.message()).await,
        (Some(false), true) => ctx.event(&obj, EventType::Normal, "Healthy", qdrant.message()).await,
        _ => {}
    }
    Ok(qdrant.is_healthy())
}

/// The cluster's Pods as places to ask: each by its DNS name (not its IP, which changes with
/// every restart), with whether Kubernetes counts it Ready.
pub fn targets(qc: &QdrantCluster, pods: &[(String, bool)]) -> Vec<PodTarget> {
    pods.iter().map(|(pod, ready)| PodTarget { base_url: build::rest_url(qc, pod), pod: pod.clone(), kube_ready: *ready }).collect()
}

/// While this replica leads, looks at every cluster's health every `--health-interval`.
/// Only clusters that a reconcile of this process has brought up to date are looked at: their
/// access is known, and their status describes their current spec.
pub async fn refresh_loop(ctx: Arc<Context>, store: Store<Stored>) {
    let mut tick = tokio::time::interval(ctx.health_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(term) = ctx.terms.current() else { continue };
        let clusters = store.state();
        let work = futures::stream::iter(clusters).for_each_concurrent(REFRESH_CONCURRENCY, |stored| {
            let ctx = ctx.clone();
            async move {
                let Ok(qc) = &stored.0 else { return };
                if let Err(e) = refresh_idle(&ctx, qc).await {
                    tracing::warn!(cluster = %qc.name_any(), namespace = %qc.namespace().unwrap_or_default(), error = %e, "health refresh failed");
                }
            }
        });
        // Losing the Lease cancels the round.
        term.run(work).await;
    }
}

async fn refresh_idle(ctx: &Context, qc: &QdrantCluster) -> Result<(), Error> {
    let Some(st) = &qc.status else { return Ok(()) };
    // An operation under way has its own, faster, loop: the reconcile.
    let settled = qc.metadata.deletion_timestamp.is_none() && st.observed_generation == qc.metadata.generation && st.qdrant_status != Some(Phase::Error) && st.operation.is_none();
    let Some(access) = ctx.access(&key(&qc.metadata)).filter(|_| settled) else { return Ok(()) };
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &qc.namespace().unwrap_or_default());
    let Some(sts) = api.get_opt(&qc.name_any()).await? else { return Ok(()) };
    refresh(ctx, qc, &sts, &access, None).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_asked_by_their_stable_name_and_scheme() {
        let spec = serde_json::from_value(serde_json::json!({"replicas": 2, "image": "qdrant/qdrant:v1.16.3"})).unwrap();
        let mut qc = QdrantCluster::new("c", spec);
        qc.metadata.namespace = Some("ns".into());
        let t = targets(&qc, &[("c-0".into(), true), ("c-1".into(), false)]);
        assert_eq!(t[0], PodTarget { pod: "c-0".into(), base_url: "http://c-0.c-headless.ns:6333".into(), kube_ready: true });
        assert!(!t[1].kube_ready);
        qc.spec.tls.enabled = true;
        assert_eq!(targets(&qc, &[("c-1".into(), false)])[0].base_url, "https://c-1.c-headless.ns:6333");
    }
}
