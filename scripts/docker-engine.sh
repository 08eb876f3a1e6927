#!/usr/bin/env bash
# A running Docker engine on this machine, idempotently: installs Debian's docker.io and the v1
# docker-compose when missing, starts dockerd when `docker info` does not answer, waits until it
# does. Prints what it did on stderr, and on stdout one line: the compose command to use
# ("docker compose" when the v2 plugin answers, else "docker-compose").
#
#   scripts/docker-engine.sh            # safe to run again: does nothing when the engine answers
#
# No systemd needed (and none is PID 1 here): with systemd running, `systemctl start docker`;
# otherwise dockerd in the background, logging to $DOCKERD_LOG (default /var/log/dockerd.log).
# Storage driver: dockerd's own choice (overlay2 on ext4 here); if dockerd does not come up with
# it, vfs (slow, but works on any filesystem, e.g. inside an overlay without d_type).
# Debian bookworm has no compose v2 package (docker-compose-plugin / docker-compose-v2 are not in
# bookworm's archive); the v1 `docker-compose` 1.29.2 is, and reads the same compose files.
# Needs root.
set -euo pipefail
LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
say() { echo "docker-engine: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "needs root"; exit 1; }

pkgs=()
command -v dockerd >/dev/null || pkgs+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || pkgs+=(docker-compose)
if [ ${#pkgs[@]} -gt 0 ]; then
  say "installing ${pkgs[*]} from Debian"
  apt-get update -qq
  # The package's own service start is refused by policy-rc.d on such machines: harmless, the
  # engine is started below.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
else
  say "dockerd and compose already installed"
fi

answers() { timeout 10 docker info >/dev/null 2>&1; }
wait_up() { # seconds
  for _ in $(seq 1 "$1"); do answers && return 0; sleep 1; done
  return 1
}
start_dockerd() { # extra dockerd arguments
  local pidfile=/var/run/docker.pid
  # A pid file left by a dockerd that is gone makes the next one refuse to start.
  if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi
  if [ -f "$pidfile" ]; then
    say "dockerd $(cat "$pidfile") is running but does not answer yet; waiting"
    return 0
  fi
  mkdir -p "$(dirname "$LOG")"
  say "starting dockerd $* (log: $LOG)"
  # setsid + nohup: the daemon outlives this script and the shell that ran it.
  setsid nohup dockerd "$@" >>"$LOG" 2>&1 </dev/null &
}

if answers; then
  say "engine answers already"
else
  if [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ] && systemctl is-system-running >/dev/null 2>&1; then
    say "systemctl start docker"
    systemctl start docker
  else
    start_dockerd
  fi
  if ! wait_up 60; then
    if [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
      say "dockerd runs but does not answer after 60 s; last log lines:"; tail -n 20 "$LOG" >&2; exit 1
    fi
    say "dockerd did not come up with its default storage driver; trying vfs. Last log lines:"
    tail -n 10 "$LOG" >&2
    start_dockerd --storage-driver vfs
    wait_up 60 || { say "dockerd did not come up; last log lines:"; tail -n 20 "$LOG" >&2; exit 1; }
  fi
fi
say "engine $(docker version --format '{{.Server.Version}}' 2>/dev/null), storage $(docker info --format '{{.Driver}}' 2>/dev/null), cgroup v$(docker info --format '{{.CgroupVersion}}' 2>/dev/null)"
if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo "docker-compose"; fi
