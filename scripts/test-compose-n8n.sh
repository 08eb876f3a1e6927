#!/usr/bin/env bash
# End to end (issue 9): a real n8n 2.8.4 under Docker Compose (fixtures/compose: postgres + n8n,
# named volumes, .env) comes back whole from a bundle after the host lost everything:
#   up -d, seed n8n through its own API (owner, API key, two workflows, one tagged and active,
#   a credential) -> packer create ([[postgres]] compose_service, [[volumes]], [[compose]]):
#   the n8n key found in the n8n volume's `config` and proven -> `down -v`, the project dir
#   removed, nothing of the project left in Docker -> tar xzf + ./restore --yes onto / ->
#   through n8n's API (the owner's login and the API key, both from the restored database): the
#   same workflows (ids, names, active flags, tags) and credentials (ids, names, types), a
#   credential decrypts (n8n's own `export:credentials --decrypted` in the container gives the
#   seeded secret), the workflow count in the container's database equals the seeded one.
#
#   scripts/test-compose-n8n.sh     # KEEP=1 leaves the work dir and the restored project up
#   N8N_DB=sqlite scripts/test-compose-n8n.sh
#
# N8N_DB=sqlite: n8n on its default SQLite instead (fixtures/compose/docker-compose.sqlite.yml:
# one service, database.sqlite and `config` in the one volume n8n_data), packed with [[sqlite]]
# volume = "n8n_data" + [[compose]] (no [[volumes]]): the copy taken while n8n runs, the volume
# restored with it; the same checks, the workflow count read from the restored volume's database.
#
# Needs root, the Docker engine and images (scripts/docker-engine.sh and scripts/docker-images.sh
# are run; no registry needed) and the n8n install cache (scripts/install-n8n.sh): without it
# the test prints SKIPPED and exits 0, unless N8N_E2E is set (then it installs n8n first).
# Secrets are never printed. ~3-4 min with the images cached.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
N8N_DB=${N8N_DB:-postgres}
case "$N8N_DB" in postgres | sqlite) ;; *) echo "N8N_DB=$N8N_DB: use postgres or sqlite" >&2; exit 2 ;; esac
say() { echo "== $*" >&2; }
n8n_bin=${N8N_CACHE_DIR:-$HOME/.cache/n8n-backup-test}/n8n-2.8.4/node_modules/.bin/n8n
if [ ! -x "$n8n_bin" ] && [ -z "${N8N_E2E:-}" ]; then
  echo "compose n8n end-to-end test SKIPPED: n8n is not installed (run scripts/install-n8n.sh, or N8N_E2E=1 $0)"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (Docker, volumes, a restore onto /)" >&2; exit 1; }

# 1. Engine and images.
compose_cmd=$(scripts/docker-engine.sh)
read -r -a COMPOSE <<<"$compose_cmd"
scripts/install-n8n.sh >/dev/null
scripts/docker-images.sh base postgres n8n >/dev/null
t_images=$SECONDS

# 2. The static restore packer embeds, and packer.
scripts/ensure-tools.sh build >&2
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --locked -p restorer --target x86_64-unknown-linux-musl >&2
cargo build --release --locked -p packer >&2
export PACKER_RESTORER="$target/x86_64-unknown-linux-musl/release/restore"
packer="$target/release/packer"
t_build=$SECONDS

work=$(mktemp -d /tmp/compose-n8n.XXXXXX)
chmod 755 "$work"
project=n8nbk-e2e-$(basename "$work" | cut -d. -f2 | tr 'A-Z' 'a-z')
dir="$work/project" # where the deployment lives, and where the restore puts it back
dc() { (cd "$dir" && "${COMPOSE[@]}" -p "$project" "$@"); }
# Everything Docker has of the project (compose labels every container, volume and network).
leftovers() {
  { docker ps -aq --filter "label=com.docker.compose.project=$project"
    docker volume ls -q --filter "label=com.docker.compose.project=$project"
    docker network ls -q --filter "label=com.docker.compose.project=$project"; } | wc -l
}
# Also what has the project's name but no label (a volume created by hand, a stray network).
remove_all() {
  local ids
  ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
  [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
  for v in $(docker volume ls -q | grep "^${project}_" || true); do docker volume rm -f "$v" >/dev/null 2>&1 || true; done
  for n in $(docker network ls -q --filter "label=com.docker.compose.project=$project"); do docker network rm "$n" >/dev/null 2>&1 || true; done
  for n in $(docker network ls --format '{{.Name}}' | grep "^${project}_" || true); do docker network rm "$n" >/dev/null 2>&1 || true; done
}
cleanup() {
  if [ -n "${KEEP:-}" ]; then echo "kept: $work (cd $dir && $compose_cmd -p $project down -v)" >&2; return; fi
  [ -d "$dir" ] && dc down -v --remove-orphans >/dev/null 2>&1 || true
  remove_all
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  if [ -d "$dir" ]; then dc ps >&2 || true; dc logs --tail 40 >&2 || true; fi
  exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
secret() { head -c 18 /dev/urandom | base64 | tr '+/' 'xy'; }
py() { python3 -c "$1"; }

# 3. The deployment, seeded through n8n's API.
mkdir -p "$dir"
port=$(free_port)
if [ "$N8N_DB" = sqlite ]; then
  cp fixtures/compose/docker-compose.sqlite.yml "$dir/docker-compose.yml"
  echo "N8N_PUBLISHED_PORT=$port" >"$dir/.env"
  n8n_volume=${project}_n8n_data
else
  cp fixtures/compose/docker-compose.yml fixtures/compose/init-data.sh "$dir/"
  sed -e "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(secret)/" \
      -e "s/^POSTGRES_NON_ROOT_PASSWORD=.*/POSTGRES_NON_ROOT_PASSWORD=$(secret)/" \
      -e "s/^N8N_PUBLISHED_PORT=.*/N8N_PUBLISHED_PORT=$port/" fixtures/compose/.env.example >"$dir/.env"
  POSTGRES_USER=$(sed -n 's/^POSTGRES_USER=//p' "$dir/.env")
  POSTGRES_DB=$(sed -n 's/^POSTGRES_DB=//p' "$dir/.env")
  n8n_volume=${project}_n8n_storage
fi
chmod 600 "$dir/.env"
URL="http://127.0.0.1:$port"

wait_ready() { # what
  local code=""
  # /healthz answers before the REST routes are mounted: /rest/login answers 401 once they are.
  for _ in $(seq 1 240); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/rest/login" || true)
    [ "$code" = 401 ] && return 0
    sleep 1
  done
  fail "$1: n8n on $URL never became ready (/rest/login answered ${code:-nothing})"
}

say "$compose_cmd -p $project up -d (n8n on 127.0.0.1:$port, project in $dir)"
t_up0=$SECONDS
dc up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "up -d"; }
wait_ready "first start"
t_up=$SECONDS

say "seed through n8n's API"
PW="E2e-Passw0rd-$(secret | tr -dc 'a-z' | head -c 6)"
EMAIL=owner@example.com
SECRET_VALUE="compose-secret-$(secret | tr -dc 'a-z0-9' | head -c 10)"
rest() { curl -sS -b "$work/cookies" -c "$work/cookies" -H 'Content-Type: application/json' "$@"; }
api() { curl -sS -H "X-N8N-API-KEY: $API_KEY" -H 'Content-Type: application/json' "$@"; }
rest -X POST "$URL/rest/owner/setup" -d "{\"email\":\"$EMAIL\",\"firstName\":\"Ops\",\"lastName\":\"Owner\",\"password\":\"$PW\"}" >/dev/null
rest -X POST "$URL/rest/login" -d "{\"emailOrLdapLoginId\":\"$EMAIL\",\"password\":\"$PW\"}" >/dev/null
scopes=$(rest "$URL/rest/api-keys/scopes" | py 'import json,sys; print(json.dumps(json.load(sys.stdin)["data"]))')
API_KEY=$(rest -X POST "$URL/rest/api-keys" -d "{\"label\":\"e2e\",\"scopes\":$scopes,\"expiresAt\":null}" | py 'import json,sys; print(json.load(sys.stdin)["data"]["rawApiKey"])')
[ -n "$API_KEY" ] || fail "no API key"

cred=$(api -X POST "$URL/api/v1/credentials" -d "{\"name\":\"Compose header ☀\",\"type\":\"httpHeaderAuth\",\"data\":{\"name\":\"X-Compose-Token\",\"value\":\"$SECRET_VALUE\"}}" \
  | py 'import json,sys; print(json.load(sys.stdin)["id"])')
[ -n "$cred" ] || fail "no credential created"
for i in 1 2; do
  # A schedule trigger, so the workflow can be activated (a manual trigger alone cannot).
  body=$(python3 - "$i" "$cred" <<'PY'
import json, sys
i, cred = sys.argv[1], sys.argv[2]
nodes = [{"name": "Every day", "type": "n8n-nodes-base.scheduleTrigger", "typeVersion": 1.2, "position": [0, 0],
          "parameters": {"rule": {"interval": [{"field": "hours", "hoursInterval": 24}]}}},
         {"name": "Post", "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "position": [220, 0],
          "parameters": {"url": "http://127.0.0.1:9/hook/" + i, "authentication": "genericCredentialType",
                         "genericAuthType": "httpHeaderAuth", "options": {}},
          "credentials": {"httpHeaderAuth": {"id": cred, "name": "Compose header ☀"}}}]
print(json.dumps({"name": f"Compose workflow {i} — ünïcødé", "nodes": nodes,
                  "connections": {"Every day": {"main": [[{"node": "Post", "type": "main", "index": 0}]]}},
                  "settings": {"executionOrder": "v1"}}))
PY
)
  wid=$(api -X POST "$URL/api/v1/workflows" -d "$body" | py 'import json,sys; print(json.load(sys.stdin)["id"])')
  [ "$i" = 1 ] && first=$wid
done
tag=$(api -X POST "$URL/api/v1/tags" -d '{"name":"ops ✓"}' | py 'import json,sys; print(json.load(sys.stdin)["id"])')
api -X PUT "$URL/api/v1/workflows/$first/tags" -d "[{\"id\":\"$tag\"}]" >/dev/null
api -X POST "$URL/api/v1/workflows/$first/activate" >/dev/null
list_workflows() { api "$URL/api/v1/workflows?limit=250" | py 'import json,sys; print("\n".join(sorted(w["id"]+" "+w["name"]+" active="+str(w["active"])+" tags="+",".join(sorted(t["name"] for t in w.get("tags",[]))) for w in json.load(sys.stdin)["data"])))'; }
list_creds() { api "$URL/api/v1/credentials?limit=250" | py 'import json,sys; print("\n".join(sorted(c["id"]+" "+c["name"]+" "+c["type"] for c in json.load(sys.stdin)["data"])))'; }
if [ "$N8N_DB" = sqlite ]; then
  # The image has no sqlite3: read the volume's database from the host (a reader beside n8n).
  db_workflows() { sqlite3 -readonly "$(docker volume inspect -f '{{.Mountpoint}}' "$n8n_volume")/database.sqlite" 'SELECT count(*) FROM workflow_entity'; }
  db_owner() { stat -c '%u:%g %a' "$(docker volume inspect -f '{{.Mountpoint}}' "$n8n_volume")/database.sqlite"; }
else
  db_workflows() { dc exec -T postgres psql -X -At -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c 'SELECT count(*) FROM workflow_entity' | tr -d '\r'; }
  db_owner() { echo n/a; }
fi
before_wf=$(list_workflows); before_cred=$(list_creds)
# (here-strings, not pipes into grep -q: with pipefail, an early grep exit fails the pipe)
[ "$(grep -c . <<<"$before_wf")" = 2 ] || fail "seeding workflows: [$before_wf]"
grep -q "active=True tags=ops ✓" <<<"$before_wf" || fail "seeding active/tags: [$before_wf]"
grep -q "active=False tags=$" <<<"$before_wf" || fail "seeding the inactive workflow: [$before_wf]"
[ "$(grep -c . <<<"$before_cred")" = 1 ] || fail "seeding credentials: [$before_cred]"
[ "$(db_workflows)" = 2 ] || fail "workflow_entity in the container's database holds $(db_workflows) rows, not 2"
cfg_before=$(dc exec -T n8n stat -c '%u:%g %a' /home/node/.n8n/config | tr -d '\r')
db_owner_before=$(db_owner)
echo "seeded: workflows [$(tr '\n' ';' <<<"$before_wf")] credentials [$(tr '\n' ';' <<<"$before_cred")]" >&2
t_seed=$SECONDS

# 4. Pack.
say "packer create"
compose_file="$dir/docker-compose.yml"
if [ "$N8N_DB" = sqlite ]; then
  sources=$(cat <<TOML
[[sqlite]]
name = "n8n"
volume = "n8n_data"
path = "database.sqlite"
compose_file = "$compose_file"
compose_project = "$project"
profile = "n8n"
TOML
)
else
  sources=$(cat <<TOML
[[postgres]]
name = "n8n"
compose_service = "postgres"
compose_file = "$compose_file"
compose_project = "$project"
profile = "n8n"

[[volumes]]
compose_file = "$compose_file"
compose_project = "$project"
TOML
)
fi
cat >"$work/packer.toml" <<TOML
[bundle]
output_dir = "$work/out"
name = "compose-n8n"

$sources

[[compose]]
file = "$compose_file"
project = "$project"

[services]
health = ["http://127.0.0.1:$port/healthz"]
n8n_url = "http://127.0.0.1:$port"
TOML
"$packer" --config "$work/packer.toml" create >"$work/create.out" 2>"$work/create.log" \
  || { cat "$work/create.log" "$work/create.out" >&2; fail "packer create exited non-zero"; }
bundle=$(tail -n 1 "$work/create.out")
[ -f "$bundle" ] || { cat "$work/create.log" "$work/create.out" >&2; fail "packer create printed no bundle path"; }
mkdir "$work/x"
tar xzf "$bundle" -C "$work/x"
key=$(python3 - "$work/x/manifest.json" "$N8N_DB" "$n8n_volume" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
k = m["n8n"]["encryption_key"]
if sys.argv[2] == "sqlite":
    # The database in the volume, with its counts; the volume captured with it.
    s = m["sqlite"][0]
    rows = {t["name"]: t["rows"] for t in s["tables"]}
    assert s.get("volume") == sys.argv[3] and m["n8n"]["database_kind"] == "sqlite", s
    assert rows.get("workflow_entity") == 2 and rows.get("credentials_entity") == 1, rows
    assert [v["name"] for v in m["docker"]["volumes"]] == [sys.argv[3]], m["docker"]["volumes"]
print(k.get("found_in") or "", k.get("proven"), len(m["n8n"]["workflows"]), len(m["n8n"]["credentials"]))
PY
) || fail "the manifest has no n8n section, or (sqlite) not the database in its volume"
read -r found_in proven n_wf n_cred <<<"$key"
case "$found_in" in
  /var/lib/docker/volumes/"${n8n_volume}"/_data/config) ;;
  *) fail "the n8n key was not found in the n8n volume's config (found_in: ${found_in:-none})" ;;
esac
[ "$proven" = True ] || fail "the n8n key in $found_in was not proven to decrypt a credential"
[ "$n_wf" = 2 ] && [ "$n_cred" = 1 ] || fail "the manifest lists $n_wf workflows and $n_cred credentials, not 2 and 1"
echo "bundle $(basename "$bundle"): key in $found_in, proven; $n_wf workflows, $n_cred credential" >&2
t_pack=$SECONDS

# 5. The host loses everything.
say "down -v, project dir removed"
dc down -v --remove-orphans >/dev/null 2>&1 || fail "down -v"
rm -rf "$dir"
[ "$(leftovers)" = 0 ] || fail "$(leftovers) containers/volumes/networks of $project left after down -v"
[ -z "$(docker volume ls -q | grep "^${project}_" || true)" ] || fail "volumes of $project left after down -v"
t_down=$SECONDS

# 6. Restore as the operator would: the bundle's own restore, onto /.
say "./restore --yes onto /"
set +e
(cd "$work/x" && env -u N8N_API_KEY ./restore --yes --no-install --checkpoint-dir "$work/checkpoint" --report "$work/report.json") >"$work/restore.log" 2>&1
rc=$?
set -e
if [ "$rc" != 0 ]; then
  tail -n 40 "$work/restore.log" >&2
  [ -f "$work/report.json" ] && python3 - "$work/report.json" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))
print("outcome:", r.get("outcome"))
for s in r.get("steps", []):
    print(" ", json.dumps(s, ensure_ascii=False))
PY
  fail "./restore exited $rc"
fi
tail -n 4 "$work/restore.log" >&2
# The order that keeps n8n off an empty database: its database service alone, the dump into
# it, validation, and only then the whole project.
python3 - "$work/report.json" "$N8N_DB" <<'PY' || fail "the restore's steps are not in the order that brings n8n back whole"
import json, sys
r = json.load(open(sys.argv[1]))
for s in r["steps"]:
    print(f"  {s['result']:8} {s['step']:20} {s['duration_ms']:>6} ms  {s.get('detail', '')}", file=sys.stderr)
steps = [s["step"] for s in r["steps"]]
if sys.argv[2] == "sqlite":
    want = ["docker volumes", "files", "sqlite n8n", "validate", "docker compose up", "health checks"]
    bad = [c for c in r["validation"] if not c["ok"]]
    if bad or not any(c["check"].startswith("sqlite n8n") for c in r["validation"]):
        sys.exit(f"sqlite validation: {bad or 'no sqlite n8n check'}")
else:
    want = ["docker volumes", "files", "start postgres", "postgres n8n", "validate", "docker compose up", "health checks"]
missing = [w for w in want if w not in steps]
if missing or [steps.index(w) for w in want] != sorted(steps.index(w) for w in want):
    sys.exit(f"steps {steps}, wanted in order {want}")
# The content check: n8n, asked through its API with the restored database's own key, serves
# the bundle's workflows (a wrong encryption key would have n8n reject that key).
n8n = [h for h in r["health"] if h["target"].endswith("(n8n's workflows)")]
if len(n8n) != 1 or not n8n[0]["ok"] or n8n[0]["detail"] != "serves the bundle's 2 workflow(s)":
    sys.exit(f"the n8n content check is not in the report as passed: {r['health']}")
print(f"  n8n check: {n8n[0]['detail']} after {n8n[0]['attempts']} tries", file=sys.stderr)
PY
t_restore=$SECONDS

# 7. From outside, through n8n's API.
say "the restored n8n"
# The project directory as it was: compose file, .env (mode 600) and the init-data.sh the
# postgres service bind-mounts (a missing one would come back as a directory Docker made).
files="docker-compose.yml .env"
[ "$N8N_DB" = sqlite ] || files="$files init-data.sh"
for f in $files; do
  [ -f "$dir/$f" ] || fail "$dir/$f is not back as a file ($(stat -c %F "$dir/$f" 2>/dev/null || echo missing))"
done
[ "$N8N_DB" = sqlite ] || [ "$(sha256sum <"$dir/init-data.sh")" = "$(sha256sum <fixtures/compose/init-data.sh)" ] || fail "$dir/init-data.sh differs from the packed one"
[ "$(stat -c %a "$dir/.env")" = 600 ] || fail "$dir/.env came back with mode $(stat -c %a "$dir/.env"), not 600"
wait_ready "after the restore"
after_wf=$(list_workflows); after_cred=$(list_creds)
[ "$before_wf" = "$after_wf" ] || fail "workflows differ: before [$before_wf] after [$after_wf]"
[ "$before_cred" = "$after_cred" ] || fail "credentials differ: before [$before_cred] after [$after_cred]"
rm -f "$work/cookies"
[ "$(rest -o /dev/null -w '%{http_code}' -X POST "$URL/rest/login" -d "{\"emailOrLdapLoginId\":\"$EMAIL\",\"password\":\"$PW\"}")" = 200 ] \
  || fail "the owner created before the backup cannot log in"
# n8n decrypts the credential to show its non-secret fields: with a wrong key this fails.
header=$(rest "$URL/rest/credentials/$cred?includeData=true" | py 'import json,sys; print(json.load(sys.stdin)["data"]["data"].get("name",""))')
[ "$header" = "X-Compose-Token" ] || fail "the restored credential does not decrypt in n8n (header name: ${header:-none})"
# And its secret, by n8n's own CLI in the container (the key from the restored volume).
value=$(dc exec -T n8n n8n export:credentials --decrypted --id="$cred" --output=/tmp/cred.json >/dev/null 2>&1 \
  && dc exec -T n8n cat /tmp/cred.json | py 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["data"]["value"])') \
  || fail "n8n export:credentials --decrypted failed in the restored container"
[ "$value" = "$SECRET_VALUE" ] || fail "the restored credential's secret is not the seeded one"
cfg=$(dc exec -T n8n stat -c '%u:%g %a' /home/node/.n8n/config | tr -d '\r')
[ "$cfg" = "$cfg_before" ] || fail "n8n's config in the restored volume is $cfg, was $cfg_before"
[ "$(db_workflows)" = 2 ] || fail "workflow_entity in the restored container's database holds $(db_workflows) rows, not 2"
[ "$(db_owner)" = "$db_owner_before" ] || fail "n8n's database in the restored volume is $(db_owner), was $db_owner_before"
t_check=$SECONDS

echo "timings: engine+images $((t_images - t0)) s, build $((t_build - t_images)) s, up+ready $((t_up - t_up0)) s, seed $((t_seed - t_up)) s, pack $((t_pack - t_seed)) s, down $((t_down - t_pack)) s, restore $((t_restore - t_down)) s, checks $((t_check - t_restore)) s, total $((SECONDS - t0)) s" >&2
echo "compose-n8n ($N8N_DB): 1 passed, 0 failed"
