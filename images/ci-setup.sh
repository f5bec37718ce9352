#!/usr/bin/env bash
# Make this machine able to run images/build.sh --local-base: install docker.io and
# debootstrap from Debian if missing, start dockerd if no daemon answers, and wait
# until `docker info` works. Safe to call repeatedly; needs root.
#
#   images/ci-setup.sh && images/build.sh --local-base
set -euo pipefail

log=${DOCKERD_LOG:-/tmp/dockerd.log}
wait_s=${DOCKERD_WAIT_S:-60}

if docker info >/dev/null 2>&1 && command -v debootstrap >/dev/null; then
  exit 0
fi
if [[ $EUID -ne 0 ]]; then
  echo "ci-setup.sh: needs root to install packages and start dockerd" >&2
  exit 1
fi

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  echo "ci-setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "ci-setup: starting dockerd (log: $log)"
  # setsid: the daemon outlives this script and the CI step's process group.
  setsid dockerd >"$log" 2>&1 </dev/null &
  for ((i = 0; i < wait_s; i++)); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "ci-setup.sh: dockerd did not answer within ${wait_s}s; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
fi
echo "ci-setup: docker $(docker version --format '{{.Server.Version}}') ready"
