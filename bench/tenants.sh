#!/usr/bin/env bash
# bench/tenants.sh — issue 6 load test: 10,000 tenants in one nexusd, one of
# them flooding StatsD at many times its events/s quota while every other
# tenant sends a small exact workload. Prints per-tenant accepted/dropped
# counts for the flooder and a sample of quiet tenants, and checks that
# every quiet tenant's count is exact.
#
#   bench/tenants.sh [BUILD_DIR]     (default build/release; env: TENANTS=10000
#                                     FLOOD_SECS=5 FLOOD_RATE=200000 QUOTA=1000 SHARDS=2)
#
# Tenants are created through the admin API's bulk path (POST /v1/tenants
# {"tenants": [...]}: one registry write for all of them).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build/release}
export NEXUSD=$BUILD/bin/nexusd
export TENANTS=${TENANTS:-10000} FLOOD_SECS=${FLOOD_SECS:-5} FLOOD_RATE=${FLOOD_RATE:-200000}
export QUOTA=${QUOTA:-1000} SHARDS=${SHARDS:-2}
[ -x "$NEXUSD" ] || { echo "build first: make" >&2; exit 2; }
exec python3 - <<'PY'
import json, os, socket, subprocess, sys, tempfile, threading, time, urllib.request, shutil

N, SECS, RATE = int(os.environ["TENANTS"]), float(os.environ["FLOOD_SECS"]), int(os.environ["FLOOD_RATE"])
QUOTA, SHARDS = int(os.environ["QUOTA"]), os.environ["SHARDS"]
tmp = tempfile.mkdtemp(prefix="nxbench-tenants-")
admin = "bench_admin_" + os.urandom(16).hex()
tokf = os.path.join(tmp, "admin.tok")
with open(tokf, "w") as f:
    f.write(admin)
os.chmod(tokf, 0o600)

def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

hp, sp = port(), port()
base = "http://127.0.0.1:%d" % hp
log = open(os.path.join(tmp, "nexusd.log"), "wb")
proc = subprocess.Popen([os.environ["NEXUSD"], "--http", "127.0.0.1:%d" % hp,
                         "--statsd-udp", "127.0.0.1:%d" % sp, "--statsd-tcp", "off",
                         "--nxb-udp", "off", "--nxb-tcp", "off", "--shards", SHARDS,
                         "--data-dir", os.path.join(tmp, "data"), "--admin-token-file", tokf,
                         "--max-body", str(64 << 20)], stdout=log, stderr=subprocess.STDOUT)

def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + admin,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())

try:
    for _ in range(200):
        try:
            call("GET", "/v1/health"); break
        except OSError:
            time.sleep(0.05)
    ids = ["t%05d" % i for i in range(N)]
    t0 = time.perf_counter()
    created = call("POST", "/v1/tenants", {"tenants": [{"id": i, "quotas": {"events_per_s": QUOTA}} for i in ids]})["created"]
    dt = time.perf_counter() - t0
    assert len(created) == N
    print("tenants_created %d" % N)
    print("bulk_create_time %.3f s" % dt)
    print("registry_file_bytes %d" % os.path.getsize(os.path.join(tmp, "data", "tenants.json")))
    flooder, quiet = ids[0], ids[1:]
    per_quiet = 20
    sent = [0]

    def flood():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dgram = b"\n".join([b"flood.x:1|c|#tenant:" + flooder.encode()] * 25)
        start = time.time()
        while time.time() - start < SECS:
            due = int((time.time() - start) * RATE)
            while sent[0] < due:
                s.sendto(dgram, ("127.0.0.1", sp)); sent[0] += 25
            time.sleep(0.001)

    th = threading.Thread(target=flood); th.start()
    qs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i, t in enumerate(quiet):  # one datagram of 20 events per quiet tenant, spread over the flood
        qs.sendto(b"\n".join([b"quiet.c:1|c|#tenant:" + t.encode()] * per_quiet), ("127.0.0.1", sp))
        if i % 200 == 0:
            time.sleep(SECS / (len(quiet) / 200 + 1))
    th.join()
    time.sleep(1.0)
    t0 = time.perf_counter()
    st = call("GET", "/v1/stats?tenants=1")
    print("stats_all_tenants_time %.3f s" % (time.perf_counter() - t0))
    by = {t["tenant"]: t for t in st["tenants"]}
    f = by[flooder]
    print("flooder %s sent %d accepted %d dropped %d (quota %d/s x %.0f s, per shard)"
          % (flooder, sent[0], f["rate_accepted"], f["rate_limited"], QUOTA, SECS))
    print("%-8s %8s %8s %8s" % ("tenant", "sent", "accepted", "dropped"))
    for t in quiet[:: max(1, len(quiet) // 10)][:10]:
        q = by.get(t, {"rate_accepted": 0, "rate_limited": 0})
        print("%-8s %8d %8d %8d" % (t, per_quiet, q["rate_accepted"], q["rate_limited"]))
    exact = sum(1 for t in quiet if by.get(t, {}).get("events") == per_quiet)
    dropped_quiet = sum(by.get(t, {}).get("rate_limited", 0) for t in quiet)
    print("quiet_tenants_exact %d / %d" % (exact, len(quiet)))
    print("quiet_tenants_dropped_total %d" % dropped_quiet)
    print("kernel_drops %d" % st["totals"]["kernel_drops"])
    print("rss_bytes %d" % st["rss_bytes"])
    ok = exact == len(quiet) and dropped_quiet == 0 and f["rate_limited"] > 0
    print("result %s" % ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)
finally:
    proc.terminate(); proc.wait(timeout=60); log.close()
    shutil.rmtree(tmp, ignore_errors=True)
PY
