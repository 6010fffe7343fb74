#!/usr/bin/env bash
# tests/run.sh — runs every test of one build variant and prints a summary.
#
#   tests/run.sh BUILD_DIR [unit|integration|all]
#
# Unit tests: every BUILD_DIR/tests/test_* binary (cmocka). Integration tests:
# every tests/integration/test_*.py (python3 unittest, verbose) and
# test_*.sh, run against the binaries in BUILD_DIR/bin (NX_BUILD points there).
# Each test case counts once; a binary or script that dies without reporting
# its cases (a sanitizer abort, a timeout) counts as one failure. The last line
# is "N passed, N failed"; the exit status is non-zero if anything failed.
set -u
BUILD_DIR=${1:?usage: tests/run.sh BUILD_DIR [unit|integration|all]}
WHAT=${2:-all}
TIMEOUT=${NX_TEST_TIMEOUT:-600}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export NX_BUILD=$(cd "$BUILD_DIR" && pwd)
export NX_ROOT=$ROOT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
failures=()
LOGDIR=$(mktemp -d /tmp/nx-tests.XXXXXX)

record() { # name status(ok|fail)
  if [ "$2" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

run_cmocka() {
  local bin=$1 name log rc ok fail
  name=$(basename "$bin")
  log="$LOGDIR/$name.log"
  local t0=$SECONDS
  timeout "$TIMEOUT" "$bin" >"$log" 2>&1; rc=$?
  ok=$(grep -c '^\[       OK \]' "$log")
  # per-case failure lines, not the "[  FAILED  ] N test(s)" summary line
  fail=$(grep '^\[  FAILED  \] ' "$log" | grep -v 'test(s)' | sort -u | wc -l)
  passed=$((passed + ok))
  if [ "$fail" -gt 0 ]; then
    failed=$((failed + fail))
    while read -r l; do failures+=("$name: ${l#\[  FAILED  \] }"); done < <(grep '^\[  FAILED  \] ' "$log" | grep -v 'test(s)' | sort -u)
  elif [ "$rc" -ne 0 ]; then
    record "$name (exit $rc)" fail
  fi
  printf '%-32s %4d ok %3d failed  %4ds%s\n' "$name" "$ok" "$fail" $((SECONDS - t0)) "$([ "$rc" -ne 0 ] && echo "  exit=$rc log=$log")"
  if [ "$rc" -ne 0 ]; then tail -n 40 "$log" | sed 's/^/    | /'; fi
}

run_pyunit() {
  local script=$1 name log rc ok fail
  name=$(basename "$script")
  log="$LOGDIR/$name.log"
  local t0=$SECONDS
  (cd "$ROOT/tests/integration" && timeout "$TIMEOUT" python3 -m unittest -v "${name%.py}") >"$log" 2>&1; rc=$?
  # unittest's closing lines: "Ran N tests" then "OK (skipped=s)" or
  # "FAILED (failures=f, errors=e, skipped=s)"; per-case lines can be split by
  # warnings, the summary cannot.
  local ran nf ne ns
  ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$log" | tail -n 1)
  nf=$(grep -E '^(OK|FAILED)' "$log" | tail -n 1 | grep -o 'failures=[0-9]*' | grep -o '[0-9]*')
  ne=$(grep -E '^(OK|FAILED)' "$log" | tail -n 1 | grep -o 'errors=[0-9]*' | grep -o '[0-9]*')
  ns=$(grep -E '^(OK|FAILED)' "$log" | tail -n 1 | grep -o 'skipped=[0-9]*' | grep -o '[0-9]*')
  fail=$(( ${nf:-0} + ${ne:-0} ))
  ok=$(( ${ran:-0} - fail - ${ns:-0} ))
  passed=$((passed + ok))
  if [ "$fail" -gt 0 ]; then
    failed=$((failed + fail))
    while read -r l; do failures+=("$name: $l"); done < <(grep -E '^(FAIL|ERROR): ' "$log")
  elif [ "$rc" -ne 0 ]; then
    record "$name (exit $rc)" fail
  fi
  printf '%-32s %4d ok %3d failed  %4ds%s\n' "$name" "$ok" "$fail" $((SECONDS - t0)) "$([ "$rc" -ne 0 ] && echo "  exit=$rc log=$log")"
  if [ "$rc" -ne 0 ]; then tail -n 60 "$log" | sed 's/^/    | /'; fi
}

run_shell() {
  local script=$1 name log rc
  name=$(basename "$script")
  log="$LOGDIR/$name.log"
  local t0=$SECONDS
  timeout "$TIMEOUT" bash "$script" >"$log" 2>&1; rc=$?
  if [ "$rc" -eq 0 ]; then record "$name" ok; else record "$name (exit $rc)" fail; fi
  printf '%-32s %s  %4ds\n' "$name" "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED exit=$rc log=$log")" $((SECONDS - t0))
  if [ "$rc" -ne 0 ]; then tail -n 40 "$log" | sed 's/^/    | /'; fi
}

if [ "$WHAT" = unit ] || [ "$WHAT" = all ]; then
  echo "== unit tests ($BUILD_DIR)"
  for t in "$BUILD_DIR"/tests/test_*; do
    [ -x "$t" ] && run_cmocka "$t"
  done
fi
if [ "$WHAT" = integration ] || [ "$WHAT" = all ]; then
  echo "== integration tests ($BUILD_DIR)"
  for t in "$ROOT"/tests/integration/test_*.py; do
    [ -f "$t" ] && run_pyunit "$t"
  done
  for t in "$ROOT"/tests/integration/test_*.sh; do
    [ -f "$t" ] && run_shell "$t"
  done
fi

if [ "${#failures[@]}" -gt 0 ]; then
  echo "== failures"
  printf '  %s\n' "${failures[@]}"
fi
echo "logs: $LOGDIR"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
