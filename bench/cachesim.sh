#!/usr/bin/env bash
# bench/cachesim.sh — instructions and cache misses per event of one
# bench_engine build, counted by valgrind's cache model: the same figures on
# every run, whatever else the machine is doing.
#
# A layout change (which lines an event, a close or a fold touches) is too
# small for wall-clock runs on a noisy VM to see (bench/ab.sh needs 10+
# pairs to see 10%), and callgrind's plain instruction count does not see
# it at all. This script runs bench_engine's update loop (run(): the
# full-rate warm-up and the timed span; not the slow warm-up) under
# callgrind with a cache model sized like the machine's effective caches
# (32 KiB L1d, and a 512 KiB last level: on the EPYC VMs the L3 does not
# act as one, docs/engine.md "This machine's memory") and prints, per
# event:
#   Ir    instructions
#   D1mr  L1 data read misses      D1mw  L1 data write misses
#   LLmr  last-level read misses   LLmw  last-level write misses
# Valgrind does not model prefetches: a prefetched line counts as a miss
# at its first use. The miss figures count lines fetched, not time waited.
# Compare two builds run at the same settings; the absolute figures are
# only a model's.
#
# Usage:
#   bench/cachesim.sh BIN TYPE [PACE] [TENANTS] [VAR=value ...]
#     TYPE     counter | distribution | set (NX_BENCH_ONLY)
#     PACE     events per stream per simulated second (default 30)
#     TENANTS  10 streams each (default 1000: 10,000 streams, ~100 MB of
#              counter streams, far past the modelled caches; a counter
#              run takes ~5 minutes, a set or distribution run longer)
#     VAR=value  more bench_engine settings (NX_BENCH_WARM_RUN_S and
#              NX_BENCH_SCALE change the event count; it follows them)
# Example: the working tree against a saved base build
#   bench/cachesim.sh /tmp/bench_base counter; bench/cachesim.sh build/release/bench/bench_engine counter
# Two at once may run the machine out of memory with distributions or sets.
set -euo pipefail

usage() {
    sed -n '/^# Usage:/,/^# Two at once/p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}
[ $# -ge 2 ] || usage
bin=$1 type=$2
pace=${3:-30} tenants=${4:-1000}
shift $(($# < 4 ? $# : 4))
case $type in counter | distribution | set) ;; *)
    echo "cachesim.sh: TYPE must be counter, distribution or set, not '$type'" >&2
    exit 2
    ;;
esac
[ -x "$bin" ] || { echo "cachesim.sh: $bin is not an executable bench_engine" >&2; exit 2; }
case "$pace$tenants" in *[!0-9]*)
    echo "cachesim.sh: PACE and TENANTS are whole numbers" >&2
    exit 2
    ;;
esac
command -v valgrind > /dev/null || { echo "cachesim.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }

warm_run=30 scale=1
for kv in "$@"; do
    case $kv in
        NX_BENCH_WARM_RUN_S=*) warm_run=${kv#*=} ;;
        NX_BENCH_SCALE=*) scale=${kv#*=} ;;
    esac
done
# the events run() gets: the full-rate warm-up and the timed 30 s x scale
events=$(awk -v w="$warm_run" -v s="$scale" -v p="$pace" -v t="$tenants" \
    'BEGIN { printf "%.0f", (w + 30 * s) * p * t * 10 }')

out=$(mktemp -d /tmp/nx-cachesim.XXXXXX)
trap 'rm -rf "$out"' EXIT
env "$@" NX_BENCH_ONLY="$type" NX_BENCH_PACE="$pace" NX_BENCH_TENANTS="$tenants" NX_BENCH_THP=0 \
    valgrind --tool=callgrind --cache-sim=yes --D1=32768,8,64 --LL=524288,8,64 \
    --toggle-collect=run --callgrind-out-file="$out/cg" "$bin" > "$out/log" 2>&1 || {
    echo "cachesim.sh: the run failed; its output:" >&2
    tail -5 "$out/log" >&2
    exit 1
}
# the profile's own totals: an `events:` line naming the counters and a
# `summary:` line with their values
awk -v n="$events" -v type="$type" -v pace="$pace" -v tenants="$tenants" '
    $1 == "events:" { for (i = 2; i <= NF; i++) col[$i] = i }
    $1 == "summary:" {
        found = 1
        printf "%s pace %s, %s tenants, %d events in run()\n", type, pace, tenants, n
        printf "per event: Ir %.1f  D1mr %.3f  D1mw %.3f  LLmr %.3f  LLmw %.3f\n",
            $col["Ir"] / n, $col["D1mr"] / n, $col["D1mw"] / n, $col["DLmr"] / n, $col["DLmw"] / n
    }
    END { if (!found) { print "cachesim.sh: no totals in the profile" > "/dev/stderr"; exit 1 } }' "$out/cg"
