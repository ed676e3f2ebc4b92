#!/usr/bin/env bash
# Idle memory of the server: resident set size 3 s after start, production defaults, a fresh
# SQLite database, nothing served yet, then again after one discovery request.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/portcullis}
[ -x "$BIN" ] || cargo build --release
DIR=$(mktemp -d)
PORT=${PORT:-18444}
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DIR"' EXIT
export PORTCULLIS_DATA_DIR=$DIR PORTCULLIS_LISTEN=127.0.0.1:$PORT PORTCULLIS_ISSUER=https://localhost:$PORT PORTCULLIS_LOG_LEVEL=warn PORTCULLIS_ADMIN_LISTEN=off
"$BIN" migrate --dev >/dev/null 2>&1
"$BIN" serve --dev >/dev/null 2>"$DIR/server.log" &
SERVER=$!
sleep 3
echo "idle RSS: $(ps -o rss= -p $SERVER) KiB"
curl -sk -o /dev/null -H "Host: localhost:$PORT" "https://127.0.0.1:$PORT/.well-known/openid-configuration"
sleep 1
echo "RSS after one request: $(ps -o rss= -p $SERVER) KiB"
