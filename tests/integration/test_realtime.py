"""The real-time query path (src/server/nx_rt.h, docs/architecture.md).

With permission to use SCHED_FIFO (root in CI), nexusd runs its HTTP threads
at FIFO 3 (the listener and every connection thread), the prefault thread at
FIFO 1 (release build) and the shards at normal priority except while a
query waits on them; --realtime no leaves every thread normal. Without the
permission nexusd must say so in its log and run normal. Also: the shard
heaps are on 4 KiB pages unless --huge-pages yes.

The thread states are read from /proc/PID/task/TID/stat (rt_priority and
policy, fields 40 and 41).
"""
import http.client
import os
import time
import threading
import unittest

from nxtest import ROOT, Nexusd, wait_for

RELEASE_NEXUSD = os.path.join(ROOT, "build", "release", "bin", "nexusd")
SCHED_OTHER, SCHED_FIFO, SCHED_IDLE = 0, 1, 5
RESERVATION_KB = 64 << 20  # nx_prefault.c NX_PF_RESERVE (64 GiB) in kB, less alignment


def permitted():
    try:
        old = os.sched_getscheduler(0)
        oldp = os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(3))
        os.sched_setscheduler(0, old, oldp)
        return True
    except PermissionError:
        return False


def threads(pid):
    """[(name, policy, rt_priority)] of every thread of pid."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()  # from field 3 on
        out.append((name, int(rest[41 - 3]) & 0xff, int(rest[40 - 3])))
    return out


def of(ths, prefix):
    return [(p, r) for n, p, r in ths if n.startswith(prefix)]


def reservation_smaps(pid):
    """[(rss_kb, anon_huge_kb)] of the 64 GiB shard heap reservations."""
    res, cur = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            k = line.split(":")[0]
            if k == "Size":
                cur = {"size": int(line.split()[1])}
            elif cur is not None and k in ("Rss", "AnonHugePages"):
                cur[k] = int(line.split()[1])
                if k == "AnonHugePages" and RESERVATION_KB - (4 << 10) <= cur["size"] <= RESERVATION_KB:
                    res.append((cur["Rss"], cur["AnonHugePages"]))
    return res


class TestRealtime(unittest.TestCase):
    def setUp(self):
        if not os.access(RELEASE_NEXUSD, os.X_OK):
            raise AssertionError("%s not built: run make (VARIANT=release)" % RELEASE_NEXUSD)

    def start(self, *args):
        d = Nexusd(shards=2, exe=RELEASE_NEXUSD, args=list(args)).start()
        self.addCleanup(d.stop)
        return d

    def test_query_path_priorities(self):
        d = self.start()
        pid = d.proc.pid
        if not permitted():
            self.assertIn("realtime off", d.read_log())
            self.assertIn("not permitted", d.read_log())
            for name, policy, _ in threads(pid):
                self.assertEqual(policy, SCHED_IDLE if name == "nx-prefault" else SCHED_OTHER, name)
            return
        self.assertIn("realtime on", d.read_log())
        # a kept-alive connection has its own libmicrohttpd thread
        conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=10)
        conn.request("GET", "/v1/health")
        self.assertEqual(conn.getresponse().read() is not None, True)
        # each shard names its own thread once it runs: /v1/health can
        # answer before the second one has (seen once in CI)
        deadline = time.monotonic() + 10
        ths = threads(pid)
        while len(of(ths, "nx-shard")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            ths = threads(pid)
        self.assertEqual(of(ths, "MHD-listen"), [(SCHED_FIFO, 3)])
        self.assertGreaterEqual(len(of(ths, "MHD-connection")), 1)
        for p in of(ths, "MHD-connection"):
            self.assertEqual(p, (SCHED_FIFO, 3))
        self.assertEqual(of(ths, "nx-prefault"), [(SCHED_FIFO, 1)])
        self.assertEqual(of(ths, "nx-shard"), [(SCHED_OTHER, 0)] * 2)
        for prefix in ("nx-snapshot", "nx-walsync", "nexusd", "jemalloc"):
            for p in of(ths, prefix):
                self.assertEqual(p[0], SCHED_OTHER, prefix)
        # bulk answers are rendered at normal priority; the thread is back
        # at FIFO 3 for the next request
        for path in ("/metrics", "/v1/stats", "/v1/streams"):
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200, path)
            self.assertEqual(set(of(threads(pid), "MHD-connection")), {(SCHED_FIFO, 3)}, path)
        conn.close()

    def test_shards_back_to_normal_after_queries(self):
        # many concurrent queries raise and lower the shards; afterwards
        # no shard may be left real-time, and every answer is exact
        d = self.start()
        lines = ["rt.c.%d:%d|c" % (i, i + 1) for i in range(64)]
        for _ in range(3):
            d.ingest(lines)
        errors = []

        def client(k):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=10)
                for j in range(150):
                    i = (k * 7 + j) % 64
                    conn.request("GET", "/v1/summary?metric=rt.c.%d&window=all" % i)
                    r = conn.getresponse()
                    body = r.read()
                    if r.status != 200 or b'"sum":%d' % (3 * (i + 1)) not in body.replace(b" ", b""):
                        errors.append((i, r.status, body[:200]))
                conn.close()
            except Exception as e:  # reported below, not lost in the thread
                errors.append(repr(e))

        ts = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        wait_for(lambda: of(threads(d.proc.pid), "nx-shard") == [(SCHED_OTHER, 0)] * 2,
                 timeout=5, what="both shards back at SCHED_OTHER")

    def test_realtime_no(self):
        d = self.start("--realtime", "no")
        self.assertIn("realtime off", d.read_log())
        self.assertIn("--realtime no", d.read_log())
        d.ingest(["rt.off:2|c"])
        self.assertEqual(d.summary("rt.off")["sum"], 2)
        for name, policy, _ in threads(d.proc.pid):
            # the prefault thread goes back to using idle CPU only
            self.assertEqual(policy, SCHED_IDLE if name == "nx-prefault" else SCHED_OTHER, name)

    def test_shard_heaps_on_small_pages(self):
        d = self.start("--prefault-ahead", "16")
        self.assertIn("page=4K", d.read_log())
        res = wait_for(lambda: (lambda r: len(r) == 2 and all(rss >= 16 << 10 for rss, _ in r) and r)(
            reservation_smaps(d.proc.pid)), timeout=20, what="16 MiB populated in both reservations")
        for rss, huge in res:
            self.assertEqual(huge, 0)

    def test_huge_pages_yes(self):
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            thp = f.read()
        d = self.start("--prefault-ahead", "16", "--huge-pages", "yes")
        self.assertIn("page=2M", d.read_log())
        if "[never]" in thp:
            self.skipTest("transparent huge pages are off on this machine")
        res = wait_for(lambda: (lambda r: len(r) == 2 and all(h >= 2 << 10 for _, h in r) and r)(
            reservation_smaps(d.proc.pid)), timeout=20, what="huge pages in both reservations")
        self.assertEqual(len(res), 2)


if __name__ == "__main__":
    unittest.main()
