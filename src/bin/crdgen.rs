//! Prints a CRD as YAML: `crdgen` the QdrantCluster one, `crdgen collections` the
//! QdrantCollection one; `make crds` writes them to `crds/`.
use kube::CustomResourceExt;

fn main() -> anyhow::Result<()> {
    let crd = match std::env::args().nth(1).as_deref() {
        None | Some("clusters") => qdrant_operator::crd::QdrantCluster::crd(),
        Some("collections") => qdrant_operator::collections::crd::QdrantCollection::crd(),
        Some(other) => anyhow::bail!("unknown CRD {other:?}: use clusters or collections"),
    };
    print!("{}", serde_yaml_ng::to_string(&crd)?);
    Ok(())
}
