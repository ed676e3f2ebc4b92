#!/usr/bin/env bash
# Sign-in throughput with production defaults (Argon2id m=19 MiB t=2 p=1 on a pool of one
# thread per core, SQLite, the throttling limits on): whole sign-ins by bench/login_load.py
# (4 workers, 15 s) against a release server. Compare with the hashing pool alone:
#   cargo bench -p portcullis-core --bench hashing
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/portcullis}
[ -x "$BIN" ] || cargo build --release
DIR=$(mktemp -d)
PORT=${PORT:-18445}
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DIR"' EXIT
export PORTCULLIS_DATA_DIR=$DIR PORTCULLIS_LISTEN=127.0.0.1:$PORT PORTCULLIS_ISSUER=https://localhost:$PORT PORTCULLIS_LOG_LEVEL=warn PORTCULLIS_ADMIN_LISTEN=off
"$BIN" migrate --dev >/dev/null 2>&1
CLIENT=$("$BIN" clients create --dev --name bench --public --redirect-uri http://127.0.0.1/cb --json 2>/dev/null)
ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$CLIENT")
PASSWORD='velvet orbit lantern harbor'
printf '%s\n' "$PASSWORD" | "$BIN" users create --dev --email bench@example.com --password-stdin >/dev/null 2>&1
"$BIN" serve --dev >/dev/null 2>"$DIR/server.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -sk -o /dev/null "https://127.0.0.1:$PORT/" -H "Host: localhost:$PORT" && break; sleep 0.1; done
python3 bench/login_load.py "https://localhost:$PORT" "$DIR/dev-ca.pem" "$ID" bench@example.com "$PASSWORD" "${WORKERS:-4}" "${SECONDS_RUN:-15}"
