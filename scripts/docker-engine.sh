#!/usr/bin/env bash
# Run a command with a Docker engine answering, for `make test` and `make images`:
#
#   scripts/docker-engine.sh COMMAND [ARG...]
#
# An engine that already answers (`docker version`) is used as it is and left alone. Otherwise, as
# root with Debian's dockerd installed (scripts/setup.sh installs docker.io on such a machine), dockerd
# is started in the background for the command, its log in run/dockerd.log, and stopped again when
# the command ends, however it ends: nothing is left running. Anywhere else this fails with what to
# install; the container tests are never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[setup] %s\n' "$*"; }
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if ! command -v docker >/dev/null 2>&1; then
  echo "[setup] error: the docker client is missing: install Debian's docker.io (or Docker Engine) and run again" >&2
  exit 1
fi
if engine_answers; then
  exec "$@"
fi
if [ "$(id -u)" -ne 0 ] || ! command -v dockerd >/dev/null 2>&1; then
  echo "[setup] error: no Docker engine answers (docker version) and none can be started here:" \
    "start yours, or as root install Debian's docker.io (scripts/setup.sh does) and run again" >&2
  exit 1
fi

# A dockerd that was killed leaves its pid file behind, and a new one refuses to start over it.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi
mkdir -p run
engine_log=run/dockerd.log
log "starting dockerd $(dockerd --version | sed 's/^Docker version \([^,]*\).*/\1/') in the background for this run (log: $engine_log); it stops when the run ends"
dockerd >"$engine_log" 2>&1 &
engine_pid=$!
stop_engine() {
  # SIGTERM: dockerd stops its containers and its containerd, then exits.
  if kill -0 "$engine_pid" 2>/dev/null; then
    kill -TERM "$engine_pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$engine_pid" 2>/dev/null || true
    wait "$engine_pid" 2>/dev/null || true
  fi
}
trap stop_engine EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for _ in $(seq 1 60); do
  engine_answers && break
  kill -0 "$engine_pid" 2>/dev/null || { tail -n 20 "$engine_log" >&2; echo "[setup] error: dockerd exited" >&2; exit 1; }
  sleep 0.5
done
engine_answers || { tail -n 20 "$engine_log" >&2; echo "[setup] error: dockerd did not answer within 30 s" >&2; exit 1; }
status=0
"$@" || status=$?
exit "$status"
