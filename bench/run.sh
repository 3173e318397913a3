#!/usr/bin/env bash
# Run every benchmark of bench/README.md: SLURM's fan-out and harvest against a throw-away
# cluster where SLURM is installed, the local backend (hand-over, 100 jobs click to
# Completed), then each list, catalog, console and load benchmark on SQLite and again on
# a throw-away PostgreSQL where initdb/pg_ctl are installed. Each prints its figures
# beside their goals (bench/common.goal).
# Usage: bench/run.sh  (after make setup)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
echo "== SLURM: fan-out and harvest"
$PY bench/bench_slurm.py 2> >(grep -v "Unknown type Array" >&2)
echo "== local backend: hand-over and the sandbox"
$PY bench/bench_handover.py
echo "== 100 local jobs, click to all Completed, against a plain Popen loop (same sandbox)"
$PY bench/bench_localjobs.py
echo "== desktop sessions on the local backend: start, end, harvest cost"
$PY bench/bench_desktop.py
echo "== the demo interactive job types: submit to ready, the program's first frame"
$PY bench/bench_desktop_demo.py
echo "== what desktops add to the harvest, the idle check and the list, SQLite"
$PY bench/bench_desktop_web.py
echo "== job list with 10k, 100k and 1M jobs, SQLite"
$PY bench/bench_joblist.py
echo "== the operator's console with a million jobs, SQLite"
$PY bench/bench_console.py
echo "== /metrics, the console's backends, /healthz with a million jobs, SQLite"
$PY bench/bench_health.py
echo "== the embedded IDS: streaming and location checks"
$PY bench/bench_ids.py
$PY bench/bench_data.py
echo "== request bodies: bounded JSON"
$PY bench/bench_inputs.py
echo "== catalog queries, SQLite"
$PY bench/bench_queries.py
echo "== dataset search and a dataset's datafiles: 100,000 datasets, 1,010,000 datafiles, SQLite"
$PY bench/bench_catalog.py
echo "== catalog writes, SQLite"
$PY bench/bench_writes.py
echo "== the prefix and the trusted proxy's headers (ijpweb.proxy)"
$PY bench/bench_proxy.py
echo "== fifty clients at once on the mixed workload, SQLite (one portal process; IJP_BENCH_LOAD_SECONDS, 60)"
$PY bench/bench_load.py
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "== job list and catalog queries, PostgreSQL: SKIPPED (no initdb/pg_ctl; apt-get install postgresql)"
  exit 0
fi
PGDATA=$(mktemp -d); PGPORT=${IJP_BENCH_PGPORT:-55433}
RUN=(sh -c); if [ "$(id -u)" = 0 ]; then chown postgres "$PGDATA"; RUN=(su postgres -s /bin/sh -c); fi
trap '"${RUN[@]}" "$PGBIN/pg_ctl -D $PGDATA -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$PGDATA"' EXIT
"${RUN[@]}" "$PGBIN/initdb -D $PGDATA -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
"${RUN[@]}" "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/server.log -w -o \"-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1\" start" >/dev/null
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -q -c "CREATE ROLE ijp LOGIN PASSWORD 'ijp'" -c "CREATE DATABASE ijp_bench OWNER ijp" \
  -c "CREATE DATABASE ijp_bench_queries OWNER ijp" -c "CREATE DATABASE ijp_bench_writes OWNER ijp" \
  -c "CREATE DATABASE ijp_bench_console OWNER ijp" -c "CREATE DATABASE ijp_bench_health OWNER ijp" \
  -c "CREATE DATABASE ijp_bench_takeover OWNER ijp"
echo "== job list with 10k, 100k and 1M jobs, PostgreSQL"
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -q -c "CREATE DATABASE ijp_bench_10000 OWNER ijp" \
  -c "CREATE DATABASE ijp_bench_100000 OWNER ijp" -c "CREATE DATABASE ijp_bench_1000000 OWNER ijp"
IJP_BENCH_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_bench" $PY bench/bench_joblist.py
echo "== the operator's console with a million jobs, PostgreSQL"
IJP_BENCH_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_bench_console" $PY bench/bench_console.py
echo "== /metrics, the console's backends, /healthz with a million jobs, PostgreSQL"
IJP_BENCH_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_bench_health" $PY bench/bench_health.py
echo "== catalog queries, PostgreSQL"
IJP_BENCH_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_bench_queries" $PY bench/bench_queries.py
echo "== dataset search and a dataset's datafiles: 100,000 datasets, 1,010,000 datafiles, PostgreSQL"
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -q -c "CREATE DATABASE ijp_bench_catalog OWNER ijp"
IJP_BENCH_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_bench_catalog" $PY bench/bench_catalog.py
echo "== catalog writes, PostgreSQL"
IJP_BENCH_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_bench_writes" $PY bench/bench_writes.py
echo "== several portal processes: a new leader after the leader's SIGKILL, PostgreSQL"
IJP_BENCH_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_bench_takeover" $PY bench/bench_takeover.py
echo "== fifty clients at once on the mixed workload, PostgreSQL (two portal processes, as production.ini)"
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -q -c "CREATE DATABASE ijp_bench_load OWNER ijp"
IJP_BENCH_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_bench_load" $PY bench/bench_load.py
echo "== SLURM: harvest of 10,000 live jobs, PostgreSQL"
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -q -c "CREATE DATABASE ijp_bench_harvest OWNER ijp"
IJP_BENCH_PARTS=harvest IJP_BENCH_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_bench_harvest" \
  $PY bench/bench_slurm.py 2> >(grep -v "Unknown type Array" >&2)
echo "== what desktops add to the harvest, the idle check and the list, PostgreSQL"
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -q -c "CREATE DATABASE ijp_bench_desktops OWNER ijp"
IJP_BENCH_DATABASE_URL="postgresql+psycopg://ijp:ijp@127.0.0.1:$PGPORT/ijp_bench_desktops" $PY bench/bench_desktop_web.py
