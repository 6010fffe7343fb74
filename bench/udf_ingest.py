"""Ingest lines/s of one shard with and without a UDF bound to every stream
(HTTP bodies of 200k lines over 100 timer streams). Usage: NX_BUILD=build/release python3 bench/udf_ingest.py"""
import sys, time, os, json
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'integration'))
import nxtest, test_udf as T
def run(bound, mod="moments"):
    d = nxtest.Nexusd(shards=1).start()
    try:
        if bound:
            T.put(d, mod, T.wasm(mod), "default"); T.wait_ready(d, mod, "default")
            st, b = T.bind(d, mod, "default", prefix="m.")
            assert st == 201, b
        body = "".join("m.%d:%d|ms\n" % (i % 100, i % 997) for i in range(200000)).encode()
        d.post("/v1/ingest", body)  # warm (creates streams/instances)
        t = time.time(); n = 0
        for _ in range(10):
            st, r = d.post("/v1/ingest", body); assert st == 200; n += r["accepted"]
        dt = time.time() - t
        u = d.stats().get("udf", {})
        print("udf_bound=%s lines=%d %.2f Mlines/s udf_events=%s update_calls=%s" % (bound and mod, n, n/dt/1e6, u.get("events"), u.get("update_calls")))
    finally:
        d.stop()
run(False); run(True); run(True, "ewma"); run(False); run(True)
