#!/usr/bin/env bash
# The README's test command: installs what is missing, configures, builds and runs every test.
# Usage: scripts/test.sh [preset]   (dev by default; asan and tsan run the same suite under sanitizers)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-dev}"
bash scripts/install-deps.sh slurm   # the base list and Slurm, for tests/slurm
cmake --preset "$preset"
cmake --build --preset "$preset"
ctest --preset "$preset"
