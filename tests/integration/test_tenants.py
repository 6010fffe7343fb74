"""Tenants end to end (issue 6): the registry, tokens, the auth policy and
quotas wired into a real nexusd (admin token in a file, temp data dir).

Covers: every tenant endpoint refuses another tenant's data (summary,
streams, series, subscribe, ingest, stats, metrics); 401/403 with JSON
errors; the tokenless default tenant (off once tenants exist, on with
--allow-default); tenant delete frees its memory; cardinality, memory,
events/s and HTTP request quotas; registry persistence across a restart;
the admin token is never taken from argv; the nexus CLI."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

from nxtest import Nexusd, binary, wait_for

ADMIN = "adm_" + "7" * 40


def admin_file(dirpath):
    p = os.path.join(dirpath, "admin.tok")
    with open(p, "w") as f:
        f.write(ADMIN + "\n")
    os.chmod(p, 0o600)
    return p


class Client:
    """HTTP calls against a Nexusd with an explicit token (or none)."""

    def __init__(self, d, token=None):
        self.d, self.token = d, token

    def req(self, method, path, body=None, raw=False, headers=None, **params):
        h = dict(headers or {})
        if self.token is not None:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
            h.setdefault("Content-Type", "text/plain")
        return self.d.request(method, path, body=body, headers=h, raw=raw, **params)

    def get(self, path, **params):
        return self.req("GET", path, **params)

    def ingest(self, lines):
        if isinstance(lines, (list, tuple)):
            lines = "\n".join(lines) + "\n"
        return self.req("POST", "/v1/ingest", body=lines)


def create(adm, tid, **quotas):
    body = {"id": tid}
    if quotas:
        body["quotas"] = quotas
    st, b = adm.req("POST", "/v1/tenants", body=body)
    assert st == 201, (st, b)
    return b


def sse_first(d, token, **params):
    """Opens /v1/subscribe, returns (status, first `data:` JSON or error JSON)."""
    req = urllib.request.Request(d.url("/v1/subscribe", **params),
                                 headers={"Authorization": "Bearer " + token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            for line in r:
                if line.startswith(b"data: "):
                    return r.status, json.loads(line[6:])
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    return None, None


class TenantIsolation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="nxtenant-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.d = Nexusd(shards=2, args=["--admin-token-file", admin_file(cls.tmp)]).start()
        cls.addClassCleanup(cls.d.stop)
        cls.adm = Client(cls.d, ADMIN)
        cls.ta = create(cls.adm, "alpha")["token"]
        cls.tb = create(cls.adm, "beta")["token"]
        cls.a, cls.b = Client(cls.d, cls.ta), Client(cls.d, cls.tb)
        st, r = cls.a.ingest(["a.secret:5|c|#k:v", "a.lat:10|ms", "a.lat:20|ms"])
        assert st == 200 and r["accepted"] == 3, r
        st, r = cls.b.ingest(["b.secret:7|c|#k:v", "b.lat:30|ms"])
        assert st == 200 and r["accepted"] == 2, r

    def test_missing_wrong_malformed_token(self):
        for c, want in ((Client(self.d), (401, "missing_token")),
                        (Client(self.d, "nxt_" + "0" * 64), (403, "bad_token"))):
            for path, params in (("/v1/summary", {"metric": "a.secret"}), ("/v1/streams", {}),
                                 ("/v1/series", {"metric": "a.lat"}), ("/v1/stats", {}),
                                 ("/metrics", {})):
                st, b = c.get(path, **params)
                self.assertEqual((st, b["code"]), want, path)
                self.assertIn("error", b)
            st, b = c.ingest("x:1|c")
            self.assertEqual((st, b["code"]), want)
            st, b = sse_first(self.d, c.token, metric="a.secret")
            self.assertEqual((st, b["code"]), want)
        st, b = self.d.request("GET", "/v1/streams", headers={"Authorization": "Basic Zm9vOmJhcg=="})
        self.assertEqual((st, b["code"]), (401, "bad_auth_header"))

    def test_summary_and_series_isolated(self):
        s = self.a.get("/v1/summary", metric="a.secret", tags="k:v", window="all")[1]
        self.assertEqual((s["tenant"], s["count"]), ("alpha", 1))
        # alpha cannot read beta's stream by name, nor name beta as the tenant
        st, b = self.a.get("/v1/summary", metric="b.secret", tags="k:v", window="all")
        self.assertEqual(st, 404)
        st, b = self.a.get("/v1/summary", metric="b.secret", tags="k:v", window="all", tenant="beta")
        self.assertEqual((st, b["code"]), (403, "wrong_tenant"))
        st, b = self.a.req("GET", "/v1/summary", metric="b.secret", tags="k:v",
                           headers={"X-Nexus-Tenant": "beta"})
        self.assertEqual((st, b["code"]), (403, "wrong_tenant"))
        self.assertEqual(self.a.get("/v1/series", metric="b.lat")[0], 404)
        self.assertEqual(self.a.get("/v1/series", metric="b.lat", tenant="beta")[0], 403)
        st, b = self.a.get("/v1/series", metric="a.lat")
        self.assertEqual((st, b["tenant"]), (200, "alpha"))

    def test_streams_isolated(self):
        st, b = self.a.get("/v1/streams")
        self.assertEqual(st, 200)
        self.assertEqual(b["tenant"], "alpha")
        keys = {s["key"] for s in b["streams"]}
        self.assertIn("a.secret|k:v", keys)
        self.assertFalse([k for k in keys if k.startswith("b.")], keys)
        self.assertEqual(self.a.get("/v1/streams", tenant="beta")[0], 403)

    def test_subscribe_isolated(self):
        st, b = sse_first(self.d, self.ta, metric="a.secret", tags="k:v", window="all")
        self.assertEqual((st, b["tenant"], b["count"]), (200, "alpha", 1))
        st, b = sse_first(self.d, self.ta, metric="b.secret", tags="k:v", tenant="beta")
        self.assertEqual((st, b["code"]), (403, "wrong_tenant"))

    def test_ingest_cannot_write_other_tenant(self):
        st, r = self.a.ingest(["b.secret:100|c|#k:v,tenant:beta", "a.own:1|c|#tenant:alpha"])
        self.assertEqual(st, 200)
        self.assertEqual((r["accepted"], r["rejected"], r["errors"]), (1, 1, {"wrong_tenant": 1}))
        s = self.b.get("/v1/summary", metric="b.secret", tags="k:v", window="all")[1]
        self.assertEqual(s["count"], 1)  # still only beta's own event
        self.assertEqual(self.a.get("/v1/summary", metric="a.own", window="all")[1]["count"], 1)
        # ?tenant= on ingest does not redirect either
        st, r = self.a.req("POST", "/v1/ingest", body="b.secret:1|c|#k:v\n", tenant="beta")
        self.assertEqual((st, r["code"]), (403, "wrong_tenant"))

    def test_stats_and_metrics_scoped(self):
        st, s = self.a.get("/v1/stats")
        self.assertEqual(st, 200)
        self.assertEqual(s["tenant"], "alpha")
        self.assertNotIn("per_shard", s)
        self.assertNotIn("totals", s)
        self.assertGreaterEqual(s["events"], 3)
        st, text = self.a.get("/metrics", raw=True)
        text = text.decode()
        self.assertEqual(st, 200)
        self.assertIn('a_secret_total{tenant="alpha",k="v"}', text)
        self.assertNotIn("beta", text)
        self.assertNotIn("b_secret", text)
        self.assertNotIn("nexusd_events_total", text)  # process-wide counters: admin only
        # the admin sees everything, and any tenant with ?tenant=
        st, text = self.adm.get("/metrics", raw=True)
        self.assertIn('tenant="beta"', text.decode())
        st, s = self.adm.get("/v1/stats", tenants="1")
        self.assertIn("totals", s)
        self.assertEqual({t["tenant"] for t in s["tenants"]} >= {"alpha", "beta"}, True)
        st, s = self.adm.get("/v1/stats", tenant="beta")
        self.assertEqual((st, s["tenant"]), (200, "beta"))

    def test_admin_endpoints_need_admin(self):
        for c, want in ((Client(self.d), (401, "missing_token")), (self.a, (403, "bad_token"))):
            for method, path, body in (("GET", "/v1/tenants", None),
                                       ("POST", "/v1/tenants", {"id": "evil"}),
                                       ("GET", "/v1/tenants/beta", None),
                                       ("DELETE", "/v1/tenants/beta", None),
                                       ("POST", "/v1/tenants/beta/rotate", None),
                                       ("PUT", "/v1/tenants/beta/quotas", {"max_streams": 1})):
                st, b = c.req(method, path, body=body)
                self.assertEqual((st, b["code"]), want, (method, path))
        st, lst = self.adm.get("/v1/tenants")
        self.assertNotIn("token", json.dumps(lst))
        self.assertEqual(self.adm.get("/v1/tenants/beta")[1]["id"], "beta")
        # the admin token is not a tenant credential by itself
        st, b = self.adm.get("/v1/streams")
        self.assertEqual((st, b["code"]), (403, "admin_token"))
        self.assertEqual(self.adm.get("/v1/streams", tenant="beta")[1]["tenant"], "beta")

    def test_admin_errors(self):
        self.assertEqual(self.adm.req("POST", "/v1/tenants", body={"id": "alpha"})[0], 409)
        self.assertEqual(self.adm.req("POST", "/v1/tenants", body={"id": "default"})[0], 409)
        self.assertEqual(self.adm.req("POST", "/v1/tenants", body={"id": "Bad!"})[0], 400)
        self.assertEqual(self.adm.req("POST", "/v1/tenants", body={"id": "x", "quotas": {"nope": 1}})[0], 400)
        self.assertEqual(self.adm.req("POST", "/v1/tenants", body="not json")[0], 400)
        self.assertEqual(self.adm.get("/v1/tenants/nosuch")[0], 404)
        self.assertEqual(self.adm.req("DELETE", "/v1/tenants/nosuch")[0], 404)
        self.assertEqual(self.adm.req("POST", "/v1/tenants/nosuch/rotate")[0], 404)

    def test_default_tenant_off_once_tenants_exist(self):
        st, b = Client(self.d).get("/v1/streams")
        self.assertEqual((st, b["code"]), (401, "missing_token"))
        before = self.adm.get("/v1/stats")[1]["totals"]["rejected_by_reason"].get("unknown_tenant", 0)
        self.d.send_udp(["d.x:1|c", "d.y:1|c|#tenant:nosuch", "d.z:2|c|#tenant:alpha"])
        wait_for(lambda: self.adm.get("/v1/stats")[1]["totals"]["rejected_by_reason"]
                 .get("unknown_tenant", 0) >= before + 2, what="unknown_tenant")
        wait_for(lambda: self.a.get("/v1/summary", metric="d.z", window="all")[0] == 200)
        self.assertEqual(self.a.get("/v1/summary", metric="d.z", window="all")[1]["sum"], 2)
        st, tl = self.adm.get("/v1/tenants")
        self.assertFalse(tl["default_enabled"])

    def test_rotate_token(self):
        t = create(self.adm, "rot")["token"]
        self.assertEqual(Client(self.d, t).get("/v1/streams")[0], 200)
        st, r = self.adm.req("POST", "/v1/tenants/rot/rotate")
        self.assertEqual(st, 200)
        self.assertNotEqual(r["token"], t)
        self.assertEqual(Client(self.d, t).get("/v1/streams")[0], 403)
        self.assertEqual(Client(self.d, r["token"]).get("/v1/streams")[0], 200)

    def test_delete_frees_memory(self):
        def tenant_bytes():
            return self.adm.get("/v1/stats")[1]["totals"]["summary_bytes"]
        base = tenant_bytes()
        t = create(self.adm, "gone")["token"]
        c = Client(self.d, t)
        st, r = c.ingest(["g.m%d:%d|ms|#i:%d" % (i % 50, i, i) for i in range(400)])
        self.assertEqual(r["accepted"], 400)
        grown = tenant_bytes()
        self.assertGreater(grown, base + 10000)
        self.assertGreater(self.adm.get("/v1/stats", tenant="gone")[1]["summary_bytes"], 10000)
        st, r = self.adm.req("DELETE", "/v1/tenants/gone")
        self.assertEqual((st, r["deleted"]), (200, "gone"))
        self.assertEqual(tenant_bytes(), base)  # accounting back to the baseline
        self.assertEqual(c.get("/v1/streams")[0], 403)
        self.assertEqual(self.adm.get("/v1/tenants/gone")[0], 404)
        # its StatsD traffic is now unknown, and creates no state
        self.d.send_udp("g.m1:1|ms|#tenant:gone")
        time.sleep(0.2)
        self.assertEqual(tenant_bytes(), base)

    def test_cardinality_quota(self):
        c = Client(self.d, create(self.adm, "card", max_streams=5)["token"])
        st, r = c.ingest(["c.s%d:1|c" % i for i in range(5)])
        self.assertEqual(r["accepted"], 5)
        st, r = c.ingest(["c.s%d:1|c" % i for i in range(8)])
        self.assertEqual((r["accepted"], r["errors"]), (5, {"quota": 3}))
        self.assertEqual(c.get("/v1/summary", metric="c.s0", window="all")[1]["count"], 2)
        self.assertEqual(c.get("/v1/summary", metric="c.s7", window="all")[0], 404)
        s = c.get("/v1/stats")[1]
        self.assertEqual((s["streams"], s["rejected_quota"]), (5, 3))
        # raising the quota lets new streams in; others were never affected
        self.assertEqual(self.adm.req("PUT", "/v1/tenants/card/quotas", body={"max_streams": 6})[0], 200)
        st, r = c.ingest(["c.s%d:1|c" % i for i in range(8)])
        self.assertEqual((r["accepted"], r["errors"]), (6, {"quota": 2}))
        self.assertEqual(self.a.ingest(["a.q%d:1|c" % i for i in range(20)])[1]["accepted"], 20)

    def test_memory_quota(self):
        c = Client(self.d, create(self.adm, "mem", max_bytes=30000)["token"])
        st, r = c.ingest(["m.t%d:%d|ms" % (i, i) for i in range(200)])
        self.assertGreater(r["accepted"], 0)
        self.assertGreater(r["errors"].get("quota", 0), 0)
        self.assertEqual(r["accepted"] + r["errors"]["quota"], 200)
        s = c.get("/v1/stats")[1]
        self.assertLessEqual(s["summary_bytes"], 30000 + 20000)
        self.assertEqual(s["rejected_quota"], r["errors"]["quota"])
        # an existing stream keeps working
        st, r2 = c.ingest("m.t0:5|ms\n")
        self.assertEqual(r2["accepted"], 1)

    def test_http_request_quota(self):
        c = Client(self.d, create(self.adm, "httpq", http_requests_per_s=3)["token"])
        codes = []
        for _ in range(10):
            st, b = c.req("GET", "/v1/streams", raw=True)
            codes.append(st)
        self.assertIn(429, codes)
        self.assertGreaterEqual(codes.count(200), 3)
        req = urllib.request.Request(self.d.url("/v1/streams"),
                                     headers={"Authorization": "Bearer " + c.token})
        try:
            urllib.request.urlopen(req, timeout=5)
            self.fail("expected 429")
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 429)
            self.assertGreaterEqual(int(e.headers["Retry-After"]), 1)
            self.assertEqual(json.loads(e.read())["code"], "rate_limited")
        # another tenant is unaffected
        self.assertEqual(self.a.get("/v1/streams")[0], 200)

    def test_cli(self):
        env = dict(os.environ, NEXUS_URL=self.d.base, NEXUS_ADMIN_TOKEN=ADMIN)
        env.pop("NEXUS_TOKEN", None)
        nexus = binary("nexus")
        run = lambda *a: subprocess.run([nexus, "tenant", *a], env=env, capture_output=True, text=True, timeout=30)
        p = run("create", "clit", "--events-per-s", "100", "--max-streams", "7")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("token nxt_", p.stdout)
        tok = p.stdout.split("token ")[1].strip()
        p = run("list")
        self.assertEqual(p.returncode, 0, p.stderr)
        line = [l for l in p.stdout.splitlines() if l.startswith("clit ")][0]
        self.assertEqual(line.split()[2:4], ["100", "7"])
        p = run("rotate-token", "clit")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(Client(self.d, tok).get("/v1/streams")[0], 403)
        self.assertEqual(run("delete", "clit").returncode, 0)
        p = run("delete", "clit")
        self.assertEqual(p.returncode, 1)
        self.assertIn("404", p.stderr)
        env["NEXUS_ADMIN_TOKEN"] = "wrong-token-wrong-token"
        self.assertIn("403", run("list").stderr)


class NoisyNeighbour(unittest.TestCase):
    """A tenant flooding at 10x its events/s quota: a quiet tenant's counts
    stay exact and its query latency stays close to the unloaded value."""

    def test_noisy_at_10x_quota(self):
        tmp = tempfile.mkdtemp(prefix="nxtenant-")
        self.addCleanup(shutil.rmtree, tmp, True)
        d = Nexusd(shards=2, args=["--admin-token-file", admin_file(tmp)]).start()
        self.addCleanup(d.stop)
        adm = Client(d, ADMIN)
        quota = 2000
        noisy = Client(d, create(adm, "noisy", events_per_s=quota, burst=quota)["token"])
        quiet = Client(d, create(adm, "quiet", events_per_s=quota)["token"])
        quiet.ingest("q.lat:1|ms\n")

        def p99(n=100, warm=20):
            lat = []
            for i in range(n + warm):
                t0 = time.perf_counter()
                st, _ = quiet.get("/v1/summary", metric="q.lat", window="all")
                if i >= warm:
                    lat.append(time.perf_counter() - t0)
                assert st == 200
            lat.sort()
            return lat[int(0.99 * (len(lat) - 1))]

        unloaded = p99()
        stop = threading.Event()
        sent = [0]
        secs = 2.0

        def flood():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            line = b"n.x:1|c|#tenant:noisy"
            dgram = b"\n".join([line] * 20)
            rate = quota * 10  # events/s
            t0 = time.time()
            while not stop.is_set() and time.time() - t0 < secs:
                due = int((time.time() - t0) * rate)
                while sent[0] < due:
                    s.sendto(dgram, ("127.0.0.1", d.statsd_port))
                    sent[0] += 20
                time.sleep(0.002)
            s.close()

        th = threading.Thread(target=flood)
        th.start()
        # the quiet tenant: exactly 300 events over UDP during the flood
        qs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(30):
            qs.sendto(b"\n".join([b"q.c:1|c|#tenant:quiet"] * 10), ("127.0.0.1", d.statsd_port))
            time.sleep(0.02)
        qs.close()
        loaded = p99()
        th.join()
        stop.set()
        wait_for(lambda: quiet.get("/v1/summary", metric="q.c", window="all")[1].get("count") == 300,
                 timeout=10, what="quiet tenant's 300 events")
        n = adm.get("/v1/stats", tenant="noisy")[1]
        q = adm.get("/v1/stats", tenant="quiet")[1]
        print("\nnoisy: sent %d accepted %d rate_limited %d; quiet: events %d rate_limited %d; "
              "quiet p99 unloaded %.2f ms loaded %.2f ms (x%.2f)"
              % (sent[0], n["events"], n["rate_limited"], q["events"], q["rate_limited"],
                 unloaded * 1e3, loaded * 1e3, loaded / unloaded))
        self.assertEqual(q["rate_limited"], 0)
        self.assertEqual(q["events"], 301)  # 300 q.c + 1 q.lat: exact
        self.assertGreater(n["rate_limited"], sent[0] // 2)
        # per shard full quota: at most (secs+slack) * quota + burst per shard it reached
        self.assertLessEqual(n["events"], 2 * (quota * (secs + 1.5) + quota))
        self.assertEqual(n["events"] + n["rate_limited"], wait_for(
            lambda: (lambda s: s if s == sent[0] else None)(
                adm.get("/v1/stats", tenant="noisy")[1]["rate_accepted"]
                + adm.get("/v1/stats", tenant="noisy")[1]["rate_limited"]), timeout=10,
            what="every noisy datagram counted"))
        self.assertTrue(loaded < 3 * unloaded or loaded < unloaded + 0.005,
                        "quiet p99 %.2f ms vs unloaded %.2f ms" % (loaded * 1e3, unloaded * 1e3))


class Lifecycle(unittest.TestCase):
    def test_registry_persists_across_restart(self):
        tmp = tempfile.mkdtemp(prefix="nxtenant-")
        self.addCleanup(shutil.rmtree, tmp, True)
        data = os.path.join(tmp, "data")
        args = ["--admin-token-file", admin_file(tmp), "--data-dir", data]
        d = Nexusd(args=args).start()
        try:
            adm = Client(d, ADMIN)
            r = create(adm, "keep", max_streams=9)
            st, _ = Client(d, r["token"]).ingest("k.x:1|c\n")
            self.assertEqual(st, 200)
        finally:
            d.stop()
        with open(os.path.join(data, "tenants.json")) as f:
            text = f.read()
        self.assertIn('"keep"', text)
        self.assertNotIn(r["token"], text)  # only the hash is stored
        d = Nexusd(args=args).start()
        self.addCleanup(d.stop)
        c = Client(d, r["token"])
        self.assertEqual(c.get("/v1/streams")[1]["tenant"], "keep")
        t = Client(d, ADMIN).get("/v1/tenants/keep")[1]
        self.assertEqual((t["num"], t["quotas"]["max_streams"]), (r["num"], 9))
        self.assertEqual(Client(d).get("/v1/streams")[0], 401)  # default still off

    def test_tenant_lock_survives_wal_replay(self):
        """A line naming another tenant in a token's HTTP body is refused;
        after kill -9 the WAL replays that batch, and the refusal must hold
        (the batch's tenant lock is part of its WAL record)."""
        tmp = tempfile.mkdtemp(prefix="nxtenant-")
        self.addCleanup(shutil.rmtree, tmp, True)
        data = os.path.join(tmp, "data")
        args = ["--admin-token-file", admin_file(tmp), "--data-dir", data,
                "--snapshot-interval", "1h"]
        d = Nexusd(args=args).start()
        try:
            adm = Client(d, ADMIN)
            ta = create(adm, "ra")["token"]
            tb = create(adm, "rb")["token"]
            st, r = Client(d, ta).ingest("rp.own:1|c\nrp.cross:1|c|#tenant:rb\n")
            self.assertEqual((st, r["accepted"], r["errors"]), (200, 1, {"wrong_tenant": 1}))
        finally:
            d.proc.kill()  # SIGKILL: no shutdown snapshot, recovery replays the WAL
            d.proc.wait(10)
        d = Nexusd(args=args).start()
        self.addCleanup(d.stop)
        self.assertIn("replayed=1", d.read_log())
        self.assertEqual(Client(d, ta).get("/v1/summary", metric="rp.own", window="all")[1]["count"], 1)
        self.assertEqual(Client(d, tb).get("/v1/summary", metric="rp.cross", window="all")[0], 404)
        self.assertEqual(Client(d, ta).get("/v1/summary", metric="rp.cross", window="all")[0], 404)

    def test_allow_default(self):
        tmp = tempfile.mkdtemp(prefix="nxtenant-")
        self.addCleanup(shutil.rmtree, tmp, True)
        d = Nexusd(args=["--admin-token-file", admin_file(tmp), "--allow-default"]).start()
        self.addCleanup(d.stop)
        t = create(Client(d, ADMIN), "other")["token"]
        anon = Client(d)
        st, r = anon.ingest("ad.x:1|c\n")
        self.assertEqual((st, r["accepted"]), (200, 1))
        self.assertEqual(anon.get("/v1/streams")[1]["tenant"], "default")
        # tokenless is `default` only: no other tenant by name, and no cross writes
        self.assertEqual(anon.get("/v1/streams", tenant="other")[0], 403)
        st, r = anon.ingest("ad.y:1|c|#tenant:other\n")
        self.assertEqual(r["errors"], {"wrong_tenant": 1})
        self.assertEqual(Client(d, t).get("/v1/summary", metric="ad.y")[0], 404)

    def test_admin_token_not_from_argv(self):
        for flag in ("--admin-token", "--admin-token=" + ADMIN):
            args = [binary("nexusd"), flag] + ([ADMIN] if "=" not in flag else [])
            p = subprocess.run(args, capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("unknown option", p.stderr)

    def test_corrupt_registry_refuses_to_start(self):
        tmp = tempfile.mkdtemp(prefix="nxtenant-")
        self.addCleanup(shutil.rmtree, tmp, True)
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        with open(os.path.join(data, "tenants.json"), "w") as f:
            f.write('{"format": "nexus-tenants", "version": 1, "next_num": 1, "tenants": [{"id": 5}]}')
        d = Nexusd(args=["--data-dir", data, "--admin-token-file", admin_file(tmp)], startup_timeout=5)
        with self.assertRaises(RuntimeError) as cm:
            d.start()
        self.assertIn("tenants.json", str(cm.exception))

    def test_engine_stream_limit_still_applies(self):
        # --max-streams-per-tenant is the fallback when a tenant has no quota
        d = Nexusd(args=["--max-streams-per-tenant", "2"]).start()
        self.addCleanup(d.stop)
        r = d.ingest(["e.a:1|c", "e.b:1|c", "e.c:1|c"])
        self.assertEqual((r["accepted"], r["errors"]), (2, {"quota": 1}))

    def test_generated_admin_token(self):
        d = Nexusd().start()
        self.addCleanup(d.stop)
        path = os.path.join(d.tmp, "data", "admin.token")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            tok = f.read().strip()
        self.assertIn(path, d.read_log())
        self.assertEqual(Client(d, tok).get("/v1/tenants")[1]["count"], 0)
        # embedded default mode: tokenless loopback, any tenant by name (as before)
        self.assertEqual(Client(d).get("/v1/streams", tenant="anyone")[1]["tenant"], "anyone")


if __name__ == "__main__":
    unittest.main()
