"""Crash test: acknowledged means safe, and every batch counts exactly once.

Two client threads post batches to POST /v1/ingest?ack=durable and a third
sends NXB batches over TCP (acked once fsynced: --ack durable is the
default), one batch at a time each (so at most one is in flight per
client). Batch i of client T carries a counter line `crash.tT:v|c` with a value v that no other batch
of that client uses (v grows), a timer line with the same value, and a set
member. nexusd (2 shards, snapshots every 150 ms so crashes land before,
during and after snapshots) is killed with SIGKILL after a random 50-500
ms, restarted on the same data dir, and the all-time summaries are checked:

  count == acked batches            and sum == sum of acked values, or
  count == acked batches + 1        and sum == that + the in-flight value

A lost acked batch makes count or sum too small; a batch applied twice
(replayed on top of a snapshot that already held it) makes them too big or
gives a sum that matches no in-flight value. An in-flight batch found
applied counts as acked from then on (it was recovered from disk).

NX_CRASH_CYCLES (default 20) sets the number of kill/restart cycles.
"""
import http.client
import os
import random
import shutil
import tempfile
import threading
import time
import unittest

import socket

import nxtest
from nxstore import StoreDaemon, verify
from test_nxb import batch, parse_ack, recv_exact

CYCLES = int(os.environ.get("NX_CRASH_CYCLES", "20") or 20)
CLIENTS = 3  # 0, 1: HTTP; 2: NXB over TCP


class Client(threading.Thread):
    def __init__(self, tid, port, next_value):
        super().__init__(daemon=True)
        self.tid = tid
        self.port = port
        self.value = next_value
        self.acked = []          # values acknowledged in this cycle
        self.inflight = None     # value of the batch sent but not answered
        self.errors = []         # non-200 answers (must not happen here)

    def body(self, v):
        return ("crash.t%d:%d|c\ncrash.t%d.lat:%d|ms\ncrash.members:m%d_%d|s\n"
                % (self.tid, v, self.tid, v, self.tid, v)).encode()

    def run(self):
        conn = None
        while True:
            v = self.value
            self.inflight = v
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", "/v1/ingest?ack=durable", body=self.body(v),
                             headers={"Content-Type": "text/plain"})
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException):
                return  # killed: v stays in flight
            if r.status != 200:
                self.errors.append((r.status, data))
                return
            self.acked.append(v)
            self.inflight = None
            self.value += 1


class NxbClient(Client):
    """The same batches as NXB frames on one TCP connection, each waiting
    for its ack (status 0 and its own sequence) before the next."""

    def __init__(self, tid, port, next_value, nxb_port):
        super().__init__(tid, port, next_value)
        self.nxb_port = nxb_port

    def frame(self, v):
        return batch(0, v, [("c", "crash.t%d" % self.tid), ("ms", "crash.t%d.lat" % self.tid),
                            ("s", "crash.members")],
                     [(0, v), (1, v), (2, "m%d_%d" % (self.tid, v))])

    def run(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.nxb_port), timeout=10)
        except OSError:
            return
        with s:
            while True:
                v = self.value
                self.inflight = v
                try:
                    s.sendall(self.frame(v))
                    a = recv_exact(s, 32)
                except OSError:
                    return  # killed: v stays in flight
                if len(a) < 32:
                    return  # connection closed by the kill
                status, _, events, seq = parse_ack(a)
                if status != 0 or seq != v or events != 3:
                    self.errors.append((status, seq, events))
                    return
                self.acked.append(v)
                self.inflight = None
                self.value += 1


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="nxcrash-")
        self.data = os.path.join(self.tmp, "data")
        self.d = StoreDaemon(self.data, shards=2, args=["--snapshot-interval", "150ms"],
                             log_path=os.path.join(self.tmp, "nexusd.log"))

    def tearDown(self):
        if self.d.proc is not None:
            self.d.kill9()
        if os.environ.get("NX_KEEP"):
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def state(self, tid):
        st, b = self.d.get("/v1/summary", metric="crash.t%d" % tid, window="all")
        if st == 404:
            return 0, 0
        self.assertEqual(st, 200, b)
        st2, lat = self.d.get("/v1/summary", metric="crash.t%d.lat" % tid, window="all")
        self.assertEqual(st2, 200, lat)
        self.assertEqual(lat["count"], b["count"], "timer and counter of one batch disagree")
        return int(b["count"]), int(b["sum"])

    def reconcile(self, cycle, exp):
        """exp[tid] = [count, sum, inflight value or None]; checks and updates."""
        for tid in range(CLIENTS):
            n, s, fl = exp[tid]
            got_n, got_s = self.state(tid)
            ctx = "cycle %d client %d: expected count %d sum %d (in flight %r), got count %d sum %d\n%s" % (
                cycle, tid, n, s, fl, got_n, got_s, self.d.run_log()[-3000:])
            if got_n == n:
                self.assertEqual(got_s, s, "acked batch lost or replaced: " + ctx)
            else:
                self.assertIsNotNone(fl, "batch applied twice (nothing in flight): " + ctx)
                self.assertEqual(got_n, n + 1, "acked batch lost or applied twice: " + ctx)
                self.assertEqual(got_s, s + fl, "batch applied twice: " + ctx)
                exp[tid][0], exp[tid][1] = got_n, got_s
            exp[tid][2] = None

    def test_kill9_cycles(self):
        rnd = random.Random(int(os.environ.get("NX_CRASH_SEED", "0") or 0) or None)
        exp = [[0, 0, None] for _ in range(CLIENTS)]
        next_value = [1 + 1000000 * t for t in range(CLIENTS)]
        total_acked = inflight_applied = 0
        t0 = time.time()
        for cycle in range(CYCLES):
            self.d.start()
            self.reconcile(cycle, exp)
            clients = [Client(t, self.d.http_port, next_value[t]) for t in range(CLIENTS - 1)]
            clients.append(NxbClient(CLIENTS - 1, self.d.http_port, next_value[CLIENTS - 1],
                                     self.d.nxb_port))
            for c in clients:
                c.start()
            time.sleep(rnd.uniform(0.05, 0.5))
            self.d.kill9()
            for c in clients:
                c.join(20)
                self.assertFalse(c.is_alive(), "client hung after kill -9")
                self.assertEqual(c.errors, [], "ingest answered an error")
                exp[c.tid][0] += len(c.acked)
                exp[c.tid][1] += sum(c.acked)
                exp[c.tid][2] = c.inflight
                next_value[c.tid] = c.value + 1
                total_acked += len(c.acked)
        # the last crash, then a clean stop/start (shutdown snapshot path)
        self.d.start()
        before = [list(e) for e in exp]
        self.reconcile(CYCLES, exp)
        inflight_applied = sum(e[0] for e in exp) - sum(e[0] for e in before)
        st, members = self.d.get("/v1/summary", metric="crash.members", window="all")
        self.assertEqual(st, 200)
        self.assertEqual(int(members["count"]), sum(e[0] for e in exp))
        self.d.stop()
        rc, out = verify(self.data)
        self.assertEqual(rc, 0, out)
        self.d.start()
        self.reconcile(CYCLES + 1, exp)
        self.assertIn("replayed=0", self.d.run_log(), "a clean stop leaves nothing to replay")
        self.d.stop()
        self.assertGreater(total_acked, CYCLES, "too few acked batches to mean anything")
        CrashTest.summary = ("crash test: %d cycles, %d acked batches, %.1f s, in-flight found "
                             "applied in the last recovery: %d"
                             % (CYCLES, total_acked, time.time() - t0, inflight_applied))

    @classmethod
    def tearDownClass(cls):
        # printed after unittest's "... ok" so tests/run.sh still counts the case
        if getattr(cls, "summary", None):
            print(cls.summary)


if __name__ == "__main__":
    unittest.main()
