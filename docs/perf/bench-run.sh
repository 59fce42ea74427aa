#!/bin/bash
# One `larder bench` run as docs/PERFORMANCE.md measures it: a fresh database and JetStream
# namespace, `larder all` started on them, the bench, then the database and the run's streams
# removed (a run's streams left to expire land in a later run's nats-server CPU).
#
#   docs/perf/bench-run.sh N BIN_DIR [DURATION_SECS]
#
#   N        a fresh number per run (database larder_perf_N, namespace perfN)
#   BIN_DIR  the directory holding the release build of `larder` under test
#
# Environment: PGPORT (5432), MODE (default "--mode closed --concurrency 64", or e.g.
# "--mode open --rate 1000"), SLOTS (logical replication slots streamed by pg_recvlogical while
# the stack runs: round 6's decoding cost; needs wal_level = logical), STATS (1: dump
# pg_stat_statements, if loaded, and pg_stat_user_tables before the database goes), SQL (a file of
# statements run as postgres in the fresh database right after `larder migrate`: a variant of the
# schema to measure), OUT (where logs and the bench's output go, /tmp/larder-perf).
# Needs psql and pg_recvlogical, curl, python3 with nats-py (`pip install nats-py`).
set -u
N=$1; BIN=$2; DUR=${3:-20}
PGPORT=${PGPORT:-5432}; SLOTS=${SLOTS:-0}; STATS=${STATS:-}; OUT=${OUT:-/tmp/larder-perf}
MODE=${MODE:---mode closed --concurrency 64}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
DB=larder_perf_$N
P="psql -h 127.0.0.1 -p $PGPORT -U postgres -q"
$P -c "CREATE DATABASE $DB"
URL="postgres://postgres@127.0.0.1:$PGPORT/$DB?sslmode=disable"
for s in order stock delivery notification; do
  export "${s^^}_DATABASE_URL=postgres://larder_$s:larder_$s@127.0.0.1:$PGPORT/$DB?sslmode=disable"
done
DATABASE_URL="$URL" "$BIN/larder" migrate >"$OUT/migrate.$N.log" 2>&1 || { echo "migrate failed"; exit 1; }
if [ -n "${SQL:-}" ]; then $P -d "$DB" -v ON_ERROR_STOP=1 -f "$SQL" || { echo "$SQL failed"; exit 1; }; fi
RECV=()
if [ "$SLOTS" -gt 0 ]; then
  # Messages only: a publication with no tables.
  $P -d "$DB" -c "CREATE PUBLICATION larder_outbox"
  for i in $(seq 1 "$SLOTS"); do
    $P -d "$DB" -c "SELECT pg_create_logical_replication_slot('perf_$i', 'pgoutput')" >/dev/null
    pg_recvlogical -h 127.0.0.1 -p "$PGPORT" -U postgres -d "$DB" --slot "perf_$i" --start \
      -o proto_version=1 -o publication_names=larder_outbox -o messages=true -f /dev/null -s 1 &
    RECV+=($!)
  done
fi
[ -n "$STATS" ] && $P -d "$DB" -c "SELECT pg_stat_statements_reset()" >/dev/null 2>&1
SMTP_PORT=1 NATS_MAX_AGE_SECS=900 NATS_NAMESPACE=perf$N HTTP_ADDR=127.0.0.1:3170 RUST_LOG=warn \
  "$BIN/larder" all >"$OUT/all.$N.log" 2>&1 &
ALL=$!
for _ in $(seq 1 60); do curl -sf http://127.0.0.1:3170/ready >/dev/null && break; sleep 1; done
# shellcheck disable=SC2086 # MODE is several arguments
"$BIN/larder" bench --base-url http://127.0.0.1:3170 --database-url "$URL" $MODE \
  --duration-secs "$DUR" >"$OUT/bench.$N.out" 2>&1
tail -1 "$OUT/bench.$N.out" | python3 -c "
import json, sys
j = json.load(sys.stdin); c = j['cpu_per_order_ms']
print('run $N: completed/s %.0f, CPU ms per order %.3f (larder %.3f, PostgreSQL %.3f, nats %.3f), e2e p99 %.0f ms, consistency %s'
      % (j['completed_per_s'], c['total_ms'], c['larder_ms'], c['postgres_ms'], c['nats_ms'],
         j['end_to_end_latency_ms']['p99'], j['consistency']['ok']))" || tail -5 "$OUT/bench.$N.out"
$P -Atc "SELECT 'commits ' || xact_commit || ', rows inserted ' || tup_inserted || ', updated ' \
  || tup_updated || ', deleted ' || tup_deleted FROM pg_stat_database WHERE datname = '$DB'"
if [ -n "$STATS" ]; then
  $P -d "$DB" -F ' | ' -Atc "SELECT calls, round(total_exec_time::numeric) AS ms, rows, \
    shared_blks_hit, left(regexp_replace(query, '\s+', ' ', 'g'), 150) FROM pg_stat_statements s \
    JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$DB' ORDER BY total_exec_time DESC \
    LIMIT 30" >"$OUT/stats.$N.txt" 2>/dev/null
  $P -d "$DB" -F ' | ' -Atc "SELECT schemaname, relname, seq_scan, seq_tup_read, idx_scan, \
    n_tup_ins FROM pg_stat_user_tables ORDER BY seq_tup_read DESC LIMIT 8" >>"$OUT/stats.$N.txt"
fi
kill -INT $ALL; wait $ALL
for p in "${RECV[@]}"; do kill "$p"; done; wait 2>/dev/null
sleep 1
[ "$SLOTS" -gt 0 ] && $P -d "$DB" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$DB'" >/dev/null
$P -c "DROP DATABASE $DB WITH (FORCE)"
python3 "$HERE/delete_streams.py" "perf$N"
