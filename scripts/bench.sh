#!/usr/bin/env bash
# Benchmark (not a test): packer create / restore against the plain-tools baseline.
#
#   scripts/bench.sh [SCALE]     SCALE 1.0 (default) = ~1 GB PostgreSQL; 0.1 for a quick run
#
# Generates a dataset (a PostgreSQL database with n8n-like tables and large JSON execution rows,
# a SQLite database, a data dir of many small files and some incompressible large ones), then
# times, in one run:
#   packer create                      vs  pg_dump -Fc + sqlite3 .backup + tar czf
#   tar xzf + ./restore (PostgreSQL)   vs  tar xzf + pg_restore
# and prints the ratios and peak memory (max RSS). Needs root (PostgreSQL runs as `postgres`).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-1.0}
scripts/ensure-tools.sh test >&2
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
packer=$(scripts/build-release.sh)
restore_bin="$PWD/target/release/restore"

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/n8n-bench.XXXXXX)
chmod 777 "$work"
clusters=()
cleanup() {
  for c in "${clusters[@]}"; do runuser -u postgres -- "$PGBIN/pg_ctl" -D "$c" -m immediate stop >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_cluster() { # dir port
  runuser -u postgres -- "$PGBIN/initdb" -D "$1" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1" -l "$1.log" -w -o "-c listen_addresses=127.0.0.1 -c port=$2 -c unix_socket_directories=$work -c fsync=off" start >/dev/null
  clusters+=("$1")
}
psql_() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"; }

P1=$(free_port); start_cluster "$work/pg1" "$P1"
P2=$(free_port); start_cluster "$work/pg2" "$P2"

rows=$(python3 -c "print(max(1000, int(150000 * $SCALE)))")
echo "== generating: $rows execution rows (~$(python3 -c "print(round(6.5*$rows/1000))") MB of JSON) ..." >&2
psql_ -p "$P1" -d postgres -c "CREATE DATABASE n8n"
psql_ -p "$P1" -d n8n <<SQL
CREATE TABLE workflow_entity (id varchar(36) PRIMARY KEY, name varchar(128), active boolean, nodes json, connections json, "createdAt" timestamptz DEFAULT now(), "updatedAt" timestamptz DEFAULT now());
INSERT INTO workflow_entity (id, name, active, nodes, connections)
  SELECT md5(i::text), 'Workflow ' || i, i % 3 = 0,
         (SELECT json_agg(json_build_object('name', 'Node ' || j, 'type', 'n8n-nodes-base.httpRequest', 'position', json_build_array(j * 200, 300), 'parameters', json_build_object('url', 'https://example.com/' || md5((i*j)::text)))) FROM generate_series(1, 12) j),
         '{}'::json
  FROM generate_series(1, 2000) i;
CREATE TABLE execution_entity (id serial PRIMARY KEY, "workflowId" varchar(36), finished boolean, mode varchar, status varchar, "startedAt" timestamptz, "stoppedAt" timestamptz);
CREATE TABLE execution_data ("executionId" int PRIMARY KEY, "workflowData" json, data text);
INSERT INTO execution_entity ("workflowId", finished, mode, status, "startedAt", "stoppedAt")
  SELECT md5((i % 2000)::text), true, 'trigger', 'success', now() - i * interval '1 minute', now() - i * interval '1 minute' + interval '3 seconds'
  FROM generate_series(1, $rows) i;
INSERT INTO execution_data ("executionId", "workflowData", data)
  SELECT i, json_build_object('id', md5((i % 2000)::text), 'name', 'Workflow ' || (i % 2000)),
         (SELECT string_agg(json_build_object('node', 'Node ' || k, 'ts', 1700000000 + i * 7 + k, 'status', 200, 'body', md5((i * 31 + k)::text) || md5(k::text), 'items', json_build_array(i, k, i * k))::text, ',') FROM generate_series(1, 45) k)
  FROM generate_series(1, $rows) i;
SQL
echo "   PostgreSQL: $(psql_ -p "$P1" -d n8n -A -t -c "SELECT pg_size_pretty(pg_database_size('n8n'))")" >&2

mkdir -p "$work/src/data/small" "$work/src/db" "$work/src/etc"
sqlite3 "$work/src/db/app.db" <<SQL
PRAGMA journal_mode=WAL;
CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $((rows * 2)))
INSERT INTO events (payload) SELECT printf('{"event":%d,"kind":"webhook","body":"%s"}', i, hex(randomblob(100))) FROM c;
SQL
python3 - "$work/src/data/small" "$rows" <<'PY'
import os, sys
d, rows = sys.argv[1], int(sys.argv[2])
for i in range(max(200, rows // 20)):
    with open(os.path.join(d, f"file{i:06d}.txt"), "w") as f:
        f.write(f"small file {i}\n" * (20 + i % 50))
PY
big_mb=$(python3 -c "print(max(4, int(100 * $SCALE)))")
for n in 1 2; do head -c "$((big_mb * 1024 * 1024))" /dev/urandom > "$work/src/data/random$n.bin"; done
echo "N8N_ENCRYPTION_KEY=bench" > "$work/src/etc/.env"
echo "   SQLite: $(du -sh "$work/src/db" | cut -f1), data dir: $(du -sh "$work/src/data" | cut -f1) ($(find "$work/src/data" -type f | wc -l) files)" >&2

cat > "$work/packer.toml" <<TOML
[bundle]
output_dir = "$work/out"
name = "n8n"
[[postgres]]
name = "n8n"
url = "postgresql://postgres@127.0.0.1:$P1/n8n"
pg_bin = "$PGBIN"
[[sqlite]]
name = "app"
path = "$work/src/db/app.db"
[[files]]
kind = "config"
paths = ["$work/src/etc/.env"]
[[files]]
kind = "data"
paths = ["$work/src/data"]
TOML

measure() { # label command... -> prints "seconds maxrss_kb"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time.$label" "$@" >/dev/null 2>"$work/err.$label" || { cat "$work/err.$label" >&2; exit 1; }
  cat "$work/time.$label"
}

sync
echo "== packer create" >&2
read -r t_pack m_pack < <(measure pack "$packer" create --quiet --config "$work/packer.toml")
bundle=$(ls "$work"/out/backup_*.tar.gz)
s_pack=$(stat -c %s "$bundle")

echo "== baseline: pg_dump -Fc + sqlite3 .backup + tar czf" >&2
mkdir -p "$work/base"
baseline_pack() {
  "$PGBIN/pg_dump" -h 127.0.0.1 -p "$P1" -U postgres -Fc -f "$work/base/n8n.dump" n8n
  sqlite3 "$work/src/db/app.db" ".backup '$work/base/app.sqlite'"
  tar czf "$work/base.tar.gz" -C "$work" base src/data src/etc
}
export -f baseline_pack; export PGBIN P1 work
read -r t_base m_base < <(measure base bash -c baseline_pack)
s_base=$(stat -c %s "$work/base.tar.gz")

echo "== restore: tar xzf + ./restore (into a second cluster)" >&2
restore_run() {
  mkdir -p "$work/x" && tar xzf "$bundle" -C "$work/x"
  "$work/x/restore" --from "$work/x" --yes --no-install --no-services --root "$work/root" \
    --postgres-url "postgresql://postgres@127.0.0.1:$P2/postgres" --pg-bin "$PGBIN"
}
export -f restore_run; export bundle P2
read -r t_rest m_rest < <(measure rest bash -c restore_run)

python3 -c "
import json; r = json.load(open('$work/x/restore-report.json'))
print('   restore steps: ' + ', '.join(f\"{s['step']} {s['duration_ms']/1000:.1f}s\" for s in r['steps']))" >&2
echo "== baseline restore: tar xzf + pg_restore" >&2
baseline_restore() {
  mkdir -p "$work/bx" && tar xzf "$work/base.tar.gz" -C "$work/bx"
  "$PGBIN/createdb" -h 127.0.0.1 -p "$P2" -U postgres n8n_base
  "$PGBIN/pg_restore" -h 127.0.0.1 -p "$P2" -U postgres -d n8n_base "$work/bx/base/n8n.dump"
}
export -f baseline_restore
read -r t_brest m_brest < <(measure brest bash -c baseline_restore)

python3 - <<PY
rows = [
  ("create", $t_pack, $m_pack, $s_pack, "pg_dump -Fc + sqlite .backup + tar czf", $t_base, $m_base, $s_base),
  ("restore", $t_rest, $m_rest, 0, "tar xzf + pg_restore", $t_brest, $m_brest, 0),
]
print(f"\nscale $SCALE on {__import__('os').cpu_count()} cores")
print(f"{'step':<8} {'ours s':>8} {'ours MiB':>9} {'base s':>8} {'base MiB':>9} {'time ratio':>10}   size ours/base")
for name, t, m, s, base, bt, bm, bs in rows:
    size = f"{s/1e6:.0f} MB / {bs/1e6:.0f} MB" if s else ""
    print(f"{name:<8} {t:>8.1f} {m/1024:>9.0f} {bt:>8.1f} {bm/1024:>9.0f} {t/bt:>10.2f}   {size}")
print("baseline for create: " + rows[0][4] + "; for restore: " + rows[1][4])
PY
