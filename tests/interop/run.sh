#!/usr/bin/env bash
# Interop and contract tests (tests/interop/run.py): installs the pinned
# Node and Python tools into tests/interop/node_modules and tests/interop/.venv
# (nothing global), then runs them against the service binary.
#   bash tests/interop/run.sh [--bin target/debug/statuslist] [--only scenario|crs|schemathesis|webhooks]
set -euo pipefail
cd "$(dirname "$0")"

# Install only when the lockfile / requirements changed since the last install.
if ! cmp -s package-lock.json node_modules/.interop-installed 2>/dev/null; then
  SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.interop-installed
fi
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt .venv/requirements.installed 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/requirements.installed
fi

exec .venv/bin/python run.py "$@"
