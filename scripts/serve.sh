#!/usr/bin/env bash
# Set up everything and run the register on the embedded default (SQLite under ./var).
# Needs only Python 3.11. Re-running is safe: it reuses .venv and upgrades the database in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
.venv/bin/careregister migrate
.venv/bin/careregister assets --no-test   # the pages' NHS.UK styles and Chart.js, from the npm registry
.venv/bin/careregister demo   # the demo organisations, people and records; prints how to get a token
exec .venv/bin/careregister serve "$@"
