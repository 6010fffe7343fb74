#!/usr/bin/env bash
# bench/nxb_ingest.sh — issue 4: nexusd's NXB-over-UDP ingest with eBPF
# steering vs plain reuseport vs StatsD text, in one run, on this machine
# (sender and daemon share the cores).
#
# For each mode: start nexusd (--shards $SHARDS, --steer MODE), send EVENTS
# events (nx-nxb-sender: libnexus-client, 8 tenants, 65,000-byte datagrams;
# StatsD: nx-loadgen, 8,192-byte datagrams) as fast as the sender can (or at
# RATE events/s), wait until nexusd's applied-event counter stops moving, and
# print (one "name value unit" line per figure):
#   <mode>_events_per_s      applied events / (first send -> last applied)
#   <mode>_loss              sent - applied (0 = lossless run)
#   <mode>_recv_per_1000     recvmmsg calls (nexusd's own counters,
#                            /v1/stats per_shard[].nxb.recv_calls or
#                            recv_calls) per 1,000 applied events
# Environment: BUILD (build/release), SHARDS (2), EVENTS (40000000),
# RATE (0 = max), SD_LINES (4000000).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build/release}
SHARDS=${SHARDS:-2}
EVENTS=${EVENTS:-40000000}
RATE=${RATE:-0}
SD_LINES=${SD_LINES:-4000000}
make -j2 BUILD="$BUILD" "$BUILD/bin/nexusd" "$BUILD/bin/nx-nxb-sender" "$BUILD/bin/nx-loadgen" >/dev/null
TMP=$(mktemp -d /tmp/nx-nxbbench.XXXXXX)
NX_PID=
cleanup() {
    if [ -n "$NX_PID" ] && kill -0 "$NX_PID" 2>/dev/null; then kill -TERM "$NX_PID"; wait "$NX_PID" || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# prints "events recv_calls" (NXB or StatsD counters)
counters() {
    curl -s "http://127.0.0.1:$HTTP/v1/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin); k = sys.argv[1]
if k == "nxb":
    print(sum(x["nxb"]["events"] for x in s["per_shard"]), sum(x["nxb"]["recv_calls"] for x in s["per_shard"]))
else:
    print(s["totals"]["events"], sum(x["recv_calls"] for x in s["per_shard"]))' "$1"
}

start() {
    HTTP=$(port); UDP=$(port); SD=$(port)
    "$BUILD/bin/nexusd" --http 127.0.0.1:$HTTP --statsd-udp 127.0.0.1:$SD --statsd-tcp off \
        --nxb-udp 127.0.0.1:$UDP --nxb-tcp off --shards "$SHARDS" --data-dir "$TMP/data" \
        --steer "$1" --rcvbuf 67108864 $(for i in 1 2 3 4 5 6 7 8; do printf -- "--nxb-tenant %d:t%d " $i $i; done) >"$TMP/nexusd.log" 2>&1 &
    NX_PID=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/v1/health" >/dev/null && return; sleep 0.05; done
    echo "nexusd did not start" >&2; cat "$TMP/nexusd.log" >&2; exit 1
}

stop() { kill -TERM "$NX_PID"; wait "$NX_PID" || true; NX_PID=; }

# waits until applied events stop moving; prints "events recv_calls end_time"
settle() {
    local last=-1 cur
    while :; do
        read -r cur calls < <(counters "$1")
        if [ "$cur" = "$last" ]; then echo "$cur $calls $LAST_T"; return; fi
        last=$cur; LAST_T=$(date +%s.%N); sleep 0.2
    done
}

run_nxb() { # name steer
    start "$2"
    local mode; mode=$(curl -s "http://127.0.0.1:$HTTP/v1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["kernel"]["nxb"]["mode"])')
    local t0; t0=$(date +%s.%N)
    "$BUILD/bin/nx-nxb-sender" --port "$UDP" --events "$EVENTS" --rate "$RATE" >"$TMP/send.out"
    read -r ev calls t1 < <(settle nxb)
    report "$1" "$EVENTS" "$ev" "$calls" "$t0" "$t1" "steer=$mode"
    stop
}

run_statsd() {
    start auto
    local t0; t0=$(date +%s.%N)
    "$BUILD/bin/nx-loadgen" --port "$SD" --tenants 8 --metrics 2 --lines "$SD_LINES" \
        --dgram-bytes 8192 >/dev/null 2>&1
    read -r ev calls t1 < <(settle statsd)
    report statsd_text "$SD_LINES" "$ev" "$calls" "$t0" "$t1" "8 KiB datagrams"
    stop
}

report() { # name sent applied calls t0 t1 note
    # the settle loop saw the last change up to 0.2 s before t1
    python3 - "$@" <<'PY'
import sys
name, sent, ev, calls, t0, t1, note = sys.argv[1:]
sent, ev, calls, el = int(sent), int(ev), int(calls), float(t1) - float(t0)
print("%s_events_per_s %.0f events/s (%s)" % (name, ev / el, note))
print("%s_loss %d events" % (name, sent - ev))
print("%s_recv_per_1000 %.4f syscalls/1000 events" % (name, 1000.0 * calls / max(ev, 1)))
PY
}

run_nxb nxb_ebpf ebpf
run_nxb nxb_plain plain
run_statsd
