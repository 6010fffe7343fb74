"""Shard heaps faulted in ahead of use (src/server/nx_prefault.c).

The reservoir only exists where the allocator is jemalloc, i.e. in the
release nexusd (the ASan one keeps the sanitizer's allocator), so these tests
start build/release/bin/nexusd whatever $NX_BUILD says; scripts/test.sh
builds both. They check that the background thread keeps each shard's
reservation populated ahead of what jemalloc was handed, that data written
through the custom arenas reads back exactly, and that --prefault-ahead 0
turns it off.
"""
import os
import unittest

from nxtest import ROOT, Nexusd, wait_for

RELEASE_NEXUSD = os.path.join(ROOT, "build", "release", "bin", "nexusd")
MIB = 1 << 20


def prefault(d):
    return d.stats()["prefault"]


class TestPrefault(unittest.TestCase):
    def setUp(self):
        if not os.access(RELEASE_NEXUSD, os.X_OK):
            raise AssertionError("%s not built: run make (VARIANT=release)" % RELEASE_NEXUSD)

    def test_reservations_stay_ahead_and_data_is_exact(self):
        d = Nexusd(shards=2, exe=RELEASE_NEXUSD, args=["--prefault-ahead", "16"]).start()
        try:
            self.assertIn("prefault on", d.read_log())
            # idle: every shard's reservation is populated 16 MiB past what
            # jemalloc was handed (its first extent came with the first malloc)
            def ahead():
                pf = prefault(d)
                return len(pf) == 2 and all(
                    s["handed_bytes"] > 0 and s["ready_bytes"] >= s["handed_bytes"] + 16 * MIB
                    for s in pf) and pf
            wait_for(ahead, timeout=20, what="16 MiB populated ahead on both shards")
            before = prefault(d)
            # grow the state through the shard arenas, then read it back
            lines, n = [], 400
            for i in range(n):
                lines.append("pf.count.%d:%d|c" % (i, i + 1))
                lines.append("pf.timer.%d:%d|ms" % (i, 10 * (i + 1)))
                lines.append("pf.set.%d:member-%d|s" % (i, i % 7))
            for rep in range(5):
                d.ingest(lines)
            for i in (0, 17, n - 1):
                c = d.summary("pf.count.%d" % i)
                self.assertEqual(c["count"], 5)
                self.assertEqual(c["sum"], 5 * (i + 1))
                t = d.summary("pf.timer.%d" % i, q="0.5")
                self.assertEqual(t["count"], 5)
                self.assertAlmostEqual(t["sum"], 50.0 * (i + 1), delta=1e-9)
                s = d.summary("pf.set.%d" % i)
                self.assertAlmostEqual(s["distinct"], 1, delta=0.01)  # HLL estimate
            after = wait_for(ahead, timeout=20, what="populated ahead again")
            for b, a in zip(before, after):
                self.assertGreaterEqual(a["handed_bytes"], b["handed_bytes"])
                self.assertEqual(a["populate_failed_bytes"], 0)
                self.assertEqual(a["fallback_bytes"], 0)
        finally:
            d.stop()
        # the shutdown log carries the totals per shard
        # (stop() removed the directory; the process log was read above)

    def test_off(self):
        d = Nexusd(shards=2, exe=RELEASE_NEXUSD, args=["--prefault-ahead", "0"]).start()
        try:
            self.assertIsNone(prefault(d))
            self.assertIn('prefault off', d.read_log())
            self.assertIn('--prefault-ahead 0', d.read_log())
            d.ingest(["pf.off:3|c"])
            self.assertEqual(d.summary("pf.off")["sum"], 3)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
