#!/usr/bin/env bash
# Runs CI (.ci/run) on a fresh clone of HEAD inside a new 0700 directory, as on any other machine: the
# tests get nothing from this working tree (no build directory, no untracked file), and a test that
# re-runs itself as another user ("nobody", as root) cannot read the checkout. Run it before you stop.
# Usage: scripts/check-clean-clone.sh [COMMAND...]   (commit first: only HEAD is cloned)
#   COMMAND runs in the clone instead of `bash .ci/run`, e.g. `bash scripts/test.sh tsan` for one stage.
# The clone is removed when CI passes and kept for a look when it fails.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
head="$(git -C "$repo" rev-parse HEAD)"
if [[ -n "$(git -C "$repo" status --porcelain)" ]]; then
  echo "check-clean-clone: uncommitted changes are not part of the check (HEAD is $head)" >&2
fi
parent="$(mktemp -d "${TMPDIR:-/tmp}/imgdl-clean-clone.XXXXXX")"
chmod 700 "$parent"  # mktemp's default, made explicit: only the owner may enter
git clone --quiet "$repo" "$parent/imgdl"
git -C "$parent/imgdl" checkout --quiet --detach "$head"
echo "check-clean-clone: $head in $parent/imgdl (mode $(stat -c %a "$parent"))"
if [[ $# -eq 0 ]]; then
  set -- bash .ci/run
fi
if (cd "$parent/imgdl" && "$@"); then
  rm -rf "$parent"
  echo "check-clean-clone: passed"
else
  status=$?
  echo "check-clean-clone: FAILED ($status); the clone is kept in $parent/imgdl" >&2
  exit "$status"
fi
