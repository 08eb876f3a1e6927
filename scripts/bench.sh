#!/usr/bin/env bash
# Benchmark (not a test): packer create / restore against the strongest plain-tools pipeline.
#
#   scripts/bench.sh [SCALE]     SCALE 1.0 (default) = ~1 GB PostgreSQL; 0.1 for a quick run
#   ROUNDS=5 scripts/bench.sh    rounds per side (default 3)
#   COMPRESSION=zstd scripts/bench.sh   packer with [bundle] compression = "zstd"
#
# Generates a dataset (an n8n-like PostgreSQL database with large JSON execution rows, a second
# one from `pgbench -i` for an app, a SQLite database in WAL mode, a data dir of many small files
# and incompressible random ones, a config file), then times
#   packer create                      vs  pg_dump -Fc -Z0 per database + sqlite3 .backup
#                                          + tar -I 'pigz -p<cores>'
#                                      and pg_dump -Fc -Z0 + sqlite3 .backup + restic backup
#                                          (a new repository each round: a first backup)
#   tar xzf + ./restore                vs  tar xzf + createdb + pg_restore -j<cores> per database
#                                          + copy the SQLite file
# The machine may be shared and noisy: both sides run interleaved (A B B A A B ...) and the table
# gives medians and their ratios, with peak memory (max RSS of the largest process, as
# /usr/bin/time reports it) and peak extra disk during create (its output directory polled with
# du). Needs root (PostgreSQL runs as `postgres`).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-1.0}
scripts/ensure-tools.sh test >&2
ROUNDS=${ROUNDS:-3}
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v pigz >/dev/null || need+=(pigz)
command -v restic >/dev/null || need+=(restic)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; fi
packer=$(scripts/build-release.sh)
cores=$(nproc)

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
# The app's database: pgbench's tables (scale 20 is ~320 MB), mostly one big narrow table.
pgbench_scale=$(python3 -c "print(max(1, round(20 * $SCALE)))")
psql_ -p "$P1" -d postgres -c "CREATE DATABASE app"
"$PGBIN/pgbench" -i -q -s "$pgbench_scale" -h 127.0.0.1 -p "$P1" -U postgres app >/dev/null 2>&1
echo "   PostgreSQL: n8n $(psql_ -p "$P1" -d n8n -A -t -c "SELECT pg_size_pretty(pg_database_size('n8n'))"), app $(psql_ -p "$P1" -d n8n -A -t -c "SELECT pg_size_pretty(pg_database_size('app'))") (pgbench -s $pgbench_scale)" >&2

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
compression = "${COMPRESSION:-gzip}"
[[postgres]]
name = "n8n"
url = "postgresql://postgres@127.0.0.1:$P1/n8n"
pg_bin = "$PGBIN"
[[postgres]]
name = "app"
url = "postgresql://postgres@127.0.0.1:$P1/app"
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

# Runs a command under /usr/bin/time while polling the disk use of DIR (blocks, as du counts
# them) in the background; appends "seconds maxrss_kb peak_bytes" to results/LABEL.
mkdir -p "$work/results"
measure() { # label dir command...
  local label=$1 dir=$2; shift 2
  local peak="$work/peak.$label"
  echo 0 >"$peak"
  (max=0; while :; do
     s=$(du -sB1 "$dir" 2>/dev/null | cut -f1 || true); s=${s:-0}
     if [ "$s" -gt "$max" ]; then max=$s; echo "$max" >"$peak"; fi
     sleep 0.2
   done) &
  local poller=$!
  /usr/bin/time -f "%e %M" -o "$work/time.$label" "$@" >/dev/null 2>"$work/err.$label" || {
    kill "$poller" 2>/dev/null || true; cat "$work/err.$label" >&2; exit 1; }
  kill "$poller" 2>/dev/null || true; wait "$poller" 2>/dev/null || true
  echo "$(cat "$work/time.$label") $(cat "$peak")" >>"$work/results/$label"
  echo "   $label: $(tail -n 1 "$work/results/$label")" >&2
}
# Round i runs A then B when i is odd, B then A when even: A B B A A B ... (a third side, when
# given, runs last in odd rounds and first in even ones).
interleave() { # a_function b_function [c_function]
  for ((i = 1; i <= ROUNDS; i++)); do
    if ((i % 2)); then "$1"; "$2"; ${3:+"$3"}; else ${3:+"$3"}; "$2"; "$1"; fi
  done
}

export PGBIN P1 P2 work cores
ours_create() {
  rm -rf "$work/out" && mkdir -p "$work/out"
  sync
  measure pack "$work/out" "$packer" create --quiet --config "$work/packer.toml"
  mv "$work"/out/backup_*.tar.gz "$work/bundle.tar.gz"
}
baseline_pack() {
  for db in n8n app; do
    "$PGBIN/pg_dump" -h 127.0.0.1 -p "$P1" -U postgres -Fc -Z0 -f "$work/bout/base/$db.dump" "$db"
  done
  sqlite3 "$work/src/db/app.db" ".backup '$work/bout/base/app.sqlite'"
  tar -I "pigz -p$cores" -cf "$work/bout/base.tar.gz" -C "$work" src/data src/etc -C "$work/bout" base
}
export -f baseline_pack
base_create() {
  rm -rf "$work/bout" && mkdir -p "$work/bout/base"
  sync
  measure base "$work/bout" bash -c baseline_pack
  mv "$work/bout/base.tar.gz" "$work/base.tar.gz"
}
# pg_dump + restic backup back to back: dumps spooled, then a first backup into a new
# repository (restic compresses with zstd, encrypts and deduplicates; --no-cache: no state
# from an earlier round).
restic_pack() {
  for db in n8n app; do
    "$PGBIN/pg_dump" -h 127.0.0.1 -p "$P1" -U postgres -Fc -Z0 -f "$work/rout/spool/$db.dump" "$db"
  done
  sqlite3 "$work/src/db/app.db" ".backup '$work/rout/spool/app.sqlite'"
  RESTIC_PASSWORD=bench restic --no-cache -q -r "$work/rout/repo" init >/dev/null
  RESTIC_PASSWORD=bench restic --no-cache -q -r "$work/rout/repo" backup "$work/src/data" "$work/src/etc" "$work/rout/spool" >/dev/null
}
export -f restic_pack
restic_create() {
  rm -rf "$work/rout" && mkdir -p "$work/rout/spool"
  sync
  measure restic "$work/rout" bash -c restic_pack
  s_restic=$(du -sB1 "$work/rout/repo" | cut -f1)
}
drop_restored() {
  for db in n8n app; do psql_ -p "$P2" -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db"; done
}
restore_run() {
  mkdir -p "$work/x" && tar xzf "$work/bundle.tar.gz" -C "$work/x"
  "$work/x/restore" --from "$work/x" --yes --no-install --no-services --root "$work/root" \
    --postgres-url "postgresql://postgres@127.0.0.1:$P2/postgres" --pg-bin "$PGBIN"
}
export -f restore_run
ours_restore() {
  rm -rf "$work/x" "$work/root"; drop_restored; sync
  measure rest "$work/x" bash -c restore_run
  python3 -c "
import json; r = json.load(open('$work/x/restore-report.json'))
print('   restore steps: ' + ', '.join(f\"{s['step']} {s['duration_ms']/1000:.1f}s\" for s in r['steps']))" >&2
}
baseline_restore() {
  mkdir -p "$work/bx" "$work/broot" && tar xzf "$work/base.tar.gz" -C "$work/bx"
  for db in n8n app; do
    "$PGBIN/createdb" -h 127.0.0.1 -p "$P2" -U postgres "$db"
    "$PGBIN/pg_restore" -h 127.0.0.1 -p "$P2" -U postgres -j "$cores" -d "$db" "$work/bx/base/$db.dump"
  done
  cp "$work/bx/base/app.sqlite" "$work/broot/app.db"
}
export -f baseline_restore
base_restore() {
  rm -rf "$work/bx" "$work/broot"; drop_restored; sync
  measure brest "$work/bx" bash -c baseline_restore
}

echo "== create, $ROUNDS rounds each: packer create / pg_dump -Fc -Z0 + sqlite3 .backup + tar -I 'pigz -p$cores'" >&2
interleave ours_create base_create restic_create
s_pack=$(stat -c %s "$work/bundle.tar.gz")
s_base=$(stat -c %s "$work/base.tar.gz")
echo "== restore, $ROUNDS rounds each: tar xzf + ./restore / tar xzf + createdb + pg_restore -j$cores + cp" >&2
interleave ours_restore base_restore

python3 - "$work/results" <<PY
import os, statistics, sys
d = sys.argv[1]
def runs(label):
    return [tuple(float(x) for x in line.split()) for line in open(os.path.join(d, label))]
def med(label, i):
    return statistics.median(r[i] for r in runs(label))
print(f"\nscale $SCALE on $cores cores, medians of $ROUNDS interleaved rounds, packer compression = ${COMPRESSION:-gzip}")
print(f"{'step':<8} {'ours s':>7} {'base s':>7} {'ratio':>6} {'ours MiB':>9} {'base MiB':>9} {'ours disk MB':>13} {'base disk MB':>13}   bundle ours / base")
for name, a, b, size in (("create", "pack", "base", f"{$s_pack/1e6:.0f} MB / {$s_base/1e6:.0f} MB ({$s_pack/$s_base:.2f}x)"),
                         ("restore", "rest", "brest", "")):
    ta, tb = med(a, 0), med(b, 0)
    disk = f"{max(r[2] for r in runs(a))/1e6:>13.0f} {max(r[2] for r in runs(b))/1e6:>13.0f}" if name == "create" else f"{'':>13} {'':>13}"
    print(f"{name:<8} {ta:>7.1f} {tb:>7.1f} {ta/tb:>6.2f} {max(r[1] for r in runs(a))/1024:>9.0f} {max(r[1] for r in runs(b))/1024:>9.0f} {disk}   {size}")
tr = med("restic", 0)
print(f"{'restic':<8} {tr:>7.1f} {'':>7} {med('pack', 0)/tr:>6.2f} {'':>9} {max(r[1] for r in runs('restic'))/1024:>9.0f} {'':>13} {max(r[2] for r in runs('restic'))/1e6:>13.0f}   repository {$s_restic/1e6:.0f} MB (ours / pg_dump + restic backup)")
print("all runs (s): " + "; ".join(f"{l} " + " ".join(f"{r[0]:.1f}" for r in runs(l)) for l in ("pack", "base", "restic", "rest", "brest")))
print("baseline create: pg_dump -Fc -Z0 x2 + sqlite3 .backup + tar -I 'pigz -p$cores'; "
      "restore: tar xzf + createdb + pg_restore -j$cores x2 + cp")
PY
