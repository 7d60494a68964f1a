//! Prints a CRD as YAML, by the plural after `qdrant`: `crdgen clusters` (the default),
//! `collections`, `collectionbackups`, `collectionrestores`, `collectiontemplates`;
//! `make crds` writes each to `crds/qdrant.operator_qdrant<that>.yaml`.
use kube::CustomResourceExt;

fn main() -> anyhow::Result<()> {
    use qdrant_operator::backups::crd::{QdrantCollectionBackup, QdrantCollectionRestore, QdrantCollectionTemplate};
    let crd = match std::env::args().nth(1).as_deref() {
        None | Some("clusters") => qdrant_operator::crd::QdrantCluster::crd(),
        Some("collections") => qdrant_operator::collections::crd::QdrantCollection::crd(),
        Some("collectionbackups") => QdrantCollectionBackup::crd(),
        Some("collectionrestores") => QdrantCollectionRestore::crd(),
        Some("collectiontemplates") => QdrantCollectionTemplate::crd(),
        Some(other) => anyhow::bail!("unknown CRD {other:?}: use clusters, collections, collectionbackups, collectionrestores or collectiontemplates"),
    };
    print!("{}", serde_yaml_ng::to_string(&crd)?);
    Ok(())
}
