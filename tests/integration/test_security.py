"""Security hardening: bounded growth. The key list pages through 8,000
keys with a keyset cursor (and `?org=` uses its index); pending OAuth states
are capped per org and expired ones are purged by the background checker,
which also prunes audit events older than audit_retention_days."""

import hashlib
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

STACK = None
SF = "/api/v1/orgs/{}/integrations/salesforce"
RETENTION_DAYS = 30
N_BULK_KEYS = 8000


def setUpModule():
    global STACK
    # check_interval_s 10: the checker ticks every second.
    STACK = Stack(workers=2, config={"check_interval_s": 10,
                                     "audit_retention_days": RETENTION_DAYS})
    STACK.start()


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def req(*args, **kwargs):
    return STACK.request(*args, **kwargs)


def wait_for(what, predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s")
        time.sleep(0.2)


def scalar(sql):
    return int(STACK.psql(sql)[0][0])


def org_id(slug):
    return scalar(f"SELECT id FROM orgs WHERE slug = '{slug}'")


class KeyListTest(unittest.TestCase):
    """GET /api/v1/admin/keys is a keyset-paginated list."""

    @classmethod
    def setUpClass(cls):
        # 2,667 orgs with three keys each (8,001 keys), in one statement:
        # several keys share a created_at, so the id must break the tie.
        STACK.psql(f"""
            WITH o AS (
                INSERT INTO orgs (slug, name)
                SELECT 'bulk-' || i, 'Bulk ' || i
                FROM generate_series(0, {N_BULK_KEYS // 3}) AS i
                RETURNING id),
            i AS (INSERT INTO integrations (org_id) SELECT id FROM o)
            INSERT INTO api_keys (id, org_id, role, label, key_hash, created_at)
            SELECT 'key_' || lpad(to_hex(o.id * 3 + r), 16, '0'), o.id,
                   (ARRAY['viewer', 'admin', 'service'])[r + 1], 'bulk',
                   encode(sha256(('bulk' || o.id || ':' || r)::bytea), 'hex'),
                   now() - ((o.id * 3 + r) % 7) * interval '1 second'
            FROM o CROSS JOIN generate_series(0, 2) AS r""")
        cls.expected = [r[0] for r in STACK.psql(
            "SELECT id FROM api_keys ORDER BY created_at, id")]
        assert len(cls.expected) > N_BULK_KEYS, len(cls.expected)

    def page_all(self, query=""):
        ids, cursor, pages = [], None, 0
        while True:
            q = query + (("&" if query else "") + "cursor=" + cursor if cursor else "")
            st, _, body = req("GET", "/api/v1/admin/keys" + ("?" + q if q else ""),
                              key=STACK.operator_key)
            self.assertEqual(st, 200, body)
            pages += 1
            self.assertLessEqual(pages, 1000, "the pages never end")
            for k in body["keys"]:
                self.assertEqual(set(k), {"id", "org", "role", "label",
                                          "created_at", "revoked_at"})
            ids += [k["id"] for k in body["keys"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return ids, pages

    def test_every_key_exactly_once_in_order_default_limit(self):
        ids, pages = self.page_all()
        self.assertEqual(len(ids), len(set(ids)), "a key appeared twice")
        self.assertEqual(ids, self.expected)
        self.assertGreaterEqual(pages, len(self.expected) // 100)

    def test_every_key_exactly_once_limit_500(self):
        ids, pages = self.page_all("limit=500")
        self.assertEqual(ids, self.expected)
        self.assertLessEqual(pages, len(self.expected) // 500 + 2)

    def test_first_page_has_default_100_and_a_cursor(self):
        st, _, body = req("GET", "/api/v1/admin/keys", key=STACK.operator_key)
        self.assertEqual(st, 200, body)
        self.assertEqual(len(body["keys"]), 100)
        self.assertEqual(body["next_cursor"], body["keys"][-1]["id"])

    def test_org_filter_pages(self):
        ids, _ = self.page_all("org=bulk-7&limit=1")
        want = [r[0] for r in STACK.psql(
            "SELECT k.id FROM api_keys k JOIN orgs o ON o.id = k.org_id "
            "WHERE o.slug = 'bulk-7' ORDER BY k.created_at, k.id")]
        self.assertEqual(len(want), 3)
        self.assertEqual(ids, want)
        st, _, body = req("GET", "/api/v1/admin/keys?org=no-such-org",
                          key=STACK.operator_key)
        self.assertEqual((st, body["keys"], body["next_cursor"]), (200, [], None))

    def test_org_filter_uses_the_index(self):
        def scans():
            rows = STACK.psql("SELECT idx_scan FROM pg_stat_user_indexes "
                              "WHERE indexrelname = 'api_keys_org_created'")
            return int(rows[0][0]) if rows else 0
        before = scans()
        st, _, body = req("GET", "/api/v1/admin/keys?org=bulk-9",
                          key=STACK.operator_key)
        self.assertEqual((st, len(body["keys"])), (200, 3), body)
        wait_for("an index scan of api_keys_org_created", lambda: scans() > before)

    def test_bad_limit_and_cursor_are_400(self):
        for q in ("limit=0", "limit=501", "limit=x", "cursor=acme",
                  "cursor=key_0123", "cursor=KEY_0000000000000001",
                  "cursor=key_000000000000000g"):
            st, _, body = req("GET", "/api/v1/admin/keys?" + q, key=STACK.operator_key)
            self.assertEqual(st, 400, (q, body))
            self.assertEqual(body["error"]["code"], "bad_request")

    def test_unknown_cursor_ends_the_list(self):
        st, _, body = req("GET", "/api/v1/admin/keys?cursor=key_ffffffffffffffff",
                          key=STACK.operator_key)
        self.assertEqual((st, body["keys"], body["next_cursor"]), (200, [], None))

    def test_cli_lists_every_key(self):
        out = STACK.admin("key", "list").splitlines()
        self.assertEqual([line.split("\t")[0] for line in out], self.expected)


def state_hash(authorize_url):
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize_url).query)["state"][0]
    return hashlib.sha256(state.encode()).hexdigest()


class OAuthStateTest(unittest.TestCase):
    def connect(self, org, key):
        st, _, body = req("POST", SF.format(org) + "/connect", key=key)
        self.assertEqual(st, 200, body)
        return state_hash(body["authorize_url"])

    def states(self, org):
        return {r[0] for r in STACK.psql(
            f"SELECT state_hash FROM oauth_states WHERE org_id = {org_id(org)}")}

    def test_pending_states_are_capped_per_org_oldest_dropped(self):
        STACK.create_org("cap-a")
        STACK.create_org("cap-b")
        key_a = STACK.create_key("cap-a", "admin")
        key_b = STACK.create_key("cap-b", "admin")
        other = {self.connect("cap-b", key_b) for _ in range(3)}
        made = [self.connect("cap-a", key_a) for _ in range(25)]
        self.assertEqual(self.states("cap-a"), set(made[-20:]))
        self.assertEqual(self.states("cap-b"), other)

    def test_checker_purges_expired_states(self):
        STACK.create_org("exp-a")
        STACK.create_org("exp-b")
        key_a = STACK.create_key("exp-a", "admin")
        key_b = STACK.create_key("exp-b", "admin")
        for _ in range(3):
            self.connect("exp-a", key_a)
        live = self.connect("exp-b", key_b)
        STACK.psql("UPDATE oauth_states SET expires_at = now() - interval '1 second' "
                   f"WHERE org_id = {org_id('exp-a')}")
        wait_for("expired states purged", lambda: not self.states("exp-a"))
        self.assertEqual(self.states("exp-b"), {live})


def add_audit(org, n, age):
    STACK.psql("INSERT INTO audit_events (org_id, at, actor, action, detail) "
               f"SELECT {org_id(org)}, now() - interval '{age}' - i * interval '1 ms', "
               f"'test', 'test.old', '{{}}' FROM generate_series(1, {n}) AS i")


def audit_count(org, where="true"):
    return scalar(f"SELECT count(*) FROM audit_events WHERE org_id = {org_id(org)} "
                  f"AND {where}")


class AuditRetentionTest(unittest.TestCase):
    def test_a_checker_prunes_old_audit_events(self):
        STACK.create_org("audit-a")
        add_audit("audit-a", 2600, f"{RETENTION_DAYS + 10} days")
        add_audit("audit-a", 7, f"{RETENTION_DAYS - 1} days")
        wait_for("old audit events pruned",
                 lambda: audit_count("audit-a") == 7, timeout=30)
        self.assertEqual(audit_count(
            "audit-a", f"at > now() - interval '{RETENTION_DAYS} days'"), 7)

    def test_z_retention_zero_keeps_events(self):
        """Last (z): restarts the daemon with audit_retention_days 0."""
        STACK.restart_daemon(config={"audit_retention_days": 0})
        STACK.create_org("audit-z")
        key = STACK.create_key("audit-z", "admin")
        add_audit("audit-z", 50, "5000 days")
        st, _, body = req("POST", SF.format("audit-z") + "/connect", key=key)
        self.assertEqual(st, 200, body)
        STACK.psql("UPDATE oauth_states SET expires_at = now() - interval '1 second' "
                   f"WHERE org_id = {org_id('audit-z')}")
        # The expired state going away shows a housekeeping tick has run.
        wait_for("expired state purged", lambda: scalar(
            f"SELECT count(*) FROM oauth_states WHERE org_id = {org_id('audit-z')}") == 0)
        time.sleep(1.5)
        self.assertEqual(audit_count("audit-z", "action = 'test.old'"), 50)


if __name__ == "__main__":
    unittest.main()
