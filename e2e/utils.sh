# Helpers sourced by every e2e suite. They work against the local control plane and against
# any real cluster (KUBECONFIG=...). Leadership is read from metrics first, then the Lease,
# then the Pod annotation, and never from logs. Every wait fails loudly on timeout.
# shellcheck shell=bash

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E_DIR/.." && pwd)
E2E_STATE=${E2E_STATE:-$REPO_ROOT/.e2e}
export KUBECONFIG=${KUBECONFIG:-$E2E_STATE/kubeconfig}
OPERATOR_NS=${OPERATOR_NS:-qdrant-operator}
LEASE_NAME=${LEASE_NAME:-qdrant-operator}
TEST_NS=${TEST_NS:-default}

# The local control plane ships its own kubectl; elsewhere use the one on PATH.
if [ -z "${KUBECTL:-}" ]; then
  if [ -f "$E2E_STATE/bin-dir" ] && [ -x "$(cat "$E2E_STATE/bin-dir")/kubectl" ]; then
    KUBECTL="$(cat "$E2E_STATE/bin-dir")/kubectl"
  else
    KUBECTL=kubectl
  fi
fi

kc() { "$KUBECTL" "$@"; }

info() { echo "  [$(date +%H:%M:%S)] $*" >&2; }
fail() { echo "  FAIL: $*" >&2; exit 1; }

now_ms() { date +%s%3N; }

# wait_until TIMEOUT_SECONDS DESCRIPTION CMD...: polls CMD every 100 ms; fails on timeout.
wait_until() {
  local timeout=$1 what=$2; shift 2
  local deadline=$(( $(now_ms) + timeout * 1000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "timed out after ${timeout}s waiting for: $what"
    sleep 0.1
  done
}

# --- operator Pods and their metrics ---

# Names of the operator's Pods that are not being deleted.
operator_pods() {
  kc get pods -n "$OPERATOR_NS" -l app=qdrant-operator \
    -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.metadata.deletionTimestamp}{"\n"}{end}' | awk 'NF == 1 { print $1 }'
}

# operator_metrics POD: that Pod's /metrics text. Locally, from the port the runner recorded;
# on a real cluster, through the API server's Pod proxy.
operator_metrics() {
  local pod=$1
  if [ -f "$E2E_STATE/pods/$pod.port" ]; then
    curl -sf --max-time 2 "http://127.0.0.1:$(cat "$E2E_STATE/pods/$pod.port")/metrics"
  else
    kc get --raw "/api/v1/namespaces/$OPERATOR_NS/pods/$pod:8080/proxy/metrics" 2>/dev/null
  fi
}

# metric_value POD SERIES: the value of one exact series (name with labels), or nothing.
metric_value() {
  operator_metrics "$1" | awk -v s="$2" '$1 == s { print $2; exit }'
}

lease_holder() {
  kc get lease "$LEASE_NAME" -n "$OPERATOR_NS" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null
}

lease_transitions() {
  kc get lease "$LEASE_NAME" -n "$OPERATOR_NS" -o jsonpath='{.spec.leaseTransitions}' 2>/dev/null
}

leader_annotation() {
  kc get pod "$1" -n "$OPERATOR_NS" -o jsonpath='{.metadata.annotations.qdrant\.operator/leader}' 2>/dev/null
}

# check_lease_leader POD [NAMESPACE] [LEASE]: true when the Lease names POD as holder.
check_lease_leader() {
  local pod=$1 ns=${2:-$OPERATOR_NS} lease=${3:-$LEASE_NAME}
  [ "$(kc get lease "$lease" -n "$ns" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)" = "$pod" ]
}

# is_operator_leader POD: metrics first; the Lease if the metrics cannot be read; the
# annotation if neither can.
is_operator_leader() {
  local pod=$1 v holder
  v=$(metric_value "$pod" "operator_leader{pod=\"$pod\"}")
  if [ -n "$v" ]; then [ "$v" = "1" ]; return; fi
  holder=$(lease_holder)
  if [ -n "$holder" ]; then [ "$holder" = "$pod" ]; return; fi
  [ "$(leader_annotation "$pod")" = "true" ]
}

# get_leader_pod: the one Pod whose operator_leader is 1; else the Lease holder; else the one
# Pod annotated "true". Fails when no single leader can be named.
get_leader_pod() {
  local pods p leaders=() holder annotated=()
  pods=$(operator_pods)
  for p in $pods; do
    [ "$(metric_value "$p" "operator_leader{pod=\"$p\"}")" = "1" ] && leaders+=("$p")
  done
  if [ ${#leaders[@]} -eq 1 ]; then echo "${leaders[0]}"; return 0; fi
  holder=$(lease_holder)
  if [ -n "$holder" ] && grep -qx "$holder" <<<"$pods"; then echo "$holder"; return 0; fi
  for p in $pods; do
    [ "$(leader_annotation "$p")" = "true" ] && annotated+=("$p")
  done
  if [ ${#annotated[@]} -eq 1 ]; then echo "${annotated[0]}"; return 0; fi
  return 1
}

# wait_for_operator_leader POD [TIMEOUT]: waits until POD leads by is_operator_leader.
wait_for_operator_leader() {
  wait_until "${2:-30}" "$1 to be the operator leader" is_operator_leader "$1"
}

# signals_agree: the Lease, every Pod's gauge and every Pod's annotation name the same single
# leader, and every Pod reports the same operator_lease_transitions.
signals_agree() {
  local holder pods p v a t first_t=""
  holder=$(lease_holder)
  [ -n "$holder" ] || return 1
  pods=$(operator_pods)
  grep -qx "$holder" <<<"$pods" || return 1
  for p in $pods; do
    v=$(metric_value "$p" "operator_leader{pod=\"$p\"}")
    a=$(leader_annotation "$p")
    t=$(metric_value "$p" "operator_lease_transitions{lease=\"$LEASE_NAME\"}")
    if [ "$p" = "$holder" ]; then
      [ "$v" = "1" ] && [ "$a" = "true" ] || return 1
    else
      [ "$v" = "0" ] && [ "$a" = "false" ] || return 1
    fi
    [ -n "$t" ] || return 1
    [ -z "$first_t" ] && first_t=$t
    [ "$t" = "$first_t" ] || return 1
  done
  [ "$first_t" = "$(lease_transitions)" ]
}

# A different Pod holds the Lease than OLD, and it is one of the live operator Pods.
new_holder_other_than() {
  local h
  h=$(lease_holder)
  [ -n "$h" ] && [ "$h" != "$1" ] && operator_pods | grep -qx "$h"
}

# wait_for_operator_ready [TIMEOUT]: every operator Pod Ready and one leader.
wait_for_operator_ready() {
  wait_until "${1:-120}" "operator Deployment available" \
    kc -n "$OPERATOR_NS" rollout status deploy/qdrant-operator --timeout=1s
  wait_until "${1:-120}" "the leadership signals to agree" signals_agree
}

# --- QdrantClusters ---

qc_field() { kc get qc "$1" -n "${3:-$TEST_NS}" -o jsonpath="{$2}" 2>/dev/null; }

qc_status_is() { # NAME STATUS...
  local name=$1 s; shift
  s=$(qc_field "$name" .status.qdrantStatus)
  for want in "$@"; do [ "$s" = "$want" ] && return 0; done
  return 1
}

# wait_for_qc_status NAME TIMEOUT STATUS...
wait_for_qc_status() {
  local name=$1 timeout=$2; shift 2
  wait_until "$timeout" "QdrantCluster $name status in {$*}" qc_status_is "$name" "$@"
}

# qc_converged NAME: status describes the current generation, and readyReplicas == replicas.
qc_converged() {
  local name=$1 ns=${2:-$TEST_NS}
  local gen og want ready sts_replicas
  gen=$(qc_field "$name" .metadata.generation "$ns")
  og=$(qc_field "$name" .status.observedGeneration "$ns")
  want=$(qc_field "$name" .spec.replicas "$ns")
  ready=$(qc_field "$name" .status.readyReplicas "$ns")
  sts_replicas=$(kc get sts "$name" -n "$ns" -o jsonpath='{.spec.replicas}' 2>/dev/null)
  [ -n "$gen" ] && [ "$gen" = "$og" ] && [ "$ready" = "$want" ] && [ "$sts_replicas" = "$want" ] \
    && qc_status_is "$name" Running Healthy
}

exists() { kc get "$@" >/dev/null 2>&1; }
absent() { ! exists "$@"; }

# owned_by_qc KIND NAME QC: the object has a controller owner reference to the QdrantCluster.
owned_by_qc() {
  local uid owner
  uid=$(qc_field "$3" .metadata.uid)
  owner=$(kc get "$1" "$2" -n "$TEST_NS" -o jsonpath='{.metadata.ownerReferences[?(@.controller==true)].uid}' 2>/dev/null)
  [ -n "$uid" ] && [ "$uid" = "$owner" ]
}

resource_version() { kc get "$1" "$2" -n "${3:-$TEST_NS}" -o jsonpath='{.metadata.resourceVersion}' 2>/dev/null; }

nothing_left_of() {
  [ -z "$(kc get pods,controllerrevisions -n "$TEST_NS" -l "clustername=$1,component=qdrant" -o name 2>/dev/null)" ]
}

# delete_qcs NAME...: deletes QdrantClusters, waits (GC_TIMEOUT, 60 s) until their StatefulSets
# are gone too, then deletes their PersistentVolumeClaims, which a StatefulSet leaves behind on
# purpose: the next suite must not find an old cluster's data under the same name.
delete_qcs() {
  local n
  kc delete qc "$@" -n "$TEST_NS" --ignore-not-found --wait=true >/dev/null 2>&1 || true
  for n in "$@"; do
    wait_until "${GC_TIMEOUT:-60}" "StatefulSet $n garbage-collected" absent sts "$n" -n "$TEST_NS"
    # A StatefulSet of the same name created while its predecessor's ControllerRevisions are
    # still there adopts them, and starts its Pods from the old template.
    wait_until 60 "the Pods and revisions of $n gone" nothing_left_of "$n"
    kc delete pvc -n "$TEST_NS" -l "clustername=$n,component=qdrant" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  done
}

apply_qc() { # NAME REPLICAS [extra spec yaml lines]
  local name=$1 replicas=$2 extra=${3:-}
  kc apply -n "$TEST_NS" -f - >/dev/null <<EOF
apiVersion: qdrant.operator/v1alpha1
kind: QdrantCluster
metadata:
  name: $name
spec:
  replicas: $replicas
  image: qdrant/qdrant:v1.16.3
$extra
EOF
}

# --- operator Pod deletion ---

# delete_operator_pod POD [--force]: deletes an operator Pod, gracefully or forced.
delete_operator_pod() {
  if [ "${2:-}" = "--force" ]; then
    kc delete pod "$1" -n "$OPERATOR_NS" --grace-period=0 --force --wait=false >/dev/null 2>&1
  else
    kc delete pod "$1" -n "$OPERATOR_NS" --wait=false >/dev/null
  fi
}

# delete_leader [--force]: deletes the current leader Pod and prints its name.
delete_leader() {
  local leader
  leader=$(get_leader_pod) || fail "no single leader to delete"
  delete_operator_pod "$leader" "$@"
  echo "$leader"
}

# operator_env_seconds NAME DEFAULT: a duration setting (env NAME, in seconds) of the
# operator's Deployment, or DEFAULT when it is not set.
operator_env_seconds() {
  local v
  v=$(kc get deploy qdrant-operator -n "$OPERATOR_NS" \
    -o jsonpath="{.spec.template.spec.containers[0].env[?(@.name==\"$1\")].value}" 2>/dev/null)
  v=${v%s}
  echo "${v:-$2}"
}

lease_duration_seconds() { operator_env_seconds LEASE_DURATION 15; }

# The Lease names a live operator Pod as its holder.
lease_held_by_live_pod() {
  local h
  h=$(lease_holder)
  [ -n "$h" ] && operator_pods | grep -qx "$h"
}

epoch_now() { python3 -c 'import time; print(time.time())'; }

# with_gauge_sampler: makes sure leadership is being sampled, and sets SAMPLES to the file.
# run.sh starts the sampler for the whole run; a suite run on its own starts its own, which
# stop_own_sampler (call it from the suite's trap) stops.
OWN_SAMPLER_PID=""
with_gauge_sampler() {
  SAMPLES=$E2E_STATE/fencing/samples.jsonl
  if [ -z "${FENCING_SAMPLER_RUNNING:-}" ]; then
    mkdir -p "$E2E_STATE/fencing" "$E2E_STATE/logs"
    SAMPLES=$E2E_STATE/fencing/samples-$$.jsonl
    python3 -u "$E2E_DIR/fencing_sampler.py" "$SAMPLES" >>"$E2E_STATE/logs/sampler.log" 2>&1 &
    OWN_SAMPLER_PID=$!
  fi
}
stop_own_sampler() { [ -z "$OWN_SAMPLER_PID" ] || kill "$OWN_SAMPLER_PID" 2>/dev/null || true; }

# fault_suite_start QC: how a fault suite begins: the operator ready, leadership sampled, the
# QdrantCluster QC Running, and FAULT_SINCE marking the start of the window that
# fencing_since checks.
fault_suite_start() {
  wait_for_operator_ready 120
  with_gauge_sampler
  apply_qc "$1" 1
  wait_for_qc_status "$1" 60 Running Healthy
  FAULT_SINCE=$(epoch_now)
}

# fencing_since EPOCH SAMPLES: the fencing proof (e2e/fencing_check.py) over the writes and
# gauge samples since EPOCH. Needs the API server's audit log (locally, always there).
fencing_since() {
  local audit=${AUDIT_LOG:-$E2E_STATE/audit.log}
  [ -r "$audit" ] || fail "no audit log at $audit (set AUDIT_LOG)"
  python3 "$E2E_DIR/fencing_check.py" "$audit" "$2" "$1" "$(renew_deadline_seconds)" | sed 's/^/  /' >&2
  return "${PIPESTATUS[0]}"
}

renew_deadline_seconds() { operator_env_seconds RENEW_DEADLINE 10; }

# --- Qdrant Pods ---
# Qdrant Pods are reached by their headless-Service DNS names, as the operator reaches them:
# through /etc/hosts on the local plane, through cluster DNS from inside a real cluster.

# qdrant_url POD CLUSTER: the REST base URL of one Qdrant Pod.
qdrant_url() { echo "http://$1.$2-headless.$TEST_NS:6333"; }

# qdrant_http METHOD URL [KEY] [BODY]: prints the HTTP status, then (line 2) the body.
qdrant_http() {
  local args=(-s -m 10 -o - -w '\n%{http_code}' -X "$1" "$2")
  [ -n "${3:-}" ] && args+=(-H "api-key: $3")
  [ -n "${4:-}" ] && args+=(-H 'content-type: application/json' -d "$4")
  local out
  out=$(curl "${args[@]}" 2>/dev/null) || true
  printf '%s\n%s\n' "${out##*$'\n'}" "${out%$'\n'*}"
}
qdrant_status_code() { qdrant_http "$@" | sed -n 1p; }

# secret_key SECRET FIELD: a Secret's value, decoded.
secret_key() { kc get secret "$1" -n "$TEST_NS" -o jsonpath="{.data.$2}" | base64 -d; }

# qpod_pid POD: the PID of a Qdrant Pod's process (local plane only).
qpod_pid() { cat "$E2E_STATE/pids/qpod.$TEST_NS.$1.pid" 2>/dev/null; }

# freeze_qpod POD: stops a Qdrant Pod's process (SIGSTOP): it neither answers nor dies.
# thaw_qpods resumes every process the suite froze; call it from the suite's trap too.
FROZEN=()
freeze_qpod() {
  local pid
  pid=$(qpod_pid "$1")
  [ -n "$pid" ] || fail "no process for $1 (needs the local plane's runner)"
  kill -STOP "$pid"
  FROZEN+=("$pid")
}
thaw_qpods() {
  local p
  for p in "${FROZEN[@]}"; do kill -CONT "$p" 2>/dev/null || true; done
  FROZEN=()
}

# qdrant_health_is NAME HEALTH: status.qdrant.health (Healthy, Degraded) for the current
# generation.
qdrant_health_is() {
  [ "$(qc_field "$1" .status.qdrant.health)" = "$2" ] \
    && [ "$(qc_field "$1" .status.observedGeneration)" = "$(qc_field "$1" .metadata.generation)" ]
}

# healthy_condition NAME FIELD: a field (status, reason, message) of the Healthy condition.
healthy_condition() { qc_field "$1" ".status.conditions[?(@.type==\"Healthy\")].$2"; }

# unhealthy_with NAME REASON TEXT: the Healthy condition is False with REASON, and its message
# contains TEXT.
unhealthy_with() {
  [ "$(healthy_condition "$1" status)" = "False" ] && [ "$(healthy_condition "$1" reason)" = "$2" ] \
    && grep -qF -- "$3" <<<"$(healthy_condition "$1" message)"
}

# qdrant_requests_on_leader ENDPOINT: the leader's qdrant_client_requests_total for an
# endpoint label (e.g. "GET /cluster"), summed over results.
qdrant_requests_on_leader() {
  local leader
  leader=$(get_leader_pod) || return 1
  operator_metrics "$leader" | awk -v ep="endpoint=\"$1\"" 'index($0, "qdrant_client_requests_total{") == 1 && index($0, ep) { s += $NF } END { print s + 0 }'
}

# operator_restarts: the sum of restart counts of the operator's Pods.
operator_restarts() {
  kc get pods -n "$OPERATOR_NS" -l app=qdrant-operator -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{"\n"}{end}' | awk '{ s += $1 } END { print s + 0 }'
}

# create_collection URL KEY NAME BODY: creates a collection through the peer at URL.
create_collection() {
  [ "$(qdrant_status_code PUT "$1/collections/$3" "$2" "$4")" = 200 ] || fail "creating collection $3 failed"
}

# upsert_points URL KEY COLLECTION N: points 1..N with 4-dimensional vectors, in batches.
upsert_points() {
  local i body
  for ((i = 1; i <= $4; i += 250)); do
    body=$(python3 -c 'import json,sys; a,b=int(sys.argv[1]),int(sys.argv[2]); print(json.dumps({"points": [{"id": i, "vector": [i % 7, 1, 0, i % 3]} for i in range(a, b + 1)]}))' "$i" "$(( i + 249 < $4 ? i + 249 : $4 ))")
    [ "$(qdrant_status_code PUT "$1/collections/$3/points?wait=true" "$2" "$body")" = 200 ] || fail "upserting points into $3 failed"
  done
}

# count_points URL KEY COLLECTION: the exact point count.
count_points() {
  qdrant_http POST "$1/collections/$3/points/count" "$2" '{"exact": true}' | sed -n 2p \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["count"])' 2>/dev/null
}

# collection_replicas URL KEY COLLECTION: one line per shard replica, "shard peer state", as
# the peer at URL reports the placement (its own shards and everyone else's).
collection_replicas() {
  qdrant_http GET "$1/collections/$3/cluster" "$2" | sed -n 2p | python3 -c '
import json, sys
r = json.load(sys.stdin)["result"]
for s in r["local_shards"]:
    print(s["shard_id"], r["peer_id"], s["state"])
for s in r["remote_shards"]:
    print(s["shard_id"], s["peer_id"], s["state"])'
}

# shard_holders URL KEY COLLECTION: how many peers hold a replica.
shard_holders() { collection_replicas "$@" | awk '{ print $2 }' | sort -u | wc -l; }

# cluster_with_points QC REPLICAS COLLECTION_BODY POINTS: a Healthy cluster with an API key and
# persistent volumes, whose collection c (created with COLLECTION_BODY) holds points 1..POINTS;
# sets `key` and `url` (Pod 0's REST API) for the suite.
cluster_with_points() {
  apply_qc "$1" "$2" "  apikey: 'true'
  persistence: {size: 1Gi}"
  wait_until 120 "$1 to be Healthy" qc_status_is "$1" Healthy
  key=$(secret_key "$1-apikey" api-key)
  url=$(qdrant_url "$1-0" "$1")
  create_collection "$url" "$key" c "$3"
  upsert_points "$url" "$key" c "$4"
}

# --- rolling restarts ---

# start_restart_sampler QC: records QC's Qdrant Pods and the replica states of collection c
# in the background (e2e/restart_sampler.py; needs `key`); sets RESTART_SAMPLES and
# RESTART_SAMPLER. Stop it with stop_restart_sampler (from the suite's trap too).
RESTART_SAMPLER=""
start_restart_sampler() {
  RESTART_SAMPLES=$E2E_STATE/restart-$1-$$.jsonl
  mkdir -p "$E2E_STATE/logs"
  QDRANT_KEY=$key python3 -u "$E2E_DIR/restart_sampler.py" "$RESTART_SAMPLES" "$TEST_NS" "$1" c >>"$E2E_STATE/logs/restart-sampler.log" 2>&1 &
  RESTART_SAMPLER=$!
}
stop_restart_sampler() { [ -z "$RESTART_SAMPLER" ] || kill "$RESTART_SAMPLER" 2>/dev/null || true; }

# rolling_restart_start QC: a Healthy 3-Pod cluster QC whose collection c holds 300 points in 6
# shards with replication factor 2, sampled from now on (start_restart_sampler); sets `key`,
# `url`, `before` (a file of the Pods' uids now) and `since`.
rolling_restart_start() {
  cluster_with_points "$1" 3 '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 2}' 300
  wait_until 60 "$1 to be Healthy" qdrant_health_is "$1" Healthy
  before=$E2E_STATE/restart-$1-before.txt
  qpod_uids "$1" >"$before"
  start_restart_sampler "$1"
  since=$(epoch_now)
}

# qpod_uids QC: the uids of QC's Qdrant Pods, one per line.
qpod_uids() { kc get pods -n "$TEST_NS" -l "clustername=$1,component=qdrant" -o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}'; }

# restarted_all QC BEFORE_FILE: every one of QC's Pods has a uid not in BEFORE_FILE, and QC
# is converged with no operation under way and Qdrant Healthy.
restarted_all() {
  local uid
  for uid in $(qpod_uids "$1"); do grep -qx "$uid" "$2" && return 1; done
  qc_converged "$1" && [ -z "$(qc_field "$1" .status.operation.type)" ] && qdrant_health_is "$1" Healthy
}

# check_rolling_restart QC N BEFORE_FILE SINCE: the rolling-restart proof (e2e/restart_check.py)
# over the samples since SINCE and the Pods' start times.
check_rolling_restart() {
  python3 "$E2E_DIR/restart_check.py" "$RESTART_SAMPLES" "$TEST_NS" "$1" "$2" "$3" "$4"
}

# --- S3 (backups): a local versitygw, and a fault proxy in front of it ---
# The server (e2e/s3/s3.sh) and the proxy (e2e/s3/faultproxy.py) are processes on 127.0.0.1,
# which the operator's Pods, local processes too, reach. Their state is in $E2E_STATE/s3.$TEST_NS.

s3_state() { echo "$E2E_STATE/s3.$TEST_NS"; }

# s3_up: starts an empty S3 server and exports S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY and
# S3_REGION. Empty, because suites count the objects a backup wrote, and an earlier run's (a
# server left running, or its files) must not be counted. A failed suite's objects stay on
# disk, in $(s3_state)/s3/data, until the next s3_up. Call s3_down from the suite's EXIT trap.
s3_up() {
  local state env line
  state=$(s3_state)
  s3_down
  rm -rf "$state"
  env=$("$E2E_DIR/s3/s3.sh" start "$state") || fail "the S3 server did not start (its log: $state/s3/log)"
  while IFS= read -r line; do export "${line?}"; done <<<"$env"
}

# s3_down: stops the fault proxy and the S3 server, each by the PID it recorded and only if that
# process is still theirs. Does nothing when neither runs, and never fails: it runs in traps.
s3_down() {
  s3_proxy_down
  "$E2E_DIR/s3/s3.sh" stop "$(s3_state)" || true
}

# The suites' S3 client (e2e/s3/s3cli.py: SigV4 by hand, standard library only). It always goes
# straight to the server, never through the proxy: what a suite reads of the bucket must not
# depend on the fault it injects. On any S3 error it says which request failed and how, and
# exits non-zero (3 when nothing answered), so a suite under set -e stops there.
s3cli() { python3 "$E2E_DIR/s3/s3cli.py" "$@"; }
s3_mb() { s3cli mb "$1"; }                  # s3_mb BUCKET
s3_put() { s3cli put "$1" "$2" "${3:--}"; } # s3_put BUCKET KEY [FILE]: FILE's bytes, else stdin's
s3_keys() { s3cli keys "$1" "${2:-}"; }     # s3_keys BUCKET [PREFIX]: object keys, one a line, sorted
s3_get() { s3cli get "$1" "$2"; }           # s3_get BUCKET KEY: the object's bytes on stdout
s3_rm() { s3cli rm "$1" "$2"; }             # s3_rm BUCKET KEY

# s3_secret NAME [ACCESS_KEY [SECRET_KEY]]: creates or replaces the Secret NAME in $TEST_NS with
# the keys a backup's s3CredentialsSecretName names, ACCESS_KEY and SECRET_KEY (the JavaScript
# operator's names); by default the server's. A key given as '' stays empty, for the suites of
# a bad Secret.
s3_secret() {
  [ $# -ge 3 ] || [ -n "${S3_ACCESS_KEY:-}" ] || fail "s3_secret $1: no keys given and no S3 server (s3_up)"
  s3_secret_manifest "$1" "${2-$S3_ACCESS_KEY}" "${3-$S3_SECRET_KEY}" | kc apply -n "$TEST_NS" -f - >/dev/null
}

# s3_bucket BUCKET: an S3 server of the suite's own (s3_up) with BUCKET in it, and the Secret
# bucket-credentials that backups name for it.
s3_bucket() {
  s3_up
  s3_mb "$1"
  s3_secret bucket-credentials
}

# s3_secret_manifest NAME ACCESS_KEY SECRET_KEY: that Secret as JSON, built by Python so that
# any character in a key is quoted right.
s3_secret_manifest() {
  python3 -c 'import json, sys
name, access, secret = sys.argv[1:]
print(json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name},
                  "stringData": {"ACCESS_KEY": access, "SECRET_KEY": secret}}))' "$@"
}

# s3_proxy_up: starts e2e/s3/faultproxy.py on a free loopback port in front of the server (after
# s3_up), in mode pass, and exports S3_PROXY_ENDPOINT. Give the operator that endpoint, inspect
# the bucket with the s3_ helpers above, and inject faults with s3_proxy_mode.
S3_PROXY_PID=""
s3_proxy_up() {
  local dir
  dir=$(s3_state)/proxy
  [ -n "${S3_ENDPOINT:-}" ] || fail "s3_proxy_up: no S3 server (call s3_up first)"
  s3_proxy_down
  rm -rf "$dir" && mkdir -p "$dir"
  python3 -u "$E2E_DIR/s3/faultproxy.py" --listen 127.0.0.1:0 --target "${S3_ENDPOINT#http://}" \
    --state "$dir" >"$dir/stdout" 2>"$dir/log" </dev/null &
  S3_PROXY_PID=$!
  wait_until 10 "the S3 fault proxy to listen (its log: $dir/log)" test -s "$dir/port"
  export S3_PROXY_ENDPOINT="http://127.0.0.1:$(cat "$dir/port")"
}

# s3_proxy_mode MODE...: pass | down | down-after-puts N | slow SECONDS (see e2e/s3/faultproxy.py).
# It applies from the proxy's next connection or request; each call starts a new count of PUTs.
# slow holds each PUT SECONDS (such as 1.5) before forwarding it; other requests go at once.
s3_proxy_mode() {
  [ -s "$(s3_state)/proxy/pid" ] || fail "s3_proxy_mode $*: no fault proxy (call s3_proxy_up first)"
  python3 "$E2E_DIR/s3/faultproxy.py" --state "$(s3_state)/proxy" --set-mode "$@"
}

# s3_proxy_down: stops the proxy by its PID, only if that PID is still this state's
# faultproxy.py (a reused PID is never signalled), and waits until it has exited. Never fails.
s3_proxy_down() {
  local dir pid i
  dir=$(s3_state)/proxy
  pid=$S3_PROXY_PID
  S3_PROXY_PID=""
  [ -n "$pid" ] || pid=$(cat "$dir/pid" 2>/dev/null) || return 0
  case $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) in
    *"/faultproxy.py --listen "*" --state $dir "*) ;;
    *) return 0 ;;
  esac
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do running "$pid" || break; sleep 0.1; done
  running "$pid" && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true # reaps it when it is this shell's child
}

# running PID: the process exists and has not exited (a child not yet reaped is a zombie).
running() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
