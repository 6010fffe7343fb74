"""StatsD / DogStatsD ingest over real UDP, TCP and unix sockets into the real
nexusd: every type and option, exact counts and sums, quantiles within alpha
of the exact order statistics, tags and tenants."""
import math
import os
import time
import unittest

import nxtest
from nxtest import Nexusd, batches, exact_quantile


class StatsdIngest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Nexusd(shards=2, unix=True).start()
        cls.addClassCleanup(cls.d.stop)  # runs even if setUpClass fails


    def send_and_wait(self, payloads, nlines, via="udp"):
        before = self.d.totals()["lines"]
        getattr(self.d, "send_" + via)(payloads)
        self.d.wait_lines(before + nlines)

    def test_receive_buffers(self):
        """Every datagram socket (a UDP one per shard, the unix one) got the
        64 MiB default receive buffer (the kernel reports twice it); as
        root nexusd may exceed net.core.rmem_max (SO_RCVBUFFORCE)."""
        if os.geteuid() != 0:
            self.skipTest("needs root (SO_RCVBUFFORCE)")
        import re
        import subprocess
        udp = subprocess.run(["ss", "-u", "-a", "-n", "-m", "sport = :%d" % self.d.statsd_port],
                             capture_output=True, text=True, check=True).stdout
        unix = subprocess.run(["ss", "-x", "-a", "-m", "src", self.d.unix_path],
                              capture_output=True, text=True, check=True).stdout
        rb_udp = [int(x) for x in re.findall(r"rb(\d+)", udp)]
        rb_unix = [int(x) for x in re.findall(r"rb(\d+)", unix)]
        self.assertEqual(len(rb_udp), 2, udp)  # one per shard
        self.assertEqual(len(rb_unix), 1, unix)
        for rb in rb_udp + rb_unix:
            self.assertEqual(rb, 2 * 64 * 1024 * 1024)

    def test_counter_with_rates_and_multi_values(self):
        lines = ["t1.hits:1|c"] * 50 + ["t1.hits:2|c|@0.5"] * 10 + ["t1.hits:3:4|c"]
        self.send_and_wait(batches(lines), len(lines))
        s = self.d.summary("t1.hits")
        self.assertEqual(s["type"], "counter")
        # 50*1 + 10*(2/0.5) + 3 + 4
        self.assertEqual(s["sum"], 50 + 40 + 7)
        self.assertEqual(s["count"], 50 + 10 * 2 + 2)

    def test_gauge_set_and_deltas(self):
        self.send_and_wait("t2.temp:10|g\nt2.temp:+5|g\nt2.temp:-3|g", 3)
        s = self.d.summary("t2.temp")
        self.assertEqual(s["type"], "gauge")
        self.assertEqual(s["last"], 12)
        self.send_and_wait("t2.temp:42|g", 1)
        self.assertEqual(self.d.summary("t2.temp")["last"], 42)

    def test_timer_histogram_distribution_quantiles(self):
        r = nxtest.rng(1)
        n = 10000 * nxtest.SCALE
        for typ, name in (("ms", "t3.lat"), ("h", "t3.hist"), ("d", "t3.dist")):
            vals = [round(r.lognormvariate(3, 1), 3) for _ in range(n)]
            lines = ["%s:%r|%s|#route:/x" % (name, v, typ) for v in vals]
            self.send_and_wait(batches(lines, 8000), n)
            s = self.d.summary(name, tags="route:/x", q="0.01,0.5,0.9,0.99,0.999")
            self.assertEqual(s["type"], {"ms": "timer", "h": "histogram", "d": "distribution"}[typ])
            self.assertEqual(s["count"], n)
            self.assertAlmostEqual(s["sum"], sum(vals), delta=1e-6 * sum(vals))
            self.assertEqual(s["min"], min(vals))
            self.assertEqual(s["max"], max(vals))
            alpha = s["alpha"]
            self.assertAlmostEqual(alpha, 0.01)
            sv = sorted(vals)
            for q, got in s["quantiles"].items():
                want = exact_quantile(sv, float(q))
                self.assertLessEqual(abs(got - want), alpha * want + 1e-9,
                                     "%s q=%s got %r want %r" % (name, q, got, want))

    def test_sets_distinct_and_top(self):
        lines = ["t4.users:u%d|s" % (i % 300) for i in range(3000)] + ["t4.users:hot|s"] * 500
        self.send_and_wait(batches(lines), len(lines))
        s = self.d.summary("t4.users")
        self.assertEqual(s["type"], "set")
        self.assertLessEqual(abs(s["distinct"] - 301), 301 * 0.03)
        self.assertEqual(s["top"][0]["member"], "hot")
        top = s["top"][0]
        # SpaceSaving: count is an upper bound, count - error a lower bound
        self.assertLessEqual(top["count"] - top["error"], 500)
        self.assertGreaterEqual(top["count"], 500)

    def test_tags_are_sorted_into_one_stream(self):
        self.send_and_wait("t5.req:1|c|#b:2,a:1\nt5.req:1|c|#a:1,b:2\nt5.req:1|c|#a:1", 3)
        s = self.d.summary("t5.req", tags="a:1,b:2")
        self.assertEqual(s["sum"], 2)
        self.assertEqual(s["tags"], {"a": "1", "b": "2"})
        self.assertEqual(self.d.summary("t5.req", tags="a:1")["sum"], 1)

    def test_tenant_tag(self):
        self.send_and_wait("t6.x:5|c|#tenant:acme,env:prod\nt6.x:7|c|#env:prod", 2)
        a = self.d.summary("t6.x", tags="env:prod", tenant="acme")
        self.assertEqual(a["sum"], 5)
        self.assertEqual(a["tenant"], "acme")
        self.assertEqual(a["tags"], {"env": "prod"})
        self.assertEqual(self.d.summary("t6.x", tags="env:prod")["sum"], 7)
        st, streams = self.d.get("/v1/streams", prefix="t6.", tenant="acme")
        self.assertEqual([x["key"] for x in streams["streams"]], ["t6.x|env:prod"])

    def test_dogstatsd_fields(self):
        now = int(time.time())
        self.send_and_wait("t7.d:1|c|#a:b|c:container123|T%d\nt7.d:2|c|@1|#a:b" % (now - 2), 2)
        self.assertEqual(self.d.summary("t7.d", tags="a:b")["sum"], 3)

    def test_tcp_partial_lines_across_writes(self):
        chunks = ["t8.tcp:1|c\nt8.tc", "p:2|c\nt8.tcp:", "3|c\n", "t8.tcp:4|c"]  # last without \n
        self.send_and_wait(chunks, 4, via="tcp")
        self.assertEqual(self.d.summary("t8.tcp")["sum"], 10)

    def test_tcp_many_lines(self):
        n = 20000
        data = "".join("t9.bulk:%d|ms\n" % (i % 100) for i in range(n))
        self.send_and_wait([data[i:i + 7777] for i in range(0, len(data), 7777)], n, via="tcp")
        s = self.d.summary("t9.bulk")
        self.assertEqual(s["count"], n)
        self.assertEqual(s["sum"], sum(i % 100 for i in range(n)))

    def test_unix_socket(self):
        self.send_and_wait(["t10.u:1|c\nt10.u:2|c", "t10.u:3|c"], 3, via="unix")
        self.assertEqual(self.d.summary("t10.u")["sum"], 6)

    def test_windows(self):
        self.send_and_wait("t11.w:1|c\nt11.w:1|c", 2)
        for w in ("10s", "1m", "5m", "1h", "all"):
            s = self.d.summary("t11.w", window=w)
            self.assertEqual(s["sum"], 2, w)
            self.assertEqual(s["window"], w)

    def test_type_mismatch_counted(self):
        before = self.d.totals().get("rejected_by_reason", {}).get("type_mismatch", 0)
        self.send_and_wait("t12.m:1|c\nt12.m:1|ms", 2, via="tcp")
        got = nxtest.wait_for(lambda: self.d.totals()["rejected_by_reason"].get("type_mismatch", 0) > before,
                              what="type_mismatch")
        self.assertTrue(got)
        self.assertEqual(self.d.summary("t12.m")["type"], "counter")


if __name__ == "__main__":
    unittest.main()
