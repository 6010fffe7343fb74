"""nxtest.py — shared fixtures for nexusd integration tests (python3 stdlib only).

Nexusd starts the REAL daemon binary ($NX_BUILD/bin/nexusd, default
build/release) on free loopback ports with a temporary data directory,
waits for /v1/health, and stops it by PID with SIGTERM. stop() returns the
exit status and fails loudly if the daemon did not exit cleanly (under ASan a
leak or memory error makes the exit status non-zero and is reported with the
daemon's log).
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("NX_ROOT") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("NX_BUILD") or os.path.join(ROOT, "build", "release")
SCALE = max(1, int(os.environ.get("NX_TEST_SCALE", "1") or 1))


def binary(name):
    path = os.path.join(BUILD, "bin", name)
    if not os.access(path, os.X_OK):
        raise RuntimeError("%s not built (set NX_BUILD or run make)" % path)
    return path


_HANDED_OUT = set()


def free_port(udp_too=True):
    """A port free for TCP (and UDP when udp_too) on 127.0.0.1, and never one
    this process handed out before: the probe socket is closed on return, so
    the kernel may offer the same port again, and two nexusd listeners on one
    port would split its traffic (nexusd now refuses that at start)."""
    for _ in range(200):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        ok = port not in _HANDED_OUT
        if udp_too:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            u.close()
        t.close()
        if ok:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port")


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def exact_quantile(sorted_values, q):
    """The order statistic nexusd's DDSketch estimates: rank floor(q*(n-1))."""
    n = len(sorted_values)
    return sorted_values[int(q * (n - 1))]


class HTTPError(Exception):
    pass


class Nexusd:
    def __init__(self, shards=2, unix=False, args=(), startup_timeout=30.0, exe=None):
        self.exe = exe  # a nexusd other than $NX_BUILD's (e.g. the release one)
        self.shards = shards
        self.unix = unix
        self.extra = list(args)
        self.startup_timeout = startup_timeout
        self.proc = None
        self.tmp = None

    # ---- lifecycle -----------------------------------------------------
    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="nxtest-")
        self.http_port = free_port(udp_too=False)
        self.statsd_port = free_port(udp_too=True)
        self.unix_path = os.path.join(self.tmp, "statsd.sock") if self.unix else None
        self.base = "http://127.0.0.1:%d" % self.http_port
        cmd = [self.exe or binary("nexusd"),
               "--http", "127.0.0.1:%d" % self.http_port,
               "--statsd-udp", "127.0.0.1:%d" % self.statsd_port,
               "--statsd-tcp", "127.0.0.1:%d" % self.statsd_port,
               "--nxb-udp", "off", "--nxb-tcp", "off",
               "--data-dir", os.path.join(self.tmp, "data"),
               "--shards", str(self.shards)]
        if self.unix_path:
            cmd += ["--statsd-unix", self.unix_path]
        cmd += self.extra
        self.log_path = os.path.join(self.tmp, "nexusd.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        return self.await_health(self.read_log, self.stop, 0.05)

    def await_health(self, log, give_up, poll):
        """Waits until /v1/health says ok (returns self); if the daemon exits
        or the startup timeout passes, calls give_up() and raises with log()."""
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nexusd exited at start (%d):\n%s" % (self.proc.returncode, log()))
            try:
                st, body = self.get("/v1/health")
                if st == 200 and body.get("status") == "ok":
                    return self
            except OSError:
                pass
            time.sleep(poll)
        give_up()
        raise RuntimeError("nexusd did not become healthy:\n" + log())

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, check=True):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("nexusd did not stop on SIGTERM:\n" + self.read_log()[-4000:])
        rc = self.proc.returncode
        log = self.read_log()
        self.log.close()
        self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)
        if check and (rc != 0 or "Sanitizer" in log):
            raise AssertionError("nexusd exited with %d:\n%s" % (rc, log[-6000:]))
        return rc

    # ---- HTTP ------------------------------------------------------------
    def url(self, path, **params):
        params = {k: v for k, v in params.items() if v is not None}
        return self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")

    def request(self, method, path, body=None, headers=None, raw=False, **params):
        req = urllib.request.Request(self.url(path, **params), data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                data = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            data = e.read()
            status = e.code
        if raw:
            return status, data
        return status, json.loads(data.decode("utf-8")) if data else None

    def get(self, path, **params):
        return self.request("GET", path, **params)

    def post(self, path, body, content_type="text/plain", **params):
        if isinstance(body, str):
            body = body.encode("utf-8")
        return self.request("POST", path, body=body, headers={"Content-Type": content_type}, **params)

    def ingest(self, lines, tenant=None):
        if isinstance(lines, (list, tuple)):
            lines = "\n".join(lines) + "\n"
        st, body = self.post("/v1/ingest", lines, tenant=tenant)
        if st != 200:
            raise HTTPError("ingest: %d %r" % (st, body))
        return body

    def summary(self, metric, tags=None, window="all", q=None, tenant=None, expect=200):
        st, body = self.get("/v1/summary", metric=metric, tags=tags, window=window, q=q, tenant=tenant)
        if st != expect:
            raise HTTPError("summary %s: %d %r" % (metric, st, body))
        return body

    def stats(self):
        st, body = self.get("/v1/stats")
        assert st == 200, body
        return body

    def totals(self):
        return self.stats()["totals"]

    def wait_lines(self, n, timeout=20.0):
        """Waits until the daemon has seen at least n StatsD lines in total."""
        return wait_for(lambda: self.totals()["lines"] >= n and self.totals(), timeout,
                        what="%d lines" % n)

    # ---- StatsD senders --------------------------------------------------
    def send_udp(self, payloads):
        if isinstance(payloads, (bytes, str)):
            payloads = [payloads]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for p in payloads:
            s.sendto(p.encode() if isinstance(p, str) else p, ("127.0.0.1", self.statsd_port))
        s.close()

    def send_tcp(self, chunks, pause=0.0):
        if isinstance(chunks, (bytes, str)):
            chunks = [chunks]
        s = socket.create_connection(("127.0.0.1", self.statsd_port), timeout=30)
        for c in chunks:
            s.sendall(c.encode() if isinstance(c, str) else c)
            if pause:
                time.sleep(pause)
        s.close()

    def send_unix(self, payloads):
        if isinstance(payloads, (bytes, str)):
            payloads = [payloads]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for p in payloads:
            s.sendto(p.encode() if isinstance(p, str) else p, self.unix_path)
        s.close()


def batches(lines, max_bytes=1400):
    """Packs lines into datagrams of at most max_bytes (as StatsD clients do)."""
    out, cur, size = [], [], 0
    for l in lines:
        if cur and size + len(l) + 1 > max_bytes:
            out.append("\n".join(cur))
            cur, size = [], 0
        cur.append(l)
        size += len(l) + 1
    if cur:
        out.append("\n".join(cur))
    return out


def rng(seed):
    return random.Random(seed)
