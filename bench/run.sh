#!/usr/bin/env bash
# The downloader benchmark in one command: installs the peers (curl, wget2, aria2, python3, time), builds
# the Release targets, then runs bench/harness.py against imgdl-testserver on 127.0.0.1.
#
#   bench/run.sh [--no-deps] [--no-build] [harness options: --scenario NAME --reps N --quick --tools LIST ...]
#
# The build goes to $IMGDL_BENCH_BUILD_DIR (default build/bench-rel) with the `release` preset.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${IMGDL_BENCH_BUILD_DIR:-$root/build/bench-rel}

deps=1
build=1
harness_args=()
for arg in "$@"; do
  case "$arg" in
    --no-deps) deps=0 ;;
    --no-build) build=0 ;;
    *) harness_args+=("$arg") ;;
  esac
done

if [ "$deps" = 1 ]; then
  "$root/scripts/install-deps.sh" bench
fi
if [ "$build" = 1 ]; then
  (cd "$root" && cmake --preset release -B "$build_dir" >/dev/null)
  cmake --build "$build_dir" -j"$(nproc)" --target imgdl-cli imgdl-testserver library_bench executor_bench
fi
python=/usr/bin/python3  # Debian's interpreter: a pyenv shim would add ~1 s to every Python run
[ -x "$python" ] || python=python3
cd "$root"
exec "$python" "$root/bench/harness.py" --build-dir "$build_dir" "${harness_args[@]}"
