"""The benchmark tools count right: nx-udp-sink (the machine's ceiling in
bench/compare and bench/ingest.sh SINK=1) counts StatsD lines as a server
splits them, and agrees exactly with what nx-loadgen says it sent.

A ceiling that miscounts would misstate every ratio printed against it.
"""
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from nxtest import binary, free_port, wait_for


class UdpSink:
    def __init__(self, threads=2):
        self.tmp = tempfile.mkdtemp(prefix="nx-sink-")
        self.counts = os.path.join(self.tmp, "counts")
        self.port = free_port()
        self.p = subprocess.Popen(
            [binary("nx-udp-sink"), "--port", str(self.port), "--threads", str(threads),
             "--count-file", self.counts],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: os.path.exists(self.counts) and os.path.getsize(self.counts) == 8 * threads,
                 what="nx-udp-sink count file")

    def lines(self):
        with open(self.counts, "rb") as f:
            b = f.read()
        return sum(struct.unpack("<%dQ" % (len(b) // 8), b))

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(timeout=10)
        self.p.stderr.close()
        return rc


class TestUdpSink(unittest.TestCase):
    def test_counts_lines_as_a_statsd_server_splits_them(self):
        sink = UdpSink()
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            dgrams = [
                (b"a:1|c", 1),                      # no trailing newline
                (b"a:1|c\nb:2|ms\n", 2),            # trailing newline
                (b"a:1|c\n\n\nb:2|g", 2),           # empty lines are not lines
                (b"\n", 0),
                (b"x" * 1000 + b"\n" + b"y:1|c", 2),
            ]
            want = 0
            for d, n in dgrams:
                s.sendto(d, ("127.0.0.1", sink.port))
                want += n
            s.close()
            wait_for(lambda: sink.lines() == want, timeout=5, what="%d lines counted" % want)
            time.sleep(0.2)
            self.assertEqual(sink.lines(), want)
        finally:
            self.assertEqual(sink.stop(), 0)

    def test_agrees_with_loadgen(self):
        sink = UdpSink()
        try:
            out = subprocess.run(
                [binary("nx-loadgen"), "--port", str(sink.port), "--lines", "20000",
                 "--rate", "100000", "--tenants", "100", "--metrics", "10"],
                capture_output=True, text=True, timeout=60, check=True).stdout
            sent = int(next(l.split()[1] for l in out.splitlines() if l.startswith("lines_sent")))
            self.assertEqual(sent, 20000)
            wait_for(lambda: sink.lines() >= sent, timeout=5, what="every line counted")
            time.sleep(0.2)
            self.assertEqual(sink.lines(), sent)
        finally:
            self.assertEqual(sink.stop(), 0)

    def test_bad_arguments_are_refused(self):
        r = subprocess.run([binary("nx-udp-sink"), "--port", "0"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)


if __name__ == "__main__":
    unittest.main()
