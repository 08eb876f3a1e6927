#!/usr/bin/env bash
# The Debian package (scripts/build-deb.sh) installed on throwaway fresh Debian hosts
# (scripts/fresh-host.sh), as a user would get it:
#   deb1 (systemd as PID 1): dpkg -i, then packer --version, the man pages (packer.1.gz, and
#        `man -l` renders it), `packer init` (the template), restore --version and that it is the
#        static one, the completion files, `systemctl cat` of the units; then packer with no
#        --config reads /etc/packer/packer.toml as root, `packer create` embeds /usr/bin/restore,
#        the packaged n8n-backup.service runs a cycle, and a reinstall keeps the edited conffile.
#   deb2 (no systemd): dpkg -i works there too (postinst does not need systemd).
# Needs root. About a minute warm (the build is a no-op, no apt install on the hosts).
set -euo pipefail
cd "$(dirname "$0")/.."
FH=scripts/fresh-host.sh
deb=$(scripts/build-deb.sh)
hosts="deb1 deb2"
for h in $hosts; do
  if ip netns list 2>/dev/null | grep -qw "fh-$h"; then
    echo "fresh host $h already exists (another run in progress?): stop it first (scripts/fresh-host.sh stop $h)" >&2
    exit 1
  fi
done
cleanup() { [ -n "${KEEP:-}" ] || for h in $hosts; do $FH stop "$h" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }
on() { local h=$1; shift; $FH ssh "$h" "$@"; }

$FH build >/dev/null
$FH build systemd >/dev/null
say "starting hosts"
$FH start deb1 41 systemd >/dev/null
$FH start deb2 42 >/dev/null

for h in $hosts; do
  say "$h: dpkg -i $(basename "$deb")"
  $FH put "$h" "$deb" /tmp/pkg.deb
  on "$h" 'dpkg -i /tmp/pkg.deb' >&2 || fail "$h: dpkg -i"
  v=$(on "$h" 'packer --version')
  [ "$v" = "packer $(target/release/packer --version | awk '{print $2}')" ] || fail "$h: packer --version said [$v]"
  on "$h" 'restore --version' | grep -q '^restore ' || fail "$h: restore --version"
done

h=deb1
say "$h: man pages, template, static restore, completions, units"
# minbase has no man-db: the page file must be there, and man -l (installed here only to read
# it) must render it.
for page in packer packer-create packer-install-timer restore restore-verify; do
  on $h "test -s /usr/share/man/man1/$page.1.gz" || fail "$h: no man page $page.1.gz"
done
on $h 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends man-db >/dev/null 2>&1' || fail "$h: installing man-db"
[ "$(on $h 'man -w packer')" = /usr/share/man/man1/packer.1.gz ] || fail "$h: man -w packer"
on $h 'MANWIDTH=200 man packer-create 2>/dev/null' | grep -q 'embed the static restore binary' || fail "$h: man packer-create does not render its --help text"
on $h 'packer init' | cmp -s - packer/src/template.toml || fail "$h: packer init is not the template"
on $h 'packer init | cmp -s - /etc/packer/packer.toml' || fail "$h: /etc/packer/packer.toml is not the template"
[ "$(on $h 'stat -c %a /etc/packer/packer.toml')" = 600 ] || fail "$h: /etc/packer/packer.toml is not 0600"
on $h 'dpkg-query -W -f="\${Conffiles}" n8n-backup' | grep -q /etc/packer/packer.toml || fail "$h: packer.toml is not a conffile"
# Static: no program interpreter; runs on this bare host whatever its libc.
on $h 'head -c 4096 /usr/bin/restore | grep -aq /lib64/ld-linux' && fail "$h: /usr/bin/restore asks for a dynamic loader"
for f in /usr/share/bash-completion/completions/packer /usr/share/bash-completion/completions/restore \
  /usr/share/zsh/vendor-completions/_packer /usr/share/zsh/vendor-completions/_restore \
  /usr/share/fish/vendor_completions.d/packer.fish /usr/share/fish/vendor_completions.d/restore.fish; do
  on $h "grep -q install-timer $f || grep -q rollback $f" || fail "$h: $f missing or empty"
done
on $h 'bash -c "source /usr/share/bash-completion/completions/packer && complete -p packer"' | grep -q _packer || fail "$h: bash completion does not register"
units=$(on $h 'systemctl cat n8n-backup.service n8n-backup.timer')
grep -q 'ExecStart=/usr/bin/packer --config /etc/packer/packer.toml daemon --once' <<<"$units" || fail "$h: service unit: $units"
grep -q 'OnCalendar=\*-\*-\* 2:0:00 UTC' <<<"$units" || fail "$h: timer unit: $units"
[ "$(on $h 'systemctl is-enabled n8n-backup.timer || true')" = disabled ] || fail "$h: the timer must not be enabled before the config is edited"

say "$h: root's default config, packer create, the packaged service"
on $h 'mkdir -p /srv/app && echo hello > /srv/app/data.txt && cat > /etc/packer/packer.toml' <<'TOML'
[bundle]
output_dir = "/var/backups/n8n"
name = "deb"
[[files]]
kind = "data"
paths = ["/srv/app/data.txt"]
[schedule]
cron = "0 2 * * *"
TOML
bundle=$(on $h 'cd /tmp && packer create -q' | tail -n 1)
[ -n "$bundle" ] || fail "$h: packer create without --config printed no bundle"
case "$bundle" in /var/backups/n8n/backup_*.deb_backup.tar.gz) ;; *) fail "$h: bundle at [$bundle]: not from /etc/packer/packer.toml" ;; esac
on $h "tar -xzf $bundle -O restore | cmp - /usr/bin/restore" || fail "$h: the bundle does not embed /usr/bin/restore"
on $h 'systemctl start n8n-backup.service' || { on $h 'journalctl -u n8n-backup.service --no-pager | tail -n 20' >&2; fail "$h: n8n-backup.service failed"; }
listed=$(on $h 'cd / && packer list')
grep -q '^2 bundle(s)' <<<"$listed" && grep -q ' scheduled ' <<<"$listed" || fail "$h: packer list (default config) should show the manual and the scheduled bundle: $listed"
say "$h: a reinstall keeps the edited conffile"
on $h 'dpkg -i /tmp/pkg.deb' >/dev/null 2>&1 || fail "$h: reinstall"
on $h 'grep -q "name = \"deb\"" /etc/packer/packer.toml' || fail "$h: the reinstall replaced the edited /etc/packer/packer.toml"

echo "test-deb: 1 passed, 0 failed"
