#!/usr/bin/env bash
# Run the whole suite on SQLite, then again on a throw-away PostgreSQL cluster where
# initdb/pg_ctl are installed (skipped, with the reason printed, where they are not).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

echo "== tests on SQLite"
$PY -m pytest "$@"

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "== PostgreSQL run SKIPPED: no initdb/pg_ctl found (apt-get install postgresql)"
  exit 0
fi
PGDATA=$(mktemp -d)
PGPORT=${IJP_TEST_PGPORT:-55432}
RUN=()
if [ "$(id -u)" = 0 ]; then   # initdb and postgres refuse to run as root
  chown postgres "$PGDATA"
  RUN=(su postgres -s /bin/sh -c)
else
  RUN=(sh -c)
fi
cleanup() {
  "${RUN[@]}" "$PGBIN/pg_ctl -D $PGDATA -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$PGDATA"
}
trap cleanup EXIT
"${RUN[@]}" "$PGBIN/initdb -D $PGDATA -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
"${RUN[@]}" "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/server.log -w -o \"-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off\" start" >/dev/null
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -q \
  -c "CREATE ROLE ijp LOGIN CREATEDB PASSWORD 'ijp'" -c "CREATE DATABASE ijp_test OWNER ijp"
echo "== tests on PostgreSQL (throw-away cluster on port $PGPORT)"
IJP_TEST_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_test" $PY -m pytest -m "not once" "$@"
