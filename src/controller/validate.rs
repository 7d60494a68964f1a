//! What the schema cannot say, checked in one pure function that returns every problem at
//! once, so a user fixes their manifest in one round instead of one error at a time.

use std::collections::BTreeSet;

use kube::ResourceExt;

use super::build::{RESERVED_PATHS, RESERVED_VOLUMES};
use crate::crd::{CpuMemory, KeySetting, QdrantCluster};

/// A StatefulSet's name plus its controller-revision-hash suffix must fit a 63-character label.
const MAX_NAME_LEN: usize = 52;

/// Kubernetes quantity syntax: a signed decimal number with an optional binary (Ki..Ei),
/// decimal (n, u, m, k, M..E) or exponent suffix.
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    let digits_ok = !num.is_empty() && num != "." && num.matches('.').count() <= 1;
    let suffix_ok = match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        e if e.starts_with(['e', 'E']) => {
            let exp = e[1..].strip_prefix(['+', '-']).unwrap_or(&e[1..]);
            !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
        }
        _ => false,
    };
    digits_ok && suffix_ok
}

fn is_positive_quantity(s: &str) -> bool {
    is_quantity(s) && !s.starts_with('-') && !s.trim_start_matches(['+', '0', '.']).is_empty()
}

fn check_quantities(problems: &mut Vec<String>, path: &str, cm: &Option<CpuMemory>) {
    let Some(cm) = cm else { return };
    for (field, value) in [("cpu", &cm.cpu), ("memory", &cm.memory)] {
        if let Some(v) = value {
            if !is_quantity(v) || v.starts_with('-') {
                problems.push(format!("{path}.{field} {v:?} is not a valid quantity (for example 500m, 2, 1Gi)"));
            }
        }
    }
}

fn check_key(problems: &mut Vec<String>, field: &str, raw: &str) {
    if let KeySetting::Literal(k) = KeySetting::parse(raw) {
        if k.trim().is_empty() {
            problems.push(format!("spec.{field} must be 'false', 'true' or a non-empty key"));
        } else if k.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(format!("spec.{field} must not contain whitespace"));
        }
    }
}

/// A Secret the spec refers to, which the pods cannot start without.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub name: String,
    /// Where the spec names it, for the status message.
    pub field: String,
    /// Keys the Secret must hold.
    pub keys: Vec<String>,
}

/// Pure: every Secret the pods would mount, so that a missing one is reported in status
/// instead of leaving pods stuck in ContainerCreating. Optional secret volumes are skipped.
pub fn referenced_secrets(qc: &QdrantCluster) -> Vec<SecretRef> {
    let spec = &qc.spec;
    let mut refs = Vec::new();
    if let Some(name) = spec.tls.secret_name.as_ref().filter(|n| spec.tls.enabled && !n.is_empty()) {
        refs.push(SecretRef { name: name.clone(), field: "spec.tls.secretName".into(), keys: ["cert.pem", "key.pem", "cacert.pem"].map(String::from).to_vec() });
    }
    for (field, r) in [("spec.apikeySecretKeyRef", &spec.apikey_secret_key_ref), ("spec.readApikeySecretKeyRef", &spec.read_apikey_secret_key_ref)] {
        if let Some(r) = r {
            refs.push(SecretRef { name: r.name.clone(), field: field.into(), keys: vec![r.key.clone()] });
        }
    }
    for (i, v) in spec.additional_volumes.iter().enumerate() {
        if let Some(s) = v.secret.as_ref().filter(|s| s.optional != Some(true)) {
            if let Some(name) = s.secret_name.clone().filter(|n| !n.is_empty()) {
                refs.push(SecretRef { name, field: format!("spec.additionalVolumes[{i}].secret.secretName"), keys: Vec::new() });
            }
        }
    }
    refs
}

/// Returns every problem with the spec, or `Ok` when the cluster can be built.
pub fn validate(qc: &QdrantCluster) -> Result<(), Vec<String>> {
    let spec = &qc.spec;
    let mut p = Vec::new();
    let name = qc.name_any();
    if name.len() > MAX_NAME_LEN {
        p.push(format!("metadata.name must be at most {MAX_NAME_LEN} characters (is {}), because pod names and labels derive from it", name.len()));
    }
    if spec.replicas < 1 {
        p.push(format!("spec.replicas must be at least 1 (is {})", spec.replicas));
    }
    if spec.image.trim().is_empty() || spec.image.chars().any(char::is_whitespace) {
        p.push(format!("spec.image {:?} is not a valid image reference", spec.image));
    }
    check_key(&mut p, "apikey", &spec.apikey);
    check_key(&mut p, "readApikey", &spec.read_apikey);
    if spec.apikey_setting() == KeySetting::Off && spec.read_apikey_setting() != KeySetting::Off {
        p.push("spec.readApikey can be used only with spec.apikey enabled".into());
    }
    for (field, literal, r) in [("apikey", &spec.apikey, &spec.apikey_secret_key_ref), ("readApikey", &spec.read_apikey, &spec.read_apikey_secret_key_ref)] {
        if r.as_ref().is_some_and(|r| r.name.is_empty() || r.key.is_empty()) {
            p.push(format!("spec.{field}SecretKeyRef needs both name and key"));
        }
        if r.is_some() && literal != "false" {
            p.push(format!("set spec.{field} or spec.{field}SecretKeyRef, not both"));
        }
    }
    if let Some(per) = &spec.persistence {
        if !is_positive_quantity(&per.size) {
            p.push(format!("spec.persistence.size {:?} is not a positive quantity (for example 10Gi)", per.size));
        }
    }
    if let Some(r) = &spec.resources {
        check_quantities(&mut p, "spec.resources.limits", &r.limits);
        check_quantities(&mut p, "spec.resources.requests", &r.requests);
    }
    let duration = |p: &mut Vec<String>, field: &str, v: &Option<String>| match v.as_deref().map(humantime::parse_duration) {
        Some(Err(e)) => {
            p.push(format!("spec.tls.{field} {:?} is not a duration such as 720h or 90d: {e}", v.as_deref().unwrap_or_default()));
            None
        }
        Some(Ok(d)) if d.is_zero() => {
            p.push(format!("spec.tls.{field} must be longer than zero"));
            None
        }
        other => other.and_then(Result::ok),
    };
    let validity = duration(&mut p, "certificateValidity", &spec.tls.certificate_validity);
    let renew = duration(&mut p, "renewBefore", &spec.tls.renew_before);
    let (validity, renew) = (validity.unwrap_or(super::certs::DEFAULT_VALIDITY), renew.unwrap_or(super::certs::DEFAULT_RENEW_BEFORE));
    if spec.tls.renew_before.is_some() && renew >= validity {
        p.push(format!("spec.tls.renewBefore ({}) must be shorter than the certificate validity ({})", humantime::format_duration(renew), humantime::format_duration(validity)));
    }
    if let Some(env) = &spec.env {
        for e in env {
            if super::build::RESERVED_ENV.contains(&e.name.as_str()) {
                p.push(format!("spec.env: {} is set by the operator and cannot be set here", e.name));
            }
        }
    }
    if let Some(sp) = &spec.snapshot_persistence {
        if !is_positive_quantity(&sp.size) {
            p.push(format!("spec.snapshotPersistence.size {:?} is not a positive quantity (for example 20Gi)", sp.size));
        }
    }
    if let Some(cfg) = &spec.config {
        if !cfg.is_object() {
            p.push("spec.config must be an object".into());
        } else {
            if cfg.pointer("/cluster/enabled").is_some_and(|v| v != &serde_json::Value::Bool(true)) {
                p.push("spec.config.cluster.enabled cannot be changed: the operator always runs Qdrant in cluster mode".into());
            }
            for (ptr, port) in [("/service/http_port", 6333), ("/service/grpc_port", 6334), ("/cluster/p2p/port", 6335)] {
                if cfg.pointer(ptr).is_some_and(|v| v.as_i64() != Some(port)) {
                    p.push(format!("spec.config{} cannot be changed: Services and probes use port {port}", ptr.replace('/', ".")));
                }
            }
        }
    }
    let mut containers = BTreeSet::from(["qdrant".to_string()]);
    for c in &spec.sidecar_containers {
        if c.name.is_empty() {
            p.push("spec.sidecarContainers: every container needs a name".into());
        } else if !containers.insert(c.name.clone()) {
            p.push(format!("spec.sidecarContainers: container name {:?} is used twice or is reserved", c.name));
        }
    }
    let mut volumes = BTreeSet::new();
    for v in &spec.additional_volumes {
        if RESERVED_VOLUMES.contains(&v.name.as_str()) {
            p.push(format!("spec.additionalVolumes: volume name {:?} is reserved by the operator", v.name));
        } else if !volumes.insert(v.name.clone()) {
            p.push(format!("spec.additionalVolumes: volume name {:?} is used twice", v.name));
        }
    }
    for m in &spec.additional_volume_mounts {
        if !volumes.contains(&m.name) {
            p.push(format!("spec.additionalVolumeMounts: {:?} names no volume in spec.additionalVolumes", m.name));
        }
        let path = m.mount_path.trim_end_matches('/');
        if RESERVED_PATHS.iter().any(|r| path == *r || path.starts_with(&format!("{r}/"))) {
            p.push(format!("spec.additionalVolumeMounts: mount path {:?} is reserved by the operator", m.mount_path));
        }
    }
    if let Some(vs) = &spec.volume_snapshots {
        if vs.retention_count < 1 {
            p.push(format!("spec.volumeSnapshots.retentionCount must be at least 1 (is {})", vs.retention_count));
        }
    }
    if p.is_empty() { Ok(()) } else { Err(p) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Persistence, QdrantClusterSpec, Tls};
    use k8s_openapi::api::core::v1::{Container, Volume, VolumeMount};

    fn qc(f: impl FnOnce(&mut QdrantClusterSpec)) -> QdrantCluster {
        let mut spec: QdrantClusterSpec = serde_json::from_value(serde_json::json!({"replicas": 1, "image": "qdrant/qdrant:v1.16.3"})).unwrap();
        f(&mut spec);
        QdrantCluster::new("my-cluster", spec)
    }

    fn problems(f: impl FnOnce(&mut QdrantClusterSpec)) -> Vec<String> {
        validate(&qc(f)).expect_err("should be invalid")
    }

    fn one(f: impl FnOnce(&mut QdrantClusterSpec), needle: &str) {
        let p = problems(f);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains(needle), "{:?} does not name {needle}", p[0]);
    }

    #[test]
    fn minimal_is_valid() {
        assert_eq!(validate(&qc(|_| {})), Ok(()));
    }

    #[test]
    fn quantities() {
        for ok in ["1", "500m", "1Gi", "1.5", "2e3", "10Gi", "+1", ".5"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "1GB", "1.2.3", "abc", "1 Gi", "1e", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn each_invalid_case_names_its_problem() {
        one(|s| s.replicas = 0, "spec.replicas");
        one(|s| s.image = "qdrant/qdrant: v1".into(), "spec.image");
        one(|s| s.apikey = "".into(), "spec.apikey");
        one(|s| s.apikey = "a key".into(), "spec.apikey must not contain whitespace");
        one(|s| s.read_apikey = "true".into(), "spec.readApikey can be used only with spec.apikey enabled");
        one(|s| s.persistence = Some(Persistence { size: "10GB".into(), storage_class_name: None, volume_snapshot_class_name: None }), "spec.persistence.size");
        one(|s| s.persistence = Some(Persistence { size: "0".into(), storage_class_name: None, volume_snapshot_class_name: None }), "spec.persistence.size");
        one(|s| s.resources = Some(serde_json::from_value(serde_json::json!({"limits": {"cpu": "lots"}})).unwrap()), "spec.resources.limits.cpu");
        one(|s| s.resources = Some(serde_json::from_value(serde_json::json!({"requests": {"memory": "1 GiB"}})).unwrap()), "spec.resources.requests.memory");
        one(|s| s.tls.certificate_validity = Some("a year".into()), "spec.tls.certificateValidity");
        one(|s| s.tls.renew_before = Some("0s".into()), "spec.tls.renewBefore must be longer than zero");
        one(
            |s| {
                s.tls.certificate_validity = Some("1h".into());
                s.tls.renew_before = Some("2h".into());
            },
            "must be shorter than the certificate validity",
        );
        one(|s| s.env = Some(vec![k8s_openapi::api::core::v1::EnvVar { name: "QDRANT__CLUSTER__ENABLED".into(), value: Some("false".into()), ..Default::default() }]), "spec.env");
        one(|s| s.snapshot_persistence = Some(crate::crd::SnapshotPersistence { size: "-1Gi".into(), storage_class_name: None }), "spec.snapshotPersistence.size");
        one(
            |s| {
                s.apikey = "literal".into();
                s.apikey_secret_key_ref = Some(crate::crd::SecretKeyRef { name: "k".into(), key: "api-key".into() });
            },
            "not both",
        );
        one(|s| s.config = Some(serde_json::json!({"cluster": {"enabled": false}})), "spec.config.cluster.enabled");
        one(|s| s.config = Some(serde_json::json!({"service": {"http_port": 8080}})), "spec.config.service.http_port");
        one(|s| s.sidecar_containers = vec![Container { name: "qdrant".into(), ..Default::default() }], "\"qdrant\"");
        one(|s| s.additional_volumes = vec![Volume { name: "qdrant-storage".into(), ..Default::default() }], "reserved");
        one(|s| s.additional_volume_mounts = vec![VolumeMount { name: "nope".into(), mount_path: "/data".into(), ..Default::default() }], "names no volume");
        one(
            |s| {
                s.additional_volumes = vec![Volume { name: "extra".into(), ..Default::default() }];
                s.additional_volume_mounts = vec![VolumeMount { name: "extra".into(), mount_path: "/qdrant/storage/x".into(), ..Default::default() }];
            },
            "mount path",
        );
        let long = qc(|_| {});
        let mut long = long;
        long.metadata.name = Some("x".repeat(53));
        assert!(validate(&long).unwrap_err()[0].contains("metadata.name"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems(|s| {
            s.replicas = 0;
            s.image = " ".into();
            s.tls = Tls { enabled: true, secret_name: None, certificate_validity: Some("x".into()), renew_before: None };
        });
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn tls_without_a_secret_name_is_valid_the_operator_makes_the_certificates() {
        assert_eq!(validate(&qc(|s| s.tls = Tls { enabled: true, secret_name: None, certificate_validity: Some("2m".into()), renew_before: Some("1m".into()) })), Ok(()));
    }

    #[test]
    fn a_key_from_a_secret_is_a_referenced_secret_with_that_key() {
        let qc = qc(|s| {
            s.apikey_secret_key_ref = Some(crate::crd::SecretKeyRef { name: "keys".into(), key: "admin".into() });
            s.read_apikey_secret_key_ref = Some(crate::crd::SecretKeyRef { name: "keys".into(), key: "reader".into() });
        });
        assert_eq!(validate(&qc), Ok(()));
        let refs = referenced_secrets(&qc);
        assert_eq!(refs.iter().map(|r| (r.field.as_str(), r.keys[0].as_str())).collect::<Vec<_>>(), [("spec.apikeySecretKeyRef", "admin"), ("spec.readApikeySecretKeyRef", "reader")]);
    }

    #[test]
    fn referenced_secrets_are_tls_and_mandatory_secret_volumes() {
        let mut qc = QdrantCluster::new("c", serde_json::from_value(serde_json::json!({
            "replicas": 1, "image": "qdrant/qdrant:v1.16.3",
            "tls": {"enabled": true, "secretName": "c-tls"},
            "additionalVolumes": [
                {"name": "a", "secret": {"secretName": "needed"}},
                {"name": "b", "secret": {"secretName": "maybe", "optional": true}},
                {"name": "c", "emptyDir": {}}
            ]
        })).unwrap());
        let refs = referenced_secrets(&qc);
        assert_eq!(refs.iter().map(|r| (r.name.as_str(), r.field.as_str())).collect::<Vec<_>>(), [("c-tls", "spec.tls.secretName"), ("needed", "spec.additionalVolumes[0].secret.secretName")]);
        assert_eq!(refs[0].keys, ["cert.pem", "key.pem", "cacert.pem"]);
        qc.spec.tls.enabled = false;
        assert_eq!(referenced_secrets(&qc).len(), 1, "a disabled TLS Secret is not needed");
    }
}
