"""The scale-down benchmark's section of docs/benchmarks.md, from runs.jsonl (wall time per
run) and each run's transfer samples (transfers.py).

A transfer starts at the first sample that shows it and ends at the first sample that no longer
does. The operator's overhead per step is the time from one transfer's end to the next one's
start: it covers noticing the end, the next reconcile, reading Qdrant and planning, and the
request itself. Samples are 20 ms apart, so each figure is within about 40 ms.

Usage: scale_down_report.py DIR
"""
import json
import os
import statistics
import sys

DIR = sys.argv[1]
runs = [json.loads(line) for line in open(os.path.join(DIR, "runs.jsonl")) if line.strip()]


def spans(path):
    """[(start, end, (shard, from, to))] of every transfer seen, in order of start."""
    seen, done = {}, []
    for line in open(path):
        s = json.loads(line)
        now = {tuple(t) for t in s["transfers"]}
        for t in now:
            seen.setdefault(t, s["t"])
        for t in [t for t in seen if t not in now]:
            done.append((seen.pop(t), s["t"], t))
    return sorted(done)


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


walls = [r["wall"] for r in runs]
moves, across = [], []
for r in runs:
    s = spans(os.path.join(DIR, r["samples"]))
    for (_, end, a), (start, _, b) in zip(s, s[1:]):
        (moves if a[1] == b[1] else across).append(start - end)


def row(name, xs, target=True):
    if not xs:
        return f"| {name} | 0 | – | – | – | – |"
    within = f"{sum(x <= 1.0 for x in xs)}/{len(xs)}" if target else "–"
    return f"| {name} | {len(xs)} | {statistics.median(xs):.2f} s | {q(xs, 0.9):.2f} s | {max(xs):.2f} s | {within} |"


print("## Scale-down 3 → 1 on Qdrant Pods")
print()
print(f"{len(runs)} runs on the local plane with stand-in Qdrant Pods: a collection of 1,000 points in 6 shards")
print("(replication factor 1) on 3 peers, then `replicas: 1`. Wall time runs from the patch to the end of the")
print("operation (`status.operation` gone, 1 peer in consensus). The overhead per step runs from one shard")
print("transfer's end to the next one's start, as seen by sampling the collection's transfers every 20 ms")
print("(each figure within about 40 ms); across a peer removal it also covers removing the drained peer.")
print()
print("| what | n | median | p90 | max | ≤ 1 s |")
print("|---|---|---|---|---|---|")
print(row("wall time, 3 → 1", walls, target=False))
print(row("overhead between two moves", moves))
print(row("overhead across a peer removal", across))
