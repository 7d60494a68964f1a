#!/usr/bin/env bash
# A real Prometheus (Debian's package) on 127.0.0.1 scrapes every operator replica with the
# alert rules of deploy/monitoring/rules.yaml loaded. It must see exactly one leader, count two
# forced failovers in operator_lease_transitions, keep QdrantOperatorNoLeader quiet while a
# leader exists, evaluate every expression of the Grafana dashboard against what it scraped
# (e2e/dashboard_check.py), and fire QdrantOperatorNoLeader once the Deployment is scaled to 0.
# Local control plane only: the targets come from the runner (on a real cluster the PodMonitor
# does this), so elsewhere the suite reports itself skipped.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
source "$(dirname "$0")/failover-lib.sh"
[ -d "$E2E_STATE/pods" ] || { echo "  no local runner state: this suite runs on the local control plane only" >&2; exit 77; }
command -v prometheus >/dev/null || fail "prometheus is not installed (e2e/setup.sh installs it)"

work=$(mktemp -d)
prom_pid="" targets_pid=""
replicas=$(kc get deploy qdrant-operator -n "$OPERATOR_NS" -o jsonpath='{.spec.replicas}')
cleanup() {
  [ -n "$targets_pid" ] && kill "$targets_pid" 2>/dev/null
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  rm -rf "$work"
  kc scale deploy qdrant-operator -n "$OPERATOR_NS" --replicas="$replicas" >/dev/null
  kc delete qcbackup dash -n "$TEST_NS" --ignore-not-found >/dev/null 2>&1 || true
  delete_qcs prom
  wait_for_operator_ready 120
}
trap cleanup EXIT
wait_for_operator_ready 120

# Keep a file_sd target list in step with the runner's Pods, as the PodMonitor would.
write_targets() {
  python3 - "$E2E_STATE/pods" "$OPERATOR_NS" >"$work/targets.tmp" <<'PY'
import json, os, sys
d, ns = sys.argv[1], sys.argv[2]
out = []
for f in sorted(os.listdir(d)):
    if f.endswith(".port"):
        port = open(os.path.join(d, f)).read().strip()
        out.append({"targets": [f"127.0.0.1:{port}"], "labels": {"pod": f[:-5], "namespace": ns}})
print(json.dumps(out))
PY
  mv "$work/targets.tmp" "$work/targets.json"
}
write_targets
( while :; do write_targets; sleep 0.5; done ) &
targets_pid=$!

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [$REPO_ROOT/deploy/monitoring/rules.yaml]
scrape_configs:
  - job_name: qdrant-operator
    file_sd_configs: [{files: [$work/targets.json], refresh_interval: 1s}]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$port" >"$E2E_STATE/logs/prometheus.log" 2>&1 &
prom_pid=$!
P="http://127.0.0.1:$port"
wait_until 30 "Prometheus to be ready" curl -sf "$P/-/ready"

# query EXPR: the single value of an instant query, or nothing.
query() {
  curl -sf "$P/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")'
}
alert_state() { # NAME: firing, pending, or nothing
  curl -sf "$P/api/v1/alerts" | python3 -c '
import json, sys
states = [a["state"] for a in json.load(sys.stdin)["data"]["alerts"] if a["labels"]["alertname"] == sys.argv[1]]
print("firing" if "firing" in states else (states[0] if states else ""))' "$1"
}
query_is() { [ "$(query "$1")" = "$2" ]; }
has_series() { [ -n "$(query "$1")" ]; }

wait_until 30 "Prometheus to see sum(operator_leader) == 1 over $replicas replicas" query_is 'sum(operator_leader)' 1
wait_until 30 "Prometheus to scrape every replica" query_is 'count(up{job="qdrant-operator"} == 1)' "$replicas"
info "Prometheus sees one leader among $replicas replicas"

apply_qc prom 1
wait_for_qc_status prom 30 Running Healthy
before=$(query 'max(operator_lease_transitions)')
[ -n "$before" ] || fail "no operator_lease_transitions in Prometheus"
ld=$(lease_duration_seconds)
failover force $((ld + 2)) prom >/dev/null
failover force $((ld + 2)) prom >/dev/null
want=$((before + 2))
wait_until 10 "Prometheus to count two more Lease transitions ($before -> $want)" query_is 'max(operator_lease_transitions)' "$want"
info "two forced failovers: operator_lease_transitions $before -> $want in Prometheus"

# A forced failover leaves ~15 s without a leader, so NoLeader may be pending meanwhile; its
# `for: 1m` keeps it from firing, and it must clear once the new leader is scraped.
[ -z "$(query 'max_over_time(ALERTS{alertname="QdrantOperatorNoLeader",alertstate="firing"}[10m])')" ] \
  || fail "QdrantOperatorNoLeader fired across a failover"
no_leader_inactive() { [ -z "$(alert_state QdrantOperatorNoLeader)" ]; }
wait_until 10 "QdrantOperatorNoLeader to be inactive with a leader present" no_leader_inactive
info "QdrantOperatorNoLeader quiet with a leader present (never fired across two failovers)"

# The dashboard, against this real scrape. Only the leader exports the per-cluster series: wait
# until the leader after the failovers has judged prom healthy, which it exports in the same
# scrape as the cluster's peers and replicas, and its Qdrant client's and reconcile series.
leader=$(get_leader_pod) || fail "no single operator leader after the failovers"
wait_until 60 "Prometheus to scrape $leader's qdrant_operator_cluster_healthy == 1 for QdrantCluster prom" \
  has_series "qdrant_operator_cluster_healthy{cluster_name=\"prom\",pod=\"$leader\"} == 1"
# A backup resource, for the Backups row: its series exist from the leader's first look at it
# (no S3 is needed for that, and none is asked: no backup is due).
kc apply -n "$TEST_NS" -f - >/dev/null <<EOF
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCollectionBackup
metadata: {name: dash}
spec:
  cluster: prom
  collectionName: c
  snapshots: {s3EndpointURL: "http://127.0.0.1:9", s3CredentialsSecretName: none, bucketName: none}
EOF
wait_until 60 "Prometheus to scrape the backup resource's series from $leader" \
  has_series "qdrant_operator_backup_duration_seconds_count{backup_name=\"dash\",pod=\"$leader\"}"
python3 "$E2E_DIR/dashboard_check.py" --prometheus "$P" "$REPO_ROOT/deploy/monitoring/grafana-dashboard.json" | sed 's/^/  /'
info "every expression of the Grafana dashboard evaluates against the scrape, with series for every metric and label"

kc scale deploy qdrant-operator -n "$OPERATOR_NS" --replicas=0 >/dev/null
no_leader_firing() { [ "$(alert_state QdrantOperatorNoLeader)" = firing ]; }
# The rule's own `for: 1m`, plus scrape and evaluation.
wait_until 90 "QdrantOperatorNoLeader to fire with the replicas gone" no_leader_firing
info "QdrantOperatorNoLeader firing with the Deployment at 0"
