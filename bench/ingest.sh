#!/usr/bin/env bash
# bench/ingest.sh — issue 3's ingest benchmark: nexusd alone, driven over UDP
# by nx-loadgen with StatsD lines from 10,000 tenants x 10 metrics.
#
# Prints (one "name value unit" line per figure, as every benchmark here):
#   ingest_lossless_rate   highest offered rate whose lines nexusd applied
#                          with < 0.1% loss AND caught up within 0.25 s +
#                          10% of the probe after the sender stopped (loss =
#                          sent - delta of /v1/stats totals.events)
#   query_p50 / query_p99  single-stream GET /v1/summary latency (one
#                          keep-alive connection, 200 queries/s, measured by
#                          nx-loadgen in C) while sending at that rate
#                          by a query thread at SCHED_FIFO QUERY_FIFO (3,
#                          the priority of nexusd's HTTP threads, when
#                          permitted: query_fifo says what it got), so that
#                          it measures nexusd and not its own wait for a
#                          core behind the sender on this 2-core box
#   query_normal_client_p50/p99  the same with the query thread at normal
#                          priority (what a client sharing the saturated
#                          cores sees: its own scheduling wait included)
#   query_moderate_p50/p99 the same while sending QUERY_MODERATE lines/s
#                          (1,000,000; at most the lossless rate)
#   query_[moderate_]server_p50_le/p99_le  the same queries as nexusd saw
#                          them (its nexusd_http_request_duration_seconds
#                          histogram, headers in to answer out): the bucket
#                          bound at or below which that share of them lay
#   ingest_sustained_loss  % of the lines lost when the lossless rate is then
#                          held for SUSTAIN_S seconds (30) instead of a
#                          PROBE_S probe: the probes start from an empty
#                          nexusd, while a longer run pays for its summaries
#                          growing (first touches of fresh memory) and for
#                          its snapshots; 0 = the rate held
#   ingest_sustained_lossless_rate  the send rate of the first of that rate,
#                          3/4 of it, 3/4 of that... (SUSTAIN_STEPS more, 3)
#                          that held SUSTAIN_S seconds by the same criterion,
#                          each lower one on a fresh nexusd; 0 = none held
# and writes the raw probes to bench/results/ingest-<UTC time>.json.
#
# SINK=1 measures the machine's ceiling instead: the same probes against
# nx-udp-sink (bench/udp_sink.c: nexusd's receive path — reuseport sockets,
# recvmmsg — and nothing else but counting lines), printed as
# sink_lossless_rate. nexusd's rate / the sink's is the share of what this
# machine's sender + kernel UDP path leave that nexusd reaches.
#
# Environment: BUILD (build/release), SHARDS (nexusd --shards, default its
# own), THREADS (loadgen threads, 1), PROBE_S (2), DGRAM_BYTES (1400),
# START_RATE (250000), MAX_RATE (64000000), QUERY_S (5), QUERY_MODERATE
# (1000000), QUERY_FIFO (3; 0 = the query thread at normal priority
# throughout), SUSTAIN_S (30; 0 skips that phase), SUSTAIN_STEPS (3),
# NEXUSD_ARGS (extra nexusd flags, e.g. "--prefault-ahead 512").
# nexusd and the load generator share this machine's cores, as the issue asks.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build/release}
SHARDS=${SHARDS:-0}
THREADS=${THREADS:-1}
PROBE_S=${PROBE_S:-2}
DGRAM_BYTES=${DGRAM_BYTES:-1400}
START_RATE=${START_RATE:-250000}
MAX_RATE=${MAX_RATE:-64000000}
QUERY_S=${QUERY_S:-5}
QUERY_MODERATE=${QUERY_MODERATE:-1000000}
QUERY_FIFO=${QUERY_FIFO:-3}
SUSTAIN_S=${SUSTAIN_S:-30}
SUSTAIN_STEPS=${SUSTAIN_STEPS:-3}
SINK=${SINK:-0}
NEXUSD_ARGS=${NEXUSD_ARGS:-}
NEXUSD=$BUILD/bin/nexusd
LOADGEN=$BUILD/bin/nx-loadgen
UDP_SINK=$BUILD/bin/nx-udp-sink

make -j2 BUILD="$BUILD" "$NEXUSD" "$LOADGEN" "$UDP_SINK" >/dev/null

TMP=$(mktemp -d /tmp/nx-ingest.XXXXXX)
NX_PID=
cleanup() {
    if [ -n "$NX_PID" ] && kill -0 "$NX_PID" 2>/dev/null; then
        kill -TERM "$NX_PID" 2>/dev/null || true
        # a clean stop writes a final snapshot of the whole state (GBs after
        # a run): give it time rather than killing it mid-write
        for _ in $(seq 600); do kill -0 "$NX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NX_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # $1 = tcp|udp
    python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=='udp' else socket.SOCK_STREAM); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])" "$1"
}
UDP=$(free_port udp)
HTTP=$(free_port tcp)
if [ "$SINK" = 1 ]; then
    sargs=(--port "$UDP" --count-file "$TMP/sink.counts")
    [ "$SHARDS" -gt 0 ] && sargs+=(--threads "$SHARDS")
    "$UDP_SINK" "${sargs[@]}" >"$TMP/nexusd.log" 2>&1 &
    NX_PID=$!
    for _ in $(seq 100); do
        [ -s "$TMP/sink.counts" ] && break
        kill -0 "$NX_PID" 2>/dev/null || { cat "$TMP/nexusd.log" >&2; exit 1; }
        sleep 0.1
    done
    events() { python3 -c "import struct,sys; b=open(sys.argv[1],'rb').read(); print(sum(struct.unpack('<%dQ' % (len(b)//8), b)))" "$TMP/sink.counts"; }
else
    start_nexusd() {
        args=(--data-dir "$TMP/data" --http "127.0.0.1:$HTTP" --statsd-udp "127.0.0.1:$UDP"
              --statsd-tcp off --nxb-udp off --nxb-tcp off)
        [ "$SHARDS" -gt 0 ] && args+=(--shards "$SHARDS")
        # shellcheck disable=SC2206
        [ -n "$NEXUSD_ARGS" ] && args+=($NEXUSD_ARGS)
        "$NEXUSD" "${args[@]}" >>"$TMP/nexusd.log" 2>&1 &
        NX_PID=$!
        for _ in $(seq 100); do
            curl -sf "http://127.0.0.1:$HTTP/v1/health" >/dev/null 2>&1 && break
            kill -0 "$NX_PID" 2>/dev/null || { cat "$TMP/nexusd.log" >&2; exit 1; }
            sleep 0.1
        done
    }
    # a fresh nexusd with an empty data directory (the old one's data is
    # not needed: killed rather than stopped, which would first write a
    # snapshot of GBs)
    restart_nexusd() {
        kill -KILL "$NX_PID" 2>/dev/null || true
        wait "$NX_PID" 2>/dev/null || true
        rm -rf "$TMP/data"
        start_nexusd
    }
    start_nexusd
    events() { curl -sf "http://127.0.0.1:$HTTP/v1/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['totals']['events'])"; }
fi

# Waits until totals.events stops moving; prints "count lag_seconds".
drain() {
    local t0 last cur t_change now
    t0=$(date +%s.%N); last=$(events); t_change=$t0
    for _ in $(seq 60); do
        sleep 0.1
        cur=$(events); now=$(date +%s.%N)
        if [ "$cur" != "$last" ]; then last=$cur; t_change=$now
        elif python3 -c "import sys; sys.exit(0 if $now - $t_change >= 0.4 else 1)"; then break; fi
    done
    python3 -c "print($last, max(0.0, $t_change - $t0))"
}

PROBES="$TMP/probes.jsonl"
: >"$PROBES"
# probe RATE -> prints "ok|bad send_rate"; appends a JSON line to $PROBES
probe() {
    local rate=$1 before out sent send_rate d got lag
    before=$(events)
    out=$("$LOADGEN" --port "$UDP" --rate "$rate" --duration "$PROBE_S" --threads "$THREADS" \
          --dgram-bytes "$DGRAM_BYTES")
    sent=$(awk '$1=="lines_sent"{print $2}' <<<"$out")
    send_rate=$(awk '$1=="send_rate"{print $2}' <<<"$out")
    d=$(drain); got=$(( ${d% *} - before )); lag=${d#* }
    python3 - "$rate" "$sent" "$send_rate" "$got" "$lag" "$PROBE_S" >>"$PROBES" <<'EOF'
import json, sys
rate, sent, srate, got, lag, dur = map(float, sys.argv[1:])
loss = max(0.0, 1 - got / sent) if sent else 1.0
ok = loss < 0.001 and lag <= 0.25 + 0.1 * dur
print(json.dumps({"offered": rate, "sent": int(sent), "send_rate": srate, "applied": int(got),
                  "loss": loss, "drain_lag_s": lag, "sustained": ok}))
EOF
    tail -1 "$PROBES" | python3 -c "import json,sys; p=json.load(sys.stdin); print('ok' if p['sustained'] else 'bad', p['send_rate']); print(f\"ingest: offered {p['offered']:>12,.0f}/s sent {p['send_rate']:>12,.0f}/s loss {p['loss']*100:7.3f}% lag {p['drain_lag_s']:.2f}s\", file=sys.stderr)"
}

lo=0; hi=0; rate=$START_RATE; best_send=0
while python3 -c "import sys; sys.exit(0 if $rate <= $MAX_RATE else 1)"; do
    read -r verdict srate < <(probe "$rate")
    if [ "$verdict" = ok ]; then
        lo=$rate; best_send=$srate
        # the generator cannot offer more: stop growing
        python3 -c "import sys; sys.exit(0 if $srate < 0.9 * $rate else 1)" && { echo "ingest: load generator limited" >&2; break; }
        rate=$(( rate * 2 ))
    else
        hi=$rate; break
    fi
done
if [ "$hi" -gt 0 ]; then
    for _ in 1 2 3 4 5; do
        python3 -c "import sys; sys.exit(0 if $hi - $lo > 0.06 * $hi else 1)" || break
        if [ "$lo" -gt 0 ]; then mid=$(( (lo + hi) / 2 )); else mid=$(( hi / 4 )); fi
        read -r verdict srate < <(probe "$mid")
        if [ "$verdict" = ok ]; then lo=$mid; best_send=$srate; else hi=$mid; fi
    done
fi

if [ "$SINK" = 1 ]; then
    NAME=sink
    echo "sink_lossless_rate $best_send lines/s"
    echo "sink_first_lossy_offered $hi lines/s"
    qout=""
    stats=null
else
    NAME=ingest
    # nexusd's own histogram of /v1/summary answer times (/metrics), so the
    # server's share of the query latency shows next to the client's
    summary_hist() {
        curl -sf "http://127.0.0.1:$HTTP/metrics" |
            grep '^nexusd_http_request_duration_seconds_bucket{route="summary"' || true
    }
    server_quantiles() { # PREFIX BEFORE AFTER: p50/p99 of the requests in between
        python3 - "$@" <<'PY'
import re, sys
prefix, before, after = sys.argv[1:]
def parse(text):
    return [(m.group(1), int(m.group(2))) for m in
            re.finditer(r'le="([^"]+)"\} (\d+)', text)]
b, a = dict(parse(before)), parse(after)
diff = [(le, n - b.get(le, 0)) for le, n in a]  # cumulative counts
total = diff[-1][1] if diff else 0
print("%s_count %d queries" % (prefix, total))
for q in (0.5, 0.99):
    le = next((le for le, n in diff if total and n >= q * total), "nan")
    us = float(le) * 1e6 if le not in ("+Inf", "nan") else float("inf") if le == "+Inf" else float("nan")
    print("%s_p%g_le %.0f us" % (prefix, q * 100, us))
PY
    }
    # Query latency under load: at the lossless rate, GET one busy stream.
    QURL="http://127.0.0.1:$HTTP/v1/summary?metric=bench.timer.m4&tenant=t0000&window=all&q=0.5,0.99"
    qrate=$lo; [ "$qrate" -gt 0 ] || qrate=$START_RATE
    m0=$(summary_hist)
    qout=$("$LOADGEN" --port "$UDP" --rate "$qrate" --duration "$QUERY_S" --threads "$THREADS" \
           --dgram-bytes "$DGRAM_BYTES" --query "$QURL" --query-rate 200 --query-delay 0.5 \
           --query-fifo "$QUERY_FIFO")
    qout+=$'\n'$(server_quantiles query_server "$m0" "$(summary_hist)")
    # ... the same with the query client at normal priority
    m0=$(summary_hist)
    nout=$("$LOADGEN" --port "$UDP" --rate "$qrate" --duration "$QUERY_S" --threads "$THREADS" \
           --dgram-bytes "$DGRAM_BYTES" --query "$QURL" --query-rate 200 --query-delay 0.5)
    nout+=$'\n'$(server_quantiles query_server "$m0" "$(summary_hist)")
    # ... and at a moderate load (QUERY_MODERATE lines/s, at most the
    # lossless rate): the lossless rate leaves no idle CPU on a 2-core box,
    # so its p99 is mostly the query's threads waiting for a core
    mrate=$QUERY_MODERATE; [ "$lo" -gt 0 ] && [ "$mrate" -gt "$lo" ] && mrate=$lo
    m0=$(summary_hist)
    mout=$("$LOADGEN" --port "$UDP" --rate "$mrate" --duration "$QUERY_S" --threads "$THREADS" \
           --dgram-bytes "$DGRAM_BYTES" --query "$QURL" --query-rate 200 --query-delay 0.5 \
           --query-fifo "$QUERY_FIFO")
    mout+=$'\n'$(server_quantiles query_server "$m0" "$(summary_hist)")
    # ... and the lossless rate held for SUSTAIN_S seconds (on this nexusd,
    # after the probes); when it does not hold, 3/4 of the rate tried last,
    # and so on (SUSTAIN_STEPS at most), each on a fresh nexusd, for the
    # highest rate that holds SUSTAIN_S seconds from a start
    sustain=null; held=null; scan="$TMP/scan.jsonl"; : >"$scan"
    if [ "$SUSTAIN_S" -gt 0 ] && [ "$lo" -gt 0 ]; then
        probe_s_saved=$PROBE_S; PROBE_S=$SUSTAIN_S
        srate=$lo
        for step in $(seq 0 "$SUSTAIN_STEPS"); do
            if [ "$step" -gt 0 ]; then
                # the first run's nexusd answers the stats below
                [ "$step" = 1 ] && stats=$(curl -sf "http://127.0.0.1:$HTTP/v1/stats")
                restart_nexusd
            fi
            read -r verdict _ < <(probe "$srate")
            line=$(tail -1 "$PROBES")
            sed -i '$d' "$PROBES" # not one of the bisection's probes
            echo "$line" >>"$scan"
            [ "$step" = 0 ] && sustain=$line
            if [ "$verdict" = ok ]; then held=$line; break; fi
            srate=$(( srate * 3 / 4 ))
        done
        PROBE_S=$probe_s_saved
    fi
    [ -n "${stats:-}" ] || stats=$(curl -sf "http://127.0.0.1:$HTTP/v1/stats")
    rss=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['rss_bytes'])" "$stats")

    echo "ingest_lossless_rate $best_send lines/s"
    echo "ingest_first_lossy_offered $hi lines/s"
    awk '$1 ~ /^query_/ {print}' <<<"$qout"
    echo "query_load_rate $(awk '$1=="send_rate"{print $2}' <<<"$qout") lines/s"
    awk '$1 ~ /^query_p|^query_max|^query_server/ {sub(/^query_/, "query_normal_client_", $1); print}' <<<"$nout"
    echo "query_normal_client_load_rate $(awk '$1=="send_rate"{print $2}' <<<"$nout") lines/s"
    awk '$1 ~ /^query_p|^query_max|^query_server/ {sub(/^query_/, "query_moderate_", $1); print}' <<<"$mout"
    echo "query_moderate_load_rate $(awk '$1=="send_rate"{print $2}' <<<"$mout") lines/s"
    if [ "$sustain" != null ]; then
        python3 -c "import json,sys; p=json.loads(sys.argv[1]); print('ingest_sustained_offered %d lines/s' % p['offered']); print('ingest_sustained_send_rate %d lines/s' % p['send_rate']); print('ingest_sustained_loss %.3f %%' % (100 * p['loss'])); print('ingest_sustained_seconds %s s' % sys.argv[2])" "$sustain" "$SUSTAIN_S"
        python3 -c "import json,sys; p=json.loads(sys.argv[1]); print('ingest_sustained_lossless_rate %d lines/s' % (p['send_rate'] if p else 0))" "$held"
        python3 -c "
import json, sys
for l in open(sys.argv[1]):
    p = json.loads(l)
    print('# sustained %.0f lines/s offered: sent %.0f/s, loss %.3f %%, drain lag %.2f s, %s' % (p['offered'], p['send_rate'], 100 * p['loss'], p['drain_lag_s'], 'held' if p['sustained'] else 'not held'))" "$scan"
    fi
    echo "nexusd_rss $rss bytes"
fi

mkdir -p bench/results
OUT=bench/results/$NAME-$(date -u +%Y-%m-%dT%H%M%SZ).json
python3 - "$OUT" "$NAME" "$PROBES" "$best_send" "$hi" "$qout" "$stats" "$SHARDS" "$THREADS" "$DGRAM_BYTES" "${mout:-}" "${sustain:-null}" "$SUSTAIN_S" "${held:-null}" "${scan:-}" "${nout:-}" <<'EOF'
import json, os, sys
out, name, probes, best, hi, qout, stats, shards, threads, dgram, mout, sustain, sustain_s, held, scan, nout = sys.argv[1:]
res = {"benchmark": "udp_sink" if name == "sink" else "ingest",
       "machine": {"nproc": os.cpu_count(), "kernel": os.uname().release},
       "workload": {"tenants": 10000, "metrics": 10, "dgram_bytes": int(dgram),
                    "loadgen_threads": int(threads),
                    ("sink_threads" if name == "sink" else "nexusd_shards"): int(shards) or None},
       name + "_lossless_rate": float(best), "first_lossy_offered": float(hi),
       "probes": [json.loads(l) for l in open(probes)]}
if name == "ingest":
    def figures(text):
        q = {}
        for line in text.splitlines():
            p = line.split()
            if len(p) >= 2 and not line.startswith("#"):
                try:
                    q[p[0]] = float(p[1])
                except ValueError:
                    pass
        return q
    res["query_under_load"] = figures(qout)
    res["query_under_load_normal_client"] = figures(nout)
    res["query_moderate_load"] = figures(mout)
    res["nexusd_stats_end"] = json.loads(stats)
    sus = json.loads(sustain)
    if sus is not None:
        sus["seconds"] = float(sustain_s)
    res["sustained"] = sus
    hold = json.loads(held)
    if hold is not None:
        hold["seconds"] = float(sustain_s)
    res["sustained_lossless"] = hold  # the highest rate held (null: none tried held)
    res["sustain_scan"] = [json.loads(l) for l in open(scan)] if scan and os.path.exists(scan) else []
with open(out, "w") as f:
    json.dump(res, f, indent=1)
print(f"# raw figures: {out}")
EOF
