"""Writes kwok's configuration: its own default stages (read from the kwok module source),
with the Pod stages told to leave operator Pods alone, because e2e/runner.py plays the kubelet
for those and their readiness must follow the operator's own /readyz."""
import pathlib
import sys

STAGES = [
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
]
EXCLUDE = """    matchExpressions:
    - key: '.metadata.labels.app'
      operator: 'NotIn'
      values:
      - 'qdrant-operator'
"""

root = pathlib.Path(sys.argv[1])
docs = []
for rel in STAGES:
    text = (root / rel).read_text()
    if rel.startswith("pod/"):
        assert "    matchExpressions:\n" in text, rel
        text = text.replace("    matchExpressions:\n", EXCLUDE, 1)
    docs.append(text)
print("---\n".join(d if d.endswith("\n") else d + "\n" for d in docs), end="")
