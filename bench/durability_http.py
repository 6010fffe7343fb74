#!/usr/bin/env python3
"""durability_http.py — HTTP ingest throughput and ack latency, ack=applied
vs ack=durable, and recovery time of a data dir with many streams, against
the real nexusd (python3 stdlib only).

  python3 bench/durability_http.py [--build build/release] [--threads 4]
        [--lines 1000] [--seconds 5] [--streams 1000000] [--shards 2]

Prints one line per figure: `name value unit`. Throughput: --threads
clients, each with one keep-alive connection, post --lines-line bodies back
to back (bodies built in advance). Recovery: --streams distinct counters
are ingested (ack=applied), then nexusd is killed with SIGKILL and
restarted twice: once with everything in the WAL (replay), once after
POST /v1/admin/snapshot (snapshot load); the time is what nexusd logs
("shard recovered ... ms=").
"""
import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Daemon:
    def __init__(self, build, data, shards, log):
        self.build, self.data, self.shards, self.log = build, data, shards, log

    def start(self):
        self.port = free_port()
        self.logf = open(self.log, "ab")
        self.pos = self.logf.tell()
        self.p = subprocess.Popen([os.path.join(self.build, "bin", "nexusd"), "--http",
                                   "127.0.0.1:%d" % self.port, "--statsd-udp", "off",
                                   "--statsd-tcp", "off", "--nxb-udp", "off", "--nxb-tcp", "off",
                                   "--data-dir", self.data, "--shards", str(self.shards)],
                                  stdout=self.logf, stderr=subprocess.STDOUT)
        t0 = time.time()
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/v1/health")
                if c.getresponse().status == 200:
                    return time.time() - t0
            except OSError:
                pass
            if self.p.poll() is not None:
                sys.exit("nexusd exited at start")
            time.sleep(0.01)

    def run_log(self):
        with open(self.log, "rb") as f:
            f.seek(self.pos)
            return f.read().decode("utf-8", "replace")

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        self.logf.close()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait()
        self.logf.close()

    def post(self, path, body=b""):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("POST", path, body=body)
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            sys.exit("%s: %d %r" % (path, r.status, data[:200]))
        return data


def throughput(d, mode, threads, lines, seconds):
    bodies = []
    for t in range(threads):
        bodies.append([("bench.t%d.m%d:%d|ms\n" % (t, i % 50, i % 1000)).encode()
                       for i in range(lines)])
    bodies = [b"".join(b) for b in bodies]
    lat = [[] for _ in range(threads)]
    stop = time.time() + seconds

    def run(t):
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
        while time.time() < stop:
            t0 = time.perf_counter()
            c.request("POST", "/v1/ingest?ack=" + mode, body=bodies[t])
            r = c.getresponse()
            r.read()
            if r.status != 200:
                sys.exit("ingest %d" % r.status)
            lat[t].append(time.perf_counter() - t0)

    ths = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    t0 = time.time()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    el = time.time() - t0
    all_lat = sorted(x for l in lat for x in l)
    n = len(all_lat)
    return (n * lines / el, n / el, all_lat[int(0.5 * (n - 1))] * 1e3,
            all_lat[int(0.99 * (n - 1))] * 1e3)


def recovered_ms(log):
    ms = [float(m) for m in re.findall(r'msg="shard recovered" shard=\d+ ms=([0-9.]+)', log)]
    return max(ms) if ms else float("nan"), sum(ms)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--streams", type=int, default=1000000)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--dir", default=None, help="parent of the data dir (default: /tmp)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="nxbench-dur-", dir=a.dir)
    try:
        d = Daemon(a.build, os.path.join(tmp, "data"), a.shards, os.path.join(tmp, "log"))
        d.start()
        res = {}
        for mode in ("applied", "durable", "applied", "durable"):  # twice, keep the best
            r = throughput(d, mode, a.threads, a.lines, a.seconds)
            if mode not in res or r[0] > res[mode][0]:
                res[mode] = r
        for mode in ("applied", "durable"):
            ev, req, p50, p99 = res[mode]
            print("http_ingest_%s_events %.0f events/s" % (mode, ev))
            print("http_ingest_%s_requests %.0f req/s" % (mode, req))
            print("http_ingest_%s_ack_p50 %.2f ms" % (mode, p50))
            print("http_ingest_%s_ack_p99 %.2f ms" % (mode, p99))
        print("durable_vs_applied %.2f ratio" % (res["durable"][0] / res["applied"][0]))
        d.stop()
        shutil.rmtree(d.data)

        # recovery of --streams streams
        d.start()
        per = 20000
        t0 = time.time()
        for base in range(0, a.streams, per):
            body = "".join("rec.s%d:1|c\n" % i for i in range(base, min(base + per, a.streams)))
            d.post("/v1/ingest?ack=applied", body.encode())
        print("recovery_ingest %.1f s" % (time.time() - t0))
        d.kill9()
        wall = d.start()
        mx, tot = recovered_ms(d.run_log())
        print("recovery_wal_replay_%d_streams %.0f ms (slowest shard; %.1f s until healthy)"
              % (a.streams, mx, wall))
        t0 = time.time()
        d.post("/v1/admin/snapshot")
        print("snapshot_%d_streams %.0f ms" % (a.streams, (time.time() - t0) * 1e3))
        d.kill9()
        wall = d.start()
        mx, tot = recovered_ms(d.run_log())
        print("recovery_snapshot_%d_streams %.0f ms (slowest shard; %.1f s until healthy)"
              % (a.streams, mx, wall))
        for line in d.run_log().splitlines():
            if "recovered in" in line:
                print("#", line.split("detail=")[-1])
        d.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
