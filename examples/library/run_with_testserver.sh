#!/usr/bin/env bash
# Runs `<program> <base URL> [args...]` against an imgdl-testserver started on a free loopback port,
# in a fresh working directory, and stops the server afterwards. For CTest (see CMakeLists.txt).
# Usage: run_with_testserver.sh <imgdl-testserver> <work dir> <program> [args...]
set -euo pipefail
testserver="$1" work="$2" program="$3"
shift 3

rm -rf "$work"
mkdir -p "$work"
cd "$work"
"$testserver" --port 0 --port-file port >testserver.log 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true' EXIT
# The port file is written once the server listens; wait for its complete line.
for _ in $(seq 100); do
  [[ -s port && "$(tail -c1 port)" == "" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat testserver.log >&2; exit 1; }
  sleep 0.1
done
[[ -s port ]] || { echo "imgdl-testserver wrote no port in 10 s" >&2; exit 1; }
"$program" "http://127.0.0.1:$(tr -d '[:space:]' <port)" "$@"
