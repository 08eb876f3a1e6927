#!/usr/bin/env bash
# The compose fixture (fixtures/compose) brought up for real and torn down again, by hand, as the
# Rust tests will: engine and images (scripts/docker-engine.sh, scripts/docker-images.sh), a
# project dir in /tmp with a .env of fresh passwords, `up -d`, n8n ready on the published port,
# owner + API key + two workflows and a credential through n8n's own API, the workflows counted
# through the API and in the container's database, the encryption key in the n8n volume, then
# `down -v`: no container, volume or network of the project is left.
#
#   scripts/compose-smoke.sh            # KEEP=1 leaves the project up (and prints how to remove it)
#
# Needs root. Prints timings; secrets are never printed.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
compose_cmd=$(scripts/docker-engine.sh)
read -r -a COMPOSE <<<"$compose_cmd"
t_engine=$SECONDS
scripts/docker-images.sh base postgres n8n >/dev/null
t_images=$SECONDS

work=$(mktemp -d /tmp/compose-smoke.XXXXXX)
project=n8nbk-smoke-$(basename "$work" | cut -d. -f2 | tr 'A-Z' 'a-z')
dc() { (cd "$work/project" && "${COMPOSE[@]}" -p "$project" "$@"); }
cleanup() {
  if [ -n "${KEEP:-}" ]; then echo "kept: cd $work/project && $compose_cmd -p $project down -v" >&2; return; fi
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; dc ps >&2 || true; dc logs --tail 30 >&2 || true; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
secret() { head -c 18 /dev/urandom | base64 | tr '+/' 'xy'; }

mkdir -p "$work/project"
cp fixtures/compose/docker-compose.yml fixtures/compose/init-data.sh "$work/project/"
port=$(free_port)
sed -e "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(secret)/" \
    -e "s/^POSTGRES_NON_ROOT_PASSWORD=.*/POSTGRES_NON_ROOT_PASSWORD=$(secret)/" \
    -e "s/^N8N_PUBLISHED_PORT=.*/N8N_PUBLISHED_PORT=$port/" fixtures/compose/.env.example > "$work/project/.env"
chmod 600 "$work/project/.env"
POSTGRES_USER=$(sed -n 's/^POSTGRES_USER=//p' "$work/project/.env")
POSTGRES_DB=$(sed -n 's/^POSTGRES_DB=//p' "$work/project/.env")

echo "== $compose_cmd -p $project up -d (n8n on 127.0.0.1:$port)" >&2
t_up0=$SECONDS
dc up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "up -d"; }
t_up=$SECONDS
URL="http://127.0.0.1:$port"
for _ in $(seq 1 180); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz" || true)" = 200 ] && break
  sleep 1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz" || true)" = 200 ] || fail "n8n /healthz never answered 200"
t_healthz=$SECONDS
# /healthz answers before the REST routes are mounted: /rest/login answers 401 once they are.
for _ in $(seq 1 120); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/rest/login" || true)" = 401 ] && break
  sleep 1
done
t_ready=$SECONDS

echo "== seed through n8n's API" >&2
PW="Smoke-Passw0rd-$(secret | tr -dc 'a-z' | head -c 6)"
EMAIL=owner@example.com
rest() { curl -sS -b "$work/cookies" -c "$work/cookies" -H 'Content-Type: application/json' "$@"; }
api() { curl -sS -H "X-N8N-API-KEY: $API_KEY" -H 'Content-Type: application/json' "$@"; }
py() { python3 -c "$1"; }
rest -X POST "$URL/rest/owner/setup" -d "{\"email\":\"$EMAIL\",\"firstName\":\"Ops\",\"lastName\":\"Owner\",\"password\":\"$PW\"}" >/dev/null
rest -X POST "$URL/rest/login" -d "{\"emailOrLdapLoginId\":\"$EMAIL\",\"password\":\"$PW\"}" >/dev/null
scopes=$(rest "$URL/rest/api-keys/scopes" | py 'import json,sys; print(json.dumps(json.load(sys.stdin)["data"]))')
API_KEY=$(rest -X POST "$URL/rest/api-keys" -d "{\"label\":\"smoke\",\"scopes\":$scopes,\"expiresAt\":null}" | py 'import json,sys; print(json.load(sys.stdin)["data"]["rawApiKey"])')
[ -n "$API_KEY" ] || fail "no API key"
api -X POST "$URL/api/v1/credentials" -d '{"name":"Smoke header","type":"httpHeaderAuth","data":{"name":"X-Smoke","value":"smoke-secret"}}' >/dev/null
for i in 1 2; do
  api -X POST "$URL/api/v1/workflows" -d "{\"name\":\"Smoke $i\",\"nodes\":[{\"name\":\"Start\",\"type\":\"n8n-nodes-base.manualTrigger\",\"typeVersion\":1,\"position\":[0,0],\"parameters\":{}}],\"connections\":{},\"settings\":{\"executionOrder\":\"v1\"}}" >/dev/null
done
n_api=$(api "$URL/api/v1/workflows?limit=250" | py 'import json,sys; print(len(json.load(sys.stdin)["data"]))')
n_creds=$(api "$URL/api/v1/credentials?limit=250" | py 'import json,sys; print(len(json.load(sys.stdin)["data"]))')
[ "$n_api" = 2 ] || fail "n8n's API lists $n_api workflows, not 2"
[ "$n_creds" = 1 ] || fail "n8n's API lists $n_creds credentials, not 1"
# Where the data really is: the container's database (the server's own psql, as the superuser).
n_db=$(dc exec -T postgres psql -X -At -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c 'SELECT count(*) FROM workflow_entity')
[ "$n_db" = 2 ] || fail "workflow_entity in the container's database holds $n_db rows, not 2"
owner=$(dc exec -T postgres psql -X -At -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "SELECT tableowner FROM pg_tables WHERE tablename = 'workflow_entity'")
# The encryption key n8n wrote on first start, in the n8n volume (presence only, never printed).
dc exec -T n8n sh -c 'grep -q encryptionKey /home/node/.n8n/config' || fail "no encryptionKey in /home/node/.n8n/config"
cfg_owner=$(dc exec -T n8n stat -c '%u:%g %a' /home/node/.n8n/config | tr -d '\r')
echo "workflows: API $n_api, database $n_db; credentials $n_creds; tables owned by $owner; config $cfg_owner" >&2

volumes=$(docker volume ls -q --filter "label=com.docker.compose.project=$project" | sort | tr '\n' ' ')
echo "volumes: $volumes" >&2
grep -q "${project}_db_storage" <<<"$volumes" && grep -q "${project}_n8n_storage" <<<"$volumes" || fail "named volumes missing: $volumes"

echo "== down -v" >&2
t_down0=$SECONDS
dc down -v --remove-orphans >/dev/null 2>&1 || fail "down -v"
t_down=$SECONDS
left=$( { docker ps -aq --filter "label=com.docker.compose.project=$project"
          docker volume ls -q --filter "label=com.docker.compose.project=$project"
          docker network ls -q --filter "label=com.docker.compose.project=$project"; } | wc -l)
[ "$left" = 0 ] || fail "$left containers/volumes/networks of $project left after down -v"

echo "timings: engine $((t_engine - t0)) s, images $((t_images - t_engine)) s, up -d $((t_up - t_up0)) s, /healthz after $((t_healthz - t_up0)) s, REST ready after $((t_ready - t_up0)) s, down -v $((t_down - t_down0)) s" >&2
echo "compose-smoke: 1 passed, 0 failed"
