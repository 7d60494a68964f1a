"""Judges restart_sampler.py's samples for a split: fails if any Pod ever answered as a member
of another consensus than the one ANCHOR_POD's peer belongs to (a peer that founded a second
cluster sees itself, and not the anchor, among its peers), or if no sample saw the anchor.

Usage: one_cluster_check.py SAMPLES.jsonl ANCHOR_POD SINCE_EPOCH
"""
import json
import sys

SAMPLES, ANCHOR, SINCE = sys.argv[1], sys.argv[2], float(sys.argv[3])
samples = [json.loads(line) for line in open(SAMPLES) if line.strip()]
samples = [s for s in samples if s["t"] >= SINCE]
anchor = next((s["consensus"][ANCHOR]["peer_id"] for s in samples if ANCHOR in s.get("consensus", {})), None)
if anchor is None:
    print(f"  {ANCHOR} never answered in {len(samples)} samples")
    sys.exit(1)
views = split = 0
for s in samples:
    for pod, v in s.get("consensus", {}).items():
        if v["leader"] is None:
            continue  # not joined (yet): a member of no consensus
        views += 1
        if anchor not in v["peers"]:
            split += 1
            if split == 1:
                print(f"  at +{s['t'] - SINCE:.1f}s {pod} (peer {v['peer_id']}) answered from another consensus: peers {v['peers']}, leader {v['leader']}")
print(f"  {len(samples)} samples, {views} consensus views: {split} outside the cluster of {ANCHOR} (peer {anchor})")
sys.exit(1 if split else 0)
