"""Samples one collection's shard transfers through one Qdrant Pod every 20 ms, for the
scale-down benchmark: each line is the time and the transfers under way (shard, from, to).

Usage: transfers.py OUT.jsonl URL COLLECTION   (API key in QDRANT_KEY; stops on SIGTERM)
"""
import json
import os
import sys
import time
import urllib.request

OUT, URL, COLLECTION = sys.argv[1:4]
KEY = os.environ.get("QDRANT_KEY", "")
req = urllib.request.Request(f"{URL}/collections/{COLLECTION}/cluster", headers={"api-key": KEY} if KEY else {})
with open(OUT, "a", encoding="utf-8") as out:
    while True:
        t = time.time()
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                info = json.load(r)["result"]
            transfers = sorted([t_["shard_id"], t_["from"], t_["to"]] for t_ in info["shard_transfers"])
            out.write(json.dumps({"t": t, "transfers": transfers}) + "\n")
            out.flush()
        except Exception as e:  # noqa: BLE001 - a slow answer is a gap in the samples, not an end
            print(f"sample failed: {e}", file=sys.stderr)
        time.sleep(max(0.0, 0.02 - (time.time() - t)))
