#!/usr/bin/env bash
# Prints a DOCKER_CONFIG directory whose cli-plugins hold Docker Compose v2, for running the
# Docker tests under v2 as well as under bookworm's v1 `docker-compose` (Debian bookworm has no
# v2; trixie's `docker-compose` package is the v2 plugin, which is what a restore installs
# there). The .deb comes from Debian's own archive through apt, with a private sources list and
# state, so the host's apt configuration is not touched; cached under ~/.cache/n8n-backup-test.
set -euo pipefail
cache="${N8N_CACHE_DIR:-$HOME/.cache/n8n-backup-test}/compose-v2"
cfg="$cache/docker-config"
if [ ! -x "$cfg/cli-plugins/docker-compose" ]; then
  apt_dir="$cache/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$cfg/cli-plugins"
  echo "deb http://deb.debian.org/debian trixie main" >"$apt_dir/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
    -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root -qq)
  apt-get "${opts[@]}" update >&2
  (cd "$apt_dir" && apt-get "${opts[@]}" download docker-compose >&2)
  deb=$(ls "$apt_dir"/docker-compose_2.*_amd64.deb | sort -V | tail -n 1)
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/libexec/docker/cli-plugins/docker-compose >"$cfg/cli-plugins/docker-compose.tmp"
  chmod 755 "$cfg/cli-plugins/docker-compose.tmp"
  mv "$cfg/cli-plugins/docker-compose.tmp" "$cfg/cli-plugins/docker-compose"
fi
DOCKER_CONFIG="$cfg" docker compose version >&2
echo "$cfg"
