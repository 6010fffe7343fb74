"""Hostile input against the real nexusd: random bytes, 64 KiB lines, bad
UTF-8, NaN/Inf, 1000 tags, truncated/over-long TCP lines. Each bad line is
rejected and counted under its reason, the valid lines of the same datagram
still count, and the server keeps answering."""
import os
import unittest

import nxtest
from nxtest import Nexusd


class Malformed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Nexusd(shards=2).start()
        cls.addClassCleanup(cls.d.stop)  # runs even if setUpClass fails


    def reasons(self):
        return self.d.totals()["rejected_by_reason"]

    def deliver(self, payloads, nlines, via="udp"):
        before = self.d.totals()["lines"]
        getattr(self.d, "send_" + via)(payloads)
        self.d.wait_lines(before + nlines)

    def assert_reason_delta(self, before, reason, n):
        self.assertEqual(self.reasons().get(reason, 0) - before.get(reason, 0), n, reason)

    def test_each_reason_with_valid_neighbours(self):
        bad = {
            "bad_value": ["m1.v:NaN|ms", "m1.v:inf|c", "m1.v:-Infinity|g", "m1.v:1e999|ms", "m1.v:12abc|c"],
            "bad_utf8": [b"m1.\xff\xfe:1|c", b"m1.x:1|c|#k:\xc3\x28"],
            "bad_format": ["garbage", "m1.v:1"],
            "bad_type": ["m1.v:1|zz"],
            "bad_rate": ["m1.v:1|c|@0", "m1.v:1|c|@2"],
            "bad_tags": ["m1.v:1|c|#,"],
            "bad_tenant": ["m1.v:1|c|#tenant:NO!"],
            "bad_name": [" m1 :1|c"],
            "too_many_tags": ["m1.v:1|c|#" + ",".join("t" for _ in range(1000))],  # 1000 tags, 2 KiB
        }
        before = self.reasons()
        payload = []
        nbad = 0
        for lines in bad.values():
            for l in lines:
                payload.append(l if isinstance(l, bytes) else l.encode())
                payload.append(b"m1.good:1|c")  # a valid line after every bad one
                nbad += 1
        self.deliver(b"\n".join(payload), 2 * nbad)
        for reason, lines in bad.items():
            self.assert_reason_delta(before, reason, len(lines))
        self.assertEqual(self.d.summary("m1.good")["sum"], nbad)
        st, streams = self.d.get("/v1/streams", prefix="m1.")
        self.assertEqual([s["key"] for s in streams["streams"]], ["m1.good"])

    def test_64k_line_in_datagram(self):
        before = self.reasons()
        big = b"m2.big:" + b"1" * 65000 + b"|c"
        self.deliver(b"m2.ok:1|c\n" + big + b"\nm2.ok:2|c", 3)
        self.assert_reason_delta(before, "too_long", 1)
        self.assertEqual(self.d.summary("m2.ok")["sum"], 3)

    def test_64k_line_over_tcp(self):
        before = self.reasons()
        big = b"m3.big:" + b"9" * (70 * 1024) + b"|c\n"
        self.deliver([b"m3.ok:1|c\n", big, b"m3.ok:2|c\n"], 3, via="tcp")
        nxtest.wait_for(lambda: self.reasons().get("too_long", 0) - before.get("too_long", 0) == 1,
                        what="too_long")
        self.assertEqual(self.d.summary("m3.ok")["sum"], 3)

    def test_random_bytes(self):
        r = nxtest.rng(3)
        before = self.d.totals()
        dgrams = [bytes(r.getrandbits(8) for _ in range(r.randint(1, 1400))) for _ in range(300)]
        dgrams.append(b"m4.after:1|c")
        self.d.send_udp(dgrams)
        nxtest.wait_for(lambda: self.d.totals()["datagrams"] >= before["datagrams"] + len(dgrams),
                        what="all datagrams")
        t = self.d.totals()
        self.assertGreater(t["rejected"], before["rejected"])
        # every line is either applied or rejected with a reason
        self.assertEqual(sum(t["rejected_by_reason"].values()), t["rejected"])
        self.assertTrue(self.d.alive())
        self.assertEqual(self.d.summary("m4.after")["sum"], 1)
        st, _ = self.d.get("/v1/health")
        self.assertEqual(st, 200)

    def test_http_garbage(self):
        st, r = self.d.post("/v1/ingest", os.urandom(20000).replace(b"{", b"x").replace(b"[", b"x"))
        self.assertEqual(st, 200)
        self.assertEqual(r["accepted"] + r["rejected"], r["lines"])
        st, r = self.d.post("/v1/ingest", b'{"events": [{"metric": 5}]}', "application/json")
        self.assertEqual(st, 200)
        self.assertEqual(r["rejected"], 1)
        self.assertTrue(self.d.alive())


if __name__ == "__main__":
    unittest.main()
