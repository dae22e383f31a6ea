#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster on loopback for the test suite and print its URL.
# Installs Debian's postgresql package when no server binaries are present.
# Usage: eval "$(bash .ci/postgres.sh)"   # exports REGISTER_TEST_POSTGRES_URL
set -euo pipefail

PGPORT="${PGPORT:-55432}"
PGROOT="${PGROOT:-/tmp/careregister-pg}"

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

if ! BINDIR="$(find_bindir)"; then
  echo "installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq postgresql >&2
  BINDIR="$(find_bindir)"
fi

RUNAS=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home "$PGROOT" postgres
  RUNAS=(runuser -u postgres --)
fi

if "${RUNAS[@]}" "$BINDIR/pg_ctl" -D "$PGROOT/data" status >/dev/null 2>&1; then
  echo "postgresql already running in $PGROOT" >&2
else
  rm -rf "$PGROOT"
  mkdir -p "$PGROOT"
  [ "$(id -u)" -eq 0 ] && chown postgres "$PGROOT"
  "${RUNAS[@]}" "$BINDIR/initdb" -D "$PGROOT/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  "${RUNAS[@]}" "$BINDIR/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGROOT -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >&2
fi

"$BINDIR/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname='register_test'" | grep -q 1 \
  || "$BINDIR/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres register_test

echo "export REGISTER_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$PGPORT/register_test"
