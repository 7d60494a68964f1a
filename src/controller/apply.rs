//! Writes the children with server-side apply (one stable field manager), in dependency
//! order. Every request first passes the leadership guard, immediately before it is sent.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::{de::DeserializeOwned, Serialize};

use super::build::{self, ChildKind, Children, Keys, GENERATED_ANNOTATION, KEY_FIELD};
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

/// The resourceVersion of each child that exists, by kind and name, as just read.
pub type Versions = BTreeMap<(ChildKind, String), String>;

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

/// Applies `obj` unless [`Applied`] knows it is already as wanted. Returns the object as the
/// API server has it when it was applied, `None` when it was left alone.
async fn apply_changed<K>(client: &Client, guard: &LeadershipGuard, applied: &Applied, versions: &Versions, kind: ChildKind, obj: &K) -> Result<Option<K>, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    if applied.unchanged(obj, versions.get(&(kind, obj.name_any())).map(String::as_str)) {
        return Ok(None);
    }
    let answer = apply(client, guard, obj).await?;
    applied.record(obj, &answer);
    Ok(Some(answer))
}

/// True when `meta` names this cluster as an owner.
fn owned_by(qc: &QdrantCluster, meta: &ObjectMeta) -> bool {
    let uid = qc.uid();
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
pub async fn name_conflicts(client: &Client, qc: &QdrantCluster, planned: &[(ChildKind, String)]) -> Result<(Vec<String>, Versions), Error> {
    let ns = qc.namespace().unwrap_or_default();
    let mut conflicts = Vec::new();
    let mut versions = Versions::new();
    for (kind, name) in planned {
        let meta = match kind {
            ChildKind::Secret => metadata_of::<Secret>(client, &ns, name).await?,
            ChildKind::ConfigMap => metadata_of::<ConfigMap>(client, &ns, name).await?,
            ChildKind::Service => metadata_of::<Service>(client, &ns, name).await?,
            ChildKind::StatefulSet => metadata_of::<StatefulSet>(client, &ns, name).await?,
            ChildKind::PodDisruptionBudget => metadata_of::<PodDisruptionBudget>(client, &ns, name).await?,
        };
        if let Some(rv) = meta.as_ref().and_then(|m| m.resource_version.clone()) {
            versions.insert((*kind, name.clone()), rv);
        }
        let Some(meta) = meta.filter(|m| !owned_by(qc, m)) else { continue };
        let owner = match meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)) {
            Some(o) => format!("is owned by {} {}", o.kind, o.name),
            None => "is not owned by this cluster".into(),
        };
        conflicts.push(format!("{kind} {ns}/{name} already exists and {owner}; it is left as it is"));
    }
    Ok((conflicts, versions))
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
                let absent: Vec<&str> = r.keys.iter().copied().filter(|k| !s.data.as_ref().is_some_and(|d| d.contains_key(*k))).collect();
                if !absent.is_empty() {
                    missing.push(format!("Secret {ns}/{} ({}) has no key {}", r.name, r.field, absent.join(", ")));
                }
            }
        }
    }
    Ok(missing)
}

/// Deletes a child that is no longer wanted, if it exists and this cluster owns it. Reads
/// first, so an idle cluster sends no write at all.
async fn delete_owned<K>(client: &Client, guard: &LeadershipGuard, qc: &QdrantCluster, name: &str) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &qc.namespace().unwrap_or_default());
    let Some(existing) = api.get_metadata_opt(name).await? else { return Ok(()) };
    if !owned_by(qc, &existing.metadata) {
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
    /// The key Secret holds a key the operator generated: keep it, always.
    Kept(String),
    /// The key Secret is gone but the auth config still holds the key: restore that one, so
    /// deleting a Secret by mistake does not change the key clients use.
    Recovered(String),
    /// The key Secret holds a literal key from before `'true'` was set: replace it.
    ReplaceLiteral,
    /// Nothing holds a key yet: generate one.
    Generate,
}

/// Pure: decides where a generated key comes from. `auth_field` is the key's name in the auth
/// config's `service` section.
pub fn key_source(key_secret: Option<&Secret>, auth_config: Option<&Secret>, auth_field: &str) -> KeySource {
    if let Some(s) = key_secret {
        let generated = s.annotations().get(GENERATED_ANNOTATION).is_some_and(|v| v == "true");
        return match (generated, secret_value(s, KEY_FIELD)) {
            (true, Some(v)) => KeySource::Kept(v),
            _ => KeySource::ReplaceLiteral,
        };
    }
    auth_config
        .and_then(|s| secret_value(s, "local.yaml"))
        .and_then(|y| serde_yaml_ng::from_str::<serde_json::Value>(&y).ok())
        .and_then(|v| v["service"][auth_field].as_str().map(str::to_owned))
        .map_or(KeySource::Generate, KeySource::Recovered)
}

/// Resolves one key setting to its value, and whether it is a generated one. A new key is
/// created with a plain create, which fails rather than overwrite one created concurrently.
async fn resolve_key(client: &Client, guard: &LeadershipGuard, qc: &QdrantCluster, setting: KeySetting, secret_name: &str, auth_field: &str) -> Result<(Option<String>, bool), Error> {
    match setting {
        KeySetting::Off => return Ok((None, false)),
        KeySetting::Literal(k) => return Ok((Some(k), false)),
        KeySetting::Generate => {}
    }
    // From here on the key is a generated one.
    let api: Api<Secret> = Api::namespaced(client.clone(), &qc.namespace().unwrap_or_default());
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
        KeySource::ReplaceLiteral => {
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

/// Applies every child in order, except those already as wanted (see [`Applied`]; `versions`
/// are the children's resourceVersions as `name_conflicts` just read them), and returns the
/// StatefulSet as the API server now has it.
pub async fn apply_children(client: &Client, guard: &LeadershipGuard, applied: &Applied, versions: &Versions, qc: &QdrantCluster, children: Children) -> Result<StatefulSet, Error> {
    let Children { api_key, read_api_key, auth_config, config_map, headless_service, client_service, stateful_set, pdb } = children;
    let name = qc.name_any();
    for s in [api_key, read_api_key].into_iter().flatten() {
        apply_changed(client, guard, applied, versions, ChildKind::Secret, &s).await?;
    }
    match auth_config {
        Some(s) => drop(apply_changed(client, guard, applied, versions, ChildKind::Secret, &s).await?),
        None => delete_owned::<Secret>(client, guard, qc, &build::auth_config_name(&name)).await?,
    }
    apply_changed(client, guard, applied, versions, ChildKind::ConfigMap, &config_map).await?;
    apply_changed(client, guard, applied, versions, ChildKind::Service, &headless_service).await?;
    apply_changed(client, guard, applied, versions, ChildKind::Service, &client_service).await?;
    let sts = match apply_changed(client, guard, applied, versions, ChildKind::StatefulSet, &stateful_set).await? {
        Some(sts) => sts,
        // Unchanged: its status is still needed, and may have moved.
        None => Api::<StatefulSet>::namespaced(client.clone(), &qc.namespace().unwrap_or_default()).get(&name).await?,
    };
    match pdb {
        Some(p) => drop(apply_changed(client, guard, applied, versions, ChildKind::PodDisruptionBudget, &p).await?),
        None => delete_owned::<PodDisruptionBudget>(client, guard, qc, &name).await?,
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

    #[test]
    fn a_deleted_key_secret_is_restored_from_the_auth_config() {
        let a = auth("service:\n  api_key: from-auth\n  read_only_api_key: ro\n");
        assert_eq!(key_source(None, Some(&a), "api_key"), KeySource::Recovered("from-auth".into()));
        assert_eq!(key_source(None, Some(&a), "read_only_api_key"), KeySource::Recovered("ro".into()));
    }

    #[test]
    fn a_literal_key_is_replaced_and_nothing_means_generate() {
        let literal = build::key_secret(&qc(), "c-apikey".into(), KEY_FIELD, "literal", false);
        assert_eq!(key_source(Some(&literal), None, "api_key"), KeySource::ReplaceLiteral);
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

    #[test]
    fn generated_keys_are_random_and_long() {
        let (a, b) = (random_key().unwrap(), random_key().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}
