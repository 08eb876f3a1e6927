#!/usr/bin/env bash
# README command 2 (and all that .ci/run does): installs what the tests need on a fresh Debian
# machine (musl target and tools, PostgreSQL server, sqlite3), builds the static restore the
# tests embed, checks formatting and lints, and runs the whole test suite against real
# PostgreSQL clusters, real SQLite files and real bundles.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh test
cargo build --release --locked -p restorer --target x86_64-unknown-linux-musl
export PACKER_RESTORER="$PWD/target/x86_64-unknown-linux-musl/release/restore"
# Docker Compose deployments (packer/tests/docker_*.rs): a real engine and images built here
# from Debian's packages (no registry is reachable); both scripts return at once when done.
scripts/docker-engine.sh >/dev/null
# n8n from the npm registry (cached; ~7-10 min the first time) and its image: docker_sqlite
# runs n8n's own node and sqlite3 module, and the end-to-end tests below run n8n itself;
# postgres-next (bookworm-security's newer minor) is the image docker_verify.rs deep-verifies in.
scripts/docker-images.sh base postgres postgres-next n8n >/dev/null
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
# The web console in headless Chromium (Debian's chromium + chromedriver, Selenium from PyPI):
# login, back up now, search, verify, protect, retention, refused delete, download (~1 min).
scripts/test-console.sh
# The Docker tests again under Compose v2 (the `docker compose` plugin trixie installs).
scripts/test-compose-v2.sh
# Bare metal on throwaway fresh Debian hosts (namespaces, debootstrap rootfs cached).
scripts/test-e2e.sh
# The Debian package installed on fresh hosts (~1 min warm): files, man, units, root's config.
scripts/test-deb.sh
# A compose deployment rebuilt on bare fresh hosts, Docker installed and started by the restore.
scripts/test-e2e-compose.sh
# The end-to-end tests against a real n8n: on the host (throwaway clusters), and under Docker
# Compose, packed, destroyed (down -v) and rebuilt by the restore. n8n is installed from the npm
# registry when missing (scripts/install-n8n.sh, by docker-images.sh above), and its image built
# from that install (~3 min the first time): every green run has proven them.
scripts/test-n8n.sh
scripts/test-compose-n8n.sh
N8N_DB=sqlite scripts/test-compose-n8n.sh
