#!/usr/bin/env bash
# Load harness for refresh-token rotation with production defaults: SQLite in WAL mode with
# `synchronous = NORMAL` (every rotation is one BEGIN IMMEDIATE transaction: reuse check,
# consume, successor insert), EdDSA access tokens (the default) and ES256 ID tokens, the
# failed-auth limiter and quota on.
# 32 families (one sign-in each), then wrk -t2 -c16: a 3 s warm-up and 15 s measured; every
# request rotates a live token and puts its successor back in the pool.
#   bench/refresh-load.sh
#   SYNC=FULL bench/refresh-load.sh   # fsync on every commit instead (PORTCULLIS_SQLITE_SYNCHRONOUS)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/portcullis}
[ -x "$BIN" ] || cargo build --release
DIR=$(mktemp -d)
PORT=${PORT:-18447}
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DIR"' EXIT
export PORTCULLIS_DATA_DIR=$DIR PORTCULLIS_LISTEN=127.0.0.1:$PORT PORTCULLIS_ISSUER=https://localhost:$PORT PORTCULLIS_LOG_LEVEL=warn PORTCULLIS_ADMIN_LISTEN=off
[ -n "${SYNC:-}" ] && export PORTCULLIS_SQLITE_SYNCHRONOUS=$SYNC
"$BIN" migrate --dev >/dev/null 2>&1
"$BIN" apis create --dev --audience https://api.example.com --scope read:things >/dev/null 2>&1
CLIENT=$("$BIN" clients create --dev --name bench --redirect-uri http://127.0.0.1/cb --api https://api.example.com --scope read:things --id-token-alg ES256 --json 2>/dev/null)
ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$CLIENT")
SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$CLIENT")
PASSWORD='velvet orbit lantern harbor'
printf '%s\n' "$PASSWORD" | "$BIN" users create --dev --email bench@example.com --password-stdin >/dev/null 2>&1
"$BIN" serve --dev >/dev/null 2>"$DIR/server.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -sk -o /dev/null "https://127.0.0.1:$PORT/" -H "Host: localhost:$PORT" && break; sleep 0.1; done
export THREADS=2 BASIC=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0) HOSTHDR=localhost:$PORT
python3 bench/refresh_tokens.py "https://localhost:$PORT" "$DIR/dev-ca.pem" "$ID" "$SECRET" bench@example.com "$PASSWORD" 32 >"$DIR/tokens.txt" || { tail -5 "$DIR/server.log"; exit 1; }
export TOKENS=$DIR/tokens.txt
wrk -t2 -c16 -d3s -s bench/refresh.lua "https://127.0.0.1:$PORT/token" | grep RESULT | sed 's/^RESULT/warm-up/'
# The warm-up spent the tokens in the file: hand the measured run the successors instead.
python3 bench/refresh_tokens.py "https://localhost:$PORT" "$DIR/dev-ca.pem" "$ID" "$SECRET" bench@example.com "$PASSWORD" 32 >"$DIR/tokens.txt" || { tail -5 "$DIR/server.log"; exit 1; }
wrk -t2 -c16 -d15s --latency -s bench/refresh.lua "https://127.0.0.1:$PORT/token" | tee "$DIR/wrk.out" | grep -E "RESULT|Latency"
echo "rotated tokens stored: $(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from refresh_tokens").fetchone()[0])' "$DIR/portcullis.sqlite3" 2>/dev/null || echo '?')"
