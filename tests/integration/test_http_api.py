"""The HTTP API of the real nexusd: POST /v1/ingest is applied before it
answers (read-your-writes), JSON ingest, summary/streams/series/stats,
errors as JSON with fitting statuses, and Server-Sent Events."""
import http.client
import json
import threading
import time
import unittest

import nxtest
from nxtest import Nexusd


class HttpApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Nexusd(shards=2, args=["--sse-heartbeat", "1"]).start()
        cls.addClassCleanup(cls.d.stop)  # runs even if setUpClass fails


    def test_health(self):
        st, b = self.d.get("/v1/health")
        self.assertEqual(st, 200)
        self.assertEqual(b["status"], "ok")
        self.assertEqual(b["shards"], 2)

    def test_read_your_writes(self):
        # every query right after an ingest sees it (no sleep, no retry)
        for i in range(1, 101):
            r = self.d.ingest("h1.ryw:1|c\nh1.lat:%d|ms" % i)
            self.assertEqual(r["accepted"], 2)
            self.assertEqual(self.d.summary("h1.ryw")["sum"], i)
            self.assertEqual(self.d.summary("h1.lat")["count"], i)

    def test_point_queries_ask_only_shards_that_saw_the_tenant(self):
        # one UDP datagram: its tenant lives on exactly one shard
        self.d.send_udp("f1.hits:5|c|#tenant:solo1")
        def visible():
            st, body = self.d.get("/v1/summary", metric="f1.hits", tenant="solo1")
            return st == 200 and body["sum"] == 5
        nxtest.wait_for(visible, 10, what="solo1 visible")
        def msgs():
            return [s["messages"] for s in self.d.stats()["per_shard"]]
        before = msgs()
        for _ in range(20):
            self.assertEqual(self.d.summary("f1.hits", tenant="solo1")["sum"], 5)
        after = msgs()
        grew = sorted(a - b for a, b in zip(after, before))
        # the owning shard answered the 20 queries (+1 for the stats read
        # between), the other one only the stats read
        self.assertGreaterEqual(grew[-1], 20)
        self.assertLessEqual(grew[0], 2)
        # a tenant no shard has ever seen: 404 without asking anyone
        before = msgs()
        for _ in range(10):
            self.d.summary("f1.hits", tenant="never-seen-tenant", expect=404)
        after = msgs()
        self.assertLessEqual(max(a - b for a, b in zip(after, before)), 2)

    def test_large_body_split_over_shards(self):
        n = 50000
        body = "".join("h2.big:%d|ms|#k:%d\n" % (i, i % 3) for i in range(n))
        r = self.d.ingest(body)
        self.assertEqual(r["accepted"], n)
        self.assertEqual(r["rejected"], 0)
        total = sum(self.d.summary("h2.big", tags="k:%d" % k)["count"] for k in range(3))
        self.assertEqual(total, n)

    def test_ingest_reports_rejections(self):
        r = self.d.ingest("h3.ok:1|c\nh3.bad:x|c\nnocolon\nh3.ok:1|c|@7\nh3.ok:2|c")
        self.assertEqual(r["accepted"], 2)
        self.assertEqual(r["rejected"], 3)
        self.assertEqual(r["errors"], {"bad_value": 1, "bad_format": 1, "bad_rate": 1})
        self.assertEqual(self.d.summary("h3.ok")["sum"], 3)

    def test_json_ingest(self):
        body = {"events": [
            {"metric": "h4.lat", "type": "timer", "value": 1.5, "tags": {"route": "/a"}},
            {"metric": "h4.lat", "type": "timer", "value": 2.5, "tags": {"route": "/a"}, "rate": 0.5},
            {"metric": "h4.g", "type": "gauge", "value": 10},
            {"metric": "h4.g", "type": "gauge", "value": 2, "delta": True},
            {"metric": "h4.u", "type": "set", "value": "alice"},
            {"metric": "h4.bad", "type": "nope", "value": 1},
            {"metric": "h4.bad", "type": "counter", "value": "x"},
            {"metric": "h4.bad", "type": "counter", "value": 1, "tags": {"a|b": "c"}},
        ]}
        st, r = self.d.post("/v1/ingest", json.dumps(body), "application/json")
        self.assertEqual(st, 200, r)
        self.assertEqual(r["accepted"], 5)
        self.assertEqual(r["errors"], {"bad_type": 1, "bad_value": 1, "bad_tags": 1})
        s = self.d.summary("h4.lat", tags="route:/a")
        self.assertEqual(s["count"], 3)     # 1 + 1/0.5
        self.assertEqual(s["sum"], 1.5 + 2 * 2.5)
        self.assertEqual(self.d.summary("h4.g")["last"], 12)
        self.assertAlmostEqual(self.d.summary("h4.u")["distinct"], 1, delta=0.02)
        st, r = self.d.post("/v1/ingest", "{not json", "application/json")
        self.assertEqual(st, 400)
        self.assertEqual(r["code"], "bad_json")

    def test_errors(self):
        st, b = self.d.get("/v1/summary", metric="h5.none")
        self.assertEqual((st, b["code"]), (404, "not_found"))
        self.assertIn("error", b)
        st, b = self.d.get("/v1/summary")
        self.assertEqual((st, b["code"]), (400, "bad_request"))
        self.d.ingest("h5.x:1|c")
        st, b = self.d.get("/v1/summary", metric="h5.x", window="7m")
        self.assertEqual((st, b["code"]), (400, "bad_window"))
        st, b = self.d.get("/v1/summary", metric="h5.x", q="2")
        self.assertEqual((st, b["code"]), (400, "bad_quantile"))
        st, b = self.d.get("/v1/summary", metric="h5.x", tenant="BAD!")
        self.assertEqual((st, b["code"]), (400, "bad_tenant"))
        st, b = self.d.get("/v1/nope")
        self.assertEqual(st, 404)
        st, b = self.d.request("DELETE", "/v1/summary")
        self.assertEqual(st, 405)
        st, b = self.d.get("/v1/ingest")
        self.assertEqual(st, 405)

    def test_body_limit(self):
        d = Nexusd(shards=1, args=["--max-body", "2048"]).start()
        try:
            st, b = d.post("/v1/ingest", "x:1|c\n" * 1000)
            self.assertEqual((st, b["code"]), (413, "too_big"))
            self.assertEqual(d.ingest("x:1|c")["accepted"], 1)
        finally:
            d.stop()

    def test_streams_prefix_and_top(self):
        self.d.ingest(["h6.a:1|c"] * 5 + ["h6.b:1|ms"] * 3 + ["h6.c:1|g", "other.z:1|c"])
        st, b = self.d.get("/v1/streams", prefix="h6.")
        self.assertEqual(st, 200)
        self.assertEqual([(s["key"], s["type"]) for s in b["streams"]],
                         [("h6.a", "counter"), ("h6.b", "timer"), ("h6.c", "gauge")])
        st, b = self.d.get("/v1/streams", prefix="h6.", top="2", window="10s")
        self.assertEqual([s["key"] for s in b["streams"]], ["h6.a", "h6.b"])
        self.assertEqual(b["streams"][0]["count"], 5)

    def test_series(self):
        now = time.time()
        self.d.ingest(["h7.s:%d|ms" % i for i in range(10)])
        st, b = self.d.get("/v1/series", metric="h7.s", **{"from": str(int(now) - 60), "to": str(int(now) + 5), "step": "1s"})
        self.assertEqual(st, 200, b)
        self.assertEqual(sum(p["count"] for p in b["points"]), 10)
        self.assertEqual(sum(p["sum"] for p in b["points"]), 45)
        st, b = self.d.get("/v1/series", metric="h7.none")
        self.assertEqual(st, 404)
        st, b = self.d.get("/v1/series", metric="h7.s", **{"from": "100", "to": "50"})
        self.assertEqual(st, 400)

    def test_stats(self):
        self.d.ingest("h8.x:1|c\nbroken")
        s = self.d.stats()
        self.assertEqual(s["shards"], 2)
        self.assertEqual(len(s["per_shard"]), 2)
        self.assertGreaterEqual(s["totals"]["events"], 1)
        self.assertGreaterEqual(s["totals"]["rejected_by_reason"]["bad_format"], 1)
        self.assertGreater(s["rss_bytes"], 0)
        self.assertGreater(s["totals"]["streams"], 0)

    def test_request_latency_histograms(self):
        # every answered request lands in its route's histogram, 404s too;
        # /v1/stats and /metrics report the same counts
        def summary_count():
            return self.d.stats()["http"].get("summary", {}).get("requests", 0)
        self.d.ingest("h10.lat:1|c")
        before = summary_count()
        for _ in range(20):
            self.assertEqual(self.d.summary("h10.lat")["count"], 1)
        for _ in range(5):
            self.d.summary("h10.none", expect=404)
        # the count is taken when the answer's last byte is written, which
        # may come just after the client has read it
        nxtest.wait_for(lambda: summary_count() >= before + 25, 10, what="25 summaries counted")
        time.sleep(0.2)
        h = self.d.stats()["http"]["summary"]
        self.assertEqual(h["requests"], before + 25)
        self.assertLessEqual(h["p50_us_le"], h["p99_us_le"])
        self.assertLessEqual(h["p99_us_le"], h["p999_us_le"])
        self.assertGreaterEqual(h["p50_us_le"], 50)
        st, text = self.d.request("GET", "/metrics", raw=True)
        self.assertEqual(st, 200)
        buckets, count = [], None
        for line in text.decode().splitlines():
            if line.startswith('nexusd_http_request_duration_seconds_bucket{route="summary",'):
                buckets.append(int(line.rsplit(" ", 1)[1]))
            elif line.startswith('nexusd_http_request_duration_seconds_count{route="summary"}'):
                count = int(line.rsplit(" ", 1)[1])
        self.assertEqual(count, before + 25)
        self.assertEqual(len(buckets), 23)
        self.assertEqual(buckets, sorted(buckets))  # cumulative
        self.assertEqual(buckets[-1], count)

    def test_sse_pushes_changes_coalesced(self):
        self.d.ingest("h9.live:1|c")
        conn = http.client.HTTPConnection("127.0.0.1", self.d.http_port, timeout=10)
        conn.request("GET", "/v1/subscribe?metric=h9.live&window=all&max_per_sec=4")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Content-Type"), "text/event-stream")
        events = []
        done = threading.Event()

        def reader():
            data = None
            try:
                while not done.is_set():
                    line = resp.readline().decode()
                    if not line:
                        return
                    if line.startswith("data: "):
                        data = json.loads(line[6:])
                    elif line == "\n" and data is not None:
                        events.append((time.time(), data))
                        data = None
            except Exception:
                return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        nxtest.wait_for(lambda: len(events) >= 1, 10, what="first SSE event")
        self.assertEqual(events[0][1]["sum"], 1)
        # 200 updates within ~1 s: pushes are coalesced to <= 4/s
        t0 = time.time()
        for _ in range(200):
            self.d.ingest("h9.live:1|c")
        nxtest.wait_for(lambda: events and events[-1][1]["sum"] == 201, 10, what="final SSE event")
        elapsed = time.time() - t0
        n_after = len(events) - 1
        self.assertLessEqual(n_after, 4 * (elapsed + 1) + 1, "not coalesced: %d events in %.1fs" % (n_after, elapsed))
        done.set()
        conn.close()
        # the subscriber slot is released after the disconnect
        nxtest.wait_for(lambda: self.d.stats()["subscribers"] == 0, 30, what="subscriber cleanup")


if __name__ == "__main__":
    unittest.main()
