"""Statements per request, counted at the PostgreSQL wire (pgproxy): an
authenticated read of one org costs one statement (the key, the org and its
integration come back joined), and the answers of the joined lookup keep
the order of checks (401, then role 403, then org 403, then 404). Status
and banners are then answered from the worker's cache: no statement, until
a write announces a change or the connection (and with it the
notifications) is lost. Each test uses keys of its own, which no earlier
read has cached.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

STACK = None
SF = "/api/v1/orgs/{}/integrations/salesforce"


def setUpModule():
    global STACK
    # One worker: every request of a test goes over the same connection.
    STACK = Stack(workers=1, pg_proxy=True)
    STACK.start()


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def statements(method, path, key):
    """(status, body, statements sent to PostgreSQL) of one request."""
    STACK.request("GET", "/healthz")   # the worker has (re)connected
    before = STACK.pg_proxy.stats()["requests"]
    status, _, body = STACK.request(method, path, key=key)
    return status, body, STACK.pg_proxy.stats()["requests"] - before


class RoundTrips(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        STACK.create_org("rt", "Round trips")
        STACK.create_org("rt-other", "Other")
        STACK.create_org("rt-lost", "Lost")
        cls.admin = STACK.create_key("rt", "admin", "rt admin")
        cls.viewer = STACK.create_key("rt", "viewer", "rt viewer")
        cls.service = STACK.create_key("rt", "service", "rt service")
        status, _, body = STACK.connect_org("rt", cls.admin, accept_json=True)
        assert status == 200, body

    def test_status_is_one_statement_then_none(self):
        viewer = STACK.create_key("rt", "viewer")
        status, body, n = statements("GET", SF.format("rt"), viewer)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "connected")
        self.assertEqual(n, 1)
        again, body2, n = statements("GET", SF.format("rt"), viewer)
        self.assertEqual((again, n), (200, 0))
        self.assertEqual(body2, body)

    def test_banners_is_one_statement_then_none(self):
        viewer = STACK.create_key("rt", "viewer")
        status, body, n = statements("GET", "/api/v1/orgs/rt/banners", viewer)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["banners"], [])
        self.assertEqual(n, 1)
        again, _, n = statements("GET", "/api/v1/orgs/rt/banners", viewer)
        self.assertEqual((again, n), (200, 0))

    def test_fresh_token_is_one_statement_then_none(self):
        service = STACK.create_key("rt", "service")
        status, body, n = statements("GET", SF.format("rt") + "/token", service)
        self.assertEqual((status, n), (200, 1), body)
        again, body2, n = statements("GET", SF.format("rt") + "/token", service)
        self.assertEqual((again, n), (200, 0), body2)
        self.assertEqual(body2["access_token"], body["access_token"])

    def test_forced_refresh_reads_the_row_under_its_lock(self):
        # A cached row decides nothing: the refresh locks and reads it anew.
        service = STACK.create_key("rt", "service")
        _, body, _ = statements("GET", SF.format("rt") + "/token", service)
        gen = body["token_generation"]
        status, body2, n = statements(
            "GET", SF.format("rt") + f"/token?force_refresh=1&generation={gen}", service)
        self.assertEqual(status, 200, body2)
        self.assertEqual(body2["token_generation"], gen + 1)
        self.assertGreater(n, 3)    # BEGIN, the lock, the write, COMMIT
        # The refresh announced itself: the next plain read has the new token.
        status, body3, n = statements("GET", SF.format("rt") + "/token", service)
        self.assertEqual((status, n), (200, 1))
        self.assertEqual(body3["access_token"], body2["access_token"])

    def test_a_write_announces_itself(self):
        viewer = STACK.create_key("rt", "viewer")
        _, before, n = statements("GET", SF.format("rt"), viewer)
        self.assertEqual(n, 1)
        status, body, _ = statements("POST", SF.format("rt") + "/check", self.admin)
        self.assertEqual(status, 200, body)
        status, after, n = statements("GET", SF.format("rt"), viewer)
        self.assertEqual((status, n), (200, 1))
        self.assertEqual(after["last_checked_at"], body["last_checked_at"])

    def test_lost_connection_empties_the_cache(self):
        # A change made while the worker's connection is gone is never
        # announced to it: the cache must go with the connection.
        viewer = STACK.create_key("rt-lost", "viewer")
        status, body, n = statements("GET", SF.format("rt-lost"), viewer)
        self.assertEqual((status, body["status"], n), (200, "disconnected", 1))
        self.assertGreaterEqual(STACK.pg_proxy.drop_connections(), 1)
        STACK.psql("UPDATE orgs SET name = 'Renamed while away' WHERE slug = 'rt-lost'")
        STACK.psql("UPDATE integrations SET status = 'invalid' WHERE org_id = "
                   "(SELECT id FROM orgs WHERE slug = 'rt-lost')")
        status, _, body = STACK.request("GET", SF.format("rt-lost"), key=viewer)
        self.assertEqual((status, body["status"]), (200, "invalid"))

    def test_operator_status_of_any_org_is_one_statement(self):
        status, body, n = statements("GET", SF.format("rt-other"), STACK.operator_key)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "disconnected")
        self.assertEqual(n, 1)

    def test_refusals_are_one_statement_each(self):
        cases = (
            ("unknown key", SF.format("rt"), "sfk_" + "0" * 40, 401),
            ("viewer on an admin endpoint", "/api/v1/orgs/rt/audit", self.viewer, 403),
            ("key of another org", SF.format("rt-other"), self.viewer, 403),
            ("unknown org, not an operator", SF.format("rt-none"), self.viewer, 403),
            ("unknown org, operator", SF.format("rt-none"), STACK.operator_key, 404),
        )
        for name, path, key, want in cases:
            with self.subTest(name):
                status, body, n = statements("GET", path, key)
                self.assertEqual(status, want, body)
                self.assertEqual(n, 1)

    def test_preloaded_row_is_not_used_after_a_check(self):
        # POST .../check writes, then answers the status it read afterwards.
        status, body, _ = statements("POST", SF.format("rt") + "/check", self.admin)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "connected")


if __name__ == "__main__":
    unittest.main()
