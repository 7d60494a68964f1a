"""The backup benchmark's section of docs/benchmarks.md, from the lines backup_timing.py wrote
(kind backup, baseline or restore, one each per round).

The overhead of a round is the operator's backup wall time minus the same round's backup by
hand; it may be negative, and is reported as it is.

Usage: backup_report.py RUNS.jsonl
       backup_report.py --placeholder   the section with "(not measured yet)" for every figure
"""
import json
import statistics
import sys

PENDING = "(not measured yet)"


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def row(name, xs):
    if xs is None:
        return f"| {name} | – | {PENDING} | – | – |"
    if not xs:
        return f"| {name} | 0 | – | – | – |"
    return f"| {name} | {len(xs)} | {statistics.median(xs):.2f} s | {q(xs, 0.9):.2f} s | {max(xs):.2f} s |"


def section(runs):
    """The markdown section; runs None gives the placeholder."""
    by = {k: {r["round"]: r for r in (runs or []) if r["kind"] == k} for k in ("backup", "baseline", "restore")}
    backups, hand, restores = by["backup"], by["baseline"], by["restore"]
    n = len(backups) if runs is not None else 5

    def figures(rs, field):
        return None if runs is None else [r[field] for r in rs.values() if r.get(field) is not None]

    overhead = None if runs is None else [backups[i]["wall"] - hand[i]["wall"] for i in sorted(backups) if i in hand]
    lines = [
        "## Backup and restore of 1,000 points",
        "",
        f"{n} rounds on the local plane with stand-in Qdrant Pods (local processes) and a local S3 server",
        "(versitygw on 127.0.0.1): one QdrantCluster of 3 peers, a collection of 1,000 points in 6 shards",
        "(replication factor 1, 4-dimensional vectors), so 6 snapshot files a backup. Each round takes a backup",
        "by hand, then one by the operator, then deletes the collection through Qdrant's REST API and restores",
        "it (`e2e/bench/backup.sh`). A wall time runs from just before the request that creates a new",
        "QdrantCollectionBackup (`backupNow: true`) or QdrantCollectionRestore to the first poll that shows it",
        "ended (`status.backups[0].state` Succeeded, `status.phase` Completed); polls go every 50 ms through",
        "`kubectl proxy`, so a wall time is up to about 50 ms late. `durationSeconds` and the seconds in the",
        "restore's message are the operator's own clock, to 0.1 s: for a backup, from reading the cluster and the",
        "Secret to writing the manifest; for a restore, from reading the manifest to the exact count after it.",
        "By hand is the same work from the bench host in Python, one request after the other:",
        "every Pod's `GET /collections/c/cluster`, then for each shard, through the Pod that holds it, a",
        "snapshot (`wait=true`), its download, its upload to S3 (SigV4, `e2e/s3/s3cli.py`), its deletion;",
        "then a small manifest. The overhead is the operator's wall time minus that, in the same round: the",
        "watch, the status writes before and after, the operator's Secret read, bucket check and two exact",
        "counts, and the poll. Every restore is followed by an exact count of 1,000 points.",
        "",
        "| what | n | median | p90 | max |",
        "|---|---|---|---|---|",
        row("backup wall time: create → Succeeded", figures(backups, "wall")),
        row("backup `durationSeconds` (status)", figures(backups, "status_seconds")),
        row("backup by hand (the same work, sequential)", figures(hand, "wall")),
        row("operator overhead: wall time − by hand", overhead),
        row("restore wall time: create → Completed", figures(restores, "wall")),
        row("restore, seconds in the status message", figures(restores, "message_seconds")),
        "",
    ]
    sizes = figures(backups, "bytes")
    pieces = sorted({r["pieces"] for r in backups.values()})
    if runs is None:
        lines.append(f"Size of a backup: {PENDING}.")
    elif sizes:
        spread = f"{min(sizes):,} bytes in every round" if min(sizes) == max(sizes) else f"{min(sizes):,} to {max(sizes):,} bytes"
        lines.append(f"Size of a backup: {'/'.join(map(str, pieces))} pieces, {spread}.")
    return "\n".join(lines)


def main(argv):
    if argv == ["--placeholder"]:
        print(section(None))
    elif len(argv) == 1:
        with open(argv[0], encoding="utf-8") as f:
            print(section([json.loads(line) for line in f if line.strip()]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
