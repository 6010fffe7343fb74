"""/metrics against Prometheus itself: the exposition passes `promtool check
metrics` (syntax and lint), and a real Prometheus server (Debian package,
started here on a free port with a temp config and storage, scraping every
second, stopped by PID) scrapes nexusd and answers the right values through
its HTTP query API."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import nxtest
from nxtest import Nexusd

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

WORKLOAD = [
    "p.requests:1|c|#route:/a",
    "p.requests:1|c|#route:/a",
    "p.requests:5|c|#route:/b",
    "p.temp:21.5|g",
    "p.queueCount:7|g",          # camelCase and a _count ending: sanitized
    "p.users:alice|s",
    "p.users:bob|s",
    "p.latency:10|ms|#route:/a,quote:\"x\\y",   # label value needs escaping
    "p.latency:20|ms|#route:/a,quote:\"x\\y",
    "p.latency:30|ms|#route:/a,quote:\"x\\y",
    "9odd-name.with/chars:1|h",
    "p.clash:1|g",
    "p.clash:1|ms|#tenant:other",  # same name, other type, other tenant
]


class Prometheus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Nexusd(shards=2).start()
        cls.addClassCleanup(cls.d.stop)  # runs even if setUpClass fails
        r = cls.d.ingest(WORKLOAD)
        assert r["accepted"] == len(WORKLOAD), r


    def metrics(self):
        st, body = self.d.get("/metrics", raw=True)
        self.assertEqual(st, 200)
        return body.decode()

    def test_promtool_check_metrics(self):
        text = self.metrics()
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, "promtool: %s\n%s" % (p.stdout.decode() + p.stderr.decode(), text))
        self.assertIn('p_requests_total{tenant="default",route="/a"} 2', text)
        self.assertIn('p_queue_count_value{tenant="default"} 7', text)
        self.assertIn('quote="\\"x\\\\y"', text)
        self.assertIn("# TYPE p_latency summary", text)
        self.assertIn("# TYPE p_users_distinct gauge", text)
        self.assertIn("# TYPE _9odd_name_with_chars summary", text)
        self.assertIn("# TYPE p_clash gauge", text)
        self.assertIn("# TYPE p_clash_timer summary", text)
        self.assertIn('nexusd_rejected_total{shard="0",reason="bad_utf8"}', text)

    def test_real_prometheus_scrapes(self):
        tmp = tempfile.mkdtemp(prefix="nxprom-")
        port = nxtest.free_port(udp_too=False)
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: nexusd\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % self.d.http_port)
        log = open(os.path.join(tmp, "prometheus.log"), "wb")
        proc = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg,
                                 "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % port],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            base = "http://127.0.0.1:%d" % port

            def query(expr):
                url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
                try:
                    with urllib.request.urlopen(url, timeout=5) as r:
                        res = json.loads(r.read())["data"]["result"]
                except OSError:
                    return None
                return res or None

            res = nxtest.wait_for(lambda: query('p_requests_total{route="/a"}'), 90, 0.5,
                                  what="prometheus to scrape nexusd")
            self.assertEqual(float(res[0]["value"][1]), 2)
            self.assertEqual(res[0]["metric"]["tenant"], "default")
            self.assertEqual(res[0]["metric"]["job"], "nexusd")
            self.assertEqual(float(query('p_temp')[0]["value"][1]), 21.5)
            self.assertEqual(float(query('p_latency_count')[0]["value"][1]), 3)
            self.assertEqual(float(query('p_latency_sum')[0]["value"][1]), 60)
            p50 = float(query('p_latency{quantile="0.5"}')[0]["value"][1])
            self.assertLessEqual(abs(p50 - 20), 0.01 * 20)
            self.assertAlmostEqual(float(query('p_users_distinct')[0]["value"][1]), 2, delta=0.05)
            self.assertEqual(float(query('p_clash_timer_count{tenant="other"}')[0]["value"][1]), 1)
            # new data shows up in a later scrape
            self.d.ingest("p.requests:10|c|#route:/a")
            nxtest.wait_for(lambda: (query('p_requests_total{route="/a"}') or [{"value": [0, "0"]}])[0]["value"][1] == "12",
                            30, 0.5, what="updated counter in prometheus")
            up = query('up{job="nexusd"}')
            self.assertEqual(up[0]["value"][1], "1")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
