"""NXB binary batches and the kernel stage against the real nexusd.

Batches are built here with struct, byte for byte per docs/nxb.md (so the
tests check the wire format, not just libnexus-client against itself), and
also sent with `nexus send --nxb`. Covered: UDP and TCP round trips with
exact counts/sums/min/max and quantiles within the sketch's 1%; TCP acks
echo the sequence in order; malformed/truncated/oversized batches are
rejected with counted reasons while the next valid batch on the same
connection is applied; the steering mode is logged and reported; with eBPF
each tenant's datagrams land on exactly one shard and an over-quota tenant
is dropped in the kernel (counter rises, user space never sees those
datagrams) while another tenant stays exact; cbpf and plain give the same
summaries; PUT /v1/admin/quota enforces in user space in fallback modes;
/metrics with the new families passes promtool.
"""
import os
import random
import shutil
import socket
import struct
import subprocess
import time
import unittest
import zlib

import nxtest

TYPES = {"c": 1, "g": 2, "ms": 3, "h": 4, "d": 5, "s": 6}
ROOT = os.geteuid() == 0
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
REASON = {"bad_magic": 1, "bad_version": 2, "bad_header": 3, "truncated": 4, "oversized": 5,
          "bad_stream_ref": 9, "bad_value": 10, "bad_checksum": 11, "count_mismatch": 12,
          "unknown_tenant": 13}


def uvar(v):
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def svar(v):
    return uvar(((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)


def batch(tenant, seq, streams, events, crc=True, count=None, raw_body=None):
    """streams: [(type, key)], events: [(idx, int | float | str member)]."""
    body = raw_body if raw_body is not None else _body(streams, events)
    hdr = struct.pack("<IBBHIIQIIq", 0x42584EA7, 1, 1 if crc else 0, 40, tenant,
                      len(events) if count is None else count, seq, 40 + len(body),
                      zlib.crc32(body) if crc else 0, 0)
    return hdr + body


def _body(streams, events):
    body = uvar(len(streams)) + b"".join(bytes([TYPES[t]]) + uvar(len(k)) + k.encode()
                                         for t, k in streams)
    for idx, v in events:
        if isinstance(v, str):
            body += uvar(idx << 2) + uvar(len(v)) + v.encode()
        elif isinstance(v, int):
            body += uvar(idx << 2) + svar(v)
        else:
            body += uvar(idx << 2 | 1) + struct.pack("<d", v)
    return body


def parse_ack(a):
    magic, ver, status, alen, tenant, events, seq, _, crc = struct.unpack("<IBBHIIQII", a)
    assert magic == 0x41584EA7 and ver == 1 and alen == 32 and crc == zlib.crc32(a[:28])
    return status, tenant, events, seq


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        x = s.recv(n - len(b))
        if not x:
            break
        b += x
    return b


def timer_batches(tenant, metric, values, per=200, seq0=1):
    out = []
    for i in range(0, len(values), per):
        chunk = values[i:i + per]
        out.append(batch(tenant, seq0 + len(out), [("ms", metric), ("c", metric + ".n")],
                         [(0, v) for v in chunk] + [(1, 1) for _ in chunk]))
    return out


class NxbDaemon(nxtest.Nexusd):
    """nxtest.Nexusd with the NXB listeners on (one port, UDP and TCP)."""

    def __init__(self, steer="auto", args=(), shards=2):
        self.nxb_port = nxtest.free_port(udp_too=True)
        a = ["--nxb-udp", "127.0.0.1:%d" % self.nxb_port, "--nxb-tcp", "127.0.0.1:%d" % self.nxb_port,
             "--steer", steer, "--nxb-tenant", "1:alpha", "--nxb-tenant", "2:beta",
             "--nxb-tenant", "3:gamma"] + list(args)
        super().__init__(shards=shards, args=a)

    def send_nxb(self, datagrams, socks=1):
        ss = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(socks)]
        for i, d in enumerate(datagrams):
            ss[i % socks].sendto(d, ("127.0.0.1", self.nxb_port))
        for s in ss:
            s.close()

    def nxb_shards(self):
        return [x["nxb"] for x in self.stats()["per_shard"]]

    def nxb_total(self, field):
        return sum(x[field] for x in self.nxb_shards())

    def wait_nxb(self, field, n, timeout=20):
        return nxtest.wait_for(lambda: self.nxb_total(field) >= n, timeout,
                               what="nxb %s >= %d" % (field, n))

    def rejected(self):
        out = {}
        for x in self.nxb_shards():
            for k, v in x["rejected_by_reason"].items():
                out[k] = out.get(k, 0) + v
        return out


def check_exact(tc, d, metric, values, tenant):
    s = d.summary(metric, tenant=tenant, window="all", q="0.5,0.9,0.99")
    tc.assertEqual(s["count"], len(values))
    tc.assertEqual(s["sum"], float(sum(values)))
    tc.assertEqual(s["min"], float(min(values)))
    tc.assertEqual(s["max"], float(max(values)))
    sv = sorted(values)
    for q in ("0.5", "0.9", "0.99"):
        exact = nxtest.exact_quantile(sv, float(q))
        tc.assertLessEqual(abs(s["quantiles"][q] - exact), 0.01 * exact + 1e-9, q)
    n = d.summary(metric + ".n", tenant=tenant, window="all")
    tc.assertEqual(n["sum"], float(len(values)))
    return s


class TestNxb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = NxbDaemon(args=["--tenant-quota", "3:2000:2000"]).start()
        cls.addClassCleanup(cls.d.stop)

    def test_udp_round_trip_exact(self):
        r = nxtest.rng(1)
        vals = [r.randint(1, 5000) for _ in range(3000)]
        before = self.d.nxb_total("events")
        self.d.send_nxb(timer_batches(1, "u.lat", vals))
        self.d.wait_nxb("events", before + 2 * len(vals))
        check_exact(self, self.d, "u.lat", vals, "alpha")

    def test_tcp_acks_in_order_with_sequence(self):
        r = nxtest.rng(2)
        vals = [r.randint(1, 900) for _ in range(2000)]
        bs = timer_batches(2, "t.lat", vals, per=100, seq0=1000)
        s = socket.create_connection(("127.0.0.1", self.d.nxb_port), timeout=30)
        s.sendall(b"".join(bs))  # pipelined
        acks = [parse_ack(recv_exact(s, 32)) for _ in bs]
        s.close()
        self.assertEqual([a[3] for a in acks], list(range(1000, 1000 + len(bs))))
        self.assertTrue(all(a[0] == 0 and a[1] == 2 and a[2] == 200 for a in acks), acks[:3])
        # acked = applied: the summary is complete right away
        check_exact(self, self.d, "t.lat", vals, "beta")

    def test_malformed_tcp_rejected_next_applied(self):
        good = lambda seq, v: batch(1, seq, [("c", "m.ok")], [(0, v)])
        bad_crc = bytearray(good(11, 5))
        bad_crc[-1] ^= 0x01
        cases = [
            (bytes(bad_crc), "bad_checksum"),
            (batch(1, 12, [("c", "m.ok")], [(0, 1), (0, 1)], count=3), "count_mismatch"),
            (batch(1, 13, [("c", "m.ok")], [(5, 1)]), "bad_stream_ref"),
            (batch(1, 14, [("c", "m.ok")], [(0, float("nan"))]), "bad_value"),
            # a key length that runs past the end of the frame
            (batch(1, 15, [], [], raw_body=b"\x01\x01\x7fab"), "truncated"),
            (batch(99, 16, [("c", "m.ok")], [(0, 1)]), "unknown_tenant"),
        ]
        rej0 = self.d.rejected()
        s = socket.create_connection(("127.0.0.1", self.d.nxb_port), timeout=30)
        seq = 100
        for frame, reason in cases:
            s.sendall(frame + good(seq, 2))
            a1, a2 = parse_ack(recv_exact(s, 32)), parse_ack(recv_exact(s, 32))
            self.assertEqual(a1[0], REASON[reason], reason)
            self.assertEqual(a1[2], 0)
            self.assertEqual((a2[0], a2[2], a2[3]), (0, 1, seq))
            seq += 1
        # out of sync (frame over 1 MiB): the server closes after acking what came before
        big = bytearray(good(seq, 2))
        struct.pack_into("<I", big, 24, (1 << 20) + 1)
        s.sendall(good(200, 3) + bytes(big))
        self.assertEqual(parse_ack(recv_exact(s, 32))[3], 200)
        s.settimeout(10)
        self.assertEqual(s.recv(32), b"")
        s.close()
        rej = self.d.rejected()
        for _, reason in cases:
            self.assertEqual(rej.get(reason, 0) - rej0.get(reason, 0), 1, reason)
        self.assertEqual(rej.get("oversized", 0) - rej0.get("oversized", 0), 1)
        got = self.d.summary("m.ok", tenant="alpha", window="all")
        self.assertEqual(got["sum"], 2.0 * len(cases) + 3)
        self.assertTrue(self.d.alive())

    def test_malformed_udp(self):
        rej0 = self.d.rejected()
        ev0 = self.d.nxb_total("events")
        good = batch(2, 1, [("c", "mu.ok")], [(0, 7)])
        bad = [b"mu.ok:1|c", good[:30], good + b"\x00", struct.pack("<I", 0x42584EA7) + b"\x09" + good[5:]]
        self.d.send_nxb(bad + [good])
        self.d.wait_nxb("events", ev0 + 1)
        rej = nxtest.wait_for(lambda: sum(self.d.rejected().values()) >= sum(rej0.values()) + 4
                              and self.d.rejected())
        for r in ("bad_magic", "truncated", "oversized", "bad_version"):
            self.assertEqual(rej.get(r, 0) - rej0.get(r, 0), 1, r)
        self.assertEqual(self.d.summary("mu.ok", tenant="beta", window="all")["sum"], 7.0)

    def test_steering_logged_and_reported(self):
        k = self.d.stats()["kernel"]
        mode = "ebpf" if ROOT else k["nxb"]["mode"]
        self.assertIn('group=nxb-udp steer=%s wanted=auto' % mode, self.d.read_log())
        self.assertIn('group=statsd-udp steer=%s' % mode, self.d.read_log())
        self.assertEqual(k["nxb"]["mode"], mode)
        self.assertEqual(k["statsd"]["mode"], mode)
        self.assertTrue(k["nxb"]["detail"].startswith(mode))
        for x in self.d.stats()["per_shard"]:
            self.assertIn("recv_calls", x)
            self.assertIn("recv_calls", x["nxb"])

    @unittest.skipUnless(ROOT, "eBPF needs root")
    def test_ebpf_each_tenant_on_one_shard(self):
        for num, tenant in ((1, "alpha"), (2, "beta")):
            before = [x["datagrams"] for x in self.d.nxb_shards()]
            k0 = {t["num"]: t["kernel"] for t in self.d.stats()["kernel"]["nxb"]["tenants"]}
            n = 64
            # many source sockets: the kernel's flow hash alone would spread them
            self.d.send_nxb([batch(num, i, [("c", "sh.x")], [(0, 1)]) for i in range(n)], socks=16)
            owner = num % 2
            nxtest.wait_for(lambda: self.d.nxb_shards()[owner]["datagrams"] - before[owner] >= n)
            after = [x["datagrams"] for x in self.d.nxb_shards()]
            self.assertEqual(after[owner] - before[owner], n)
            self.assertEqual(after[1 - owner] - before[1 - owner], 0)
            k = {t["num"]: t for t in self.d.stats()["kernel"]["nxb"]["tenants"]}
            self.assertEqual(k[num]["shard"], owner)
            self.assertEqual(k[num]["kernel"]["accepted_pkts"] - k0[num]["accepted_pkts"], n)

    @unittest.skipUnless(ROOT, "eBPF needs root")
    def test_ebpf_quota_drops_in_kernel(self):
        st = self.d.stats()["kernel"]["nxb"]
        g0 = {t["num"]: t for t in st["tenants"]}[3]
        self.assertEqual(g0["quota"], {"rate": 2000, "burst": 2000})
        seen0 = self.d.nxb_shards()[1]["datagrams"]  # gamma (3) and alpha (1) live on shard 1
        ev_a0 = self.d.nxb_total("events")
        t0 = time.time()
        over = [batch(3, i, [("c", "q.g")], [(0, 1)] * 100) for i in range(100)]  # 10,000 events
        fair = [batch(1, i, [("c", "q.a")], [(0, 1)] * 100) for i in range(100)]
        self.d.send_nxb([x for pair in zip(over, fair) for x in pair])
        def kern():
            return {t["num"]: t["kernel"] for t in self.d.stats()["kernel"]["nxb"]["tenants"]}[3]
        k = nxtest.wait_for(lambda: (kern()["accepted_pkts"] + kern()["dropped_pkts"]
                                     - g0["kernel"]["accepted_pkts"] - g0["kernel"]["dropped_pkts"] >= 100)
                            and kern())
        elapsed = time.time() - t0
        dropped = k["dropped_pkts"] - g0["kernel"]["dropped_pkts"]
        accepted = k["accepted_pkts"] - g0["kernel"]["accepted_pkts"]
        self.assertGreater(dropped, 0)
        self.assertEqual(accepted + dropped, 100)
        self.assertEqual(k["dropped_events"] - g0["kernel"]["dropped_events"], 100 * dropped)
        # applied events bounded by burst + rate * elapsed
        self.assertLessEqual(accepted * 100, 2000 + 2000 * elapsed + 100)
        nxtest.wait_for(lambda: self.d.nxb_total("events") >= ev_a0 + 100 * (100 + accepted))
        got = self.d.summary("q.g", tenant="gamma", window="all")["sum"]
        self.assertEqual(got, 100.0 * accepted)
        self.assertEqual(self.d.summary("q.a", tenant="alpha", window="all")["sum"], 10000.0)
        # user space never saw the dropped datagrams
        self.assertEqual(self.d.nxb_shards()[1]["datagrams"] - seen0, 100 + accepted)
        self.assertGreaterEqual(self.d.stats()["kernel"]["nxb"]["global"]["dropped_pkts"], dropped)

    def test_cli_send_nxb(self):
        lines = "\n".join("cli.lat:%d|ms|#route:/r" % v for v in range(1, 101)) + "\n"
        env = dict(os.environ, NEXUS_NXB="127.0.0.1:%d" % self.d.nxb_port)
        p = subprocess.run([nxtest.binary("nexus"), "send", "--nxb", "--tcp", "--num", "1"],
                           input=lines.encode(), capture_output=True, env=env, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"acked 100", p.stdout)
        s = self.d.summary("cli.lat", tags="route:/r", tenant="alpha", window="all")
        self.assertEqual((s["count"], s["sum"]), (100, 5050.0))
        p = subprocess.run([nxtest.binary("nexus"), "send", "--nxb", "--num", "1", "cli.u:4|c",
                            "cli.u:5|c"], capture_output=True, env=env, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        nxtest.wait_for(lambda: self.d.get("/v1/summary", metric="cli.u", tenant="alpha",
                                           window="all")[0] == 200)
        self.assertEqual(self.d.summary("cli.u", tenant="alpha", window="all")["sum"], 9.0)

    def test_metrics_promtool(self):
        st, text = self.d.request("GET", "/metrics", raw=True)
        self.assertEqual(st, 200)
        self.assertIn(b"nexusd_nxb_events_total", text)
        self.assertIn(b'nexusd_steer_mode{group="nxb"', text)
        if ROOT:
            self.assertIn(b"nexusd_steer_tenant_events_total", text)
        if not os.access(PROMTOOL, os.X_OK):
            self.skipTest("promtool not installed")
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())


def workload(seed=7):
    r = random.Random(seed)
    out = []
    for num in (1, 2, 3):
        vals = [r.randint(1, 10000) for _ in range(1500)]
        out += timer_batches(num, "cmp.lat", vals, per=150)
        out.append(batch(num, 99, [("s", "cmp.users"), ("g", "cmp.g")],
                         [(0, "u%d" % r.randint(0, 300)) for _ in range(200)] + [(1, 5), (1, 9)]))
    return out


class TestModesAgree(unittest.TestCase):
    """The same workload under ebpf (when root), cbpf and plain: same answers."""

    def run_mode(self, steer, extra=()):
        d = NxbDaemon(steer=steer, args=extra).start()
        try:
            k = d.stats()["kernel"]["nxb"]
            if steer != "ebpf" or ROOT:
                self.assertEqual(k["mode"], steer)
            dg = workload()
            d.send_nxb(dg, socks=8)
            d.wait_nxb("batches", len(dg))
            ans = {}
            for t in ("alpha", "beta", "gamma"):
                for m in ("cmp.lat", "cmp.lat.n", "cmp.users", "cmp.g"):
                    s = d.summary(m, tenant=t, window="all", q="0.5,0.99")
                    ans[(t, m)] = {k: s.get(k) for k in ("count", "sum", "min", "max", "quantiles",
                                                         "distinct", "last")}
            return ans, d
        except Exception:
            d.stop(check=False)
            raise

    def test_same_summaries_in_every_mode(self):
        modes = (["ebpf"] if ROOT else []) + ["cbpf", "plain"]
        answers = {}
        for m in modes:
            a, d = self.run_mode(m)
            d.stop()
            answers[m] = a
        for m in modes[1:]:
            self.assertEqual(answers[m], answers[modes[0]], m)

    def test_user_space_quota_in_fallback(self):
        d = NxbDaemon(steer="cbpf").start()
        self.addCleanup(d.stop)
        st, body = d.request("PUT", "/v1/admin/quota", num="2", rate="500", burst="500")
        self.assertEqual((st, body["enforced"]), (200, "user"))
        self.assertEqual(d.request("PUT", "/v1/admin/quota", num="x", rate="1")[0], 400)
        d.send_nxb([batch(2, i, [("c", "uq")], [(0, 1)] * 100) for i in range(50)])
        nxtest.wait_for(lambda: d.nxb_total("batches") + d.nxb_total("quota_dropped_batches") >= 50)
        dropped = d.nxb_total("quota_dropped_batches")
        self.assertGreater(dropped, 0)
        got = d.summary("uq", tenant="beta", window="all")["sum"]
        self.assertEqual(got, 100.0 * (50 - dropped))
        self.assertLessEqual(got, 500 + 500 * 5)
        # TCP: an over-quota batch is acked with 100 + 5 (NX_EQUOTA)
        s = socket.create_connection(("127.0.0.1", d.nxb_port), timeout=30)
        s.sendall(batch(2, 77, [("c", "uq")], [(0, 1)] * 5000))
        self.assertEqual(parse_ack(recv_exact(s, 32))[:4:3], (105, 77))
        s.close()


if __name__ == "__main__":
    unittest.main()
