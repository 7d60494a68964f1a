//! Which volume each Qdrant peer lives on. A peer's identity and data are on its volume; when
//! its Pod comes back on another one (a replaced disk, a deleted claim, an emptyDir after the
//! Pod was replaced), the peer is gone for good, but Qdrant keeps it in consensus, and its
//! Pod's new peer cannot join under the same URI. Knowing the volume makes that case certain,
//! so the operator can forget the old peer safely (`scaling`), instead of guessing from a Pod
//! that merely does not answer.
//!
//! The record is `status.qdrant.peers[].volume`: kept in the status, it survives leader
//! changes, and a peer never seen answering from its Pod has none, so it is never judged lost.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;
use kube::ResourceExt;

use super::{build, Context};
use crate::crd::{QdrantCluster, QdrantHealthStatus};
use crate::operations::health::Health;
use crate::Error;

/// The volume a Pod runs on now: its claim's uid with persistence, else the Pod's own uid (an
/// emptyDir lives and dies with its Pod). `None` when there is no such Pod or claim.
async fn volume_of(ctx: &Context, qc: &QdrantCluster, pod: &str) -> Result<Option<String>, Error> {
    let ns = qc.namespace().unwrap_or_default();
    if qc.spec.persistence.is_some() {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
        return Ok(claims.get_metadata_opt(&build::storage_claim_name(pod)).await?.and_then(|c| c.metadata.uid));
    }
    let pods = ctx.pods.states(&ns, &qc.name_any()).unwrap_or_default();
    Ok(pods.into_iter().find(|(name, _)| name == pod).map(|(_, s)| s.uid).filter(|uid| !uid.is_empty()))
}

/// Adds each peer's volume to `status` (made from `health`): the one recorded in `old` for the
/// same peer, else, for a peer that answered from its Pod just now, that Pod's volume. Looks a
/// volume up only for a peer without a record, so a settled cluster costs nothing.
pub async fn record(ctx: &Context, qc: &QdrantCluster, health: &Health, status: &mut QdrantHealthStatus, old: Option<&QdrantHealthStatus>) -> Result<(), Error> {
    let recorded: BTreeMap<&str, &str> = old.map(|o| o.peers.iter().filter_map(|p| Some((p.peer_id.as_str(), p.volume.as_deref()?))).collect()).unwrap_or_default();
    for peer in &mut status.peers {
        if let Some(v) = recorded.get(peer.peer_id.as_str()) {
            peer.volume = Some((*v).to_owned());
            continue;
        }
        let answered = peer.peer_id.parse::<u64>().ok().and_then(|id| health.answering.get(&id));
        if let (Some(pod), Some(from)) = (&peer.pod, answered) {
            if pod == from {
                peer.volume = volume_of(ctx, qc, pod).await?;
            }
        }
    }
    Ok(())
}

/// Whether a peer may have been lost, as far as the stored status tells without asking
/// anyone: Qdrant was not healthy at the last look, and some peer's volume is recorded. Only
/// then is [`lost`] worth its requests; a cluster whose peers never answered (or that is
/// healthy) costs nothing.
pub fn may_have_lost(qc: &QdrantCluster) -> bool {
    qc.status.as_ref().and_then(|s| s.qdrant.as_ref()).is_some_and(|q| q.health != "Healthy") && recorded(qc)
}

/// Whether the stored status records the volume of any peer.
pub fn recorded(qc: &QdrantCluster) -> bool {
    qc.status.as_ref().and_then(|s| s.qdrant.as_ref()).is_some_and(|q| q.peers.iter().any(|p| p.volume.is_some()))
}

/// The peers whose data is gone: recorded on a volume that their Pod no longer runs on, still
/// in consensus, and not answering for themselves. Each with its Pod.
pub async fn lost(ctx: &Context, qc: &QdrantCluster, health: &Health) -> Result<Vec<(u64, String)>, Error> {
    let Some(old) = qc.status.as_ref().and_then(|s| s.qdrant.as_ref()) else { return Ok(Vec::new()) };
    let mut lost = Vec::new();
    for p in &old.peers {
        // A Pod that answers as another peer is not the old peer's any more in `pod`; its URI
        // still names it.
        let pod = p.pod.clone().or_else(|| pod_in_uri(&p.uri));
        let (Some(pod), Some(volume), Ok(id)) = (pod, &p.volume, p.peer_id.parse::<u64>()) else { continue };
        if !health.peers.iter().any(|h| h.peer_id == id) || health.answering.contains_key(&id) {
            continue;
        }
        if volume_of(ctx, qc, &pod).await?.is_some_and(|now| now != *volume) {
            lost.push((id, pod));
        }
    }
    Ok(lost)
}

/// The Pod a peer URI names: `http://<pod>.<headless service>.<namespace>:6335`.
fn pod_in_uri(uri: &str) -> Option<String> {
    let host = uri.split("://").nth(1)?.split([':', '/']).next()?;
    let pod = host.split('.').next()?;
    // An IP address names no Pod.
    (!pod.is_empty() && host.contains('.') && pod.parse::<u32>().is_err()).then(|| pod.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_named_by_a_peer_uri() {
        assert_eq!(pod_in_uri("http://c-0.c-headless.ns:6335/").as_deref(), Some("c-0"));
        assert_eq!(pod_in_uri("https://c-2.c-headless.ns:6335").as_deref(), Some("c-2"));
        assert_eq!(pod_in_uri("http://10.0.0.7:6335"), None);
        assert_eq!(pod_in_uri("garbage"), None);
    }
}
