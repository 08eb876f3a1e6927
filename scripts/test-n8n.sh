#!/usr/bin/env bash
# End-to-end test against a real n8n 2.8.4 (installed from the npm registry into a cache dir by
# scripts/install-n8n.sh), on throwaway PostgreSQL clusters, all on 127.0.0.1:
#   seed n8n through its own API (owner, API key, credentials, workflows, tags)
#   -> packer create (profile n8n) -> ./restore into a second cluster and a temp root
#   -> start n8n on the restored database: workflows and credentials listed through n8n's API
#      equal those before, and a credential decrypts (n8n returns its data)
#   -> ./restore workflow NAME --to-n8n: appears under NAME_backup_YYYYMMDD.
# Needs root (PostgreSQL runs as `postgres`). ~3 min, plus ~4-10 min for the first n8n install.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh test >&2
n8n=$(scripts/install-n8n.sh)
packer=$(scripts/build-release.sh)

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/n8n-e2e.XXXXXX)
chmod 755 "$work"
pids=()
clusters=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for c in "${clusters[@]}"; do runuser -u postgres -- "$PGBIN/pg_ctl" -D "$c" -m immediate stop >/dev/null 2>&1 || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_cluster() { # dir port
  mkdir -p "$1" && chown postgres "$1"
  runuser -u postgres -- "$PGBIN/initdb" -D "$1/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1/data" -l "$1/log" -w -o "-c listen_addresses=127.0.0.1 -c port=$2 -c unix_socket_directories=$1 -c fsync=off" start >/dev/null
  "$PGBIN/psql" -X -q -h "$1" -p "$2" -U postgres -c "ALTER USER postgres PASSWORD 'pgpw'"
  clusters+=("$1/data")
}

KEY="e2e-key-$(date +%s)"
PW='E2e-Passw0rd'
EMAIL='owner@example.com'
P1=$(free_port); start_cluster "$work/pg1" "$P1"
P2=$(free_port); start_cluster "$work/pg2" "$P2"
"$PGBIN/psql" -X -q -h "$work/pg1" -p "$P1" -U postgres -c "CREATE DATABASE n8n"

start_n8n() { # pgport userfolder -> sets N8N_URL, appends pid
  local port broker
  port=$(free_port); broker=$(free_port)
  mkdir -p "$2"
  DB_TYPE=postgresdb DB_POSTGRESDB_HOST=127.0.0.1 DB_POSTGRESDB_PORT="$1" DB_POSTGRESDB_DATABASE=n8n \
  DB_POSTGRESDB_USER=postgres DB_POSTGRESDB_PASSWORD=pgpw N8N_ENCRYPTION_KEY="$KEY" N8N_USER_FOLDER="$2" \
  N8N_PORT="$port" N8N_LISTEN_ADDRESS=127.0.0.1 N8N_DIAGNOSTICS_ENABLED=false N8N_RUNNERS_BROKER_PORT="$broker" \
  N8N_SECURE_COOKIE=false N8N_PERSONALIZATION_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false \
    "$n8n" start >"$2/n8n.log" 2>&1 &
  pids+=($!)
  N8N_URL="http://127.0.0.1:$port"
  # /healthz/readiness answers before the REST routes are mounted: wait for /rest/login to
  # answer 401 (logged out); before that it answers 404 "Cannot GET" or 503.
  for _ in $(seq 1 180); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$N8N_URL/rest/login" || true)
    [ "$code" = 401 ] && return 0
    sleep 1
  done
  tail -30 "$2/n8n.log" >&2
  fail "n8n did not become ready"
}
rest() { curl -sS -b "$work/cookies" -c "$work/cookies" -H 'Content-Type: application/json' "$@"; }
api() { curl -sS -H "X-N8N-API-KEY: $API_KEY" -H 'Content-Type: application/json' "$@"; }
py() { python3 -c "$1"; }

echo "== n8n on the source database" >&2
start_n8n "$P1" "$work/n8n-home-1"
rest -X POST "$N8N_URL/rest/owner/setup" -d "{\"email\":\"$EMAIL\",\"firstName\":\"Ops\",\"lastName\":\"Owner\",\"password\":\"$PW\"}" >/dev/null
rest -X POST "$N8N_URL/rest/login" -d "{\"emailOrLdapLoginId\":\"$EMAIL\",\"password\":\"$PW\"}" >/dev/null
scopes=$(rest "$N8N_URL/rest/api-keys/scopes" | py 'import json,sys; print(json.dumps(json.load(sys.stdin)["data"]))')
API_KEY=$(rest -X POST "$N8N_URL/rest/api-keys" -d "{\"label\":\"e2e\",\"scopes\":$scopes,\"expiresAt\":null}" | py 'import json,sys; print(json.load(sys.stdin)["data"]["rawApiKey"])')
[ -n "$API_KEY" ] || fail "no API key"

cred=$(api -X POST "$N8N_URL/api/v1/credentials" -d '{"name":"API header ☀","type":"httpHeaderAuth","data":{"name":"X-E2e-Token","value":"e2e-secret"}}' | py 'import json,sys; print(json.load(sys.stdin)["id"])')
api -X POST "$N8N_URL/api/v1/credentials" -d '{"name":"Internal API","type":"httpBasicAuth","data":{"user":"u","password":"p"}}' >/dev/null
for i in 1 2 3; do
  body=$(python3 - "$i" "$cred" <<'PY'
import json, sys
i, cred = sys.argv[1], sys.argv[2]
nodes = [{"name": "Every day", "type": "n8n-nodes-base.scheduleTrigger", "typeVersion": 1.2, "position": [0, 0],
          "parameters": {"rule": {"interval": [{"field": "hours", "hoursInterval": 24}]}}},
         {"name": "Post", "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "position": [220, 0],
          "parameters": {"url": "http://127.0.0.1:9/hook/" + i, "authentication": "genericCredentialType",
                         "genericAuthType": "httpHeaderAuth", "options": {}},
          "credentials": {"httpHeaderAuth": {"id": cred, "name": "API header ☀"}}}]
print(json.dumps({"name": f"Workflow {i} — ünïcødé", "nodes": nodes,
                  "connections": {"Every day": {"main": [[{"node": "Post", "type": "main", "index": 0}]]}},
                  "settings": {"executionOrder": "v1"}}))
PY
)
  wid=$(api -X POST "$N8N_URL/api/v1/workflows" -d "$body" | py 'import json,sys; print(json.load(sys.stdin)["id"])')
  [ "$i" = 1 ] && first=$wid
done
tag=$(api -X POST "$N8N_URL/api/v1/tags" -d '{"name":"ops ✓"}' | py 'import json,sys; print(json.load(sys.stdin)["id"])')
api -X PUT "$N8N_URL/api/v1/workflows/$first/tags" -d "[{\"id\":\"$tag\"}]" >/dev/null
api -X POST "$N8N_URL/api/v1/workflows/$first/activate" >/dev/null
list_workflows() { api "$N8N_URL/api/v1/workflows?limit=250" | py 'import json,sys; print("\n".join(sorted(w["id"]+" "+w["name"]+" active="+str(w["active"])+" tags="+",".join(t["name"] for t in w.get("tags",[])) for w in json.load(sys.stdin)["data"])))'; }
list_creds() { api "$N8N_URL/api/v1/credentials?limit=250" | py 'import json,sys; print("\n".join(sorted(c["id"]+" "+c["name"]+" "+c["type"] for c in json.load(sys.stdin)["data"])))'; }
before_wf=$(list_workflows); before_cred=$(list_creds)
# (here-strings, not pipes into grep -q: with pipefail, an early grep exit fails the pipe)
grep -q "Workflow 3" <<<"$before_wf" || fail "seeding workflows: $before_wf"
grep -q "active=True tags=ops ✓" <<<"$before_wf" || fail "seeding active/tags: $before_wf"

echo "== packer create" >&2
mkdir -p "$work/src/opt/n8n"
printf 'N8N_ENCRYPTION_KEY=%s\nDB_TYPE=postgresdb\n' "$KEY" > "$work/src/opt/n8n/.env"
chmod 600 "$work/src/opt/n8n/.env"
cat > "$work/packer.toml" <<TOML
[bundle]
output_dir = "$work/out"
[[postgres]]
name = "n8n"
url = "postgresql://postgres:pgpw@127.0.0.1:$P1/n8n"
pg_bin = "$PGBIN"
profile = "n8n"
[[files]]
kind = "config"
paths = ["$work/src/opt/n8n/.env"]
TOML
bundle=$("$packer" --config "$work/packer.toml" create | tail -n 1)
"$packer" --config "$work/packer.toml" show "$bundle" --workflows
creds=$("$packer" --config "$work/packer.toml" show "$bundle" --credentials)
grep -q "proven to decrypt" <<<"$creds" || fail "key not proven: $creds"
"$packer" --config "$work/packer.toml" verify --deep "$bundle" | tail -n 1
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true

echo "== ./restore into a second cluster" >&2
mkdir "$work/x" && tar xzf "$bundle" -C "$work/x"
(cd "$work/x" && ./restore --yes --no-install --no-services --root "$work/root" \
   --postgres-url "postgresql://postgres:pgpw@127.0.0.1:$P2/postgres" --pg-bin "$PGBIN") | tail -n 6
KEY=$(sed -n 's/^N8N_ENCRYPTION_KEY=//p' "$work/root$work/src/opt/n8n/.env")

echo "== n8n on the restored database" >&2
start_n8n "$P2" "$work/n8n-home-2"
after_wf=$(list_workflows); after_cred=$(list_creds)
[ "$before_wf" = "$after_wf" ] || fail "workflows differ: before [$before_wf] after [$after_wf]"
[ "$before_cred" = "$after_cred" ] || fail "credentials differ: before [$before_cred] after [$after_cred]"
rest -X POST "$N8N_URL/rest/login" -d "{\"emailOrLdapLoginId\":\"$EMAIL\",\"password\":\"$PW\"}" >/dev/null
# n8n decrypts the credential to show its non-secret fields: with a wrong key this fails.
header=$(rest "$N8N_URL/rest/credentials/$cred?includeData=true" | py 'import json,sys; print(json.load(sys.stdin)["data"]["data"].get("name",""))')
[ "$header" = "X-E2e-Token" ] || fail "the restored credential does not decrypt in n8n ($header)"

echo "== ./restore workflow --to-n8n" >&2
(cd "$work/x" && ./restore workflow "Workflow 2 — ünïcødé" --to-n8n "$N8N_URL" --api-key "$API_KEY" --map-credentials-by-name)
date=$(basename "$bundle" | sed -E 's/^backup_([0-9]{8}).*/\1/')
after=$(list_workflows)
grep -q "Workflow 2 — ünïcødé_backup_$date" <<<"$after" || fail "restored workflow not found: $after"

echo "== a wrong API key is refused before anything is written" >&2
set +e
(cd "$work/x" && ./restore workflow "Workflow 3 — ünïcødé" --to-n8n "$N8N_URL" --api-key wrong-key) 2>"$work/err"; rc=$?
set -e
[ "$rc" = 5 ] && grep -q "rejected the API key" "$work/err" || fail "wrong key: exit $rc, $(cat "$work/err")"

echo "== credentials the target lacks are listed, and mapped by name on request" >&2
api -X DELETE "$N8N_URL/api/v1/credentials/$cred" >/dev/null
newcred=$(api -X POST "$N8N_URL/api/v1/credentials" -d '{"name":"API header ☀","type":"httpHeaderAuth","data":{"name":"X-New","value":"v"}}' | py 'import json,sys; print(json.load(sys.stdin)["id"])')
(cd "$work/x" && ./restore workflow "Workflow 3 — ünïcødé" --to-n8n "$N8N_URL" --api-key "$API_KEY") | tee "$work/out3"
grep -q 'missing on the target: credential "API header ☀" of type httpHeaderAuth' "$work/out3" || fail "missing credential not reported"
(cd "$work/x" && ./restore workflow "Workflow 1 — ünïcødé" --to-n8n "$N8N_URL" --api-key "$API_KEY" --map-credentials-by-name --activate) | tee "$work/out1"
grep -q "mapped credential \"API header ☀\" (httpHeaderAuth) to the target's $newcred" "$work/out1" || fail "credential not mapped"
mapped=$(api "$N8N_URL/api/v1/workflows?limit=250" | py "import json,sys; w=[w for w in json.load(sys.stdin)['data'] if w['name']=='Workflow 1 — ünïcødé_backup_$date'][0]; print(w['active'], [n for n in w['nodes'] if n['name']=='Post'][0]['credentials']['httpHeaderAuth']['id'])")
[ "$mapped" = "True $newcred" ] || fail "mapped workflow: $mapped"

echo "e2e: 1 passed, 0 failed"
