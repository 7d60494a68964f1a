#!/usr/bin/env python3
"""A stand-in for the Qdrant server, for end-to-end tests of the operator.

Real Qdrant cannot be installed on the test machines, so this program answers Qdrant's REST
API (paths, bodies and status codes as in Qdrant's OpenAPI documents) and behaves like a
Qdrant cluster where the operator can observe it: peers join through `--bootstrap`, keep their
peer id and data across restarts (re-synchronising replicas that may have missed writes),
spread collection shards over peers, move and replicate shards in transfers that take real
time, lose points when the last replica goes away, and elect a new metadata leader when the
leader is gone and the others are a majority.

It is started like the real binary (same flags, config file and `QDRANT__...` variables), so
a test can swap it for `QDRANT_BIN=/path/to/qdrant`. Python 3.11 standard library only.
The simplifications (consensus, storage, snapshots) are listed in README.md beside this file.
"""

import argparse
import copy
import datetime
import email.parser
import email.policy
import hashlib
import http.client
import http.server
import json
import os
import random
import re
import secrets
import shutil
import signal
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid
import zlib

VERSION = os.environ.get("QDRANT_STANDIN_VERSION", "1.16.3")
TITLE = "qdrant - vector search engine"
# Shard transfers last this many seconds plus half a millisecond per point, so that tests can
# watch a transfer in progress.
TRANSFER_SECONDS = float(os.environ.get("QDRANT_STANDIN_TRANSFER_SECONDS", "1.0"))
TRANSFER_SECONDS_PER_POINT = 0.0005
# A peer restarted from its storage re-synchronises its replicas that have an Active copy on
# another peer; they stay Partial this long (the time the copy takes). 0 turns that off.
RECOVERY_SECONDS = float(os.environ.get("QDRANT_STANDIN_RECOVERY_SECONDS", "2.0"))
RECOVERY_RETRY_SECONDS = 0.5
FAULTS_ENABLED = os.environ.get("QDRANT_STANDIN_FAULTS") == "1"
# A follower counts as gone (the leader stops waiting for its acknowledgement) when it has
# not polled for this long.
FOLLOWER_SILENCE = 3.0
LONG_POLL_SECONDS = 2.0
# A follower that has not heard from the leader for this long (plus a stagger by peer id and a
# random jitter) asks the other peers for their votes and becomes leader with a majority. 0 turns
# elections off: the leader is then only ever replaced by removing it (the old behaviour).
ELECTION_SECONDS = float(os.environ.get("QDRANT_STANDIN_ELECTION_SECONDS", "2.0"))
# p2p requests name the peer they are meant for, and answers the peer that answered, so that a
# new process at an old peer's URI is never taken for that peer (Qdrant's gRPC checks it too).
TO_PEER_HEADER = "x-standin-to-peer"
FROM_PEER_HEADER = "x-standin-peer-id"
REPLICA_STATES_WRITABLE = ("Active", "Partial")


def version_tuple(text):
    """(1, 16, 3) from "1.16.3" (a suffix such as "-dev" is ignored), compared numerically."""
    return tuple(int(x) for x in re.findall(r"\d+", text.split("-")[0])[:3])


# Qdrant 1.17.1 (PR #8301) lets a new peer bootstrap with the URI of a registered peer that
# holds no shards, replacing it; before (PR #7375, 1.16) any reuse by another peer id is refused.
REPLACES_EMPTY_PEER_ON_URI_REUSE = version_tuple(VERSION) >= (1, 17, 1)


class ApiError(Exception):
    """An error answered to the client with `status` and Qdrant's error envelope."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class PeerUnreachable(Exception):
    pass


# ----------------------------------------------------------------------------------------
# Configuration: a YAML subset, JSON, and QDRANT__SECTION__KEY environment variables.


def parse_scalar(text):
    s = text.strip()
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        if s[0] == '"':
            return json.loads(s)
        return s[1:-1].replace("''", "'")
    if s == "{}":
        return {}
    if s == "[]":
        return []
    if re.fullmatch(r"[-+]?\d+", s):
        return int(s)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", s):
        return float(s)
    return s


def strip_comment(line):
    """Removes a trailing `# comment` that is outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def parse_yaml_subset(text):
    """Parses block mappings, block lists of scalars and scalars: what Qdrant configs use.

    JSON (a YAML subset too) is accepted as is. Anchors, multi-line strings and flow
    collections other than `{}` and `[]` are not supported and raise ValueError.
    """
    if text.lstrip().startswith(("{", "[")):
        return json.loads(text)
    root = {}
    # Open containers as (indent of the line that opened them, container). A list written at
    # its key's own indentation (as serde_yaml writes them) is filed half a column left of it.
    stack = [(-1.0, root)]
    pending = None  # a `key:` whose value is on the following lines: (indent, parent, key)
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = strip_comment(raw).rstrip()
        body = line.strip()
        if not body or body == "---":
            continue
        indent = len(line) - len(line.lstrip(" "))
        if line[:indent + 1].strip(" ") == "\t":
            raise ValueError(f"line {lineno}: tabs are not allowed for indentation")
        is_item = body == "-" or body.startswith("- ")
        if pending is not None:
            p_indent, p_parent, p_key = pending
            pending = None
            if indent > p_indent or (is_item and indent == p_indent):
                container = [] if is_item else {}
                p_parent[p_key] = container
                stack.append((p_indent - 0.5 if indent == p_indent else float(p_indent), container))
        while indent <= stack[-1][0] or (isinstance(stack[-1][1], list) and not is_item and indent <= stack[-1][0] + 0.5):
            stack.pop()
        parent = stack[-1][1]
        if is_item:
            if not isinstance(parent, list):
                raise ValueError(f"line {lineno}: list item outside a list")
            parent.append(parse_scalar(body[1:]))
            continue
        m = re.match(r"""^("[^"]*"|'[^']*'|[^:]+?)\s*:(\s+(.*))?$""", body)
        if not m or not isinstance(parent, dict):
            raise ValueError(f"line {lineno}: cannot parse {body!r}")
        key = m.group(1).strip("'\"")
        if m.group(3) is None or m.group(3) == "":
            parent[key] = None
            pending = (indent, parent, key)
        else:
            parent[key] = parse_scalar(m.group(3))
    return root


def deep_merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def load_settings(config_path, environ):
    """Merges config files and environment like Qdrant: config/config.yaml, config/<RUN_MODE>.yaml,
    config/local.yaml (all relative to the working directory, optional), --config-path, then
    QDRANT__A__B variables, the last winning."""
    cfg = {}
    run_mode = environ.get("RUN_MODE", "development")
    files = [os.path.join("config", f"{name}.yaml") for name in ("config", run_mode, "local")]
    for path in files:
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                deep_merge(cfg, parse_yaml_subset(f.read()) or {})
    if config_path:
        with open(config_path, encoding="utf-8") as f:
            deep_merge(cfg, parse_yaml_subset(f.read()) or {})
    for name, value in environ.items():
        if not name.startswith("QDRANT__"):
            continue
        keys = [k.lower() for k in name[len("QDRANT__"):].split("__") if k]
        if not keys:
            continue
        node = cfg
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        # Kept as text, as Qdrant converts it only into the field's type: an API key "0123"
        # stays "0123"; ports and flags are converted where they are read.
        node[keys[-1]] = value
    return cfg


def setting(cfg, dotted, default=None):
    node = cfg
    for k in dotted.split("."):
        if not isinstance(node, dict) or node.get(k) is None:
            return default
        node = node[k]
    return node


def setting_bool(cfg, dotted, default):
    v = setting(cfg, dotted, default)
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


def setting_key(cfg, dotted):
    """An API key; Qdrant treats an empty key as unset."""
    v = setting(cfg, dotted)
    return str(v) if v not in (None, "") else None


# ----------------------------------------------------------------------------------------
# Small helpers.


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_json_atomic(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{threading.get_ident()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, separators=(",", ":"))
    os.replace(tmp, path)


def reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def loads_json(data):
    return json.loads(data, parse_constant=reject_constant)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def want_int(v, name, minimum=0):
    if not is_int(v) or v < minimum:
        raise ApiError(400, f"Format error in JSON body: `{name}` must be an integer >= {minimum}, got {json.dumps(v)}")
    return v


def want_object(v, name):
    if not isinstance(v, dict):
        raise ApiError(400, f"Format error in JSON body: `{name}` must be an object")
    return v


def query_bool(query, name, default):
    if name not in query:
        return default
    v = query[name].lower()
    if v in ("true", "false"):
        return v == "true"
    raise ApiError(400, f"Query deserialize error: `{name}` must be true or false")


def point_key(pid):
    """Normalises a point id (u64 or UUID string) into the key points are stored under."""
    if is_int(pid) and 0 <= pid < 2**64:
        return pid
    if isinstance(pid, str):
        try:
            return str(uuid.UUID(pid))
        except ValueError:
            pass
    raise ApiError(400, f"Wrong input: Unable to parse point id {json.dumps(pid)}: expected an unsigned integer or a UUID")


def sort_key(key):
    # Qdrant orders integer ids before UUIDs.
    return (0, key, "") if is_int(key) else (1, 0, key)


def shard_of(key, shard_number):
    return zlib.crc32(str(key).encode()) % shard_number


COLLECTION_NAME_RE = re.compile(r'^[^/\\:*?"<>|\x00-\x1f]{1,255}$')


def check_collection_name(name):
    if not COLLECTION_NAME_RE.match(name) or name in (".", ".."):
        raise ApiError(422, f"Validation error in path parameters: [collection_name: invalid collection name {name!r}]")


# ----------------------------------------------------------------------------------------
# Collection configuration: what CreateCollection/UpdateCollection give, what CollectionInfo
# echoes.

HNSW_DEFAULTS = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "max_indexing_threads": 0, "on_disk": False}
OPTIMIZER_DEFAULTS = {
    "deleted_threshold": 0.2,
    "vacuum_min_vector_number": 1000,
    "default_segment_number": 0,
    "max_segment_size": None,
    "memmap_threshold": None,
    "indexing_threshold": 10000,
    "flush_interval_sec": 5,
    "max_optimization_threads": None,
}
WAL_DEFAULTS = {"wal_capacity_mb": 32, "wal_segments_ahead": 0}
DISTANCES = ("Cosine", "Euclid", "Dot", "Manhattan")
VECTOR_SIZE_MAX = 65536
QUANTIZATION_KINDS = ("scalar", "product", "binary", "turbo")

# The fields of CreateCollection and of the *Diff objects, as Qdrant reads them: a value of the
# wrong JSON type fails deserialisation (400 "Format error in JSON body"), a value out of range
# fails validation (422 "Validation error in JSON body"). A rule is (kind, minimum, maximum);
# fields not listed are ignored, as serde ignores unknown fields.
UINT, NUMBER, BOOL, THREADS = "an unsigned integer", "a number", "a boolean", "an unsigned integer or \"auto\""
CREATE_RULES = {"shard_number": (UINT, 1), "replication_factor": (UINT, 1), "write_consistency_factor": (UINT, 1), "on_disk_payload": (BOOL,), "read_fan_out_factor": (UINT, 0)}
PARAMS_DIFF_RULES = {"replication_factor": (UINT, 1), "write_consistency_factor": (UINT, 1), "read_fan_out_factor": (UINT, 0), "read_fan_out_delay_ms": (UINT, 0), "on_disk_payload": (BOOL,)}
HNSW_RULES = {"m": (UINT, 0), "ef_construct": (UINT, 4), "full_scan_threshold": (UINT, 10), "max_indexing_threads": (UINT, 0), "on_disk": (BOOL,), "payload_m": (UINT, 0), "inline_storage": (BOOL,)}
OPTIMIZER_RULES = {
    "deleted_threshold": (NUMBER, 0, 1),
    "vacuum_min_vector_number": (UINT, 100),
    "default_segment_number": (UINT, 0),
    "max_segment_size": (UINT, 1),
    "memmap_threshold": (UINT, 0),
    "indexing_threshold": (UINT, 0),
    "flush_interval_sec": (UINT, 0),
    "max_optimization_threads": (THREADS,),
    "prevent_unoptimized": (BOOL,),
}
WAL_RULES = {"wal_capacity_mb": (UINT, 1), "wal_segments_ahead": (UINT, 0), "wal_retain_closed": (UINT, 0)}


def format_error(message):
    return ApiError(400, f"Format error in JSON body: {message}")


def validation_error(name, message):
    return ApiError(422, f"Validation error in JSON body: [{name}: {message}]")


def check_value(v, name, rule):
    """`v` if it fits the rule (kind, minimum, maximum); else Qdrant's 400 or 422."""
    kind, lo, hi = (rule + (None, None))[:3]
    if kind == BOOL:
        ok = isinstance(v, bool)
    elif kind == THREADS:
        ok = v == "auto" or (is_int(v) and v >= 0)
    elif kind == UINT:
        ok = is_int(v) and v >= 0
    else:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if not ok:
        raise format_error(f"invalid value {json.dumps(v)} for `{name}`, expected {kind}")
    if kind in (UINT, NUMBER) and ((lo is not None and v < lo) or (hi is not None and v > hi)):
        bound = f"must be from {lo} to {hi}" if hi is not None else f"must be {lo} or more"
        raise validation_error(name, f"value {json.dumps(v)} invalid, {bound}")
    return v


def checked_fields(obj, name, rules):
    """The non-null fields of an object that `rules` lists, each checked."""
    want_object(obj, name)
    return {k: check_value(v, f"{name}.{k}" if name else k, rules[k]) for k, v in obj.items() if k in rules and v is not None}


def merge_given(base, diff, name, rules=None):
    """Overlays the non-null fields of an optional *Diff object (those `rules` lists, checked)."""
    if diff is None:
        return base
    out = dict(base)
    out.update(checked_fields(diff, name, rules) if rules is not None else {k: v for k, v in want_object(diff, name).items() if v is not None})
    return out


def quantization(q, name, allow_disabled=False):
    """A QuantizationConfig (one of scalar, product, binary, turbo); with `allow_disabled` (a
    QuantizationConfigDiff) "Disabled" too, returned as None."""
    if allow_disabled and q == "Disabled":
        return None
    if not isinstance(q, dict) or len(q) != 1 or next(iter(q)) not in QUANTIZATION_KINDS:
        kinds = ", ".join(QUANTIZATION_KINDS + (("Disabled",) if allow_disabled else ()))
        raise format_error(f"`{name}` must be one of {kinds}")
    kind, cfg = next(iter(q.items()))
    want_object(cfg, f"{name}.{kind}")
    if kind == "scalar":
        if cfg.get("type") != "int8":
            raise format_error(f"`{name}.scalar.type` must be \"int8\"")
        if cfg.get("quantile") is not None:
            check_value(cfg["quantile"], f"{name}.scalar.quantile", (NUMBER, 0.5, 1))
    if kind == "product" and "compression" not in cfg:
        raise format_error(f"missing field `compression` in `{name}.product`")
    return q


def vector_params(p, name):
    """A checked VectorParams: size a non-zero u64 (0 does not deserialise) up to 65536."""
    want_object(p, name)
    for field in ("size", "distance"):
        if field not in p:
            raise format_error(f"missing field `{field}` in `{name}`")
    size = p["size"]
    if not is_int(size) or size < 1:
        raise format_error(f"invalid value {json.dumps(size)} for `{name}.size`, expected a nonzero u64")
    if size > VECTOR_SIZE_MAX:
        raise validation_error(f"{name}.size", f"value {size} invalid, must be from 1 to {VECTOR_SIZE_MAX}")
    if p["distance"] not in DISTANCES:
        raise format_error(f"unknown variant {json.dumps(p['distance'])} for `{name}.distance`, expected one of {', '.join(DISTANCES)}")
    out = {"size": size, "distance": p["distance"]}
    out.update({k: p[k] for k in ("datatype", "multivector_config") if p.get(k) is not None})
    return vector_params_diff(out, p, name, create=True)


def vector_params_diff(current, diff, name, create=False):
    """Applies a VectorParamsDiff: `on_disk`; `hnsw_config` (an empty object unsets it);
    `quantization_config` ("Disabled" unsets it)."""
    want_object(diff, name)
    out = dict(current)
    if diff.get("on_disk") is not None:
        out["on_disk"] = check_value(diff["on_disk"], f"{name}.on_disk", (BOOL,))
    hnsw = diff.get("hnsw_config")
    if hnsw == {} and not create:
        out.pop("hnsw_config", None)
    elif hnsw is not None:
        out["hnsw_config"] = merge_given(out.get("hnsw_config") or {}, hnsw, f"{name}.hnsw_config", HNSW_RULES)
    if diff.get("quantization_config") is not None:
        q = quantization(diff["quantization_config"], f"{name}.quantization_config", allow_disabled=not create)
        if q is None:
            out.pop("quantization_config", None)
        else:
            out["quantization_config"] = q
    return out


def is_single_vector_config(vectors):
    return isinstance(vectors, dict) and "size" in vectors and "distance" in vectors


def collection_config_from_create(body, peer_count):
    want_object(body, "body")
    vectors = body.get("vectors")
    if vectors is None:
        vectors = {}
    elif is_single_vector_config(vectors):
        vectors = vector_params(vectors, "vectors")
    else:
        vectors = {vname: vector_params(p, f"vectors.{vname}") for vname, p in want_object(vectors, "vectors").items()}
    given = checked_fields(body, "", CREATE_RULES)
    params = {
        "vectors": vectors,
        "shard_number": given.get("shard_number", peer_count),
        "replication_factor": given.get("replication_factor", 1),
        "write_consistency_factor": given.get("write_consistency_factor", 1),
        "on_disk_payload": given.get("on_disk_payload", True),
    }
    if "read_fan_out_factor" in given:
        params["read_fan_out_factor"] = given["read_fan_out_factor"]
    for field in ("sharding_method", "sparse_vectors"):
        if body.get(field) is not None:
            params[field] = body[field]
    q = body.get("quantization_config")
    config = {
        "params": params,
        "hnsw_config": merge_given(HNSW_DEFAULTS, body.get("hnsw_config"), "hnsw_config", HNSW_RULES),
        "optimizer_config": optimizer_output(merge_given(OPTIMIZER_DEFAULTS, body.get("optimizers_config"), "optimizers_config", OPTIMIZER_RULES)),
        "wal_config": merge_given(WAL_DEFAULTS, body.get("wal_config"), "wal_config", WAL_RULES),
        "quantization_config": None if q is None else quantization(q, "quantization_config"),
    }
    for field in ("strict_mode_config", "metadata"):
        if body.get(field) is not None:
            config[field] = want_object(body[field], field)
    return config


def optimizer_output(opt):
    # The input accepts "auto" for max_optimization_threads; the output is a number or null.
    if not is_int(opt.get("max_optimization_threads")):
        opt["max_optimization_threads"] = None
    return opt


def apply_collection_update(config, body):
    """Applies an UpdateCollection body to a stored collection config (returns a new one)."""
    want_object(body, "body")
    config = copy.deepcopy(config)
    params = config["params"]
    if body.get("params") is not None:
        params.update(checked_fields(body["params"], "params", PARAMS_DIFF_RULES))
    if body.get("hnsw_config") is not None:
        config["hnsw_config"] = merge_given(config["hnsw_config"], body["hnsw_config"], "hnsw_config", HNSW_RULES)
    if body.get("optimizers_config") is not None:
        config["optimizer_config"] = optimizer_output(merge_given(config["optimizer_config"], body["optimizers_config"], "optimizers_config", OPTIMIZER_RULES))
    if body.get("quantization_config") is not None:
        config["quantization_config"] = quantization(body["quantization_config"], "quantization_config", allow_disabled=True)
    for vname, diff in want_object(body.get("vectors") or {}, "vectors").items():
        vectors = params.get("vectors") or {}
        if is_single_vector_config(vectors) and vname == "":
            params["vectors"] = vector_params_diff(vectors, diff, "vectors")
        elif vname in vectors and not is_single_vector_config(vectors):
            vectors[vname] = vector_params_diff(vectors[vname], diff, f"vectors.{vname}")
        else:
            raise ApiError(400, f"Wrong input: Not existing vector name error: {vname}")
    if body.get("sparse_vectors") is not None:
        params["sparse_vectors"] = deep_merge(params.get("sparse_vectors") or {}, want_object(body["sparse_vectors"], "sparse_vectors"))
    if body.get("strict_mode_config") is not None:
        config["strict_mode_config"] = merge_given(config.get("strict_mode_config") or {}, body["strict_mode_config"], "strict_mode_config")
    if body.get("metadata") is not None:
        config["metadata"] = deep_merge(config.get("metadata") or {}, want_object(body["metadata"], "metadata"))
    return config


def check_dense(v, params, name):
    size = params["size"]
    if params.get("multivector_config") and isinstance(v, list) and v and isinstance(v[0], list):
        rows = v
    else:
        rows = [v]
    for row in rows:
        if not isinstance(row, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in row):
            raise ApiError(400, f"Wrong input: vector `{name}` must be a list of numbers")
        if len(row) != size:
            raise ApiError(400, f"Wrong input: Vector dimension error: expected dim: {size}, got {len(row)}")


def check_point_vector(vectors_cfg, sparse_cfg, vector, pid):
    if isinstance(vector, list):
        if not is_single_vector_config(vectors_cfg):
            raise ApiError(400, f"Wrong input: Not existing vector name error: point {pid} has an unnamed vector, the collection has named vectors only")
        check_dense(vector, vectors_cfg, "")
        return
    if not isinstance(vector, dict):
        raise ApiError(400, f"Wrong input: point {pid} has an invalid vector")
    named = {} if is_single_vector_config(vectors_cfg) else (vectors_cfg or {})
    for vname, v in vector.items():
        if vname in named:
            check_dense(v, named[vname], vname)
        elif vname == "" and is_single_vector_config(vectors_cfg):
            check_dense(v, vectors_cfg, vname)
        elif vname in (sparse_cfg or {}) and isinstance(v, dict):
            continue
        else:
            raise ApiError(400, f"Wrong input: Not existing vector name error: {vname}")


def points_from_body(body):
    """Returns [(key, record)] from a PointsList or PointsBatch body."""
    want_object(body, "body")
    if "points" in body:
        pts = body["points"]
        if not isinstance(pts, list):
            raise ApiError(400, "Format error in JSON body: `points` must be a list")
        out = []
        for p in pts:
            want_object(p, "points[]")
            if "id" not in p or "vector" not in p:
                raise ApiError(400, "Format error in JSON body: missing field `id` or `vector`")
            out.append((p["id"], p["vector"], p.get("payload")))
        return out
    if "batch" in body:
        b = want_object(body["batch"], "batch")
        ids, vectors, payloads = b.get("ids"), b.get("vectors"), b.get("payloads")
        if not isinstance(ids, list):
            raise ApiError(400, "Format error in JSON body: `batch.ids` must be a list")
        if isinstance(vectors, dict):
            per_point = [{k: vs[i] for k, vs in vectors.items()} for i in range(len(ids))] if all(isinstance(vs, list) and len(vs) == len(ids) for vs in vectors.values()) else None
        elif isinstance(vectors, list) and len(vectors) == len(ids):
            per_point = vectors
        else:
            per_point = None
        if per_point is None:
            raise ApiError(400, "Wrong input: `batch.vectors` must hold one vector per id")
        if payloads is not None and (not isinstance(payloads, list) or len(payloads) != len(ids)):
            raise ApiError(400, "Wrong input: `batch.payloads` must hold one payload per id")
        return [(ids[i], per_point[i], payloads[i] if payloads else None) for i in range(len(ids))]
    raise ApiError(400, "Format error in JSON body: expected `points` or `batch`")


# ----------------------------------------------------------------------------------------
# Filters: the conditions tests use (match, range, has_id, is_empty, is_null, nesting).


def payload_values(payload, key):
    values = [payload]
    for part in key.split("."):
        nxt = []
        for v in values:
            if isinstance(v, dict) and part in v:
                nxt.append(v[part])
        values = nxt
    flat = []
    for v in values:
        flat.extend(v if isinstance(v, list) else [v])
    return flat


def filter_matches(flt, key, payload):
    if flt is None:
        return True
    want_object(flt, "filter")
    unknown = set(flt) - {"must", "should", "must_not", "min_should"}
    if unknown:
        raise ApiError(400, f"Format error in JSON body: unknown filter field(s) {sorted(unknown)}")

    def conds(v):
        return [] if v is None else (v if isinstance(v, list) else [v])

    payload = payload or {}
    if not all(condition_matches(c, key, payload) for c in conds(flt.get("must"))):
        return False
    should = conds(flt.get("should"))
    if should and not any(condition_matches(c, key, payload) for c in should):
        return False
    return not any(condition_matches(c, key, payload) for c in conds(flt.get("must_not")))


def condition_matches(c, key, payload):
    want_object(c, "condition")
    if "has_id" in c:
        return key in {point_key(i) for i in c["has_id"]}
    if any(k in c for k in ("must", "should", "must_not")):
        return filter_matches(c, key, payload)
    if "is_empty" in c:
        return not [v for v in payload_values(payload, c["is_empty"]["key"]) if v is not None]
    if "is_null" in c:
        values = payload_values(payload, c["is_null"]["key"])
        return bool(values) and all(v is None for v in values)
    if "key" in c:
        values = payload_values(payload, c["key"])
        if "match" in c:
            m = want_object(c["match"], "match")
            if "value" in m:
                return m["value"] in values
            if "any" in m:
                return any(v in m["any"] for v in values)
            if "except" in m:
                return not any(v in m["except"] for v in values)
        if "range" in c:
            r = want_object(c["range"], "range")
            nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            checks = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
            return any(all(checks[op](v, bound) for op, bound in r.items() if bound is not None and op in checks) for v in nums)
    raise ApiError(400, f"Wrong input: the stand-in does not support the filter condition {json.dumps(c)[:200]}")


# ----------------------------------------------------------------------------------------
# Peer-to-peer client. Our own HTTP+JSON protocol on the p2p port (real Qdrant speaks gRPC there).


# TLS client context for https:// peers (cluster.p2p.enable_tls), trusting tls.ca_cert as
# Qdrant does; set by main().
P2P_CLIENT_TLS = None


def p2p_call(uri, method, path, body=None, api_key=None, timeout=5.0, peer_id=None):
    """Calls another peer's internal API. Returns the decoded JSON answer (an object).

    `peer_id`: the peer expected at `uri`; the request names it and an answer from any other
    process there counts as unreachable. Raises ApiError only for a well-formed error answer of
    the expected peer (a consensus verdict such as 400 or 409), and PeerUnreachable for
    everything else: no connection, no or a malformed answer, another peer answering, a peer
    that has not joined yet or is not the one asked for (503, 421), an internal error."""
    u = urllib.parse.urlsplit(uri)
    try:
        if u.scheme == "https":
            conn = http.client.HTTPSConnection(u.hostname, u.port or 6335, timeout=timeout, context=P2P_CLIENT_TLS)
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port or 6335, timeout=timeout)
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        if api_key:
            headers["api-key"] = api_key
        if peer_id is not None:
            headers[TO_PEER_HEADER] = str(peer_id)
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        answered_by = resp.getheader(FROM_PEER_HEADER)
        conn.close()
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise PeerUnreachable(f"{uri}: {e}") from e
    try:
        answer = loads_json(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as e:
        raise PeerUnreachable(f"{uri}: undecodable answer ({e})") from e
    if not isinstance(answer, dict) or answered_by is None:
        raise PeerUnreachable(f"{uri}: not a peer's answer (status {resp.status})")
    if peer_id is not None and answered_by != str(peer_id):
        raise PeerUnreachable(f"{uri}: peer {answered_by} answers there, not peer {peer_id}")
    if resp.status == 200:
        return answer
    error = answer.get("error")
    if resp.status in (421, 503) or resp.status < 400 or not isinstance(error, str) or answer.get("internal"):
        raise PeerUnreachable(f"{uri}: answered {resp.status}: {error if isinstance(error, str) else 'no error text'}")
    raise ApiError(resp.status, error)


def parallel(calls):
    """Runs the callables (p2p calls, each bounded by its own timeout) at once and waits for
    all of them, so that slow ones never pile up; returns [(result, exception)] in their order,
    the exception an ApiError or PeerUnreachable the call raised."""
    results = [(None, PeerUnreachable("no answer"))] * len(calls)

    def run(i, fn):
        try:
            results[i] = (fn(), None)
        except (ApiError, PeerUnreachable) as e:
            results[i] = (None, e)

    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def check_meta(meta):
    """Raises PeerUnreachable unless `meta` looks like a metadata document (from another peer)."""
    fields = (("cluster_id", str), ("term", int), ("commit", int), ("leader", int), ("peers", dict), ("collections", dict), ("transfers", list))
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), t) and not isinstance(meta.get(k), bool) for k, t in fields):
        raise PeerUnreachable("malformed metadata in a peer's answer")
    return meta


# ----------------------------------------------------------------------------------------
# The node: cluster metadata (replicated from the leader), local shards, transfers.


class Node:
    """One peer.

    Cluster metadata (`self.meta`) is a JSON document changed only by the leader, which applies
    operations one at a time, bumps `commit` and hands the new document to followers that
    long-poll it. Points live only on the peers that hold a replica of their shard.
    """

    def __init__(self, cfg, args):
        self.cfg = cfg
        self.cluster_enabled = setting_bool(cfg, "cluster.enabled", False)
        self.host = str(setting(cfg, "service.host", "0.0.0.0"))
        self.http_port = int(setting(cfg, "service.http_port", 6333))
        self.p2p_port = int(setting(cfg, "cluster.p2p.port", 6335))
        self.storage = os.path.abspath(str(setting(cfg, "storage.storage_path", "./storage")))
        self.snapshots = os.path.abspath(str(setting(cfg, "storage.snapshots_path", "./snapshots")))
        self.api_key = setting_key(cfg, "service.api_key")
        self.read_only_key = setting_key(cfg, "service.read_only_api_key")
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.shards = {}  # (collection, shard_id) -> {point key: [id, vector, payload]}
        self.transfers_running = set()
        self.acks = {}  # follower peer id -> (acknowledged commit, monotonic time)
        self.send_failures = {}  # peer uri -> MessageSendErrors
        self.pending_proposals = 0
        self.last_sync = now_rfc3339()
        self.ready = False
        self.removed = False
        # Set when a restart from storage still has to mark replicas for recovery through
        # consensus (until then /readyz answers 503); `recovering` maps each replica being
        # recovered, (collection, shard id), to the point keys written to it since.
        self.recovery_pending = False
        self.recovering = {}
        self.stopping = threading.Event()
        self.exit_status = 0
        self.on_abort = lambda: None  # main() makes this stop the servers
        self.operation_id = 0
        # Election state (see README, "Leader down"). `vote`: the latest term this peer voted
        # in and for whom (persisted, so a restart cannot vote twice in a term).
        self.vote = {"term": 0, "for": None}
        self.vote_time = float("-inf")  # monotonic time of the latest vote cast
        self.max_term_seen = 0  # the highest vote term other peers reported
        self.campaign_term = None  # set while this peer asks for votes
        # A follower's last sign of life from the leader: monotonic time, and whether the
        # latest exchange with it worked (a failure after a success restarts the clock).
        self.leader_contact = time.monotonic()
        self.contact_ok = True
        self.election_jitter = self.new_jitter()
        # A peer restarted as the leader of its saved metadata first asks the other peers
        # whether a newer term began meanwhile (confirm_leadership); until then it applies no
        # operation. A peer that founds the cluster, wins an election or is handed leadership
        # is confirmed at once.
        self.leader_confirmed = True
        self.confirm_since = None
        self.polling = {}  # follower peer id -> long-polls of it in progress
        self.last_announce = 0.0
        self.announcing = False
        self.recovery_thread = False
        os.makedirs(self.storage, exist_ok=True)
        state_file = self.state_path()
        if os.path.exists(state_file):
            # Like Qdrant: with existing consensus state, --bootstrap and --uri are ignored.
            with open(state_file, encoding="utf-8") as f:
                saved = json.load(f)
            self.peer_id = saved["this_peer_id"]
            self.uri = saved["this_peer_uri"]
            self.meta = saved["meta"]
            self.removed = saved.get("removed", False)
            self.vote = saved.get("vote") or self.vote
            self.bootstrap = None
            self.load_local_shards()
            self.recovery_pending = self.cluster_enabled and RECOVERY_SECONDS > 0 and not self.removed
            if self.cluster_enabled and self.is_leader() and len(self.meta["peers"]) > 1 and ELECTION_SECONDS > 0:
                self.leader_confirmed = False
            # A follower is ready once synced with the leader (consensus_loop); a leader once
            # it knows it still leads and has marked its replicas for recovery.
            self.ready = not self.cluster_enabled or (self.is_leader() and self.leader_confirmed and not self.recovery_pending)
        else:
            # Random 63-bit ids above 2^53, so clients that parse JSON numbers as doubles break
            # visibly instead of once in a thousand runs.
            self.peer_id = 2**53 + 1 + secrets.randbelow(2**63 - 2**53 - 1)
            self.uri = args.uri or f"http://{self.host if self.host != '0.0.0.0' else '127.0.0.1'}:{self.p2p_port}"
            self.bootstrap = args.bootstrap if self.cluster_enabled else None
            self.meta = None
            if not self.bootstrap:
                self.meta = {
                    "cluster_id": uuid.uuid4().hex,
                    "term": 1,
                    "commit": 1,
                    "leader": self.peer_id,
                    "peers": {str(self.peer_id): self.uri},
                    "collections": {},
                    "transfers": [],
                }
                self.save_state()
                self.ready = True

    # -- persistence ------------------------------------------------------------------

    def state_path(self):
        return os.path.join(self.storage, "raft_state.json")

    def collection_dir(self, name):
        return os.path.join(self.storage, "collections", name)

    def shard_path(self, name, sid):
        return os.path.join(self.collection_dir(name), f"shard-{sid}.json")

    def save_state(self):
        write_json_atomic(self.state_path(), {"this_peer_id": self.peer_id, "this_peer_uri": self.uri, "removed": self.removed, "vote": self.vote, "meta": self.meta})

    def load_local_shards(self):
        for name, coll in self.meta["collections"].items():
            for sid, replicas in coll["shards"].items():
                if str(self.peer_id) in replicas:
                    self.shards[(name, int(sid))] = self.read_shard_file(name, int(sid))

    def read_shard_file(self, name, sid):
        path = self.shard_path(name, sid)
        if not os.path.exists(path):
            return {}
        with open(path, encoding="utf-8") as f:
            return {point_key(r[0]): r for r in json.load(f)}

    def write_shard_file(self, name, sid):
        write_json_atomic(self.shard_path(name, sid), list(self.shards[(name, sid)].values()))

    # -- metadata views (call with the lock held) ------------------------------------------

    def is_leader(self):
        return self.meta is not None and self.meta["leader"] == self.peer_id

    def peer_uri(self, peer_id):
        return self.meta["peers"].get(str(peer_id))

    def collection(self, name):
        check_collection_name(name)
        coll = self.meta["collections"].get(name)
        if coll is None:
            raise ApiError(404, f"Not found: Collection `{name}` doesn't exist!")
        return coll

    def holds(self, coll, sid):
        return str(self.peer_id) in coll["shards"][str(sid)]

    # -- state changes ------------------------------------------------------------------

    def after_state_change(self):
        """Brings local data in line with the metadata; runs on every peer after each change."""
        me = str(self.peer_id)
        if me not in self.meta["peers"]:
            self.removed = True
        held = set()
        for name, coll in self.meta["collections"].items():
            for sid, replicas in coll["shards"].items():
                if me in replicas and not self.removed:
                    held.add((name, int(sid)))
        for key in list(self.shards):
            if key not in held:
                del self.shards[key]
                try:
                    os.remove(self.shard_path(*key))
                except FileNotFoundError:
                    pass
        coll_root = os.path.join(self.storage, "collections")
        if os.path.isdir(coll_root):
            for name in os.listdir(coll_root):
                if name not in self.meta["collections"]:
                    shutil.rmtree(os.path.join(coll_root, name), ignore_errors=True)
        for key in held:
            self.shards.setdefault(key, {})
        for t in self.meta["transfers"]:
            tkey = transfer_key(t)
            if t["from"] == self.peer_id and tkey not in self.transfers_running and not self.removed:
                self.transfers_running.add(tkey)
                threading.Thread(target=self.run_transfer, args=(dict(t),), daemon=True).start()
        self.save_state()
        self.changed.notify_all()

    def adopt(self, meta):
        """Takes a newer metadata document (higher (term, commit)) from the leader, or from any
        peer: a newer term means another leader was elected, and a leader that learns of one
        steps down. Returns whether it was newer; raises PeerUnreachable for a malformed one."""
        check_meta(meta)
        with self.lock:
            old_leader = None
            if self.meta is not None:
                if meta["cluster_id"] != self.meta["cluster_id"]:
                    raise PeerUnreachable("peer belongs to another cluster")
                if (meta["term"], meta["commit"]) <= (self.meta["term"], self.meta["commit"]):
                    return False
                old_leader = self.meta["leader"]
            was_leader = self.is_leader()
            self.meta = meta
            if old_leader is not None and meta["leader"] != old_leader:
                # A new leader gets a full election timeout before anyone doubts it.
                self.leader_contact, self.contact_ok = time.monotonic(), True
                if meta["leader"] == self.peer_id:
                    self.leader_confirmed = True  # handed over by the leader's removal
                elif was_leader:
                    if self.leader_confirmed:
                        log(f"stepping down: peer {meta['leader']} leads term {meta['term']}")
                    else:  # see confirm_leadership
                        log(f"restarted as a follower: peer {meta['leader']} leads term {meta['term']}")
                    self.acks = {}
                    if self.recovering:
                        # Our own start_replica_recovery may be lost with our old term: propose it
                        # again to the new leader.
                        self.recovery_pending = True
            self.after_state_change()
            return True

    def adopt_quietly(self, meta):
        """adopt() for metadata that came along in another peer's answer; ignores bad ones."""
        try:
            return self.adopt(meta)
        except PeerUnreachable:
            return False

    def propose(self, op, proposer=None, hops=0):
        """Runs a metadata operation through the leader; returns once this peer has applied it.
        `proposer`: the follower that forwarded it, which applies the answer itself; `hops`:
        how often it was forwarded already (peers with different views of the leader)."""
        deadline = time.monotonic() + 5
        with self.lock:
            # A restarted leader first learns whether it still leads (confirm_leadership).
            while self.is_leader() and not self.leader_confirmed and not self.stopping.is_set() and time.monotonic() < deadline:
                self.changed.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            leader_here = self.is_leader()
            if leader_here and not self.leader_confirmed:
                raise ApiError(503, "Service internal error: consensus is not ready yet: this peer is checking whether it still leads")
            leader_id = self.meta["leader"]
            leader_uri = None if leader_here else self.peer_uri(leader_id)
        if leader_here:
            commit = self.apply_op(op)
            self.wait_for_followers(commit, proposer)
            return
        if hops >= 3:
            raise ApiError(503, "Service internal error: the operation was forwarded too often, peers disagree on the leader")
        with self.lock:
            self.pending_proposals += 1
        try:
            answer = p2p_call(leader_uri, "POST", f"/p2p/propose?peer_id={self.peer_id}&hops={hops + 1}", op, self.api_key, timeout=15, peer_id=leader_id)
        except PeerUnreachable as e:
            self.note_send_failure(leader_uri, str(e))
            raise ApiError(500, f"Service internal error: consensus leader is unreachable: {e}") from e
        finally:
            with self.lock:
                self.pending_proposals -= 1
        self.adopt_quietly(answer.get("meta"))  # not newer if a long-poll brought it first

    def wait_for_followers(self, commit, proposer=None, timeout=1.0):
        """Lets the leader answer only once every live follower has applied `commit`, so a
        client may read its own write from any peer (the short wait is bounded). The proposer
        is not waited for: it may be the very thread that would poll (begin_recovery)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.is_leader():  # a leader that handed over has nobody to wait for
                now = time.monotonic()
                lagging = [
                    p
                    for p in self.meta["peers"]
                    if int(p) not in (self.peer_id, proposer) and self.acks.get(int(p), (0, 0))[0] < commit and now - self.acks.get(int(p), (0, 0))[1] < FOLLOWER_SILENCE
                ]
                if not lagging or now >= deadline:
                    return
                self.changed.wait(deadline - now)

    def apply_op(self, op):
        """Leader only: validates and applies one operation, returns the new commit."""
        with self.lock:
            if not self.is_leader() or not self.leader_confirmed:
                raise ApiError(503, "Service internal error: this peer is no longer the consensus leader")
            kind = op.get("op")
            handler = getattr(self, f"op_{kind}", None) if isinstance(kind, str) else None
            if handler is None:
                raise ApiError(400, f"unknown operation {kind!r}")
            meta = copy.deepcopy(self.meta)
            handler(meta, op)
            meta["commit"] += 1
            self.meta = meta
            self.after_state_change()
            return meta["commit"]

    # -- operations (leader side; `m` is a copy of the metadata to change) -------------------

    def op_add_peer(self, m, op):
        """Adds a joining peer. Its URI may be registered already only by the same peer id (a
        rejoin); another id's URI is refused with 409, which makes the joining process exit,
        except that from 1.17.1 an old peer holding no shards is replaced (see README)."""
        pid = want_int(op.get("peer_id"), "peer_id")
        uri = op["uri"]
        old = next((int(p) for p, u in m["peers"].items() if int(p) != pid and same_uri(u, uri)), None)
        if old is not None:
            if not REPLACES_EMPTY_PEER_ON_URI_REUSE:
                raise ApiError(409, f"peer URI {uri} already used by peer {old}, remove it first or use a different URI")
            held = shards_on_peer(m, old)
            if held:
                raise ApiError(409, f"peer URI {uri} already used by peer {old}, which still holds shards ({describe_shards(held)}); not replacing it, bootstrapping aborted")
            self.op_remove_peer(m, {"peer_id": old})
        m["peers"][str(pid)] = uri

    def op_remove_peer(self, m, op):
        pid = op["peer_id"]
        if str(pid) not in m["peers"]:
            raise ApiError(404, f"Not found: Peer {pid} does not exist")
        held = shards_on_peer(m, pid)
        if held and not op.get("force"):
            raise ApiError(400, f"Bad request: Cannot remove peer {pid} as there are shards on it: {describe_shards(held)}")
        if len(m["peers"]) == 1:
            raise ApiError(400, f"Bad request: Cannot remove peer {pid}: it is the last peer of the cluster")
        for coll in m["collections"].values():
            for replicas in coll["shards"].values():
                replicas.pop(str(pid), None)
        m["transfers"] = [t for t in m["transfers"] if pid not in (t["from"], t["to"])]
        del m["peers"][str(pid)]
        if m["leader"] == pid:
            # The leader leaves: the lowest remaining peer takes over in a new term.
            m["leader"] = min(int(p) for p in m["peers"])
            m["term"] += 1

    def op_create_collection(self, m, op):
        name = op["name"]
        check_collection_name(name)
        if name in m["collections"]:
            raise ApiError(400, f"Wrong input: Collection `{name}` already exists!")
        config = collection_config_from_create(op["body"], len(m["peers"]))
        params = config["params"]
        placement = op.get("placement") or {}
        load = {p: 0 for p in m["peers"]}
        for coll in m["collections"].values():
            for replicas in coll["shards"].values():
                for p in replicas:
                    if p in load:
                        load[p] += 1
        order = sorted(load, key=int)
        shards = {}
        for sid in range(params["shard_number"]):
            chosen = list(placement.get(str(sid), []))
            for p in chosen:
                load[p] = load.get(p, 0) + 1
            # Least-loaded peers first; the shard id rotates ties so shards spread evenly.
            candidates = sorted(order, key=lambda p: (load[p], (order.index(p) - sid) % len(order)))
            for p in candidates:
                if len(chosen) >= min(params["replication_factor"], len(order)):
                    break
                if p not in chosen:
                    chosen.append(p)
                    load[p] += 1
            shards[str(sid)] = {p: "Active" for p in chosen}
        m["collections"][name] = {"config": config, "shards": shards}

    def op_update_collection(self, m, op):
        coll = m["collections"].get(op["name"])
        if coll is None:
            raise ApiError(404, f"Not found: Collection `{op['name']}` doesn't exist!")
        coll["config"] = apply_collection_update(coll["config"], op["body"])

    def op_delete_collection(self, m, op):
        if m["collections"].pop(op["name"], None) is not None:
            m["transfers"] = [t for t in m["transfers"] if t["collection"] != op["name"]]

    def shard_replicas(self, m, name, sid):
        coll = m["collections"].get(name)
        if coll is None:
            raise ApiError(404, f"Not found: Collection `{name}` doesn't exist!")
        replicas = coll["shards"].get(str(sid))
        if replicas is None:
            raise ApiError(400, f"Bad request: Shard {sid} does not exist in collection `{name}`")
        return replicas

    def op_start_transfer(self, m, op):
        name, sid, src, dst = op["collection"], op["shard_id"], op["from"], op["to"]
        replicas = self.shard_replicas(m, name, sid)
        for pid in (src, dst):
            if str(pid) not in m["peers"]:
                raise ApiError(400, f"Bad request: Peer {pid} does not exist")
        if src == dst:
            raise ApiError(400, "Bad request: Source and target peers of a transfer must differ")
        if replicas.get(str(src)) != "Active":
            raise ApiError(400, f"Bad request: Shard {sid} of collection `{name}` has no active replica on peer {src}")
        if str(dst) in replicas:
            raise ApiError(400, f"Bad request: Shard {sid} of collection `{name}` is already present on peer {dst}")
        for t in m["transfers"]:
            if t["collection"] == name and t["shard_id"] == sid and ({t["from"], t["to"]} & {src, dst}):
                raise ApiError(400, f"Bad request: Shard {sid} is already involved in transfer {t['from']} -> {t['to']}")
        replicas[str(dst)] = "Partial"
        m["transfers"].append({"collection": name, "shard_id": sid, "from": src, "to": dst, "sync": op["sync"], "method": op.get("method") or "stream_records"})

    def find_transfer(self, m, op):
        for t in m["transfers"]:
            if transfer_key(t) == transfer_key(op):
                return t
        raise ApiError(404, f"Not found: Shard transfer {op['from']} -> {op['to']} of shard {op['shard_id']} of collection `{op['collection']}` does not exist")

    def op_finish_transfer(self, m, op):
        t = self.find_transfer(m, op)
        m["transfers"].remove(t)
        replicas = self.shard_replicas(m, t["collection"], t["shard_id"])
        replicas[str(t["to"])] = "Active"
        if not t["sync"]:
            replicas.pop(str(t["from"]), None)

    def op_abort_transfer(self, m, op):
        t = self.find_transfer(m, op)
        m["transfers"].remove(t)
        replicas = self.shard_replicas(m, t["collection"], t["shard_id"])
        if replicas.get(str(t["to"])) == "Partial":
            del replicas[str(t["to"])]

    def op_drop_replica(self, m, op):
        name, sid, pid = op["collection"], op["shard_id"], op["peer_id"]
        replicas = self.shard_replicas(m, name, sid)
        if str(pid) not in replicas:
            raise ApiError(400, f"Bad request: Shard {sid} of collection `{name}` has no replica on peer {pid}")
        if not [p for p, s in replicas.items() if s == "Active" and p != str(pid)]:
            raise ApiError(400, f"Bad request: Cannot drop the last active replica of shard {sid} of collection `{name}` (on peer {pid})")
        t = transfer_of(m, name, sid, pid)
        if t is not None:
            raise ApiError(400, f"Bad request: Shard {sid} on peer {pid} is involved in transfer {t['from']} -> {t['to']}; abort it first")
        del replicas[str(pid)]

    def op_start_replica_recovery(self, m, op):
        """A peer restarted from its storage: its replicas that may have missed writes while it
        was away (those with an Active copy elsewhere, see recovery_candidates) become Partial:
        writes reach them, reads skip them, until finish_replica_recovery."""
        pid = want_int(op.get("peer_id"), "peer_id")
        if str(pid) not in m["peers"]:
            raise ApiError(404, f"Not found: Peer {pid} does not exist")
        for name, sid in recovery_candidates(m, pid):
            m["collections"][name]["shards"][str(sid)][str(pid)] = "Partial"

    def op_finish_replica_recovery(self, m, op):
        """Marks a recovered replica Active again. A replica dropped, removed with its peer or
        taken over by a transfer meanwhile is left as it is: nothing is resurrected."""
        name, sid, pid = op["collection"], op["shard_id"], op["peer_id"]
        if replica_recovering(m, pid, name, sid):
            m["collections"][name]["shards"][str(sid)][str(pid)] = "Active"

    # -- transfers (run on the source peer) ------------------------------------------------

    def transfer_active(self, t):
        with self.lock:
            return any(transfer_key(x) == transfer_key(t) for x in self.meta["transfers"]) and not self.stopping.is_set()

    def run_transfer(self, t):
        key = transfer_key(t)
        try:
            with self.lock:
                n = len(self.shards.get((t["collection"], t["shard_id"]), {}))
            # Time counts only while the transfers are not stalled (fault hook stall_transfers).
            remaining = TRANSFER_SECONDS + n * TRANSFER_SECONDS_PER_POINT
            last = time.monotonic()
            while remaining > 0:
                if not self.transfer_active(t):
                    return
                time.sleep(0.05)
                now = time.monotonic()
                if not Faults.transfers_stalled():
                    remaining -= now - last
                last = now
            if not self.transfer_active(t):
                return
            with self.lock:
                records = list(self.shards.get((t["collection"], t["shard_id"]), {}).values())
                target = self.peer_uri(t["to"])
            try:
                p2p_call(target, "POST", "/p2p/shard/receive", {"collection": t["collection"], "shard_id": t["shard_id"], "points": records, "mode": "fill"}, self.api_key, timeout=30, peer_id=t["to"])
                self.propose({"op": "finish_transfer", **key_dict(t)})
            except (ApiError, PeerUnreachable) as e:
                log(f"transfer {key} failed: {e}")
                if self.transfer_active(t):
                    try:
                        self.propose({"op": "abort_transfer", **key_dict(t)})
                    except ApiError as e2:
                        log(f"abort of transfer {key} failed: {e2}")
        finally:
            with self.lock:
                self.transfers_running.discard(key)

    # -- consensus loop (followers) ---------------------------------------------------------

    def note_send_failure(self, uri, error):
        with self.lock:
            f = self.send_failures.setdefault(uri, {"count": 0})
            f["count"] += 1
            f["latest_error"] = error
            f["latest_error_timestamp"] = now_rfc3339()

    def join(self):
        """Registers this new peer with the cluster through the bootstrap peer, retrying while
        it cannot be reached; a refusal by consensus (409, e.g. the URI is used by another peer)
        ends the process, as Qdrant's bootstrap fails."""
        while not self.stopping.is_set():
            try:
                answer = p2p_call(self.bootstrap, "POST", "/p2p/join", {"peer_id": self.peer_id, "uri": self.uri}, self.api_key, timeout=15)
                self.adopt(answer.get("meta"))
                with self.lock:
                    self.ready = True
                    self.save_state()
                log(f"joined cluster through {self.bootstrap} as peer {self.peer_id}")
                return True
            except (ApiError, PeerUnreachable, KeyError) as e:
                if isinstance(e, ApiError) and e.status == 409:
                    self.abort(f"consensus refused peer {self.peer_id} joining through {self.bootstrap}: {e.message}")
                    return False
                log(f"joining through {self.bootstrap} failed, retrying: {e}")
                self.note_send_failure(self.bootstrap, str(e))
                self.stopping.wait(1.0)
        return False

    def abort(self, message):
        """Ends the process with exit status 1, after saying why on stderr."""
        log(f"fatal: {message}; exiting")
        self.exit_status = 1
        self.stopping.set()
        self.on_abort()

    def sync_once(self, wait):
        """Fetches the leader's metadata (long-polling up to `wait` s); falls back to the other
        peers while the leader is away, so a new leader (elected or handed over) is learned.
        True once the leader answered as leader."""
        with self.lock:
            if self.is_leader() or self.removed:
                return False
            leader = self.meta["leader"]
            leader_uri = self.peer_uri(leader)
            commit = self.meta["commit"]
            others = [(int(p), u) for p, u in self.meta["peers"].items() if int(p) not in (self.peer_id, leader)]
        path = f"/p2p/state?after={commit}&wait={wait}&peer_id={self.peer_id}"
        try:
            answer = p2p_call(leader_uri, "GET", path, None, self.api_key, timeout=wait + 5, peer_id=leader)
            self.adopt(answer.get("meta"))
            if answer.get("leader") is True:
                with self.lock:
                    self.contact_ok, self.leader_contact = True, time.monotonic()
                    self.send_failures.pop(leader_uri, None)
                    self.last_sync = now_rfc3339()
                    self.settle_readiness()
                return True
            # It no longer leads: its newer metadata, if any, names the leader to ask next.
            self.lost_leader()
            return False
        except (ApiError, PeerUnreachable) as e:
            self.note_send_failure(leader_uri, str(e))
            self.lost_leader()
        for pid, uri in others:
            try:
                self.adopt(p2p_call(uri, "GET", "/p2p/state", None, self.api_key, timeout=2, peer_id=pid).get("meta"))
                with self.lock:
                    self.settle_readiness()
            except (ApiError, PeerUnreachable):
                continue
        return False

    def lost_leader(self):
        """A failed exchange with the leader: the election clock runs from the first failure
        after a success (the moment the leader was last known alive)."""
        with self.lock:
            if self.contact_ok:
                self.contact_ok, self.leader_contact = False, time.monotonic()

    def settle_readiness(self):
        """Call with the lock held once this peer has metadata it can trust: makes it ready
        unless replicas it must recover after a restart are not marked Partial yet."""
        if self.recovery_pending and not recovery_candidates(self.meta, self.peer_id):
            self.recovery_pending = False
        if not self.recovery_pending:
            self.ready = True

    def consensus_loop(self):
        if self.meta is None and not self.join():
            return
        while not self.stopping.is_set():
            with self.lock:
                leader, removed, ready, confirmed = self.is_leader(), self.removed, self.ready, self.leader_confirmed
            if removed:
                self.stopping.wait(0.2)
                continue
            if leader and not confirmed:
                if not self.confirm_leadership():
                    self.stopping.wait(0.2)
                continue
            # Until ready, a follower does not long-poll: it asks the leader for news at once.
            synced = leader or self.sync_once(LONG_POLL_SECONDS if ready else 0)
            with self.lock:
                pending = self.recovery_pending
            if synced and pending:
                try:
                    self.begin_recovery()
                except ApiError as e:
                    log(f"marking replicas for recovery failed, retrying: {e.message}")
                    synced = False
            if leader:
                self.leader_duties()
                self.stopping.wait(0.2)
            elif not synced:
                if self.election_due():
                    self.run_election()
                else:
                    self.stopping.wait(0.25)

    # -- leader election (see README, "Leader down") ------------------------------------------

    @staticmethod
    def new_jitter():
        return random.uniform(ELECTION_SECONDS / 10, ELECTION_SECONDS / 4)

    def election_active(self):
        """Call with the lock held: this peer campaigns, or voted in a newer term than its
        metadata's a moment ago (an election may be about to end)."""
        recent = time.monotonic() - self.vote_time < ELECTION_SECONDS
        return self.campaign_term is not None or (recent and self.vote["term"] > self.meta["term"])

    def election_due(self):
        """A follower campaigns once it has not heard from the leader for the election timeout,
        plus half a timeout per lower peer id among the other followers (the lowest goes first,
        so two candidates rarely split the votes) and a random jitter."""
        if ELECTION_SECONDS <= 0:
            return False
        with self.lock:
            if self.meta is None or self.removed or self.is_leader() or str(self.peer_id) not in self.meta["peers"] or self.contact_ok:
                return False
            rank = sum(1 for p in self.meta["peers"] if int(p) not in (self.peer_id, self.meta["leader"]) and int(p) < self.peer_id)
            return time.monotonic() - self.leader_contact >= ELECTION_SECONDS * (1 + rank / 2) + self.election_jitter

    def run_election(self):
        """Asks every other peer for its vote in a new term; with votes from a strict majority
        of the peers (this one included) becomes the leader: its metadata names it in the new
        term, with `commit` bumped, and it announces that to the others at once."""
        with self.lock:
            term = max(self.meta["term"], self.vote["term"], self.max_term_seen) + 1
            self.vote, self.vote_time, self.campaign_term = {"term": term, "for": self.peer_id}, time.monotonic(), term
            self.save_state()
            mine = (self.meta["term"], self.meta["commit"])
            request = {"candidate": self.peer_id, "term": term, "meta": copy.deepcopy(self.meta)}
            others = [(int(p), u) for p, u in self.meta["peers"].items() if int(p) != self.peer_id]
            needed = len(self.meta["peers"]) // 2 + 1
        timeout = min(1.0, max(0.2, ELECTION_SECONDS / 2))
        calls = [lambda pid=pid, uri=uri: p2p_call(uri, "POST", "/p2p/vote", request, self.api_key, timeout=timeout, peer_id=pid) for pid, uri in others]
        granted, refusals, live_leader, answering = 1, [], None, []
        for (pid, uri), (answer, error) in zip(others, parallel(calls)):
            if error is not None:
                refusals.append(f"{pid}: {error}")
                continue
            answering.append(pid)
            self.adopt_quietly(answer.get("meta"))
            if is_int(answer.get("term")):
                with self.lock:
                    self.max_term_seen = max(self.max_term_seen, answer["term"])
            if answer.get("granted") is True:
                granted += 1
            else:
                refusals.append(f"{pid}: {answer.get('reason')}")
                if answer.get("reason") == "leader":
                    live_leader = pid
        with self.lock:
            self.campaign_term = None
            self.leader_contact, self.election_jitter = time.monotonic(), self.new_jitter()
            if live_leader is not None or self.is_leader() or (self.meta["term"], self.meta["commit"]) != mine:
                log(f"election for term {term} abandoned: {'peer ' + str(live_leader) + ' still leads' if live_leader else 'newer metadata arrived'}")
                return
            if granted < needed:
                log(f"election for term {term}: {granted} of {len(self.meta['peers'])} votes, {needed} needed; not elected ({'; '.join(refusals)})")
                return
            meta = copy.deepcopy(self.meta)
            old = meta["leader"]
            meta.update(leader=self.peer_id, term=term, commit=meta["commit"] + 1)
            # The peers that answered are alive: they count as followers from now on (the next
            # operations wait for them as usual), before their first poll of this leader.
            now = time.monotonic()
            self.acks, self.polling = {pid: (mine[1], now) for pid in answering}, {}
            self.meta, self.leader_confirmed = meta, True
            self.after_state_change()
            log(f"elected leader for term {term} with {granted} of {len(meta['peers'])} votes (peer {old} led term {mine[0]})")
            self.last_announce, self.announcing = now, True
            request = {"peer_id": self.peer_id, "meta": copy.deepcopy(meta)}
        # Every other peer hears of it at once (later only those that do not poll this leader).
        threading.Thread(target=self.announce, args=(others, request), daemon=True).start()

    def grant_vote(self, candidate, term, meta):
        """Answers a candidate's request for a vote (see README for the rules)."""
        if isinstance(meta, dict):
            self.adopt_quietly(meta)  # a candidate that knows a newer term updates this peer
        with self.lock:
            if self.meta is None or self.removed:
                raise ApiError(503, "not a member of the cluster")
            now = time.monotonic()
            answer = {"granted": False, "term": max(self.vote["term"], self.meta["term"]), "meta": copy.deepcopy(self.meta)}
            theirs = (meta["term"], meta["commit"]) if isinstance(meta, dict) and is_int(meta.get("term")) and is_int(meta.get("commit")) else (0, 0)
            if ELECTION_SECONDS <= 0:
                reason = "elections are off"
            elif str(candidate) not in self.meta["peers"] or not isinstance(meta, dict) or meta.get("cluster_id") != self.meta["cluster_id"]:
                reason = "not a peer of this cluster"
            elif self.is_leader():
                reason = "leader" if self.leader_confirmed else "starting"
            elif self.contact_ok or now - self.leader_contact < ELECTION_SECONDS:
                reason = f"heard from leader {self.meta['leader']} within the election timeout"
            elif theirs < (self.meta["term"], self.meta["commit"]):
                reason = f"candidate metadata {theirs} is older than {(self.meta['term'], self.meta['commit'])}"
            elif self.vote["term"] > term or (self.vote["term"] == term and self.vote["for"] != candidate):
                reason = f"voted for peer {self.vote['for']} in term {self.vote['term']}"
            else:
                self.vote, self.vote_time = {"term": term, "for": candidate}, now
                self.leader_contact = now  # like Raft: a vote restarts the election clock
                self.save_state()
                answer["granted"] = True
                return answer
            answer["reason"] = reason
            return answer

    def follower_live(self, pid, now):
        """Call with the lock held: a follower polls this leader now or did so lately."""
        return self.polling.get(pid, 0) > 0 or now - self.acks.get(pid, (0, float("-inf")))[1] < ELECTION_SECONDS

    def leader_duties(self):
        """A leader sends its metadata to every peer that has not polled it within the
        election timeout, at most every half timeout: this is how followers still polling an
        old leader, or an old leader back from a restart, learn of the new term, and how this
        leader learns from their answers that a newer term began (then it steps down)."""
        if ELECTION_SECONDS <= 0:
            return
        with self.lock:
            now = time.monotonic()
            if not self.is_leader() or not self.leader_confirmed or self.announcing or now - self.last_announce < ELECTION_SECONDS / 2:
                return
            self.last_announce = now
            silent = [(int(p), u) for p, u in self.meta["peers"].items() if int(p) != self.peer_id and not self.follower_live(int(p), now)]
            if not silent:
                return
            self.announcing = True
            request = {"peer_id": self.peer_id, "meta": copy.deepcopy(self.meta)}
        threading.Thread(target=self.announce, args=(silent, request), daemon=True).start()

    def announce(self, targets, request):
        try:
            timeout = min(1.0, max(0.2, ELECTION_SECONDS / 2))
            calls = [lambda pid=pid, uri=uri: p2p_call(uri, "POST", "/p2p/announce", request, self.api_key, timeout=timeout, peer_id=pid) for pid, uri in targets]
            for (pid, uri), (answer, error) in zip(targets, parallel(calls)):
                if error is not None:
                    self.note_send_failure(uri, str(error))
                else:
                    self.adopt_quietly(answer.get("meta"))
        finally:
            with self.lock:
                self.announcing = False

    def hear_announcement(self, sender, meta):
        """A leader's metadata sent to this peer (leader_duties)."""
        self.adopt(meta)
        with self.lock:
            if self.meta["leader"] == sender and not self.is_leader():
                self.contact_ok, self.leader_contact = True, time.monotonic()
            return {"meta": copy.deepcopy(self.meta)}

    def confirm_leadership(self):
        """A peer restarted as the leader of its saved metadata asks the other peers for
        theirs before it acts as leader: a newer term means it was replaced while away, and it
        follows the new leader. While a peer reports an election under way it waits (at most
        two election timeouts). It resumes as leader when no newer term is found, also when
        nobody answers. True once decided."""
        with self.lock:
            if self.confirm_since is None:
                self.confirm_since = time.monotonic()
            others = [(int(p), u) for p, u in self.meta["peers"].items() if int(p) != self.peer_id]
        timeout = min(1.0, max(0.2, ELECTION_SECONDS / 2))
        calls = [lambda pid=pid, uri=uri: p2p_call(uri, "GET", "/p2p/state", None, self.api_key, timeout=timeout, peer_id=pid) for pid, uri in others]
        election = False
        for answer, error in parallel(calls):
            if error is None:
                self.adopt_quietly(answer.get("meta"))
                election = election or answer.get("election") is True
        with self.lock:
            if not self.is_leader() or self.leader_confirmed:
                return True
            if election and time.monotonic() - self.confirm_since < 2 * ELECTION_SECONDS:
                return False
            self.leader_confirmed = True
            log(f"resuming as leader of term {self.meta['term']}")
            self.settle_readiness()
            self.changed.notify_all()
            return True

    # -- recovery of replicas after a restart ----------------------------------------------

    def begin_recovery(self):
        """Runs once a peer restarted from its storage is in touch with consensus (the leader at
        once, a follower after syncing with the leader): marks the replicas it must re-synchronise
        Partial through consensus, becomes ready, and recovers them in the background."""
        with self.lock:
            candidates = recovery_candidates(self.meta, self.peer_id)
            for key in candidates:
                self.recovering.setdefault(key, set())  # writes from now on are newer than any copy
        if candidates:
            self.propose({"op": "start_replica_recovery", "peer_id": self.peer_id})
        with self.lock:
            self.recovering = {k: v for k, v in self.recovering.items() if replica_recovering(self.meta, self.peer_id, *k)}
            self.recovery_pending = False
            self.ready = True
            if self.recovering and not self.recovery_thread:
                log(f"recovering {len(self.recovering)} replica(s) from other peers")
                self.recovery_thread = True
                threading.Thread(target=self.recovery_loop, daemon=True).start()

    def recovery_loop(self):
        """After RECOVERY_SECONDS, brings each replica in `recovering` back: copies its points
        from an Active replica on another peer and marks it Active through consensus, retrying
        every RECOVERY_RETRY_SECONDS while a peer or the leader is unreachable. Replicas that
        stopped being recoverable meanwhile (dropped, peer removed, transfer target) are let go."""
        self.stopping.wait(RECOVERY_SECONDS)
        while not self.stopping.is_set():
            with self.lock:
                if self.removed:
                    self.recovering.clear()
                elif not self.recovery_pending:  # else begin_recovery marks them again first
                    for key in [k for k in self.recovering if not replica_recovering(self.meta, self.peer_id, *k)]:
                        del self.recovering[key]
                keys = [k for k in self.recovering if replica_recovering(self.meta, self.peer_id, *k)]
                if not self.recovering:
                    self.recovery_thread = False
                    return
            if not keys:
                self.stopping.wait(RECOVERY_RETRY_SECONDS)
                continue
            for name, sid in keys:
                try:
                    self.recover_replica(name, sid)
                except (ApiError, PeerUnreachable) as e:
                    log(f"recovery of shard {sid} of collection `{name}` failed, retrying: {e}")
                    self.stopping.wait(RECOVERY_RETRY_SECONDS)

    def recover_replica(self, name, sid):
        with self.lock:
            replicas = self.collection(name)["shards"][str(sid)]
            elsewhere = [p for p, s in replicas.items() if s == "Active" and int(p) != self.peer_id]
        if elsewhere:  # else this replica's points are all there is
            self.local_receive(name, sid, self.read_shard(name, sid, None, "points"), "recover")
        self.propose({"op": "finish_replica_recovery", "peer_id": self.peer_id, "collection": name, "shard_id": sid})
        with self.lock:
            self.recovering.pop((name, sid), None)

    # -- local shard data -------------------------------------------------------------------

    def held_shard(self, name, sid):
        """This peer's data of a shard; refuses a shard it holds no replica of, so that a
        peer with stale metadata learns it wrote to the wrong place instead of losing points."""
        shard = self.shards.get((name, sid))
        if shard is None:
            raise ApiError(409, f"Conflict: shard {sid} of collection `{name}` has no replica on peer {self.peer_id}")
        return shard

    def local_upsert(self, name, sid, records):
        with self.lock:
            shard = self.held_shard(name, sid)
            fresh = self.recovering.get((name, sid))
            for r in records:
                shard[point_key(r[0])] = r
                if fresh is not None:
                    fresh.add(point_key(r[0]))
            self.write_shard_file(name, sid)

    def local_receive(self, name, sid, records, mode):
        """Takes a shard's records from a transfer ("fill": keep what we have, newer writes
        reached us directly), a snapshot recovery ("replace"), or another replica after a
        restart ("recover": its records replace ours, which may be outdated, except points
        written here since the recovery began)."""
        with self.lock:
            shard = self.held_shard(name, sid)
            if mode == "replace":
                shard.clear()
            fresh = self.recovering.get((name, sid), set()) if mode == "recover" else None
            for r in records:
                key = point_key(r[0])
                if fresh is not None and key not in fresh:
                    shard[key] = r
                else:
                    shard.setdefault(key, r)
            self.write_shard_file(name, sid)

    def local_read(self, name, sid, flt, mode):
        with self.lock:
            records = list(self.held_shard(name, sid).values())
        selected = [r for r in records if filter_matches(flt, point_key(r[0]), r[2])]
        return len(selected) if mode == "count" else selected

    # -- cluster-wide point operations ------------------------------------------------------

    def upsert(self, name, body):
        with self.lock:
            coll = self.collection(name)
            params = coll["config"]["params"]
            groups = {}
            for pid, vector, payload in points_from_body(body):
                key = point_key(pid)
                check_point_vector(params.get("vectors"), params.get("sparse_vectors"), vector, pid)
                if payload is not None and not isinstance(payload, dict):
                    raise ApiError(400, f"Format error in JSON body: payload of point {pid} must be an object")
                groups.setdefault(shard_of(key, params["shard_number"]), []).append([key, vector, payload])
            plan = []
            for sid, records in groups.items():
                replicas = coll["shards"][str(sid)]
                targets = [(int(p), s, self.peer_uri(p)) for p, s in replicas.items() if s in REPLICA_STATES_WRITABLE]
                plan.append((sid, records, targets))
            self.operation_id += 1
            op_id = self.operation_id
        for sid, records, targets in plan:
            written_active = 0
            errors = []
            for pid, state, uri in targets:
                try:
                    if pid == self.peer_id:
                        self.local_upsert(name, sid, records)
                    else:
                        p2p_call(uri, "POST", "/p2p/shard/upsert", {"collection": name, "shard_id": sid, "points": records}, self.api_key, timeout=30, peer_id=pid)
                    written_active += state == "Active"
                except (ApiError, PeerUnreachable) as e:
                    errors.append(f"peer {pid}: {e}")
            if not written_active:
                raise ApiError(500, f"Service internal error: No active replica of shard {sid} of collection `{name}` accepted the update: {'; '.join(errors) or 'the shard has no replicas'}")
        return op_id

    def read_shard(self, name, sid, flt, mode, others_only=False):
        """Reads one shard from one of its active replicas, this peer's first (or only from
        replicas on other peers)."""
        with self.lock:
            replicas = self.collection(name)["shards"][str(sid)]
            if not replicas:
                # Every replica is gone (e.g. its peer was force-removed): the points are lost.
                return 0 if mode == "count" else []
            active = sorted((int(p) for p, s in replicas.items() if s == "Active" and not (others_only and int(p) == self.peer_id)), key=lambda p: p != self.peer_id)
            uris = {p: self.peer_uri(p) for p in active}
        errors = []
        for pid in active:
            try:
                if pid == self.peer_id:
                    return self.local_read(name, sid, flt, mode)
                answer = p2p_call(uris[pid], "POST", "/p2p/shard/read", {"collection": name, "shard_id": sid, "filter": flt, "mode": mode}, self.api_key, timeout=30, peer_id=pid)
                if "result" not in answer:
                    raise PeerUnreachable(f"peer {pid} answered a read without a result")
                return answer["result"]
            except (ApiError, PeerUnreachable) as e:
                errors.append(f"peer {pid}: {e}")
        raise ApiError(500, f"Service internal error: No active replica of shard {sid} of collection `{name}` is available: {'; '.join(errors) or 'no replica is active'}")

    def shard_ids(self, name):
        with self.lock:
            return sorted(int(s) for s in self.collection(name)["shards"])

    def count(self, name, flt):
        filter_matches(flt, 0, {})  # a bad filter is the client's 400, not a replica failure
        return sum(self.read_shard(name, sid, flt, "count") for sid in self.shard_ids(name))

    def all_records(self, name, flt):
        filter_matches(flt, 0, {})
        records = []
        for sid in self.shard_ids(name):
            records.extend(self.read_shard(name, sid, flt, "points"))
        records.sort(key=lambda r: sort_key(point_key(r[0])))
        return records

    def replace_shard_everywhere(self, name, sid, records):
        with self.lock:
            replicas = self.collection(name)["shards"].get(str(sid), {})
            targets = [(int(p), self.peer_uri(p)) for p in replicas]
        for pid, uri in targets:
            if pid == self.peer_id:
                self.local_receive(name, sid, records, "replace")
            else:
                p2p_call(uri, "POST", "/p2p/shard/receive", {"collection": name, "shard_id": sid, "points": records, "mode": "replace"}, self.api_key, timeout=30, peer_id=pid)

    # -- snapshots ----------------------------------------------------------------------------
    # As in Qdrant: collection snapshots in <snapshots>/<collection>/, shard snapshots in
    # <snapshots>/<collection>/shards/<shard id>/, each with its sha256 in a `.checksum` file
    # beside it. Deleting the collection leaves them.

    def snapshot_dir(self, name, sid=None):
        d = os.path.join(self.snapshots, name)
        return d if sid is None else os.path.join(d, "shards", str(sid))

    def snapshot_file(self, name, snapshot, sid=None):
        if "/" in snapshot or "\\" in snapshot or snapshot in (".", "..") or not snapshot.endswith(".snapshot"):
            raise ApiError(404, f"Not found: Snapshot {snapshot} not found")
        path = os.path.join(self.snapshot_dir(name, sid), snapshot)
        if not os.path.isfile(path):
            raise ApiError(404, f"Not found: Snapshot {snapshot} not found")
        return path

    def describe_snapshot(self, path):
        st = os.stat(path)
        checksum_path = path + ".checksum"
        if os.path.exists(checksum_path):
            with open(checksum_path, encoding="utf-8") as f:
                checksum = f.read().strip()
        else:
            checksum = file_sha256(path)
        created = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return {"name": os.path.basename(path), "creation_time": created, "size": st.st_size, "checksum": checksum}

    def write_snapshot(self, directory, base, doc):
        """Writes a snapshot document as `<base>.snapshot` (`<base>-2.snapshot`, ... when one of
        that name exists) with its `.checksum`; returns its description."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{base}.snapshot")
        n = 1
        while os.path.exists(path):
            n += 1
            path = os.path.join(directory, f"{base}-{n}.snapshot")
        data = json.dumps(doc, separators=(",", ":")).encode()
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        with open(path + ".checksum", "w", encoding="utf-8") as f:
            f.write(hashlib.sha256(data).hexdigest())
        os.replace(tmp, path)
        return self.describe_snapshot(path)

    def list_snapshot_dir(self, directory):
        if not os.path.isdir(directory):
            return []
        names = sorted(f for f in os.listdir(directory) if f.endswith(".snapshot") and os.path.isfile(os.path.join(directory, f)))
        return [self.describe_snapshot(os.path.join(directory, f)) for f in names]

    @staticmethod
    def delete_snapshot_file(path):
        for p in (path, path + ".checksum"):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass
        return True

    def create_snapshot(self, name):
        """Writes this peer's local shards of a collection (not the other peers') to a file."""
        with self.lock:
            coll = copy.deepcopy(self.collection(name))
            shards = {str(sid): list(recs.values()) for (n, sid), recs in self.shards.items() if n == name}
        doc = {"format": COLLECTION_SNAPSHOT, "version": 1, "collection": name, "peer_id": self.peer_id, "config": coll["config"], "shards": shards}
        return self.write_snapshot(self.snapshot_dir(name), f"{name}-{self.peer_id}-{snapshot_stamp()}", doc)

    def list_snapshots(self, name):
        with self.lock:
            self.collection(name)
        return self.list_snapshot_dir(self.snapshot_dir(name))

    def recover(self, name, data, priority, checksum):
        """Restores a collection from snapshot bytes (see README for the priority rules)."""
        check_collection_name(name)
        doc = parse_snapshot(data, checksum, COLLECTION_SNAPSHOT)
        try:
            config, shards = doc["config"], {int(s): snapshot_records(r) for s, r in doc["shards"].items()}
            config["params"]["shard_number"]
        except (ValueError, KeyError, AttributeError, TypeError) as e:
            raise ApiError(400, f"Bad request: Invalid snapshot: {e}") from e
        with self.lock:
            exists = name in self.meta["collections"]
            me = str(self.peer_id)
        if not exists:
            params = config["params"]
            body = {k: params.get(k) for k in ("vectors", "shard_number", "replication_factor", "write_consistency_factor", "on_disk_payload", "sparse_vectors")}
            body.update({"hnsw_config": config.get("hnsw_config"), "optimizers_config": config.get("optimizer_config"), "wal_config": config.get("wal_config"), "quantization_config": config.get("quantization_config")})
            self.propose({"op": "create_collection", "name": name, "body": body, "placement": {str(s): [me] for s in shards}})
        with self.lock:
            coll = self.collection(name)
            if coll["config"]["params"]["shard_number"] != config["params"]["shard_number"]:
                raise ApiError(400, f"Wrong input: Snapshot is not compatible with existing collection: Collection shard number: {coll['config']['params']['shard_number']} Snapshot shard number: {config['params']['shard_number']}")
            replace = []
            for sid, records in shards.items():
                replicas = coll["shards"][str(sid)]
                others_active = [p for p, s in replicas.items() if p != me and s == "Active"]
                # Priority `replica` keeps what other active replicas hold, like Qdrant.
                if priority != "replica" or not others_active:
                    replace.append((sid, records))
        for sid, records in replace:
            self.replace_shard_everywhere(name, sid, records)
        return True

    # Shard snapshots: one shard's points on this peer.

    def local_shard(self, name, sid, kind="local or queue proxy"):
        """Call with the lock held: the collection, if it has shard `sid` and this peer holds a
        replica of it; else 404 (no such collection or shard) or 400 (not held here), as Qdrant."""
        coll = self.collection(name)
        if str(sid) not in coll["shards"]:
            raise ApiError(404, f"Not found: shard {sid} does not exist in collection `{name}`")
        if (name, sid) not in self.shards:
            raise ApiError(400, f"Wrong input: Shard {sid} is not a {kind} shard")
        return coll

    def create_shard_snapshot(self, name, sid):
        with self.lock:
            coll = self.local_shard(name, sid)
            doc = {"format": SHARD_SNAPSHOT, "version": 1, "collection": name, "shard_id": sid, "peer_id": self.peer_id, "config": copy.deepcopy(coll["config"]), "points": list(self.shards[(name, sid)].values())}
        return self.write_snapshot(self.snapshot_dir(name, sid), f"{name}-shard-{sid}-{snapshot_stamp()}", doc)

    def list_shard_snapshots(self, name, sid):
        with self.lock:
            self.local_shard(name, sid, "local")
        return self.list_snapshot_dir(self.snapshot_dir(name, sid))

    def shard_snapshot_file(self, name, sid, snapshot):
        with self.lock:
            self.local_shard(name, sid)
        return self.snapshot_file(name, snapshot, sid)

    def recover_shard(self, name, sid, data, priority, checksum):
        """Replaces this peer's replica of a shard with a shard snapshot's points. With other
        Active replicas, priority `replica` (the default) keeps theirs (this replica takes their
        points), `snapshot` gives the snapshot's points to them too, `no_sync` changes only this
        replica. Like Qdrant, the snapshot's shard id and vector config are not compared with
        the target's."""
        with self.lock:
            coll = self.local_shard(name, sid, "local")
        doc = parse_snapshot(data, checksum, SHARD_SNAPSHOT)
        try:
            records = snapshot_records(doc.get("points"))
        except ValueError as e:
            raise ApiError(400, f"Bad request: Invalid snapshot: {e}") from e
        others = [p for p, s in coll["shards"][str(sid)].items() if s == "Active" and int(p) != self.peer_id]
        if others and priority == "replica":
            records = self.read_shard(name, sid, None, "points", others_only=True)
        if others and priority == "snapshot":
            self.replace_shard_everywhere(name, sid, records)
        else:
            self.local_receive(name, sid, records, "replace")
        return True

    def fetch_shard_snapshot(self, name, sid, location, api_key):
        """ShardSnapshotLocation: an http(s) URL, or the name of a snapshot of this shard here."""
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", location):
            scheme = location.split(":", 1)[0].lower()
            if scheme not in ("http", "https"):
                raise ApiError(400, f"Wrong input: Invalid snapshot URL {location}: URLs with {scheme} scheme are not supported")
            return download_snapshot(location, api_key)
        with open(self.shard_snapshot_file(name, sid, location), "rb") as f:
            return f.read()

    def fetch_snapshot(self, location, api_key):
        u = urllib.parse.urlsplit(location)
        if u.scheme == "file":
            path = os.path.realpath(urllib.parse.unquote(u.path))
            if not path.startswith(os.path.realpath(self.snapshots) + os.sep):
                raise ApiError(400, f"Bad request: Snapshot file {path} must be inside the snapshots directory {self.snapshots}")
            if not os.path.isfile(path):
                raise ApiError(404, f"Not found: Snapshot file {path} does not exist")
            with open(path, "rb") as f:
                return f.read()
        if u.scheme in ("http", "https"):
            return download_snapshot(location, api_key)
        raise ApiError(400, f"Bad request: Unsupported snapshot location {location!r} (use file:// or http(s)://)")

    # -- REST views ---------------------------------------------------------------------------

    def cluster_status(self):
        if not self.cluster_enabled:
            return {"status": "disabled"}
        with self.lock:
            if self.meta is None or self.removed:
                peers = {str(self.peer_id): {"uri": self.uri}}
                err = "this peer was removed from the cluster" if self.removed else "not joined yet"
                raft = {"term": 0 if self.meta is None else self.meta["term"], "commit": 0 if self.meta is None else self.meta["commit"], "pending_operations": self.pending_proposals, "leader": None, "role": None, "is_voter": False}
                thread = {"consensus_thread_status": "stopped_with_err", "err": err} if self.removed else {"consensus_thread_status": "working", "last_update": self.last_sync}
            else:
                leader = self.is_leader() and self.leader_confirmed
                # Candidate: asking for votes, or restarted as leader and not sure yet.
                role = "Leader" if leader else "Candidate" if self.campaign_term is not None or self.is_leader() else "Follower"
                peers = {p: {"uri": u} for p, u in self.meta["peers"].items()}
                raft = {"term": self.meta["term"], "commit": self.meta["commit"], "pending_operations": self.pending_proposals, "leader": self.meta["leader"], "role": role, "is_voter": True}
                thread = {"consensus_thread_status": "working", "last_update": now_rfc3339() if leader else self.last_sync}
            return {
                "status": "enabled",
                "peer_id": self.peer_id,
                "peers": peers,
                "raft_info": raft,
                "consensus_thread_status": thread,
                "message_send_failures": copy.deepcopy(self.send_failures),
            }

    def collection_status(self, coll):
        states = [list(r.values()) for r in coll["shards"].values()]
        if any("Active" not in s for s in states):
            return "red"
        if any(x != "Active" for s in states for x in s):
            return "yellow"
        return "green"

    def collection_info(self, name):
        with self.lock:
            coll = copy.deepcopy(self.collection(name))
        try:
            points = self.count(name, None)
        except ApiError:
            points = None  # Qdrant reports an unknown count as null
        return {
            "status": self.collection_status(coll),
            "optimizer_status": "ok",
            "indexed_vectors_count": 0,
            "points_count": points,
            "segments_count": 2 * len(coll["shards"]),
            "config": coll["config"],
            "payload_schema": {},
        }

    def collection_cluster_info(self, name):
        with self.lock:
            coll = self.collection(name)
            me = str(self.peer_id)
            local, remote = [], []
            for sid in sorted(coll["shards"], key=int):
                for p, state in sorted(coll["shards"][sid].items()):
                    if p == me:
                        local.append({"shard_id": int(sid), "points_count": len(self.shards.get((name, int(sid)), {})), "state": state})
                    else:
                        remote.append({"shard_id": int(sid), "peer_id": int(p), "state": state})
            transfers = [{"shard_id": t["shard_id"], "from": t["from"], "to": t["to"], "sync": t["sync"], "method": t["method"]} for t in self.meta["transfers"] if t["collection"] == name]
            return {"peer_id": self.peer_id, "shard_count": len(coll["shards"]), "local_shards": local, "remote_shards": remote, "shard_transfers": transfers}


def transfer_key(t):
    return (t["collection"], t["shard_id"], t["from"], t["to"])


def key_dict(t):
    return {"collection": t["collection"], "shard_id": t["shard_id"], "from": t["from"], "to": t["to"]}


# Views of a metadata document `m` shared by the operations and the peers that propose them.


def same_uri(a, b):
    return a.rstrip("/") == b.rstrip("/")


def shards_on_peer(m, pid):
    """{collection: [shard ids]} of the replicas a peer holds."""
    held = {}
    for name, coll in sorted(m["collections"].items()):
        sids = [int(s) for s, replicas in coll["shards"].items() if str(pid) in replicas]
        if sids:
            held[name] = sorted(sids)
    return held


def describe_shards(held):
    return "; ".join(f"collection `{n}` shards {s}" for n, s in held.items())


def transfer_of(m, name, sid, pid):
    """The running transfer of a shard that a peer sends or receives, or None."""
    return next((t for t in m["transfers"] if t["collection"] == name and t["shard_id"] == sid and pid in (t["from"], t["to"])), None)


def recovery_candidates(m, pid):
    """[(collection, shard id)] of the replicas a peer restarted from its storage re-synchronises:
    those outside transfers that are Active with an Active copy on another peer to recover from,
    or still Partial from a recovery the restart interrupted. A shard whose only Active replica
    is on this peer has nothing to recover from and stays Active."""
    me = str(pid)
    out = []
    for name, coll in sorted(m["collections"].items()):
        for sid, replicas in sorted(coll["shards"].items(), key=lambda kv: int(kv[0])):
            state = replicas.get(me)
            if state is None or transfer_of(m, name, int(sid), pid) is not None:
                continue
            if state == "Partial" or (state == "Active" and any(s == "Active" for p, s in replicas.items() if p != me)):
                out.append((name, int(sid)))
    return out


def replica_recovering(m, pid, name, sid):
    """True while a peer's recovery may still mark its replica Active: the replica exists, is
    Partial, and is not the target of a transfer (which owns it then)."""
    coll = m["collections"].get(name)
    replicas = coll["shards"].get(str(sid), {}) if coll else {}
    return replicas.get(str(pid)) == "Partial" and transfer_of(m, name, sid, pid) is None


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


COLLECTION_SNAPSHOT = "qdrant-standin-snapshot"
SHARD_SNAPSHOT = "qdrant-standin-shard-snapshot"
SNAPSHOT_PRIORITIES = ("no_sync", "snapshot", "replica")


def snapshot_stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")


def parse_snapshot(data, checksum, fmt):
    """The document in snapshot bytes of format `fmt`, once their sha256 matches `checksum` (if
    given); 400 otherwise, as Qdrant refuses a mismatch or a file that is not a snapshot."""
    if checksum is not None:
        actual = hashlib.sha256(data).hexdigest()
        if not isinstance(checksum, str) or actual != checksum.lower():
            raise ApiError(400, f"Wrong input: Snapshot checksum mismatch: expected {checksum}, got {actual}")
    try:
        doc = loads_json(data)
        if not isinstance(doc, dict) or doc.get("format") != fmt:
            raise ValueError(f"not a {'shard' if fmt == SHARD_SNAPSHOT else 'collection'} snapshot of this server")
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"Bad request: Invalid snapshot: {e}") from e
    return doc


def snapshot_records(records):
    """A snapshot's list of stored points ([id, vector, payload]); ValueError if malformed."""
    if not isinstance(records, list) or not all(isinstance(r, list) and len(r) == 3 for r in records):
        raise ValueError("malformed points")
    for r in records:
        try:
            point_key(r[0])
        except ApiError as e:
            raise ValueError(e.message) from e
    return records


def snapshot_priority(priority):
    if priority is None:
        return "replica"
    if priority not in SNAPSHOT_PRIORITIES:
        raise format_error(f"unknown variant {json.dumps(priority)} for `priority`, expected one of {', '.join(SNAPSHOT_PRIORITIES)}")
    return priority


def download_snapshot(location, api_key):
    req = urllib.request.Request(location, headers={"api-key": api_key} if api_key else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.read()
    except (OSError, ValueError) as e:
        raise ApiError(400, f"Bad request: Failed to download snapshot from {location}: {e}") from e


def log(msg):
    print(f"{datetime.datetime.now().isoformat(timespec='milliseconds')} standin: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------
# HTTP plumbing shared by the REST and p2p servers.


class Raw:
    """A non-JSON-envelope answer."""

    def __init__(self, status, content_type, data):
        self.status, self.content_type, self.data = status, content_type, data


class BaseHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qdrant-standin"
    sys_version = ""
    node: Node = None

    def log_request(self, code="-", size="-"):
        pass  # one line per request is written by dispatch() instead

    def log_message(self, fmt, *args):
        log(f"{self.address_string()} {fmt % args}")

    def read_body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def extra_headers(self):
        return []

    def send(self, status, content_type, data):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in self.extra_headers():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def dispatch(self):
        t0 = time.perf_counter()
        status = 500
        try:
            split = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
            try:
                body = self.read_body()
            except ValueError as e:
                self.close_connection = True
                raise ApiError(400, f"Bad request: unreadable body: {e}") from e
            status, ctype, data = self.answer(split.path, query, body, t0)
        except ApiError as e:
            status, ctype, data = e.status, "application/json", error_body(e.message, t0)
        except Exception as e:  # a request must never take the server down
            log(f"internal error: {traceback.format_exc()}")
            status, ctype, data = 500, "application/json", error_body(f"Service internal error: {e}", t0)
            self.close_connection = True
        try:
            self.send(status, ctype, data)
        except OSError:
            self.close_connection = True
        if status != 200 or not self.path.startswith("/p2p/state"):  # not every long-poll
            log(f"{self.client_address[0]} {self.command} {self.path} {status} {time.perf_counter() - t0:.3f}s")


def error_body(message, t0):
    return json.dumps({"status": {"error": message}, "time": time.perf_counter() - t0}).encode()


def ok_body(result, t0):
    return json.dumps({"result": result, "status": "ok", "time": time.perf_counter() - t0}).encode()


def parse_json_body(body):
    if not body.strip():
        raise ApiError(400, "Format error in JSON body: EOF while parsing a value at line 1 column 0")
    try:
        return loads_json(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"Format error in JSON body: {e}") from e


# ----------------------------------------------------------------------------------------
# REST API.

# Paths a read-only key may POST to, as in Qdrant's auth middleware.
READ_ONLY_POST = re.compile(r"^/collections/[^/]+/points(/count|/scroll|/search|/search/batch|/search/groups|/recommend|/recommend/batch|/recommend/groups|/discover|/discover/batch|/query|/query/batch|/query/groups)?$")
PUBLIC_PATHS = re.compile(r"^(/|/healthz|/readyz.*|/livez.*)$")
ROUTES = []


def route(method, pattern):
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(fn):
        ROUTES.append((method, regex, fn))
        return fn

    return register


class Faults:
    """Test-only fault injection, enabled by QDRANT_STANDIN_FAULTS=1 (see README)."""

    lock = threading.Lock()
    status = None
    remaining = 0
    prefix = "/"
    delay = 0.0
    stall = False  # transfers sent by this peer make no progress

    @classmethod
    def transfers_stalled(cls):
        with cls.lock:
            return cls.stall


class RestHandler(BaseHandler):
    def answer(self, path, query, body, t0):
        node = self.node
        if FAULTS_ENABLED and path.startswith("/__standin/"):
            return self.fault_control(path, query, t0)
        if FAULTS_ENABLED:
            with Faults.lock:
                fail = Faults.status if Faults.status and path.startswith(Faults.prefix) and Faults.remaining != 0 else None
                if fail:
                    Faults.remaining -= 1
                delay = Faults.delay
            if delay:
                time.sleep(delay)
            if fail:
                return fail, "application/json", error_body(f"Service internal error: injected fault {fail}", t0)
        auth = None if PUBLIC_PATHS.match(path) else self.authenticate(path)
        if isinstance(auth, tuple):
            return auth
        try:
            with node.lock:
                joined = node.meta is not None
            if not joined and auth is not None:
                raise ApiError(503, "Service unavailable: this peer has not joined the cluster yet")
            for method, regex, fn in ROUTES:
                m = regex.match(path)
                if m and method == self.command:
                    if auth == "read" and not (self.command == "GET" or (self.command == "POST" and READ_ONLY_POST.match(path))):
                        raise ApiError(403, "Forbidden: Write access is required, this API key grants read-only access")
                    params = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
                    result = fn(self, node, params, query, body)
                    if isinstance(result, Raw):
                        return result.status, result.content_type, result.data
                    return 200, "application/json", ok_body(result, t0)
            raise ApiError(404, f"Not found: {self.command} {path}")
        except ApiError as e:
            return e.status, "application/json", error_body(e.message, t0)

    def authenticate(self, path):
        """Returns "write", "read", or a ready (status, type, body) refusal. Like Qdrant, the
        401 body of the auth layer is plain text."""
        node = self.node
        if not node.api_key and not node.read_only_key:
            return "write"
        key = self.headers.get("api-key")
        if key is None:
            bearer = self.headers.get("authorization", "")
            key = bearer[len("Bearer "):] if bearer.startswith("Bearer ") else None
        if key is None:
            return 401, "text/plain; charset=utf-8", b"Must provide an API key or an Authorization bearer token"
        if node.api_key and secrets.compare_digest(key.encode(), node.api_key.encode()):
            return "write"
        if node.read_only_key and secrets.compare_digest(key.encode(), node.read_only_key.encode()):
            return "read"
        return 401, "text/plain; charset=utf-8", b"Invalid API key or JWT"

    def fault_control(self, path, query, t0):
        with Faults.lock:
            if path == "/__standin/fail" and self.command == "POST":
                Faults.status = int(query.get("status", "500"))
                Faults.remaining = int(query.get("count", "-1"))
                Faults.prefix = query.get("path_prefix", "/")
                Faults.delay = float(query.get("delay", "0"))
            elif path == "/__standin/stall_transfers" and self.command == "POST":
                Faults.stall = True
            elif path == "/__standin/heal" and self.command == "POST":
                Faults.status, Faults.remaining, Faults.prefix, Faults.delay, Faults.stall = None, 0, "/", 0.0, False
            else:
                return 404, "application/json", error_body(f"Not found: {self.command} {path}", t0)
        return 200, "application/json", ok_body(True, t0)


@route("GET", "/")
def get_root(h, node, p, q, body):
    # Qdrant answers this one without the result/status/time envelope.
    info = {"title": TITLE, "version": VERSION, "commit": "0000000000000000000000000000000000000000"}
    return Raw(200, "application/json", json.dumps(info).encode())


@route("GET", "/healthz")
@route("GET", "/livez")
def get_healthz(h, node, p, q, body):
    return Raw(200, "text/plain; charset=utf-8", b"healthz check passed")


@route("GET", "/readyz")
def get_readyz(h, node, p, q, body):
    # Sticky like Qdrant's: once ready, stays ready.
    with node.lock:
        ready = node.ready
    if ready:
        return Raw(200, "text/plain; charset=utf-8", b"all shards are ready")
    return Raw(503, "text/plain; charset=utf-8", b"some shards are not ready")


@route("GET", "/cluster")
def get_cluster(h, node, p, q, body):
    return node.cluster_status()


@route("DELETE", "/cluster/peer/{peer_id}")
def delete_peer(h, node, p, q, body):
    if not node.cluster_enabled:
        raise ApiError(400, "Bad request: Distributed deployment is disabled.")
    if not re.fullmatch(r"\d+", p["peer_id"]) or int(p["peer_id"]) >= 2**64:
        raise ApiError(400, f"Path deserialize error: can not parse {p['peer_id']!r} to a u64")
    node.propose({"op": "remove_peer", "peer_id": int(p["peer_id"]), "force": query_bool(q, "force", False)})
    return True


@route("GET", "/collections")
def list_collections(h, node, p, q, body):
    with node.lock:
        return {"collections": [{"name": n} for n in sorted(node.meta["collections"])]} if node.meta else {"collections": []}


def known_collection(node, name):
    """The collection's metadata; a follower asks the leader once more before answering 404,
    in case the collection was created an instant ago through another peer."""
    try:
        with node.lock:
            return node.collection(name)
    except ApiError as e:
        if e.status != 404 or not node.cluster_enabled:
            raise
        node.sync_once(0)
        with node.lock:
            return node.collection(name)


@route("GET", "/collections/{collection_name}")
def get_collection(h, node, p, q, body):
    known_collection(node, p["collection_name"])
    return node.collection_info(p["collection_name"])


@route("GET", "/collections/{collection_name}/exists")
def collection_exists(h, node, p, q, body):
    try:
        known_collection(node, p["collection_name"])
        return {"exists": True}
    except ApiError as e:
        if e.status == 404:
            return {"exists": False}
        raise


@route("PUT", "/collections/{collection_name}")
def create_collection(h, node, p, q, body):
    check_collection_name(p["collection_name"])
    req = parse_json_body(body)
    with node.lock:
        collection_config_from_create(req, len(node.meta["peers"]))  # validate before proposing
    node.propose({"op": "create_collection", "name": p["collection_name"], "body": req})
    return True


@route("PATCH", "/collections/{collection_name}")
def update_collection(h, node, p, q, body):
    req = parse_json_body(body)
    with node.lock:
        apply_collection_update(known_collection(node, p["collection_name"])["config"], req)
    node.propose({"op": "update_collection", "name": p["collection_name"], "body": req})
    return True


@route("DELETE", "/collections/{collection_name}")
def delete_collection(h, node, p, q, body):
    # Qdrant answers whether it deleted a collection: false for one that did not exist.
    try:
        known_collection(node, p["collection_name"])
        existed = True
    except ApiError as e:
        if e.status != 404:
            raise
        existed = False
    node.propose({"op": "delete_collection", "name": p["collection_name"]})
    return existed


@route("GET", "/collections/{collection_name}/cluster")
def get_collection_cluster(h, node, p, q, body):
    known_collection(node, p["collection_name"])
    return node.collection_cluster_info(p["collection_name"])


@route("POST", "/collections/{collection_name}/cluster")
def post_collection_cluster(h, node, p, q, body):
    name = p["collection_name"]
    known_collection(node, name)
    req = want_object(parse_json_body(body), "body")
    if len(req) != 1:
        raise ApiError(400, "Format error in JSON body: expected exactly one cluster operation")
    (kind, arg), = req.items()
    arg = want_object(arg, kind)
    sid = want_int(arg.get("shard_id"), f"{kind}.shard_id")
    if kind in ("move_shard", "replicate_shard", "abort_transfer"):
        src = want_int(arg.get("from_peer_id"), f"{kind}.from_peer_id")
        dst = want_int(arg.get("to_peer_id"), f"{kind}.to_peer_id")
        if kind == "abort_transfer":
            op = {"op": "abort_transfer", "collection": name, "shard_id": sid, "from": src, "to": dst}
        else:
            method = arg.get("method")
            if method is not None and method not in ("stream_records", "snapshot", "wal_delta"):
                raise ApiError(400, f"Format error in JSON body: unknown transfer method {method!r}")
            op = {"op": "start_transfer", "collection": name, "shard_id": sid, "from": src, "to": dst, "sync": kind == "replicate_shard", "method": method}
    elif kind == "drop_replica":
        op = {"op": "drop_replica", "collection": name, "shard_id": sid, "peer_id": want_int(arg.get("peer_id"), "drop_replica.peer_id")}
    else:
        raise ApiError(400, f"Bad request: the stand-in does not support the cluster operation `{kind}`")
    node.propose(op)
    return True


@route("PUT", "/collections/{collection_name}/points")
def upsert_points(h, node, p, q, body):
    known_collection(node, p["collection_name"])
    wait = query_bool(q, "wait", False)
    op_id = node.upsert(p["collection_name"], parse_json_body(body))
    # Writes are always applied before answering; `wait` only changes the reported status.
    return {"operation_id": op_id, "status": "completed" if wait else "acknowledged"}


def record_out(r, with_payload, with_vector):
    return {"id": r[0], "payload": (r[2] or {}) if with_payload is not False else None, "vector": r[1] if with_vector not in (False, None) else None}


@route("POST", "/collections/{collection_name}/points")
def get_points(h, node, p, q, body):
    known_collection(node, p["collection_name"])
    req = want_object(parse_json_body(body), "body")
    if not isinstance(req.get("ids"), list):
        raise ApiError(400, "Format error in JSON body: missing field `ids`")
    wanted = [point_key(i) for i in req["ids"]]
    by_key = {point_key(r[0]): r for r in node.all_records(p["collection_name"], {"must": [{"has_id": wanted}]})}
    return [record_out(by_key[k], req.get("with_payload"), req.get("with_vector")) for k in dict.fromkeys(wanted) if k in by_key]


@route("POST", "/collections/{collection_name}/points/count")
def count_points(h, node, p, q, body):
    known_collection(node, p["collection_name"])
    req = want_object(parse_json_body(body), "body") if body.strip() else {}
    return {"count": node.count(p["collection_name"], req.get("filter"))}


@route("POST", "/collections/{collection_name}/points/scroll")
def scroll_points(h, node, p, q, body):
    known_collection(node, p["collection_name"])
    req = want_object(parse_json_body(body), "body") if body.strip() else {}
    limit = 10 if req.get("limit") is None else want_int(req["limit"], "limit", 1)
    records = node.all_records(p["collection_name"], req.get("filter"))
    if req.get("offset") is not None:
        start = sort_key(point_key(req["offset"]))
        records = [r for r in records if sort_key(point_key(r[0])) >= start]
    page = records[:limit]
    nxt = records[limit][0] if len(records) > limit else None
    return {"points": [record_out(r, req.get("with_payload"), req.get("with_vector", False)) for r in page], "next_page_offset": nxt}


def wait_or_accept(q, job, what):
    """Answers `job()`, or with `wait=false` (Qdrant's default is true) 202 at once while the job
    runs in the background (a failure is only logged), as Qdrant's snapshot endpoints do."""
    if query_bool(q, "wait", True):
        return job()

    def background():
        try:
            job()
        except ApiError as e:
            log(f"{what} failed: {e.message}")
        except Exception:  # a background job must not die silently
            log(f"{what} failed: {traceback.format_exc()}")

    threading.Thread(target=background, daemon=True).start()
    return Raw(202, "application/json", json.dumps({"status": "accepted", "time": 0.0}).encode())


def file_answer(path):
    with open(path, "rb") as f:
        return Raw(200, "application/octet-stream", f.read())


def snapshot_recover_request(body):
    """(location, priority, checksum, api_key) of a SnapshotRecover or ShardSnapshotRecover."""
    req = want_object(parse_json_body(body), "body")
    location = req.get("location")
    if not isinstance(location, str):
        raise format_error("missing field `location`" if location is None else "`location` must be a string")
    for field in ("checksum", "api_key"):
        if req.get(field) is not None and not isinstance(req[field], str):
            raise format_error(f"`{field}` must be a string")
    return location, snapshot_priority(req.get("priority")), req.get("checksum"), req.get("api_key")


def uploaded_snapshot(h, body, q):
    """(snapshot bytes, priority, checksum) of an upload: the multipart field `snapshot`, the
    query parameters `priority` and `checksum`."""
    ctype = h.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(400, "Bad request: expected a multipart/form-data body with a `snapshot` field")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(b"content-type: " + ctype.encode() + b"\r\n\r\n" + body)
    data = None
    for part in msg.iter_parts() if msg.is_multipart() else []:
        if part.get_param("name", header="content-disposition") == "snapshot":
            data = part.get_payload(decode=True)
    if data is None:
        raise ApiError(400, "Bad request: the multipart body has no `snapshot` field")
    return data, snapshot_priority(q.get("priority")), q.get("checksum")


@route("GET", "/collections/{collection_name}/snapshots")
def list_snapshots(h, node, p, q, body):
    known_collection(node, p["collection_name"])
    return node.list_snapshots(p["collection_name"])


@route("POST", "/collections/{collection_name}/snapshots")
def create_snapshot(h, node, p, q, body):
    name = p["collection_name"]
    known_collection(node, name)
    return wait_or_accept(q, lambda: node.create_snapshot(name), f"snapshot of `{name}`")


@route("GET", "/collections/{collection_name}/snapshots/{snapshot_name}")
def download_snapshot_file(h, node, p, q, body):
    known_collection(node, p["collection_name"])
    return file_answer(node.snapshot_file(p["collection_name"], p["snapshot_name"]))


@route("DELETE", "/collections/{collection_name}/snapshots/{snapshot_name}")
def delete_snapshot(h, node, p, q, body):
    known_collection(node, p["collection_name"])
    path = node.snapshot_file(p["collection_name"], p["snapshot_name"])
    return wait_or_accept(q, lambda: node.delete_snapshot_file(path), f"deletion of snapshot {p['snapshot_name']}")


@route("PUT", "/collections/{collection_name}/snapshots/recover")
def recover_snapshot(h, node, p, q, body):
    name = p["collection_name"]
    location, priority, checksum, api_key = snapshot_recover_request(body)
    return wait_or_accept(q, lambda: node.recover(name, node.fetch_snapshot(location, api_key), priority, checksum), f"recovery of `{name}`")


@route("POST", "/collections/{collection_name}/snapshots/upload")
def upload_snapshot(h, node, p, q, body):
    name = p["collection_name"]
    data, priority, checksum = uploaded_snapshot(h, body, q)
    return wait_or_accept(q, lambda: node.recover(name, data, priority, checksum), f"recovery of `{name}` from an upload")


# Shard snapshots: of the replica on the peer asked (each peer answers for its own replicas).
SHARD_SNAPSHOTS = "/collections/{collection_name}/shards/{shard_id}/snapshots"


def shard_path_params(node, p):
    """(collection, shard id) from the path; 400 for a shard id that is not a u32, 404 for an
    unknown collection."""
    sid = p["shard_id"]
    if not re.fullmatch(r"\d+", sid) or int(sid) >= 2**32:
        raise ApiError(400, f"Path deserialize error: can not parse {sid!r} to a u32")
    known_collection(node, p["collection_name"])
    return p["collection_name"], int(sid)


def shard_job(node, p, q, what, fn):
    """Qdrant runs the shard snapshot operations whole in the background with wait=false (even
    their checks), so that is what `fn(collection, shard id)` does here."""
    return wait_or_accept(q, lambda: fn(*shard_path_params(node, p)), f"{what} of shard {p['shard_id']} of `{p['collection_name']}`")


@route("GET", SHARD_SNAPSHOTS)
def list_shard_snapshots(h, node, p, q, body):
    return node.list_shard_snapshots(*shard_path_params(node, p))


@route("POST", SHARD_SNAPSHOTS)
def create_shard_snapshot(h, node, p, q, body):
    return shard_job(node, p, q, "snapshot", node.create_shard_snapshot)


@route("GET", SHARD_SNAPSHOTS + "/{snapshot_name}")
def download_shard_snapshot(h, node, p, q, body):
    return file_answer(node.shard_snapshot_file(*shard_path_params(node, p), p["snapshot_name"]))


@route("DELETE", SHARD_SNAPSHOTS + "/{snapshot_name}")
def delete_shard_snapshot(h, node, p, q, body):
    return shard_job(node, p, q, "snapshot deletion", lambda name, sid: node.delete_snapshot_file(node.shard_snapshot_file(name, sid, p["snapshot_name"])))


@route("PUT", SHARD_SNAPSHOTS + "/recover")
def recover_shard_snapshot(h, node, p, q, body):
    location, priority, checksum, api_key = snapshot_recover_request(body)
    return shard_job(node, p, q, "recovery", lambda name, sid: node.recover_shard(name, sid, node.fetch_shard_snapshot(name, sid, location, api_key), priority, checksum))


@route("POST", SHARD_SNAPSHOTS + "/upload")
def upload_shard_snapshot(h, node, p, q, body):
    data, priority, checksum = uploaded_snapshot(h, body, q)
    return shard_job(node, p, q, "recovery from an upload", lambda name, sid: node.recover_shard(name, sid, data, priority, checksum))


# ----------------------------------------------------------------------------------------
# Internal p2p API.


class P2PHandler(BaseHandler):
    def extra_headers(self):
        return [(FROM_PEER_HEADER, str(self.node.peer_id))]  # who answers (see p2p_call)

    def answer(self, path, query, body, t0):
        # No API key here: Qdrant's internal p2p API is not protected by it (its docs say to
        # keep the port internal), which is also what lets Pods with a new key join Pods that
        # still run the old one during a key rotation.
        node = self.node
        try:
            wanted = self.headers.get(TO_PEER_HEADER)
            if wanted is not None and wanted != str(node.peer_id):
                # A new process at an old peer's URI: never answer for the old peer.
                raise ApiError(421, f"this is peer {node.peer_id}, not peer {wanted}")
            req = loads_json(body) if body.strip() else {}
            if not isinstance(req, dict):
                raise ValueError("the request body must be an object")
            fn = P2P_ROUTES.get((self.command, path))
            if fn is None:
                raise ApiError(404, f"no internal route {self.command} {path}")
            with node.lock:
                joined = node.meta is not None
            if not joined:
                raise ApiError(503, "not joined yet")  # e.g. a joining peer tries again
            return 200, "application/json", json.dumps(fn(node, query, req)).encode()
        except ApiError as e:
            return e.status, "application/json", json.dumps({"error": e.message}).encode()
        except PeerUnreachable as e:
            return 503, "application/json", json.dumps({"error": str(e)}).encode()
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            # Our own protocol is broken somewhere: the caller treats it as unreachable.
            log(f"bad internal request {self.command} {path}: {traceback.format_exc()}")
            return 500, "application/json", json.dumps({"error": f"bad internal request: {e!r}", "internal": True}).encode()


def p2p_state(node, query, req):
    """The metadata; a follower (`peer_id`) long-polls it from the leader for a newer commit
    than `after`, up to `wait` s. `leader`: this peer leads in it; `election`: see
    election_active (a restarted leader waits for it to end)."""
    wait = min(float(query.get("wait", "0")), 10.0)
    after = int(query.get("after", "-1"))
    follower = int(query["peer_id"]) if "peer_id" in query else None
    deadline = time.monotonic() + wait
    with node.lock:
        if follower is not None:
            node.acks[follower] = (after, time.monotonic())
            node.polling[follower] = node.polling.get(follower, 0) + 1
            node.changed.notify_all()
        try:
            while node.is_leader() and node.meta["commit"] <= after and time.monotonic() < deadline and not node.stopping.is_set():
                node.changed.wait(deadline - time.monotonic())
            return {"peer_id": node.peer_id, "leader": node.is_leader(), "election": node.election_active(), "meta": copy.deepcopy(node.meta)}
        finally:
            if follower is not None:
                node.polling[follower] = node.polling.get(follower, 1) - 1
                node.acks[follower] = (after, time.monotonic())


def p2p_propose(node, query, req):
    node.propose(req, int(query["peer_id"]) if "peer_id" in query else None, int(query.get("hops", "0")))
    with node.lock:
        return {"meta": copy.deepcopy(node.meta)}


def p2p_join(node, query, req):
    node.propose({"op": "add_peer", "peer_id": req["peer_id"], "uri": req["uri"]})
    with node.lock:
        return {"meta": copy.deepcopy(node.meta)}


def p2p_vote(node, query, req):
    return node.grant_vote(want_int(req.get("candidate"), "candidate"), want_int(req.get("term"), "term"), req.get("meta"))


def p2p_announce(node, query, req):
    return node.hear_announcement(want_int(req.get("peer_id"), "peer_id"), req.get("meta"))


def p2p_upsert(node, query, req):
    node.local_upsert(req["collection"], req["shard_id"], req["points"])
    return {"ok": True}


def p2p_receive(node, query, req):
    node.local_receive(req["collection"], req["shard_id"], req["points"], req["mode"])
    return {"ok": True}


def p2p_read(node, query, req):
    return {"result": node.local_read(req["collection"], req["shard_id"], req.get("filter"), req["mode"])}


P2P_ROUTES = {
    ("GET", "/p2p/state"): p2p_state,
    ("POST", "/p2p/propose"): p2p_propose,
    ("POST", "/p2p/join"): p2p_join,
    ("POST", "/p2p/vote"): p2p_vote,
    ("POST", "/p2p/announce"): p2p_announce,
    ("POST", "/p2p/shard/upsert"): p2p_upsert,
    ("POST", "/p2p/shard/receive"): p2p_receive,
    ("POST", "/p2p/shard/read"): p2p_read,
}


# ----------------------------------------------------------------------------------------


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def serve(handler_cls, node, host, port, tls=None):
    """A server on host:port; with `tls` (a server SSLContext) every connection is TLS. The
    handshake runs in the connection's own thread, so a slow client cannot stall accepting."""
    cls = type(handler_cls.__name__, (handler_cls,), {"node": node})
    server = Server((host, port), cls)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server


def tls_contexts(cfg):
    """(REST server, p2p server, p2p client) SSL contexts from `service.enable_tls`,
    `cluster.p2p.enable_tls` and `tls.cert`/`tls.key`/`tls.ca_cert`, as Qdrant reads them; None
    where TLS is off. Peers are verified against the CA, hostname included."""
    rest_on = setting_bool(cfg, "service.enable_tls", False)
    p2p_on = setting_bool(cfg, "cluster.p2p.enable_tls", False)
    if not (rest_on or p2p_on):
        return None, None, None
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(setting(cfg, "tls.cert", "./tls/cert.pem")), str(setting(cfg, "tls.key", "./tls/key.pem")))
    client = None
    if p2p_on:
        client = ssl.create_default_context(cafile=str(setting(cfg, "tls.ca_cert", "./tls/cacert.pem")))
    return (server if rest_on else None), (server if p2p_on else None), client


def main(argv=None):
    ap = argparse.ArgumentParser(description="Stand-in for the Qdrant server (REST API, cluster behaviour) for tests.")
    ap.add_argument("--uri", help="this peer's p2p URI, advertised to the other peers")
    ap.add_argument("--bootstrap", help="p2p URI of a peer of the cluster to join")
    ap.add_argument("--config-path", help="extra configuration file (YAML subset or JSON)")
    ap.add_argument("--disable-telemetry", action="store_true", help="accepted for compatibility; nothing is sent anyway")
    args = ap.parse_args(argv)
    try:
        cfg = load_settings(args.config_path, os.environ)
        node = Node(cfg, args)
    except (OSError, ValueError, KeyError) as e:
        log(f"cannot start: {e}")
        return 1
    global P2P_CLIENT_TLS
    try:
        rest_tls, p2p_tls, P2P_CLIENT_TLS = tls_contexts(cfg)
    except (OSError, ssl.SSLError) as e:
        log(f"cannot load TLS certificates: {e}")
        return 1
    try:
        rest = serve(RestHandler, node, node.host, node.http_port, rest_tls)
        p2p = serve(P2PHandler, node, node.host, node.p2p_port, p2p_tls) if node.cluster_enabled else None
    except OSError as e:
        log(f"cannot listen: {e}")
        return 1
    with node.lock:
        if node.meta is not None:
            node.after_state_change()  # resumes transfers this peer was sending before a restart
    log(f"qdrant stand-in {VERSION}: peer {node.peer_id}, REST {node.host}:{node.http_port}, p2p {node.uri if p2p else 'disabled'}, storage {node.storage}")

    def stop(signum, frame):
        node.stopping.set()
        threading.Thread(target=rest.shutdown, daemon=True).start()

    node.on_abort = lambda: stop(None, None)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if p2p:
        threading.Thread(target=p2p.serve_forever, daemon=True).start()
        threading.Thread(target=node.consensus_loop, daemon=True).start()
    rest.serve_forever()
    with node.lock:
        node.changed.notify_all()
    log("stopped")
    return node.exit_status


if __name__ == "__main__":
    sys.exit(main())
