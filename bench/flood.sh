#!/usr/bin/env bash
# Behaviour under a credential-stuffing flood with production defaults: wrk floods POST /login
# (bench/flood.lua: 256 addresses behind a trusted proxy, a new account per request, as fast as
# the machine accepts) while a second wrk measures discovery, JWKS and client_credentials, and
# a legitimate sign-in is timed from an address outside the flood.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/portcullis}
[ -x "$BIN" ] || cargo build --release
DIR=$(mktemp -d)
PORT=${PORT:-18446}
trap 'kill $SERVER $FLOOD 2>/dev/null || true; rm -rf "$DIR"' EXIT
export PORTCULLIS_DATA_DIR=$DIR PORTCULLIS_LISTEN=127.0.0.1:$PORT PORTCULLIS_ISSUER=https://localhost:$PORT PORTCULLIS_LOG_LEVEL=warn PORTCULLIS_TRUSTED_PROXIES=127.0.0.1 PORTCULLIS_ADMIN_LISTEN=off
"$BIN" migrate --dev >/dev/null 2>&1
"$BIN" apis create --dev --audience https://api.example.com --scope read:things >/dev/null 2>&1
MACHINE=$("$BIN" clients create --dev --name bench --grant client_credentials --api https://api.example.com --scope read:things --json 2>/dev/null)
PUBLIC=$("$BIN" clients create --dev --name spa --public --redirect-uri http://127.0.0.1/cb --json 2>/dev/null)
PASSWORD='velvet orbit lantern harbor'
printf '%s\n' "$PASSWORD" | "$BIN" users create --dev --email owner@example.com --password-stdin >/dev/null 2>&1
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
"$BIN" serve --dev >/dev/null 2>"$DIR/server.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -sk -o /dev/null "https://127.0.0.1:$PORT/" -H "Host: localhost:$PORT" && break; sleep 0.1; done
# 64 pending sign-ins for the flood (a failed sign-in leaves its flow usable).
python3 - "$PORT" "$(json "$PUBLIC" client_id)" "$DIR/dev-ca.pem" > "$DIR/flows" <<'PY'
import http.client, re, ssl, sys, urllib.parse
port, client, ca = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
q = urllib.parse.urlencode({"response_type": "code", "client_id": client, "redirect_uri": "http://127.0.0.1/cb",
    "scope": "openid", "state": "s", "nonce": "n",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"})
for _ in range(64):
    c = http.client.HTTPSConnection("localhost", int(port), context=ctx)
    c.request("GET", "/authorize?" + q); r = c.getresponse(); r.read()
    cookie = [v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie"][0]
    c.request("GET", "/authorize/resume", headers={"Cookie": cookie}); page = c.getresponse().read().decode()
    print(cookie, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1))
PY
export FLOWS_FILE=$DIR/flows HOSTHDR=localhost:$PORT ORIGIN=https://localhost:$PORT
wrk -t1 -c32 -d60s -s bench/flood.lua "https://127.0.0.1:$PORT/login" > "$DIR/flood.out" &
FLOOD=$!
sleep 5
for path in /.well-known/openid-configuration /jwks; do
  printf '%s under the flood: ' "$path"
  wrk -t1 -c4 -d10s --latency -H "Host: localhost:$PORT" "https://127.0.0.1:$PORT$path" | awk '/ 99%/ {p99=$2} /Requests\/sec/ {rps=$2} END {print "p99=" p99, "rps=" rps}'
done
export BASIC=$(printf '%s:%s' "$(json "$MACHINE" client_id)" "$(json "$MACHINE" client_secret)" | base64 -w0)
printf 'client_credentials under the flood: '
wrk -t1 -c4 -d10s --latency -s bench/token.lua "https://127.0.0.1:$PORT/token" | grep RESULT
printf 'legitimate sign-in from outside the flood: '
python3 bench/login_load.py "https://localhost:$PORT" "$DIR/dev-ca.pem" "$(json "$PUBLIC" client_id)" owner@example.com "$PASSWORD" 1 5 | sed 's/^RESULT //'
wait $FLOOD || true
cat "$DIR/flood.out" | grep FLOOD
echo "server RSS: $(ps -o rss= -p $SERVER) KiB"
