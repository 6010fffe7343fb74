#!/usr/bin/env bash
# scripts/test.sh — the whole test suite, from a fresh Debian 12 machine.
#
# Installs the Debian packages the project needs (scripts/install-deps.sh),
# builds with -Werror in two variants — release (-O2) and asan (AddressSanitizer
# + UndefinedBehaviorSanitizer) — and runs:
#   unit tests        under release and under asan
#   integration tests against the asan nexusd (real sockets, real servers)
# The last line is "N passed, N failed" over all of it. Exit status non-zero
# if anything failed or did not build.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

JOBS=${NX_JOBS:-$(nproc)}
for v in release asan; do
  echo "== build ($v)"
  if ! make -s -j"$JOBS" VARIANT=$v EXTRA_CFLAGS=-Werror all; then
    echo "build ($v) failed"
    echo "0 passed, 1 failed"
    exit 1
  fi
done

total_pass=0
total_fail=0
run() {
  local out
  out=$(mktemp)
  bash tests/run.sh "$@" | tee "$out"
  local line
  line=$(tail -n 1 "$out")
  total_pass=$((total_pass + $(echo "$line" | awk '{print $1}')))
  total_fail=$((total_fail + $(echo "$line" | awk '{print $3}')))
  rm -f "$out"
}
run build/release unit
run build/asan unit
run build/asan integration

echo "== total"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
