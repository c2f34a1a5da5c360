#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (the `fuzz` preset) and runs each for a bounded time.
# Usage: scripts/fuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
bash scripts/install-deps.sh
cmake --preset fuzz
cmake --build --preset fuzz --target fuzz_filename fuzz_url_list fuzz_image_info
for target in fuzz_filename fuzz_url_list fuzz_image_info; do
  corpus="build/fuzz/corpus/$target"
  mkdir -p "$corpus"
  # Committed seeds (read only: new inputs go to the first directory) start the search at real URLs.
  seeds=()
  [ -d "tests/fuzz/seeds/$target" ] && seeds=("tests/fuzz/seeds/$target")
  echo "fuzz: $target for ${seconds}s"
  "build/fuzz/tests/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$corpus" "${seeds[@]}" 2>&1 | tail -n 12
done
