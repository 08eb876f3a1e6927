#!/usr/bin/env bash
# Throwaway "fresh Debian hosts" on this machine, without Docker: a minbase rootfs from
# debootstrap (cached as a tarball), each host in its own network, mount, PID and UTS
# namespaces, an overlay of the cached rootfs as its / (pivot_root: no binary of this machine is
# visible inside), cgroup v1 mounted and /var/lib/docker on this machine's disk (a Docker engine
# installed inside runs, with overlay2: docs/DOCKER-TESTS.md), sshd inside, reachable on a veth
# pair at 10.200.N.2. apt inside reaches only the Debian mirror, through a small forwarding proxy
# on 10.200.N.1:3128. No default route.
# As bare as a real one: minbase plus openssh-server (how we get in, as on a fresh VPS) and
# nothing else; no curl, ca-certificates, gnupg, procps or iproute2 (ip runs from outside, in the
# host's network namespace). Whatever the restore needs, it must install itself.
#
#   scripts/fresh-host.sh build [systemd]       # the cached rootfs (about a minute the first time)
#   scripts/fresh-host.sh start NAME N [systemd] # host NAME at 10.200.N.2 (N in 1..199); with
#                                               # "systemd", real systemd runs as its PID 1
#   scripts/fresh-host.sh ssh NAME [COMMAND]    # as root, with the key made for these hosts
#   scripts/fresh-host.sh put NAME FILE DEST    # copy a file in (scp)
#   scripts/fresh-host.sh link A B K            # a veth between hosts A and B: 10.200.(200+K).1 / .2
#   scripts/fresh-host.sh stop NAME
#
# Needs root. State lives under $FRESH_HOSTS_DIR (default /tmp/fresh-hosts).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${N8N_CACHE_DIR:-$HOME/.cache/n8n-backup-test}
STATE=${FRESH_HOSTS_DIR:-/tmp/fresh-hosts}
# "bare": the cache name changes with what the rootfs holds, so an older, fuller cache is never
# reused by mistake.
tarball() { echo "$CACHE/rootfs-bookworm-minbase-bare${1:+-$1}.tar"; }
mkdir -p "$CACHE" "$STATE"

# The mirror the host's apt uses (deb822 or one-line sources), never a hard-coded host name.
mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n 1 || true)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -n 1 || true)
  [ -n "$uri" ] || { echo "no Debian mirror in this host's apt sources" >&2; exit 1; }
  echo "${uri%/}"
}

build() {
  local flavour=${1:-} TARBALL extra=""
  TARBALL=$(tarball "$flavour")
  [ "$flavour" = systemd ] && extra=",systemd,systemd-sysv,dbus"
  [ -f "$TARBALL" ] && { echo "$TARBALL"; return; }
  command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  local dir
  dir=$(mktemp -d /tmp/rootfs.XXXXXX)
  debootstrap --variant=minbase --include=openssh-server$extra bookworm "$dir" "$(mirror)" >&2
  # Nothing the restore should bring itself may sneak in as a dependency.
  for tool in curl wget; do
    if [ -e "$dir/usr/bin/$tool" ]; then echo "the rootfs unexpectedly has $tool" >&2; exit 1; fi
  done
  # The mirror may be a snapshot whose Release files count as expired: same setting as the host.
  echo 'Acquire::Check-Valid-Until "false";' > "$dir/etc/apt/apt.conf.d/99valid-until"
  printf 'deb %s bookworm main\n' "$(mirror)" > "$dir/etc/apt/sources.list"
  rm -f "$dir/etc/ssh/ssh_host_"*
  tar -C "$dir" -cf "$TARBALL.partial" . && mv "$TARBALL.partial" "$TARBALL"
  rm -rf "$dir"
  echo "$TARBALL"
}

start() {
  local name=$1 n=$2 flavour=${3:-} base=$STATE/$1 lower TARBALL
  lower=$STATE/rootfs-bare${flavour:+-$flavour}
  TARBALL=$(build "$flavour")
  if [ ! -d "$lower" ]; then mkdir -p "$lower.partial" && tar -C "$lower.partial" -xf "$TARBALL" && mv "$lower.partial" "$lower"; fi
  [ -f "$STATE/id_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -f "$STATE/id_ed25519"
  mkdir -p "$base/upper" "$base/work" "$base/merged"
  ip netns add "fh-$name"
  ip link add "fh-$name" type veth peer name eth0 netns "fh-$name"
  ip addr add "10.200.$n.1/24" dev "fh-$name"
  ip link set "fh-$name" up
  ip netns exec "fh-$name" ip addr add "10.200.$n.2/24" dev eth0
  ip netns exec "fh-$name" ip link set eth0 up
  ip netns exec "fh-$name" ip link set lo up
  # apt's proxy: forwards only to the mirror's host, bound to this host's veth address.
  python3 scripts/mirror-proxy.py "10.200.$n.1" 3128 "$(mirror)" >"$base/proxy.log" 2>&1 &
  echo $! > "$base/proxy.pid"
  cat > "$base/init.sh" <<INIT
set -e
mount -t overlay overlay -o lowerdir=$lower,upperdir=$base/upper,workdir=$base/work $base/merged
cd $base/merged
mount -t proc proc proc
mount -t sysfs sysfs sys 2>/dev/null || true
mount --rbind /dev dev
mount -t tmpfs tmpfs dev/shm
mount -t tmpfs tmpfs tmp
mount -t tmpfs tmpfs run
mkdir -p run/sshd root/.ssh oldroot
# /var/lib/docker on this machine's disk, as on a real host: overlay2 cannot stack on the overlay
# that is this host's /, so without it a dockerd installed here falls back to vfs (a full copy
# of every image per container).
mkdir -p $base/docker var/lib/docker
mount --bind $base/docker var/lib/docker
cp $STATE/id_ed25519.pub root/.ssh/authorized_keys
chmod 700 root/.ssh
echo 'Acquire::http::Proxy "http://10.200.$n.1:3128";' > etc/apt/apt.conf.d/99proxy
echo $name > etc/hostname
hostname $name
INIT
  if [ "$flavour" = systemd ]; then
    # systemd as PID 1 of the PID namespace: its own cgroup tree (named v1 hierarchy on this
    # machine's cgroup v1), host keys made before boot for ssh.service.
    cat >> "$base/init.sh" <<INIT
mount -t tmpfs tmpfs sys/fs/cgroup
mkdir -p sys/fs/cgroup/systemd
mount -t cgroup -o none,name=systemd cgroup sys/fs/cgroup/systemd
mkdir -p etc/ssh && ssh-keygen -A -f . >/dev/null
pivot_root . oldroot
umount -l /oldroot
exec env container=other /lib/systemd/systemd --system
INIT
  else
    # The cgroup v1 hierarchies a real host has (dockerd needs them). They show this machine's
    # tree from this host's cgroup namespace, whose root is the cgroup fresh-host.sh ran in: a
    # dockerd here makes /docker/<id> there, beside this machine's own dockerd's (ids are unique).
    cat >> "$base/init.sh" <<INIT
mount -t tmpfs cgroup_root sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir -p sys/fs/cgroup/\$c && mount -t cgroup -o \$c cgroup sys/fs/cgroup/\$c 2>/dev/null || rmdir sys/fs/cgroup/\$c
done
mkdir -p sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup sys/fs/cgroup/systemd
INIT
    cat >> "$base/init.sh" <<INIT
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot 2>/dev/null || true
ssh-keygen -A >/dev/null
exec /usr/sbin/sshd -D -e
INIT
  fi
  ip netns exec "fh-$name" unshare --mount --pid --uts --cgroup --fork --propagation private bash "$base/init.sh" >"$base/sshd.log" 2>&1 &
  echo $! > "$base/host.pid"
  for _ in $(seq 1 100); do
    # The host's key, read as it starts (this is the only moment we trust: we just made it).
    if ssh-keyscan -T 2 -t ed25519 "10.200.$n.2" > "$base/known_hosts" 2>/dev/null && [ -s "$base/known_hosts" ]; then
      echo "10.200.$n.2"
      return 0
    fi
    sleep 0.2
  done
  cat "$base/sshd.log" >&2
  echo "host $name did not come up" >&2
  exit 1
}

host_ssh() {
  local name=$1; shift
  local base=$STATE/$name addr
  addr=$(addr_of "$name")
  ssh -i "$STATE/id_ed25519" -o UserKnownHostsFile="$base/known_hosts" -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes "root@$addr" "$@"
}

addr_of() { ip -o -4 addr show "fh-$1" | awk '{print $4}' | sed 's/\.1\/24/.2/'; }

put() {
  local name=$1 base=$STATE/$1
  scp -q -i "$STATE/id_ed25519" -o UserKnownHostsFile="$base/known_hosts" -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes "$2" "root@$(addr_of "$name"):$3"
}

link() {
  local a=$1 b=$2 k=$((200 + $3))
  ip link add "fl-$a-$b" type veth peer name "fl-$b-$a"
  ip link set "fl-$a-$b" netns "fh-$a"
  ip link set "fl-$b-$a" netns "fh-$b"
  ip netns exec "fh-$a" ip addr add "10.200.$k.1/24" dev "fl-$a-$b"
  ip netns exec "fh-$b" ip addr add "10.200.$k.2/24" dev "fl-$b-$a"
  ip netns exec "fh-$a" ip link set "fl-$a-$b" up
  ip netns exec "fh-$b" ip link set "fl-$b-$a" up
}

stop() {
  local name=$1 base=$STATE/$1
  [ -f "$base/host.pid" ] && kill "$(cat "$base/host.pid")" 2>/dev/null || true
  [ -f "$base/proxy.pid" ] && kill "$(cat "$base/proxy.pid")" 2>/dev/null || true
  ip netns pids "fh-$name" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  sleep 0.3
  umount -l "$base/merged" 2>/dev/null || true
  ip link del "fh-$name" 2>/dev/null || true
  ip netns del "fh-$name" 2>/dev/null || true
  rm -rf "$base"
}

case "${1:-}" in
  build) build "${2:-}" ;;
  start) start "$2" "$3" "${4:-}" ;;
  ssh) shift; host_ssh "$@" ;;
  put) put "$2" "$3" "$4" ;;
  link) link "$2" "$3" "$4" ;;
  stop) stop "$2" ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
