#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine, idempotently.
# Usage: scripts/ensure-tools.sh [build|test|deb|browser]   (test adds the PostgreSQL server,
# sqlite3, sshd and an S3 protocol server; deb what scripts/build-deb.sh runs: dpkg-shlibdeps,
# file, readelf; browser what scripts/test-console.sh drives: Debian's chromium +
# chromium-driver, and Selenium from PyPI in a virtualenv under ~/.cache/n8n-backup/console-venv,
# whose path it prints last)
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
  # age-keygen and age -d: the sealed-bundle tests make keys and open a bundle by hand.
  command -v age >/dev/null || need_pkgs+=(age)
  command -v scp >/dev/null || need_pkgs+=(openssh-client)
  command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
  command -v ip >/dev/null || need_pkgs+=(iproute2)
fi
if [ "$what" = deb ]; then
  command -v dpkg-shlibdeps >/dev/null || need_pkgs+=(dpkg-dev)
  command -v file >/dev/null || need_pkgs+=(file)
  command -v readelf >/dev/null || need_pkgs+=(binutils)
fi
if [ "$what" = browser ]; then
  [ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
  [ -x /usr/bin/chromedriver ] || need_pkgs+=(chromium-driver)
  command -v python3 >/dev/null || need_pkgs+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
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
if [ "$what" = browser ]; then
  # Selenium talks to Debian's chromedriver (given by path, so Selenium Manager downloads
  # nothing); pinned, in its own virtualenv so no system Python is touched.
  venv=${XDG_CACHE_HOME:-$HOME/.cache}/n8n-backup/console-venv
  if ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'selenium==4.45.0' >&2
  fi
  echo "$venv"
fi
