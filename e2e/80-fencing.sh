#!/usr/bin/env bash
# The proof that no two replicas ever acted as leader: every write of the operator's
# ServiceAccount during the run came from the Lease holder of that moment (audit log), and no
# round of gauge samples shows two leaders outside a Lease transition (e2e/fencing_sampler.py,
# started by run.sh before the failover suites). See e2e/fencing_check.py.
set -euo pipefail
source "$(dirname "$0")/utils.sh"
AUDIT_LOG=${AUDIT_LOG:-$E2E_STATE/audit.log}
SAMPLES=$E2E_STATE/fencing/samples.jsonl
if [ ! -r "$AUDIT_LOG" ]; then
  echo "  no audit log readable at $AUDIT_LOG (set AUDIT_LOG on a real cluster): cannot run here" >&2
  exit 77
fi
[ -s "$SAMPLES" ] || fail "no gauge samples at $SAMPLES: run this suite through e2e/run.sh"
since=$(head -n 1 "$SAMPLES" | python3 -c 'import json,sys; print(json.load(sys.stdin)["t0"])')
python3 "$E2E_DIR/fencing_check.py" "$AUDIT_LOG" "$SAMPLES" "$since" | sed 's/^/  /'
