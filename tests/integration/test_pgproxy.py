"""Self-tests of the PostgreSQL fault proxy (tests/integration/pgproxy.py) and
of its wiring into the harness (Stack(pg_proxy=True)): normal traffic passes
(psql's simple protocol, and a tiny wire-protocol client for the extended
one), each fault does what it says (the ambiguous commit leaves the row
committed while the client sees a lost connection), sfconnectd works through
the proxy, and the grant invariant helper tells a stored grant from a lost
one. Nothing here asserts how the daemon handles a fault.

One stack for the module; every test uses its own table.
"""

import os
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402
from pgproxy import is_commit  # noqa: E402

STACK = None
PROXY = None
LOST = ("server closed the connection unexpectedly", "connection to server was lost",
        "no connection to the server")


def setUpModule():
    global STACK, PROXY
    STACK = Stack(workers=2, pg_proxy=True)
    STACK.start()
    PROXY = STACK.pg_proxy


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def psql_proxy(script, timeout=30):
    """Runs a psql script (one statement a line: psql sends each on its
    own) through the proxy; answers the CompletedProcess."""
    argv = [STACK._pg("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
            "-h", PROXY.host, "-p", str(PROXY.port), "-U", "app", "-d", "app"]
    return subprocess.run(argv, input=script, capture_output=True, text=True,
                          timeout=timeout)


def direct(sql):
    return STACK.psql(sql)


class PgError(Exception):
    pass


class MiniPg:
    """Just enough of a libpq for the extended protocol (trust auth)."""

    def __init__(self, host, port, user="app", dbname="app"):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(os.path.join(host, f".s.PGSQL.{port}"))
        self.buf = b""
        self.notifications = []      # payloads of the NotificationResponses read
        params = b"user\0" + user.encode() + b"\0database\0" + dbname.encode() + b"\0\0"
        body = struct.pack("!I", 196608) + params
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)
        self._until_ready()

    def close(self):
        try:
            self.sock.sendall(b"X\0\0\0\4")
        except OSError:
            pass
        self.sock.close()

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection unexpectedly")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _message(self):
        head = self._read(5)
        return head[:1], self._read(struct.unpack("!I", head[1:])[0] - 4)

    @staticmethod
    def _msg(kind, body):
        return kind + struct.pack("!I", len(body) + 4) + body

    def _until_ready(self):
        rows, tags, error = [], [], None
        while True:
            kind, body = self._message()
            if kind == b"R" and struct.unpack("!I", body[:4])[0] != 0:
                raise PgError("authentication required")
            if kind == b"D":
                n = struct.unpack("!H", body[:2])[0]
                pos, row = 2, []
                for _ in range(n):
                    size = struct.unpack("!i", body[pos:pos + 4])[0]
                    pos += 4
                    row.append(None if size < 0 else body[pos:pos + size].decode())
                    pos += max(size, 0)
                rows.append(row)
            elif kind == b"C":
                tags.append(body[:-1].decode())
            elif kind == b"E":
                error = body.decode(errors="replace")
            elif kind == b"A":
                channel_end = body.index(b"\0", 4)
                self.notifications.append(body[channel_end + 1:-1].decode())
            elif kind == b"Z":
                if error:
                    raise PgError(error)
                return rows, tags

    def simple(self, sql):
        self.sock.sendall(self._msg(b"Q", sql.encode() + b"\0"))
        return self._until_ready()

    def extended(self, sql, params=(), name=""):
        """Parse (named `name`), Bind, Execute, Sync; answers (rows, tags)."""
        p = [b"\xff\xff\xff\xff" if v is None
             else struct.pack("!i", len(str(v).encode())) + str(v).encode() for v in params]
        out = self._msg(b"P", name.encode() + b"\0" + sql.encode() + b"\0\0\0")
        out += self._msg(b"B", b"\0" + name.encode() + b"\0" + b"\0\0"
                         + struct.pack("!H", len(p)) + b"".join(p) + b"\0\0")
        out += self._msg(b"E", b"\0\0\0\0\0") + self._msg(b"S", b"")
        self.sock.sendall(out)
        return self._until_ready()


def mini():
    return MiniPg(PROXY.host, PROXY.port)


class ProxyTest(unittest.TestCase):

    def setUp(self):
        PROXY.clear()
        self.table = "t_" + self._testMethodName[5:][:40]
        direct(f"DROP TABLE IF EXISTS {self.table}; CREATE TABLE {self.table} (v int)")

    def tearDown(self):
        PROXY.clear()

    def rows(self):
        return sorted(int(r[0]) for r in direct(f"SELECT v FROM {self.table}"))

    def assertLost(self, proc):
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        self.assertTrue(any(s in proc.stderr for s in LOST), proc.stderr)

    # ------------------------------------------------------------ pass-through

    def test_is_commit(self):
        for sql in ("COMMIT", "commit;", " END ", "BEGIN; UPDATE x SET y = 1; COMMIT",
                    "COMMIT WORK"):
            self.assertTrue(is_commit(sql), sql)
        for sql in ("ROLLBACK", "SELECT 'COMMIT'", "BEGIN", "COMMIT PREPARED 'x'"):
            self.assertFalse(is_commit(sql), sql)

    def test_simple_queries_pass(self):
        before = PROXY.stats()
        p = psql_proxy(f"INSERT INTO {self.table} VALUES (1);\n"
                       f"BEGIN;\nINSERT INTO {self.table} VALUES (2);\nCOMMIT;\n"
                       f"SELECT sum(v) FROM {self.table};\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "3")
        self.assertEqual(self.rows(), [1, 2])
        after = PROXY.stats()
        self.assertEqual(after["connections"] - before["connections"], 1)
        self.assertGreaterEqual(after["commits"] - before["commits"], 1)
        self.assertGreaterEqual(after["commits_ok"] - before["commits_ok"], 1)
        self.assertEqual(after["faults_fired"], before["faults_fired"])
        self.assertEqual(STACK.psql("SELECT 7", via_proxy=True), [["7"]])

    def test_extended_protocol_passes(self):
        c = mini()
        try:
            rows, tags = c.extended("SELECT $1::int + 1, $2::text IS NULL", [41, None])
            self.assertEqual(rows, [["42", "t"]])
            c.simple("BEGIN")
            c.extended(f"INSERT INTO {self.table} VALUES ($1)", [5], name="ins")
            _, tags = c.extended("COMMIT", name="c")
            self.assertEqual(tags, ["COMMIT"])
            with self.assertRaises(PgError):
                c.extended("SELECT nonsense_column")
            self.assertEqual(c.simple("SELECT 1")[0], [["1"]])
        finally:
            c.close()
        self.assertEqual(self.rows(), [5])

    # ------------------------------------------------------------ drop_after_commit

    def test_drop_after_commit_simple_query(self):
        fault = PROXY.drop_after_commit()
        p = psql_proxy(f"BEGIN;\nINSERT INTO {self.table} VALUES (1);\nCOMMIT;\n"
                       f"INSERT INTO {self.table} VALUES (2);\n")
        self.assertLost(p)
        self.assertTrue(fault.wait(5))
        self.assertEqual(fault.fired, 1)
        self.assertFalse(fault.armed)
        self.assertEqual(self.rows(), [1], "the COMMIT happened; nothing after it")
        self.assertEqual(PROXY.stats()["commit_tags_withheld"][-1:], ["COMMIT"])
        self.assertEqual(psql_proxy("SELECT 1;\n").returncode, 0, "fired once only")

    def test_drop_after_commit_extended_protocol(self):
        fault = PROXY.drop_after_commit()
        c = mini()
        try:
            c.simple("BEGIN")
            c.extended(f"INSERT INTO {self.table} VALUES ($1)", [3], name="ins")
            with self.assertRaises(ConnectionError):
                c.extended("COMMIT", name="commit")
        finally:
            c.close()
        self.assertEqual(fault.fired, 1)
        self.assertEqual(self.rows(), [3])

    def test_drop_after_commit_after_match_and_skip(self):
        other = self.table + "_other"
        direct(f"DROP TABLE IF EXISTS {other}; CREATE TABLE {other} (v int)")
        fault = PROXY.drop_after_commit(after=other, skip=1)
        t, o = self.table, other
        self.assertEqual(psql_proxy(f"BEGIN;\nINSERT INTO {t} VALUES (1);\nCOMMIT;\n"
                                    f"BEGIN;\nINSERT INTO {o} VALUES (1);\nCOMMIT;\n"
                                    ).returncode, 0, "no match, then skipped")
        p = psql_proxy(f"BEGIN;\nINSERT INTO {t} VALUES (2);\nCOMMIT;\n"
                       f"BEGIN;\nUPDATE {o} SET v = 2;\nCOMMIT;\n"
                       f"INSERT INTO {t} VALUES (3);\n")
        self.assertLost(p)
        self.assertEqual(fault.fired, 1)
        self.assertEqual(self.rows(), [1, 2])
        self.assertEqual(direct(f"SELECT v FROM {o}"), [["2"]])

    def test_drop_after_commit_of_failed_transaction(self):
        fault = PROXY.drop_after_commit(times=None)
        p = psql_proxy(f"\\set ON_ERROR_STOP 0\nBEGIN;\nINSERT INTO {self.table} VALUES (1);\n"
                       "SELECT 1/0;\nCOMMIT;\n")
        self.assertLost(p)
        self.assertTrue(fault.armed, "times=None stays armed")
        self.assertEqual(PROXY.stats()["commit_tags_withheld"][-1:], ["ROLLBACK"])
        self.assertEqual(self.rows(), [])
        fault.cancel()
        self.assertEqual(psql_proxy("BEGIN;\nCOMMIT;\n").returncode, 0)

    def test_drop_reply_autocommit(self):
        fault = PROXY.drop_reply(f"insert into {self.table}")
        p = psql_proxy(f"SELECT 1;\nINSERT INTO {self.table} VALUES (9);\n")
        self.assertLost(p)
        self.assertEqual(fault.fired, 1)
        self.assertEqual(self.rows(), [9])

    # ------------------------------------------------------------ drop_in_transaction

    def test_drop_in_transaction_after_statements(self):
        fault = PROXY.drop_in_transaction(after_statements=1)
        c = mini()
        try:
            c.simple(f"INSERT INTO {self.table} VALUES (1)")    # autocommit: not a block
            c.simple("BEGIN")
            c.extended(f"INSERT INTO {self.table} VALUES ($1)", [2])
            with self.assertRaises(ConnectionError):
                c.extended(f"INSERT INTO {self.table} VALUES ($1)", [3])
        finally:
            c.close()
        self.assertEqual(fault.fired, 1)
        time.sleep(0.2)
        self.assertEqual(self.rows(), [1], "the open transaction was rolled back")

    def test_drop_in_transaction_swallows_commit(self):
        fault = PROXY.drop_in_transaction(match=lambda s: is_commit(s.sql))
        p = psql_proxy(f"BEGIN;\nINSERT INTO {self.table} VALUES (1);\n"
                       f"INSERT INTO {self.table} VALUES (2);\nCOMMIT;\n")
        self.assertLost(p)
        self.assertEqual(fault.fired, 1)
        time.sleep(0.2)
        self.assertEqual(self.rows(), [])

    # ------------------------------------------------------------ refuse / stall / pause

    def test_refuse(self):
        before = PROXY.stats()["refused"]
        fault = PROXY.refuse(times=2)
        for _ in range(2):
            p = psql_proxy("SELECT 1;\n")
            self.assertNotEqual(p.returncode, 0)
        self.assertEqual(fault.fired, 2)
        self.assertEqual(PROXY.stats()["refused"] - before, 2)
        p = psql_proxy("SELECT 1;\n")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_stall(self):
        fault = PROXY.stall(1.0, match="stall-me")
        t0 = time.monotonic()
        p = psql_proxy("SELECT 1;\nSELECT 'stall-me';\nSELECT 'stall-me';\n")
        elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split(), ["1", "stall-me", "stall-me"])
        self.assertGreaterEqual(elapsed, 1.0)
        self.assertLess(elapsed, 1.9, "times=1: the second one is not held")
        self.assertEqual(fault.fired, 1)

    def test_pause_and_drop_connections(self):
        c = mini()
        try:
            PROXY.pause()
            c.sock.settimeout(0.5)
            with self.assertRaises(socket.timeout):
                c.simple("SELECT 1")
            PROXY.resume()
            c.sock.settimeout(10)
            self.assertEqual(c._until_ready()[0], [["1"]])
            self.assertGreaterEqual(PROXY.drop_connections(), 1)
            with self.assertRaises((ConnectionError, OSError)):
                c.simple("SELECT 1")
        finally:
            PROXY.resume()
            c.close()


    def test_delay_notifications(self):
        listener, other = mini(), mini()
        try:
            listener.simple("LISTEN proxy_test")
            PROXY.delay_notifications(1.0)
            listener.simple("NOTIFY proxy_test, 'own'")
            self.assertEqual(listener.notifications, ["own"], "its own comes in place")
            t0 = time.monotonic()
            other.simple("NOTIFY proxy_test, 'foreign'")
            listener.simple("SELECT 1")
            self.assertEqual(listener.notifications, ["own"], "another's is late")
            time.sleep(max(0.0, 1.3 - (time.monotonic() - t0)))
            listener.simple("SELECT 1")
            self.assertEqual(listener.notifications, ["own", "foreign"])
            PROXY.clear()
            other.simple("NOTIFY proxy_test, 'again'")
            time.sleep(0.2)
            listener.simple("SELECT 1")
            self.assertEqual(listener.notifications[-1], "again")
        finally:
            listener.close()
            other.close()


class HarnessTest(unittest.TestCase):
    """sfconnectd through the proxy; the grant invariant helper."""

    def setUp(self):
        PROXY.clear()

    def tearDown(self):
        PROXY.clear()

    def new_org(self, slug):
        STACK.create_org(slug)
        sf = STACK.fakesf("POST", "config", {"org_id": "new"})["org_id"]
        return STACK.create_key(slug, "admin", f"{slug}-admin"), sf

    def test_daemon_goes_through_proxy_admin_and_psql_direct(self):
        self.assertIn(PROXY.host, STACK.database_url)
        self.assertNotIn(PROXY.host, STACK.direct_database_url)
        with open(STACK.daemon.config_path) as f:
            self.assertIn(f"database_url = {STACK.database_url}\n", f.read())
        before = PROXY.stats()
        key, _ = self.new_org("px-daemon")          # sfconnect-admin: direct
        self.assertEqual(PROXY.stats()["connections"], before["connections"])
        status, _, _ = STACK.connect_org("px-daemon", key)
        self.assertIn(status, (302, 303))
        after = PROXY.stats()
        self.assertGreater(after["requests"], before["requests"])
        self.assertGreater(after["commits"], before["commits"])

    def test_ambiguous_commit_fires_on_the_daemon(self):
        key, _ = self.new_org("px-ambiguous")
        fault = PROXY.drop_after_commit(after="refresh_token_enc")
        status, headers, _ = STACK.connect_org("px-ambiguous", key)   # whatever it answers
        self.assertTrue(fault.wait(10), PROXY.events[-20:])
        if os.environ.get("SFC_VERBOSE"):
            print(f"ambiguous commit on connect: {status} {headers.get('location')}",
                  file=sys.stderr)
        self.assertEqual(PROXY.stats()["commit_tags_withheld"][-1:], ["COMMIT"])
        PROXY.clear()
        STACK.wait_healthy()

    def test_grant_invariant_helper(self):
        key, sf = self.new_org("px-invariant")
        status, _, body = STACK.connect_org("px-invariant", key)
        self.assertIn(status, (302, 303), body)
        added = not STACK._has_column("integrations", "refresh_token_fp")
        if not added:
            self.assertEqual(STACK.grant_invariant_problems(sf_org_id=sf), [])
            return
        self.assertIsNone(STACK.grant_invariant_problems(sf_org_id=sf))
        with self.assertRaises(unittest.SkipTest):
            STACK.assert_grant_invariant(sf_org_id=sf)
        # Play the future column: fingerprints written by the test itself.
        import hashlib
        live = [g["refresh_token"] for g in STACK.fakesf("GET", "grants")
                if g["org_id"] == sf and not g["revoked"]]
        self.assertEqual(len(live), 1)
        fp = hashlib.sha256(live[0].encode()).hexdigest()[:16]
        STACK.psql("ALTER TABLE integrations ADD COLUMN refresh_token_fp text")
        try:
            q = f"UPDATE integrations SET refresh_token_fp = '{{}}' WHERE sf_org_id = '{sf}'"
            STACK.psql(q.format(fp))
            self.assertEqual(STACK.grant_invariant_problems(sf_org_id=sf), [])
            STACK.assert_grant_invariant(sf_org_id=sf)
            STACK.psql(q.format("00" * 8))
            problems = STACK.grant_invariant_problems(sf_org_id=sf)
            self.assertEqual(len(problems), 2, problems)
            self.assertIn("never issued", problems[0])
            self.assertIn("no row stores", problems[1])
            STACK.psql(q.format(fp))
            STACK.fakesf("POST", "revoke_refresh", {"org_id": sf})
            problems = STACK.grant_invariant_problems(sf_org_id=sf)
            self.assertEqual(len(problems), 1, problems)
            self.assertIn("revoked", problems[0])
        finally:
            STACK.psql("ALTER TABLE integrations DROP COLUMN IF EXISTS refresh_token_fp")


if __name__ == "__main__":
    unittest.main()
