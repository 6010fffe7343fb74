"""The `nexus` CLI against the real nexusd: send (args and stdin), query
(table and --json), streams, stats, top --once, errors."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

import nxtest
from nxtest import Nexusd


class Cli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Nexusd(shards=2).start()
        cls.addClassCleanup(cls.d.stop)  # runs even if setUpClass fails
        cls.env = dict(os.environ, NEXUS_URL=cls.d.base)
        cls.env.pop("NEXUS_TOKEN", None)


    def nexus(self, *args, stdin=None, rc=0):
        p = subprocess.run([nxtest.binary("nexus")] + list(args), input=stdin, capture_output=True,
                           env=self.env, timeout=60)
        self.assertEqual(p.returncode, rc, p.stdout.decode() + p.stderr.decode())
        return p.stdout.decode(), p.stderr.decode()

    def test_send_args_and_query_json(self):
        out, _ = self.nexus("send", "c1.lat:10|ms|#route:/a", "c1.lat:20|ms|#route:/a", "c1.lat:30|ms|#route:/a", "junk")
        self.assertIn("accepted 3, rejected 1", out)
        self.assertIn("bad_format=1", out)
        out, _ = self.nexus("query", "c1.lat", "--tags", "route:/a", "--window", "1m", "--q", "0.5,0.99", "--json")
        s = json.loads(out)
        self.assertEqual((s["count"], s["sum"], s["min"], s["max"]), (3, 60, 10, 30))
        self.assertEqual(sorted(s["quantiles"]), ["0.5", "0.99"])
        self.assertLessEqual(abs(s["quantiles"]["0.5"] - 20), 0.2)

    def test_send_stdin_and_table(self):
        lines = "".join("c2.hits:%d|c\n" % i for i in range(1, 101)).encode()
        out, _ = self.nexus("send", stdin=lines)
        self.assertIn("accepted 100, rejected 0", out)
        out, _ = self.nexus("query", "c2.hits", "--window", "all")
        self.assertIn("c2.hits  (counter, tenant default, window all)", out)
        self.assertRegex(out, r"\n  sum +5050\n")
        self.assertRegex(out, r"\n  count +100\n")

    def test_tenant_flag(self):
        self.nexus("--tenant", "acme", "send", "c3.x:4|g")
        out, _ = self.nexus("--tenant", "acme", "query", "c3.x", "--json")
        self.assertEqual(json.loads(out)["last"], 4)
        self.nexus("query", "c3.x", rc=1)  # not in tenant default

    def test_streams_stats_top(self):
        self.nexus("send", *(["c4.busy:1|c"] * 20 + ["c4.quiet:1|c", "c4.t:1|ms"]))
        out, _ = self.nexus("streams", "--prefix", "c4.")
        self.assertIn("counter        c4.busy", out)
        self.assertIn("timer          c4.t", out)
        self.assertIn("3 streams", out)
        out, _ = self.nexus("streams", "--prefix", "c4.", "--json")
        self.assertEqual(json.loads(out)["count"], 3)
        self.nexus("--tenant", "topt", "send", *(["c4.busy:1|c"] * 20 + ["c4.quiet:1|c"]))
        out, _ = self.nexus("--tenant", "topt", "top", "--once", "--n", "2")
        rows = [l.split() for l in out.splitlines()[3:] if l.strip()]
        self.assertEqual(len(rows), 2, out)
        self.assertIn("tenant topt, 2 streams", out)
        self.assertEqual(rows[0][3], "c4.busy")
        self.assertEqual(rows[0][1], "20")
        out, _ = self.nexus("stats")
        self.assertIn("shards", out)
        self.assertRegex(out, r"events +\d+")
        # the answer times of the requests above (the streams, the top
        # view), and of none that was not asked
        self.assertRegex(out, r"\n  streams +[1-9]\d* +\d+(\.\d+)? (us|ms) ")
        self.assertNotRegex(out, r"\n  series ")
        out, _ = self.nexus("stats", "--json")
        self.assertEqual(json.loads(out)["shards"], 2)

    def test_errors(self):
        _, err = self.nexus("query", "c5.none", rc=1)
        self.assertIn("404", err)
        self.nexus(rc=2)
        self.nexus("bogus", rc=2)
        env = dict(self.env, NEXUS_URL="http://127.0.0.1:%d" % nxtest.free_port(False))
        p = subprocess.run([nxtest.binary("nexus"), "stats"], capture_output=True, env=env, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot connect", p.stderr.decode())

    def test_nexusd_refuses_listeners_sharing_a_port(self):
        # every listener group sets SO_REUSEPORT, so a clash would bind and
        # quietly split the port's traffic; nexusd must refuse it up front
        port = nxtest.free_port(udp_too=True)
        cases = [("--statsd-tcp", "--nxb-tcp", "TCP"), ("--statsd-udp", "--nxb-udp", "UDP"),
                 ("--http", "--statsd-tcp", "TCP")]
        for a, b, proto in cases:
            args = [nxtest.binary("nexusd"), "--data-dir", "/nonexistent/never-created",
                    a, "127.0.0.1:%d" % port, b, "0.0.0.0:%d" % port]
            p = subprocess.run(args, capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("%s 127.0.0.1:%d and %s 0.0.0.0:%d share a %s port" % (a, port, b, port, proto),
                          p.stderr)
            self.assertFalse(os.path.exists("/nonexistent/never-created"))

    def test_nexusd_refuses_a_port_another_process_holds(self):
        # a foreign SO_REUSEPORT socket of the same user would otherwise join
        # nexusd's group and take a share of the port's traffic
        for typ, flag, proto in ((socket.SOCK_STREAM, "--nxb-tcp", "tcp"),
                                 (socket.SOCK_DGRAM, "--statsd-udp", "udp")):
            with socket.socket(socket.AF_INET, typ) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind(("127.0.0.1", 0))
                if typ == socket.SOCK_STREAM:
                    s.listen()
                port = s.getsockname()[1]
                tmp = tempfile.mkdtemp(prefix="nxtest-")
                self.addCleanup(shutil.rmtree, tmp, True)
                args = [nxtest.binary("nexusd"), "--data-dir", os.path.join(tmp, "data"),
                        "--http", "127.0.0.1:%d" % nxtest.free_port(False), "--statsd-udp", "off",
                        "--statsd-tcp", "off", "--nxb-udp", "off", "--nxb-tcp", "off",
                        flag, "127.0.0.1:%d" % port]
                p = subprocess.run(args, capture_output=True, text=True, timeout=60)
                self.assertEqual(p.returncode, 1, p.stderr[-3000:])
                self.assertIn('address already in use (another process?)" addr="127.0.0.1:%d" proto=%s'
                              % (port, proto), p.stderr)


if __name__ == "__main__":
    unittest.main()
