#!/usr/bin/env bash
# Builds the static restore (x86_64-unknown-linux-musl) and packer, and puts `restore` beside
# `packer` in target/release, where packer looks for it first. Prints packer's path.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh build >&2
cargo build --release --locked -p restorer --target x86_64-unknown-linux-musl >&2
cargo build --release --locked -p packer >&2
install -m 0755 target/x86_64-unknown-linux-musl/release/restore target/release/restore
echo "$PWD/target/release/packer"
