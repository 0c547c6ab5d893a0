"""The FastCGI socket: sfconnectd listening on TCP (127.0.0.1:PORT, nginx in
front) talks only to the peers of fastcgi_allowed_peers and closes the others
before reading a byte; parameters whose lengths libfcgi 2.4.2 does not bound
are refused before libfcgi sees them (the worker lives on); a SIGTERM while
a request's parameters are still arriving lets that request finish; a
non-loopback bind without an explicit allow-list does not start."""

import os
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, free_port  # noqa: E402

STACK = None
BEGIN, PARAMS, STDIN, STDOUT, END = 1, 4, 5, 6, 3


def setUpModule():
    global STACK
    STACK = Stack(workers=2, fastcgi_tcp=True,
                  config={"fastcgi_allowed_peers": "127.0.0.1/32"})
    STACK.start()


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def record(rtype, content=b"", req_id=1):
    return struct.pack(">BBHHBB", 1, rtype, req_id, len(content), 0, 0) + content


def pair(name, value):
    def length(n):
        return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
    name, value = name.encode(), value.encode()
    return length(len(name)) + length(len(value)) + name + value


def begin():
    return record(BEGIN, struct.pack(">HB5x", 1, 0))   # responder, no keep-conn


def params(**kv):
    return b"".join(pair(k, v) for k, v in kv.items())


def request_bytes(**kv):
    return begin() + record(PARAMS, params(**kv)) + record(PARAMS) + record(STDIN)


FORGED = dict(REQUEST_METHOD="GET", REQUEST_URI="/metrics", SCRIPT_NAME="/metrics",
              QUERY_STRING="", REMOTE_ADDR="203.0.113.9", SERVER_PROTOCOL="HTTP/1.1")
HEALTH = dict(REQUEST_METHOD="GET", REQUEST_URI="/healthz", SCRIPT_NAME="/healthz",
              QUERY_STRING="", REMOTE_ADDR="127.0.0.1", SERVER_PROTOCOL="HTTP/1.1")


def fcgi_connect(source="127.0.0.1"):
    host, _, port = STACK.fastcgi_addr.rpartition(":")
    s = socket.create_connection((host, int(port)), timeout=15, source_address=(source, 0))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s):
    """Everything the daemon sends until it closes (a reset counts as closed)."""
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except ConnectionResetError:
        pass
    return out


def stdout_of(raw):
    """The FCGI_STDOUT content of an answer, and whether it had FCGI_END_REQUEST."""
    out, ended = b"", False
    while len(raw) >= 8:
        _, rtype, _, clen, plen, _ = struct.unpack(">BBHHBB", raw[:8])
        if rtype == STDOUT:
            out += raw[8:8 + clen]
        elif rtype == END:
            ended = True
        raw = raw[8 + clen + plen:]
    return out, ended


class FastCGIPeers(unittest.TestCase):

    def test_allowed_peer_is_answered(self):
        with fcgi_connect("127.0.0.1") as s:
            s.sendall(request_bytes(**HEALTH))
            out, ended = stdout_of(read_all(s))
        self.assertTrue(ended)
        self.assertTrue(out.startswith(b"Status: 200"), out[:80])

    def test_forged_params_from_another_peer_are_not_read(self):
        before = STACK.daemon.worker_pids()
        with fcgi_connect("127.0.0.2") as s:
            try:
                s.sendall(request_bytes(**FORGED))
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertEqual(read_all(s), b"", "a peer outside the list got an answer")
        log = STACK.daemon_log()
        self.assertIn("fastcgi_peer_refused", log)
        self.assertIn("127.0.0.2", log)
        self.assertNotIn("203.0.113.9", log)
        self.assertEqual(STACK.daemon.worker_pids(), before)
        self.assertEqual(STACK.request("GET", "/healthz")[0], 200)

    def test_huge_param_lengths_do_not_abort_a_worker(self):
        before = STACK.daemon.worker_pids()
        # A PARAMS record whose one pair claims 0x7ffffffe bytes of name and of value.
        attack = begin() + record(PARAMS, struct.pack(">II", 0xfffffffe, 0xfffffffe))
        for _ in range(3):
            with fcgi_connect("127.0.0.1") as s:
                s.sendall(attack)
                self.assertEqual(read_all(s), b"")
        time.sleep(0.3)
        self.assertEqual(STACK.daemon.worker_pids(), before, "a worker died")
        self.assertNotIn("worker_exited", STACK.daemon_log())
        self.assertIn("fastcgi_bad_request", STACK.daemon_log())
        self.assertEqual(STACK.request("GET", "/healthz")[0], 200)

    def test_oversized_params_are_refused(self):
        # 70,000 bytes of parameters in well-formed records: above the bound.
        big = params(HTTP_X_FILLER="x" * 70000)
        body = b"".join(record(PARAMS, big[i:i + 65535]) for i in range(0, len(big), 65535))
        with fcgi_connect("127.0.0.1") as s:
            try:
                s.sendall(begin() + body + record(PARAMS) + record(STDIN))
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertEqual(read_all(s), b"")
        self.assertEqual(STACK.request("GET", "/healthz")[0], 200)


class FastCGIStop(unittest.TestCase):
    """Last: it stops the daemon (and starts it again)."""

    def test_sigterm_while_params_arrive_finishes_the_request(self):
        data = request_bytes(**HEALTH)
        cut = len(begin()) + 8 + 10          # in the middle of the first pair
        with fcgi_connect("127.0.0.1") as s:
            s.sendall(data[:cut])
            time.sleep(0.3)                  # a worker is now reading them
            STACK.daemon.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)                  # the workers have been told to stop
            s.sendall(data[cut:])
            out, ended = stdout_of(read_all(s))
        self.assertTrue(ended, "the request was dropped")
        self.assertTrue(out.startswith(b"Status: 200"), out[:80])
        code = STACK.daemon.proc.wait(20)
        self.assertEqual(code, 0)
        STACK.daemon.start()
        STACK.wait_healthy()


class FastCGIStartup(unittest.TestCase):

    def run_daemon(self, listen, peers=None):
        values = STACK.config_values("/nonexistent")
        values["listen"] = listen
        if peers is not None:
            values["fastcgi_allowed_peers"] = peers
        else:
            values.pop("fastcgi_allowed_peers", None)
        path = STACK.path("startup-test.conf")
        STACK._write_config_file(path, values)
        p = subprocess.Popen([STACK.bin("sfconnectd"), "-c", path], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            out, _ = p.communicate(timeout=3)
            return p.returncode, out.decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            out, _ = p.communicate(timeout=30)
            return None, out.decode(errors="replace")

    def test_non_loopback_bind_needs_an_allow_list(self):
        code, out = self.run_daemon(f"0.0.0.0:{free_port()}")
        self.assertEqual(code, 1, out)
        self.assertIn("fastcgi_allowed_peers", out)

    def test_bad_allow_list_is_refused(self):
        code, out = self.run_daemon(f"127.0.0.1:{free_port()}", peers="10.0.0.0/33")
        self.assertEqual(code, 1, out)
        self.assertIn("10.0.0.0/33", out)

    def test_explicit_allow_list_starts(self):
        code, out = self.run_daemon(f"0.0.0.0:{free_port()}", peers="127.0.0.1 ::1")
        self.assertIsNone(code, out)    # still running after 3 s: it started


if __name__ == "__main__":
    unittest.main()
