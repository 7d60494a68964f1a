//! The QdrantCluster controller: watches on every replica (hot standby), writes only on the
//! leader. The watch graph is all here: the CRs, and every child kind the builders create.
//!
//! reconcile = dereference → validate (pure) → build (pure) → apply (guarded) → status (guarded).

pub mod apply;
pub mod build;
pub mod certs;
pub mod claims;
pub mod decode;
pub mod scaling;
pub mod health;
pub mod pods;
pub mod restart;
pub mod status;
pub mod validate;
pub mod volumes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::PartialObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{predicates, reflector, watcher, Controller, Predicate, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::time::Instant;

use crate::crd::{QdrantCluster, QdrantClusterStatus};
use crate::kube_client::watch_backoff;
use crate::leader::term::Terms;
use crate::leader::LeadershipGuard;
use crate::operations::{Access, Qdrant};
use crate::telemetry::metrics::Metrics;
use crate::Error;
use apply::FIELD_MANAGER;
use build::MANAGED_BY_SELECTOR;
use decode::{Stored, Undecodable};
use pods::PodIndex;

/// A cluster blocked on something only the user can fix (a name conflict, a missing Secret)
/// is looked at again this often: the objects involved are not ours, so no watch tells us
/// when they change.
const RECHECK: Duration = Duration::from_secs(20);
/// How soon to look again while the StatefulSet is re-created for larger volumes.
const RECREATE_POLL: Duration = Duration::from_secs(1);
/// The finalizer of the older JavaScript operator. Only that operator removed it, after its own
/// clean-up; once this operator runs instead, `kubectl delete` would hang on it forever.
pub const LEGACY_FINALIZER: &str = "qdrant.operator/finalizer";
/// At most this many reconciles run at once. Unbounded, a new leader's full reconcile of 200
/// clusters ran 200 at once, each with its own API connection: the API server got a burst, and
/// the leader's memory stayed at that peak (50 MiB against 20 MiB) long after.
const RECONCILE_CONCURRENCY: u16 = 16;
/// How soon a failed reconcile of a collection, backup or restore is tried again.
const RETRY_SOON: Duration = Duration::from_secs(5);
/// Retries of failed reconciles back off per object, from this...
const RETRY_MIN: Duration = Duration::from_secs(1);
/// ...doubling up to this.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// How the controller deals with Qdrant (see the flags of the same names).
pub struct Tuning {
    pub qdrant_timeout: Duration,
    pub health_interval: Duration,
    pub transfer_stall_timeout: Duration,
}

pub struct Context {
    pub client: Client,
    pub guard: LeadershipGuard,
    pub terms: Terms,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Clients of the clusters' Qdrant REST APIs.
    pub qdrant: Qdrant,
    /// How often a cluster's health is looked at when nothing changes in Kubernetes.
    pub health_interval: Duration,
    /// How long a shard transfer may show no progress before it is aborted.
    pub transfer_stall_timeout: Duration,
    /// Every cluster's Qdrant Pods and their readiness.
    pub pods: PodIndex,
    /// How each cluster's Qdrant is reached, as its last reconcile resolved it (by `key`).
    access: Mutex<HashMap<String, Access>>,
    /// Consecutive failed reconciles per object (`namespace/name`), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// What this process last applied to each child, so an unchanged child is not applied again.
    applied: apply::Applied,
    /// Backups and restores running in this process.
    pub runs: crate::backups::Runs,
    /// The one namespace watched (`--watch-namespace`), if not all.
    pub watch_namespace: Option<String>,
}

impl Context {
    pub fn new(client: Client, guard: LeadershipGuard, terms: Terms, metrics: Arc<Metrics>, identity: &str, tuning: Tuning) -> Self {
        let reporter = Reporter { controller: "qdrant-operator".into(), instance: Some(identity.into()) };
        let qdrant = Qdrant::new(tuning.qdrant_timeout, metrics.qdrant.clone());
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            guard,
            terms,
            metrics,
            qdrant,
            health_interval: tuning.health_interval,
            transfer_stall_timeout: tuning.transfer_stall_timeout,
            pods: PodIndex::default(),
            access: Mutex::default(),
            failures: Mutex::default(),
            applied: apply::Applied::default(),
            runs: crate::backups::Runs::default(),
            watch_namespace: None,
        }
    }

    /// Publishes an Event on a QdrantCluster. Events on CRs are writes of the leader, so they
    /// pass the guard; failing to publish one never fails a reconcile.
    async fn event(&self, obj: &ObjectReference, type_: EventType, reason: &str, note: String) {
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: "Reconcile".into(), secondary: None };
        match self.guard.write(self.recorder.publish(&ev, obj)).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "publishing an Event failed"),
            Ok(Ok(())) | Err(_) => {}
        }
    }

    pub(crate) fn access(&self, key: &str) -> Option<Access> {
        self.access.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn set_access(&self, meta: &ObjectMeta, access: Access) {
        self.access.lock().unwrap_or_else(|p| p.into_inner()).insert(key(meta), access);
    }

    /// Stops looking at a cluster's Qdrant (deleted, blocked, undecodable) and drops its
    /// gauges, so that nothing reports on what the operator no longer watches.
    fn forget(&self, meta: &ObjectMeta) {
        self.access.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(meta));
        self.metrics.forget_cluster(meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default());
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pause before retrying an object whose reconcile failed `n` times in a row:
    /// doubling from [`RETRY_MIN`] to [`RETRY_MAX`], with up to 10 % jitter.
    fn retry_after(n: u32) -> Duration {
        let base = RETRY_MIN.saturating_mul(1u32 << n.saturating_sub(1).min(16)).min(RETRY_MAX);
        base.mul_f64(1.0 + fastrand::f64() * 0.1)
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

fn key(meta: &ObjectMeta) -> String {
    format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

/// Writes the status when it differs from `old`, through the guard.
async fn write_status(ctx: &Context, meta: &ObjectMeta, old: Option<&QdrantClusterStatus>, status: &QdrantClusterStatus) -> Result<bool, Error> {
    if old == Some(status) {
        return Ok(false);
    }
    // The answer is the whole object, read as `Stored` so that one we cannot decode does not
    // turn a successful write into an error.
    let api: Api<Stored> = Api::namespaced(ctx.client.clone(), meta.namespace.as_deref().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "qdrant.operator/v1alpha1",
        "kind": "QdrantCluster",
        "status": status,
    });
    let name = meta.name.as_deref().unwrap_or_default();
    ctx.guard.write(api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))).await??;
    Ok(true)
}

/// Reports a cluster that waits for the user: status, and an Event when the status changed.
async fn block(ctx: &Context, qc: &QdrantCluster, reason: &str, message: String) -> Result<(), Error> {
    ctx.forget(&qc.metadata);
    let st = status::blocked_on(qc, reason, &message, &now());
    if write_status(ctx, &qc.metadata, qc.status.as_ref(), &st).await? {
        ctx.event(&qc.object_ref(&()), EventType::Warning, reason, message).await;
    }
    Ok(())
}

/// Apply errors that only the user can fix: retrying does not help, the status must say it.
fn user_error(e: &Error) -> Option<String> {
    match e {
        Error::Kube(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => Some(s.message.clone()),
        _ => None,
    }
}

/// Reports an object our types cannot decode, on the object itself: nothing else can be
/// done with it until it is fixed, and its next change brings it back here.
async fn report_undecodable(ctx: &Context, stored: &Stored, u: &Undecodable) -> Result<Action, Error> {
    let message = format!("the stored object cannot be decoded, so it is not acted upon: {}", u.error);
    let name = u.metadata.name.as_deref().unwrap_or_default();
    tracing::warn!(cluster = name, namespace = u.metadata.namespace.as_deref().unwrap_or_default(), error = %u.error, "undecodable QdrantCluster");
    let st = status::blocked(name, u.metadata.generation, u.status.as_ref(), "Undecodable", &message, &now());
    if write_status(ctx, &u.metadata, u.status.as_ref(), &st).await? {
        ctx.event(&stored.object_ref(&()), EventType::Warning, "Undecodable", message).await;
    }
    Ok(Action::await_change())
}

async fn reconcile_inner(cached: &Stored, ctx: &Context) -> Result<Action, Error> {
    // Act on the object as it is now, not as the cache last saw it: after an API-server
    // outage the cache can be behind, and a new leader must not apply an old spec.
    let api: Api<Stored> = Api::namespaced(ctx.client.clone(), cached.meta().namespace.as_deref().unwrap_or_default());
    let Some(stored) = api.get_opt(&cached.name_any()).await? else {
        ctx.forget(cached.meta());
        return Ok(Action::await_change());
    };
    let qc = match &stored.0 {
        Ok(qc) => qc,
        Err(u) => {
            ctx.forget(cached.meta());
            return report_undecodable(ctx, &stored, u).await;
        }
    };
    if qc.metadata.deletion_timestamp.is_some() {
        // Children carry owner references; the garbage collector removes them. A deletion is
        // the user's word, paused or not.
        drop_legacy_finalizer(ctx, qc).await?;
        ctx.forget(&qc.metadata);
        return Ok(Action::await_change());
    }
    if qc.spec.paused {
        ctx.forget(&qc.metadata);
        let st = status::paused(qc, &now());
        if write_status(ctx, &qc.metadata, qc.status.as_ref(), &st).await? {
            ctx.event(&qc.object_ref(&()), EventType::Normal, "Paused", status::PAUSED_MESSAGE.into()).await;
        }
        return Ok(Action::await_change());
    }
    drop_legacy_finalizer(ctx, qc).await?;
    if let Err(problems) = validate::validate(qc) {
        block(ctx, qc, "InvalidSpec", problems.join("; ")).await?;
        return Ok(Action::await_change());
    }
    // Nothing is written unless every object it would write is this cluster's own or new.
    let (conflicts, observed) = apply::name_conflicts(&ctx.client, qc, &build::planned_children(qc)).await?;
    if !conflicts.is_empty() {
        block(ctx, qc, "NameConflict", conflicts.join("; ")).await?;
        return Ok(Action::requeue(RECHECK));
    }
    let missing = apply::missing_secrets(&ctx.client, qc, &validate::referenced_secrets(qc)).await?;
    if !missing.is_empty() {
        block(ctx, qc, "SecretNotFound", missing.join("; ")).await?;
        return Ok(Action::requeue(RECHECK));
    }
    let (ns, name) = (qc.namespace().unwrap_or_default(), qc.name_any());
    let live = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns).get_opt(&name).await?;
    if live.as_ref().is_some_and(|s| s.metadata.deletion_timestamp.is_some()) {
        // Deleted without its Pods for new claim templates: created again once it is gone.
        return Ok(Action::requeue(RECREATE_POLL));
    }
    let live_replicas = live.as_ref().and_then(|s| s.spec.as_ref()?.replicas).unwrap_or(0);
    let (keys, generated) = apply::resolve_keys(&ctx.client, &ctx.guard, qc).await?;
    let tls = apply::resolve_tls(&ctx.client, qc, qc.spec.replicas.max(live_replicas)).await?;
    let access = health::access(ctx, qc, keys.api.clone(), tls.as_ref().map(|(m, _)| m.ca_cert.as_str())).await?;
    let scaling = scaling::next(ctx, qc, &access).await?;
    let live_inputs = match observe_live(ctx, qc, live.as_ref(), &keys).await? {
        Ok(l) => l,
        // The StatefulSet was just deleted without its Pods, to be created with larger volumes.
        Err(action) => return Ok(action),
    };
    let inputs = build::Inputs {
        keys,
        generated,
        tls: tls.as_ref().map(|(m, _)| m.clone()),
        live: live_inputs,
    };
    // Without a StatefulSet (re-created, or deleted by hand), its Pods may still run: the new
    // one keeps every one of them, and a scale-down then drains them as usual.
    let orphans = if live.is_none() { ctx.pods.ordinals_end(&ns, &name) } else { 0 };
    let children = build::build(qc, &inputs).keeping_pods(scaling.keep.max(orphans));
    let sts = match apply::apply_children(&ctx.client, &ctx.guard, &ctx.applied, &observed, qc, children).await {
        Ok(sts) => sts,
        Err(e) => {
            if let Some(msg) = user_error(&e) {
                block(ctx, qc, "ApplyFailed", msg).await?;
            }
            return Err(e);
        }
    };
    // A rolling restart waits for any scaling to finish: both move Qdrant's peers.
    let (op, requeue) = match scaling.op {
        Some(op) => (Some(op), scaling.requeue),
        None => {
            let restart = restart::step(ctx, qc, &sts, &access).await?;
            (restart.op, restart.requeue.or(scaling.requeue))
        }
    };
    let old = qc.status.clone().unwrap_or_default();
    let healthy = health::refresh(ctx, qc, &sts, &access, op).await?;
    ctx.set_access(&qc.metadata, access);
    let obj = qc.object_ref(&());
    if old.observed_generation.is_none() {
        ctx.event(&obj, EventType::Normal, "Created", format!("Created the children of {} with {} replicas", qc.name_any(), qc.spec.replicas)).await;
    } else if old.observed_generation != qc.metadata.generation {
        match old.replicas {
            Some(r) if r != qc.spec.replicas => ctx.event(&obj, EventType::Normal, "Scaled", format!("Scaled from {r} to {} replicas", qc.spec.replicas)).await,
            _ => ctx.event(&obj, EventType::Normal, "Updated", format!("Applied generation {}", qc.metadata.generation.unwrap_or(0))).await,
        }
    }
    // Qdrant's state changes without any Kubernetes event: `health::refresh_loop` looks again,
    // or this reconcile, soon, while an operation goes on, and while a peer may have been
    // lost (that is only handled here; a Pod that crash-loops changes nothing we watch).
    let requeue = requeue.or_else(|| (!healthy && volumes::recorded(qc)).then_some(RECHECK));
    // The certificates the operator made are renewed when due, whatever else happens.
    let requeue = [requeue, tls.map(|(_, due)| due.max(Duration::from_secs(1)))].into_iter().flatten().min();
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// What the live StatefulSet fixes for the build: its immutable fields, the claim templates
/// (see `claims`), and the takeover record. When larger volumes are due, grows the claims and
/// deletes the StatefulSet without its Pods instead, and says when to look again (`Err`).
async fn observe_live(ctx: &Context, qc: &QdrantCluster, live: Option<&StatefulSet>, keys: &build::Keys) -> Result<Result<build::Live, Action>, Error> {
    let Some(sts) = live else { return Ok(Ok(build::Live::default())) };
    let spec = sts.spec.as_ref();
    let templates = spec.and_then(|s| s.volume_claim_templates.clone()).unwrap_or_default();
    let mut plan = claims::plan(Some(&templates), &build::claim_templates(qc));
    if !plan.refused.is_empty() && qc.status.as_ref().and_then(|s| s.observed_generation) != qc.metadata.generation {
        ctx.event(&qc.object_ref(&()), EventType::Warning, "VolumesUnchanged", plan.refused.join("; ")).await;
    }
    if plan.recreate {
        // Claim templates change only by re-creating the StatefulSet, and only between
        // operations: an operation's Pods count is the StatefulSet's.
        let idle = qc.status.as_ref().and_then(|s| s.operation.as_ref()).is_none();
        if idle {
            match claims::resize(ctx, qc, sts, &plan).await? {
                None => return Ok(Err(Action::requeue(RECREATE_POLL))),
                // Tried again on the cluster's next change (a StorageClass is not watched).
                Some(refusal) => ctx.event(&qc.object_ref(&()), EventType::Warning, "VolumeExpansionFailed", refusal).await,
            }
        }
        plan.templates = templates;
    }
    // A StatefulSet taken over keeps its Pods running unless they must restart to use other
    // keys than those they started with (a spec that names another key, say).
    let foreign = !apply::managed_by_us(&sts.metadata);
    let adoption = match foreign {
        true => match apply::keys_in_effect(&ctx.client, qc).await? {
            Some(running) if running == *keys => adoption(sts),
            _ => None,
        },
        false => adoption(sts),
    };
    if foreign {
        let pods = match adoption {
            Some(_) => "its Pods keep running",
            None => "its Pods restart one at a time, to use other keys than those they started with",
        };
        ctx.event(&qc.object_ref(&()), EventType::Normal, "Adopted", format!("Took over the StatefulSet {} and its children from their previous manager; {pods}", sts.name_any())).await;
    }
    Ok(Ok(build::Live { pod_management_policy: spec.and_then(|s| s.pod_management_policy.clone()), claim_templates: Some(plan.templates), adoption }))
}

/// The takeover record of a live StatefulSet: a new one when another manager made it (it
/// lacks our `managed-by` label), else the one its annotation keeps, if any.
fn adoption(sts: &StatefulSet) -> Option<build::Adoption> {
    if !apply::managed_by_us(&sts.metadata) {
        let revision = sts.status.as_ref().and_then(|s| s.update_revision.clone().or_else(|| s.current_revision.clone()))?;
        return Some(build::Adoption { revision, template: None });
    }
    sts.annotations().get(build::ADOPTED_ANNOTATION).and_then(|v| build::Adoption::parse(v))
}

/// Removes the older JavaScript operator's finalizer, in a patch that fails if the object
/// changed since it was read.
async fn drop_legacy_finalizer(ctx: &Context, qc: &QdrantCluster) -> Result<(), Error> {
    let Some(finalizers) = qc.metadata.finalizers.as_ref().filter(|f| f.iter().any(|f| f == LEGACY_FINALIZER)) else { return Ok(()) };
    let rest: Vec<&String> = finalizers.iter().filter(|f| *f != LEGACY_FINALIZER).collect();
    let api: Api<Stored> = Api::namespaced(ctx.client.clone(), &qc.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"resourceVersion": qc.metadata.resource_version, "finalizers": rest}});
    ctx.guard.write(api.patch(&qc.name_any(), &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &Patch::Merge(&patch))).await??;
    ctx.event(&qc.object_ref(&()), EventType::Normal, "LegacyFinalizerRemoved", format!("Removed the finalizer {LEGACY_FINALIZER} of the older operator, which only that operator removed")).await;
    Ok(())
}

/// Whether a Secret change concerns a cluster: one it takes keys or its TLS certificate from.
fn references_secret(qc: &QdrantCluster, namespace: Option<&str>, secret: &str) -> bool {
    let spec = &qc.spec;
    qc.metadata.namespace.as_deref() == namespace
        && (spec.apikey_secret_key_ref.as_ref().is_some_and(|r| r.name == secret)
            || spec.read_apikey_secret_key_ref.as_ref().is_some_and(|r| r.name == secret)
            || (spec.tls.enabled && spec.tls.secret_name.as_deref() == Some(secret)))
}

/// Runs on every replica. A follower returns at once without writing; the leader runs the
/// reconcile inside its current term, so losing the Lease cancels it.
pub async fn reconcile(obj: Arc<Stored>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(term) = ctx.terms.current() else { return Ok(Action::await_change()) };
    let start = Instant::now();
    let result = term.run(reconcile_inner(&obj, &ctx)).await.unwrap_or(Err(Error::Cancelled));
    let m = &ctx.metrics;
    m.reconcile_duration_seconds.with_label_values(&["QdrantCluster"]).observe(start.elapsed().as_secs_f64());
    match &result {
        Ok(_) => {
            m.reconcile_total.with_label_values(&["QdrantCluster", "success"]).inc();
            ctx.failures().remove(&key(obj.meta()));
        }
        Err(e) if e.is_leadership() => {}
        Err(e) => {
            m.reconcile_total.with_label_values(&["QdrantCluster", "error"]).inc();
            m.errors_total.with_label_values(&[e.category()]).inc();
        }
    }
    result
}

/// Failed reconciles are retried with a per-object exponential backoff: a transient error
/// is retried within a second, a persistent one settles at one retry every five minutes.
/// A failed reconcile of a collection, backup or restore is tried again in a few seconds;
/// leadership ending is no failure (the next leader reconciles everything).
pub fn retry_soon<K: Resource<DynamicType = ()>>(_: Arc<K>, err: &Error, _: Arc<Context>) -> Action {
    if err.is_leadership() {
        return Action::await_change();
    }
    tracing::warn!(error = %err, kind = %K::kind(&()), "reconcile failed");
    Action::requeue(RETRY_SOON)
}

pub fn error_policy(obj: Arc<Stored>, err: &Error, ctx: Arc<Context>) -> Action {
    if err.is_leadership() {
        // The next leader reconciles everything when it takes over.
        return Action::await_change();
    }
    let n = {
        let mut failures = ctx.failures();
        let n = failures.entry(key(obj.meta())).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = Context::retry_after(n);
    tracing::warn!(cluster = %obj.name_any(), namespace = %obj.namespace().unwrap_or_default(), error = %err, attempt = n, retry_in_seconds = delay.as_secs_f64(), "reconcile failed");
    Action::requeue(delay)
}

/// Drops the errors of one watch, which has already paused for them with its own
/// [`watch_backoff`]. The controller merges its watches into one stream and would otherwise
/// pause all of them on any one's error: after an API-server restart every watch fails a few
/// times (RBAC and the CRD's watch cache are not ready yet), and those pauses in a row kept
/// the QdrantCluster watch down for 12 s after the API server was back.
fn own_backoff<T: Send>(watch: impl Stream<Item = Result<T, watcher::Error>> + Send) -> impl Stream<Item = Result<T, watcher::Error>> + Send {
    watch.filter_map(|event| {
        futures::future::ready(match event {
            Ok(object) => Some(Ok(object)),
            Err(e) => {
                tracing::debug!(error = %e, "controller watch failed; it restarts after its backoff");
                None
            }
        })
    })
}

/// Runs the controller until `shutdown` resolves and in-flight reconciles finish.
pub async fn run(
    ctx: Arc<Context>,
    watch_client: Client,
    namespace: Option<String>,
    reconcile_all: impl Stream<Item = ()> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ready: Arc<AtomicBool>,
) {
    let client = watch_client;
    fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>>(c: &Client, ns: &Option<String>) -> Api<K> {
        match ns {
            Some(ns) => Api::namespaced(c.clone(), ns),
            None => Api::all(c.clone()),
        }
    }
    let (store, writer) = reflector::store();
    // A change of the status alone triggers nothing: the status is the operator's own, and each
    // write of it would otherwise start another reconcile, which writes it again whenever what
    // it reports moved meanwhile (an operation's step, Qdrant's health). What needs a closer
    // look asks for it with a requeue.
    let user_changes = predicates::generation.combine(predicates::labels).combine(predicates::annotations).combine(predicates::finalizers);
    let qcs = watcher(api::<Stored>(&client, &namespace), watcher::Config::default())
        .backoff(watch_backoff())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(user_changes, Default::default());
    // Children are watched by label, so the caches hold only our objects (not every Secret),
    // and as metadata only: an owner reference is all a trigger needs.
    fn child<K>(c: &Client, ns: &Option<String>) -> impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        own_backoff(watcher(api::<PartialObjectMeta<K>>(c, ns), watcher::Config::default().labels(MANAGED_BY_SELECTOR)).backoff(watch_backoff()).touched_objects())
    }
    let controller = Controller::for_stream(own_backoff(qcs), store)
        .with_config(kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
        .owns_stream(child::<StatefulSet>(&client, &namespace))
        .owns_stream(child::<Service>(&client, &namespace))
        .owns_stream(child::<ConfigMap>(&client, &namespace))
        .owns_stream(child::<Secret>(&client, &namespace))
        .owns_stream(child::<PodDisruptionBudget>(&client, &namespace))
        .owns_stream(child::<NetworkPolicy>(&client, &namespace));
    // Users' Secrets that clusters take keys or certificates from carry no label of ours: every
    // Secret is watched, as metadata and without a cache, and mapped to the clusters that
    // refer to it, so that a rotated key rolls the Pods at once.
    let referrers = controller.store();
    let user_secrets = own_backoff(watcher(api::<PartialObjectMeta<Secret>>(&client, &namespace), watcher::Config::default()).backoff(watch_backoff()).touched_objects());
    let controller = controller.watches_stream(user_secrets, move |secret: PartialObjectMeta<Secret>| {
        let (ns, name) = (secret.metadata.namespace.clone(), secret.metadata.name.clone().unwrap_or_default());
        referrers.state().into_iter().filter_map(|s| s.0.as_ref().ok().filter(|qc| references_secret(qc, ns.as_deref(), &name)).map(|qc| reflector::ObjectRef::new(&qc.name_any()).within(&qc.namespace().unwrap_or_default()))).collect::<Vec<_>>()
    });
    let store = controller.store();
    tokio::spawn(ctx.pods.clone().run(api::<Pod>(&client, &namespace)));
    tokio::spawn(health::refresh_loop(ctx.clone(), store.clone()));
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
            let state = store.state();
            metrics.clusters_managed.set(state.len() as i64);
            metrics.undecodable_objects.with_label_values(&["QdrantCluster"]).set(state.iter().filter(|s| s.0.is_err()).count() as i64);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    // Both controllers reconcile everything when this replica becomes the leader, and stop
    // together.
    let (all_tx, _) = tokio::sync::broadcast::channel::<()>(4);
    let fan_out = all_tx.clone();
    tokio::spawn(reconcile_all.for_each(move |()| {
        let _ = fan_out.send(());
        futures::future::ready(())
    }));
    let every = |tx: &tokio::sync::broadcast::Sender<()>| futures::stream::unfold(tx.subscribe(), |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return Some(((), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let shutdown = futures::FutureExt::shared(shutdown);
    let clusters = controller
        .reconcile_all_on(every(&all_tx))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        });
    let collections = Controller::new(api::<crate::collections::crd::QdrantCollection>(&client, &namespace), watcher::Config::default().any_semantic())
        .with_config(kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
        .reconcile_all_on(every(&all_tx))
        .graceful_shutdown_on(shutdown.clone())
        .run(crate::collections::reconcile::reconcile, retry_soon, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "collection controller event");
            }
        });
    let backups = Controller::new(api::<crate::backups::crd::QdrantCollectionBackup>(&client, &namespace), watcher::Config::default().any_semantic())
        .reconcile_all_on(every(&all_tx))
        .graceful_shutdown_on(shutdown.clone())
        .run(crate::backups::reconcile::reconcile, retry_soon, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "backup controller event");
            }
        });
    let restores = Controller::new(api::<crate::backups::crd::QdrantCollectionRestore>(&client, &namespace), watcher::Config::default().any_semantic())
        .reconcile_all_on(every(&all_tx))
        .graceful_shutdown_on(shutdown)
        .run(crate::backups::restore::reconcile, retry_soon, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "restore controller event");
            }
        });
    futures::join!(clusters, collections, backups, restores);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_error_is_dropped_not_passed_on_to_pause_the_other_watches() {
        let events = futures::stream::iter(vec![Ok(1), Err(watcher::Error::NoResourceVersion), Ok(2)]);
        let seen: Vec<i32> = own_backoff(events).map(|e| e.expect("errors are dropped")).collect().await;
        assert_eq!(seen, vec![1, 2]);
    }

    #[test]
    fn retries_back_off_per_failure_from_a_second_to_five_minutes() {
        let within = |d: Duration, base: Duration| d >= base && d <= base.mul_f64(1.1);
        assert!(within(Context::retry_after(1), RETRY_MIN));
        assert!(within(Context::retry_after(2), RETRY_MIN * 2));
        assert!(within(Context::retry_after(5), RETRY_MIN * 16));
        // Capped, also for a count that would overflow a shift.
        assert!(within(Context::retry_after(12), RETRY_MAX));
        assert!(within(Context::retry_after(u32::MAX), RETRY_MAX));
    }
}
