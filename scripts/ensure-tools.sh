#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine, idempotently.
# Usage: scripts/ensure-tools.sh [build|test|deb]   (test adds the PostgreSQL server,
# sqlite3, sshd and an S3 protocol server; deb what scripts/build-deb.sh runs: dpkg-shlibdeps,
# file, readelf)
set -euo pipefail
what=${1:-build}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_pkgs=()
command -v musl-gcc >/dev/null || need_pkgs+=(musl-tools)
if [ "$what" = test ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
  command -v psql >/dev/null || need_pkgs+=(postgresql-client)
  command -v sqlite3 >/dev/null || need_pkgs+=(sqlite3)
  command -v runuser >/dev/null || need_pkgs+=(util-linux)
  command -v openssl >/dev/null || need_pkgs+=(openssl)
  command -v curl >/dev/null || need_pkgs+=(curl)
  command -v node >/dev/null || need_pkgs+=(nodejs)
  [ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
  command -v scp >/dev/null || need_pkgs+=(openssh-client)
  command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
  command -v ip >/dev/null || need_pkgs+=(iproute2)
fi
if [ "$what" = deb ]; then
  command -v dpkg-shlibdeps >/dev/null || need_pkgs+=(dpkg-dev)
  command -v file >/dev/null || need_pkgs+=(file)
  command -v readelf >/dev/null || need_pkgs+=(binutils)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing: ${need_pkgs[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
if [ "$what" = test ] && ! id postgres >/dev/null 2>&1; then
  $SUDO useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi
# packer/tests/s3.rs talks to a real S3 protocol server: moto's (PyPI), in a venv of its own so
# it never touches the system's Python packages. Pinned: the tests rely on its S3 behaviour.
MOTO_VENV=/opt/packer-test-tools/moto
MOTO_VERSION=5.2.5
if [ "$what" = test ] && ! "$MOTO_VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  echo "installing moto[server] $MOTO_VERSION into $MOTO_VENV" >&2
  $SUDO python3 -m venv "$MOTO_VENV"
  $SUDO "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
if ! grep -qx x86_64-unknown-linux-musl <<<"$(rustup target list --installed)"; then
  rustup target add x86_64-unknown-linux-musl
fi
