#!/usr/bin/env bash
# Download benchmark (issue #5): serves a ~2 GiB package from the registry
# server on 127.0.0.1 and prints MB/s for modelcache, the disk-write limit
# (dd + sync), curl (sequential) and aria2c -x8 -s8; median of 3 rounds.
#
#   bench/download.sh                 # from anywhere; the target filesystem is $TMPDIR's (default /tmp)
#   bench/download.sh -rounds 5       # extra flags go to `go run ./bench/download`
#   BENCH_TMPFS=1 bench/download.sh   # also run with the outputs on /dev/shm (no disk: CPU-bound)
#
# Needs ~5 GiB free on the target filesystem (source + one output at a time);
# everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v aria2c >/dev/null || missing+=(aria2)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "install ${missing[*]} for the comparison (apt-get install ${missing[*]})" >&2
  fi
fi

bin="$(mktemp -d)/dlbench"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./bench/download

echo "== target: $(df --output=source,fstype,target "${TMPDIR:-/tmp}" | tail -1)"
"$bin" "$@"

if [ "${BENCH_TMPFS:-0}" = 1 ] && [ -d /dev/shm ]; then
  echo "== outputs on tmpfs (/dev/shm): no disk, CPU-bound"
  out="/dev/shm/modelcache-bench-out-$$"
  "$bin" -out "$out" "$@"
fi
