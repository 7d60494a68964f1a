//! A slim index of Qdrant Pods, kept by one watch: for each cluster, its Pods' names, whether
//! Kubernetes counts them Ready, and their StatefulSet revision. Health checks and the rolling
//! restart read it instead of listing Pods, so an idle operator sends no LIST, and only these
//! few facts per Pod stay in memory (a Pod object is a few kilobytes).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};

use crate::kube_client::watch_backoff;

/// The Qdrant Pods of every cluster: the selector labels the StatefulSet's template gives
/// them. Not our `managed-by` label: the Pods of a StatefulSet taken over from the older
/// JavaScript operator lack it, and keep running as they are.
const QDRANT_PODS: &str = "component=qdrant,clustername";

/// The label the StatefulSet controller puts on each Pod: the revision it was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// What the index keeps of one Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub uid: String,
    pub ready: bool,
    /// The StatefulSet revision the Pod was made from (`controller-revision-hash`).
    pub revision: Option<String>,
}

/// `(namespace, cluster)` → Pod name → state.
type Pods = HashMap<(String, String), BTreeMap<String, PodState>>;

#[derive(Clone, Default)]
pub struct PodIndex {
    inner: Arc<RwLock<Option<Pods>>>,
}

impl PodIndex {
    /// One past the highest ordinal among the cluster's Pods (0 without any): the Pods a
    /// StatefulSet must keep so that none of them is deleted.
    pub fn ordinals_end(&self, namespace: &str, cluster: &str) -> i32 {
        let pods = self.states(namespace, cluster).unwrap_or_default();
        pods.iter().filter_map(|(p, _)| crate::operations::health::ordinal(p)).map(|o| i32::try_from(o).unwrap_or(i32::MAX - 1) + 1).max().unwrap_or(0)
    }

    /// The Pods of one cluster, as `(name, ready)` by name; `None` until the first listing is
    /// complete, so that a cluster is never judged on a half-filled index.
    pub fn pods(&self, namespace: &str, cluster: &str) -> Option<Vec<(String, bool)>> {
        Some(self.states(namespace, cluster)?.into_iter().map(|(n, s)| (n, s.ready)).collect())
    }

    /// The Pods of one cluster with everything the index keeps of them, by name; `None` until
    /// the first listing is complete.
    pub fn states(&self, namespace: &str, cluster: &str) -> Option<Vec<(String, PodState)>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let pods = inner.as_ref()?;
        Some(pods.get(&(namespace.to_owned(), cluster.to_owned())).map(|m| m.iter().map(|(n, s)| (n.clone(), s.clone())).collect()).unwrap_or_default())
    }

    /// Keeps the index until the watch ends (never, short of the process).
    pub async fn run(self, api: Api<Pod>) {
        let mut events = watcher(api, watcher::Config::default().labels(QDRANT_PODS)).backoff(watch_backoff()).boxed();
        let mut building: Option<Pods> = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.handle(event, &mut building),
                Err(e) => tracing::debug!(error = %e, "Qdrant Pod watch"),
            }
        }
    }

    /// One watch event. A relisting (`Init` … `InitDone`) is built aside and swapped in whole.
    fn handle(&self, event: watcher::Event<Pod>, building: &mut Option<Pods>) {
        match event {
            watcher::Event::Init => *building = Some(Pods::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(b), Some((key, name, state))) = (building.as_mut(), entry(&pod)) {
                    b.entry(key).or_default().insert(name, state);
                }
            }
            watcher::Event::InitDone => *self.write() = Some(building.take().unwrap_or_default()),
            watcher::Event::Apply(pod) => {
                if let (Some(pods), Some((key, name, state))) = (self.write().as_mut(), entry(&pod)) {
                    pods.entry(key).or_default().insert(name, state);
                }
            }
            watcher::Event::Delete(pod) => {
                if let (Some(pods), Some((key, name, _))) = (self.write().as_mut(), entry(&pod)) {
                    if let Some(m) = pods.get_mut(&key) {
                        m.remove(&name);
                        if m.is_empty() {
                            pods.remove(&key);
                        }
                    }
                }
            }
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Pods>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a Pod goes in the index: its cluster (the `clustername` label), name and state.
fn entry(pod: &Pod) -> Option<((String, String), String, PodState)> {
    let cluster = pod.labels().get("clustername")?.clone();
    let state = PodState { uid: pod.metadata.uid.clone().unwrap_or_default(), ready: is_ready(pod), revision: pod.labels().get(REVISION_LABEL).cloned() };
    Some(((pod.namespace().unwrap_or_default(), cluster), pod.name_any(), state))
}

/// Whether Kubernetes counts the Pod Ready (its `Ready` condition is True).
pub fn is_ready(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use kube::api::ObjectMeta;

    fn pod(cluster: &str, name: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), labels: Some([("clustername".to_string(), cluster.to_string())].into()), ..Default::default() },
            status: Some(PodStatus { conditions: Some(vec![PodCondition { type_: "Ready".into(), status: if ready { "True" } else { "False" }.into(), ..Default::default() }]), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn unknown_until_listed_then_follows_the_watch() {
        let index = PodIndex::default();
        let mut b = None;
        assert_eq!(index.pods("ns", "a"), None);
        index.handle(watcher::Event::Init, &mut b);
        index.handle(watcher::Event::InitApply(pod("a", "a-0", true)), &mut b);
        // Half-listed: still unknown.
        assert_eq!(index.pods("ns", "a"), None);
        index.handle(watcher::Event::InitApply(pod("a", "a-1", false)), &mut b);
        index.handle(watcher::Event::InitDone, &mut b);
        assert_eq!(index.pods("ns", "a"), Some(vec![("a-0".into(), true), ("a-1".into(), false)]));
        assert_eq!(index.pods("ns", "b"), Some(vec![]));
        assert_eq!(index.pods("other", "a"), Some(vec![]));

        let mut updated = pod("a", "a-1", true);
        updated.metadata.labels.as_mut().unwrap().insert(REVISION_LABEL.into(), "a-7f".into());
        index.handle(watcher::Event::Apply(updated), &mut b);
        index.handle(watcher::Event::Delete(pod("a", "a-0", true)), &mut b);
        assert_eq!(index.pods("ns", "a"), Some(vec![("a-1".into(), true)]));
        assert_eq!(index.states("ns", "a"), Some(vec![("a-1".into(), PodState { uid: String::new(), ready: true, revision: Some("a-7f".into()) })]));

        // A relisting replaces everything: a Pod deleted while the watch was down is gone.
        index.handle(watcher::Event::Init, &mut b);
        index.handle(watcher::Event::InitApply(pod("b", "b-0", true)), &mut b);
        index.handle(watcher::Event::InitDone, &mut b);
        assert_eq!(index.pods("ns", "a"), Some(vec![]));
        assert_eq!(index.pods("ns", "b"), Some(vec![("b-0".into(), true)]));
    }
}
