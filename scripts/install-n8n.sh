#!/usr/bin/env bash
# Installs n8n 2.8.4 from the npm registry into a cache directory (default
# ~/.cache/n8n-backup-test/n8n-2.8.4) for the end-to-end test; prints the n8n executable's path.
# 2.8.4 is the newest n8n whose engines allow Node 20. Takes ~7-10 min and ~2.3 GB the first time.
set -euo pipefail
version=2.8.4
dir=${N8N_CACHE_DIR:-$HOME/.cache/n8n-backup-test}/n8n-$version
if [ -x "$dir/node_modules/.bin/n8n" ]; then echo "$dir/node_modules/.bin/n8n"; exit 0; fi
command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
command -v make >/dev/null && command -v g++ >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential python3 >/dev/null; }
mkdir -p "$dir"
cd "$dir"
# xlsx points at a tarball outside the npm registry: pin the registry's last release instead.
cat > package.json <<JSON
{ "name": "n8n-test-install", "private": true, "dependencies": { "n8n": "$version" }, "overrides": { "xlsx": "0.18.5" } }
JSON
npm install --no-audit --no-fund --loglevel=error >&2
echo "$dir/node_modules/.bin/n8n"
