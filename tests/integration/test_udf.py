"""Tenant UDFs (Wasm isolates) through the real nexusd: upload, bind,
results in /v1/summary, hostile modules contained, tenants isolated.

The .wasm files come from $NX_BUILD/udf (built by mk/udf.mk as part of
`make all`). One daemon (2 shards) serves every test of the main class, so
each module is compiled once; small HTTP ingests alternate between the two
shards, so every stream below has instances on both and /v1/summary shows
the MERGED result (nx_merge) or the per-shard list.
"""
import math
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import nxtest

UDF_DIR = os.path.join(nxtest.BUILD, "udf")


def wasm(name):
    path = os.path.join(UDF_DIR, name + ".wasm")
    if not os.path.exists(path):
        raise unittest.SkipTest("%s not built (make all)" % path)
    with open(path, "rb") as f:
        return f.read()


def put(d, name, data, tenant):
    return d.request("PUT", "/v1/udfs/" + name, body=data,
                     headers={"Content-Type": "application/wasm"}, tenant=tenant)


def bind(d, name, tenant, **spec):
    import json
    return d.request("POST", "/v1/udfs/%s/bind" % name, body=json.dumps(spec).encode(),
                     headers={"Content-Type": "application/json"}, tenant=tenant)


def wait_ready(d, name, tenant, timeout=60.0):
    def ready():
        st, body = d.get("/v1/udfs/" + name, tenant=tenant)
        assert st == 200, body
        assert body["status"] != "failed", body
        return body["status"] == "ready"
    nxtest.wait_for(ready, timeout=timeout, what="udf %s/%s ready" % (tenant, name))


def udf_result(d, metric, name, tenant):
    s = d.summary(metric, window="all", tenant=tenant)
    return s, s.get("udfs", {}).get(name)


class UdfTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = nxtest.Nexusd(shards=2).start()
        cls.addClassCleanup(cls.d.stop)
        d = cls.d
        now = int(time.time())
        cls.now = now
        # queue every compile at once: the worker runs them while we go on
        uploads = [("ewma", "good"), ("median", "good"), ("threshold", "good"),
                   ("hostile/oob", "h-oob"), ("hostile/loop", "h-loop"),
                   ("hostile/recurse", "h-rec"), ("hostile/grow", "h-grow")]
        for mod, tenant in uploads:
            st, body = put(d, os.path.basename(mod), wasm(mod), tenant)
            assert st in (200, 202), (mod, st, body)
            assert body["status"] in ("compiling", "ready"), body
        for mod, tenant in uploads:
            wait_ready(d, os.path.basename(mod), tenant)

    # ---- the three examples, exact against a computation here -----------------
    def test_examples_exact(self):
        d = self.d
        for name, params in (("ewma", {"halflife_ms": 5000}), ("median", {"window": 4096}),
                             ("threshold", {"threshold": 70, "min_count": 3})):
            st, body = bind(d, name, "good", metric="lat", window="all", params=params)
            self.assertEqual(st, 201, body)
            self.assertEqual(body["per"], "stream")
        rnd = nxtest.rng(7)
        events = []  # (value, ts_s)
        for _ in range(8):  # 8 requests: alternate between the two shards
            lines = []
            for _ in range(40):
                v = round(rnd.uniform(0, 100), 3)
                ts = self.now - 40 + rnd.randrange(0, 40)
                events.append((v, ts))
                lines.append("lat:%r|ms|#route:/a|T%d" % (v, ts))
            d.ingest(lines, tenant="good")
        s = d.summary("lat", tags="route:/a", window="all", tenant="good")
        self.assertEqual(s["count"], len(events))
        u = s["udfs"]
        # EWMA: decayed sums referenced at the newest timestamp
        lam = math.log(2) / 5000.0
        T = max(ts for _, ts in events) * 1000
        S = sum(v * math.exp(-lam * (T - ts * 1000)) for v, ts in events)
        W = sum(math.exp(-lam * (T - ts * 1000)) for v, ts in events)
        self.assertAlmostEqual(u["ewma"]["ewma"], S / W, delta=1e-9 * abs(S / W))
        self.assertEqual(u["ewma"]["count"], len(events))
        self.assertEqual(u["ewma"]["last_ts"], T)
        # median of everything (window 4096 > events): lower median
        vals = sorted(v for v, _ in events)
        self.assertEqual(u["median"]["n"], len(vals))
        self.assertEqual(u["median"]["median"], vals[(len(vals) - 1) // 2])
        self.assertEqual(u["median"]["min"], vals[0])
        self.assertEqual(u["median"]["max"], vals[-1])
        # threshold alert
        above = [(v, ts) for v, ts in events if v > 70]
        self.assertEqual(u["threshold"]["above"], len(above))
        self.assertEqual(u["threshold"]["total"], len(events))
        self.assertEqual(u["threshold"]["alert"], 1 if len(above) >= 3 else 0)
        self.assertEqual(u["threshold"]["last_above_ts"], max(ts for _, ts in above) * 1000)
        self.assertAlmostEqual(u["threshold"]["fraction"], len(above) / len(events), places=12)
        # both shards hold an instance of each binding (the merge was exercised)
        st, info = d.get("/v1/udfs/ewma", tenant="good")
        self.assertEqual(info["bindings"][0]["instances"], 2, info)
        self.assertEqual(info["bindings"][0]["events"], len(events))
        # a stream the binding does not match carries no "udfs"
        d.ingest(["other:1|c"], tenant="good")
        self.assertNotIn("udfs", d.summary("other", window="all", tenant="good"))
        # binding the same matcher again is idempotent; other windows are refused
        st, body = bind(d, "ewma", "good", metric="lat", params={"halflife_ms": 5000})
        self.assertEqual(st, 200, body)
        st, body = bind(d, "ewma", "good", metric="lat", window="1m")
        self.assertEqual(st, 400)
        self.assertEqual(body["code"], "bad_window")

    # ---- hostile modules --------------------------------------------------------
    def test_rejected_at_upload(self):
        d = self.d
        st, body = put(d, "imp", wasm("hostile/import"), "h-imp")
        self.assertEqual(st, 400)
        self.assertEqual(body["code"], "invalid_module")
        self.assertIn("import env.system is not allowed", body["error"])
        for junk in (b"\x00asm\x01\x00\x00\x00\xff\xff\xff", b"not wasm at all",
                     wasm("ewma")[:100]):
            st, body = put(d, "junk", junk, "h-imp")
            self.assertEqual(st, 400, body)
            self.assertEqual(body["code"], "invalid_module")
            self.assertTrue(body["error"])
        st, body = d.get("/v1/udfs", tenant="h-imp")
        self.assertEqual(body["udfs"], [])
        st, body = put(d, "bad/name", wasm("ewma"), "h-imp")
        self.assertEqual(st, 404, body)
        st, body = d.request("POST", "/v1/udfs/nosuch/bind", body=b'{"metric":"x"}', tenant="h-imp")
        self.assertEqual(st, 404)

    def test_hostile_contained(self):
        d = self.d
        # the neighbours: built-in summaries of another tenant and a healthy UDF
        st, body = bind(d, "threshold", "good", metric="ok.lat", params={"threshold": 5})
        self.assertIn(st, (200, 201), body)
        cases = [("oob", "h-oob", "out-of-bounds"),
                 ("loop", "h-loop", "CPU budget exceeded"),
                 ("recurse", "h-rec", "call stack exhausted")]
        for name, tenant, _ in cases:
            st, body = bind(d, name, tenant, metric="x")
            self.assertEqual(st, 201, body)
        st, body = bind(d, "grow", "h-grow", metric="x")
        self.assertEqual(st, 201, body)
        good_vals = []
        grow_why = None
        t0 = time.time()
        for i in range(6):
            vals = [i * 10 + k for k in range(10)]
            good_vals += vals
            d.ingest(["ok.lat:%d|ms" % v for v in vals], tenant="good")
            for _, tenant, _ in cases:
                d.ingest(["x:%d|g" % i], tenant=tenant)
            d.ingest(["x:%d|g" % i], tenant="h-grow")
            if i == 0:
                # grow: memory.grow stops at the 256-page (16 MiB) cap, no trap;
                # only where realloc copies (ASan) the CPU budget may stop the
                # grow loop first
                _, r = udf_result(d, "x", "grow", "h-grow")
                if "state" in r:
                    self.assertEqual(r, {"state": 256}, r)
                    grow_why = "out-of-bounds"
                else:
                    self.assertIn("CPU budget exceeded", r["error"])
                    grow_why = "CPU budget exceeded"
        elapsed = time.time() - t0
        for name, tenant, why in cases + [("grow", "h-grow", grow_why)]:
            st, info = d.get("/v1/udfs/" + name, tenant=tenant)
            b = info["bindings"][0]
            self.assertTrue(b["disabled"], info)
            self.assertEqual(b["status"], "disabled")
            self.assertIn(why, b["error"])
            self.assertGreaterEqual(b["traps"], 1)
            _, r = udf_result(d, "x", name, tenant)
            self.assertTrue(r["disabled"], r)
            self.assertIn(why, r["error"])
            # the built-in summary of the hostile tenant's own stream is intact
            s = d.summary("x", window="all", tenant=tenant)
            self.assertEqual(s["count"], 6)
            self.assertEqual(s["last"], 5)
        # the loop was stopped by the CPU budget: 6 rounds took far less than a second each
        self.assertLess(elapsed, 20.0)
        # neighbours exact
        s = d.summary("ok.lat", window="all", tenant="good")
        self.assertEqual(s["count"], len(good_vals))
        self.assertEqual(s["sum"], sum(good_vals))
        self.assertEqual(s["min"], min(good_vals))
        self.assertEqual(s["max"], max(good_vals))
        t = s["udfs"]["threshold"]
        self.assertEqual(t["total"], len(good_vals))
        self.assertEqual(t["above"], len([v for v in good_vals if v > 5]))
        self.assertNotIn("error", t)
        # counters
        u = d.stats()["udf"]
        self.assertGreaterEqual(u["traps"], 4)
        self.assertGreaterEqual(u["disabled"], 4)
        self.assertGreater(u["events"], 0)
        self.assertTrue(d.alive())
        self.assertEqual(d.get("/v1/health")[0], 200)

    # ---- tenants ---------------------------------------------------------------
    def test_tenants_share_nothing(self):
        d = self.d
        data = wasm("threshold")
        st, a = put(d, "alert", data, "ta")
        self.assertIn(st, (200, 202), a)
        wait_ready(d, "alert", "ta")
        st, b = put(d, "alert", data, "tb")  # same bytes: the loaded module is shared
        self.assertEqual(st, 200, b)
        self.assertEqual(b["status"], "ready")
        self.assertEqual(a["hash"], b["hash"])
        for tenant in ("ta", "tb"):
            st, body = bind(d, "alert", tenant, metric="m", params={"threshold": 10})
            self.assertEqual(st, 201, body)
        for i in range(4):
            d.ingest(["m:%d|ms" % (20 + i) for _ in range(5)], tenant="ta")  # all above
            d.ingest(["m:1|ms"] * 3, tenant="tb")                            # none above
        _, ra = udf_result(d, "m", "alert", "ta")
        _, rb = udf_result(d, "m", "alert", "tb")
        self.assertEqual((ra["total"], ra["above"], ra["alert"]), (20, 20, 1))
        self.assertEqual((rb["total"], rb["above"], rb["alert"]), (12, 0, 0))
        # tenant tb cannot see or delete ta's modules
        st, body = d.get("/v1/udfs", tenant="tc")
        self.assertEqual(body["udfs"], [])
        st, _ = d.request("DELETE", "/v1/udfs/alert", tenant="tc")
        self.assertEqual(st, 404)
        # delete: unbinds on every shard, the other tenant keeps going
        st, body = d.request("DELETE", "/v1/udfs/alert", tenant="ta")
        self.assertEqual((st, body["unbound"]), (200, 1))
        self.assertNotIn("udfs", d.summary("m", window="all", tenant="ta"))
        d.ingest(["m:50|ms"], tenant="tb")
        _, rb = udf_result(d, "m", "alert", "tb")
        self.assertEqual((rb["total"], rb["above"]), (13, 1))
        self.assertEqual(d.get("/v1/udfs/alert", tenant="ta")[0], 404)

    def test_cli(self):
        d = self.d
        env = dict(os.environ, NEXUS_URL=d.base)
        cli = nxtest.binary("nexus")
        path = os.path.join(UDF_DIR, "threshold.wasm")

        def run(*args):
            return subprocess.run([cli, "--tenant", "cli"] + list(args), env=env,
                                  capture_output=True, text=True, timeout=60)
        r = run("udf", "put", "thr", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"status"', r.stdout)
        wait_ready(d, "thr", "cli")
        r = run("udf", "bind", "thr", "--metric", "c.m", "--window", "all", "--params",
                "threshold=1")
        self.assertEqual(r.returncode, 0, r.stderr)
        d.ingest(["c.m:5|ms", "c.m:0|ms"], tenant="cli")
        _, res = udf_result(d, "c.m", "thr", "cli")
        self.assertEqual((res["total"], res["above"]), (2, 1))
        r = run("udf", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("thr", r.stdout)
        self.assertIn("ready", r.stdout)
        self.assertIn("metric=c.m[active]", r.stdout)
        r = run("udf", "bind", "thr", "--metric", "c.m", "--window", "1m")
        self.assertEqual(r.returncode, 1)
        r = run("udf", "delete", "thr")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run("udf", "delete", "thr")
        self.assertEqual(r.returncode, 1)


class UdfRestartTest(unittest.TestCase):
    def test_uploads_reload(self):
        tmp = tempfile.mkdtemp(prefix="nxudf-")
        self.addCleanup(shutil.rmtree, tmp, True)
        args = ["--data-dir", os.path.join(tmp, "data")]
        d = nxtest.Nexusd(shards=1, args=args).start()
        try:
            st, body = put(d, "ewma", wasm("ewma"), "r1")
            self.assertIn(st, (200, 202), body)
            wait_ready(d, "ewma", "r1")
        finally:
            d.stop()
        self.assertTrue(os.path.exists(os.path.join(tmp, "data", "udfs", "r1", "ewma.wasm")))
        d = nxtest.Nexusd(shards=1, args=args).start()
        try:
            wait_ready(d, "ewma", "r1", timeout=30)
            u = d.stats()["udf"]
            self.assertEqual(u["compiles"], 0)   # the cached .so was loaded
            self.assertEqual(u["cache_hits"], 1)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
