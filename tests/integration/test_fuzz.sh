#!/usr/bin/env bash
# CI short fuzz run (issue 6): every libFuzzer target for a few seconds on its
# seed corpus; fails on any crash. Total well under 3 minutes (8 targets x
# NX_FUZZ_SECS, default 10, plus the clang build when not cached).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v clang >/dev/null 2>&1; then
  echo "test_fuzz: clang not installed (scripts/install-deps.sh)"; exit 1
fi
exec scripts/fuzz.sh "${NX_FUZZ_SECS:-10}"
