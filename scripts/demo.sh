#!/usr/bin/env bash
# README command 1: packs the fixture deployment (SQLite, .env, compose file, nginx.conf, a
# self-signed certificate and key, a data dir) into ./demo-backups, shows the bundle, verifies it
# and restores it under a temporary root, printing the validation summary. No server needed.
set -euo pipefail
cd "$(dirname "$0")/.."
packer=$(scripts/build-release.sh)

# git keeps no modes but the executable bit: give the secrets the modes they have on a server.
chmod 600 fixtures/deployment/opt/n8n/.env fixtures/deployment/etc/letsencrypt/archive/example.com/privkey1.pem fixtures/deployment/home/node/.n8n/config
chmod 700 fixtures/deployment/etc/letsencrypt/archive

echo "== packer create" >&2
bundle=$("$packer" create --config fixtures/demo.toml | tail -n 1)
echo "== packer show $bundle" >&2
"$packer" show "$bundle"
echo "== sha256sum -c (the sidecar)" >&2
(cd "$(dirname "$bundle")" && sha256sum -c "$(basename "$bundle").sha256")

work=$(mktemp -d /tmp/n8n-restore-demo.XXXXXX)
echo "== tar xzf into $work/bundle && ./restore verify" >&2
mkdir "$work/bundle"
tar xzf "$bundle" -C "$work/bundle"
(cd "$work/bundle" && ./restore verify)
echo "== ./restore --dry-run --root $work/root" >&2
(cd "$work/bundle" && ./restore --dry-run --root "$work/root" --no-install --no-services)
echo "== ./restore --yes --root $work/root" >&2
(cd "$work/bundle" && ./restore --yes --root "$work/root" --no-install --no-services)
echo "== restored tree under $work/root; report in $work/bundle/restore-report.json" >&2
