#!/usr/bin/env bash
# The token endpoint with audit events on (this build) against a build without them: the same
# load as token-load.sh (client_credentials over TLS, wrk -t2 -c16, 3 s warm-up, 15 s
# measured) at the production log level (info: every token.issued event is also a JSON log
# line), then the count of stored token.issued events against the requests answered.
#   bench/events-load.sh                         # this build only
#   BASE_BIN=/path/to/old/portcullis bench/events-load.sh   # and the build to compare with
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/portcullis}
[ -x "$BIN" ] || cargo build --release

run() {
  local bin=$1 label=$2
  local dir port=18443 server
  dir=$(mktemp -d)
  export PORTCULLIS_DATA_DIR=$dir PORTCULLIS_LISTEN=127.0.0.1:$port PORTCULLIS_ISSUER=https://localhost:$port
  export PORTCULLIS_LOG_LEVEL=${LOG_LEVEL:-info} PORTCULLIS_ADMIN_LISTEN=off
  "$bin" migrate --dev >/dev/null 2>&1
  "$bin" apis create --dev --audience https://api.example.com --scope read:things >/dev/null 2>&1
  local client id secret
  client=$("$bin" clients create --dev --name bench --grant client_credentials --api https://api.example.com --scope read:things --json 2>/dev/null)
  id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$client")
  secret=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$client")
  "$bin" serve --dev >/dev/null 2>"$dir/server.log" &
  server=$!
  for _ in $(seq 1 100); do curl -sk -o /dev/null "https://127.0.0.1:$port/" -H "Host: localhost:$port" && break; sleep 0.1; done
  export BASIC=$(printf '%s:%s' "$id" "$secret" | base64 -w0) HOSTHDR=localhost:$port
  wrk -t2 -c16 -d3s -s bench/token.lua "https://127.0.0.1:$port/token" >"$dir/warm.out"
  wrk -t2 -c16 -d15s --latency -s bench/token.lua "https://127.0.0.1:$port/token" >"$dir/wrk.out"
  kill -TERM "$server"; wait "$server" || true
  local rps requests events
  rps=$(grep -E "^Requests/sec" "$dir/wrk.out" | awk '{print $2}')
  requests=$(cat "$dir/warm.out" "$dir/wrk.out" | grep -E "requests in" | awk '{s+=$1} END {print s}')
  events=$(python3 - "$dir/portcullis.sqlite3" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
try:
    print(db.execute("SELECT count(*) FROM audit_events WHERE kind = 'token.issued'").fetchone()[0])
except sqlite3.OperationalError:
    print("n/a (no audit events in this build)")
PY
)
  echo "$label: $rps requests/s; answered $requests, token.issued events stored: $events; $(grep -E 'RESULT' "$dir/wrk.out" || true)"
  rm -rf "$dir"
}

if [ -n "${BASE_BIN:-}" ]; then run "$BASE_BIN" "without events"; fi
run "$BIN" "with events"
