"""Durability of the real nexusd: restarts, corrupt files, a full disk.

Each test owns a data directory and restarts nexusd on it (nxstore.py):
missing / empty data dir; a clean restart restores every summary field
(counts, quantiles, distinct, top, windows); a corrupt newest snapshot
falls back to the previous one plus the WAL; a torn or bit-flipped WAL tail
is cut (logged) and the rest recovered; a full disk (2 MiB tmpfs) refuses
ingest with 507 instead of acknowledging it, keeps answering queries, and
recovers once space is freed.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

import nxtest
from nxstore import StoreDaemon, segments, snapshots, verify

FIELDS = ("type", "count", "sum", "min", "max", "mean", "stddev", "last", "quantiles",
          "distinct", "top")


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="nxdur-")
        self.data = os.path.join(self.tmp, "data")
        self.d = None

    def daemon(self, args=(), data=None, shards=2):
        self.d = StoreDaemon(data or self.data, shards=shards, args=list(args),
                             log_path=os.path.join(self.tmp, "nexusd.log"))
        return self.d

    def tearDown(self):
        if self.d is not None and self.d.proc is not None:
            self.d.kill9()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def count(self, metric):
        st, b = self.d.get("/v1/summary", metric=metric, window="all")
        if st == 404:
            return 0
        self.assertEqual(st, 200, b)
        return int(b["count"])

    def post(self, lines, ack=None):
        body = "\n".join(lines) + "\n"
        return self.d.post("/v1/ingest", body, ack=ack)


class DataDirTest(Base):
    def test_missing_nested_data_dir_is_created(self):
        data = os.path.join(self.tmp, "a", "b", "data")
        d = self.daemon(data=data).start()
        self.assertEqual(d.post("/v1/ingest", "x:1|c\n")[0], 200)
        d.kill9()
        self.assertTrue(os.path.isdir(os.path.join(data, "shard-0", "wal")))
        d.start()
        self.assertEqual(self.count("x"), 1)
        d.stop()

    def test_empty_data_dir(self):
        os.makedirs(self.data)
        d = self.daemon().start()
        self.assertEqual(self.count("x"), 0)
        self.assertEqual(d.post("/v1/ingest", "x:1|c\n", ack="applied")[0], 200)
        d.kill9()  # ack=applied: in the kernel before the ack, survives kill -9
        d.start()
        self.assertEqual(self.count("x"), 1)
        d.stop()

    def test_data_dir_off_disables_durability(self):
        d = self.daemon(args=["--data-dir", "off"]).start()
        self.assertEqual(d.post("/v1/ingest", "x:1|c\n")[0], 200)
        st, b = d.request("POST", "/v1/admin/snapshot")
        self.assertEqual(st, 409, b)
        d.stop()
        self.assertFalse(os.path.exists(self.data))

    def test_fewer_shards_than_on_disk_refused(self):
        d = self.daemon(shards=2).start()
        d.stop()
        d = self.daemon(shards=1)
        with self.assertRaises(RuntimeError) as e:
            d.start()
        self.assertIn("more shards than configured", str(e.exception))

    def test_snapshot_zstd_level(self):
        # the same state snapshotted at zstd level -7 and at 19: both restore
        # it, and the level is really used (the fast level's file is bigger)
        lines = ["z.lat:%d|ms|#k:%d" % ((i * 7919) % 1000, i % 50) for i in range(20000)]
        sizes = {}
        for level in ("-7", "19"):
            data = os.path.join(self.tmp, "z" + level)
            d = self.daemon(args=["--snapshot-zstd-level", level], data=data, shards=1).start()
            for i in range(0, len(lines), 2000):
                self.assertEqual(self.post(lines[i:i + 2000])[0], 200)
            self.assertEqual(d.request("POST", "/v1/admin/snapshot")[0], 200)
            d.kill9()
            snap = os.path.join(data, "shard-0", "snap")
            files = [f for f in os.listdir(snap) if f.endswith(".nxs")]
            self.assertEqual(len(files), 1, files)
            sizes[level] = os.path.getsize(os.path.join(snap, files[0]))
            d.start()
            self.assertEqual(self.count("z.lat"), 0)  # tagged: no untagged stream
            st, b = d.get("/v1/summary", metric="z.lat", tags="k:7", window="all")
            self.assertEqual((st, b["count"]), (200, 400), b)
            d.stop()
        self.assertGreater(sizes["-7"], sizes["19"] * 1.1, sizes)
        # out of range: a clear error, no daemon
        d = self.daemon(args=["--snapshot-zstd-level", "20"])
        with self.assertRaises(RuntimeError) as e:
            d.start()
        self.assertIn("--snapshot-zstd-level: expected an integer in [-7, 19]", str(e.exception))

    def test_bad_ack_mode(self):
        d = self.daemon().start()
        st, b = d.post("/v1/ingest", "x:1|c\n", ack="never")
        self.assertEqual((st, b["code"]), (400, "bad_ack"))
        d.stop()


class RestartTest(Base):
    def workload(self):
        rnd = nxtest.rng(7)
        lines = []
        for i in range(3000):
            lines.append("api.lat:%.3f|ms|#route:/r%d" % (rnd.lognormvariate(3, 1), i % 3))
            lines.append("api.req:%d|c" % (1 + i % 5))
            lines.append("api.users:u%d|s" % rnd.randrange(700))
            if i % 10 == 0:
                lines.append("api.temp:%d|g" % (i % 97))
        return lines

    def snapshot_all(self):
        out = {}
        for metric, tags in (("api.lat", "route:/r0"), ("api.lat", "route:/r2"), ("api.req", None),
                             ("api.users", None), ("api.temp", None)):
            for window in ("all", "1m", "5m"):
                st, b = self.d.get("/v1/summary", metric=metric, tags=tags, window=window,
                                   q="0.5,0.9,0.99")
                self.assertEqual(st, 200, b)
                out[(metric, tags, window)] = {k: b.get(k) for k in FIELDS}
        return out

    def check_restart(self, how):
        d = self.daemon().start()
        lines = self.workload()
        for i in range(0, len(lines), 500):
            st, b = self.post(lines[i:i + 500])
            self.assertEqual(st, 200, b)
        before = self.snapshot_all()
        self.assertGreater(before[("api.users", None, "all")]["distinct"], 600)
        if how == "stop":
            d.stop()
        else:
            d.kill9()
        d.start()
        after = self.snapshot_all()
        for k in before:
            self.assertEqual(after[k], before[k], "%r differs after %s" % (k, how))
        return d

    def test_clean_restart_restores_everything(self):
        d = self.check_restart("stop")
        log = d.run_log()
        self.assertIn("snapshot_lsn=", log)
        self.assertNotIn("snapshot_lsn=0 ", log, "a clean stop writes a final snapshot")
        self.assertIn("replayed=0", log)
        d.stop()

    def test_kill9_restart_replays_the_wal(self):
        d = self.check_restart("kill")
        self.assertRegex(d.run_log(), r"replayed=[1-9]")
        d.stop()

    def test_admin_snapshot_then_wal_tail(self):
        d = self.daemon().start()
        self.post(["s:1|c"] * 10)
        st, b = d.request("POST", "/v1/admin/snapshot")
        self.assertEqual(st, 200, b)
        self.assertEqual(len(b["shards"]), 2)
        self.assertEqual(sum(s["lsn"] for s in b["shards"]), 1)
        self.post(["s:1|c"] * 5)
        # the CLI too
        env = dict(os.environ, NEXUS_URL=d.base)
        p = subprocess.run([nxtest.binary("nexus"), "admin", "snapshot"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn(b"snapshot at lsn", p.stdout)
        self.post(["s:1|c"] * 3)
        d.kill9()
        d.start()
        self.assertEqual(self.count("s"), 18)
        d.stop()


class CorruptionTest(Base):
    def test_corrupt_newest_snapshot_falls_back(self):
        d = self.daemon(shards=1).start()
        self.post(["a:1|c"] * 7)
        self.assertEqual(d.request("POST", "/v1/admin/snapshot")[0], 200)
        self.post(["a:1|c"] * 5)
        self.assertEqual(d.request("POST", "/v1/admin/snapshot")[0], 200)
        self.post(["a:1|c"] * 3)
        d.kill9()
        snaps = snapshots(self.data, 0)
        self.assertEqual(len(snaps), 2, snaps)
        self.assertEqual(verify(self.data)[0], 0)
        with open(snaps[-1], "r+b") as f:  # garbage over the newest one
            f.seek(0)
            f.write(os.urandom(64))
        rc, out = verify(self.data)
        self.assertEqual(rc, 1, out)
        self.assertIn("PROBLEM", out)
        d.start()
        self.assertEqual(self.count("a"), 15)
        log = d.run_log()
        self.assertIn("snapshots_bad=1", log)
        self.assertIn("falling back", log)
        d.stop()

    def tear_tail(self, mutate):
        d = self.daemon(shards=1).start()
        for i in range(20):
            self.assertEqual(self.post(["t:%d|c" % (i + 1)])[0], 200)
        d.kill9()
        seg = segments(self.data, 0)[-1]
        mutate(seg)
        rc, out = verify(self.data)
        d.start()
        # the last batch (t:20) is cut, everything before it is intact
        st, b = d.get("/v1/summary", metric="t", window="all")
        self.assertEqual((b["count"], b["sum"]), (19, 190), d.run_log())
        self.assertRegex(d.run_log(), r"truncated_bytes=[1-9]")
        # the writer continues after the cut: a new batch survives a crash
        self.assertEqual(self.post(["t:100|c"])[0], 200)
        d.kill9()
        d.start()
        self.assertEqual(self.count("t"), 20)
        d.stop()
        self.assertEqual(verify(self.data)[0], 0)
        return rc, out

    def test_torn_wal_tail(self):
        def truncate(seg):
            size = os.path.getsize(seg)
            os.truncate(seg, size - 7)  # mid-record: the last record loses its end
        rc, out = self.tear_tail(truncate)
        self.assertEqual(rc, 0, "a torn tail is what a crash leaves: a note, not a failure")
        self.assertIn("torn tail", out)

    def test_flipped_byte_in_last_wal_record(self):
        def flip(seg):
            with open(seg, "r+b") as f:
                f.seek(-3, os.SEEK_END)
                b = f.read(1)
                f.seek(-3, os.SEEK_END)
                f.write(bytes([b[0] ^ 0x40]))
        self.tear_tail(flip)


class FullDiskTest(Base):
    def setUp(self):
        super().setUp()
        self.mnt = os.path.join(self.tmp, "mnt")
        os.makedirs(self.mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.skipTest("cannot mount a tmpfs (needs root): %s" % r.stdout.decode().strip())

    def tearDown(self):
        if self.d is not None and self.d.proc is not None:
            self.d.kill9()
        subprocess.run(["umount", "-l", self.mnt])
        super().tearDown()

    def test_enospc_refuses_ingest_and_keeps_serving(self):
        data = os.path.join(self.mnt, "data")
        d = self.daemon(data=data).start()
        self.assertEqual(self.post(["ok:1|c"])[0], 200)
        filler = os.path.join(self.mnt, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
        os.close(fd)
        big = ["full.metric.with.a.long.name:%d|c" % i for i in range(2000)]
        for ack in ("durable", "applied"):
            st, b = self.post(big, ack=ack)
            self.assertEqual((st, b.get("code")), (507, "no_space"), b)
        # queries still answered, the refused batches never acknowledged
        self.assertEqual(self.count("ok"), 1)
        st, s = d.get("/v1/stats")
        self.assertEqual(st, 200)
        self.assertGreater(sum(x["failed_acks"] + x["refused"] for x in s["durability"]), 0)
        self.assertIn("WAL commit failed", d.run_log())
        # space freed: ingest works again and is durable
        os.unlink(filler)
        st, b = self.post(["ok:1|c"])
        self.assertEqual(st, 200, b)
        d.kill9()
        d.start()
        self.assertEqual(self.count("ok"), 2)
        d.stop()


if __name__ == "__main__":
    unittest.main()
