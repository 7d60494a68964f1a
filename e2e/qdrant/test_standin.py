#!/usr/bin/env python3
"""Self-tests of the stand-in's parts the conformance run does not reach, and negative
controls proving the conformance validator rejects what it must.

    python3 e2e/qdrant/test_standin.py

Standard library unittest; the validator tests need `jsonschema` and the OpenAPI documents,
like conformance.py, and fail (never skip) without them.
"""

import argparse
import hashlib
import http.client
import http.server
import importlib.util
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from unittest import mock

HERE = Path(__file__).resolve().parent


def load(name):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


standin = load("standin")


class ConfigTest(unittest.TestCase):
    def test_yaml_as_serde_yaml_writes_it(self):
        text = """
cluster:
  enabled: true
  p2p:
    port: 6335
    enable_tls: false   # trailing comment
  consensus:
    tick_period_ms: 100
service:
  api_key: 'se#cret'
  read_only_api_key: "r\\"o"
  hosts:
  - a
  - b
  empty: {}
storage:
  storage_path: /qdrant/storage
"""
        cfg = standin.parse_yaml_subset(text)
        self.assertEqual(cfg["cluster"], {"enabled": True, "p2p": {"port": 6335, "enable_tls": False}, "consensus": {"tick_period_ms": 100}})
        self.assertEqual(cfg["service"], {"api_key": "se#cret", "read_only_api_key": 'r"o', "hosts": ["a", "b"], "empty": {}})
        self.assertEqual(cfg["storage"], {"storage_path": "/qdrant/storage"})

    def test_json_config_and_bad_yaml(self):
        self.assertEqual(standin.parse_yaml_subset('{"service": {"http_port": 1}}'), {"service": {"http_port": 1}})
        with self.assertRaises(ValueError):
            standin.parse_yaml_subset("a: 1\n  - x\n")

    def test_environment_wins_and_keeps_text(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("service:\n  http_port: 7000\n  api_key: from-file\ncluster:\n  enabled: false\n")
        try:
            env = {"QDRANT__SERVICE__API_KEY": "0123", "QDRANT__CLUSTER__ENABLED": "true", "QDRANT__CLUSTER__P2P__PORT": "7001"}
            cfg = standin.load_settings(f.name, env)
        finally:
            os.unlink(f.name)
        self.assertEqual(standin.setting_key(cfg, "service.api_key"), "0123")
        self.assertEqual(int(standin.setting(cfg, "service.http_port")), 7000)
        self.assertEqual(int(standin.setting(cfg, "cluster.p2p.port")), 7001)
        self.assertTrue(standin.setting_bool(cfg, "cluster.enabled", False))
        self.assertIsNone(standin.setting_key(standin.load_settings(None, {"QDRANT__SERVICE__API_KEY": ""}), "service.api_key"))


class FilterTest(unittest.TestCase):
    def test_conditions(self):
        payload = {"city": ["Berlin", "London"], "n": 5, "nested": {"k": "v"}}
        match = standin.filter_matches
        self.assertTrue(match({"must": [{"key": "city", "match": {"value": "London"}}]}, 1, payload))
        self.assertFalse(match({"must_not": {"key": "city", "match": {"any": ["Berlin"]}}}, 1, payload))
        self.assertTrue(match({"should": [{"key": "n", "range": {"gte": 5, "lt": 6}}, {"has_id": [9]}]}, 1, payload))
        self.assertTrue(match({"must": [{"key": "nested.k", "match": {"value": "v"}}, {"is_empty": {"key": "missing"}}]}, 1, payload))
        self.assertTrue(match({"must": [{"has_id": ["936DA01F-9ABD-4D9D-80C7-02AF85C822A8"]}]}, "936da01f-9abd-4d9d-80c7-02af85c822a8", {}))
        with self.assertRaises(standin.ApiError):
            match({"must": [{"geo_radius": {}}]}, 1, payload)


class CollectionConfigTest(unittest.TestCase):
    """CreateCollection and UpdateCollection bodies as Qdrant reads them: the wrong JSON type
    400 ("Format error in JSON body"), out of range 422 ("Validation error in JSON body")."""

    def refused(self, fn, body):
        with self.assertRaises(standin.ApiError) as cm:
            fn(body)
        return cm.exception.status, cm.exception.message

    def create(self, body):
        return standin.collection_config_from_create(body, 3)

    def test_create_echoes_every_field(self):
        cfg = self.create({"vectors": {"img": {"size": 8, "distance": "Dot", "on_disk": True, "hnsw_config": {"m": 8}}, "txt": {"size": 4, "distance": "Euclid"}},
                           "shard_number": 6, "replication_factor": 2, "write_consistency_factor": 2, "on_disk_payload": False,
                           "hnsw_config": {"ef_construct": 64, "unknown": 1}, "optimizers_config": {"indexing_threshold": 0, "max_optimization_threads": "auto"},
                           "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}})
        params = cfg["params"]
        self.assertEqual((params["shard_number"], params["replication_factor"], params["write_consistency_factor"], params["on_disk_payload"]), (6, 2, 2, False))
        self.assertEqual(params["vectors"]["img"], {"size": 8, "distance": "Dot", "on_disk": True, "hnsw_config": {"m": 8}})
        self.assertEqual(cfg["hnsw_config"], {**standin.HNSW_DEFAULTS, "ef_construct": 64}, "unknown fields are ignored")
        self.assertEqual((cfg["optimizer_config"]["indexing_threshold"], cfg["optimizer_config"]["max_optimization_threads"]), (0, None))
        self.assertEqual(cfg["quantization_config"]["scalar"]["quantile"], 0.99)
        self.assertEqual(self.create({})["params"]["shard_number"], 3, "shard_number defaults to the number of peers")

    def test_bad_create_bodies(self):
        cases = [
            ({"vectors": {"size": 0, "distance": "Dot"}}, 400, "Format error in JSON body"),
            ({"vectors": {"size": 4, "distance": "Cosinus"}}, 400, "unknown variant"),
            ({"vectors": {"a": {"size": 0, "distance": "Dot"}}}, 400, "vectors.a.size"),
            ({"vectors": {"size": "four", "distance": "Dot"}}, 400, "vectors.size"),
            ({"vectors": {"size": 65537, "distance": "Dot"}}, 422, "Validation error in JSON body: [vectors.size"),
            ({"shard_number": 0}, 422, "[shard_number: value 0 invalid"),
            ({"replication_factor": 0}, 422, "replication_factor"),
            ({"write_consistency_factor": -1}, 400, "write_consistency_factor"),
            ({"on_disk_payload": "yes"}, 400, "on_disk_payload"),
            ({"hnsw_config": {"ef_construct": 2}}, 422, "hnsw_config.ef_construct"),
            ({"optimizers_config": {"deleted_threshold": 1.5}}, 422, "optimizers_config.deleted_threshold"),
            ({"quantization_config": {"scalar": {"type": "int8", "quantile": 0.1}}}, 422, "quantile"),
            ({"quantization_config": "Disabled"}, 400, "quantization_config"),
        ]
        for body, status, text in cases:
            with self.subTest(body=body):
                got_status, message = self.refused(self.create, body)
                self.assertEqual(got_status, status, message)
                self.assertIn(text, message)

    def test_update(self):
        cfg = self.create({"vectors": {"size": 4, "distance": "Cosine", "hnsw_config": {"m": 8}, "quantization_config": {"binary": {}}}, "shard_number": 2})
        new = standin.apply_collection_update(cfg, {
            "params": {"replication_factor": 3, "write_consistency_factor": 2, "on_disk_payload": False, "read_fan_out_factor": 1},
            "optimizers_config": {"indexing_threshold": 20000}, "hnsw_config": {"m": 32, "on_disk": True},
            "quantization_config": {"scalar": {"type": "int8"}},
            "vectors": {"": {"on_disk": True, "hnsw_config": {}, "quantization_config": "Disabled"}},
        })
        params = new["params"]
        self.assertEqual((params["replication_factor"], params["write_consistency_factor"], params["on_disk_payload"], params["read_fan_out_factor"]), (3, 2, False, 1))
        self.assertEqual(params["vectors"], {"size": 4, "distance": "Cosine", "on_disk": True}, "{} unsets hnsw_config, Disabled the quantization")
        self.assertEqual((new["hnsw_config"]["m"], new["hnsw_config"]["on_disk"], new["optimizer_config"]["indexing_threshold"]), (32, True, 20000))
        self.assertEqual(new["quantization_config"], {"scalar": {"type": "int8"}})
        self.assertIsNone(standin.apply_collection_update(new, {"quantization_config": "Disabled"})["quantization_config"])
        self.assertEqual(cfg["params"]["replication_factor"], 1, "the stored config is not changed in place")
        update = lambda body: standin.apply_collection_update(cfg, body)  # noqa: E731
        self.assertEqual(self.refused(update, {"params": {"replication_factor": 0}})[0], 422)
        self.assertEqual(self.refused(update, {"vectors": {"other": {"on_disk": True}}}), (400, "Wrong input: Not existing vector name error: other"))
        self.assertEqual(self.refused(update, {"vectors": {"": {"hnsw_config": {"ef_construct": 1}}}})[0], 422)


class SnapshotFileTest(unittest.TestCase):
    """What a recovery accepts as snapshot bytes."""

    def test_checksum_and_format(self):
        data = json.dumps({"format": standin.SHARD_SNAPSHOT, "points": [[1, [0.5], None]]}).encode()
        good = hashlib.sha256(data).hexdigest()
        self.assertEqual(standin.parse_snapshot(data, good.upper(), standin.SHARD_SNAPSHOT)["points"], [[1, [0.5], None]])
        for blob, checksum, fmt, text in ((data, "0" * 64, standin.SHARD_SNAPSHOT, "checksum mismatch"), (data[:-3], good, standin.SHARD_SNAPSHOT, "checksum mismatch"),
                                          (data[:-3], None, standin.SHARD_SNAPSHOT, "Invalid snapshot"), (data, None, standin.COLLECTION_SNAPSHOT, "not a collection snapshot")):
            with self.assertRaisesRegex(standin.ApiError, text) as cm:
                standin.parse_snapshot(blob, checksum, fmt)
            self.assertEqual(cm.exception.status, 400)
        with self.assertRaises(ValueError):
            standin.snapshot_records([[1, [0.5]]])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SinglePeerTest(unittest.TestCase):
    """A peer with clustering disabled, and the test-only fault hooks."""

    def start(self, extra_env):
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT__", "QDRANT_STANDIN_"))}
        env.update({"QDRANT__SERVICE__HOST": "127.0.0.1", "QDRANT__SERVICE__HTTP_PORT": str(self.port), "QDRANT__STORAGE__STORAGE_PATH": self.tmp.name + "/storage", **extra_env})
        self.proc = subprocess.Popen([sys.executable, str(HERE / "standin.py")], env=env, cwd=self.tmp.name, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.fail("stand-in did not become ready")

    def tearDown(self):
        self.proc.kill()
        self.proc.wait()
        self.tmp.cleanup()

    def request(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path, body=None if body is None else json.dumps(body), headers={"content-type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, json.loads(data) if r.getheader("content-type", "").startswith("application/json") else data

    def test_cluster_disabled(self):
        self.start({})
        status, body = self.request("GET", "/cluster")
        self.assertEqual((status, body["result"]), (200, {"status": "disabled"}))
        self.assertEqual(self.request("PUT", "/collections/x", {"vectors": {"size": 2, "distance": "Dot"}})[0], 200)
        self.assertEqual(self.request("PUT", "/collections/x/points?wait=true", {"points": [{"id": 1, "vector": [1, 2]}]})[0], 200)
        self.assertEqual(self.request("POST", "/collections/x/points/count", {"exact": True})[1]["result"], {"count": 1})
        self.assertEqual(self.request("DELETE", "/cluster/peer/1")[0], 400)
        self.assertEqual(self.request("POST", "/__standin/fail")[0], 404, "fault hooks must be off by default")
        unsupported = {"filter": {"must": [{"key": "loc", "geo_radius": {}}]}}
        self.assertEqual(self.request("POST", "/collections/x/points/count", unsupported)[0], 400)

    def test_collection_create_update_delete(self):
        self.start({})
        body = {"vectors": {"img": {"size": 4, "distance": "Dot"}, "txt": {"size": 2, "distance": "Euclid", "on_disk": True}}, "shard_number": 3,
                "replication_factor": 1, "write_consistency_factor": 1, "on_disk_payload": False, "hnsw_config": {"m": 8},
                "quantization_config": {"scalar": {"type": "int8", "always_ram": True}}}
        self.assertEqual(self.request("PUT", "/collections/c", body)[1]["result"], True)
        self.assertEqual(self.request("PUT", "/collections/c/points?wait=true", {"points": [{"id": i, "vector": {"img": [1, 2, 3, 4], "txt": [1, 2]}} for i in range(7)]})[0], 200)
        info = self.request("GET", "/collections/c")[1]["result"]
        self.assertEqual((info["status"], info["points_count"], info["segments_count"]), ("green", 7, 6))
        self.assertEqual(info["config"]["params"]["vectors"]["txt"], {"size": 2, "distance": "Euclid", "on_disk": True})
        patch = {"params": {"replication_factor": 2, "write_consistency_factor": 2, "on_disk_payload": True}, "optimizers_config": {"indexing_threshold": 0},
                 "hnsw_config": {"ef_construct": 50}, "quantization_config": "Disabled", "vectors": {"img": {"on_disk": True, "hnsw_config": {"m": 4}}}}
        self.assertEqual(self.request("PATCH", "/collections/c", patch)[1]["result"], True)
        cfg = self.request("GET", "/collections/c")[1]["result"]["config"]
        params = cfg["params"]
        self.assertEqual((params["replication_factor"], params["write_consistency_factor"], params["on_disk_payload"]), (2, 2, True))
        self.assertEqual(params["vectors"]["img"], {"size": 4, "distance": "Dot", "on_disk": True, "hnsw_config": {"m": 4}})
        self.assertEqual((cfg["optimizer_config"]["indexing_threshold"], cfg["hnsw_config"]["ef_construct"], cfg["hnsw_config"]["m"], cfg["quantization_config"]), (0, 50, 8, None))
        for method, path, bad, status in (("PUT", "/collections/d", {"vectors": {"size": 0, "distance": "Dot"}}, 400), ("PUT", "/collections/d", {"vectors": {"size": 4, "distance": "Hamming"}}, 400),
                                          ("PUT", "/collections/d", {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 0}, 422),
                                          ("PATCH", "/collections/c", {"params": {"replication_factor": 0}}, 422), ("PATCH", "/collections/c", {"hnsw_config": {"m": "many"}}, 400),
                                          ("PATCH", "/collections/missing", {"params": {}}, 404)):
            got, answer = self.request(method, path, bad)
            self.assertEqual(got, status, f"{method} {path} {bad}: {answer}")
            self.assertIsInstance(answer["status"]["error"], str)
            self.assertIsInstance(answer["time"], float)
        self.assertEqual(self.request("GET", "/collections/d")[0], 404, "a refused create must not create the collection")
        self.assertEqual(self.request("DELETE", "/collections/c")[1]["result"], True)
        self.assertEqual(self.request("DELETE", "/collections/c")[1]["result"], False, "Qdrant answers false for a collection it did not delete")
        self.assertEqual(self.request("GET", "/collections/c")[0], 404)

    def test_fault_hooks(self):
        self.start({"QDRANT_STANDIN_FAULTS": "1"})
        self.assertEqual(self.request("POST", "/__standin/fail?status=503&count=2&path_prefix=/collections")[0], 200)
        self.assertEqual(self.request("GET", "/cluster")[0], 200, "paths outside the prefix are not affected")
        self.assertEqual([self.request("GET", "/collections")[0] for _ in range(3)], [503, 503, 200])
        self.assertEqual(self.request("POST", "/__standin/fail?status=500")[0], 200)
        self.assertEqual(self.request("GET", "/cluster")[0], 500)
        self.assertEqual(self.request("POST", "/__standin/heal")[0], 200)
        self.assertEqual(self.request("GET", "/cluster")[0], 200)


class TlsTest(unittest.TestCase):
    """REST and p2p over TLS, as Qdrant's service.enable_tls and cluster.p2p.enable_tls: a
    second peer joins the first through https, verifying it against the CA."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.procs = []
        d = self.tmp.name
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=standin-test",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem"],
                       check=True, capture_output=True)
        self.ca = f"{d}/cert.pem"

    def tearDown(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.tmp.cleanup()

    def start(self, name, bootstrap=None):
        http_port, p2p_port = free_port(), free_port()
        root = os.path.join(self.tmp.name, name)
        os.makedirs(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT__", "QDRANT_STANDIN_"))}
        env.update({"QDRANT__SERVICE__HOST": "127.0.0.1", "QDRANT__SERVICE__HTTP_PORT": str(http_port),
                    "QDRANT__CLUSTER__ENABLED": "true", "QDRANT__CLUSTER__P2P__PORT": str(p2p_port),
                    "QDRANT__SERVICE__ENABLE_TLS": "true", "QDRANT__CLUSTER__P2P__ENABLE_TLS": "true",
                    "QDRANT__TLS__CERT": f"{self.tmp.name}/cert.pem", "QDRANT__TLS__KEY": f"{self.tmp.name}/key.pem",
                    "QDRANT__TLS__CA_CERT": self.ca, "QDRANT__STORAGE__STORAGE_PATH": root + "/storage"})
        argv = [sys.executable, str(HERE / "standin.py"), "--uri", f"https://127.0.0.1:{p2p_port}"]
        if bootstrap:
            argv += ["--bootstrap", bootstrap]
        self.procs.append(subprocess.Popen(argv, env=env, cwd=root, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        return http_port, f"https://127.0.0.1:{p2p_port}"

    def get(self, port, path, context):
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        conn.request("GET", path)
        r = conn.getresponse()
        body = json.loads(r.read())
        conn.close()
        return r.status, body

    def test_rest_and_p2p_over_tls(self):
        verify = ssl.create_default_context(cafile=self.ca)
        first, first_uri = self.start("a")
        second, _ = self.start("b", bootstrap=first_uri)
        deadline = time.monotonic() + 20
        peers = 0
        while time.monotonic() < deadline and peers != 2:
            try:
                peers = len(self.get(second, "/cluster", verify)[1]["result"].get("peers", {}))
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        self.assertEqual(peers, 2, "the second peer did not join through https")
        # Plain HTTP on a TLS port gets no answer.
        conn = http.client.HTTPConnection("127.0.0.1", first, timeout=5)
        with self.assertRaises((OSError, http.client.HTTPException)):
            conn.request("GET", "/cluster")
            conn.getresponse().read()
        conn.close()


class MetadataOperationTest(unittest.TestCase):
    """The leader's metadata operations for replica recovery and URI reuse, applied to a
    hand-made metadata document (no processes)."""

    ME, OTHER, THIRD = 2**53 + 11, 2**53 + 22, 2**53 + 33

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.node = standin.Node({"storage": {"storage_path": self.tmp.name}}, argparse.Namespace(uri=None, bootstrap=None))

    def tearDown(self):
        self.tmp.cleanup()

    def meta(self):
        me, other, third = str(self.ME), str(self.OTHER), str(self.THIRD)
        shards = {
            "0": {me: "Active", other: "Active"},  # missed writes: recover from `other`
            "1": {me: "Active"},  # the only copy: nothing to recover from
            "2": {me: "Active", other: "Partial"},  # no Active copy elsewhere
            "3": {me: "Partial", other: "Active"},  # a recovery a restart interrupted
            "4": {me: "Active", other: "Active", third: "Partial"},  # sending a transfer to `third`
        }
        transfers = [{"collection": "c", "shard_id": 4, "from": self.ME, "to": self.THIRD, "sync": True, "method": "stream_records"}]
        return {"cluster_id": "x", "term": 1, "commit": 1, "leader": self.OTHER, "peers": {me: "http://me:6335", other: "http://other:6335", third: "http://third:6335"},
                "collections": {"c": {"config": {}, "shards": shards}}, "transfers": transfers}

    def states(self, m, peer):
        return {int(s): r.get(str(peer)) for s, r in m["collections"]["c"]["shards"].items()}

    def test_recovery_marks_only_replicas_with_an_active_copy_elsewhere(self):
        m = self.meta()
        self.assertEqual(standin.recovery_candidates(m, self.ME), [("c", 0), ("c", 3)])
        self.node.op_start_replica_recovery(m, {"peer_id": self.ME})
        self.assertEqual(self.states(m, self.ME), {0: "Partial", 1: "Active", 2: "Active", 3: "Partial", 4: "Active"})
        self.node.op_finish_replica_recovery(m, {"peer_id": self.ME, "collection": "c", "shard_id": 0})
        self.assertEqual(self.states(m, self.ME)[0], "Active")
        with self.assertRaises(standin.ApiError):
            self.node.op_start_replica_recovery(m, {"peer_id": 12345})

    def test_finishing_a_recovery_resurrects_nothing(self):
        m = self.meta()
        self.node.op_start_replica_recovery(m, {"peer_id": self.ME})
        self.node.op_drop_replica(m, {"collection": "c", "shard_id": 0, "peer_id": self.ME})
        # Shard 3's replica is dropped and comes back as the target of a transfer.
        self.node.op_drop_replica(m, {"collection": "c", "shard_id": 3, "peer_id": self.ME})
        self.node.op_start_transfer(m, {"collection": "c", "shard_id": 3, "from": self.OTHER, "to": self.ME, "sync": True})
        for sid in (0, 3):
            self.node.op_finish_replica_recovery(m, {"peer_id": self.ME, "collection": "c", "shard_id": sid})
        self.assertEqual(self.states(m, self.ME)[0], None, "a dropped replica came back")
        self.assertEqual(self.states(m, self.ME)[3], "Partial", "a transfer's target became Active")
        m = self.meta()
        self.node.op_start_replica_recovery(m, {"peer_id": self.ME})
        self.node.op_remove_peer(m, {"peer_id": self.ME, "force": True})
        self.node.op_finish_replica_recovery(m, {"peer_id": self.ME, "collection": "c", "shard_id": 3})
        self.assertEqual(set(self.states(m, self.ME).values()), {None}, "a removed peer's replica came back")

    def test_uri_reuse_per_version(self):
        new = 2**53 + 44
        for relaxed in (False, True):
            with self.subTest(relaxed=relaxed), mock.patch.object(standin, "REPLACES_EMPTY_PEER_ON_URI_REUSE", relaxed):
                m = self.meta()
                self.node.op_add_peer(m, {"peer_id": self.ME, "uri": "http://me:6335/"})  # rejoin: same id
                with self.assertRaisesRegex(standin.ApiError, f"peer URI http://me:6335 already used by peer {self.ME}"):
                    self.node.op_add_peer(m, {"peer_id": new, "uri": "http://me:6335"})  # ME holds shards
                del m["collections"]["c"]
                m["transfers"] = []
                if relaxed:
                    self.node.op_add_peer(m, {"peer_id": new, "uri": "http://me:6335"})
                    self.assertEqual(m["peers"].get(str(new)), "http://me:6335")
                    self.assertNotIn(str(self.ME), m["peers"])
                else:
                    with self.assertRaisesRegex(standin.ApiError, "remove it first or use a different URI"):
                        self.node.op_add_peer(m, {"peer_id": new, "uri": "http://me:6335"})
                    self.assertNotIn(str(new), m["peers"])


class Peer:
    """One stand-in process of a test cluster on 127.0.0.1, with its own directory and ports
    (kept across restarts, so it restarts with the same --uri); its log is peer.log."""

    def __init__(self, root, name, env):
        self.name = name
        self.dir = Path(root) / name
        self.dir.mkdir()
        self.http_port, self.p2p_port = free_port(), free_port()
        self.uri = f"http://127.0.0.1:{self.p2p_port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT__", "QDRANT_STANDIN_"))}
        self.env.update({"QDRANT__SERVICE__HOST": "127.0.0.1", "QDRANT__SERVICE__HTTP_PORT": str(self.http_port), "QDRANT__CLUSTER__ENABLED": "true",
                         "QDRANT__CLUSTER__P2P__PORT": str(self.p2p_port), "QDRANT__STORAGE__STORAGE_PATH": str(self.dir / "storage"), **env})
        self.proc = None

    def start(self, bootstrap=None):
        argv = [sys.executable, str(HERE / "standin.py"), "--uri", self.uri] + (["--bootstrap", bootstrap.uri] if bootstrap else [])
        with open(self.dir / "peer.log", "ab") as log:
            self.proc = subprocess.Popen(argv, env=self.env, cwd=self.dir, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def wipe(self):
        shutil.rmtree(self.dir / "storage")

    def log(self):
        return (self.dir / "peer.log").read_text(errors="replace")

    def request(self, method, path, body=None):
        return self.raw_request(method, path, None if body is None else json.dumps(body).encode(), "application/json")

    def raw_request(self, method, path, data, content_type):
        """(status, decoded JSON answer or the raw bytes of any other answer)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            conn.request(method, path, body=data, headers={"content-type": content_type})
            r = conn.getresponse()
            answer = r.read()
        finally:
            conn.close()
        return r.status, json.loads(answer) if r.getheader("content-type", "").startswith("application/json") else answer

    def result(self, method, path, body=None):
        status, answer = self.request(method, path, body)
        if status != 200:
            raise AssertionError(f"{self.name}: {method} {path} answered {status}: {answer}")
        return answer["result"]

    def ready(self):
        try:
            return self.request("GET", "/readyz")[0] == 200
        except OSError:
            return False

    def listening(self):
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def peer_id(self):
        return self.result("GET", "/cluster")["peer_id"]

    def peers(self):
        return {int(p): v["uri"] for p, v in self.result("GET", "/cluster")["peers"].items()}

    def layout(self, collection):
        """({shard id: {peer id: state}}, transfers) as this peer sees them."""
        info = self.result("GET", f"/collections/{collection}/cluster")
        out = {}
        for s in info["local_shards"]:
            out.setdefault(s["shard_id"], {})[info["peer_id"]] = s["state"]
        for s in info["remote_shards"]:
            out.setdefault(s["shard_id"], {})[s["peer_id"]] = s["state"]
        return out, info["shard_transfers"]

    def count(self, collection):
        return self.result("POST", f"/collections/{collection}/points/count", {"exact": True})["count"]


class ClusterTestCase(unittest.TestCase):
    """Starts stand-in processes as a cluster; waits on conditions with timeouts."""

    ENV = {}

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.all = []

    def tearDown(self):
        for p in self.all:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        self.tmp.cleanup()

    def wait_for(self, what, fn, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            value = fn()
            if value:
                return value
            if time.monotonic() >= deadline:
                self.fail(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def holds_for(self, what, fn, seconds):
        """Asserts that fn() stays true for `seconds` (watching something not happen)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.assertTrue(fn(), what)
            time.sleep(0.05)

    def cluster(self, n, **env):
        """n joined peers, the first the leader, all ready."""
        peers = [Peer(self.tmp.name, f"p{i}", {**self.ENV, **env}) for i in range(n)]
        self.all.extend(peers)
        for i, p in enumerate(peers):
            p.start(bootstrap=peers[0] if i else None)
            self.wait_for(f"{p.name} ready", p.ready)
        self.wait_for("all peers listed", lambda: len(peers[0].peers()) == n)
        return peers

    def collection(self, via, name, shard_number, replication_factor, n_points):
        via.result("PUT", f"/collections/{name}", {"vectors": {"size": 2, "distance": "Dot"}, "shard_number": shard_number, "replication_factor": replication_factor})
        self.upsert(via, name, range(n_points))

    def upsert(self, via, name, ids):
        via.result("PUT", f"/collections/{name}/points?wait=true", {"points": [{"id": i, "vector": [i, 1], "payload": {"i": i}} for i in ids]})

    def assert_refused(self, peer, message):
        try:
            status = peer.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.fail(f"{peer.name} did not exit after consensus refused it")
        self.assertNotEqual(status, 0)
        self.assertIn(message, peer.log())

    @staticmethod
    def raft(peer):
        """(own peer id, leader, term, role) from the peer's GET /cluster."""
        st = peer.result("GET", "/cluster")
        return st["peer_id"], st["raft_info"]["leader"], st["raft_info"]["term"], st["raft_info"]["role"]

    def agreed(self, peers, not_leader=None, min_term=0):
        """(leader, term) when every peer answers with the same leader and term, that leader is
        one of them and the only one with role Leader (the others Follower), the leader is not
        `not_leader` and the term at least `min_term`; else None."""
        try:
            views = [self.raft(p) for p in peers]
        except (OSError, AssertionError, ValueError):
            return None
        if len({(v[1], v[2]) for v in views}) != 1:
            return None
        leader, term = views[0][1], views[0][2]
        if sorted((v[0] == leader, v[3]) for v in views) != [(False, "Follower")] * (len(views) - 1) + [(True, "Leader")]:
            return None
        return None if leader == not_leader or term < min_term else (leader, term)


class RecoveryAfterRestartTest(ClusterTestCase):
    """A peer restarted from its storage recovers its replicas that have an Active copy elsewhere:
    Partial (and /readyz 503 until that is committed), then Active with the missed points."""

    ENV = {"QDRANT_STANDIN_RECOVERY_SECONDS": "3"}

    def watch_recovery(self, restarted, me, observer, rf1_observer):
        """Polls until the restarted peer's (id `me`) replicas of `r2` went Partial and back to
        Active; /readyz must not answer 200 before the observer shows them Partial, and the
        peer's replica of `r1` (replication factor 1) must stay Active throughout."""
        seen_partial = seen_ready = False
        deadline = time.monotonic() + 40
        while True:
            ready = restarted.ready()  # first, so that the layout below is not older
            layout, _ = observer.layout("r2")
            mine = [reps[me] for reps in layout.values() if me in reps]
            self.assertTrue(mine, f"the restarted peer holds no replica of r2: {layout}")
            seen_partial = seen_partial or "Partial" in mine
            if ready:
                self.assertTrue(seen_partial, f"/readyz answered 200 while the replicas are {mine}")
                seen_ready = True
            r1, _ = rf1_observer.layout("r1")
            self.assertEqual([reps[me] for reps in r1.values() if me in reps], ["Active"], "the replica with no other copy must stay Active")
            if seen_ready and set(mine) == {"Active"}:
                return
            self.assertLess(time.monotonic(), deadline, f"no recovery to Active: replicas {mine}, ready {ready}, Partial seen {seen_partial}")
            time.sleep(0.05)

    def test_follower_restart(self):
        a, b, c = self.cluster(3)
        self.collection(a, "r2", 3, 2, 60)
        self.collection(a, "r1", 3, 1, 30)
        c_id = c.peer_id()
        self.assertEqual(sorted(len(reps) for reps in a.layout("r1")[0].values()), [1, 1, 1])
        c.stop()
        self.upsert(a, "r2", range(60, 90))  # c's replicas miss these
        self.assertEqual(a.count("r2"), 90)
        c.start()
        self.watch_recovery(c, c_id, a, b)
        self.assertEqual(c.peer_id(), c_id)
        for p in (a, b, c):
            self.assertEqual(p.count("r2"), 90, f"count of r2 through {p.name}")
            self.assertEqual(p.count("r1"), 30, f"count of r1 through {p.name}")
        # c's replicas got the points written while it was away from the other replicas.
        local = {s["shard_id"]: s["points_count"] for s in c.result("GET", "/collections/r2/cluster")["local_shards"]}
        self.assertEqual(len(local), 2)
        for sid, n in local.items():
            self.assertEqual(n, len([i for i in range(90) if standin.shard_of(i, 3) == sid]), f"points in c's replica of shard {sid}")

    def test_follower_waits_for_the_leader(self):
        # A follower restarted while the leader is away cannot commit its recovery: it stays
        # unready although the other follower gives it the metadata. With elections off
        # (QDRANT_STANDIN_ELECTION_SECONDS=0): else b and c would elect a new leader.
        a, b, c = self.cluster(3, QDRANT_STANDIN_ELECTION_SECONDS="0")
        self.collection(a, "r2", 3, 2, 30)
        c.stop()
        a.stop()
        c.start()
        self.wait_for("c listening", c.listening)
        self.holds_for("/readyz of c must answer 503 while the leader is away", lambda: not c.ready(), 2.5)
        a.start()
        self.wait_for("c ready once the leader is back", c.ready)
        self.wait_for("all replicas Active", lambda: all(set(reps.values()) == {"Active"} for reps in b.layout("r2")[0].values()))
        self.assertEqual(c.count("r2"), 30)

    def test_leader_restart(self):
        a, b, c = self.cluster(3)
        self.collection(a, "r2", 3, 2, 40)
        self.collection(a, "r1", 3, 1, 20)
        a_id = a.peer_id()
        a.stop()
        a.start()
        self.wait_for("a listening", a.listening)  # it is its own observer: the leader decides
        self.watch_recovery(a, a_id, a, b)
        self.wait_for("b sees the leader's replicas Active", lambda: all(set(reps.values()) == {"Active"} for reps in b.layout("r2")[0].values()))
        self.assertEqual((b.count("r2"), c.count("r1")), (40, 20))
        # Whether or not b and c elected a leader while a was away: one leader, one view.
        self.wait_for("one leader all three agree on", lambda: self.agreed([a, b, c]))


class UriReuseTest(ClusterTestCase):
    """A peer whose storage was wiped comes back with a new id and its old URI."""

    def rejoin_wiped(self, peer, bootstrap):
        peer.stop()
        peer.wipe()
        peer.start(bootstrap=bootstrap)

    def test_refused_before_1_17_1_until_the_old_peer_is_removed(self):
        a, b = self.cluster(2, QDRANT_STANDIN_VERSION="1.16.3")
        self.collection(a, "keep", 2, 2, 40)
        old = b.peer_id()
        self.rejoin_wiped(b, a)
        self.assert_refused(b, f"peer URI {b.uri} already used by peer {old}, remove it first or use a different URI")
        self.assertEqual(a.peers().get(old), b.uri, "the old peer must stay registered")
        for sid in (0, 1):  # its replicas have Active copies on a
            a.result("POST", "/collections/keep/cluster", {"drop_replica": {"shard_id": sid, "peer_id": old}})
        self.assertIs(a.result("DELETE", f"/cluster/peer/{old}"), True)
        b.start(bootstrap=a)
        self.wait_for("b rejoined", b.ready)
        new = b.peer_id()
        self.assertNotEqual(new, old)
        self.assertEqual(a.peers(), {a.peer_id(): a.uri, new: b.uri})
        self.assertEqual(b.count("keep"), 40)

    def test_empty_old_peer_replaced_from_1_17_1(self):
        a, b = self.cluster(2, QDRANT_STANDIN_VERSION="1.18.0")
        old = b.peer_id()
        self.rejoin_wiped(b, a)
        self.wait_for("b rejoined", b.ready)
        new = b.peer_id()
        self.assertNotEqual(new, old)
        self.assertEqual(a.peers(), {a.peer_id(): a.uri, new: b.uri}, "the empty old peer must be replaced")
        self.collection(a, "held", 2, 1, 20)
        self.assertIn(new, {p for reps in a.layout("held")[0].values() for p in reps}, "b must hold a shard")
        self.rejoin_wiped(b, a)
        self.assert_refused(b, f"peer URI {b.uri} already used by peer {new}, which still holds shards")
        self.assertEqual(a.peers().get(new), b.uri)


class ElectionTest(ClusterTestCase):
    """Leader election: the followers of a leader gone for the election timeout elect one of
    them if they are a majority; a restarted old leader follows a newer term."""

    ELECTION = 1.0
    ENV = {"QDRANT_STANDIN_ELECTION_SECONDS": str(ELECTION), "QDRANT_STANDIN_VERSION": "1.16.3"}

    def kill(self, peer):
        peer.proc.kill()
        peer.proc.wait()

    def test_killed_leader_replaced_then_its_wiped_process_refused_until_removed(self):
        a, b, c = self.cluster(3)
        self.collection(a, "r2", 3, 2, 60)
        old, _, term, role = self.raft(a)
        self.assertEqual(role, "Leader")
        self.kill(a)
        leader, new_term = self.wait_for("b and c to agree on a new leader", lambda: self.agreed([b, c], not_leader=old, min_term=term + 1), timeout=20)
        self.assertIn(leader, (b.peer_id(), c.peer_id()))
        # Consensus works again, through either peer.
        c.result("PUT", "/collections/fresh", {"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 3, "replication_factor": 2})
        self.upsert(c, "fresh", range(10))
        for p in (b, c):
            self.assertEqual((p.count("r2"), p.count("fresh")), (60, 10), f"counts through {p.name}")
        # The old leader's storage is lost; its empty process comes back at the same URI and is
        # refused by the new leader (before 1.17.1 a registered URI cannot be reused).
        a.wipe()
        a.start(bootstrap=b)
        self.assert_refused(a, f"peer URI {a.uri} already used by peer {old}, remove it first or use a different URI")
        # As the operator does: drop the old peer's replicas, remove it, through b.
        for name in ("r2", "fresh"):
            for sid, reps in b.layout(name)[0].items():
                if old in reps:
                    self.assertIn("Active", [s for p, s in reps.items() if p != old], f"shard {sid} of {name}: {reps}")
                    self.assertIs(b.result("POST", f"/collections/{name}/cluster", {"drop_replica": {"shard_id": sid, "peer_id": old}}), True)
        self.assertIs(b.result("DELETE", f"/cluster/peer/{old}"), True)
        a.start(bootstrap=b)
        self.wait_for("the empty process to join", a.ready)
        new = a.peer_id()
        self.assertNotEqual(new, old)
        ids = {new, b.peer_id(), c.peer_id()}
        self.wait_for("every peer to list the 3 peers and agree on one leader", lambda: all(set(p.peers()) == ids for p in (a, b, c)) and self.agreed([a, b, c], min_term=new_term))
        for p in (a, b, c):
            self.assertEqual((p.count("r2"), p.count("fresh")), (60, 10), f"counts through {p.name}")

    def test_wiped_leader_back_at_once(self):
        # The empty process answers at the old leader's URI while b and c elect: a write through
        # b is "unreachable" (500) until then, never a 400 from misreading the new process, and
        # the empty process's join, forwarded by b, reaches the new leader and is refused.
        a, b, c = self.cluster(3)
        self.collection(a, "r2", 3, 2, 30)
        old = a.peer_id()
        self.kill(a)
        a.wipe()
        a.start(bootstrap=b)

        def write_through_b():
            status, body = b.request("PATCH", "/collections/r2", {"optimizers_config": {"indexing_threshold": 20000}})
            self.assertIn(status, (200, 500), body)
            self.assertNotIn("TypeError", json.dumps(body))
            return status == 200

        self.wait_for("a metadata write through b to succeed", write_through_b, timeout=20)
        self.assert_refused(a, f"peer URI {a.uri} already used by peer {old}")
        self.assertNotEqual(self.raft(b)[1], old)
        self.assertEqual(c.count("r2"), 30)

    def test_p2p_answers_only_for_the_peer_asked(self):
        (a,) = self.cluster(1)
        a_id = a.peer_id()
        self.assertEqual(standin.p2p_call(a.uri, "GET", "/p2p/state", peer_id=a_id)["peer_id"], a_id)
        # The caller checks who answered; the peer refuses a request meant for another peer.
        with self.assertRaisesRegex(standin.PeerUnreachable, f"peer {a_id} answers there, not peer {a_id + 1}"):
            standin.p2p_call(a.uri, "GET", "/p2p/state", peer_id=a_id + 1)
        conn = http.client.HTTPConnection("127.0.0.1", a.p2p_port, timeout=10)
        try:
            conn.request("GET", "/p2p/state", headers={standin.TO_PEER_HEADER: str(a_id + 1)})
            r = conn.getresponse()
            self.assertEqual((r.status, r.getheader(standin.FROM_PEER_HEADER)), (421, str(a_id)))
            self.assertEqual(json.loads(r.read()), {"error": f"this is peer {a_id}, not peer {a_id + 1}"})
        finally:
            conn.close()
        # A process that has not joined (its bootstrap peer never answers) is unreachable for
        # every request, a proposal included; it used to answer 400 (a TypeError).
        lonely = Peer(self.tmp.name, "lonely", self.ENV)
        self.all.append(lonely)
        lonely.start(bootstrap=Peer(self.tmp.name, "nobody", {}))
        self.wait_for("lonely listening", lonely.listening)
        for method, path, body in (("POST", "/p2p/propose", {"op": "delete_collection", "name": "x"}), ("GET", "/p2p/state", None), ("POST", "/p2p/vote", {"candidate": a_id, "term": 9})):
            with self.assertRaisesRegex(standin.PeerUnreachable, "answered 503: not joined yet"):
                standin.p2p_call(lonely.uri, method, path, body)

    def test_restarted_leader_follows_the_new_term(self):
        a, b, c = self.cluster(3)
        self.collection(a, "r2", 3, 2, 30)
        old, _, term, _ = self.raft(a)
        a.stop()
        leader, new_term = self.wait_for("b and c to elect a leader", lambda: self.agreed([b, c], not_leader=old, min_term=term + 1), timeout=20)
        self.upsert(b, "r2", range(30, 40))  # a's replicas miss these
        a.start()

        def ready_as_follower():
            # Before it answers ready, a must have learned of the new term (not led its old one).
            if not a.ready():
                return False
            self.assertEqual(self.raft(a)[1:], (leader, new_term, "Follower"), "a was ready before it followed the new leader")
            return True

        self.wait_for("a ready", ready_as_follower)
        self.assertIn("restarted as a follower", a.log(), "a must learn of the new term before it leads")
        self.assertNotIn("stepping down", a.log(), "a must not have led its old term after the restart")
        self.assertEqual(self.wait_for("all three to agree", lambda: self.agreed([a, b, c])), (leader, new_term), "a must follow the new leader")
        self.assertEqual(self.raft(a)[3], "Follower")
        # a recovers its replicas through the new leader: Active again, with the missed points.
        expected = {sid: len([i for i in range(40) if standin.shard_of(i, 3) == sid]) for sid in range(3)}

        def recovered():
            local = a.result("GET", "/collections/r2/cluster")["local_shards"]
            return len(local) == 2 and all(s["state"] == "Active" and s["points_count"] == expected[s["shard_id"]] for s in local)

        self.wait_for("a's replicas Active with every point", recovered)
        self.wait_for("b to see every replica Active", lambda: all(set(reps.values()) == {"Active"} for reps in b.layout("r2")[0].values()))
        self.holds_for("one leader all three agree on", lambda: self.agreed([a, b, c]) == (leader, new_term), 2 * self.ELECTION)

    def test_leader_resumes_when_no_majority_could_elect(self):
        a, b, c = self.cluster(3)
        old, _, term, _ = self.raft(a)
        c.stop()
        a.stop()
        self.wait_for("b to fail an election (1 of 3 votes)", lambda: "not elected" in b.log(), timeout=20)
        a.start()
        self.wait_for("a ready", a.ready)
        c.start()
        self.wait_for("c ready", c.ready)
        self.assertEqual(self.wait_for("all three to agree", lambda: self.agreed([a, b, c])), (old, term), "a must lead the same term")
        self.holds_for("a stays the leader", lambda: self.agreed([a, b, c]) == (old, term), 2 * self.ELECTION)

    def test_two_peers_no_majority(self):
        a, b = self.cluster(2)
        old, _, term, _ = self.raft(a)
        self.kill(a)

        def b_follows_a():
            # Role Candidate while it asks for votes (a moment), else Follower; never Leader.
            _, leader, t, role = self.raft(b)
            return (leader, t) == (old, term) and role in ("Follower", "Candidate")

        self.holds_for("b must not become leader", b_follows_a, 3 * self.ELECTION)
        self.assertIn("not elected", b.log(), "b should have tried")
        status, body = b.request("PUT", "/collections/x", {"vectors": {"size": 2, "distance": "Dot"}})
        self.assertEqual(status, 500, body)
        self.assertTrue(b_follows_a())


class StalledTransferTest(ClusterTestCase):
    """POST /__standin/stall_transfers on the source peer holds its transfers still until heal."""

    ENV = {"QDRANT_STANDIN_FAULTS": "1", "QDRANT_STANDIN_TRANSFER_SECONDS": "0.3"}

    def test_stall_abort_and_heal(self):
        a, b = self.cluster(2)
        self.collection(a, "s", 1, 1, 20)
        holder = next(iter(a.layout("s")[0][0]))
        src, dst = (a, b) if holder == a.peer_id() else (b, a)
        dst_id = dst.peer_id()
        replicate = {"replicate_shard": {"shard_id": 0, "from_peer_id": holder, "to_peer_id": dst_id}}

        def stuck():
            layout, transfers = a.layout("s")
            return len(transfers) == 1 and layout[0].get(dst_id) == "Partial"

        def done():
            layout, transfers = a.layout("s")
            return not transfers and layout[0] == {holder: "Active", dst_id: "Active"}

        self.assertIs(src.request("POST", "/__standin/stall_transfers")[1]["result"], True)
        a.result("POST", "/collections/s/cluster", replicate)
        self.holds_for("a stalled transfer must stay listed with its target Partial", stuck, 2.0)
        a.result("POST", "/collections/s/cluster", {"abort_transfer": {"shard_id": 0, "from_peer_id": holder, "to_peer_id": dst_id}})
        self.wait_for("the aborted transfer and its target gone", lambda: a.layout("s") == ({0: {holder: "Active"}}, []))
        self.assertEqual(dst.count("s"), 20)
        # Still stalled: a new transfer waits too, and resumes on heal.
        a.result("POST", "/collections/s/cluster", replicate)
        self.holds_for("a transfer started while stalled must not progress", stuck, 1.0)
        self.assertIs(src.request("POST", "/__standin/heal")[1]["result"], True)
        self.wait_for("the stalled transfer finished after heal", done, timeout=15)
        # A transfer started after heal runs normally.
        a.result("POST", "/collections/s/cluster", {"drop_replica": {"shard_id": 0, "peer_id": dst_id}})
        self.wait_for("replica dropped", lambda: a.layout("s") == ({0: {holder: "Active"}}, []))
        a.result("POST", "/collections/s/cluster", replicate)
        self.wait_for("a transfer after heal finished", done, timeout=10)
        self.assertEqual(dst.count("s"), 20)


class SnapshotStore:
    """Stands in for S3 in the backup tests: serves the bytes it holds over plain HTTP, as a
    presigned URL would."""

    def __init__(self):
        self.blobs = {}
        blobs = self.blobs

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = blobs.get(self.path.lstrip("/"))
                self.send_response(200 if data is not None else 404)
                self.send_header("content-length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, key):
        return f"http://127.0.0.1:{self.server.server_address[1]}/{key}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class ShardSnapshotTest(ClusterTestCase):
    """Shard snapshots taken through each peer of its own replicas, and restored onto the peer
    that holds the shard: the backup and restore the operator performs."""

    @classmethod
    def setUpClass(cls):
        cls.multipart = staticmethod(load("conformance").multipart)

    def setUp(self):
        super().setUp()
        self.store = SnapshotStore()
        self.addCleanup(self.store.close)

    @staticmethod
    def holders(peer, name):
        """{shard id: [peer ids holding it]}."""
        return {sid: sorted(reps) for sid, reps in peer.layout(name)[0].items()}

    def local_counts(self, peer, name):
        return {s["shard_id"]: s["points_count"] for s in peer.result("GET", f"/collections/{name}/cluster")["local_shards"]}

    def snapshot(self, peer, name, sid):
        """Takes a shard snapshot through `peer`; returns (description, downloaded bytes)."""
        desc = peer.result("POST", f"/collections/{name}/shards/{sid}/snapshots?wait=true")
        status, data = peer.request("GET", f"/collections/{name}/shards/{sid}/snapshots/{desc['name']}")
        self.assertEqual(status, 200)
        self.assertEqual((len(data), hashlib.sha256(data).hexdigest()), (desc["size"], desc["checksum"]), "the download must match the description")
        return desc, data

    def upload(self, peer, name, sid, data, query=""):
        body, ctype = self.multipart("snapshot", "shard.snapshot", data)
        return peer.raw_request("POST", f"/collections/{name}/shards/{sid}/snapshots/upload{query}", body, ctype)

    def test_backup_and_restore_of_1000_points_over_6_shards(self):
        peers = self.cluster(3)
        by_id = {p.peer_id(): p for p in peers}
        create = {"vectors": {"size": 8, "distance": "Cosine"}, "shard_number": 6, "replication_factor": 1}
        rng = random.Random(7)
        written = {i: ([rng.uniform(-1, 1) for _ in range(8)], {"i": i, "tag": f"t{i % 7}"}) for i in range(1000)}
        peers[0].result("PUT", "/collections/bk", create)
        peers[1].result("PUT", "/collections/bk/points?wait=true", {"points": [{"id": i, "vector": v, "payload": pl} for i, (v, pl) in written.items()]})
        layout = self.holders(peers[0], "bk")
        self.assertEqual(sorted(len(h) for h in layout.values()), [1] * 6)
        self.assertEqual(set(h[0] for h in layout.values()), set(by_id), "every peer holds shards")
        # Backup: every shard from every peer that holds one, through that peer.
        backup = {}
        for pid, peer in by_id.items():
            for sid in sorted(self.local_counts(peer, "bk")):
                desc, data = self.snapshot(peer, "bk", sid)
                backup[sid] = (desc, len(json.loads(data)["points"]))
                self.store.blobs[f"bk/{sid}"] = data
            other = next(s for s, h in layout.items() if h != [pid])
            status, body = peer.request("POST", f"/collections/bk/shards/{other}/snapshots")
            self.assertEqual(status, 400, f"a peer without shard {other} must refuse its snapshot: {body}")
        self.assertEqual(sorted(backup), list(range(6)))
        self.assertEqual(sum(n for _, n in backup.values()), 1000, "the snapshots hold every point")
        # Disaster: the collection is gone. Recreate it and restore each shard on its holder,
        # half from a URL (with the checksum), half uploaded.
        self.assertIs(peers[2].result("DELETE", "/collections/bk"), True)
        self.assertEqual(peers[0].request("GET", "/collections/bk")[0], 404)
        peers[2].result("PUT", "/collections/bk", create)
        self.assertEqual(peers[0].count("bk"), 0)
        for sid, (holder,) in self.holders(peers[0], "bk").items():
            desc, _ = backup[sid]
            if sid % 2:
                status, body = self.upload(by_id[holder], "bk", sid, self.store.blobs[f"bk/{sid}"], f"?checksum={desc['checksum']}&wait=true")
                self.assertEqual((status, body.get("result")), (200, True), body)
            else:
                recover = {"location": self.store.url(f"bk/{sid}"), "checksum": desc["checksum"]}
                self.assertIs(by_id[holder].result("PUT", f"/collections/bk/shards/{sid}/snapshots/recover", recover), True)
        for p in peers:
            self.assertEqual(p.count("bk"), 1000, f"count through {p.name}")
        self.assertEqual({sid: n for p in peers for sid, n in self.local_counts(p, "bk").items()}, {sid: n for sid, (_, n) in backup.items()})
        page = peers[0].result("POST", "/collections/bk/points/scroll", {"limit": 2000, "with_vector": True, "with_payload": True})
        restored = {pt["id"]: (pt["vector"], pt["payload"]) for pt in page["points"]}
        self.assertEqual(restored, written, "every point back with identical vector and payload")

    def test_bad_snapshots_are_refused_and_leave_the_replica_alone(self):
        a, b = self.cluster(2)
        a.result("PUT", "/collections/s", {"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 2, "replication_factor": 1})
        self.upsert(a, "s", range(40))
        sid = 0
        holder, other = (a, b) if self.holders(a, "s")[sid] == [a.peer_id()] else (b, a)
        before = self.local_counts(holder, "s")[sid]
        desc, data = self.snapshot(holder, "s", sid)
        self.upsert(a, "s", range(40, 80))
        grown = self.local_counts(holder, "s")[sid]
        self.assertGreater(grown, before)
        corrupt = data[:-20] + b"x" * 20
        self.store.blobs["corrupt"] = corrupt
        _, collection_snapshot = holder.request("GET", f"/collections/s/snapshots/{holder.result('POST', '/collections/s/snapshots')['name']}")
        path = f"/collections/s/shards/{sid}/snapshots"
        refusals = [
            ("upload of a corrupted file with the original checksum", self.upload(holder, "s", sid, corrupt, f"?checksum={desc['checksum']}"), "checksum mismatch"),
            ("upload of a corrupted file", self.upload(holder, "s", sid, corrupt), "Invalid snapshot"),
            ("upload with a wrong checksum", self.upload(holder, "s", sid, data, "?checksum=" + "0" * 64), "checksum mismatch"),
            ("a collection snapshot as a shard snapshot", self.upload(holder, "s", sid, collection_snapshot), "Invalid snapshot"),
            ("a URL with a wrong checksum", holder.request("PUT", f"{path}/recover", {"location": self.store.url("corrupt"), "checksum": desc["checksum"]}), "checksum mismatch"),
            ("a name with a wrong checksum", holder.request("PUT", f"{path}/recover", {"location": desc["name"], "checksum": "f" * 64}), "checksum mismatch"),
            ("a URL that answers 404", holder.request("PUT", f"{path}/recover", {"location": self.store.url("missing")}), "Failed to download"),
            ("a file:// URL", holder.request("PUT", f"{path}/recover", {"location": f"file:///tmp/{desc['name']}"}), "file scheme"),
            ("a peer without the shard", other.request("PUT", f"{path}/recover", {"location": self.store.url("corrupt")}), "not a local shard"),
        ]
        for what, (status, body), text in refusals:
            with self.subTest(what):
                self.assertEqual(status, 400, body)
                self.assertIn(text, body["status"]["error"])
        self.assertEqual(self.local_counts(holder, "s")[sid], grown, "a refused recovery must not touch the replica")
        self.assertEqual(holder.request("PUT", f"{path}/recover", {"location": "no-such.snapshot"})[0], 404)
        # The genuine snapshot, by name, with its checksum: the points written since are gone.
        self.assertIs(holder.result("PUT", f"{path}/recover", {"location": desc["name"], "checksum": desc["checksum"]}), True)
        self.assertEqual(self.local_counts(holder, "s")[sid], before)
        self.assertEqual(a.count("s"), 80 - (grown - before))

    def test_endpoint_answers(self):
        a, b = self.cluster(2)
        a.result("PUT", "/collections/e", {"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 2, "replication_factor": 1})
        self.upsert(a, "e", range(10))
        layout = self.holders(a, "e")
        holder = a if layout[0] == [a.peer_id()] else b
        other = b if holder is a else a
        self.assertEqual(holder.request("POST", "/collections/e/shards/0/snapshots?wait=false")[0], 202)
        listed = self.wait_for("the snapshot taken with wait=false", lambda: holder.result("GET", "/collections/e/shards/0/snapshots"))
        name = listed[0]["name"]
        self.assertRegex(name, r"^e-shard-0-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.snapshot$")
        self.assertRegex(listed[0]["checksum"], "^[0-9a-f]{64}$")
        for method, path, status in (("GET", "/collections/e/shards/0/snapshots", 400), ("POST", "/collections/e/shards/0/snapshots", 400),
                                     ("GET", f"/collections/e/shards/0/snapshots/{name}", 400)):
            self.assertEqual(other.request(method, path)[0], status, f"{method} {path} on the peer without the shard")
        for path, status in (("/collections/e/shards/9/snapshots", 404), ("/collections/e/shards/x/snapshots", 400), ("/collections/nope/shards/0/snapshots", 404),
                             ("/collections/e/shards/0/snapshots/nope.snapshot", 404), ("/collections/e/shards/0/snapshots/..%2Fx.snapshot", 404)):
            status_got, body = holder.request("GET", path)
            self.assertEqual(status_got, status, f"GET {path}: {body}")
            self.assertIsInstance(body["status"]["error"], str)
        self.assertEqual(holder.request("DELETE", f"/collections/e/shards/0/snapshots/{name}?wait=false")[0], 202)
        self.wait_for("the snapshot deleted with wait=false", lambda: holder.result("GET", "/collections/e/shards/0/snapshots") == [])
        self.assertEqual(holder.request("DELETE", f"/collections/e/shards/0/snapshots/{name}")[0], 404)
        # Collection snapshots: wait=false answers, checksum refusals, 404s.
        self.assertEqual(holder.request("POST", "/collections/e/snapshots?wait=false")[0], 202)
        desc = self.wait_for("the collection snapshot", lambda: holder.result("GET", "/collections/e/snapshots"))[0]
        self.assertEqual(holder.request("POST", "/collections/nope/snapshots?wait=false")[0], 404)
        _, data = holder.request("GET", f"/collections/e/snapshots/{desc['name']}")
        self.store.blobs["coll"] = data
        status, body = holder.request("PUT", "/collections/e/snapshots/recover", {"location": self.store.url("coll"), "checksum": "0" * 64})
        self.assertEqual(status, 400, body)
        self.assertIn("checksum mismatch", body["status"]["error"])
        self.assertEqual(holder.request("PUT", "/collections/e/snapshots/recover", {"location": self.store.url("coll"), "priority": "bogus"})[0], 400)
        self.assertIs(holder.result("PUT", "/collections/e/snapshots/recover", {"location": self.store.url("coll"), "checksum": desc["checksum"], "priority": "snapshot"}), True)
        self.assertEqual(holder.request("DELETE", f"/collections/e/snapshots/{desc['name']}?wait=false")[0], 202)
        self.wait_for("the collection snapshot deleted", lambda: holder.result("GET", "/collections/e/snapshots") == [])
        self.assertEqual(holder.request("GET", f"/collections/e/snapshots/{desc['name']}")[0], 404)
        self.assertEqual(a.count("e"), 10)

    def test_priorities_with_two_replicas(self):
        a, b = self.cluster(2)
        a.result("PUT", "/collections/r", {"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 1, "replication_factor": 2})
        self.upsert(a, "r", range(20))
        desc, data = self.snapshot(a, "r", 0)
        self.store.blobs["r"] = data
        path = "/collections/r/shards/0/snapshots/recover"

        def counts():
            return self.local_counts(a, "r")[0], self.local_counts(b, "r")[0]

        self.upsert(a, "r", range(20, 30))
        # replica (the default): the other Active replica stays the source of truth.
        self.assertIs(a.result("PUT", path, {"location": self.store.url("r")}), True)
        self.assertEqual(counts(), (30, 30))
        # no_sync: only this replica takes the snapshot.
        self.assertIs(a.result("PUT", path, {"location": self.store.url("r"), "priority": "no_sync"}), True)
        self.assertEqual(counts(), (20, 30))
        # snapshot: every replica takes it.
        self.assertIs(b.result("PUT", path, {"location": self.store.url("r"), "priority": "snapshot"}), True)
        self.assertEqual(counts(), (20, 20))
        self.assertEqual(b.count("r"), 20)


class ValidatorNegativeControls(unittest.TestCase):
    """The conformance validator must reject these; otherwise a broken server would pass."""

    @classmethod
    def setUpClass(cls):
        cls.conf = load("conformance")
        cls.specs = [cls.conf.Spec(cls.conf.OPENAPI_DIR / d) for d in cls.conf.DOCUMENTS]

    def errors(self, name, instance):
        return [e for spec in self.specs for e in spec.errors({"$ref": f"#/components/schemas/{name}"}, instance)]

    def test_valid_instances_pass(self):
        info = {"peer_id": 2**63 + 5, "shard_count": 1, "local_shards": [{"shard_id": 0, "points_count": 3, "state": "Active"}], "remote_shards": [], "shard_transfers": [{"shard_id": 0, "from": 1, "to": 2, "sync": False, "method": None}]}
        self.assertEqual(self.errors("CollectionClusterInfo", info), [])
        self.assertEqual(self.errors("ScrollResult", {"points": [], "next_page_offset": None}), [])

    def test_u64_as_float_fails(self):
        info = {"peer_id": 1.8446744073709552e19, "shard_count": 1, "local_shards": [], "remote_shards": [], "shard_transfers": []}
        errs = self.errors("CollectionClusterInfo", info)
        self.assertTrue(errs and all("$.peer_id" in e for e in errs), errs)
        self.assertTrue(self.errors("CountResult", {"count": 1.0}))

    def test_required_enum_and_closed_objects(self):
        self.assertTrue(self.errors("RaftInfo", {"term": 1, "commit": 1, "pending_operations": 0}))
        self.assertTrue(self.errors("LocalShardInfo", {"shard_id": 0, "points_count": 0, "state": "Bogus"}))
        self.assertTrue(self.errors("OptimizersStatus", {"error": "x", "extra": 1}))
        self.assertTrue(self.errors("ClusterStatus", {"status": "enabled"}))

    def test_nullable_only_alternative_means_null(self):
        # Qdrant writes Option<T> as anyOf: [$ref, {nullable: true}]; read naively, the second
        # branch would accept anything.
        self.assertTrue(self.errors("ScrollResult", {"points": [], "next_page_offset": {"not": "an id"}}))
        self.assertTrue(self.errors("RaftInfo", {"term": 1, "commit": 1, "pending_operations": 0, "is_voter": True, "role": "Boss"}))


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=1).result
    failed = len(result.failures) + len(result.errors)
    print(f"test_standin: {result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed or not result.wasSuccessful() else 0)
