#!/usr/bin/env bash
# Self-test of the S3 pieces the e2e suites use, without Kubernetes. Through the helpers of
# e2e/utils.sh, in a scratch state directory: starts versitygw (built by build.sh, cached) on
# loopback; runs s3_check.py (SigV4 round trip, bad signatures refused); makes a bucket, puts,
# lists (sorted, by prefix, page after page), gets and deletes with s3cli.py, and checks its
# error exits; then the fault proxy: pass forwards; down-after-puts 2 forwards exactly 2 PUTs,
# on separate connections and on one keep-alive connection, and fails the 3rd and what follows;
# down fails a GET at once; pass again works; slow 1.5 holds a PUT at least 1.5 s while a GET on
# another connection is answered at once, and refuses a missing, negative or non-numeric SECONDS;
# pass again puts at once; a chunked body is refused. Stops everything it started on every exit
# path, and exits non-zero at the first check that fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
E2E_STATE=$(mktemp -d)
TEST_NS=s3-selftest
export E2E_STATE TEST_NS
# shellcheck source=../utils.sh
source "$here/../utils.sh"
scratch=$E2E_STATE/files
cleanup() { s3_down; rm -rf "$E2E_STATE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$scratch"

checks=0
ok() { checks=$((checks + 1)); echo "ok   $*"; }

# expect_exit CODE TEXT CMD...: CMD exits with CODE and says TEXT on stderr.
expect_exit() {
  local want=$1 text=$2 rc=0
  shift 2
  "$@" >"$scratch/out" 2>"$scratch/err" || rc=$?
  [ "$rc" = "$want" ] || fail "'$*' exited $rc, not $want; it said: $(cat "$scratch/err")"
  grep -qF -- "$text" "$scratch/err" || fail "'$*' did not say '$text'; it said: $(cat "$scratch/err")"
}

# is VALUE WANT WHAT: VALUE is WANT, or the check WHAT fails showing both.
is() { [ "$1" = "$2" ] || fail "$3: got $(printf %q "$1"), want $(printf %q "$2")"; }

via_proxy() { S3_ENDPOINT=$S3_PROXY_ENDPOINT "$@"; }

# --- the server and its client ---
S3_SERVER_BIN=$("$here/build.sh")/versitygw
export S3_SERVER_BIN
echo "$("$S3_SERVER_BIN" --version | tr -s "\n " " ")"
s3_up
[[ $S3_ENDPOINT =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "s3_up exported S3_ENDPOINT=$S3_ENDPOINT"
[ -n "$S3_ACCESS_KEY" ] && [ -n "$S3_SECRET_KEY" ] && [ "$S3_REGION" = us-east-1 ] || fail "s3_up exported no credentials or region"
server_pid=$(cat "$(s3_state)/s3/pid")
ok "s3_up: versitygw pid $server_pid at $S3_ENDPOINT, credentials and region exported"
python3 "$here/s3_check.py"

head -c 300000 /dev/urandom >"$scratch/big"
printf small >"$scratch/small"
s3_mb bkt
expect_exit 1 "409 BucketAlreadyOwnedByYou" s3_mb bkt
ok "s3_mb makes a bucket, and fails on one that exists"
s3_put bkt a/1.bin "$scratch/big"
s3_put bkt "a/ü +2" "$scratch/small"
printf 'from stdin' | s3_put bkt b/3
is "$(s3_keys bkt)" $'a/1.bin\na/ü +2\nb/3' "s3_keys bkt"
is "$(s3_keys bkt a/)" $'a/1.bin\na/ü +2' "s3_keys bkt a/"
is "$(S3CLI_MAX_KEYS=1 s3_keys bkt)" $'a/1.bin\na/ü +2\nb/3' "s3_keys bkt, one key a page"
is "$(s3_keys bkt none/)" "" "s3_keys bkt none/"
ok "s3_put (file, stdin), s3_keys: sorted, by prefix, page after page, empty"
s3_get bkt a/1.bin | cmp -s - "$scratch/big" || fail "s3_get bkt a/1.bin: not the bytes put"
is "$(s3_get bkt b/3)" "from stdin" "s3_get bkt b/3"
ok "s3_get returns the bytes put"
s3_rm bkt a/1.bin
is "$(s3_keys bkt a/)" "a/ü +2" "s3_keys bkt a/ after s3_rm"
expect_exit 1 "get s3://bkt/a/1.bin: 404 NoSuchKey" s3_get bkt a/1.bin
ok "s3_rm deletes; s3_get of a missing key fails with NoSuchKey"
expect_exit 1 "list s3://nobucket/: 404 NoSuchBucket" s3_keys nobucket
S3_SECRET_KEY=not-the-secret expect_exit 1 "403 SignatureDoesNotMatch" s3_keys bkt
expect_exit 2 "S3_ENDPOINT must be http://127.0.0.1:PORT" env S3_ENDPOINT=http://example.com:80 python3 "$here/s3cli.py" keys bkt
ok "S3 errors exit 1 naming the request, status and code; a non-loopback endpoint is refused"

python3 - "$(s3_secret_manifest creds "$S3_ACCESS_KEY" 'se"cret: x')" "$(s3_secret_manifest bad '' x)" "$S3_ACCESS_KEY" <<'EOF' || fail "s3_secret_manifest"
import json, sys
good, bad, access = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
assert (good["kind"], good["metadata"]["name"]) == ("Secret", "creds"), good
assert good["stringData"] == {"ACCESS_KEY": access, "SECRET_KEY": 'se"cret: x'}, good
assert bad["stringData"] == {"ACCESS_KEY": "", "SECRET_KEY": "x"}, bad
EOF
ok "s3_secret's manifest: keys ACCESS_KEY and SECRET_KEY, any characters, empty kept"

# --- the fault proxy ---
s3_proxy_up
proxy_pid=$S3_PROXY_PID
proxy_log=$(s3_state)/proxy/log
[[ $S3_PROXY_ENDPOINT =~ ^http://127\.0\.0\.1:[0-9]+$ ]] && [ "$S3_PROXY_ENDPOINT" != "$S3_ENDPOINT" ] \
  || fail "s3_proxy_up exported S3_PROXY_ENDPOINT=$S3_PROXY_ENDPOINT"
is "$(cat "$(s3_state)/proxy/pid")" "$proxy_pid" "the proxy's DIR/pid"
is "$(cat "$(s3_state)/proxy/stdout")" "${S3_PROXY_ENDPOINT##*:}" "the port the proxy printed"
is "$(via_proxy s3_keys bkt)" $'a/ü +2\nb/3' "s3_keys through the proxy"
via_proxy s3_put bkt p/0 "$scratch/small"
is "$(via_proxy s3_get bkt p/0)" small "s3_get through the proxy"
ok "proxy pid $proxy_pid at $S3_PROXY_ENDPOINT, mode pass: lists, puts and gets go through"

expect_exit 2 "unknown mode 'down-after-puts x'" s3_proxy_mode down-after-puts x
s3_proxy_mode down-after-puts 2
is "$(via_proxy s3_get bkt b/3)" "from stdin" "a GET before the 2 PUTs"
via_proxy s3_put bkt p/1 "$scratch/small"
via_proxy s3_put bkt p/2 "$scratch/small"
expect_exit 3 "put s3://bkt/p/3: no answer from $S3_PROXY_ENDPOINT" via_proxy s3_put bkt p/3 "$scratch/small"
is "$(s3_keys bkt p/)" $'p/0\np/1\np/2' "the keys under p/ after down-after-puts 2"
expect_exit 3 "no answer" via_proxy s3_keys bkt
ok "down-after-puts 2: a GET and 2 PUTs forwarded, the 3rd PUT and a GET after it get no answer"

s3_proxy_mode down-after-puts 2
expect_exit 3 "put s3://bkt/q/3: no answer" via_proxy s3cli put bkt q/1 "$scratch/small" q/2 "$scratch/small" q/3 "$scratch/small"
is "$(s3_keys bkt q/)" $'q/1\nq/2' "the keys under q/ after 3 PUTs on one connection"
grep -qE "conn [0-9]+ req 3: PUT /bkt/q/3: refused" "$proxy_log" || fail "the PUTs of q/ were not 3 requests on one connection: $(cat "$proxy_log")"
ok "down-after-puts 2 set again counts afresh, and counts PUTs on one keep-alive connection"

s3_proxy_mode down
t0=$(now_ms)
expect_exit 3 "get s3://bkt/b/3: no answer" via_proxy s3_get bkt b/3
took=$(($(now_ms) - t0))
[ "$took" -lt 5000 ] && ! grep -q timed "$scratch/err" || fail "down: the GET failed after ${took} ms ($(cat "$scratch/err")), not at once"
is "$(s3_get bkt b/3)" "from stdin" "the same GET, straight to the server"
ok "down: a GET gets no answer at once (${took} ms); the server itself still answers"

s3_proxy_mode pass
is "$(via_proxy s3_get bkt b/3)" "from stdin" "a GET in pass again"
via_proxy s3_put bkt p/4 "$scratch/small"
is "$(s3_keys bkt p/)" $'p/0\np/1\np/2\np/4' "the keys under p/ after pass again"
ok "pass again: GET and PUT go through"

expect_exit 2 "bad mode 'slow': slow takes one SECONDS" s3_proxy_mode slow
expect_exit 2 "bad mode 'slow -1': slow takes one SECONDS, a number >= 0" s3_proxy_mode slow -1
expect_exit 2 "bad mode 'slow x': slow takes one SECONDS, a number >= 0" s3_proxy_mode slow x
ok "slow without SECONDS, or with -1 or x, is refused (exit 2), saying why"

# A PUT in the background, timed to the end; while the proxy holds it, a GET on another connection.
s3_proxy_mode slow 1.5
t0=$(now_ms)
(via_proxy s3_put bkt s/1 "$scratch/big" && echo $(($(now_ms) - t0)) >"$scratch/put-ms") 2>"$scratch/put-err" &
put_pid=$!
wait_until 10 "the proxy to hold the PUT of s/1" grep -q "PUT /bkt/s/1: held 1.5 s" "$proxy_log"
t1=$(now_ms)
is "$(via_proxy s3_get bkt b/3)" "from stdin" "a GET while a PUT is held"
got=$(($(now_ms) - t1))
[ "$got" -lt 1000 ] || fail "slow 1.5: a GET beside a held PUT took ${got} ms, not < 1000"
running "$put_pid" || fail "slow 1.5: the PUT of s/1 was over before the GET beside it was answered"
wait "$put_pid" || fail "slow 1.5: the PUT of s/1 failed: $(cat "$scratch/put-err")"
put_ms=$(cat "$scratch/put-ms")
[ "$put_ms" -ge 1500 ] || fail "slow 1.5: the PUT of s/1 took ${put_ms} ms, not >= 1500"
s3_get bkt s/1 | cmp -s - "$scratch/big" || fail "slow 1.5: s/1 does not hold the bytes put"
ok "slow 1.5: a PUT took ${put_ms} ms and stored its bytes; a GET during it took ${got} ms"

s3_proxy_mode pass
t0=$(now_ms)
via_proxy s3_put bkt s/2 "$scratch/big"
took=$(($(now_ms) - t0))
[ "$took" -lt 1000 ] || fail "pass after slow: a PUT took ${took} ms, not < 1000"
ok "pass after slow: a PUT takes ${took} ms again"

code=$(curl -s -o "$scratch/out" -w '%{http_code}' --max-time 10 -H 'Transfer-Encoding: chunked' -T "$scratch/small" "$S3_PROXY_ENDPOINT/bkt/chunked") || true
is "$code" 501 "the status of a chunked PUT through the proxy"
grep -q "chunked (Transfer-Encoding) request bodies are not supported" "$scratch/out" || fail "501 without saying why: $(cat "$scratch/out")"
ok "a chunked request body is refused with 501, saying why"

# --- stopping ---
s3_proxy_down
! running "$proxy_pid" || fail "the proxy (pid $proxy_pid) still runs after s3_proxy_down"
[ ! -e "$(s3_state)/proxy/pid" ] || fail "the proxy left its pid file"
s3_down
! running "$server_pid" || fail "versitygw (pid $server_pid) still runs after s3_down"
expect_exit 3 "no answer" s3_keys bkt
ok "s3_proxy_down and s3_down stop both processes"
echo "s3 self-test: $checks checks passed"
