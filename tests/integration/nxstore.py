"""nxstore.py — a nexusd that outlives restarts, for the durability tests.

StoreDaemon runs the real nexusd on a data directory the TEST owns: start()
can be called again after kill9() or stop() (fresh ports each time, same
data dir), the daemon's output of every run is appended to one log, and the
data dir is never removed by the daemon object (the test's tearDown does).
"""
import os
import signal
import subprocess

import nxtest


class StoreDaemon(nxtest.Nexusd):
    def __init__(self, data_dir, shards=2, args=(), log_path=None):
        super().__init__(shards=shards, args=args)
        self.data_dir = data_dir
        self.log_path = log_path or os.path.join(os.path.dirname(data_dir.rstrip("/")) or ".",
                                                 "nexusd-%d.log" % os.getpid())
        self.runs = 0

    def start(self):
        self.http_port = nxtest.free_port(udp_too=False)
        self.statsd_port = nxtest.free_port(udp_too=True)
        self.nxb_port = nxtest.free_port(udp_too=False)
        self.base = "http://127.0.0.1:%d" % self.http_port
        cmd = [nxtest.binary("nexusd"),
               "--http", "127.0.0.1:%d" % self.http_port,
               "--statsd-udp", "127.0.0.1:%d" % self.statsd_port,
               "--statsd-tcp", "127.0.0.1:%d" % self.statsd_port,
               "--nxb-udp", "off", "--nxb-tcp", "127.0.0.1:%d" % self.nxb_port,
               "--data-dir", self.data_dir,
               "--shards", str(self.shards)] + self.extra
        self.runs += 1
        self.log = open(self.log_path, "ab")
        self.log_start = self.log.tell()
        self.log.write(("---- run %d: %s\n" % (self.runs, " ".join(cmd))).encode())
        self.log.flush()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        return self.await_health(self.run_log, self.kill9, 0.02)

    def run_log(self):
        """The output of the current (or last) run only."""
        with open(self.log_path, "rb") as f:
            f.seek(self.log_start)
            return f.read().decode("utf-8", "replace")

    def kill9(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.log.close()

    def stop(self, check=True):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError("nexusd did not stop on SIGTERM:\n" + self.run_log()[-4000:])
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        log = self.run_log()
        if check and (rc != 0 or "Sanitizer" in log):
            raise AssertionError("nexusd exited with %d:\n%s" % (rc, log[-6000:]))
        return rc

    def durability(self):
        return self.stats()["durability"]


def segments(data_dir, shard):
    d = os.path.join(data_dir, "shard-%d" % shard, "wal")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".log"))


def snapshots(data_dir, shard):
    d = os.path.join(data_dir, "shard-%d" % shard, "snap")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".nxs"))


def verify(data_dir):
    """Runs `nexus admin verify DIR`; returns (exit status, output)."""
    p = subprocess.run([nxtest.binary("nexus"), "admin", "verify", data_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")
