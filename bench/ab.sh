#!/usr/bin/env bash
# bench/ab.sh — paired A/B of two bench_engine builds on a noisy machine.
#
# On a shared VM one binary's figure moves by 20-30% from run to run (other
# tenants' memory traffic, clock changes), far more than most changes to the
# engine. Runs of the two builds one after the other measure the machine's
# drift, not the change. This script starts BASE and NEW together, one per
# core, for ROUNDS rounds, and alternates which one is launched first (the
# one launched first gets a head start on the memory bus during the
# warm-up). It prints each round's pair and then the means, the mean of the
# paired differences with its standard error, and how many rounds NEW won.
# A change is real when the mean difference is several standard errors
# from 0; an A/A run (BASE against itself) shows this machine's floor.
#
# Usage:
#   bench/ab.sh BASE_BIN NEW_BIN TYPE [PACE] [ROUNDS] [VAR=value ...]
#     TYPE    counter | distribution | set (NX_BENCH_ONLY)
#     PACE    events per stream per simulated second (default 30)
#     ROUNDS  pairs to run (default 8)
#     VAR=value  more bench_engine settings, e.g. NX_BENCH_TENANTS=20
# Example, the session's start against the working tree:
#   git worktree add -f /tmp/base <rev> && make -C /tmp/base -j2 build/release/bench/bench_engine
#   bench/ab.sh /tmp/base/build/release/bench/bench_engine \
#       build/release/bench/bench_engine distribution 30 10
# Needs both cores to itself: build nothing and run nothing else meanwhile.
set -euo pipefail

usage() {
    sed -n '/^# Usage:/,/^# Needs/p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}
[ $# -ge 3 ] || usage
base=$1 new=$2 type=$3
pace=${4:-30} rounds=${5:-8}
shift $(($# < 5 ? $# : 5))
case $type in counter | distribution | set) ;; *)
    echo "ab.sh: TYPE must be counter, distribution or set, not '$type'" >&2
    exit 2
    ;;
esac
for b in "$base" "$new"; do
    [ -x "$b" ] || { echo "ab.sh: $b is not an executable bench_engine" >&2; exit 2; }
done
case "$pace$rounds" in *[!0-9]*)
    echo "ab.sh: PACE and ROUNDS are whole numbers" >&2
    exit 2
    ;;
esac

out=$(mktemp -d /tmp/nx-ab.XXXXXX)
trap 'rm -rf "$out"' EXIT
# the figure: the first `<type>_updates` line (not the keyed ones)
figure() { awk -v k="${type}_updates" '$1 == k { print $2; exit }' "$1"; }

# one BIN: a run of BIN with the type, the pace and the caller's settings
one() { env "${settings[@]}" NX_BENCH_ONLY="$type" NX_BENCH_PACE="$pace" "$1"; }
settings=("$@")
for r in $(seq "$rounds"); do
    if [ $((r % 2)) = 1 ]; then
        one "$new" > "$out/new.$r" 2>&1 &
        one "$base" > "$out/base.$r" 2>&1 || true
    else
        one "$base" > "$out/base.$r" 2>&1 &
        one "$new" > "$out/new.$r" 2>&1 || true
    fi
    wait || true
    b=$(figure "$out/base.$r") n=$(figure "$out/new.$r")
    if [ -z "$b" ] || [ -z "$n" ]; then
        echo "ab.sh: round $r printed no ${type}_updates; its output:" >&2
        tail -5 "$out/base.$r" "$out/new.$r" >&2
        exit 1
    fi
    echo "round $r ($([ $((r % 2)) = 1 ] && echo new || echo base) first): base $b new $n"
    echo "$b $n" >> "$out/pairs"
done
awk -v type="$type" -v pace="$pace" '
    { b[NR] = $1; n[NR] = $2; sb += $1; sn += $2; d[NR] = ($2 - $1) / $1; sd += d[NR]; if ($2 > $1) w++ }
    END {
        k = NR; md = sd / k
        for (i = 1; i <= k; i++) v += (d[i] - md) ^ 2
        se = k > 1 ? sqrt(v / (k - 1) / k) : 0
        printf "%s pace %s, %d pairs: base mean %.2f, new mean %.2f Mupdates/s/core\n", type, pace, k, sb / k, sn / k
        printf "paired difference %+.1f%% +- %.1f%% (standard error), new ahead in %d of %d\n", 100 * md, 100 * se, w, k
    }' "$out/pairs"
