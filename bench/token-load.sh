#!/usr/bin/env bash
# Load harness for the token endpoint: client_credentials grants over TLS on loopback, with
# production defaults (EdDSA access tokens, SQLite, argon2 settings untouched). Pinned:
# wrk -t2 -c16, a 3 s warm-up, then 15 s measured, keep-alive.
#   bench/token-load.sh            # server and wrk share both cores
#   PIN=1 bench/token-load.sh      # server on core 0, wrk on core 1
#   ALG=ES256 bench/token-load.sh # ES256 (or RS256) access tokens (PORTCULLIS_ACCESS_TOKEN_ALG)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/portcullis}
[ -x "$BIN" ] || cargo build --release
DIR=$(mktemp -d)
PORT=${PORT:-18443}
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DIR"' EXIT
export PORTCULLIS_DATA_DIR=$DIR PORTCULLIS_LISTEN=127.0.0.1:$PORT PORTCULLIS_ISSUER=https://localhost:$PORT PORTCULLIS_LOG_LEVEL=warn PORTCULLIS_ADMIN_LISTEN=off
export PORTCULLIS_ACCESS_TOKEN_ALG=${ALG:-EdDSA}
"$BIN" migrate --dev >/dev/null 2>&1
"$BIN" apis create --dev --audience https://api.example.com --scope read:things >/dev/null 2>&1
CLIENT=$("$BIN" clients create --dev --name bench --grant client_credentials --api https://api.example.com --scope read:things --json 2>/dev/null)
ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$CLIENT")
SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$CLIENT")
if [ "${PIN:-0}" = 1 ]; then SRV_PIN="taskset -c 0"; WRK_PIN="taskset -c 1"; else SRV_PIN=""; WRK_PIN=""; fi
$SRV_PIN "$BIN" serve --dev >/dev/null 2>"$DIR/server.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -sk -o /dev/null "https://127.0.0.1:$PORT/" -H "Host: localhost:$PORT" && break; sleep 0.1; done
export BASIC=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0) HOSTHDR=localhost:$PORT
THREADS=${THREADS:-2}
$WRK_PIN wrk -t"$THREADS" -c16 -d3s -s bench/token.lua "https://127.0.0.1:$PORT/token" >/dev/null
$WRK_PIN wrk -t"$THREADS" -c16 -d15s --latency -s bench/token.lua "https://127.0.0.1:$PORT/token" | tee "$DIR/wrk.out" | grep -E "RESULT|Latency|Req/Sec"
echo "server RSS after load: $(ps -o rss= -p $SERVER) KiB"
