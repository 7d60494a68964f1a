//! The Kubernetes half of a health check: which Pods to ask, at which address, with which key
//! and CA. Qdrant itself is asked by `operations::health`, which sees none of this.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use super::build;
use super::Context;
use crate::crd::QdrantCluster;
use crate::operations::health::{self, Health, PodTarget};
use crate::operations::Access;
use crate::Error;

/// The key in a TLS Secret that holds the CA bundle (see `Tls::secret_name`).
pub const CA_KEY: &str = "cacert.pem";

/// Asks every Pod of the cluster how Qdrant is, with the read-write key (the read-only one is
/// refused some of the calls) and the cluster's CA when it serves TLS.
pub async fn check(ctx: &Context, qc: &QdrantCluster, api_key: Option<&str>) -> Result<Health, Error> {
    let ns = qc.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let listed = pods.list(&ListParams::default().labels(&build::selector_string(&qc.name_any()))).await?;
    let ca_pem = match (&qc.spec.tls.enabled, &qc.spec.tls.secret_name) {
        (true, Some(secret)) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            // Checked to exist, with this key, before anything was applied.
            let s = secrets.get(secret).await?;
            Some(s.data.and_then(|mut d| d.remove(CA_KEY)).map(|b| b.0).unwrap_or_default())
        }
        _ => None,
    };
    let access = Access { api_key: api_key.map(str::to_owned), ca_pem };
    let targets = targets(qc, &listed.items);
    let expected = usize::try_from(qc.spec.replicas).unwrap_or(0);
    Ok(health::check(&ctx.qdrant, &access, &targets, expected).await)
}

/// The cluster's Pods as places to ask: each by its DNS name (not its IP, which changes with
/// every restart), with whether Kubernetes counts it Ready.
pub fn targets(qc: &QdrantCluster, pods: &[Pod]) -> Vec<PodTarget> {
    pods.iter()
        .map(|p| {
            let ready = p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let pod = p.name_any();
            PodTarget { base_url: build::rest_url(qc, &pod), pod, kube_ready: ready }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use kube::api::ObjectMeta;

    fn pod(name: &str, ready: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            status: ready.map(|r| PodStatus { conditions: Some(vec![PodCondition { type_: "Ready".into(), status: r.into(), ..Default::default() }]), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn pods_are_asked_by_their_stable_name_and_scheme() {
        let spec = serde_json::from_value(serde_json::json!({"replicas": 2, "image": "qdrant/qdrant:v1.16.3"})).unwrap();
        let mut qc = QdrantCluster::new("c", spec);
        qc.metadata.namespace = Some("ns".into());
        let t = targets(&qc, &[pod("c-0", Some("True")), pod("c-1", Some("False")), pod("c-2", None)]);
        assert_eq!(t[0], PodTarget { pod: "c-0".into(), base_url: "http://c-0.c-headless.ns:6333".into(), kube_ready: true });
        assert!(!t[1].kube_ready && !t[2].kube_ready);
        qc.spec.tls.enabled = true;
        assert_eq!(targets(&qc, &[pod("c-1", None)])[0].base_url, "https://c-1.c-headless.ns:6333");
    }
}
