//! Prints the QdrantCluster CRD as YAML; `make crds` writes it to `crds/`.
use kube::CustomResourceExt;

fn main() -> anyhow::Result<()> {
    print!("{}", serde_yaml_ng::to_string(&qdrant_operator::crd::QdrantCluster::crd())?);
    Ok(())
}
