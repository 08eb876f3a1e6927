#!/usr/bin/env bash
# The Docker tests (packer/tests/docker_backup.rs, docker_restore.rs, docker_sqlite.rs) again under Docker Compose
# v2, the `docker compose` plugin that trixie and Docker's own packages install: packer and the
# restore pick the plugin when `docker compose version` answers, so both binaries and the tests'
# own compose calls run v2 here (scripts/compose-v2.sh, through DOCKER_CONFIG: the host's v1
# stays what everything else uses). Needs the engine and images of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKER_CONFIG
DOCKER_CONFIG=$(scripts/compose-v2.sh)
export PACKER_RESTORER="${PACKER_RESTORER:-$PWD/target/x86_64-unknown-linux-musl/release/restore}"
cargo test --locked -p packer --test docker_backup --test docker_restore --test docker_sqlite
