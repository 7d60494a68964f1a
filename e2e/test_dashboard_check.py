#!/usr/bin/env python3
"""Tests of e2e/dashboard_check.py that need no Kubernetes.

- How expressions are found in a dashboard and how Grafana's variables are replaced, and
  which metrics and labels an expression names: plain unit tests.
- The whole check against a real Prometheus (Debian's `prometheus`, on 127.0.0.1) that scrapes
  a small fixture served by `python3 -m http.server` on 127.0.0.1: a dashboard that matches the
  fixture passes, and one deliberately wrong metric name, label, syntax or variable fails it.
- The repository's own dashboard: every expression evaluates in that Prometheus, and every
  metric it names is one the operator registers in src/ (the real scrape is e2e/68-prometheus.sh).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

E2E = Path(__file__).resolve().parent
REPO = E2E.parent
sys.path.insert(0, str(E2E))
import dashboard_check as dc  # noqa: E402

DASHBOARD = REPO / "deploy" / "monitoring" / "grafana-dashboard.json"

FIXTURE_METRICS = """\
# HELP fixture_requests_total Requests.
# TYPE fixture_requests_total counter
fixture_requests_total{code="200",pod="p-0"} 3
fixture_requests_total{code="500",pod="p-0"} 1
# HELP fixture_duration_seconds Latency.
# TYPE fixture_duration_seconds histogram
fixture_duration_seconds_bucket{le="0.1"} 1
fixture_duration_seconds_bucket{le="+Inf"} 2
fixture_duration_seconds_sum 0.3
fixture_duration_seconds_count 2
# HELP fixture_leader 1 while leading.
# TYPE fixture_leader gauge
fixture_leader{pod="p-0"} 1
"""


def target(expr, ref="A"):
    return {"refId": ref, "expr": expr, "datasource": {"type": "prometheus", "uid": "${datasource}"}}


def fixture_dashboard():
    """A dashboard that reads only what FIXTURE_METRICS exports, with the shapes the check
    must find: a top-level panel, a collapsed row's nested panel, and query variables."""
    return {
        "panels": [
            {"id": 1, "title": "rate", "type": "timeseries", "targets": [
                target('sum by (code) (rate(fixture_requests_total{namespace=~"$namespace", pod=~"${pod}"}[$__rate_interval]))'),
                target('histogram_quantile(0.99, sum by (le) (rate(fixture_duration_seconds_bucket{namespace=~"[[namespace]]"}[$__rate_interval])))', "B"),
            ]},
            {"id": 2, "title": "row", "type": "row", "collapsed": True, "panels": [
                {"id": 3, "title": "leader", "type": "stat", "targets": [
                    target('max by (pod) (fixture_leader{namespace=~"${namespace:regex}"}) == 1'),
                ]},
            ]},
        ],
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "namespace", "type": "query", "query": {"query": "label_values(fixture_leader, namespace)", "refId": "ns"}},
            {"name": "pod", "type": "query", "query": 'label_values(fixture_leader{namespace=~"$namespace"}, pod)'},
        ]},
    }


def registered_metrics():
    """Metric names the operator registers: the first string of every collector constructor
    in src/ (`Opts::new("name", ...)`, `HistogramOpts::new(...)`, `IntGauge::new(...)`...)."""
    names = set()
    for path in (REPO / "src").rglob("*.rs"):
        names.update(re.findall(r'(?:Opts|IntGauge|IntCounter|Gauge|Counter)::new\(\s*"([a-z_:][a-z0-9_:]*)"', path.read_text()))
    return names


class Extraction(unittest.TestCase):
    def test_finds_targets_nested_panels_and_variable_queries(self):
        found = dc.extract(fixture_dashboard())
        self.assertEqual([(w, l) for (w, _, l) in found], [
            ("panel 'rate' target A", None),
            ("panel 'rate' target B", None),
            ("panel 'row' > panel 'leader' target A", None),
            ("variable 'namespace'", "namespace"),
            ("variable 'pod'", "pod"),
        ])
        self.assertEqual(found[3][1], "fixture_leader")
        self.assertEqual(found[4][1], 'fixture_leader{namespace=~"$namespace"}')

    def test_hidden_targets_and_other_datasources_are_not_promql(self):
        d = {"panels": [{"id": 1, "targets": [
            dict(target("broken(("), hide=True),
            {"refId": "B", "datasource": {"type": "loki"}, "query": "{app=\"x\"}"},
        ]}]}
        self.assertEqual(dc.extract(d), [])

    def test_a_prometheus_target_without_expr_or_an_unknown_variable_query_is_an_error(self):
        with self.assertRaises(dc.DashboardError):
            dc.extract({"panels": [{"id": 1, "targets": [{"refId": "A", "datasource": {"type": "prometheus"}}]}]})
        with self.assertRaises(dc.DashboardError):
            dc.extract({"templating": {"list": [{"name": "x", "type": "query", "query": "metrics(fixture_.*)"}]}})

    def test_query_result_and_single_argument_label_values(self):
        d = {"templating": {"list": [
            {"name": "a", "type": "query", "query": "query_result(topk(3, fixture_leader))"},
            {"name": "b", "type": "query", "query": "label_values(pod)"},
            {"name": "c", "type": "custom", "query": "x,y"},
        ]}}
        self.assertEqual(dc.extract(d), [
            ("variable 'a'", "topk(3, fixture_leader)", None),
            ("variable 'b'", '{__name__=~".+"}', "pod"),
        ])


class Substitution(unittest.TestCase):
    def test_every_form_of_a_variable_and_the_builtins(self):
        got = dc.substitute('rate(m{a=~"$ns", b=~"${ns}", c=~"${ns:regex}", d=~"[[ns]]"}[$__rate_interval]) offset $__interval', {"ns"})
        self.assertEqual(got, 'rate(m{a=~".*", b=~".*", c=~".*", d=~".*"}[1m]) offset 1m')
        self.assertEqual(dc.substitute("increase(m[$__range])", set()), "increase(m[5m])")

    def test_regex_backreferences_are_not_variables(self):
        expr = 'label_replace(m, "dst", "$1", "src", "(.*)")'
        self.assertEqual(dc.substitute(expr, set()), expr)

    def test_an_unknown_variable_is_an_error(self):
        with self.assertRaisesRegex(dc.DashboardError, r"\$nope"):
            dc.substitute('m{a=~"$nope"}', {"ns"})


class Selectors(unittest.TestCase):
    def names(self, expr):
        return dc.selectors(expr)

    def test_functions_aggregations_and_label_lists_are_not_metrics(self):
        self.assertEqual(self.names('histogram_quantile(0.99, sum by (le, pod) (rate(a_bucket{namespace=~".*"}[1m])))'),
                         [("a_bucket", [("namespace", "=~", ".*")])])

    def test_binary_operators_modifiers_and_numbers(self):
        self.assertEqual([n for n, _ in self.names("sum(x) / on (pod) group_left(code) y offset 5m > bool 1e3")], ["x", "y"])
        self.assertEqual([n for n, _ in self.names("a - 1 and b unless c or 0x1f < .5")], ["a", "b", "c"])
        self.assertEqual([n for n, _ in self.names("rate(foo[5m:1m]) @ start()")], ["foo"])

    def test_strings_are_skipped_even_with_commas_and_braces(self):
        self.assertEqual(self.names('count(up{job=~"a,b}", x!="y"} == 1) or vector(0)'),
                         [("up", [("job", "=~", "a,b}"), ("x", "!=", "y")])])
        self.assertEqual([n for n, _ in self.names('label_replace(z, "dst", "$1", "src", "(.*)")')], ["z"])

    def test_a_name_given_as_a_matcher(self):
        self.assertEqual(self.names('{__name__="m", job="j"}'), [("m", [("job", "=", "j")])])


class RepositoryDashboard(unittest.TestCase):
    def test_every_expression_substitutes_and_names_a_registered_metric(self):
        d = json.loads(DASHBOARD.read_text())
        self.assertEqual(d.get("schemaVersion"), 39)
        kinds = {v["name"]: v["type"] for v in d["templating"]["list"]}
        self.assertEqual(kinds.get("datasource"), "datasource")
        self.assertEqual(kinds.get("namespace"), "query")
        found = dc.extract(d)
        self.assertGreaterEqual(len(found), 20)
        known = registered_metrics()
        self.assertIn("operator_leader", known)
        self.assertIn("qdrant_client_requests_total", known)
        # The scrape's own `up`, and a histogram's series under its family's name.
        allowed = known | {"up"} | {f"{n}_{s}" for n in known for s in ("bucket", "sum", "count")}
        used = set()
        for where, expr, _ in found:
            expr = dc.substitute(expr, dc.variables(d))
            self.assertNotIn("$", expr.replace('"$1"', ""), where)
            names = [n for n, _ in dc.selectors(expr)]
            self.assertTrue(names, f"{where}: {expr}")
            used.update(names)
        self.assertEqual(sorted(used - allowed), [], "names the operator does not register")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AgainstPrometheus(unittest.TestCase):
    """One Prometheus and one file server for every test here, both on 127.0.0.1."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("prometheus"):
            raise AssertionError("prometheus is not installed (e2e/setup.sh installs it)")
        cls.dir = Path(tempfile.mkdtemp(prefix="dashboard-check-"))
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        (cls.dir / "www").mkdir()
        (cls.dir / "www" / "metrics").write_text(FIXTURE_METRICS)
        web, prom = free_port(), free_port()
        cls.procs = []
        cls.start([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(cls.dir / "www"), str(web)], "http.log")
        (cls.dir / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: fixture\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{web}'], labels: {{namespace: ops}}}}]\n")
        cls.start(["prometheus", f"--config.file={cls.dir / 'prometheus.yml'}", f"--storage.tsdb.path={cls.dir / 'data'}",
                   f"--web.listen-address=127.0.0.1:{prom}"], "prometheus.log")
        cls.url = f"http://127.0.0.1:{prom}"
        cls.prom = dc.Prometheus(cls.url)

        def scraped():
            try:
                urllib.request.urlopen(f"{cls.url}/-/ready", timeout=1).close()
            except OSError:
                return False
            return cls.prom.has_series("fixture_requests_total") and cls.prom.has_series("fixture_leader")
        deadline = time.monotonic() + 60
        while not scraped():
            if time.monotonic() > deadline:
                log = (cls.dir / "prometheus.log").read_text()[-2000:]
                raise AssertionError(f"Prometheus did not scrape the fixture within 60 s:\n{log}")
            time.sleep(0.2)

    @classmethod
    def start(cls, argv, log):
        with open(cls.dir / log, "w") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        cls.addClassCleanup(cls.stop, p)
        cls.procs.append(p)

    @staticmethod
    def stop(p):
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def check(self, dashboard, syntax_only=False):
        failures, _, _ = dc.check(self.prom, dashboard, syntax_only)
        return failures

    def mutated(self, old, new):
        """The fixture dashboard with one deliberate mistake: the first `old` in any of its
        strings becomes `new`."""
        done = []

        def walk(v):
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            if isinstance(v, list):
                return [walk(x) for x in v]
            if isinstance(v, str) and old in v and not done:
                done.append(v)
                return v.replace(old, new, 1)
            return v
        d = walk(fixture_dashboard())
        self.assertTrue(done, f"{old!r} is not in the fixture dashboard")
        return d

    def test_a_dashboard_that_matches_the_scrape_passes(self):
        failures, n, metrics = dc.check(self.prom, fixture_dashboard())
        self.assertEqual(failures, [])
        self.assertEqual(n, 5)
        self.assertEqual(metrics, ["fixture_duration_seconds_bucket", "fixture_leader", "fixture_requests_total"])

    def test_a_wrong_metric_name_fails(self):
        failures = self.check(self.mutated("fixture_requests_total{", "fixture_request_total{"))
        self.assertEqual(failures, ["metric 'fixture_request_total' has no series in Prometheus (not exported, or misspelt)"])

    def test_a_histogram_read_without_its_bucket_suffix_fails(self):
        failures = self.check(self.mutated("fixture_duration_seconds_bucket", "fixture_duration_seconds"))
        self.assertEqual(failures, ["metric 'fixture_duration_seconds' has no series in Prometheus (not exported, or misspelt)"])

    def test_a_wrong_label_fails(self):
        failures = self.check(self.mutated('pod=~"${pod}"', 'pdo=~"${pod}"'))
        self.assertEqual(failures, ["metric 'fixture_requests_total' has no series with a label 'pdo'"])

    def test_a_syntax_error_fails(self):
        failures = self.check(self.mutated("[$__rate_interval]))", "[$__rate_interval])"))
        self.assertEqual(len(failures), 1, failures)
        self.assertRegex(failures[0], r"^panel 'rate' target A: Prometheus refuses .*bad_data")

    def test_a_variable_listing_a_missing_label_fails(self):
        failures = self.check(self.mutated('"$namespace"}, pod)', '"$namespace"}, node)'))
        self.assertEqual(failures, [
            "variable 'pod': no series of 'fixture_leader{namespace=~\".*\"}' has a label 'node' to list",
        ])

    def test_the_command_line_exits_1_on_a_failure_and_0_otherwise(self):
        for dashboard, status in ((fixture_dashboard(), 0), (self.mutated("fixture_leader{", "fixture_lead{"), 1)):
            path = self.dir / "d.json"
            path.write_text(json.dumps(dashboard))
            r = subprocess.run([sys.executable, str(E2E / "dashboard_check.py"), "--prometheus", self.url, str(path)], capture_output=True, text=True)
            self.assertEqual(r.returncode, status, r.stdout + r.stderr)
            if status:
                self.assertIn("FAIL: metric 'fixture_lead' has no series", r.stdout)

    def test_the_repository_dashboard_evaluates(self):
        failures = self.check(json.loads(DASHBOARD.read_text()), syntax_only=True)
        self.assertEqual(failures, [])

    def test_the_repository_dashboard_fails_the_full_check_without_the_operator(self):
        # The fixture exports none of the operator's metrics: the check must say so, not pass.
        failures = self.check(json.loads(DASHBOARD.read_text()))
        self.assertIn("metric 'operator_leader' has no series in Prometheus (not exported, or misspelt)", failures)


if __name__ == "__main__":
    unittest.main(verbosity=2)
