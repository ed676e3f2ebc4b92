#!/usr/bin/env bash
# Runs every test of Portcullis. Installs what the tests need first (Debian's chromium for the
# real-browser tests, playwright-core from npm, schemathesis from PyPI for the admin API), so it
# works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (Debian package) for the browser tests"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

echo "==> installing the browser test driver (playwright-core, from package-lock.json)"
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

echo "==> installing schemathesis (PyPI, pinned in tests/admin-api/requirements.txt) for the admin API contract test"
venv=tests/admin-api/.venv
if ! "$venv/bin/python" -c 'import schemathesis' >/dev/null 2>&1; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/admin-api/requirements.txt
fi

echo "==> cargo test"
cargo test --workspace --locked "$@"
