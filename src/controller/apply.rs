//! Writes the children with server-side apply (one stable field manager), in dependency
//! order. Every request first passes the leadership guard, immediately before it is sent.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::{de::DeserializeOwned, Serialize};

use super::build::{self, ChildKind, Children, Keys, KEY_FIELD, MANAGED_BY};
use super::certs::{self, Material};
use super::validate::SecretRef;
use crate::crd::{KeySetting, QdrantCluster};
use crate::leader::LeadershipGuard;
use crate::Error;

pub const FIELD_MANAGER: &str = "qdrant-operator";

/// Server-side applies one object, through the guard.
pub async fn apply<K>(client: &Client, guard: &LeadershipGuard, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), obj.meta().namespace.as_deref().unwrap_or_default());
    // `force` takes fields over from other managers (a `kubectl edit` is drift to repair).
    // It never takes over an object: `name_conflicts` has checked that this one is ours.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(guard.write(api.patch(&obj.name_any(), &params, &Patch::Apply(obj))).await??)
}

/// What `name_conflicts` read of the children that exist, by kind and name.
#[derive(Default)]
pub struct Observed {
    /// Each one's resourceVersion.
    pub versions: BTreeMap<(ChildKind, String), String>,
    /// The metadata of those this cluster owns that this operator never applied (no
    /// `managed-by` label): objects of the older JavaScript operator, to be taken over.
    pub foreign: BTreeMap<(ChildKind, String), ObjectMeta>,
}

/// What this process last applied to each child: a hash of the object it sent, and the
/// resourceVersion the API server answered. A child whose live resourceVersion is still that
/// one, and whose wanted object hashes the same, is already as wanted, and is not applied
/// again: a no-op apply changes nothing but is still a write request, and a cluster that waits
/// in an operation (say, for a new peer that never joins) is looked at every few seconds.
/// Anyone else's change, another leader's included, moves the resourceVersion, so drift is
/// still repaired at once. A new process starts empty and applies everything once.
#[derive(Default)]
pub struct Applied(Mutex<HashMap<String, (u64, String)>>);

impl Applied {
    fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
        format!("{}/{}/{}", K::kind(&()), obj.meta().namespace.as_deref().unwrap_or_default(), obj.name_any())
    }

    fn hash<K: Serialize>(obj: &K) -> Option<u64> {
        let mut h = DefaultHasher::new();
        serde_json::to_string(obj).ok()?.hash(&mut h);
        Some(h.finish())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, String)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `obj` was applied by this process and the object is unchanged since (`live`).
    pub fn unchanged<K: Resource<DynamicType = ()> + Serialize>(&self, obj: &K, live: Option<&str>) -> bool {
        let (Some(live), Some(hash)) = (live, Self::hash(obj)) else { return false };
        self.map().get(&Self::key(obj)).is_some_and(|(h, rv)| *h == hash && rv == live)
    }

    /// Records that `sent` was applied and the API server now has `answer`.
    pub fn record<K: Resource<DynamicType = ()> + Serialize>(&self, sent: &K, answer: &K) {
        match (Self::hash(sent), answer.meta().resource_version.clone()) {
            (Some(hash), Some(rv)) => drop(self.map().insert(Self::key(sent), (hash, rv))),
            _ => drop(self.map().remove(&Self::key(sent))),
        }
    }
}

/// Pure: the managed fields of an object taken over from other managers. Every field any
/// manager owns becomes this operator's, as one entry of its apply, so that its next apply
/// removes what it does not set: the older operator's `tcpSocket` readiness handler beside
/// our `httpGet` one (a 422), its `rollingUpdate` under our `OnDelete` (a 422), its PDB's
/// `minAvailable` beside our `maxUnavailable` (a 422), its unused volumes. Entries of
/// subresources (status, scale) are kept as they are. `None` when there is nothing to move.
pub fn taken_over(entries: &[ManagedFieldsEntry], now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Option<Vec<ManagedFieldsEntry>> {
    let (sub, main): (Vec<_>, Vec<_>) = entries.iter().cloned().partition(|e| e.subresource.as_deref().is_some_and(|s| !s.is_empty()));
    if main.iter().all(|e| e.manager.as_deref() == Some(FIELD_MANAGER) && e.operation.as_deref() == Some("Apply")) {
        return None;
    }
    let mut fields = serde_json::Value::Object(Default::default());
    for e in &main {
        if let Some(f) = &e.fields_v1 {
            build::merge(&mut fields, &f.0);
        }
    }
    let ours = ManagedFieldsEntry {
        manager: Some(FIELD_MANAGER.into()),
        operation: Some("Apply".into()),
        api_version: main.first().and_then(|e| e.api_version.clone()),
        fields_type: Some("FieldsV1".into()),
        fields_v1: Some(FieldsV1(fields)),
        time: Some(now.clone()),
        subresource: None,
    };
    Some(std::iter::once(ours).chain(sub).collect())
}

/// Takes over every field of an object another manager created (see [`taken_over`]), in one
/// patch of its managed fields that fails if the object changed since `meta` was read.
async fn take_over<K>(client: &Client, guard: &LeadershipGuard, meta: &ObjectMeta) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let Some(entries) = taken_over(meta.managed_fields.as_deref().unwrap_or_default(), &now) else { return Ok(()) };
    let api: Api<K> = Api::namespaced(client.clone(), meta.namespace.as_deref().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"resourceVersion": meta.resource_version, "managedFields": entries}});
    let name = meta.name.as_deref().unwrap_or_default();
    guard.write(api.patch(name, &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &Patch::Merge(&patch))).await??;
    tracing::info!(kind = K::kind(&()).as_ref(), name, "took over the fields of another manager");
    Ok(())
}

/// Applies `obj` unless [`Applied`] knows it is already as wanted, taking its fields over
/// first when another manager made it. Returns the object as the API server has it when it
/// was applied, `None` when it was left alone.
async fn apply_changed<K>(client: &Client, guard: &LeadershipGuard, applied: &Applied, observed: &Observed, kind: ChildKind, obj: &K) -> Result<Option<K>, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let key = (kind, obj.name_any());
    if let Some(meta) = observed.foreign.get(&key) {
        take_over::<K>(client, guard, meta).await?;
    } else if applied.unchanged(obj, observed.versions.get(&key).map(String::as_str)) {
        return Ok(None);
    }
    let answer = apply(client, guard, obj).await?;
    applied.record(obj, &answer);
    Ok(Some(answer))
}

/// True when `meta` names `owner` (a cluster, a collection) as an owner.
pub(crate) fn owned_by(owner: &impl Resource, meta: &ObjectMeta) -> bool {
    let uid = owner.uid();
    meta.owner_references.iter().flatten().any(|o| Some(&o.uid) == uid.as_ref())
}

async fn metadata_of<K>(client: &Client, namespace: &str, name: &str) -> Result<Option<ObjectMeta>, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_metadata_opt(name).await?.map(|m| m.metadata))
}

/// Every object the cluster would write that exists and is not its own: another cluster's
/// child with the same name (`a` and `a-headless` both want the Service `a-headless`), or a
/// user's object. Such objects are never overwritten; each conflict is described for the
/// status, naming the object and its owner.
pub async fn name_conflicts(client: &Client, qc: &QdrantCluster, planned: &[(ChildKind, String)]) -> Result<(Vec<String>, Observed), Error> {
    let ns = qc.namespace().unwrap_or_default();
    let mut conflicts = Vec::new();
    let mut observed = Observed::default();
    for (kind, name) in planned {
        let meta = match kind {
            ChildKind::Secret => metadata_of::<Secret>(client, &ns, name).await?,
            ChildKind::ConfigMap => metadata_of::<ConfigMap>(client, &ns, name).await?,
            ChildKind::Service => metadata_of::<Service>(client, &ns, name).await?,
            ChildKind::StatefulSet => metadata_of::<StatefulSet>(client, &ns, name).await?,
            ChildKind::PodDisruptionBudget => metadata_of::<PodDisruptionBudget>(client, &ns, name).await?,
            ChildKind::NetworkPolicy => metadata_of::<NetworkPolicy>(client, &ns, name).await?,
        };
        if let Some(rv) = meta.as_ref().and_then(|m| m.resource_version.clone()) {
            observed.versions.insert((*kind, name.clone()), rv);
        }
        if let Some(m) = meta.as_ref().filter(|m| owned_by(qc, m) && !managed_by_us(m)) {
            observed.foreign.insert((*kind, name.clone()), m.clone());
        }
        let Some(meta) = meta.filter(|m| !owned_by(qc, m)) else { continue };
        let owner = match meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)) {
            Some(o) => format!("is owned by {} {}", o.kind, o.name),
            None => "is not owned by this cluster".into(),
        };
        conflicts.push(format!("{kind} {ns}/{name} already exists and {owner}; it is left as it is"));
    }
    Ok((conflicts, observed))
}

/// Whether this operator applied the object (it always sets its `managed-by` label).
pub fn managed_by_us(meta: &ObjectMeta) -> bool {
    meta.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/managed-by")).is_some_and(|v| v == MANAGED_BY)
}

/// Every Secret the pods need that is missing, or lacks a key they need, described for
/// the status.
pub async fn missing_secrets(client: &Client, qc: &QdrantCluster, refs: &[SecretRef]) -> Result<Vec<String>, Error> {
    let ns = qc.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut missing = Vec::new();
    for r in refs {
        match api.get_opt(&r.name).await? {
            None => missing.push(format!("Secret {ns}/{} ({}) does not exist", r.name, r.field)),
            Some(s) => {
                // An empty value is as good as none: an empty API key would turn authentication off.
                let absent: Vec<&str> = r.keys.iter().map(String::as_str).filter(|k| !s.data.as_ref().and_then(|d| d.get(*k)).is_some_and(|v| !v.0.is_empty())).collect();
                if !absent.is_empty() {
                    missing.push(format!("Secret {ns}/{} ({}) has no key {}, or it is empty", r.name, r.field, absent.join(", ")));
                }
            }
        }
    }
    Ok(missing)
}

/// Deletes a child that is no longer wanted, if it exists and this cluster owns it (and, with
/// `ours_only`, this operator made it). Reads first, so an idle cluster sends no write at all.
async fn delete_owned<K>(client: &Client, guard: &LeadershipGuard, qc: &QdrantCluster, name: &str, ours_only: bool) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &qc.namespace().unwrap_or_default());
    let Some(existing) = api.get_metadata_opt(name).await? else { return Ok(()) };
    if !owned_by(qc, &existing.metadata) || (ours_only && !managed_by_us(&existing.metadata)) {
        return Ok(());
    }
    match guard.write(api.delete(name, &DeleteParams::default())).await? {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.data.as_ref()?.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok()).filter(|v| !v.is_empty())
}

/// A cryptographically random key: 32 bytes, hex-encoded.
fn random_key() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Where a generated key comes from, decided from what exists.
#[derive(Debug, PartialEq)]
pub enum KeySource {
    /// The key Secret holds a key: keep it, always. Whoever wrote it (this operator, the older
    /// JavaScript one, which marks nothing, or a user), clients may be using it.
    Kept(String),
    /// The key Secret is gone but the auth config still holds the key: restore that one, so
    /// deleting a Secret by mistake does not change the key clients use.
    Recovered(String),
    /// The key Secret exists but holds no key: write a new one into it.
    Fill,
    /// Nothing holds a key yet: generate one.
    Generate,
}

/// Pure: decides where a generated key comes from. `auth_field` is the key's name in the auth
/// config's `service` section.
pub fn key_source(key_secret: Option<&Secret>, auth_config: Option<&Secret>, auth_field: &str) -> KeySource {
    if let Some(s) = key_secret {
        return secret_value(s, KEY_FIELD).map_or(KeySource::Fill, KeySource::Kept);
    }
    auth_config.and_then(|s| auth_key(s, auth_field)).map_or(KeySource::Generate, KeySource::Recovered)
}

/// Pure: one key of an auth config Secret (`api_key` or `read_only_api_key` in `local.yaml`).
fn auth_key(auth_config: &Secret, auth_field: &str) -> Option<String> {
    let yaml = secret_value(auth_config, "local.yaml")?;
    let v = serde_yaml_ng::from_str::<serde_json::Value>(&yaml).ok()?;
    v["service"][auth_field].as_str().map(str::to_owned)
}

/// The keys the Pods of a StatefulSet being taken over were started with, as its previous
/// manager's auth config Secret says (Pods read it once, at start). `None` when that is no
/// longer known: this operator has already rewritten the Secret.
pub async fn keys_in_effect(client: &Client, qc: &QdrantCluster) -> Result<Option<Keys>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &qc.namespace().unwrap_or_default());
    let auth = api.get_opt(&build::auth_config_name(&qc.name_any())).await?;
    if auth.as_ref().is_some_and(|a| managed_by_us(&a.metadata)) {
        return Ok(None);
    }
    let key = |field| auth.as_ref().and_then(|a| auth_key(a, field));
    Ok(Some(Keys { api: key("api_key"), read: key("read_only_api_key") }))
}

/// Resolves one key setting to its value, and whether it is a generated one. A new key is
/// created with a plain create, which fails rather than overwrite one created concurrently.
async fn resolve_key(client: &Client, guard: &LeadershipGuard, qc: &QdrantCluster, setting: KeySetting, secret_name: &str, auth_field: &str) -> Result<(Option<String>, bool), Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &qc.namespace().unwrap_or_default());
    match setting {
        KeySetting::Off => return Ok((None, false)),
        KeySetting::Literal(k) => return Ok((Some(k), false)),
        // Checked to exist with a non-empty key (`missing_secrets`) before anything is written;
        // gone since, it fails this reconcile rather than turn authentication off.
        KeySetting::FromSecret(r) => {
            let value = api.get(&r.name).await?;
            return match secret_value(&value, &r.key) {
                Some(k) => Ok((Some(k), false)),
                None => Err(Error::Spec(format!("Secret {} has no key {}, or it is empty", r.name, r.key))),
            };
        }
        KeySetting::Generate => {}
    }
    // From here on the key is a generated one.
    let existing = api.get_opt(secret_name).await?;
    let auth = match existing {
        Some(_) => None,
        None => api.get_opt(&build::auth_config_name(&qc.name_any())).await?,
    };
    let secret = match key_source(existing.as_ref(), auth.as_ref(), auth_field) {
        KeySource::Kept(v) => return Ok((Some(v), true)),
        KeySource::Recovered(v) => {
            tracing::warn!(secret = secret_name, "key Secret was deleted; restoring the same key from the auth config");
            return Ok((Some(v), true));
        }
        KeySource::Fill => {
            let secret = build::key_secret(qc, secret_name.to_owned(), KEY_FIELD, &random_key()?, true);
            let s = apply(client, guard, &secret).await?;
            return Ok((secret_value(&s, KEY_FIELD), true));
        }
        KeySource::Generate => build::key_secret(qc, secret_name.to_owned(), KEY_FIELD, &random_key()?, true),
    };
    match guard.write(api.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &secret)).await? {
        Ok(s) => Ok((secret_value(&s, KEY_FIELD), true)),
        // Created meanwhile: use that one.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok((secret_value(&api.get(secret_name).await?, KEY_FIELD), true)),
        Err(e) => Err(e.into()),
    }
}

/// Resolves both keys, and whether each was generated.
pub async fn resolve_keys(client: &Client, guard: &LeadershipGuard, qc: &QdrantCluster) -> Result<(Keys, (bool, bool)), Error> {
    let name = qc.name_any();
    let (api, gen_api) = resolve_key(client, guard, qc, qc.spec.apikey_setting(), &build::api_key_secret_name(&name), "api_key").await?;
    let (read, gen_read) = resolve_key(client, guard, qc, qc.spec.read_apikey_setting(), &build::read_api_key_secret_name(&name), "read_only_api_key").await?;
    Ok((Keys { api, read }, (gen_api, gen_read)))
}

/// The certificates the operator made for the cluster, kept or renewed (see `certs`), and
/// how soon they are due for renewal; `None` unless it makes them. Writes nothing: the
/// Secrets are children, applied with the others.
pub async fn resolve_tls(client: &Client, qc: &QdrantCluster, pods: i32) -> Result<Option<(Material, std::time::Duration)>, Error> {
    if !qc.spec.generated_tls() {
        return Ok(None);
    }
    let name = qc.name_any();
    let api: Api<Secret> = Api::namespaced(client.clone(), &qc.namespace().unwrap_or_default());
    let value = |s: &Option<Secret>, k: &str| s.as_ref().and_then(|s| secret_value(s, k));
    let ca = api.get_opt(&certs::ca_secret_name(&name)).await?;
    let server = api.get_opt(&certs::server_secret_name(&name)).await?;
    let ca = value(&ca, certs::CA_CERT_KEY).zip(value(&ca, certs::CA_KEY_KEY));
    let server = match (value(&server, certs::CERT_KEY), value(&server, certs::KEY_KEY), value(&server, certs::CA_CERT_KEY)) {
        (Some(c), Some(k), Some(b)) => Some((c, k, b)),
        _ => None,
    };
    let now = jiff::Timestamp::now().as_second();
    let timings = certs::timings(qc);
    let cluster = format!("{}/{name}", qc.namespace().unwrap_or_default());
    let material = certs::material(&cluster, ca, server, &certs::dns_names(qc, pods), now, timings).map_err(|e| Error::Certificate(e.to_string()))?;
    let due = certs::renew_in(&material, now, timings.1).unwrap_or_default();
    Ok(Some((material, due)))
}

/// Applies every child in order, except those already as wanted (see [`Applied`]; `observed`
/// is what `name_conflicts` just read of them), and returns the StatefulSet as the API server
/// now has it.
pub async fn apply_children(client: &Client, guard: &LeadershipGuard, applied: &Applied, observed: &Observed, qc: &QdrantCluster, children: Children) -> Result<StatefulSet, Error> {
    let Children { api_key, read_api_key, auth_config, tls_ca, tls_server, config_map, headless_service, client_service, stateful_set, pdb, network_policy } = children;
    let name = qc.name_any();
    for s in [api_key, read_api_key, tls_ca, tls_server].into_iter().flatten() {
        apply_changed(client, guard, applied, observed, ChildKind::Secret, &s).await?;
    }
    match auth_config {
        Some(s) => drop(apply_changed(client, guard, applied, observed, ChildKind::Secret, &s).await?),
        None => delete_owned::<Secret>(client, guard, qc, &build::auth_config_name(&name), false).await?,
    }
    apply_changed(client, guard, applied, observed, ChildKind::ConfigMap, &config_map).await?;
    apply_changed(client, guard, applied, observed, ChildKind::Service, &headless_service).await?;
    apply_changed(client, guard, applied, observed, ChildKind::Service, &client_service).await?;
    let sts = match apply_changed(client, guard, applied, observed, ChildKind::StatefulSet, &stateful_set).await? {
        Some(sts) => sts,
        // Unchanged: its status is still needed, and may have moved.
        None => Api::<StatefulSet>::namespaced(client.clone(), &qc.namespace().unwrap_or_default()).get(&name).await?,
    };
    match pdb {
        Some(p) => drop(apply_changed(client, guard, applied, observed, ChildKind::PodDisruptionBudget, &p).await?),
        None => delete_owned::<PodDisruptionBudget>(client, guard, qc, &name, false).await?,
    }
    match network_policy {
        Some(p) => drop(apply_changed(client, guard, applied, observed, ChildKind::NetworkPolicy, &p).await?),
        // Only one this operator made: the older operator's stays until one is asked for.
        None => delete_owned::<NetworkPolicy>(client, guard, qc, &name, true).await?,
    }
    Ok(sts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn qc() -> QdrantCluster {
        let spec = serde_json::from_value(serde_json::json!({"replicas": 1, "image": "qdrant/qdrant:v1.16.3", "apikey": "true"})).unwrap();
        QdrantCluster::new("c", spec)
    }

    fn auth(local_yaml: &str) -> Secret {
        Secret { data: Some(BTreeMap::from([("local.yaml".into(), k8s_openapi::ByteString(local_yaml.as_bytes().to_vec()))])), ..Default::default() }
    }

    #[test]
    fn an_existing_generated_key_is_kept() {
        let s = build::key_secret(&qc(), "c-apikey".into(), KEY_FIELD, "old-key", true);
        assert_eq!(key_source(Some(&s), Some(&auth("service: {api_key: other}")), "api_key"), KeySource::Kept("old-key".into()));
    }

    /// The older JavaScript operator marks nothing it generates: its keys must survive the
    /// takeover byte for byte, or every client breaks.
    #[test]
    fn an_existing_key_without_the_generated_mark_is_kept_too() {
        let s = build::key_secret(&qc(), "c-apikey".into(), KEY_FIELD, "aB3_-js-operator-key-32-chars-xx", false);
        assert!(s.annotations().is_empty());
        assert_eq!(key_source(Some(&s), None, "api_key"), KeySource::Kept("aB3_-js-operator-key-32-chars-xx".into()));
    }

    #[test]
    fn a_deleted_key_secret_is_restored_from_the_auth_config() {
        let a = auth("service:\n  api_key: from-auth\n  read_only_api_key: ro\n");
        assert_eq!(key_source(None, Some(&a), "api_key"), KeySource::Recovered("from-auth".into()));
        assert_eq!(key_source(None, Some(&a), "read_only_api_key"), KeySource::Recovered("ro".into()));
    }

    #[test]
    fn an_empty_key_secret_is_filled_and_nothing_means_generate() {
        let empty = build::key_secret(&qc(), "c-apikey".into(), KEY_FIELD, "", false);
        assert_eq!(key_source(Some(&empty), None, "api_key"), KeySource::Fill);
        assert_eq!(key_source(None, None, "api_key"), KeySource::Generate);
        assert_eq!(key_source(None, Some(&auth("service: {}")), "api_key"), KeySource::Generate);
    }

    #[test]
    fn a_child_is_applied_again_unless_it_is_as_this_process_last_applied_it() {
        let applied = Applied::default();
        let sent = build::key_secret(&qc(), "c-apikey".into(), KEY_FIELD, "k", true);
        let mut answer = sent.clone();
        answer.metadata.resource_version = Some("7".into());
        assert!(!applied.unchanged(&sent, Some("7")), "never applied by this process");
        applied.record(&sent, &answer);
        assert!(applied.unchanged(&sent, Some("7")));
        assert!(!applied.unchanged(&sent, Some("8")), "changed by someone since");
        assert!(!applied.unchanged(&sent, None), "deleted since");
        let other = build::key_secret(&qc(), "c-apikey".into(), KEY_FIELD, "other", true);
        assert!(!applied.unchanged(&other, Some("7")), "a different object is wanted now");
    }

    /// The older operator's objects: one `Update` manager created every field, and the API
    /// server's defaults. Ours must own them all, or our apply leaves what it does not set.
    #[test]
    fn taking_over_moves_every_field_to_our_apply_and_keeps_subresources() {
        let entry = |manager: &str, op: &str, sub: Option<&str>, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            api_version: Some("apps/v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            subresource: sub.map(Into::into),
            time: None,
        };
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH);
        let js = entry("node-fetch", "Update", None, serde_json::json!({"f:spec": {"f:updateStrategy": {"f:rollingUpdate": {}}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"qdrant\"}": {"f:readinessProbe": {"f:tcpSocket": {}}}}}}}}));
        let kubectl = entry("kubectl-edit", "Update", None, serde_json::json!({"f:metadata": {"f:annotations": {"f:x": {}}}}));
        let status = entry("kube-controller-manager", "Update", Some("status"), serde_json::json!({"f:status": {"f:replicas": {}}}));
        let moved = taken_over(&[js, kubectl, status.clone()], &now).unwrap();
        assert_eq!(moved.len(), 2);
        assert_eq!((moved[0].manager.as_deref(), moved[0].operation.as_deref()), (Some(FIELD_MANAGER), Some("Apply")));
        let fields = &moved[0].fields_v1.as_ref().unwrap().0;
        assert!(fields["f:spec"]["f:updateStrategy"]["f:rollingUpdate"].is_object());
        assert!(fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"qdrant\"}"]["f:readinessProbe"]["f:tcpSocket"].is_object());
        assert!(fields["f:metadata"]["f:annotations"]["f:x"].is_object());
        assert_eq!(moved[1], status, "the status subresource's manager is left alone");
        assert_eq!(taken_over(&moved, &now), None, "nothing left to move");
    }

    #[test]
    fn generated_keys_are_random_and_long() {
        let (a, b) = (random_key().unwrap(), random_key().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}
