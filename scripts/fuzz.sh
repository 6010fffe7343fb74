#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...] — builds the libFuzzer
# targets (make fuzz, mk/fuzz.mk) and runs each for SECONDS (default 20) on a
# scratch copy of its seed corpus fuzz/corpus/<target>/ (the committed corpus
# is never modified). Exits non-zero if any target crashes, leaks or times
# out; the reproducer is copied to fuzz/crashes/<target>-<name>. A target
# whose sources do not exist yet is reported as skipped.
# Env: FUZZ_JOBS is not used on purpose: one target at a time (shared 2-core
# machine). Reproducers in fuzz/crashes/<target>-* are replayed first, as
# regression inputs. FUZZ_BUILD (default build/fuzz), FUZZ_MAXLEN (default 65536).
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
shift || true
FUZZ_BUILD=${FUZZ_BUILD:-build/fuzz}
ALL=(fuzz_codec fuzz_sketch_decode fuzz_summary_decode fuzz_engine_decode
     fuzz_registry_json fuzz_statsd fuzz_nxb fuzz_wal)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

if ! make -s FUZZ_BUILD="$FUZZ_BUILD" fuzz >/tmp/nx_fuzz_build.$$ 2>&1; then
  cat /tmp/nx_fuzz_build.$$; rm -f /tmp/nx_fuzz_build.$$
  echo "fuzz: build failed"; exit 1
fi
rm -f /tmp/nx_fuzz_build.$$

fail=0; ran=0; skipped=0
for t in "${TARGETS[@]}"; do
  bin="$FUZZ_BUILD/$t"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $t SKIPPED (its sources do not exist yet)"; skipped=$((skipped+1)); continue
  fi
  # Every reproducer ever found is a regression input: replay them first.
  repro=(fuzz/crashes/"$t"-*)
  if [ -e "${repro[0]}" ]; then
    if ! "$bin" "${repro[@]}" >/tmp/nx_fuzz_repro.$$ 2>&1; then
      echo "fuzz: $t FAILED replaying a known reproducer:"
      grep -E 'Running:|ERROR|SUMMARY|runtime error|Assertion' /tmp/nx_fuzz_repro.$$ | head -10
      fail=$((fail+1)); ran=$((ran+1)); rm -f /tmp/nx_fuzz_repro.$$; continue
    fi
    rm -f /tmp/nx_fuzz_repro.$$
    echo "fuzz: $t replayed ${#repro[@]} known reproducer(s)"
  fi
  work=$(mktemp -d /tmp/nx_fuzz_$t.XXXXXX)
  mkdir -p "$work/corpus" "$work/art"
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$work/corpus/" 2>/dev/null
  start=$(date +%s)
  "$bin" "$work/corpus" -max_total_time="$SECS" -max_len="${FUZZ_MAXLEN:-65536}" \
      -timeout=10 -rss_limit_mb=1024 -artifact_prefix="$work/art/" -print_final_stats=1 \
      >"$work/log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 | grep -o '[0-9]*')
  n=$(ls "$work/corpus" | wc -l)
  el=$(( $(date +%s) - start ))
  ran=$((ran+1))
  if [ $rc -ne 0 ] || ls "$work/art" | grep -q .; then
    fail=$((fail+1))
    mkdir -p fuzz/crashes
    for a in "$work"/art/*; do [ -f "$a" ] && cp "$a" "fuzz/crashes/$t-$(basename "$a")"; done
    echo "fuzz: $t FAILED (rc $rc) after ${el}s; reproducers in fuzz/crashes/$t-*; log tail:"
    grep -E 'ERROR|SUMMARY|#0 |#1 |#2 |#3 |runtime error|Assertion' "$work/log" | head -20
  else
    echo "fuzz: $t ok ${el}s execs ${execs:-?} cov ${cov:-?} corpus $n"
  fi
  rm -rf "$work"
done
echo "fuzz: $ran ran, $skipped skipped, $fail failed"
[ $fail -eq 0 ]
