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
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
