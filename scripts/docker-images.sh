#!/usr/bin/env bash
# The Docker images the tests use, built on this machine with no image registry, idempotently:
# an image whose inputs did not change is kept (each image carries the sha256 of its inputs in
# the label n8nbk.inputs).
#
#   scripts/docker-images.sh [TARGET...]   # default: base postgres n8n
#
#   base           n8nbk-base:bookworm     `docker import` of the debootstrap minbase rootfs that
#                                          scripts/fresh-host.sh builds and caches
#   postgres       n8nbk-postgres:15       Debian bookworm's postgresql-15 with an entrypoint like
#                                          the official image's (fixtures/docker/postgres)
#   postgres-next  n8nbk-postgres:15-next  the same from bookworm-security when it holds a newer
#                                          minor release (for "container ahead of the host's
#                                          pg_dump" tests); the image's label n8nbk.pg-version says
#                                          which release each one holds
#   n8n            n8nbk-n8n:2.8.4         this machine's node binary + the n8n install that
#                                          scripts/install-n8n.sh caches (fixtures/docker/n8n);
#                                          the first time: ~10 min npm install + a few min import
#
# Prints one line per image on stdout: NAME ID; progress on stderr. Needs a running engine
# (scripts/docker-engine.sh). apt inside `docker build` runs with --network host: the build shares
# this machine's network, so it reaches the Debian mirror exactly as the host's own apt does.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "docker-images: $*" >&2; }
# The classic builder: no buildx plugin is installed, and it accepts a tar stream as the context.
export DOCKER_BUILDKIT=0

label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
fresh() { [ "$(label "$1" n8nbk.inputs)" = "$2" ]; }
digest() { sha256sum | cut -d' ' -f1; }
image_id() { docker image inspect -f '{{.Id}}' "$1"; }
report() { echo "$1 $(image_id "$1")"; }
timed() { # what command...: its output shown only when it fails (the classic builder's
  # deprecation notice on every build is noise)
  local what=$1 t0=$SECONDS log; shift
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; say "building $what failed"; exit 1; fi
  rm -f "$log"
  say "$what built in $((SECONDS - t0)) s"
}

BASE=n8nbk-base:bookworm
base_done=""
base() {
  local tarball inputs
  [ -z "$base_done" ] || { report "$BASE"; return; }
  base_done=1
  tarball=$(scripts/fresh-host.sh build)
  inputs=$(sha256sum "$tarball" | cut -d' ' -f1)
  if fresh "$BASE" "$inputs"; then say "$BASE is up to date"; report "$BASE"; return; fi
  say "importing $tarball as $BASE"
  timed "$BASE" docker import \
    --change "LABEL n8nbk.inputs=$inputs" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    "$tarball" "$BASE"
  report "$BASE"
}

postgres() { # tag [suites]
  local tag=$1 suites=${2:-} dir=fixtures/docker/postgres inputs version
  inputs=$( { image_id "$BASE"; echo "suites=$suites"; cat "$dir/Dockerfile" "$dir/docker-entrypoint.sh"; } | digest)
  if fresh "$tag" "$inputs"; then say "$tag is up to date ($(label "$tag" n8nbk.pg-version))"; report "$tag"; return; fi
  say "building $tag${suites:+ (with $suites)}"
  timed "$tag" docker build --network host --build-arg BASE="$BASE" --build-arg PG_SUITES="$suites" \
    --label "n8nbk.inputs=$inputs" -t "$tag.partial" "$dir"
  # The server's version as a label (a second build step would be a layer; a commit keeps one).
  version=$(docker run --rm --entrypoint postgres "$tag.partial" --version | awk '{print $3}')
  docker build -q --label "n8nbk.pg-version=$version" -t "$tag" - >/dev/null 2>&1 <<<"FROM $tag.partial"
  docker rmi "$tag.partial" >/dev/null
  say "$tag holds PostgreSQL $version"
  report "$tag"
}

N8N=n8nbk-n8n:2.8.4
N8N_RUNTIME=n8nbk-n8n-runtime:2.8.4
# The image's settings, as the official n8nio/n8n image has them (docker import sets them).
N8N_CONFIG=(
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'ENV LANG=C.UTF-8'
  --change 'ENV NODE_ENV=production'
  --change 'ENV N8N_RELEASE_TYPE=stable'
  --change 'ENV HOME=/home/node'
  --change 'ENV SHELL=/bin/sh'
  --change 'WORKDIR /home/node'
  --change 'USER node'
  --change 'EXPOSE 5678'
  --change 'ENTRYPOINT ["tini", "--", "/docker-entrypoint.sh"]'
)
n8n() {
  local bin dir ctx=fixtures/docker/n8n node inputs root
  bin=$(scripts/install-n8n.sh)
  dir=$(cd "$(dirname "$bin")/../.." && pwd) # .../n8n-2.8.4 (bin is node_modules/.bin/n8n)
  node=$(readlink -f "$(command -v node)")
  # 1. The runtime (user, tini, node) from a small context.
  inputs=$( { image_id "$BASE"; sha256sum "$node"; cat "$ctx/Dockerfile" "$ctx/docker-entrypoint.sh"; } | digest)
  if fresh "$N8N_RUNTIME" "$inputs"; then
    say "$N8N_RUNTIME is up to date"
  else
    say "building $N8N_RUNTIME with $node ($($node --version))"
    timed "$N8N_RUNTIME" bash -c 'set -o pipefail; tar -c --owner=0 --group=0 \
        -C "$1" Dockerfile docker-entrypoint.sh \
        --transform "s,^$(basename "$2")\$,node," -C "$(dirname "$2")" "$(basename "$2")" \
      | docker build --network host --build-arg BASE="$3" --label "n8nbk.inputs=$4" -t "$5" -' \
      _ "$ctx" "$node" "$BASE" "$inputs" "$N8N_RUNTIME"
  fi
  # 2. The runtime's files + the n8n install as one layer.
  inputs=$( { image_id "$N8N_RUNTIME"; sha256sum "$dir/package-lock.json"; printf '%s\n' "${N8N_CONFIG[@]}"; } | digest)
  if fresh "$N8N" "$inputs"; then say "$N8N is up to date"; report "$N8N"; return; fi
  say "importing $N8N: $N8N_RUNTIME + $dir"
  root=$(mktemp -d /tmp/n8n-image.XXXXXX)
  local cid
  cid=$(docker create "$N8N_RUNTIME" true)
  docker export "$cid" | tar -x --numeric-owner -C "$root"
  docker rm "$cid" >/dev/null
  # The image's own files first, then the install as usr/local/lib/n8n (the transform matches
  # only the second part: the first one's names start with "./").
  timed "$N8N" bash -c 'set -o pipefail; tar -c --numeric-owner -C "$1" . \
      --transform "s,^$(basename "$2"),usr/local/lib/n8n," -C "$(dirname "$2")" "$(basename "$2")" \
    | docker import "${@:5}" --change "LABEL n8nbk.inputs=$3" - "$4"' \
    _ "$root" "$dir" "$inputs" "$N8N" "${N8N_CONFIG[@]}"
  rm -rf "$root"
  docker run --rm --entrypoint node "$N8N" -e "require('/usr/local/lib/n8n/node_modules/n8n/package.json').version" >/dev/null \
    || { say "$N8N does not hold a loadable n8n"; exit 1; }
  report "$N8N"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(base postgres n8n)
docker info >/dev/null 2>&1 || { say "no Docker engine answers: run scripts/docker-engine.sh first"; exit 1; }
for t in "${targets[@]}"; do
  case $t in
    base) base ;;
    postgres) base >/dev/null; postgres n8nbk-postgres:15 ;;
    postgres-next) base >/dev/null; postgres n8nbk-postgres:15-next bookworm-security ;;
    n8n) base >/dev/null; n8n ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
  esac
done
