"""Writes kwok's configuration: its own default stages (read from the kwok module source),
with the Pod stages told to leave operator Pods and Qdrant Pods alone, because
e2e/cluster/runner.py plays the kubelet for those: operator Pods' readiness must follow the
operator's own /readyz, and Qdrant Pods run as local Qdrant processes.

E2E_QDRANT_PODS=kwok leaves Qdrant Pods to kwok as before (Ready at once, nothing runs), for
runs with more Pods than this machine can run processes for. The runner reads the result:
it runs Qdrant Pods only when this configuration excludes them.
"""
import os
import pathlib
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qpods import QDRANT_POD_JQ  # noqa: E402

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
# kwok evaluates the key as a jq query; a selector's expressions must all hold, so "not a
# Qdrant Pod" is one expression whose value is the boolean of both labels together.
EXCLUDE_QDRANT = f"""    - key: '{QDRANT_POD_JQ}'
      operator: 'NotIn'
      values:
      - 'true'
"""

mode = os.environ.get("E2E_QDRANT_PODS", "runner")
if mode not in ("runner", "kwok"):
    sys.exit(f"E2E_QDRANT_PODS must be runner or kwok, not {mode!r}")
exclude = EXCLUDE + (EXCLUDE_QDRANT if mode == "runner" else "")

root = pathlib.Path(sys.argv[1])
docs = []
for rel in STAGES:
    text = (root / rel).read_text()
    if rel.startswith("pod/"):
        assert "    matchExpressions:\n" in text, rel
        text = text.replace("    matchExpressions:\n", exclude, 1)
    docs.append(text)
print("---\n".join(d if d.endswith("\n") else d + "\n" for d in docs), end="")
