//! The StatefulSet's volume claim templates, which Kubernetes never lets change in place.
//!
//! The templates of an existing StatefulSet are kept as they are, byte for byte, unless the
//! spec asks for more: a template with a larger size, or a new template. Then every existing
//! claim is grown in place first, and the StatefulSet is deleted without its Pods (orphan
//! propagation) and created again with the new templates; its Pods keep running and are
//! adopted by the new StatefulSet, their revision unchanged. A smaller size or another storage
//! class is refused, and reported, while every other change of the spec still applies: a
//! change of size never blocks the cluster.
//!
//! Keeping the existing templates also adopts a StatefulSet another operator created with
//! other labels on its templates: re-applying ours would be refused (422) forever.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::ResourceExt;

use super::apply::FIELD_MANAGER;
use super::Context;
use crate::crd::QdrantCluster;
use crate::Error;

/// What to do with the claim templates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClaimPlan {
    /// The templates the StatefulSet gets.
    pub templates: Vec<PersistentVolumeClaim>,
    /// Templates whose existing claims must first grow to the given size.
    pub expand: Vec<(String, Quantity)>,
    /// The templates differ from the live StatefulSet's: it must be re-created.
    pub recreate: bool,
    /// What the spec asks that is not done, for the status.
    pub refused: Vec<String>,
}

/// A quantity in bytes (approximately, for comparing sizes); `None` when it is not one.
pub fn bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let end = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(q.len());
    let (num, suffix) = q.split_at(end);
    let n: f64 = num.parse().ok()?;
    let m = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * m)
}

fn size(t: &PersistentVolumeClaim) -> Option<&Quantity> {
    t.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage")
}

fn class(t: &PersistentVolumeClaim) -> Option<&str> {
    t.spec.as_ref()?.storage_class_name.as_deref()
}

fn with_size(mut t: PersistentVolumeClaim, q: &Quantity) -> PersistentVolumeClaim {
    if let Some(r) = t.spec.as_mut().and_then(|s| s.resources.as_mut()) {
        r.requests.get_or_insert_with(BTreeMap::new).insert("storage".into(), q.clone());
    }
    t
}

/// Pure: the templates to use, from the live StatefulSet's (`None` when there is none) and
/// the ones the spec wants.
pub fn plan(live: Option<&[PersistentVolumeClaim]>, wanted: &[PersistentVolumeClaim]) -> ClaimPlan {
    let Some(live) = live else {
        return ClaimPlan { templates: wanted.to_vec(), ..Default::default() };
    };
    let mut p = ClaimPlan::default();
    for l in live {
        let name = l.name_any();
        let Some(w) = wanted.iter().find(|w| w.name_any() == name) else {
            p.refused.push(format!("the volumes of claim template {name} are kept: a StatefulSet's volumes cannot be removed from it"));
            p.templates.push(l.clone());
            continue;
        };
        if let (Some(wc), lc) = (class(w), class(l)) {
            if Some(wc) != lc {
                p.refused.push(format!("the volumes of {name} stay in storage class {}: a volume's class cannot change", lc.unwrap_or("(default)")));
            }
        }
        let (ls, ws) = (size(l), size(w));
        match (ls.and_then(|q| bytes(&q.0)), ws.and_then(|q| bytes(&q.0))) {
            (Some(a), Some(b)) if b > a => {
                let q = ws.cloned().unwrap_or(Quantity(String::new()));
                p.expand.push((name.clone(), q.clone()));
                p.templates.push(with_size(l.clone(), &q));
            }
            (Some(a), Some(b)) if b < a => {
                let (from, to) = (ls.map(|q| q.0.as_str()).unwrap_or_default(), ws.map(|q| q.0.as_str()).unwrap_or_default());
                p.refused.push(format!("the volumes of {name} stay at {from}: shrinking a volume to {to} is not possible"));
                p.templates.push(l.clone());
            }
            _ => p.templates.push(l.clone()),
        }
    }
    p.templates.extend(wanted.iter().filter(|w| !live.iter().any(|l| l.name_any() == w.name_any())).cloned());
    p.recreate = p.templates.as_slice() != live;
    p
}

/// Grows every existing claim of the templates in `plan.expand` to its new size, then deletes
/// `sts` without its Pods, so that the next reconcile creates it with the new templates.
/// Returns the API server's refusal when a claim cannot grow (its StorageClass does not allow
/// expansion): nothing is re-created then, and the next look tries again.
pub async fn resize(ctx: &Context, qc: &QdrantCluster, sts: &StatefulSet, plan: &ClaimPlan) -> Result<Option<String>, Error> {
    let ns = qc.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let ordinals = ctx.pods.ordinals_end(&ns, &qc.name_any()).max(replicas);
    for (template, q) in &plan.expand {
        for i in 0..ordinals {
            let name = format!("{template}-{}-{i}", sts.name_any());
            let Some(claim) = claims.get_opt(&name).await? else { continue };
            let current = claim.spec.as_ref().and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage").and_then(|c| bytes(&c.0)));
            if current.is_some_and(|c| c >= bytes(&q.0).unwrap_or(0.0)) {
                continue;
            }
            let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": q.0}}}});
            let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
            match ctx.guard.write(claims.patch(&name, &params, &Patch::Merge(&patch))).await? {
                Ok(_) => tracing::info!(claim = %name, size = %q.0, "volume claim expanded"),
                Err(kube::Error::Api(s)) if matches!(s.code, 403 | 422) => return Ok(Some(format!("PersistentVolumeClaim {ns}/{name} cannot grow to {}: {}", q.0, s.message))),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        preconditions: Some(Preconditions { uid: sts.uid(), resource_version: sts.resource_version() }),
        ..Default::default()
    };
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    match ctx.guard.write(api.delete(&sts.name_any(), &dp)).await? {
        Ok(_) => Ok(None),
        // Changed or gone meanwhile: the next reconcile looks again.
        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
    use kube::api::ObjectMeta;

    fn template(name: &str, size: &str, class: Option<&str>, label: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta { name: Some(name.into()), labels: Some(BTreeMap::from([(label.into(), "x".into())])), ..Default::default() },
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: class.map(Into::into),
                resources: Some(VolumeResourceRequirements { requests: Some(BTreeMap::from([("storage".into(), Quantity(size.into()))])), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sizes_compare_across_suffixes() {
        assert!(bytes("2Gi").unwrap() > bytes("2G").unwrap());
        assert_eq!(bytes("1024Mi"), bytes("1Gi"));
        assert_eq!(bytes("1e3"), Some(1000.0));
        assert_eq!(bytes("10GB"), None);
    }

    #[test]
    fn live_templates_are_kept_as_they_are_even_with_other_labels() {
        let live = [template("qdrant-storage", "10Gi", Some("standard"), "clustername")];
        let p = plan(Some(&live), &[template("qdrant-storage", "10Gi", Some("standard"), "app.kubernetes.io/name")]);
        assert_eq!(p, ClaimPlan { templates: live.to_vec(), ..Default::default() });
    }

    #[test]
    fn a_larger_size_expands_and_recreates_keeping_everything_else() {
        let live = [template("qdrant-storage", "1Gi", None, "clustername")];
        let p = plan(Some(&live), &[template("qdrant-storage", "2Gi", None, "ours")]);
        assert!(p.recreate && p.refused.is_empty());
        assert_eq!(p.expand, [("qdrant-storage".to_string(), Quantity("2Gi".into()))]);
        assert_eq!(p.templates, [template("qdrant-storage", "2Gi", None, "clustername")]);
    }

    #[test]
    fn shrinking_or_another_class_is_refused_and_changes_nothing() {
        let live = [template("qdrant-storage", "2Gi", Some("a"), "l")];
        let p = plan(Some(&live), &[template("qdrant-storage", "1Gi", Some("b"), "l")]);
        assert!(!p.recreate && p.expand.is_empty());
        assert_eq!(p.templates, live);
        assert_eq!(p.refused.len(), 2, "{:?}", p.refused);
        assert!(p.refused[1].contains("stay at 2Gi") && p.refused[1].contains("shrinking"), "{:?}", p.refused);
    }

    #[test]
    fn a_new_template_is_added_and_a_dropped_one_is_kept() {
        let live = [template("qdrant-storage", "1Gi", None, "l")];
        let p = plan(Some(&live), &[template("qdrant-snapshots", "1Gi", None, "l")]);
        assert!(p.recreate);
        assert_eq!(p.templates.iter().map(|t| t.name_any()).collect::<Vec<_>>(), ["qdrant-storage", "qdrant-snapshots"]);
        assert!(p.refused[0].contains("qdrant-storage are kept"));
        assert_eq!(plan(None, &[template("x", "1Gi", None, "l")]).templates.len(), 1, "no StatefulSet yet: the wanted ones");
    }
}
