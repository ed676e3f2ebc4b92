#!/usr/bin/env bash
# Runs a development Portcullis (`serve --dev`) ready for the demo app. On its first run it
# registers the API https://api.example.com (scope read:things), the demo's client (redirect,
# post-logout and back-channel logout URIs on https://127.0.0.1:3443, first-party) and the user
# alice@example.com, and writes the demo's settings, client secret included, to demo.env
# (mode 0600, ignored by git). Later runs only start the server. Development only.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEMO=https://127.0.0.1:3443
API=https://api.example.com
# The demo talks to Portcullis at its issuer: PORTCULLIS_ISSUER (environment or .env) when set,
# otherwise the development default.
issuer=${PORTCULLIS_ISSUER:-}
if [ -z "$issuer" ] && [ -f .env ]; then
  issuer=$(sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}PORTCULLIS_ISSUER=//p' .env |
    tail -n 1 | sed 's/[[:space:]]#.*//' | tr -d "\"' ")
fi
issuer=${issuer:-https://localhost:8443}
portcullis() { cargo run --release --quiet -- "$@" --dev; }

if [ ! -f demo.env ]; then
  if ! portcullis apis list --json | grep -q "\"$API\""; then
    portcullis apis create --audience "$API" --scope read:things
  fi
  # The user first: if that fails, no client is left registered without its settings.
  if ! out=$(printf '%s\n' 'velvet orbit lantern harbor' |
    portcullis users create --email alice@example.com --password-stdin 2>&1 >/dev/null); then
    case "$out" in
      *"already exists"*) echo "(alice@example.com exists already: keeping her password)" ;;
      *) printf 'could not create alice@example.com: %s\n' "$out" >&2; exit 1 ;;
    esac
  fi
  client=$(portcullis clients create --name "Portcullis demo" \
    --redirect-uri "$DEMO/callback" \
    --post-logout-redirect-uri "$DEMO/signed-out" \
    --backchannel-logout-uri "$DEMO/backchannel-logout" \
    --api "$API" --scope read:things --first-party --json)
  client_id=$(printf '%s' "$client" | sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p')
  client_secret=$(printf '%s' "$client" | sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p')
  if [ -z "$client_id" ] || [ -z "$client_secret" ]; then
    echo "could not read the new client's id and secret from: clients create --json" >&2
    exit 1
  fi
  (
    umask 077
    cat >demo.env <<ENV
# Settings of the demo app (examples/demo), written by examples/demo/dev-portcullis.sh.
# Development only; holds the client secret: never commit it.
PORTCULLIS_ENVIRONMENT_URL=$issuer
PORTCULLIS_CLIENT_ID=$client_id
PORTCULLIS_CLIENT_SECRET=$client_secret
PORTCULLIS_CA_FILE=portcullis-data/dev-ca.pem
DEMO_URL=$DEMO
DEMO_LISTEN=127.0.0.1:3443
DEMO_API_AUDIENCE=$API
DEMO_TLS_CERT=portcullis-data/dev-tls-cert.pem
DEMO_TLS_KEY=portcullis-data/dev-tls-key.pem
ENV
  )
  echo "registered the demo's client $client_id; its settings are in demo.env"
fi

# Back-channel logout goes to the demo over HTTPS with the development certificate.
PORTCULLIS_OUTBOUND_CA_FILE=portcullis-data/dev-ca.pem exec cargo run --release -- serve --dev
