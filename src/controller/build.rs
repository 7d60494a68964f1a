//! Pure functions from a `QdrantCluster` to its desired children. No I/O: everything the
//! builders need (resolved API keys) is passed in, so they are unit-tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    ExecAction, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::crd::{CpuMemory, KeySetting, QdrantCluster};

pub const HTTP_PORT: i32 = 6333;
pub const GRPC_PORT: i32 = 6334;
pub const P2P_PORT: i32 = 6335;
pub const MANAGED_BY: &str = "qdrant-operator";
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=qdrant-operator";
pub const CHECKSUM_ANNOTATION: &str = "qdrant.operator/config-checksum";
/// Marks a key Secret whose value the operator generated, so that it is kept forever.
pub const GENERATED_ANNOTATION: &str = "qdrant.operator/generated";
pub const KEY_FIELD: &str = "api-key";

/// Volumes and mount paths that the operator owns; user volumes may not reuse them.
/// The data volume (an emptyDir, or the claim template with `persistence`).
const STORAGE_VOLUME: &str = "qdrant-storage";
pub const RESERVED_VOLUMES: &[&str] = &["qdrant-storage", "qdrant-snapshots", "qdrant-init", "qdrant-config", "qdrant-auth", "qdrant-tls"];
pub const RESERVED_PATHS: &[&str] = &["/qdrant/storage", "/qdrant/snapshots", "/qdrant/init", "/qdrant/config", "/qdrant/tls"];

/// API keys as resolved by the reconciler: `None` when that key is off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Keys {
    pub api: Option<String>,
    pub read: Option<String>,
}

/// Every child of a cluster. `apply` destructures this completely, so a new child kind does
/// not compile until it is applied.
#[derive(Clone, Debug)]
pub struct Children {
    pub api_key: Option<Secret>,
    pub read_api_key: Option<Secret>,
    pub auth_config: Option<Secret>,
    pub config_map: ConfigMap,
    pub headless_service: Service,
    pub client_service: Service,
    pub stateful_set: StatefulSet,
    /// `None` when replicas <= 1: a PDB then would block every voluntary eviction.
    pub pdb: Option<PodDisruptionBudget>,
}

/// The kinds of object a cluster has, for the ownership check before anything is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChildKind {
    Secret,
    ConfigMap,
    Service,
    StatefulSet,
    PodDisruptionBudget,
}

impl std::fmt::Display for ChildKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl Children {
    /// Kind and name of every object that apply writes, in apply order. Destructures
    /// completely, like apply, so that a new child cannot escape the ownership check.
    pub fn refs(&self) -> Vec<(ChildKind, String)> {
        let Children { api_key, read_api_key, auth_config, config_map, headless_service, client_service, stateful_set, pdb } = self;
        let mut refs: Vec<(ChildKind, String)> = [api_key, read_api_key, auth_config].into_iter().flatten().map(|s| (ChildKind::Secret, s.name_any())).collect();
        refs.push((ChildKind::ConfigMap, config_map.name_any()));
        refs.push((ChildKind::Service, headless_service.name_any()));
        refs.push((ChildKind::Service, client_service.name_any()));
        refs.push((ChildKind::StatefulSet, stateful_set.name_any()));
        refs.extend(pdb.iter().map(|p| (ChildKind::PodDisruptionBudget, p.name_any())));
        refs
    }
}

/// Kind and name of every object the spec makes apply write, without any I/O: the builders
/// themselves, run with placeholder keys, so the list cannot drift from what is built.
pub fn planned_children(qc: &QdrantCluster) -> Vec<(ChildKind, String)> {
    let placeholder = |s: KeySetting| (s != KeySetting::Off).then(String::new);
    let keys = Keys { api: placeholder(qc.spec.apikey_setting()), read: placeholder(qc.spec.read_apikey_setting()) };
    build(qc, &keys, (false, false)).refs()
}

impl Children {
    /// The StatefulSet keeps `pods` Pods instead of `spec.replicas`: during a scale-down, the
    /// Pods whose peers Qdrant has not yet drained stay.
    pub fn keeping_pods(mut self, pods: i32) -> Self {
        if let Some(spec) = self.stateful_set.spec.as_mut() {
            spec.replicas = Some(pods);
        }
        self
    }
}

/// The PersistentVolumeClaim of one Pod, as the StatefulSet names it
/// (`<volumeClaimTemplate>-<pod>`).
pub fn storage_claim_name(pod: &str) -> String {
    format!("{STORAGE_VOLUME}-{pod}")
}

pub fn headless_name(name: &str) -> String {
    format!("{name}-headless")
}
pub fn api_key_secret_name(name: &str) -> String {
    format!("{name}-apikey")
}
pub fn read_api_key_secret_name(name: &str) -> String {
    format!("{name}-read-apikey")
}
pub fn auth_config_name(name: &str) -> String {
    format!("{name}-auth-config")
}

/// Selector labels: the older operator's, which its users' tooling selects on.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("clustername".into(), name.into()), ("component".into(), "qdrant".into())])
}

pub fn selector_string(name: &str) -> String {
    selector_labels(name).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn labels(name: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(name);
    l.insert("app.kubernetes.io/name".into(), "qdrant".into());
    l.insert("app.kubernetes.io/instance".into(), name.into());
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l
}

fn meta(qc: &QdrantCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: qc.namespace(),
        labels: Some(labels(&qc.name_any())),
        owner_references: qc.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

fn scheme(qc: &QdrantCluster) -> &'static str {
    if qc.spec.tls.enabled { "https" } else { "http" }
}

/// The base URL of one Pod's REST API, by its stable DNS name under the headless Service:
/// the same name as on any cluster, resolved through the namespace search path, and the name
/// a cluster's certificates are issued for.
pub fn rest_url(qc: &QdrantCluster, pod: &str) -> String {
    let ns = qc.namespace().unwrap_or_default();
    format!("{}://{pod}.{}.{ns}:{HTTP_PORT}", scheme(qc), headless_name(&qc.name_any()))
}

/// The peer-to-peer URI of pod `ordinal` (a number, or a shell expression such as
/// `${SET_INDEX}`).
pub fn peer_uri(qc: &QdrantCluster, ordinal: &str) -> String {
    let name = qc.name_any();
    let ns = qc.namespace().unwrap_or_default();
    format!("{}://{name}-{ordinal}.{}.{ns}:{P2P_PORT}", scheme(qc), headless_name(&name))
}

/// Qdrant's start arguments for a pod: ordinal 0 founds the cluster, every other ordinal joins
/// it through ordinal 0.
pub fn peer_args(qc: &QdrantCluster, ordinal: &str) -> Vec<String> {
    let own = vec!["--uri".to_string(), peer_uri(qc, ordinal)];
    if ordinal == "0" {
        own
    } else {
        [vec!["--bootstrap".to_string(), peer_uri(qc, "0")], own].concat()
    }
}

fn shell_args(args: &[String]) -> String {
    args.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(" ")
}

pub fn initialize_sh(qc: &QdrantCluster) -> String {
    let name = qc.name_any();
    let ns = qc.namespace().unwrap_or_default();
    let host = |ordinal: &str| format!("{name}-{ordinal}.{}.{ns}", headless_name(&name));
    format!(
        "#!/bin/bash\n\
         # Generated by qdrant-operator. Peer 0 founds the cluster; every other peer joins it.\n\
         # Peer 0 on an empty volume (a lost or replaced disk) must not found a second cluster\n\
         # beside the running one: if any other peer answers on its p2p port, it joins that one.\n\
         # So that this never finds a peer that is itself waiting to join (all Pods of a new\n\
         # cluster start at once), a peer other than 0 with no consensus state starts Qdrant\n\
         # only once peer 0 answers, which peer 0 does only after it has looked.\n\
         # With consensus state on the volume, Qdrant ignores --bootstrap and rejoins as itself.\n\
         set -e\n\
         SET_INDEX=${{HOSTNAME##*-}}\n\
         echo \"Starting Qdrant peer ${{SET_INDEX}}\"\n\
         if [ \"$SET_INDEX\" = \"0\" ]; then\n\
         \x20 if [ ! -e /qdrant/storage/raft_state.json ]; then\n\
         \x20   for ((i = 1; i <= {PEER_PROBE}; i++)); do\n\
         \x20     if timeout 1 bash -c \"exec 3<>/dev/tcp/{probe}/{P2P_PORT}\" 2>/dev/null; then\n\
         \x20       echo \"Empty volume and peer $i answers: joining the running cluster\"\n\
         \x20       exec ./entrypoint.sh \"--bootstrap\" \"{scheme}://{probe}:{P2P_PORT}\" {own}\n\
         \x20     fi\n\
         \x20   done\n\
         \x20 fi\n\
         \x20 exec ./entrypoint.sh {}\n\
         else\n\
         \x20 if [ ! -e /qdrant/storage/raft_state.json ]; then\n\
         \x20   until timeout 1 bash -c \"exec 3<>/dev/tcp/{zero}/{P2P_PORT}\" 2>/dev/null; do\n\
         \x20     echo \"Waiting for peer 0 to answer\"; sleep 1\n\
         \x20   done\n\
         \x20 fi\n\
         \x20 exec ./entrypoint.sh {}\n\
         fi\n",
        shell_args(&peer_args(qc, "0")),
        shell_args(&peer_args(qc, "${SET_INDEX}")),
        probe = host("$i"),
        zero = host("0"),
        scheme = scheme(qc),
        own = shell_args(&peer_args(qc, "0")),
    )
}

/// How many ordinals peer 0 tries when it starts on an empty volume. Names of Pods that do
/// not exist fail at once in DNS, so probing past the cluster's size costs little.
const PEER_PROBE: u32 = 64;

/// Recursively merges `over` into `base`; objects merge key by key, anything else replaces.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The operator's defaults for `production.yaml`, with `spec.config` merged over them.
pub fn production_config(qc: &QdrantCluster) -> Value {
    let tls = qc.spec.tls.enabled;
    let mut cfg = json!({
        "cluster": {"enabled": true, "p2p": {"port": P2P_PORT, "enable_tls": tls}, "consensus": {"tick_period_ms": 100}},
        "service": {"http_port": HTTP_PORT, "grpc_port": GRPC_PORT, "enable_tls": tls},
        "storage": {"storage_path": "/qdrant/storage", "snapshots_path": "/qdrant/snapshots"},
    });
    if tls {
        merge(&mut cfg, &json!({"tls": {"cert": "/qdrant/tls/cert.pem", "key": "/qdrant/tls/key.pem", "ca_cert": "/qdrant/tls/cacert.pem"}}));
    }
    if let Some(user) = &qc.spec.config {
        merge(&mut cfg, user);
    }
    cfg
}

pub fn production_yaml(qc: &QdrantCluster) -> String {
    // Serializing a JSON value to YAML cannot fail.
    serde_yaml_ng::to_string(&production_config(qc)).unwrap_or_default()
}

pub fn local_yaml(keys: &Keys) -> String {
    let mut service = serde_json::Map::new();
    if let Some(k) = &keys.api {
        service.insert("api_key".into(), Value::String(k.clone()));
    }
    if let Some(k) = &keys.read {
        service.insert("read_only_api_key".into(), Value::String(k.clone()));
    }
    serde_yaml_ng::to_string(&json!({ "service": service })).unwrap_or_default()
}

/// A Secret holding one key. `generated` marks a key the operator made, which it keeps forever.
pub fn key_secret(qc: &QdrantCluster, name: String, key: &str, value: &str, generated: bool) -> Secret {
    let mut m = meta(qc, name);
    if generated {
        m.annotations = Some(BTreeMap::from([(GENERATED_ANNOTATION.into(), "true".into())]));
    }
    Secret {
        metadata: m,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(key.into(), ByteString(value.as_bytes().to_vec()))])),
        ..Default::default()
    }
}

fn quantities(cm: &Option<CpuMemory>) -> Option<BTreeMap<String, Quantity>> {
    let cm = cm.as_ref()?;
    let mut m = BTreeMap::new();
    if let Some(c) = &cm.cpu {
        m.insert("cpu".into(), Quantity(c.clone()));
    }
    if let Some(v) = &cm.memory {
        m.insert("memory".into(), Quantity(v.clone()));
    }
    Some(m)
}

fn port(name: &str, p: i32) -> ContainerPort {
    ContainerPort { name: Some(name.into()), container_port: p, protocol: Some("TCP".into()), ..Default::default() }
}

fn svc_port(name: &str, p: i32) -> ServicePort {
    ServicePort { name: Some(name.into()), port: p, target_port: Some(IntOrString::String(name.into())), protocol: Some("TCP".into()), ..Default::default() }
}

fn http_probe(qc: &QdrantCluster, path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(HTTP_PORT),
            scheme: Some(if qc.spec.tls.enabled { "HTTPS" } else { "HTTP" }.into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, sub_path: Option<&str>, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        sub_path: sub_path.map(Into::into),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
}

fn secret_volume(name: &str, secret: String, items: Option<Vec<KeyToPath>>) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource { secret_name: Some(secret), items, default_mode: Some(0o440), ..Default::default() }),
        ..Default::default()
    }
}

/// A checksum over everything mounted from the ConfigMap and Secrets, so a config or key change
/// rolls the pods (subPath mounts are not refreshed in place).
pub fn config_checksum(config_map: &ConfigMap, auth: Option<&Secret>) -> String {
    let mut h = Sha256::new();
    for (k, v) in config_map.data.iter().flatten() {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    for (k, v) in auth.and_then(|s| s.data.as_ref()).into_iter().flatten() {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(&v.0);
    }
    format!("{:x}", h.finalize())
}

pub fn build(qc: &QdrantCluster, keys: &Keys, generated: (bool, bool)) -> Children {
    let name = qc.name_any();
    let spec = &qc.spec;

    let api_key = keys.api.as_ref().map(|k| key_secret(qc, api_key_secret_name(&name), KEY_FIELD, k, generated.0));
    let read_api_key = keys.read.as_ref().map(|k| key_secret(qc, read_api_key_secret_name(&name), KEY_FIELD, k, generated.1));
    let auth_config = keys.api.is_some().then(|| key_secret(qc, auth_config_name(&name), "local.yaml", &local_yaml(keys), false));

    let config_map = ConfigMap {
        metadata: meta(qc, name.clone()),
        data: Some(BTreeMap::from([
            ("initialize.sh".into(), initialize_sh(qc)),
            ("production.yaml".into(), production_yaml(qc)),
        ])),
        ..Default::default()
    };

    let headless_service = Service {
        metadata: meta(qc, headless_name(&name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![svc_port("http", HTTP_PORT), svc_port("grpc", GRPC_PORT), svc_port("p2p", P2P_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let client_service = Service {
        metadata: meta(qc, name.clone()),
        spec: Some(ServiceSpec {
            type_: Some(spec.service.as_str().into()),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![svc_port("http", HTTP_PORT), svc_port("grpc", GRPC_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut volumes = vec![
        Volume {
            name: "qdrant-config".into(),
            config_map: Some(ConfigMapVolumeSource { name: name.clone(), default_mode: Some(0o755), ..Default::default() }),
            ..Default::default()
        },
        empty_dir("qdrant-snapshots"),
        empty_dir("qdrant-init"),
    ];
    let mut mounts = vec![
        mount("qdrant-storage", "/qdrant/storage", None, false),
        mount("qdrant-snapshots", "/qdrant/snapshots", None, false),
        mount("qdrant-init", "/qdrant/init", None, false),
        mount("qdrant-config", "/qdrant/config/initialize.sh", Some("initialize.sh"), true),
        mount("qdrant-config", "/qdrant/config/production.yaml", Some("production.yaml"), true),
    ];
    if spec.persistence.is_none() {
        volumes.push(empty_dir("qdrant-storage"));
    }
    if auth_config.is_some() {
        volumes.push(secret_volume("qdrant-auth", auth_config_name(&name), None));
        mounts.push(mount("qdrant-auth", "/qdrant/config/local.yaml", Some("local.yaml"), true));
    }
    if spec.tls.enabled {
        volumes.push(secret_volume("qdrant-tls", spec.tls.secret_name.clone().unwrap_or_default(), None));
        mounts.push(mount("qdrant-tls", "/qdrant/tls", None, true));
    }
    volumes.extend(spec.additional_volumes.iter().cloned());
    mounts.extend(spec.additional_volume_mounts.iter().cloned());

    let qdrant = Container {
        name: "qdrant".into(),
        image: Some(spec.image.clone()),
        command: Some(vec!["/bin/bash".into(), "-c".into(), "./config/initialize.sh".into()]),
        env: Some(vec![
            EnvVar { name: "QDRANT__CLUSTER__ENABLED".into(), value: Some("true".into()), ..Default::default() },
            EnvVar { name: "QDRANT_INIT_FILE_PATH".into(), value: Some("/qdrant/init/.qdrant-initialized".into()), ..Default::default() },
        ]),
        ports: Some(vec![port("http", HTTP_PORT), port("grpc", GRPC_PORT), port("p2p", P2P_PORT)]),
        readiness_probe: Some(http_probe(qc, "/readyz", 5, 6)),
        liveness_probe: Some(http_probe(qc, "/livez", 10, 6)),
        // Gives Services time to drop the pod before Qdrant stops, as the official chart does.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler { exec: Some(ExecAction { command: Some(vec!["sleep".into(), "3".into()]) }), ..Default::default() }),
            ..Default::default()
        }),
        resources: spec.resources.as_ref().map(|r| ResourceRequirements {
            limits: quantities(&r.limits),
            requests: quantities(&r.requests),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(1000),
            run_as_group: Some(2000),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let mut containers = vec![qdrant];
    containers.extend(spec.sidecar_containers.iter().cloned());

    let affinity = (spec.node_affinity.is_some() || spec.pod_anti_affinity.is_some()).then(|| Affinity {
        node_affinity: spec.node_affinity.clone(),
        pod_anti_affinity: spec.pod_anti_affinity.clone(),
        ..Default::default()
    });

    let checksum = config_checksum(&config_map, auth_config.as_ref());
    let volume_claim_templates = spec.persistence.as_ref().map(|p| {
        vec![PersistentVolumeClaim {
            metadata: ObjectMeta { name: Some(STORAGE_VOLUME.into()), labels: Some(labels(&name)), ..Default::default() },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: p.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), Quantity(p.size.clone()))])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });

    let stateful_set = StatefulSet {
        metadata: meta(qc, name.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(headless_name(&name)),
            pod_management_policy: Some("Parallel".into()),
            // The operator restarts Pods itself, one at a time, each once Qdrant is whole
            // again (`restart`): the StatefulSet controller would only wait for readiness.
            update_strategy: Some(StatefulSetUpdateStrategy { type_: Some("OnDelete".into()), rolling_update: None }),
            selector: LabelSelector { match_labels: Some(selector_labels(&name)), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&name)),
                    annotations: Some(BTreeMap::from([(CHECKSUM_ANNOTATION.into(), checksum)])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    // Qdrant never calls the Kubernetes API: no token to steal.
                    automount_service_account_token: Some(false),
                    containers,
                    volumes: Some(volumes),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(1000),
                        run_as_group: Some(2000),
                        fs_group: Some(3000),
                        fs_group_change_policy: Some("OnRootMismatch".into()),
                        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                        ..Default::default()
                    }),
                    tolerations: spec.tolerations.clone(),
                    affinity,
                    topology_spread_constraints: spec.topology_spread_constraints.clone(),
                    ..Default::default()
                }),
            },
            volume_claim_templates,
            ..Default::default()
        }),
        ..Default::default()
    };

    let pdb = (spec.replicas > 1).then(|| PodDisruptionBudget {
        metadata: meta(qc, name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            // One peer at a time keeps Raft's majority for any cluster of 3 or more peers.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(selector_labels(&name)), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    });

    Children { api_key, read_api_key, auth_config, config_map, headless_service, client_service, stateful_set, pdb }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn example(file: &str) -> QdrantCluster {
        let path = format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut qc: QdrantCluster = serde_yaml_ng::from_str(&text).unwrap();
        qc.metadata.namespace.get_or_insert("default".into());
        qc.metadata.uid = Some("uid-1".into());
        qc
    }

    fn cluster(spec: serde_json::Value) -> QdrantCluster {
        let mut qc = QdrantCluster::new("my-cluster", serde_json::from_value(spec).unwrap());
        qc.metadata.namespace = Some("default".into());
        qc.metadata.uid = Some("uid-1".into());
        qc
    }

    fn pod_spec(c: &Children) -> &PodSpec {
        c.stateful_set.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn qdrant_container(c: &Children) -> &Container {
        &pod_spec(c).containers[0]
    }

    #[test]
    fn minimal_example_builds_the_compatible_children() {
        let qc = example("qdrant-cluster-minimal.yaml");
        let c = build(&qc, &Keys::default(), (false, false));
        let sts = &c.stateful_set;
        assert_eq!(sts.metadata.name.as_deref(), Some("my-cluster"));
        let s = sts.spec.as_ref().unwrap();
        assert_eq!(s.replicas, Some(1));
        assert_eq!(s.service_name.as_deref(), Some("my-cluster-headless"));
        assert_eq!(s.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(s.update_strategy.as_ref().and_then(|u| u.type_.as_deref()), Some("OnDelete"));
        assert_eq!(s.selector.match_labels.as_ref().unwrap(), &selector_labels("my-cluster"));
        let owner = &sts.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("QdrantCluster", "my-cluster", Some(true)));
        let q = qdrant_container(&c);
        assert_eq!(q.image.as_deref(), Some("qdrant/qdrant:v1.16.3"));
        let ports: Vec<_> = q.ports.as_ref().unwrap().iter().map(|p| (p.name.clone().unwrap(), p.container_port)).collect();
        assert_eq!(ports, vec![("http".into(), 6333), ("grpc".into(), 6334), ("p2p".into(), 6335)]);
        assert!(q.env.as_ref().unwrap().iter().any(|e| e.name == "QDRANT__CLUSTER__ENABLED" && e.value.as_deref() == Some("true")));
        assert_eq!(q.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/readyz"));
        assert_eq!(q.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/livez"));
        assert_eq!(pod_spec(&c).security_context.as_ref().unwrap().run_as_non_root, Some(true));
        assert_eq!(pod_spec(&c).automount_service_account_token, Some(false));
        assert!(sts.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().annotations.as_ref().unwrap().contains_key(CHECKSUM_ANNOTATION));
        // emptyDir storage without persistence.
        assert!(pod_spec(&c).volumes.as_ref().unwrap().iter().any(|v| v.name == "qdrant-storage" && v.empty_dir.is_some()));
        assert!(s.volume_claim_templates.is_none());
        let hs = c.headless_service.spec.as_ref().unwrap();
        assert_eq!(c.headless_service.metadata.name.as_deref(), Some("my-cluster-headless"));
        assert_eq!(hs.cluster_ip.as_deref(), Some("None"));
        assert_eq!(hs.publish_not_ready_addresses, Some(true));
        assert_eq!(hs.ports.as_ref().unwrap().iter().map(|p| p.port).collect::<Vec<_>>(), vec![6333, 6334, 6335]);
        let cs = c.client_service.spec.as_ref().unwrap();
        assert_eq!(cs.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(cs.ports.as_ref().unwrap().iter().map(|p| p.port).collect::<Vec<_>>(), vec![6333, 6334]);
        assert!(c.pdb.is_none() && c.api_key.is_none() && c.read_api_key.is_none() && c.auth_config.is_none());
    }

    #[test]
    fn complete_example_fields_land_where_they_belong() {
        let qc = example("qdrant-cluster-complete.yaml");
        let spec = &qc.spec;
        let keys = Keys { api: Some("k1".into()), read: Some("k2".into()) };
        let c = build(&qc, &keys, (false, true));
        let s = c.stateful_set.spec.as_ref().unwrap();
        let ps = pod_spec(&c);
        let q = qdrant_container(&c);
        assert_eq!(s.replicas, Some(spec.replicas));
        assert_eq!(q.image.as_ref(), Some(&spec.image));
        // resources
        let r = q.resources.as_ref().unwrap();
        let want = spec.resources.as_ref().unwrap();
        assert_eq!(r.limits.as_ref().unwrap()["cpu"].0, *want.limits.as_ref().unwrap().cpu.as_ref().unwrap());
        assert_eq!(r.limits.as_ref().unwrap()["memory"].0, *want.limits.as_ref().unwrap().memory.as_ref().unwrap());
        assert_eq!(r.requests.as_ref().unwrap()["cpu"].0, *want.requests.as_ref().unwrap().cpu.as_ref().unwrap());
        assert_eq!(r.requests.as_ref().unwrap()["memory"].0, *want.requests.as_ref().unwrap().memory.as_ref().unwrap());
        // persistence
        let p = spec.persistence.as_ref().unwrap();
        let vct = &s.volume_claim_templates.as_ref().unwrap()[0];
        let vs = vct.spec.as_ref().unwrap();
        assert_eq!(vs.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, p.size);
        assert_eq!(vs.storage_class_name, p.storage_class_name);
        assert!(!ps.volumes.as_ref().unwrap().iter().any(|v| v.name == "qdrant-storage"), "no emptyDir with persistence");
        // service type
        assert_eq!(c.client_service.spec.as_ref().unwrap().type_.as_deref(), Some(spec.service.as_str()));
        // tls
        let tls_vol = ps.volumes.as_ref().unwrap().iter().find(|v| v.name == "qdrant-tls").unwrap();
        assert_eq!(tls_vol.secret.as_ref().unwrap().secret_name, spec.tls.secret_name);
        assert!(peer_uri(&qc, "0").starts_with("https://"));
        assert_eq!(q.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().scheme.as_deref(), Some("HTTPS"));
        // sidecars, volumes, mounts
        for sc in &spec.sidecar_containers {
            assert!(ps.containers.iter().any(|c| c == sc), "sidecar {} missing", sc.name);
        }
        for v in &spec.additional_volumes {
            assert!(ps.volumes.as_ref().unwrap().contains(v), "volume {} missing", v.name);
        }
        for m in &spec.additional_volume_mounts {
            assert!(q.volume_mounts.as_ref().unwrap().contains(m), "mount {} missing", m.name);
        }
        // scheduling
        assert_eq!(&ps.tolerations, &spec.tolerations);
        assert_eq!(ps.affinity.as_ref().unwrap().node_affinity, spec.node_affinity);
        assert_eq!(ps.affinity.as_ref().unwrap().pod_anti_affinity, spec.pod_anti_affinity);
        assert_eq!(ps.topology_spread_constraints, spec.topology_spread_constraints);
        // config merged into production.yaml
        let prod: Value = serde_yaml_ng::from_str(&c.config_map.data.as_ref().unwrap()["production.yaml"]).unwrap();
        let user = spec.config.as_ref().unwrap();
        for (k, v) in user.as_object().unwrap() {
            let mut expected = production_config(&QdrantCluster { spec: crate::crd::QdrantClusterSpec { config: None, ..spec.clone() }, ..qc.clone() })[k].clone();
            merge(&mut expected, v);
            assert_eq!(prod[k], expected, "config key {k}");
        }
        assert_eq!(prod["cluster"]["enabled"], json!(true));
        // keys
        let data = |s: &Option<Secret>, k: &str| String::from_utf8(s.as_ref().unwrap().data.as_ref().unwrap()[k].0.clone()).unwrap();
        assert_eq!(data(&c.api_key, KEY_FIELD), "k1");
        assert_eq!(data(&c.read_api_key, KEY_FIELD), "k2");
        let read_meta = &c.read_api_key.as_ref().unwrap().metadata;
        assert_eq!(read_meta.annotations.as_ref().unwrap()[GENERATED_ANNOTATION], "true");
        assert!(c.api_key.as_ref().unwrap().metadata.annotations.is_none());
        let local: Value = serde_yaml_ng::from_str(&data(&c.auth_config, "local.yaml")).unwrap();
        assert_eq!(local, json!({"service": {"api_key": "k1", "read_only_api_key": "k2"}}));
        assert!(q.volume_mounts.as_ref().unwrap().iter().any(|m| m.mount_path == "/qdrant/config/local.yaml"));
        // pdb for replicas > 1
        assert!(spec.replicas > 1 && c.pdb.is_some());
    }

    #[test]
    fn bootstrap_arguments_for_ordinal_zero_and_n() {
        let qc = example("qdrant-cluster-minimal.yaml");
        assert_eq!(peer_args(&qc, "0"), vec!["--uri", "http://my-cluster-0.my-cluster-headless.default:6335"]);
        assert_eq!(
            peer_args(&qc, "2"),
            vec!["--bootstrap", "http://my-cluster-0.my-cluster-headless.default:6335", "--uri", "http://my-cluster-2.my-cluster-headless.default:6335"]
        );
        let script = initialize_sh(&qc);
        assert!(script.contains(r#"exec ./entrypoint.sh "--uri" "http://my-cluster-0.my-cluster-headless.default:6335""#), "{script}");
        assert!(script.contains(r#""--bootstrap" "http://my-cluster-0.my-cluster-headless.default:6335" "--uri" "http://my-cluster-${SET_INDEX}.my-cluster-headless.default:6335""#), "{script}");
        // Peer 0 on an empty volume joins any peer that answers instead of founding a cluster.
        assert!(script.contains("if [ ! -e /qdrant/storage/raft_state.json ]; then"), "{script}");
        assert!(script.contains(r#"timeout 1 bash -c "exec 3<>/dev/tcp/my-cluster-$i.my-cluster-headless.default/6335""#), "{script}");
        assert!(script.contains(r#"exec ./entrypoint.sh "--bootstrap" "http://my-cluster-$i.my-cluster-headless.default:6335" "--uri" "http://my-cluster-0.my-cluster-headless.default:6335""#), "{script}");
        // Any other peer without consensus state waits for peer 0 first, so that peer 0 never
        // finds a peer that waits to join it (which would leave a new cluster without founder).
        assert!(script.contains(r#"until timeout 1 bash -c "exec 3<>/dev/tcp/my-cluster-0.my-cluster-headless.default/6335" 2>/dev/null; do"#), "{script}");
    }

    #[test]
    fn the_start_script_runs_in_bash() {
        // Peer 0's branch, run with a fake entrypoint: with no peer to find (the probe names
        // resolve nowhere) and no consensus state, it founds the cluster.
        let dir = std::env::temp_dir().join(format!("qdrant-operator-init-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut qc = example("qdrant-cluster-minimal.yaml");
        qc.metadata.namespace = Some("no-such-namespace.invalid".into());
        std::fs::write(dir.join("initialize.sh"), initialize_sh(&qc)).unwrap();
        std::fs::write(dir.join("entrypoint.sh"), "#!/bin/bash\necho \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("entrypoint.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("bash")
            .arg("initialize.sh")
            .current_dir(&dir)
            .env("HOSTNAME", "my-cluster-0")
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.ends_with("--uri http://my-cluster-0.my-cluster-headless.no-such-namespace.invalid:6335\n"), "{stdout}");
    }

    #[test]
    fn pdb_only_above_one_replica_and_follows_replicas() {
        let mut qc = example("qdrant-cluster-minimal.yaml");
        assert!(build(&qc, &Keys::default(), (false, false)).pdb.is_none());
        qc.spec.replicas = 3;
        let pdb = build(&qc, &Keys::default(), (false, false)).pdb.expect("pdb for 3 replicas");
        assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(1)));
        qc.spec.replicas = 5;
        let c = build(&qc, &Keys::default(), (false, false));
        assert!(c.pdb.is_some());
        assert_eq!(c.stateful_set.spec.unwrap().replicas, Some(5));
    }

    #[test]
    fn config_change_changes_the_checksum() {
        let mut qc = example("qdrant-cluster-minimal.yaml");
        let a = build(&qc, &Keys::default(), (false, false));
        let b = build(&qc, &Keys::default(), (false, false));
        let sum = |c: &Children| c.stateful_set.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()[CHECKSUM_ANNOTATION].clone();
        assert_eq!(sum(&a), sum(&b), "builds must be deterministic");
        qc.spec.config = Some(json!({"log_level": "DEBUG"}));
        assert_ne!(sum(&a), sum(&build(&qc, &Keys::default(), (false, false))));
        let keyed = build(&qc, &Keys { api: Some("x".into()), read: None }, (false, false));
        let rekeyed = build(&qc, &Keys { api: Some("y".into()), read: None }, (false, false));
        assert_ne!(sum(&keyed), sum(&rekeyed));
    }

    #[test]
    fn planned_children_are_exactly_what_is_built() {
        for (apikey, read, replicas) in [("false", "false", 1), ("true", "false", 3), ("true", "ro-key", 2), ("lit", "true", 1)] {
            let qc = cluster(serde_json::json!({"replicas": replicas, "image": "qdrant/qdrant:v1.16.3", "apikey": apikey, "readApikey": read}));
            let keys = Keys { api: (apikey != "false").then(|| "k".into()), read: (read != "false").then(|| "r".into()) };
            assert_eq!(planned_children(&qc), build(&qc, &keys, (true, true)).refs(), "apikey={apikey} readApikey={read} replicas={replicas}");
        }
        let qc = cluster(serde_json::json!({"replicas": 3, "image": "qdrant/qdrant:v1.16.3", "apikey": "true", "readApikey": "true"}));
        let planned = planned_children(&qc);
        assert_eq!(planned.len(), 8, "{planned:?}");
        assert!(planned.contains(&(ChildKind::Service, "my-cluster-headless".into())));
        assert!(planned.contains(&(ChildKind::PodDisruptionBudget, "my-cluster".into())));
    }
}
