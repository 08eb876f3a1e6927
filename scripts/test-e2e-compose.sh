#!/usr/bin/env bash
# A Docker Compose deployment rebuilt on a bare fresh Debian host (scripts/fresh-host.sh) by the
# bundle's own restore, Docker included (issue 9):
#   here (this machine's engine, images built by scripts/docker-images.sh): a compose project
#        with postgres (port not published), an app with a named volume holding files owned
#        1000:1000, a web service published on 127.0.0.1 -> seeded -> packer create with
#        [[postgres]] compose_service, [[volumes]], [[compose]], [docker] include_images = true
#        (the hosts have no route out: images only get in inside the bundle) -> packer ship
#   cmp (no systemd) and cmps (systemd as PID 1): no docker -> ./restore --yes installs docker.io
#        and docker-compose, starts the engine, loads the images, creates the volumes, restores
#        the files, starts postgres alone, restores the dump into it, validates, up -d, health
#   then inside each host: the rows in the container's database, the volume's file with its
#   owner, every service running, report outcome restored with the http:// check answered.
# Needs root. About 3.5 minutes once built (two apt installs of docker.io + docker-compose, a
# 500 MB bundle of 900 MB of images shipped twice).
set -euo pipefail
cd "$(dirname "$0")/.."
FH=scripts/fresh-host.sh
HOSTS=(cmp cmps)
PROJECT=e2ecompose
PORT=18765
packer=$(scripts/build-release.sh)
for h in "${HOSTS[@]}"; do
  if ip netns list 2>/dev/null | grep -qw "fh-$h"; then
    echo "fresh host $h already exists (another run in progress?): stop it first (scripts/fresh-host.sh stop $h)" >&2
    exit 1
  fi
done
compose=$(scripts/docker-engine.sh)
scripts/docker-images.sh base postgres >/dev/null
if [ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ]; then
  echo "compose project $PROJECT already has containers here (another run in progress?): take it down first" >&2
  exit 1
fi
work=$(mktemp -d /tmp/e2e-compose.XXXXXX)
dir=$work/project
pc() { (cd "$dir" && $compose -p "$PROJECT" "$@"); }
cleanup() {
  [ -n "${KEEP:-}" ] && return
  [ -f "$dir/docker-compose.yml" ] && pc down -v >/dev/null 2>&1 || true
  for h in "${HOSTS[@]}"; do $FH stop "$h" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

$FH build >/dev/null
$FH build systemd >/dev/null
say "starting hosts"
$FH start cmp 31 >/dev/null
$FH start cmps 32 systemd >/dev/null

say "here: the compose project, seeded"
mkdir -p "$dir"
password="pw-$$-$RANDOM"
printf 'POSTGRES_USER=admin\nPOSTGRES_PASSWORD=%s\nPOSTGRES_DB=app\n' "$password" > "$dir/.env"
chmod 600 "$dir/.env"
# web: a tiny HTTP server (perl-base is in minbase) for the restore's http:// health check, on a
# port published on 127.0.0.1 only. `$$` is a literal `$` for compose.
cat > "$dir/docker-compose.yml" <<YAML
services:
  postgres:
    image: n8nbk-postgres:15
    environment:
      - POSTGRES_USER
      - POSTGRES_PASSWORD
      - POSTGRES_DB
    volumes:
      - db_storage:/var/lib/postgresql/data
  app:
    image: n8nbk-base:bookworm
    command: ["sleep", "infinity"]
    stop_signal: SIGKILL
    depends_on:
      - postgres
    volumes:
      - app_storage:/data
  web:
    image: n8nbk-base:bookworm
    command: ["perl", "-MIO::Socket::INET", "-e", "\$\$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die; while (\$\$c = \$\$s->accept) { while (<\$\$c>) { last if /^\\\\r?\$\$/ } print \$\$c qq(HTTP/1.0 200 OK\\\\r\\\\nContent-Length: 3\\\\r\\\\n\\\\r\\\\nok\\\\n); close \$\$c }"]
    stop_signal: SIGKILL
    ports:
      - "127.0.0.1:$PORT:8080"
volumes:
  db_storage:
  app_storage:
YAML
pc up -d >/dev/null 2>&1 || { pc up -d; fail "compose up here"; }
psql_in() { pc exec -T postgres psql -X -q -t -A -v ON_ERROR_STOP=1 -U admin -d app "$@"; }
for _ in $(seq 1 60); do psql_in -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
psql_in >/dev/null <<'SQL'
CREATE ROLE app_owner;
CREATE TABLE items (id serial PRIMARY KEY, name text);
ALTER TABLE items OWNER TO app_owner;
INSERT INTO items (name) SELECT 'item ' || i || ' ☀' FROM generate_series(1, 341) i;
SQL
pc exec -T app sh -c 'mkdir -p /data/sub && echo hello > /data/sub/owned && chown 1000:1000 /data/sub/owned && chmod 640 /data/sub/owned'
q='SELECT count(*) || md5(string_agg(i::text, $$|$$ ORDER BY id)) FROM items i'
want_rows=$(psql_in -c "$q")
want_file=$(pc exec -T app stat -c '%u:%g %a %s' /data/sub/owned)
[ "${want_rows%%[!0-9]*}" = 341 ] || fail "seeding: [$want_rows]"
http_get() { # port: the response of GET / (bash's /dev/tcp: curl may not be installed here)
  exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && timeout 5 cat <&3; exec 3<&-
}
for _ in $(seq 1 40); do http_get "$PORT" 2>/dev/null | grep -q '^HTTP/1.0 200' && break; sleep 0.5; done
http_get "$PORT" | grep -q '^HTTP/1.0 200' || fail "the web service does not answer here"

cat > "$work/packer.toml" <<TOML
[bundle]
output_dir = "$work/out"
name = "compose"
compression_level = 1
[[postgres]]
name = "app"
compose_service = "postgres"
compose_file = "$dir/docker-compose.yml"
compose_project = "$PROJECT"
[[volumes]]
compose_file = "$dir/docker-compose.yml"
compose_project = "$PROJECT"
[[compose]]
file = "$dir/docker-compose.yml"
project = "$PROJECT"
[docker]
include_images = true
[services]
health = ["http://127.0.0.1:$PORT/"]
TOML
say "here: packer create (images saved into the bundle)"
t0=$SECONDS
bundle=$("$packer" --config "$work/packer.toml" create -q | tail -n 1)
say "bundle $(du -h "$bundle" | cut -f1) in $((SECONDS - t0)) s"
# The source is gone before the restores: nothing on the hosts could reach it anyway (no route).
pc down -v >/dev/null 2>&1
stem=$(basename "$bundle" .tar.gz)

check_host() { # name n
  local h=$1 n=$2 rep
  say "$h: ship, then ./restore --yes with no Docker (PID 1: $($FH ssh "$h" 'cat /proc/1/comm'))"
  $FH ssh "$h" 'for t in docker dockerd docker-compose; do ! command -v $t >/dev/null || { echo "$t is preinstalled"; exit 1; }; done' >&2 || fail "$h is not bare"
  "$packer" --config "$work/packer.toml" ship "$bundle" "root@10.200.$n.2:/srv/bundles" \
    --identity "${FRESH_HOSTS_DIR:-/tmp/fresh-hosts}/id_ed25519" \
    --ssh-option "UserKnownHostsFile=${FRESH_HOSTS_DIR:-/tmp/fresh-hosts}/$h/known_hosts" \
    --ssh-option GlobalKnownHostsFile=/dev/null --extract >&2 || fail "ship to $h"
  t0=$SECONDS
  $FH ssh "$h" "cd /srv/bundles/$stem && ./restore --yes" > "$work/$h.out" 2>&1 || { cat "$work/$h.out" >&2; fail "restore on $h"; }
  say "$h: restored in $((SECONDS - t0)) s"
  ! grep -qF "$password" "$work/$h.out" || fail "$h: the password was printed"
  rep=/srv/bundles/$stem/restore-report.json
  $FH ssh "$h" "grep -q '\"outcome\": \"restored\"' $rep" || fail "$h: report not green"
  $FH ssh "$h" "grep -q '\"detail\": \"HTTP 200\"' $rep" || fail "$h: the http:// health check did not answer 200"
  # The order that brings the deployment back whole (other steps may sit in between).
  local steps want s i=0
  mapfile -t steps < <($FH ssh "$h" "grep -o '\"step\": \"[^\"]*\"' $rep" | sed 's/^"step": "//; s/"$//')
  for want in prerequisites "docker engine" "docker volumes" files "docker images" "start postgres" "postgres app" validate "docker compose up" "health checks"; do
    while [ "$i" -lt "${#steps[@]}" ] && [ "${steps[$i]}" != "$want" ]; do i=$((i + 1)); done
    [ "$i" -lt "${#steps[@]}" ] || fail "$h: step \"$want\" missing or out of order: ${steps[*]}"
  done
  grep -q 'installed docker.io docker-compose' "$work/$h.out" || fail "$h: the restore did not install docker.io and docker-compose"
  say "$h: $(grep -m1 -o 'docker engine .*' "$work/$h.out" | tr -s ' ')"
  for img in n8nbk-postgres:15 n8nbk-base:bookworm; do
    [ "$($FH ssh "$h" "docker image inspect -f '{{.Id}}' $img")" = "$(docker image inspect -f '{{.Id}}' $img)" ] || fail "$h: image $img not loaded as packed"
  done
  # Inside the host, through its own engine and the restored project.
  local hc="cd $dir && docker-compose -p $PROJECT"
  got_rows=$($FH ssh "$h" "$hc exec -T postgres psql -X -q -t -A -U admin -d app -c '$q'")
  [ "$got_rows" = "$want_rows" ] || fail "$h: rows in the container's database: [$got_rows] vs [$want_rows]"
  [ "$($FH ssh "$h" "$hc exec -T postgres psql -X -q -t -A -U admin -d app -c \"SELECT tableowner FROM pg_tables WHERE tablename = 'items'\"")" = app_owner ] \
    || fail "$h: table owner"
  got_file=$($FH ssh "$h" "$hc exec -T app stat -c '%u:%g %a %s' /data/sub/owned")
  [ "$got_file" = "$want_file" ] || fail "$h: the volume's file: [$got_file] vs [$want_file]"
  [ "$($FH ssh "$h" "$hc exec -T app cat /data/sub/owned")" = hello ] || fail "$h: the volume file's content"
  for s in postgres app web; do
    [ "$($FH ssh "$h" "docker inspect -f '{{.State.Running}}' \$($hc ps -q $s)")" = true ] || fail "$h: service $s is not running"
  done
  [ "$($FH ssh "$h" "stat -c %a $dir/.env")" = 600 ] || fail "$h: .env mode"
}
check_host cmp 31
check_host cmps 32

echo "e2e-compose: 1 passed, 0 failed"
