"""Outbox rows against logical messages, PostgreSQL's side (docs/PERFORMANCE.md, round 6).

    python3 micro.py outbox|emit [TRANSACTIONS_PER_CLIENT]

Two pgbench clients write 16 events per transaction (produce_<variant>.sql) while one relay takes
them: `outbox` claims rows as the services' relay does (DELETE ... RETURNING, VACUUM every 5 s);
`emit` peeks the messages from a pgoutput slot and advances it. Prints the CPU of every process of
the cluster per event and the WAL per event. Run against a private cluster with wal_level =
logical (PGPORT, PGDATA), in a database made with logical_setup.sql (PGDATABASE, "lmbench").
Needs psycopg2 and pgbench.
"""
import os, subprocess, sys, time, threading
import psycopg2
from cpu import cluster_cpu
PORT = os.environ.get('PGPORT', '5499')
DBNAME = os.environ.get('PGDATABASE', 'lmbench')
DSN = f'host=127.0.0.1 port={PORT} user=postgres dbname={DBNAME}'
HERE = os.path.dirname(os.path.abspath(__file__))
variant = sys.argv[1]          # outbox | emit
clients, txns = 2, int(sys.argv[2]) if len(sys.argv) > 2 else 2000
events = clients * txns * 16

def relay_outbox(got):
    c = psycopg2.connect(DSN); cur = c.cursor(); last_vac = time.time()
    claim = ("DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM outbox WHERE published_at IS NULL "
             "ORDER BY created_at LIMIT 64 FOR UPDATE SKIP LOCKED)) "
             "RETURNING id, subject, payload::text, headers::text, created_at")
    while got[0] < events:
        cur.execute(claim); n = len(cur.fetchall()); c.commit(); got[0] += n
        if time.time() - last_vac > 5:
            c.autocommit = True; cur.execute('VACUUM (SKIP_LOCKED) outbox'); c.autocommit = False
            last_vac = time.time()
        if n == 0: time.sleep(0.005)
    c.close()

def relay_slot(got):
    c = psycopg2.connect(DSN); c.autocommit = True; cur = c.cursor()
    while got[0] < events:
        cur.execute("SELECT lsn, data FROM pg_logical_slot_peek_binary_changes('lm', NULL, 1024, "
                    "'proto_version', '1', 'publication_names', 'larder_outbox', 'messages', 'true')")
        rows = cur.fetchall()
        n = sum(1 for _, d in rows if bytes(d)[:1] == b'M')
        if rows:
            cur.execute("SELECT pg_replication_slot_advance('lm', %s)", (rows[-1][0],))
        got[0] += n
        if n == 0: time.sleep(0.005)
    c.close()

c = psycopg2.connect(DSN); c.autocommit = True; cur = c.cursor()
cur.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'lm'")
if variant == 'emit' and cur.fetchone()[0] == 0:
    cur.execute("SELECT pg_create_logical_replication_slot('lm', 'pgoutput')")
cur.execute('TRUNCATE outbox'); cur.execute('CHECKPOINT'); cur.execute('SELECT pg_current_wal_lsn()'); lsn0 = cur.fetchone()[0]
cpu0 = cluster_cpu(os.environ['PGDATA']); t0 = time.time(); got = [0]
relay = threading.Thread(target=relay_outbox if variant == 'outbox' else relay_slot, args=(got,))
relay.start()
subprocess.run(['pgbench', '-h', '127.0.0.1', '-p', PORT, '-U', 'postgres', '-n', '-c', str(clients),
                '-t', str(txns), '-f', os.path.join(HERE, f'produce_{variant}.sql'), DBNAME], check=True, capture_output=True)
relay.join()
cpu1 = cluster_cpu(os.environ['PGDATA']); t1 = time.time()
cur.execute('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)', (lsn0,)); wal = cur.fetchone()[0]
print(f'{variant}: {events} events in {t1-t0:.1f} s, cluster CPU {cpu1-cpu0:.2f} s = '
      f'{(cpu1-cpu0)/events*1e6:.1f} us/event, WAL {float(wal)/events:.0f} B/event')
