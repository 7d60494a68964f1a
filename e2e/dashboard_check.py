#!/usr/bin/env python3
"""Checks every PromQL expression of a Grafana dashboard against a running Prometheus.

    dashboard_check.py --prometheus URL DASHBOARD.json [--syntax-only]

Every expression is taken from the dashboard (panel targets, panels nested in rows, and the
queries of template variables), with Grafana's variables substituted (see `substitute`). Then,
for each one:
- Prometheus must evaluate it without error (`/api/v1/query`): a parse error, an unknown
  function or a type error fails;
- every metric it names must have at least one series in Prometheus, so a misspelt or
  never-exported metric fails instead of drawing an empty panel;
- every label a selector matches on must exist on at least one series of that metric, so a
  misspelt label fails too;
- a `label_values(EXPR, LABEL)` variable must find at least one value of LABEL.
`--syntax-only` keeps the first check alone, for a Prometheus that scrapes nothing of ours.

The operator exports every series the dashboard reads from start-up or from its first look at
a cluster, counters at zero included (a family with no sample at all would not appear in the
scrape, so it could be neither drawn nor checked). Point the check at a Prometheus that scrapes
the operator while it manages at least one QdrantCluster (e2e/68-prometheus.sh does).

Standard library only. Exit status 0 when every check passes, 1 otherwise.
"""

import argparse
import json
import re
import sys
import urllib.parse
import urllib.request

# Grafana's built-in interval variables, and what the check puts in their place.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "5m",
    "__interval_ms": "60000",
    "__range_ms": "300000",
    "__range_s": "300",
}
# Any other variable stands for "every value" here; the dashboard uses them only in `=~`.
ALL = ".*"

# PromQL words that are not metric names where an identifier may stand. Aggregations are
# among them: in `sum by (x) (...)` no parenthesis follows the name.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "atan2", "inf", "nan", "start", "end",
            "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
            "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
# These are followed by a parenthesised list of label names.
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# A number or a duration (`0x1f`, `1.5e3`, `5m`, `1h30m`).
NUMBER = re.compile(r"(?:0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)[a-zA-Z0-9]*")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`)\s*,?')
# `label_values(EXPR, LABEL)`, `label_values(LABEL)`, `query_result(EXPR)`.
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*(?:,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*)?\)\s*$", re.S)
QUERY_RESULT = re.compile(r"^\s*query_result\(\s*(.*)\s*\)\s*$", re.S)


class DashboardError(Exception):
    """The dashboard holds something the check cannot read: a failure, never a skip."""


def extract(dashboard):
    """Every PromQL expression in the dashboard, as (where, expression, label) triples.

    `label` is the label a `label_values` variable lists, else None. Panels nested in rows
    (collapsed rows keep theirs in `panels`) are included.
    """
    found = []

    def walk(panels, path):
        for p in panels or []:
            where = f"{path}panel {p.get('title') or p.get('id')!r}"
            for t in p.get("targets") or []:
                expr = t.get("expr")
                if t.get("hide"):
                    continue
                if expr is None:
                    # A target without `expr` queries something else (or nothing): it is not
                    # PromQL, but a Prometheus target without one is a broken panel.
                    if (t.get("datasource") or p.get("datasource") or {}).get("type") == "prometheus":
                        raise DashboardError(f"{where}: target {t.get('refId')} has no expr")
                    continue
                found.append((f"{where} target {t.get('refId')}", expr, None))
            walk(p.get("panels"), f"{where} > ")

    walk(dashboard.get("panels"), "")
    for v in (dashboard.get("templating") or {}).get("list") or []:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if not q:
            raise DashboardError(f"variable {v.get('name')!r}: query variable without a query")
        where = f"variable {v.get('name')!r}"
        m = LABEL_VALUES.match(q)
        if m:
            expr, label = m.group(1), m.group(2)
            if label is None:  # label_values(LABEL): every series
                expr, label = "{__name__=~\".+\"}", expr
            found.append((where, expr, label))
            continue
        m = QUERY_RESULT.match(q)
        if m:
            found.append((where, m.group(1), None))
            continue
        raise DashboardError(f"{where}: query {q!r} is neither label_values(...) nor query_result(...)")
    return found


def variables(dashboard):
    """The dashboard's own variables (every one becomes `.*` here), datasources excluded."""
    return {v["name"] for v in (dashboard.get("templating") or {}).get("list") or []
            if v.get("type") != "datasource"}


def substitute(expr, names):
    """Replaces `$name`, `${name}`, `${name:format}` and `[[name]]` of Grafana's built-ins and
    of `names`. An unknown variable is an error: it would reach Prometheus as text."""
    def value(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in names:
            return ALL
        raise DashboardError(f"unknown variable ${name} in {expr!r}")
    return re.sub(r"\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?\}|\[\[([a-zA-Z_][a-zA-Z0-9_]*)\]\]|\$([a-zA-Z_][a-zA-Z0-9_]*)", value, expr)


def _skip_string(s, i):
    quote = s[i]
    i += 1
    while i < len(s) and s[i] != quote:
        i += 2 if s[i] == "\\" and quote != "`" else 1
    return i + 1


def _closing(s, i, open_, close):
    """Index just past the bracket that closes the one at `i`, strings skipped."""
    depth = 0
    while i < len(s):
        c = s[i]
        if c in "\"'`":
            i = _skip_string(s, i)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise DashboardError(f"unbalanced {open_!r} in {s!r}")


def matchers(body):
    """The (label, op, value) matchers of a selector's braces."""
    out, i = [], 0
    while i < len(body):
        m = MATCHER.match(body, i)
        if not m:
            if body[i:].strip():
                raise DashboardError(f"cannot read label matchers {body!r}")
            break
        value = m.group(3)[1:-1]
        out.append((m.group(1), m.group(2), value))
        i = m.end()
    return out


def selectors(expr):
    """The vector selectors of an expression: (metric name, [(label, op, value)]).

    A small scanner, not a parser: strings and `[...]` ranges are skipped, an identifier
    followed by `(` is a function or aggregation, the label lists after `by`, `without`,
    `on`, `ignoring` and `group_*` are skipped, and keywords and numbers are not names.
    `{__name__="m", ...}` names `m`. Prometheus itself judges the syntax.
    """
    out, i, n = [], 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
        elif c == "[":
            i = _closing(expr, i, "[", "]")
        elif c == "{":
            end = _closing(expr, i, "{", "}")
            ms = matchers(expr[i + 1:end - 1])
            name = next((v for (l, op, v) in ms if l == "__name__" and op == "="), None)
            if name:
                out.append((name, [m for m in ms if m[0] != "__name__"]))
            i = end
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            i = NUMBER.match(expr, i).end()
        elif IDENT.match(c):
            m = IDENT.match(expr, i)
            word, j = m.group(0), m.end()
            while j < n and expr[j].isspace():
                j += 1
            if word.lower() in LABEL_LISTS:
                i = _closing(expr, j, "(", ")") if j < n and expr[j] == "(" else j
            elif word.lower() in KEYWORDS or (j < n and expr[j] == "("):
                i = j
            else:
                labels = []
                if j < n and expr[j] == "{":
                    end = _closing(expr, j, "{", "}")
                    labels = matchers(expr[j + 1:end - 1])
                    j = end
                out.append((word, labels))
                i = j
        else:
            i += 1
    return out


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def query(self, expr):
        """(ok, result or error message) of an instant query."""
        data = urllib.parse.urlencode({"query": expr}).encode()
        req = urllib.request.Request(f"{self.url}/api/v1/query", data=data)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:  # 400/422: the error is in the JSON body
            try:
                body = json.load(e)
            except ValueError:
                return False, f"HTTP {e.code}"
        if body.get("status") != "success":
            return False, f"{body.get('errorType')}: {body.get('error')}"
        return True, body["data"]["result"]

    def has_series(self, selector):
        ok, result = self.query(f"count({selector})")
        return ok and bool(result)


def check(prom, dashboard, syntax_only=False):
    """Returns (failures, number of expressions, metric names checked)."""
    names = variables(dashboard)
    failures, metrics = [], {}
    exprs = extract(dashboard)
    for where, raw, label in exprs:
        try:
            expr = substitute(raw, names)
            sels = selectors(expr)
        except DashboardError as e:
            failures.append(f"{where}: {e}")
            continue
        ok, result = prom.query(expr)
        if not ok:
            failures.append(f"{where}: Prometheus refuses {expr!r}: {result}")
            continue
        if syntax_only:
            continue
        if not sels:
            failures.append(f"{where}: {expr!r} names no metric")
        for name, ms in sels:
            metrics.setdefault(name, set()).update(l for (l, _, _) in ms)
        if label:
            ok, values = prom.query(f"count by ({label}) ({expr})")
            if not ok or not any(r["metric"].get(label) for r in values):
                failures.append(f"{where}: no series of {expr!r} has a label {label!r} to list")
    for name in sorted(metrics):
        if not prom.has_series(f'{{__name__="{name}"}}'):
            failures.append(f"metric {name!r} has no series in Prometheus (not exported, or misspelt)")
            continue
        for label in sorted(metrics[name]):
            if not prom.has_series(f'{{__name__="{name}", {label}!=""}}'):
                failures.append(f"metric {name!r} has no series with a label {label!r}")
    return failures, len(exprs), sorted(metrics)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--syntax-only", action="store_true", help="only check that Prometheus evaluates every expression")
    ap.add_argument("dashboard")
    args = ap.parse_args()
    with open(args.dashboard) as f:
        dashboard = json.load(f)
    try:
        failures, n, metrics = check(Prometheus(args.prometheus), dashboard, args.syntax_only)
    except DashboardError as e:
        failures, n, metrics = [str(e)], 0, []
    for f in failures:
        print(f"FAIL: {f}")
    if failures:
        print(f"{len(failures)} problem(s) in {args.dashboard}")
        return 1
    what = "evaluate" if args.syntax_only else f"evaluate, and their {len(metrics)} metrics have series with every label used"
    print(f"all {n} expressions of {args.dashboard} {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
