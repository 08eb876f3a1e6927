#!/usr/bin/env bash
# The web console in a real browser: builds packer, packs n8n's SQLite fixture once with the CLI,
# starts the real `packer serve` on a free loopback port and drives it with headless Chromium
# (scripts/console_browser.py): wrong password and missing CSRF token refused, log in, back up
# now and watch it appear, search a workflow, verify, protect, the retention preview keeping it,
# delete refused, download and its sha256. Screenshots of every page go to
# $CARGO_TARGET_DIR/console-screenshots/ (kept as test artifacts). About a minute warm.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(scripts/ensure-tools.sh browser | tail -1)
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --locked -q -p packer
restorer="$target/x86_64-unknown-linux-musl/release/restore"
[ -x "$restorer" ] || cargo build --release --locked -q -p restorer --target x86_64-unknown-linux-musl
export PACKER_RESTORER=$restorer
packer=$target/debug/packer
shots=$target/console-screenshots
rm -rf "$shots" && mkdir -p "$shots"

work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cp fixtures/deployment/home/node/.n8n/database.sqlite "$work/database.sqlite"
echo "N8N_ENCRYPTION_KEY=fixture-key-0123456789abcdef" > "$work/.env"
cat > "$work/packer.toml" <<TOML
[bundle]
output_dir = "out"
name = "n8n"
[[sqlite]]
name = "n8n"
path = "database.sqlite"
profile = "n8n"
[[files]]
kind = "config"
paths = [".env"]
[retention]
keep_last = 1
TOML
"$packer" -q --config "$work/packer.toml" create >/dev/null
"$packer" --config "$work/packer.toml" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 100); do
  grep -q '^packer serve: http' "$work/serve.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^packer serve: //p' "$work/serve.out" | head -1)
[ -n "$url" ] || { echo "packer serve printed no URL" >&2; cat "$work/serve.err" >&2; exit 1; }
echo "packer serve at $url"
"$venv/bin/python" scripts/console_browser.py "$url" "$work/out/console.token" "$work/out" "$shots"
echo "screenshots: $shots"
