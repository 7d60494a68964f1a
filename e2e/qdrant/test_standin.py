#!/usr/bin/env python3
"""Self-tests of the stand-in's parts the conformance run does not reach, and negative
controls proving the conformance validator rejects what it must.

    python3 e2e/qdrant/test_standin.py

Standard library unittest; the validator tests need `jsonschema` and the OpenAPI documents,
like conformance.py, and fail (never skip) without them.
"""

import http.client
import importlib.util
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

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
