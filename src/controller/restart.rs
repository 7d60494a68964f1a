//! Gated rolling restarts. The StatefulSet uses `OnDelete`, so a change of image or config
//! restarts no Pod by itself: the operator evicts the Pods made from an older revision, one at
//! a time, and only when the cluster is whole again after the previous one:
//! - every Pod exists, none is terminating, every one is Ready;
//! - Qdrant is healthy: every Pod's peer answers and is a voting member of the consensus, and
//!   every shard replica is Active. Readiness alone is not enough, since Qdrant's `/readyz`
//!   stays ready once it has been, and a restarted peer's replicas may still be recovering.
//!
//! Nothing is remembered in memory: the Pods' revisions against the StatefulSet's
//! `updateRevision` say what is left to restart, so a new leader goes on where the old one
//! stopped. Each eviction names the Pod's uid, so a Pod that was already replaced is never
//! evicted on the strength of an old look at it.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::pods::{is_ready, REVISION_LABEL};
use super::status::{Operation, OP_ROLLING_RESTART};
use super::{build, health, Context};
use crate::crd::{OperationStatus, QdrantCluster};
use crate::operations::health::{ordinal, Health};
use crate::operations::Access;
use crate::Error;

/// How soon to look again while a restarted Pod comes back.
const POLL: Duration = Duration::from_secs(1);

/// One Qdrant Pod as the rolling restart sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub uid: String,
    pub ordinal: u32,
    pub ready: bool,
    pub terminating: bool,
    pub revision: Option<String>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing to restart, and nothing restarted is still coming back.
    Idle,
    /// Wait: the reason, and the Pod waited for if one is.
    Wait { step: String, pod: Option<String> },
    /// Restart (evict) this Pod.
    Restart { pod: String, uid: String, step: String },
}

/// The next step of a rolling restart, from the Pods (those of ordinals below `replicas`), the
/// StatefulSet's `updateRevision`, and Qdrant's health (`Err` says why it is not healthy).
/// `recorded` is whether a rolling restart is in the status: it stays until the last restarted
/// Pod is back, so the status says the operation is over only when it is.
///
/// The Pod restarted next is the highest ordinal from an older revision, the Raft leader's Pod
/// last (each restart of a leader costs an election). An older Pod that is not Ready goes first
/// and without waiting for Qdrant: it serves nothing now, and a broken config is only fixed by
/// restarting the Pods that run it.
pub fn next(pods: &[PodView], replicas: u32, update_revision: &str, qdrant: Result<(), String>, leader_pod: Option<&str>, recorded: bool) -> Next {
    let outdated = |p: &&PodView| p.revision.as_deref() != Some(update_revision);
    let wait = |step: String, pod: Option<&PodView>| Next::Wait { step, pod: pod.map(|p| p.name.clone()) };
    if !pods.iter().any(|p| outdated(&p)) && !recorded {
        return Next::Idle;
    }
    if let Some(p) = pods.iter().find(|p| p.terminating) {
        return wait(format!("waiting for {} to stop", p.name), Some(p));
    }
    if let Some(missing) = (0..replicas).find(|i| !pods.iter().any(|p| p.ordinal == *i)) {
        return Next::Wait { step: format!("waiting for Pod ordinal {missing} to be created"), pod: None };
    }
    let not_ready: Vec<&PodView> = pods.iter().filter(|p| !p.ready).collect();
    if let Some(first) = not_ready.first() {
        if let Some(p) = not_ready.iter().filter(|p| outdated(p)).max_by_key(|p| p.ordinal) {
            if not_ready.iter().all(outdated) {
                return Next::Restart { pod: p.name.clone(), uid: p.uid.clone(), step: format!("restarting {}, which is not Ready", p.name) };
            }
        }
        return wait(format!("waiting for {} to be Ready", first.name), Some(first));
    }
    if let Err(why) = qdrant {
        return Next::Wait { step: format!("waiting for Qdrant to be healthy: {why}"), pod: None };
    }
    let is_leader = |p: &PodView| leader_pod == Some(p.name.as_str());
    match pods.iter().filter(outdated).max_by_key(|p| (!is_leader(p), p.ordinal)) {
        Some(p) => Next::Restart { pod: p.name.clone(), uid: p.uid.clone(), step: format!("restarting {}", p.name) },
        None => Next::Idle,
    }
}

/// What the reconcile does about restarts: the operation to show and when to look again.
pub struct Decision {
    pub op: Option<Operation>,
    pub requeue: Option<Duration>,
}

/// Takes the next step of the rolling restart of `sts`'s Pods, if one is due.
pub async fn step(ctx: &Context, qc: &QdrantCluster, sts: &StatefulSet, access: &Access) -> Result<Decision, Error> {
    let idle = Decision { op: None, requeue: None };
    let recorded = qc.status.as_ref().and_then(|s| s.operation.as_ref()).is_some_and(|o| o.type_ == OP_ROLLING_RESTART);
    let status = sts.status.as_ref();
    // Until the StatefulSet controller has seen the current template, its updateRevision is
    // the previous one. Its status update, when it has, brings the next reconcile.
    if status.and_then(|s| s.observed_generation) < sts.metadata.generation {
        return Ok(idle);
    }
    let Some(update_revision) = status.and_then(|s| s.update_revision.clone()) else { return Ok(idle) };
    let (ns, name) = (qc.namespace().unwrap_or_default(), qc.name_any());
    // The index says cheaply whether anything is left to do; the decision itself is taken on
    // a fresh listing, so it never acts on a Pod the watch has not caught up with.
    let adopted = sts.annotations().get(build::ADOPTED_ANNOTATION).and_then(|v| build::Adoption::parse(v)).map(|a| a.revision);
    let stale = ctx.pods.states(&ns, &name).is_none_or(|pods| pods.iter().any(|(_, s)| s.revision.as_deref() != Some(&update_revision) && s.revision != adopted));
    if !stale && !recorded {
        return Ok(idle);
    }
    let replicas = u32::try_from(qc.spec.replicas).unwrap_or(0);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let listed = pods_api.list(&ListParams::default().labels(&build::selector_string(&name))).await?;
    let pods = as_current(listed.items.iter().filter_map(view).filter(|p| p.ordinal < replicas).collect(), adopted.as_deref(), &update_revision);
    let (_, qdrant) = health::observe(ctx, qc, access).await?;
    let gate = gate(&qdrant, &pods, &update_revision);
    let op = |step: String, pod: Option<String>| Some(Operation { status: OperationStatus { type_: OP_ROLLING_RESTART.into(), from_replicas: qc.spec.replicas, step, pod, transfer: None }, blocked: None });
    Ok(match next(&pods, replicas, &update_revision, gate, qdrant.leader_pod.as_deref(), recorded) {
        Next::Idle => {
            if recorded {
                ctx.event(&qc.object_ref(&()), EventType::Normal, "RolledOut", format!("Every Pod runs revision {update_revision}")).await;
            }
            idle
        }
        Next::Wait { step, pod } => Decision { op: op(step, pod), requeue: Some(POLL) },
        Next::Restart { pod, uid, step } => {
            let params = EvictParams { delete_options: Some(DeleteParams { preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }), ..Default::default() }), ..Default::default() };
            match ctx.guard.write(pods_api.evict(&pod, &params)).await? {
                Ok(_) => ctx.event(&qc.object_ref(&()), EventType::Normal, "Restarting", format!("Evicted {pod} to restart it on revision {update_revision}")).await,
                // Refused by a disruption budget (429), or the Pod changed or went (409, 404):
                // the next look decides again.
                Err(kube::Error::Api(s)) if [404, 409, 429].contains(&s.code) => tracing::info!(pod, code = s.code, reason = %s.message, "eviction refused; looking again"),
                Err(e) => return Err(e.into()),
            }
            Decision { op: op(step, Some(pod)), requeue: Some(POLL) }
        }
    })
}

/// Whether Qdrant lets the next Pod restart: it is healthy, or the only thing wrong is that
/// Pods of the older revision refuse the operator's API key. That is a key rotation: the
/// operator already uses the new key, which those Pods only learn by restarting, so it cannot
/// see their state. Then the restarted Pods' view must show every replica Active, and, until
/// one of them answers, readiness is all there is to go by (as for a StatefulSet's own
/// rolling update).
fn gate(qdrant: &Health, pods: &[PodView], update_revision: &str) -> Result<(), String> {
    if qdrant.is_healthy() {
        return Ok(());
    }
    let outdated = |pod: &String| pods.iter().any(|p| &p.name == pod && p.revision.as_deref() != Some(update_revision));
    let restarted_answer = pods.iter().filter(|p| p.revision.as_deref() == Some(update_revision)).all(|p| qdrant.answering.values().any(|pod| *pod == p.name));
    let rotating = !qdrant.rejected.is_empty() && qdrant.rejected.iter().all(outdated) && qdrant.unreachable.is_empty() && restarted_answer;
    if rotating && qdrant.replicas_not_active.unwrap_or(0) == 0 {
        return Ok(());
    }
    Err(qdrant.message())
}

/// Pods of the revision a StatefulSet had when it was taken over count as current (see
/// `build::Adoption`; the annotation is there only while the Pod template is unchanged since).
fn as_current(mut pods: Vec<PodView>, adopted: Option<&str>, update_revision: &str) -> Vec<PodView> {
    for p in pods.iter_mut().filter(|p| adopted.is_some() && p.revision.as_deref() == adopted) {
        p.revision = Some(update_revision.to_owned());
    }
    pods
}

/// A listed Pod as [`next`] needs it; `None` for a Pod without a name or ordinal.
fn view(p: &Pod) -> Option<PodView> {
    let name = p.metadata.name.clone()?;
    let ordinal = ordinal(&name)?;
    Some(PodView {
        uid: p.metadata.uid.clone().unwrap_or_default(),
        ordinal,
        ready: is_ready(p),
        terminating: p.metadata.deletion_timestamp.is_some(),
        revision: p.labels().get(REVISION_LABEL).cloned(),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ordinal: u32, revision: &str) -> PodView {
        PodView { name: format!("c-{ordinal}"), uid: format!("u{ordinal}"), ordinal, ready: true, terminating: false, revision: Some(revision.into()) }
    }

    fn restarts(n: &Next) -> Option<&str> {
        match n {
            Next::Restart { pod, .. } => Some(pod),
            _ => None,
        }
    }

    #[test]
    fn pods_of_the_revision_taken_over_are_not_restarted_while_the_template_is_unchanged() {
        let pods = vec![pod(0, "js-rev"), pod(1, "js-rev"), pod(2, "new")];
        assert_eq!(next(&as_current(pods.clone(), Some("js-rev"), "new"), 3, "new", Ok(()), None, false), Next::Idle);
        // Without the record (the template changed since), they are restarted.
        assert_eq!(restarts(&next(&as_current(pods, None, "new"), 3, "new", Ok(()), None, false)), Some("c-1"));
    }

    #[test]
    fn nothing_to_do_when_every_pod_runs_the_update_revision() {
        let pods = [pod(0, "new"), pod(1, "new")];
        assert_eq!(next(&pods, 2, "new", Ok(()), None, false), Next::Idle);
        // A restart in the status ends only once Qdrant is healthy again.
        assert!(matches!(next(&pods, 2, "new", Err("replicas".into()), None, true), Next::Wait { .. }));
        assert_eq!(next(&pods, 2, "new", Ok(()), None, true), Next::Idle);
    }

    #[test]
    fn highest_ordinal_first_and_the_raft_leader_last() {
        let pods = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        assert_eq!(restarts(&next(&pods, 3, "new", Ok(()), None, false)), Some("c-2"));
        assert_eq!(restarts(&next(&pods, 3, "new", Ok(()), Some("c-2"), false)), Some("c-1"));
        let pods = [pod(0, "old"), pod(1, "new"), pod(2, "new")];
        assert_eq!(restarts(&next(&pods, 3, "new", Ok(()), Some("c-0"), false)), Some("c-0"));
    }

    #[test]
    fn never_two_at_once_and_never_before_qdrant_is_healthy() {
        let mut pods = vec![pod(0, "old"), pod(1, "old"), pod(2, "new")];
        // The restarted Pod is not Ready yet.
        pods[2].ready = false;
        assert_eq!(next(&pods, 3, "new", Ok(()), None, true), Next::Wait { step: "waiting for c-2 to be Ready".into(), pod: Some("c-2".into()) });
        // Ready, but its peer is not back in consensus, or a replica not Active.
        pods[2].ready = true;
        assert!(matches!(next(&pods, 3, "new", Err("peer of c-2 not in consensus".into()), None, true), Next::Wait { pod: None, .. }));
        // Still terminating, or gone and not created again.
        pods[2].terminating = true;
        assert!(matches!(next(&pods, 3, "new", Ok(()), None, true), Next::Wait { .. }));
        assert!(matches!(next(&pods[..2], 3, "new", Ok(()), None, true), Next::Wait { pod: None, .. }));
        pods[2].terminating = false;
        assert_eq!(restarts(&next(&pods, 3, "new", Ok(()), None, true)), Some("c-1"));
    }

    #[test]
    fn an_old_pod_that_is_not_ready_goes_first_without_waiting_for_qdrant() {
        let mut pods = vec![pod(0, "old"), pod(1, "old"), pod(2, "old")];
        pods[0].ready = false;
        assert_eq!(restarts(&next(&pods, 3, "new", Err("c-0 unreachable".into()), None, false)), Some("c-0"));
        // Not when an up-to-date Pod is the one not Ready: that one is coming back.
        pods[2].revision = Some("new".into());
        pods[2].ready = false;
        assert!(matches!(next(&pods, 3, "new", Err("c-0 unreachable".into()), None, true), Next::Wait { .. }));
    }

    #[test]
    fn a_key_rotation_goes_on_while_only_older_pods_refuse_the_new_key() {
        let mut h = crate::operations::health::assess(&[], 3);
        let pods = [pod(0, "old"), pod(1, "old"), pod(2, "new")];
        h.rejected = ["c-0".to_string(), "c-1".to_string()].into();
        h.replicas_not_active = Some(0);
        // The restarted Pod must answer as a peer first.
        assert!(gate(&h, &pods, "new").is_err());
        h.answering.insert(7, "c-2".into());
        assert_eq!(gate(&h, &pods, "new"), Ok(()));
        // Not while a restarted Pod's view shows a replica recovering...
        h.replicas_not_active = Some(1);
        assert!(gate(&h, &pods, "new").is_err());
        // ...nor when an up-to-date Pod refuses the key, or a Pod does not answer at all.
        h.replicas_not_active = Some(0);
        h.rejected.insert("c-2".into());
        assert!(gate(&h, &pods, "new").is_err());
        h.rejected.remove("c-2");
        h.unreachable.insert("c-1".into());
        assert!(gate(&h, &pods, "new").is_err());
    }

    #[test]
    fn a_pod_without_revision_counts_as_outdated() {
        let mut pods = vec![pod(0, "new")];
        pods[0].revision = None;
        assert_eq!(restarts(&next(&pods, 1, "new", Ok(()), None, false)), Some("c-0"));
    }
}
