#!/usr/bin/env bash
# The shipped docker-compose.yml brought up with podman and podman-compose where no registry is
# reachable, and checked: podman-compose 1.0 exits 0 even when a container was never created,
# and without systemd podman runs no health check by itself, so this script does both checks.
#
#   deploy/offline/compose.sh up     stand-in images, binaries built here, then every service
#                                    started in dependency order and waited for until healthy
#   deploy/offline/compose.sh start SERVICE…   start services already built, and check them
#   deploy/offline/compose.sh down   containers, volumes and the project's network removed
#
# The public images are stood in for by local images under the same names, built on a Debian
# base made with debootstrap: docker.io/library/postgres:17-alpine (Debian's PostgreSQL behind
# an entrypoint that honours POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB),
# docker.io/library/redis:7-alpine (Debian's Redis) and docker.io/library/debian:bookworm-slim
# (the base itself). The services are built from the shipped Dockerfiles with BINARIES=prebuilt:
# binaries built on this host by cargo instead of in a builder image.
#
# Needs podman, podman-compose, debootstrap (as root), cargo. COMPOSE_PROJECT_NAME names the
# project (default: txn). On failure it prints what the engine said, and each unhealthy
# container's state and log, and exits 1.
set -euo pipefail
cd "$(dirname "$0")/../.."

project="${COMPOSE_PROJECT_NAME:-txn}"
base=localhost/txn-debian-base:bookworm
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fail() {
  echo "compose.sh: $*" >&2
  exit 1
}

# Every podman call fails the same way when the engine's own settings are wrong: say so first.
preflight() {
  local out
  out="$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>&1)" \
    || fail "podman cannot run (check /etc/containers/containers.conf or CONTAINERS_CONF): $out"
}

compose() {
  BINARIES=prebuilt podman-compose -p "$project" -f docker-compose.yml "$@"
}

# Runs podman-compose, keeping its output; its exit code alone proves nothing.
compose_logged() {
  if ! compose "$@" >"$log" 2>&1; then
    engine_errors
    fail "podman-compose $* failed"
  fi
}

# What the engine said went wrong in the last podman-compose run.
engine_errors() {
  grep -E '^(Error|error|ERRO)' "$log" | sort -u | sed 's/^/  engine: /' >&2 || true
}

container() {
  echo "${project}_$1_1"
}

# The container's state (`running`, `exited 1`, …), or `missing` if it was never created.
state() {
  podman inspect --format '{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}' "$(container "$1")" 2>/dev/null \
    | sed 's/ *$//' || echo missing
}

# Why SERVICE is not up: the engine's errors, its state, the end of its log.
explain() {
  local service="$1" why="$2"
  echo "compose.sh: $service $why" >&2
  engine_errors
  local now
  now="$(state "$service")"
  echo "  state: $now" >&2
  if [ "$now" != missing ]; then
    podman logs --tail 30 "$(container "$service")" 2>&1 | sed 's/^/  log: /' >&2 || true
  fi
  exit 1
}

# Runs SERVICE's health check until it passes (podman without systemd never runs it itself,
# and `podman ps` shows `(starting)` until something does).
wait_healthy() {
  local service="$1" seconds="${2:-120}"
  local deadline=$((SECONDS + seconds))
  until podman healthcheck run "$(container "$service")" >/dev/null 2>&1; do
    case "$(state "$service")" in
      missing) explain "$service" "was never created" ;;
      running*) ;;
      *) explain "$service" "stopped" ;;
    esac
    ((SECONDS < deadline)) || explain "$service" "is not healthy after ${seconds}s"
    sleep 1
  done
  echo "$service healthy"
}

# Waits for SERVICE to run to completion with exit code 0.
wait_completed() {
  local service="$1" deadline=$((SECONDS + 120))
  while :; do
    case "$(state "$service")" in
      "exited 0"*) echo "$service done"; return ;;
      missing) explain "$service" "was never created" ;;
      exited*) explain "$service" "failed" ;;
    esac
    ((SECONDS < deadline)) || explain "$service" "still running after 120s"
    sleep 1
  done
}

images() {
  if ! podman image exists "$base"; then
    local root
    root="$(mktemp -d)"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
    tar -C "$root" -c . | podman import - "$base" >/dev/null
    rm -rf "$root"
  fi
  podman build -q -t docker.io/library/postgres:17-alpine --build-arg "BASE=$base" \
    -f deploy/offline/Containerfile.postgres deploy/offline >/dev/null
  podman build -q -t docker.io/library/redis:7-alpine --build-arg "BASE=$base" \
    -f deploy/offline/Containerfile.redis deploy/offline >/dev/null
  podman tag "$base" docker.io/library/debian:bookworm-slim
}

binaries() {
  CARGO_TARGET_DIR=target/compose "${CARGO:-cargo}" build --bins \
    -p producer -p consumer -p thirdparty-sim -p client-sim
  mkdir -p prebuilt
  for bin in producer consumer thirdparty-sim client-sim; do
    cp "target/compose/debug/$bin" prebuilt/
  done
}

case "${1:-}" in
  up)
    preflight
    images
    binaries
    # Docker's image format keeps each Dockerfile's HEALTHCHECK (the OCI format drops it).
    BUILDAH_FORMAT=docker compose_logged build
    # podman-compose 1.0 does not wait for `depends_on` conditions: the order is kept here.
    compose_logged up -d postgres redis
    wait_healthy postgres
    wait_healthy redis
    compose_logged up -d migrate
    wait_completed migrate
    # The pipeline's services by name: podman-compose 1.0 ignores profiles, and would start the
    # `tracing` profile's collector too.
    compose_logged up -d thirdparty-sim client-sim producer consumer
    for service in thirdparty-sim client-sim producer consumer; do
      wait_healthy "$service"
    done
    ;;
  start)
    shift
    [ "$#" -gt 0 ] || fail "start needs the services to start"
    preflight
    compose_logged up -d --no-build "$@"
    for service in "$@"; do
      wait_healthy "$service" 60
    done
    ;;
  down)
    preflight
    compose down -v >"$log" 2>&1 || { engine_errors; fail "podman-compose down failed"; }
    # podman-compose 1.0 leaves the project's network behind.
    podman network rm -f "${project}_default" >/dev/null 2>&1 || true
    rm -rf prebuilt
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
