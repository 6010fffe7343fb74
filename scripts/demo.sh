#!/usr/bin/env bash
# scripts/demo.sh — start nexusd on its embedded defaults, feed it a demo
# workload with a real StatsD client (UDP datagrams, as any StatsD library
# sends them) plus `nexus send` over HTTP, and print summaries with
# `nexus query` / `nexus streams` / `nexus top --once`.
#
#   bash scripts/demo.sh            build if needed, start (or reuse) nexusd, feed, summarize
#   bash scripts/demo.sh --stop     stop the nexusd this script started
#
# nexusd keeps running afterwards (PID in $DATA/nexusd.pid, log in
# $DATA/nexusd.log). Environment: NEXUS_URL (default http://127.0.0.1:8080),
# NEXUS_STATSD (default 127.0.0.1:8125), NEXUS_DATA (default ./nexus-data),
# VARIANT (default release) or NEXUS_BIN (a bin/ directory), DEMO_SECONDS
# (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT=${VARIANT:-release}
BIN=${NEXUS_BIN:-build/$VARIANT/bin}
DATA=${NEXUS_DATA:-./nexus-data}
export NEXUS_URL=${NEXUS_URL:-http://127.0.0.1:8080}
STATSD=${NEXUS_STATSD:-127.0.0.1:8125}
PIDFILE=$DATA/nexusd.pid
HTTP_ADDR=${NEXUS_URL#http://}

if [ "${1:-}" = "--stop" ]; then
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill -TERM "$(cat "$PIDFILE")"
    for _ in $(seq 100); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
    echo "demo: nexusd (pid $(cat "$PIDFILE")) stopped"
    rm -f "$PIDFILE"
  else
    echo "demo: no nexusd started by this script is running"
  fi
  exit 0
fi

if [ ! -x "$BIN/nexusd" ] || [ ! -x "$BIN/nexus" ]; then
  make -s -j2 VARIANT="$VARIANT" "$BIN/nexusd" "$BIN/nexus"
fi
mkdir -p "$DATA"

if "$BIN/nexus" health >/dev/null 2>&1; then
  echo "demo: reusing the nexusd already answering at $NEXUS_URL"
else
  "$BIN/nexusd" --data-dir "$DATA" --http "$HTTP_ADDR" --statsd-udp "$STATSD" --statsd-tcp "$STATSD" \
    >>"$DATA/nexusd.log" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 100); do "$BIN/nexus" health >/dev/null 2>&1 && break; sleep 0.1; done
  "$BIN/nexus" health >/dev/null || { echo "demo: nexusd did not start; log:"; tail -20 "$DATA/nexusd.log"; exit 1; }
  echo "demo: nexusd started (pid $(cat "$PIDFILE"), log $DATA/nexusd.log, HTTP $NEXUS_URL, StatsD udp+tcp $STATSD)"
fi

echo "demo: feeding ${DEMO_SECONDS:-5}s of StatsD traffic over UDP (checkout latency, requests, users, queue depth, two tenants)"
python3 - "$STATSD" "${DEMO_SECONDS:-5}" <<'PY'
import random, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
addr, seconds = (host, int(port)), float(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rnd = random.Random(7)
routes = ["/checkout", "/cart", "/search"]
sent, t0 = 0, time.time()
while time.time() - t0 < seconds:
    lines = []
    for _ in range(40):
        r = rnd.choice(routes)
        base = {"/checkout": 120, "/cart": 40, "/search": 15}[r]
        lines.append("api.latency:%.2f|ms|#route:%s" % (rnd.lognormvariate(0, 0.5) * base, r))
        lines.append("api.requests:1|c|#route:%s" % r)
        lines.append("users.active:user%d|s" % rnd.randint(1, 5000))
    lines.append("queue.depth:%d|g" % rnd.randint(0, 100))
    lines.append("jobs.done:1|c|@0.5|#tenant:acme")
    sock.sendto("\n".join(lines).encode(), addr)   # one datagram, many lines, like a StatsD client
    sent += len(lines)
    time.sleep(0.002)
print("demo: sent %d StatsD lines in %.1fs" % (sent, time.time() - t0))
PY
"$BIN/nexus" send 'deploys:1|c|#service:web' 'build.seconds:93.5|h' >/dev/null
sleep 0.3

echo; echo '$ nexus query api.latency --tags route:/checkout --window 1m --q 0.5,0.9,0.99'
"$BIN/nexus" query api.latency --tags route:/checkout --window 1m --q 0.5,0.9,0.99
echo; echo '$ nexus query users.active --window all'
"$BIN/nexus" query users.active --window all
echo; echo '$ nexus --tenant acme query jobs.done --window all'
"$BIN/nexus" --tenant acme query jobs.done --window all
echo; echo '$ nexus top --once --n 8'
"$BIN/nexus" top --once --n 8
echo; echo '$ nexus stats'
"$BIN/nexus" stats
echo
echo "demo: nexusd is still running. Try:"
echo "  curl -s '$NEXUS_URL/v1/summary?metric=api.latency&tags=route:/cart&window=1m&q=0.99'"
echo "  curl -s $NEXUS_URL/metrics | head -20"
echo "  $BIN/nexus top          # live view (Ctrl-C to quit)"
echo "  bash scripts/demo.sh --stop"
