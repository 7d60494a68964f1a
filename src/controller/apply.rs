//! Writes the children with server-side apply (one stable field manager), in dependency
//! order. Every request first passes the leadership guard, immediately before it is sent.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::{de::DeserializeOwned, Serialize};

use super::build::{self, Children, Keys, GENERATED_ANNOTATION, KEY_FIELD};
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
    let params = PatchParams::apply(FIELD_MANAGER).force();
    guard.check()?;
    Ok(api.patch(&obj.name_any(), &params, &Patch::Apply(obj)).await?)
}

/// Deletes a child that is no longer wanted, if it exists and this cluster owns it. Reads
/// first, so an idle cluster sends no write at all.
async fn delete_owned<K>(client: &Client, guard: &LeadershipGuard, qc: &QdrantCluster, name: &str) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &qc.namespace().unwrap_or_default());
    let Some(existing) = api.get_opt(name).await? else { return Ok(()) };
    let uid = qc.uid();
    if !existing.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref()) {
        return Ok(());
    }
    guard.check()?;
    match api.delete(name, &DeleteParams::default()).await {
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

/// Resolves one key setting to its value. A generated key is read back from its Secret, or
/// from the auth config if that Secret was deleted, and only generated when neither has it; it
/// is then created with a plain create, which fails rather than overwrite a concurrent one.
async fn resolve_key(client: &Client, guard: &LeadershipGuard, qc: &QdrantCluster, setting: KeySetting, secret_name: &str, auth_field: &str) -> Result<(Option<String>, bool), Error> {
    match setting {
        KeySetting::Off => Ok((None, false)),
        KeySetting::Literal(k) => Ok((Some(k), false)),
        KeySetting::Generate => {
            let api: Api<Secret> = Api::namespaced(client.clone(), &qc.namespace().unwrap_or_default());
            let existing = api.get_opt(secret_name).await?;
            if let Some(s) = &existing {
                let generated = s.annotations().get(GENERATED_ANNOTATION).is_some_and(|v| v == "true");
                if let (true, Some(v)) = (generated, secret_value(s, KEY_FIELD)) {
                    return Ok((Some(v), true));
                }
            }
            if existing.is_none() {
                let auth = api.get_opt(&build::auth_config_name(&qc.name_any())).await?;
                let recovered = auth
                    .as_ref()
                    .and_then(|s| secret_value(s, "local.yaml"))
                    .and_then(|y| serde_yaml_ng::from_str::<serde_json::Value>(&y).ok())
                    .and_then(|v| v["service"][auth_field].as_str().map(str::to_owned));
                if let Some(v) = recovered {
                    tracing::warn!(secret = secret_name, "key Secret was deleted; restoring it from the auth config");
                    return Ok((Some(v), true));
                }
            }
            let key = random_key()?;
            let keys = if auth_field == "api_key" { Keys { api: Some(key.clone()), read: None } } else { Keys { api: None, read: Some(key.clone()) } };
            let children = build::build(qc, &keys, (true, true));
            let mut secret = if auth_field == "api_key" { children.api_key } else { children.read_api_key }.expect("key secret built");
            if existing.is_some() {
                // A literal key Secret from before: replace it with the generated one.
                guard.check()?;
                let s = apply(client, guard, &secret).await?;
                return Ok((secret_value(&s, KEY_FIELD), true));
            }
            secret.metadata.resource_version = None;
            guard.check()?;
            match api.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &secret).await {
                Ok(s) => Ok((secret_value(&s, KEY_FIELD), true)),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let s = api.get(secret_name).await?;
                    Ok((secret_value(&s, KEY_FIELD), true))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Resolves both keys, and whether each was generated.
pub async fn resolve_keys(client: &Client, guard: &LeadershipGuard, qc: &QdrantCluster) -> Result<(Keys, (bool, bool)), Error> {
    let name = qc.name_any();
    let (api, gen_api) = resolve_key(client, guard, qc, qc.spec.apikey_setting(), &build::api_key_secret_name(&name), "api_key").await?;
    let (read, gen_read) = resolve_key(client, guard, qc, qc.spec.read_apikey_setting(), &build::read_api_key_secret_name(&name), "read_only_api_key").await?;
    Ok((Keys { api, read }, (gen_api, gen_read)))
}

/// Applies every child in order and returns the StatefulSet as the API server now has it.
pub async fn apply_children(client: &Client, guard: &LeadershipGuard, qc: &QdrantCluster, children: Children) -> Result<StatefulSet, Error> {
    let Children { api_key, read_api_key, auth_config, config_map, headless_service, client_service, stateful_set, pdb } = children;
    let name = qc.name_any();
    for s in [api_key, read_api_key].into_iter().flatten() {
        apply(client, guard, &s).await?;
    }
    match auth_config {
        Some(s) => drop(apply(client, guard, &s).await?),
        None => delete_owned::<Secret>(client, guard, qc, &build::auth_config_name(&name)).await?,
    }
    apply(client, guard, &config_map).await?;
    apply(client, guard, &headless_service).await?;
    apply(client, guard, &client_service).await?;
    let sts = apply(client, guard, &stateful_set).await?;
    match pdb {
        Some(p) => drop(apply(client, guard, &p).await?),
        None => delete_owned::<PodDisruptionBudget>(client, guard, qc, &name).await?,
    }
    Ok(sts)
}
