#!/usr/bin/env bash
# Bare-metal end to end on throwaway fresh Debian hosts (scripts/fresh-host.sh):
#   src: PostgreSQL with an owner role and data, nginx with a TLS site, config files, data owned
#        by a system user -> packer create -> packer ship to dst over ssh on a veth, extracted
#   dst (no systemd) and dst3 (systemd as PID 1): a bare Debian -> ./restore --yes (installs PostgreSQL and nginx, creates the user,
#        restores roles, database, files, starts services, health checks)
#   then from outside: same table content, nginx serves the same certificate, same files, green
#   report; and on a second fresh host a restore whose health check fails is rolled back.
# Needs root. About 4-6 minutes (three apt installs of postgresql and nginx).
set -euo pipefail
cd "$(dirname "$0")/.."
FH=scripts/fresh-host.sh
scripts/build-release.sh >/dev/null
# The hosts have fixed names and addresses: never start (nor, on exit, stop) another run's.
for h in src dst dst2 dst3; do
  if ip netns list 2>/dev/null | grep -qw "fh-$h"; then
    echo "fresh host $h already exists (another e2e run in progress?): stop it first (scripts/fresh-host.sh stop $h)" >&2
    exit 1
  fi
done
work=$(mktemp -d /tmp/e2e-host.XXXXXX)
cleanup() {
  [ -n "${KEEP:-}" ] || for h in src dst dst2 dst3; do $FH stop "$h" >/dev/null 2>&1 || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

$FH build >/dev/null
$FH build systemd >/dev/null
say "starting hosts"
$FH start src 11 >/dev/null
$FH start dst 12 >/dev/null
$FH start dst2 13 >/dev/null
$FH start dst3 14 systemd >/dev/null
$FH link src dst 1
$FH link src dst2 2
$FH link src dst3 3

say "src: PostgreSQL, nginx with TLS, files"
$FH ssh src 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql nginx openssl >/dev/null 2>&1'
$FH ssh src bash -s <<'SRC'
set -e
cd /tmp
pg_ctlcluster 15 main start 2>/dev/null || true
runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'pgpw'" -c "CREATE ROLE n8n LOGIN PASSWORD 'n8n-pw'"
runuser -u postgres -- psql -q -c "CREATE DATABASE n8n OWNER n8n"
runuser -u postgres -- psql -q -d n8n -c "SET ROLE n8n; CREATE TABLE workflow_entity (id text PRIMARY KEY, name text, nodes json); INSERT INTO workflow_entity SELECT 'w' || i, 'Workflow ' || i || ' ☀', '[{\"name\":\"n\"}]' FROM generate_series(1, 500) i; CREATE SEQUENCE s START 77; SELECT nextval('s');"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=example.test -keyout /etc/ssl/private/site.key -out /etc/ssl/certs/site.pem 2>/dev/null
chmod 600 /etc/ssl/private/site.key
cat > /etc/nginx/sites-available/default <<'NGINX'
server {
  listen 443 ssl default_server;
  ssl_certificate /etc/ssl/certs/site.pem;
  ssl_certificate_key /etc/ssl/private/site.key;
  root /srv/data;
}
server {
  listen 80 default_server;
  root /srv/data;
}
NGINX
useradd --system --no-create-home appuser
mkdir -p /srv/data/sub && echo 'hello from src' > /srv/data/index.html && echo 'ünïcødé' > '/srv/data/sub/file ☀.txt'
chown -R appuser /srv/data/sub
service nginx restart >/dev/null
SRC
$FH put src target/release/packer /usr/local/bin/packer
$FH put src target/release/restore /usr/local/bin/restore
$FH put src "${FRESH_HOSTS_DIR:-/tmp/fresh-hosts}/id_ed25519" /root/.ssh/id_ed25519
config() { # extra health target
  cat <<TOML
[bundle]
output_dir = "/var/backups/n8n"
[[postgres]]
name = "n8n"
url = "postgresql://postgres:pgpw@127.0.0.1:5432/n8n"
[[files]]
kind = "config"
paths = ["/etc/nginx/sites-available/default", "/etc/nginx/sites-enabled/default"]
[[files]]
kind = "ssl"
paths = ["/etc/ssl/private/site.key", "/etc/ssl/certs/site.pem"]
[[files]]
kind = "data"
paths = ["/srv/data"]
[services]
start = ["postgresql", "nginx"]
health = ["tcp://127.0.0.1:5432", "tcp://127.0.0.1:443", "http://127.0.0.1/index.html"$1]
[requirements]
packages = ["nginx"]
TOML
}
config "" > "$work/good.toml"
config ', "tcp://127.0.0.1:9"' > "$work/bad.toml"
$FH put src "$work/good.toml" /root/good.toml
$FH put src "$work/bad.toml" /root/bad.toml

say "src: packer create, packer ship"
good=$($FH ssh src 'packer --config /root/good.toml create -q' | tail -n 1)
sleep 1
bad=$($FH ssh src 'packer --config /root/bad.toml create -q' | tail -n 1)
$FH ssh src "ssh-keyscan -t ed25519 10.200.201.2 10.200.202.2 10.200.203.2 > /root/.ssh/known_hosts 2>/dev/null"
$FH ssh src "packer --config /root/good.toml ship $good root@10.200.201.2:/srv/bundles --identity /root/.ssh/id_ed25519 --extract" >&2
$FH ssh src "packer --config /root/good.toml ship $good root@10.200.203.2:/srv/bundles --identity /root/.ssh/id_ed25519 --extract" >&2
$FH ssh src "packer --config /root/bad.toml ship $bad root@10.200.202.2:/srv/bundles --identity /root/.ssh/id_ed25519 --extract" >&2
stem=$(basename "$good" .tar.gz)
badstem=$(basename "$bad" .tar.gz)

fp() { echo | openssl s_client -connect "$1:443" 2>/dev/null | openssl x509 -noout -fingerprint -sha256; }
q='SELECT count(*) || md5(string_agg(w::text, $$|$$ ORDER BY id)) FROM workflow_entity w'
sums='cd / && sha256sum etc/ssl/private/site.key etc/ssl/certs/site.pem etc/nginx/sites-available/default srv/data/index.html "srv/data/sub/file ☀.txt" && stat -c "%n %a %U" etc/ssl/private/site.key "srv/data/sub/file ☀.txt"'
check_host() { # name n
  local h=$1 n=$2
  say "$h: ./restore --yes on a bare Debian (PID 1: $($FH ssh "$h" 'cat /proc/1/comm'))"
  # Bare means bare: the http:// health check below is answered by the restore's own client.
  $FH ssh "$h" 'for t in curl wget; do ! command -v $t >/dev/null || { echo "$t is preinstalled"; exit 1; }; done' >&2 || fail "$h is not bare"
  $FH ssh "$h" "cd /srv/bundles/$stem && ./restore --yes" >&2 || fail "restore on $h"
  a=$($FH ssh src "runuser -u postgres -- psql -Atd n8n -c '$q'")
  b=$($FH ssh "$h" "runuser -u postgres -- psql -Atd n8n -c '$q'")
  [ -n "$a" ] && [ "$a" = "$b" ] || fail "$h: table content differs: [$a] vs [$b]"
  [ "$($FH ssh "$h" "runuser -u postgres -- psql -Atd n8n -c 'SELECT last_value FROM s'")" = 77 ] || fail "$h: sequence"
  [ "$($FH ssh "$h" "runuser -u postgres -- psql -Atc \"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'n8n'\"")" = n8n ] || fail "$h: owner role"
  src_fp=$(fp 10.200.11.2); dst_fp=$(fp "10.200.$n.2")
  [ -n "$src_fp" ] && [ "$src_fp" = "$dst_fp" ] || fail "$h: certificate served: [$src_fp] vs [$dst_fp]"
  [ "$($FH ssh src "$sums")" = "$($FH ssh "$h" "$sums")" ] || fail "$h: files differ"
  $FH ssh "$h" "grep -q '\"outcome\": \"restored\"' /srv/bundles/$stem/restore-report.json" || fail "$h: report not green"
  $FH ssh "$h" "grep -q '\"detail\": \"HTTP 200\"' /srv/bundles/$stem/restore-report.json" || fail "$h: http:// health check did not answer 200"
}
check_host dst 12
check_host dst3 14

say "dst2: a failing health check rolls everything back"
# This host already runs PostgreSQL and nginx (packages are not part of a rollback), so "as it
# was" covers every file, account, role and database the restore touches.
$FH ssh dst2 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql nginx >/dev/null 2>&1; pg_ctlcluster 15 main start 2>/dev/null || true'
state='cd / && find etc/nginx etc/ssl srv -xdev -path srv/bundles -prune -o -printf "%p %m %u %s\n" 2>/dev/null | sort | sha256sum; id appuser 2>&1 || true; runuser -u postgres -- psql -Atc "SELECT string_agg(rolname, chr(44) ORDER BY rolname) FROM pg_roles; SELECT string_agg(datname, chr(44) ORDER BY datname) FROM pg_database"'
before=$($FH ssh dst2 "$state")
set +e
$FH ssh dst2 "cd /srv/bundles/$badstem && ./restore --yes --overwrite --health-tries 2" > "$work/bad.out" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$work/bad.out" >&2; fail "expected exit 1, got $rc"; }
grep -q "rolled back" "$work/bad.out" || fail "no rollback reported"
after=$($FH ssh dst2 "$state")
[ "$before" = "$after" ] || fail "dst2 not back as before: [$before] vs [$after]"
[ -z "$($FH ssh dst2 "runuser -u postgres -- psql -Atc \"SELECT datname FROM pg_database WHERE datname = 'n8n'\"")" ] || fail "database left on dst2"

echo "e2e-host: 1 passed, 0 failed"
