"""The worker cache (issue 13, step 3): status, banners and fresh-token
reads are answered from each worker's cache, which PostgreSQL keeps true with NOTIFY
(sql/010). A change made anywhere (the API of either host, sfconnect-admin,
plain SQL) must be seen by every worker of every host within 100 ms: each
test warms the caches of all workers of two hosts, makes the change, then
hammers from many connections and finds no stale answer in any request that
began more than 100 ms after the change returned.

The statement counts of cached reads are in test_roundtrips.py; losing the
database connection (which loses notifications) is tested there too.
"""

import concurrent.futures
import hashlib
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

STACK = None
SF = "/api/v1/orgs/{}/integrations/salesforce"
WORKERS = 3
THREADS = 12
WINDOW_S = 0.1


def setUpModule():
    global STACK
    STACK = Stack(workers=WORKERS)
    STACK.start()
    STACK.start_second_daemon()


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def key_id(key):
    digest = hashlib.sha256(key.encode()).hexdigest()
    return STACK.psql(f"SELECT id FROM api_keys WHERE key_hash = '{digest}'")[0][0]


def hammer(path, key, seconds, ports=None, stack=None):
    """GETs path from THREADS connections on both hosts (or ports) for
    seconds: answers [(start time, status, body)]."""
    stack = stack or STACK
    ports = ports or (stack.port, stack.port2)
    out = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(i):
        port = ports[i % len(ports)]
        mine = []
        while time.monotonic() < stop:
            t0 = time.monotonic()
            status, _, body = stack.request("GET", path, key=key, port=port)
            mine.append((t0, status, body))
        with lock:
            out.extend(mine)

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(run, range(THREADS)))
    return out


def warm(path, key, want, ports=None, stack=None):
    """Every worker of both hosts (or ports) has read path: many requests
    from many connections, all answering want."""
    for status, body in ((s, b) for _, s, b in hammer(path, key, 0.6, ports, stack)):
        assert status == want, (status, body)


class CacheTest(unittest.TestCase):
    n = 0

    @classmethod
    def new_org(cls, connect=True):
        CacheTest.n += 1
        slug = f"cache-{CacheTest.n}"
        STACK.create_org(slug, "Cache")
        admin = STACK.create_key(slug, "admin", "cache admin")
        if connect:
            status, _, body = STACK.connect_org(slug, admin, accept_json=True)
            assert status == 200, body
        return slug, admin

    def assert_seen_after(self, t_change, answers, stale):
        """No answer of a request begun WINDOW_S after t_change is stale;
        and answers were made after the window at all."""
        late = [(t, s, b) for t, s, b in answers if t > t_change + WINDOW_S]
        self.assertGreater(len(late), 50, "too few requests after the window")
        bad = [(round(t - t_change, 3), s) for t, s, b in late if stale(s, b)]
        self.assertEqual(bad, [], "stale answers (seconds after the change, status)")

    def assert_key_refused_after(self, change, path=SF, role="viewer"):
        """A key of a new org (or an operator key) read path into every
        cache; change(key id) revokes or deletes it: 401 everywhere after."""
        slug, admin = self.new_org()
        key = STACK.create_key(None if role == "operator" else slug, role)
        url = path.format(slug)
        warm(url, key, 200)
        change(key_id(key))
        t = time.monotonic()
        self.assert_seen_after(t, hammer(url, key, 1.0), lambda s, b: s != 401)

    def test_revoked_key_api(self):
        def revoke(kid):
            status, _, body = STACK.request("DELETE", f"/api/v1/admin/keys/{kid}",
                                            key=STACK.operator_key, port=STACK.port2)
            self.assertEqual((status, body["revoked"]), (200, True), body)

        self.assert_key_refused_after(revoke)

    def test_revoked_key_admin_cli(self):
        self.assert_key_refused_after(lambda kid: STACK.admin("key", "revoke", kid),
                                      path="/api/v1/orgs/{}/banners")

    def test_revoked_key_sql(self):
        self.assert_key_refused_after(lambda kid: STACK.psql(
            f"UPDATE api_keys SET revoked_at = now() WHERE id = '{kid}'"))

    def test_deleted_key_sql(self):
        self.assert_key_refused_after(lambda kid: STACK.psql(
            f"DELETE FROM api_keys WHERE id = '{kid}'"))

    def test_operator_key_revoked(self):
        self.assert_key_refused_after(lambda kid: STACK.psql(
            f"UPDATE api_keys SET revoked_at = now() WHERE id = '{kid}'"), role="operator")

    def test_disconnect_on_other_host(self):
        slug, admin = self.new_org()
        viewer = STACK.create_key(slug, "viewer")
        warm(SF.format(slug), viewer, 200)
        status, _, body = STACK.request("DELETE", SF.format(slug), key=admin,
                                        port=STACK.port2)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "disconnected")
        t = time.monotonic()
        answers = hammer(SF.format(slug), viewer, 1.0)
        self.assert_seen_after(t, answers, lambda s, b: s != 200 or
                               b.get("status") != "disconnected")

    def test_status_change_by_sql_shows_banner(self):
        slug, admin = self.new_org()
        viewer = STACK.create_key(slug, "viewer")
        path = f"/api/v1/orgs/{slug}/banners"
        for _, s, b in hammer(path, viewer, 0.6):
            self.assertEqual((s, b["banners"]), (200, []))
        STACK.psql("UPDATE integrations SET status = 'invalid', "
                   "last_error_kind = 'invalid', last_error_code = 'invalid_grant', "
                   "last_error_message = 'expired access/refresh token', "
                   "last_error_at = now() "
                   f"WHERE org_id = (SELECT id FROM orgs WHERE slug = '{slug}')")
        t = time.monotonic()
        answers = hammer(path, viewer, 1.0)
        self.assert_seen_after(t, answers, lambda s, b: s != 200 or b["banners"] == [])

    def test_org_deleted_by_sql(self):
        slug, admin = self.new_org()
        operator = STACK.operator_key
        warm(SF.format(slug), operator, 200)
        STACK.psql(f"DELETE FROM orgs WHERE slug = '{slug}'")
        t = time.monotonic()
        answers = hammer(SF.format(slug), operator, 1.0)
        self.assert_seen_after(t, answers, lambda s, b: s != 404)

    def test_many_rows_at_once(self):
        # More than 64 rows in one statement: one "*" that empties every cache.
        orgs = [self.new_org(connect=False) for _ in range(3)]
        viewers = [STACK.create_key(slug, "viewer") for slug, _ in orgs]
        for (slug, _), viewer in zip(orgs, viewers):
            warm(SF.format(slug), viewer, 200)
        STACK.psql("INSERT INTO orgs (slug, name) SELECT 'bulk-' || g, 'Bulk' "
                   "FROM generate_series(1, 70) g")
        STACK.psql("UPDATE integrations SET status = 'invalid' WHERE org_id IN "
                   "(SELECT id FROM orgs WHERE slug LIKE 'bulk-%' OR slug IN ("
                   + ",".join(f"'{s}'" for s, _ in orgs) + "))")
        t = time.monotonic()
        for (slug, _), viewer in zip(orgs, viewers):
            answers = hammer(SF.format(slug), viewer, 0.5)
            self.assert_seen_after(t, answers, lambda s, b: s != 200 or
                                   b.get("status") != "invalid")

    def test_token_refreshed_on_other_host(self):
        slug, admin = self.new_org()
        service = STACK.create_key(slug, "service")
        path = SF.format(slug) + "/token"
        old = {b["access_token"] for _, s, b in hammer(path, service, 0.6)}
        self.assertEqual(len(old), 1)
        _, _, first = STACK.request("GET", path, key=service)
        status, _, body = STACK.request(
            "GET", path + f"?force_refresh=1&generation={first['token_generation']}",
            key=service, port=STACK.port2)
        self.assertEqual(status, 200, body)
        self.assertNotIn(body["access_token"], old)
        t = time.monotonic()
        answers = hammer(path, service, 1.0)
        self.assert_seen_after(t, answers, lambda s, b: s != 200 or
                               b["access_token"] != body["access_token"])

    def test_token_after_disconnect(self):
        slug, admin = self.new_org()
        service = STACK.create_key(slug, "service")
        path = SF.format(slug) + "/token"
        warm(path, service, 200)
        status, _, body = STACK.request("DELETE", SF.format(slug), key=admin)
        self.assertEqual(status, 200, body)
        t = time.monotonic()
        answers = hammer(path, service, 1.0)
        self.assert_seen_after(t, answers, lambda s, b: s != 409)

    def test_idle_workers_take_notifications(self):
        # A burst of notifications larger than the sockets hold: a worker
        # that read them only when a request came would leave its backend
        # blocked in ClientWrite (and PostgreSQL's queue growing) for as
        # long as it gets no request.
        def writing():
            return int(STACK.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = "
                "'ClientWrite'")[0][0])

        STACK.psql("SELECT count(pg_notify('sfconnect_cache', 'o:' || (10000000000 + g))) "
                   "FROM generate_series(1, 300000) g")
        deadline = time.monotonic() + 10
        while writing() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(writing(), 0, "backends still blocked sending notifications")
        # And nobody's cache was wrongly emptied or kept: answers are right.
        slug, admin = self.new_org()
        status, _, body = STACK.request("GET", SF.format(slug), key=admin)
        self.assertEqual((status, body["status"]), (200, "connected"))

    def test_new_key_answers_at_once(self):
        # Unknown keys are never cached: a key made a moment ago works.
        slug, admin = self.new_org()
        viewer = STACK.create_key(slug, "viewer")
        status, _, body = STACK.request("GET", SF.format(slug), key=viewer)
        self.assertEqual(status, 200, body)

    def test_cached_answer_equals_fresh(self):
        slug, admin = self.new_org()
        viewer = STACK.create_key(slug, "viewer")
        answers = hammer(SF.format(slug), viewer, 0.5)
        bodies = {repr(sorted(b.items())) for _, s, b in answers}
        self.assertEqual(len(bodies), 1, "cached and fresh answers differ")
        fresh = STACK.create_key(slug, "viewer")
        _, _, body = STACK.request("GET", SF.format(slug), key=fresh)
        self.assertEqual({repr(sorted(body.items()))}, bodies)


class OwnHostTest(unittest.TestCase):
    """A stack of its own, whose database connections go through pgproxy."""

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(workers=WORKERS, pg_proxy=True)
        cls.stack.start()
        cls.stack.start_second_daemon()

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def test_own_host_sees_a_write_at_once(self):
        # A write answered by one worker is seen by the very next request on
        # any worker of that host, however late NOTIFY is: here every
        # notification of another session comes 3 s late (pgproxy).
        st = self.stack
        st.create_org("own", "Own host")
        admin = st.create_key("own", "admin")
        viewer = st.create_key("own", "viewer")
        status, _, body = st.connect_org("own", admin, accept_json=True)
        self.assertEqual(status, 200, body)
        warm(SF.format("own"), viewer, 200, stack=st)
        st.pg_proxy.delay_notifications(3.0)
        try:
            status, _, body = st.request("DELETE", SF.format("own"), key=admin)
            self.assertEqual((status, body["status"]), (200, "disconnected"), body)
            here = hammer(SF.format("own"), viewer, 0.5, ports=(st.port,), stack=st)
            there = hammer(SF.format("own"), viewer, 0.5, ports=(st.port2,), stack=st)
        finally:
            st.pg_proxy.clear()
        stale = [round(t, 3) for t, s, b in here
                 if s != 200 or b.get("status") != "disconnected"]
        self.assertEqual(stale, [], "stale answers on the host that wrote")
        # The other host learns by NOTIFY only: late here, as the proxy makes it.
        self.assertTrue(any(b.get("status") == "connected" for _, s, b in there),
                        "the delayed NOTIFY did not delay the other host")


if __name__ == "__main__":
    unittest.main()
