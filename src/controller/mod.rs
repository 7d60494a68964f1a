//! The QdrantCluster controller: watches on every replica (hot standby), writes only on the
//! leader. The watch graph is all here: the CRs, and every child kind the builders create.
//!
//! reconcile = dereference → validate (pure) → build (pure) → apply (guarded) → status (guarded).

pub mod apply;
pub mod build;
pub mod status;
pub mod validate;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::time::Instant;

use crate::crd::{QdrantCluster, QdrantClusterStatus};
use crate::leader::term::Terms;
use crate::leader::LeadershipGuard;
use crate::telemetry::metrics::Metrics;
use crate::Error;
use apply::FIELD_MANAGER;
use build::MANAGED_BY_SELECTOR;

pub struct Context {
    pub client: Client,
    pub guard: LeadershipGuard,
    pub terms: Terms,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
}

impl Context {
    pub fn new(client: Client, guard: LeadershipGuard, terms: Terms, metrics: Arc<Metrics>, identity: &str) -> Self {
        let reporter = Reporter { controller: "qdrant-operator".into(), instance: Some(identity.into()) };
        Context { recorder: Recorder::new(client.clone(), reporter), client, guard, terms, metrics }
    }

    /// Publishes an Event on a QdrantCluster. Events on CRs are writes of the leader, so they
    /// pass the guard; failing to publish one never fails a reconcile.
    async fn event(&self, qc: &QdrantCluster, type_: EventType, reason: &str, note: String) {
        if self.guard.check().is_err() {
            return;
        }
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: "Reconcile".into(), secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &qc.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing an Event failed");
        }
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

async fn write_status(ctx: &Context, qc: &QdrantCluster, status: &QdrantClusterStatus) -> Result<bool, Error> {
    if qc.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let api: Api<QdrantCluster> = Api::namespaced(ctx.client.clone(), &qc.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "qdrant.operator/v1alpha1",
        "kind": "QdrantCluster",
        "status": status,
    });
    ctx.guard.check()?;
    api.patch_status(&qc.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(true)
}

/// Apply errors that only the user can fix: retrying does not help, the status must say it.
fn user_error(e: &Error) -> Option<String> {
    match e {
        Error::Kube(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => Some(s.message.clone()),
        _ => None,
    }
}

async fn reconcile_inner(qc: &QdrantCluster, ctx: &Context) -> Result<Action, Error> {
    if qc.metadata.deletion_timestamp.is_some() {
        // Children carry owner references; the garbage collector removes them.
        return Ok(Action::await_change());
    }
    if let Err(problems) = validate::validate(qc) {
        let st = status::invalid(qc, &problems, &now());
        if write_status(ctx, qc, &st).await? {
            ctx.event(qc, EventType::Warning, "InvalidSpec", st.message.clone().unwrap_or_default()).await;
        }
        return Ok(Action::await_change());
    }
    let (keys, generated) = apply::resolve_keys(&ctx.client, &ctx.guard, qc).await?;
    let children = build::build(qc, &keys, generated);
    let sts = match apply::apply_children(&ctx.client, &ctx.guard, qc, children).await {
        Ok(sts) => sts,
        Err(e) => {
            if let Some(msg) = user_error(&e) {
                let st = status::apply_failed(qc, &msg, &now());
                if write_status(ctx, qc, &st).await? {
                    ctx.event(qc, EventType::Warning, "ApplyFailed", msg).await;
                }
            }
            return Err(e);
        }
    };
    let st = status::from_stateful_set(qc, &sts, &now());
    let old = qc.status.clone().unwrap_or_default();
    write_status(ctx, qc, &st).await?;
    if old.observed_generation.is_none() {
        ctx.event(qc, EventType::Normal, "Created", format!("Created the children of {} with {} replicas", qc.name_any(), qc.spec.replicas)).await;
    } else if old.observed_generation != qc.metadata.generation {
        match old.replicas {
            Some(r) if r != qc.spec.replicas => ctx.event(qc, EventType::Normal, "Scaled", format!("Scaled from {r} to {} replicas", qc.spec.replicas)).await,
            _ => ctx.event(qc, EventType::Normal, "Updated", format!("Applied generation {}", qc.metadata.generation.unwrap_or(0))).await,
        }
    }
    Ok(Action::await_change())
}

/// Runs on every replica. A follower returns at once without writing; the leader runs the
/// reconcile inside its current term, so losing the Lease cancels it.
pub async fn reconcile(qc: Arc<QdrantCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(term) = ctx.terms.current() else { return Ok(Action::await_change()) };
    let start = Instant::now();
    let result = term.run(reconcile_inner(&qc, &ctx)).await.unwrap_or(Err(Error::Cancelled));
    let m = &ctx.metrics;
    m.reconcile_duration_seconds.with_label_values(&["QdrantCluster"]).observe(start.elapsed().as_secs_f64());
    match &result {
        Ok(_) => m.reconcile_total.with_label_values(&["QdrantCluster", "success"]).inc(),
        Err(e) if e.is_leadership() => {}
        Err(e) => {
            m.reconcile_total.with_label_values(&["QdrantCluster", "error"]).inc();
            m.errors_total.with_label_values(&[e.category()]).inc();
        }
    }
    result
}

pub fn error_policy(qc: Arc<QdrantCluster>, err: &Error, _ctx: Arc<Context>) -> Action {
    if err.is_leadership() {
        // The next leader reconciles everything when it takes over.
        return Action::await_change();
    }
    tracing::warn!(cluster = %qc.name_any(), namespace = %qc.namespace().unwrap_or_default(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until `shutdown` resolves and in-flight reconciles finish.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    reconcile_all: impl Stream<Item = ()> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ready: Arc<AtomicBool>,
) {
    let client = ctx.client.clone();
    fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>>(c: &Client, ns: &Option<String>) -> Api<K> {
        match ns {
            Some(ns) => Api::namespaced(c.clone(), ns),
            None => Api::all(c.clone()),
        }
    }
    // Children are watched by label, so the caches hold only our objects (not every Secret).
    let children = watcher::Config::default().labels(MANAGED_BY_SELECTOR);
    let controller = Controller::new(api::<QdrantCluster>(&client, &namespace), watcher::Config::default())
        .owns(api::<StatefulSet>(&client, &namespace), children.clone())
        .owns(api::<Service>(&client, &namespace), children.clone())
        .owns(api::<ConfigMap>(&client, &namespace), children.clone())
        .owns(api::<Secret>(&client, &namespace), children.clone())
        .owns(api::<PodDisruptionBudget>(&client, &namespace), children);
    let store = controller.store();
    let metrics = ctx.metrics.clone();
    tokio::spawn(async move {
        // The store's readiness signal wakes only one waiter (the controller's own), so we
        // poll it instead of awaiting it once.
        loop {
            match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    ready.store(true, Ordering::SeqCst);
                    tracing::info!("caches synced");
                    break;
                }
                Ok(Err(_)) => return,
                Err(_) => continue,
            }
        }
        loop {
            metrics.clusters_managed.set(store.state().len() as i64);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    controller
        .reconcile_all_on(reconcile_all)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}
