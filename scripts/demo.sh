#!/usr/bin/env bash
# The README's "run the main job": the seed program's job (download five images with a thread pool) done
# by imgdl, offline. Installs what is missing, builds Release, starts the loopback test server with one
# second of latency per image (the seed's sleep(1)), and runs
#     imgdl --compare -o downloads/ -i <the seed's five images on that server>
# which downloads the list sequentially, then pooled, showing per-file progress, and prints the timing
# table. The pooled files end up in downloads/ (replaced on reruns). Extra arguments go to imgdl, e.g.
#     scripts/demo.sh -j 2          scripts/demo.sh --report demo.json
# Environment: IMGDL_DEMO_PORT (default 0: any free port), IMGDL_DEMO_LATENCY_MS (default 1000),
# IMGDL_DEMO_OUT (default downloads/), IMGDL_BUILD_DIR (use the binaries of an existing build there
# instead of installing and building Release).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
port="${IMGDL_DEMO_PORT:-0}"
latency_ms="${IMGDL_DEMO_LATENCY_MS:-1000}"
out_dir="${IMGDL_DEMO_OUT:-downloads/}"

build_dir="${IMGDL_BUILD_DIR:-}"
if [ -z "$build_dir" ]; then
  scripts/install-deps.sh
  # The build's own chatter (including GCC 12's known false-positive warnings) goes to a log, shown
  # only if the build fails: the demo's output is the downloads.
  mkdir -p build
  echo "Building imgdl (Release; log: build/demo-build.log)..."
  if ! { cmake --preset release && cmake --build --preset release --target imgdl-cli imgdl-testserver; } \
    >build/demo-build.log 2>&1; then
    tail -n 40 build/demo-build.log >&2
    echo "demo.sh: the build failed; the whole log is in build/demo-build.log" >&2
    exit 1
  fi
  build_dir="$root/build/release"
fi
imgdl="$build_dir/app/imgdl"
server="$build_dir/tests/support/imgdl-testserver"

work="$(mktemp -d "${TMPDIR:-/tmp}/imgdl-demo.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$server" --host 127.0.0.1 --port "$port" --port-file "$work/port" --latency-ms "$latency_ms" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  [ -s "$work/port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "demo.sh: the test server did not start" >&2; exit 1; }
  sleep 0.05
done
[ -s "$work/port" ] || { echo "demo.sh: the test server wrote no port file" >&2; exit 1; }
actual_port="$(cat "$work/port")"

# The seed's five basenames on this server (sample_urls/local.txt names port 8765).
sed "s#http://127.0.0.1:8765/#http://127.0.0.1:${actual_port}/#" sample_urls/local.txt >"$work/list.txt"
echo "Test server on http://127.0.0.1:${actual_port} (${latency_ms} ms per image); list:"
grep -v '^#' "$work/list.txt" | sed 's/^/  /'
echo

status=0
"$imgdl" --compare --on-exists overwrite -o "$out_dir" -i "$work/list.txt" "$@" || status=$?
exit "$status"
