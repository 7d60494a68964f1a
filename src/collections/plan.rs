//! Pure: from a QdrantCollection's spec to what Qdrant is asked, and from what Qdrant has to
//! what must change. Qdrant fixes a collection's vectors and shard number at creation; its
//! replication and write consistency factors, `on_disk_payload`, HNSW, optimizer and
//! quantization settings change in place (`PATCH /collections/{name}`). A collection that
//! exists with other fixed settings is reported, never dropped.

use serde_json::{json, Value};

use super::crd::{Distance, QdrantCollectionSpec};
use crate::backups::crd::{QdrantCollectionTemplateSpec, TemplateDistance};

/// Settings Qdrant lets change in place, under `config.params` of `GET /collections/{name}`.
const PARAMS: &[&str] = &["replication_factor", "write_consistency_factor", "on_disk_payload"];
/// Sections Qdrant lets change in place, top level of the create body and of `config`.
const SECTIONS: &[(&str, &str)] = &[("hnsw_config", "hnsw_config"), ("optimizers_config", "optimizer_config"), ("quantization_config", "quantization_config")];

/// A collection's settings once its template filled what its spec leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// `vectors` of Qdrant's create body: one unnamed vector (`size`, `distance`, `on_disk`),
    /// or named ones (`{name: {size, distance, on_disk}}`).
    pub vectors: Value,
    pub shard_number: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: Option<u32>,
    pub config: Option<Value>,
}

/// Pure: the spec over the template over the defaults. The template's quantization goes into
/// `config.quantization_config` unless the spec's `config` has one.
pub fn effective(spec: &QdrantCollectionSpec, template: Option<&QdrantCollectionTemplateSpec>) -> Result<Effective, String> {
    let tv = template.and_then(|t| t.vectors.as_ref());
    let on_disk = spec.on_disk.or(template.map(|t| t.on_disk)).unwrap_or(true);
    let vectors = match &spec.vectors {
        Some(named) => Value::Object(named.iter().map(|(name, v)| (name.clone(), json!({"size": v.size, "distance": v.distance.unwrap_or_default(), "on_disk": v.on_disk.unwrap_or(on_disk)}))).collect()),
        None => {
            let size = spec.vector_size.or(tv.and_then(|v| v.size)).ok_or("vectorSize is not set, and the template gives no vectors.size")?;
            let distance = spec.distance.or(tv.and_then(|v| v.distance).map(|d| match d {
                TemplateDistance::Cosine => Distance::Cosine,
                TemplateDistance::Euclid => Distance::Euclid,
                TemplateDistance::Dot => Distance::Dot,
            }));
            json!({"size": size, "distance": distance.unwrap_or_default(), "on_disk": on_disk})
        }
    };
    let mut config = spec.config.clone();
    if let Some(q) = tv.and_then(|v| v.quantization.as_ref()) {
        let quantization = match (&q.scalar, &q.product) {
            (Some(s), _) => Some(json!({"scalar": {"type": s.type_.map(|_| "int8").unwrap_or("int8")}})),
            (None, Some(p)) => Some(json!({"product": {"compression": p.compression.map(|c| serde_json::to_value(c).unwrap_or_default()).unwrap_or(json!("x16"))}})),
            (None, None) => None,
        };
        if let Some(q) = quantization {
            let cfg = config.get_or_insert_with(|| json!({}));
            if cfg.get("quantization_config").is_none() {
                cfg["quantization_config"] = q;
            }
        }
    }
    Ok(Effective {
        vectors,
        shard_number: spec.shard_number.or(template.map(|t| t.shards)).unwrap_or(1),
        replication_factor: spec.replication_factor.or(template.map(|t| t.replication_factor)).unwrap_or(1),
        write_consistency_factor: spec.write_consistency_factor,
        config,
    })
}

/// The body of `PUT /collections/{name}`: the settings, with `config` merged over them.
pub fn create_body(spec: &Effective) -> Value {
    let mut body = json!({
        "vectors": spec.vectors,
        "shard_number": spec.shard_number,
        "replication_factor": spec.replication_factor,
    });
    if let Some(w) = spec.write_consistency_factor {
        body["write_consistency_factor"] = json!(w);
    }
    if let (Some(Value::Object(cfg)), Value::Object(b)) = (&spec.config, &mut body) {
        for (k, v) in cfg {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

/// Whether everything in `want` is in `have` with the same value (objects compared key by key,
/// so that Qdrant's extra defaults do not count as differences).
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, v)| h.get(k).is_some_and(|hv| contains(hv, v))),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// What to do about a collection, given the body it is created with and the `config` of the
/// collection Qdrant has (`None`: it does not exist).
#[derive(Debug, PartialEq)]
pub enum Step {
    Create(Value),
    /// `PATCH /collections/{name}` with this body.
    Update(Value),
    /// Nothing to change.
    InSync,
    /// Exists with settings fixed at creation that differ: reported, never dropped.
    Conflict(Vec<String>),
}

/// Pure: the next step.
pub fn step(body: &Value, existing: Option<&Value>) -> Step {
    let Some(config) = existing else { return Step::Create(body.clone()) };
    let mut fixed = Vec::new();
    let vectors = &config["params"]["vectors"];
    // Each vector by name, "" for the unnamed one: (what Qdrant has, what the spec wants).
    let pairs: Vec<(String, &Value, &Value)> = match body["vectors"].as_object() {
        Some(w) if w.contains_key("size") => vec![(String::new(), vectors, &body["vectors"])],
        Some(w) => w.iter().map(|(name, want)| (name.clone(), &vectors[name], want)).collect(),
        None => Vec::new(),
    };
    for (name, have, want) in &pairs {
        let at = if name.is_empty() { "vectors".to_owned() } else { format!("vectors.{name}") };
        if name.is_empty() == vectors.get("size").is_none() {
            fixed.push(format!("{at}: Qdrant has {}, the spec {}", if vectors.get("size").is_some() { "one unnamed vector" } else { "named vectors" }, if name.is_empty() { "one unnamed vector" } else { "named vectors" }));
            break;
        }
        if have.is_null() {
            fixed.push(format!("{at} does not exist in Qdrant"));
            continue;
        }
        for k in ["size", "distance"] {
            if !contains(&have[k], &want[k]) {
                fixed.push(format!("{at}.{k} is {} in Qdrant, {} in the spec", have[k], want[k]));
            }
        }
    }
    if let (Some(have), false) = (vectors.as_object(), pairs.first().is_some_and(|p| p.0.is_empty())) {
        for name in have.keys().filter(|n| !pairs.iter().any(|p| &p.0 == *n)) {
            fixed.push(format!("vectors.{name} exists in Qdrant, not in the spec"));
        }
    }
    if !contains(&config["params"]["shard_number"], &body["shard_number"]) {
        fixed.push(format!("shard_number is {} in Qdrant, {} in the spec", config["params"]["shard_number"], body["shard_number"]));
    }
    if !fixed.is_empty() {
        return Step::Conflict(fixed);
    }
    let mut patch = serde_json::Map::new();
    let mut params = serde_json::Map::new();
    for k in PARAMS {
        if let Some(want) = body.get(*k) {
            if !contains(&config["params"][*k], want) {
                params.insert((*k).into(), want.clone());
            }
        }
    }
    if !params.is_empty() {
        patch.insert("params".into(), Value::Object(params));
    }
    for (in_body, in_config) in SECTIONS {
        if let Some(want) = body.get(*in_body) {
            if !contains(&config[*in_config], want) {
                patch.insert((*in_body).into(), want.clone());
            }
        }
    }
    let mut on_disk = serde_json::Map::new();
    for (name, have, want) in &pairs {
        if let Some(w) = want.get("on_disk") {
            if !contains(&have["on_disk"], w) && !(w == &json!(false) && have["on_disk"].is_null()) {
                on_disk.insert(name.clone(), json!({"on_disk": w}));
            }
        }
    }
    if !on_disk.is_empty() {
        patch.insert("vectors".into(), Value::Object(on_disk));
    }
    if patch.is_empty() { Step::InSync } else { Step::Update(Value::Object(patch)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> Effective {
        effective(&serde_json::from_value::<QdrantCollectionSpec>(v).unwrap(), None).unwrap()
    }

    /// `config` as Qdrant answers for a collection made from `body`, with its own defaults.
    fn qdrant_config(body: &Value) -> Value {
        json!({
            "params": {"vectors": body["vectors"], "shard_number": body["shard_number"], "replication_factor": body["replication_factor"], "write_consistency_factor": 1, "on_disk_payload": true},
            "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
            "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000},
            "quantization_config": null
        })
    }

    #[test]
    fn the_older_operators_body_with_config_merged_at_the_top() {
        let b = create_body(&spec(json!({"cluster": "c", "vectorSize": 10, "onDisk": false, "shardNumber": 6, "replicationFactor": 2, "config": {"hnsw_config": {"m": 32}}})));
        assert_eq!(b, json!({"vectors": {"size": 10, "distance": "Cosine", "on_disk": false}, "shard_number": 6, "replication_factor": 2, "hnsw_config": {"m": 32}}));
    }

    #[test]
    fn missing_means_create_and_the_same_means_nothing() {
        let b = create_body(&spec(json!({"cluster": "c", "vectorSize": 4, "shardNumber": 3})));
        assert_eq!(step(&b, None), Step::Create(b.clone()));
        assert_eq!(step(&b, Some(&qdrant_config(&b))), Step::InSync, "Qdrant's extra defaults are no difference");
    }

    #[test]
    fn changeable_settings_are_patched_and_only_those() {
        let old = create_body(&spec(json!({"cluster": "c", "vectorSize": 4})));
        let new = create_body(&spec(json!({"cluster": "c", "vectorSize": 4, "replicationFactor": 2, "config": {"hnsw_config": {"m": 32}, "optimizers_config": {"deleted_threshold": 0.2}}})));
        assert_eq!(step(&new, Some(&qdrant_config(&old))), Step::Update(json!({"params": {"replication_factor": 2}, "hnsw_config": {"m": 32}})));
    }

    #[test]
    fn a_template_fills_what_the_spec_leaves_out_and_the_spec_wins() {
        let t: QdrantCollectionTemplateSpec = serde_json::from_value(json!({"name": "t", "shards": 6, "replicationFactor": 2, "onDisk": true,
            "vectors": {"size": 768, "distance": "Dot", "quantization": {"scalar": {"type": "int8"}}}})).unwrap();
        let only_template = effective(&serde_json::from_value(json!({"cluster": "c", "template": "t"})).unwrap(), Some(&t)).unwrap();
        assert_eq!((&only_template.vectors, only_template.shard_number, only_template.replication_factor), (&json!({"size": 768, "distance": "Dot", "on_disk": true}), 6, 2));
        assert_eq!(create_body(&only_template)["quantization_config"], json!({"scalar": {"type": "int8"}}));
        let overridden = effective(&serde_json::from_value(json!({"cluster": "c", "template": "t", "vectorSize": 4, "shardNumber": 1})).unwrap(), Some(&t)).unwrap();
        assert_eq!((overridden.vectors["size"].as_u64(), overridden.shard_number, overridden.replication_factor), (Some(4), 1, 2));
        assert!(effective(&serde_json::from_value(json!({"cluster": "c", "template": "t"})).unwrap(), None).is_err(), "no size anywhere");
    }

    #[test]
    fn named_vectors_are_created_compared_by_name_and_their_on_disk_updated() {
        let b = create_body(&spec(json!({"cluster": "c", "vectors": {"text": {"size": 384}, "image": {"size": 512, "distance": "Dot", "onDisk": false}}})));
        assert_eq!(b["vectors"], json!({"image": {"size": 512, "distance": "Dot", "on_disk": false}, "text": {"size": 384, "distance": "Cosine", "on_disk": true}}));
        assert_eq!(step(&b, Some(&qdrant_config(&b))), Step::InSync);
        let more = create_body(&spec(json!({"cluster": "c", "vectors": {"text": {"size": 384, "onDisk": false}, "image": {"size": 512, "distance": "Dot", "onDisk": false}}})));
        assert_eq!(step(&more, Some(&qdrant_config(&b))), Step::Update(json!({"vectors": {"text": {"on_disk": false}}})));
        let Step::Conflict(why) = step(&create_body(&spec(json!({"cluster": "c", "vectors": {"text": {"size": 385}}}))), Some(&qdrant_config(&b))) else { panic!() };
        assert_eq!(why, ["vectors.text.size is 384 in Qdrant, 385 in the spec", "vectors.image exists in Qdrant, not in the spec"]);
        let Step::Conflict(why) = step(&create_body(&spec(json!({"cluster": "c", "vectorSize": 384}))), Some(&qdrant_config(&b))) else { panic!() };
        assert!(why[0].contains("Qdrant has named vectors"), "{why:?}");
    }

    #[test]
    fn other_fixed_settings_are_a_conflict_never_a_recreation() {
        let existing = qdrant_config(&create_body(&spec(json!({"cluster": "c", "vectorSize": 4}))));
        let Step::Conflict(why) = step(&create_body(&spec(json!({"cluster": "c", "vectorSize": 8, "distance": "Dot", "shardNumber": 2}))), Some(&existing)) else { panic!() };
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why[0].contains("vectors.size is 4 in Qdrant, 8 in the spec"));
    }
}
