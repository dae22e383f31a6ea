#!/usr/bin/env bash
# Set up everything and run the whole test suite (lint, then pytest on SQLite and PostgreSQL).
# Needs only Python 3.11. PostgreSQL: uses REGISTER_TEST_POSTGRES_URL if set; otherwise starts a
# throw-away server with .ci/postgres.sh when it can (server binaries present, or root with apt).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/careregister assets   # NHS.UK frontend, Chart.js and axe-core from the npm registry (pinned)
if [ -z "${REGISTER_TEST_POSTGRES_URL:-}" ]; then
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; }; then
    eval "$(bash .ci/postgres.sh)"
  else
    echo "note: PostgreSQL unavailable; PostgreSQL tests will be skipped" >&2
  fi
fi
.venv/bin/ruff check .
exec .venv/bin/pytest -n "${PYTEST_WORKERS:-2}" "$@"
