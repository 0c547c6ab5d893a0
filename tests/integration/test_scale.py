"""The statements of issue 13 step 4 (sql/009), for correctness: the check
claim's order (never checked first, then the oldest check, ties by org id)
and its due retries, the /metrics status counts staying true through every
kind of status change (and their folding by housekeeping), and the
status-filtered admin list paging every org exactly once."""

import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

STACK = None
ORDER_ORGS = 6
CHECK = "/api/v1/admin/integrations/check"
LIST = "/api/v1/admin/integrations"
STATUSES = ("connected", "degraded", "disconnected", "invalid")


def setUpModule():
    global STACK
    # Batches of one, so the claim order is the order of the checks; the
    # background check finds nothing due (a cutoff 30 days ago, no
    # re-check of invalid ones) unless a test makes a retry due.
    STACK = Stack(workers=2, config={"check_concurrency": 1,
                                     "check_interval_s": 30 * 86400,
                                     "invalid_recheck_interval_s": 0})
    STACK.start()


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def connect(slug):
    op = STACK.operator_key
    st, _, body = STACK.request("POST", "/api/v1/admin/orgs", key=op,
                                body={"slug": slug, "name": slug})
    assert st == 201, (st, body)
    STACK.fakesf("POST", "config", {"org_id": "new", "user_id": "new"})
    st, _, body = STACK.connect_org(slug, op, accept_json=True)
    assert st == 200 and body.get("status") == "connected", (st, body)


def set_rows(sql_by_slug):
    for slug, sets in sql_by_slug.items():
        STACK.psql(f"UPDATE integrations SET {sets} "
                   f"WHERE org_id = (SELECT id FROM orgs WHERE slug = '{slug}')")


def metrics_counts():
    st, _, text = STACK.request("GET", "/metrics")
    assert st == 200, st
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r'^sfconnect_integrations\{status="(\w+)"\} (\d+)$', text, re.M)}


def true_counts():
    rows = dict(STACK.psql("SELECT status, count(*) FROM integrations GROUP BY status"))
    return {s: int(rows.get(s, 0)) for s in STATUSES}


class ClaimOrder(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.slugs = [f"order-{i}" for i in range(ORDER_ORGS)]
        for slug in cls.slugs:
            connect(slug)

    def test_never_checked_first_then_oldest_ties_by_id(self):
        o = self.slugs
        # o0: never checked (invalid, so the routine check leaves it);
        # o2 and o4 checked at the same moment: the lower org id first.
        set_rows({o[0]: "status = 'invalid', last_checked_at = NULL",
                  o[1]: "last_checked_at = now() - interval '1 hour'",
                  o[2]: "last_checked_at = date_trunc('second', now()) - interval '3 hours'",
                  o[3]: "last_checked_at = now() - interval '2 hours'",
                  o[4]: "last_checked_at = date_trunc('second', now()) - interval '3 hours'",
                  o[5]: "last_checked_at = now() - interval '30 minutes'"})
        expected = [o[0], o[2], o[4], o[3], o[1], o[5]]
        # The checker works a check job too: paused, it cannot interleave
        # its batches of one with the request's, and the checks follow the
        # claim order.
        checker = STACK.checker_pid()
        self.assertIsNotNone(checker)
        os.kill(checker, signal.SIGSTOP)
        try:
            st, _, body = STACK.request("POST", CHECK, key=STACK.operator_key,
                                        body={"older_than_s": 60}, timeout=120)
        finally:
            os.kill(checker, signal.SIGCONT)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["checked"], ORDER_ORGS, body)
        self.assertEqual(body["connected"], ORDER_ORGS, body)
        checked = [r[0] for r in STACK.psql(
            "SELECT o.slug FROM integrations i JOIN orgs o ON o.id = i.org_id "
            "WHERE o.slug LIKE 'order-%' ORDER BY i.last_checked_at")]
        self.assertEqual(checked, expected)

    def test_due_retries_and_nothing_else(self):
        o = self.slugs
        # Checked a moment ago: due only through its retry (o1), or not at
        # all (o2: retry later; o3: connected).
        set_rows({o[1]: "status = 'degraded', last_checked_at = now(), "
                        "next_retry_at = now() - interval '1 minute'",
                  o[2]: "status = 'degraded', last_checked_at = now(), "
                        "next_retry_at = now() + interval '1 hour'",
                  o[3]: "last_checked_at = now()"})
        before = {r[0]: r[1] for r in STACK.psql(
            "SELECT o.slug, i.token_generation FROM integrations i "
            "JOIN orgs o ON o.id = i.org_id WHERE o.slug LIKE 'order-%'")}
        STACK.restart_daemon()      # its checker looks for due checks at once
        status = {}
        for _ in range(100):
            status = dict(STACK.psql(
                "SELECT o.slug, i.status FROM integrations i "
                "JOIN orgs o ON o.id = i.org_id WHERE o.slug LIKE 'order-%'"))
            if status[o[1]] == "connected":
                break
            time.sleep(0.1)
        self.assertEqual(status[o[1]], "connected", "the due retry was claimed")
        time.sleep(0.5)     # a claim of o2 or o3 would be as quick
        after = {r[0]: r[1] for r in STACK.psql(
            "SELECT o.slug, i.token_generation FROM integrations i "
            "JOIN orgs o ON o.id = i.org_id WHERE o.slug LIKE 'order-%'")}
        self.assertNotEqual(after[o[1]], before[o[1]])
        for slug in (o[0], o[2], o[3], o[4], o[5]):
            self.assertEqual(after[slug], before[slug], slug)
        self.assertEqual(dict(STACK.psql(
            "SELECT o.slug, i.status FROM integrations i "
            "JOIN orgs o ON o.id = i.org_id WHERE o.slug LIKE 'order-%'"))[o[2]],
            "degraded")


class StatusCounts(unittest.TestCase):

    def assertTrue_(self, step):
        self.assertEqual(metrics_counts(), true_counts(), step)

    def test_counts_stay_true(self):
        self.assertTrue_("at start")
        connect("counts-a")
        self.assertTrue_("org created and connected")
        set_rows({"counts-a": "status = 'degraded'"})
        self.assertTrue_("degraded")
        # Several rows and statuses in one statement.
        STACK.psql("UPDATE integrations SET status = CASE status "
                   "WHEN 'connected' THEN 'invalid' WHEN 'invalid' THEN 'connected' "
                   "ELSE status END WHERE status <> 'disconnected'")
        self.assertTrue_("swapped in one statement")
        STACK.psql("UPDATE integrations SET status = CASE status "
                   "WHEN 'connected' THEN 'invalid' WHEN 'invalid' THEN 'connected' "
                   "ELSE status END WHERE status <> 'disconnected'")
        st, _, body = STACK.request(
            "DELETE", "/api/v1/orgs/counts-a/integrations/salesforce",
            key=STACK.create_key("counts-a", "admin"))
        self.assertIn(st, (200, 204), body)
        self.assertTrue_("disconnected")
        # Orgs and integrations made in one statement, as a bulk import
        # would; then deleted (the cascade removes their integrations).
        STACK.psql("WITH o AS (INSERT INTO orgs (slug, name) "
                   "SELECT 'counts-bulk-' || g, 'b' FROM generate_series(1, 40) g "
                   "RETURNING id) INSERT INTO integrations (org_id) SELECT id FROM o")
        self.assertTrue_("40 made in one statement")
        self.assertEqual(STACK.psql(
            "SELECT count(*) FROM integrations i JOIN orgs o ON o.id = i.org_id "
            "WHERE o.slug LIKE 'counts-bulk-%' AND i.org_slug = o.slug")[0][0], "40")
        STACK.psql("DELETE FROM orgs WHERE slug LIKE 'counts-bulk-2%'")
        self.assertTrue_("11 deleted")
        STACK.restart_daemon()      # housekeeping folds the deltas at once
        for _ in range(100):
            rows = int(STACK.psql("SELECT count(*) FROM integration_status_counts")[0][0])
            if rows <= len(STATUSES):
                break
            time.sleep(0.1)
        self.assertLessEqual(rows, len(STATUSES), "folded by housekeeping")
        self.assertTrue_("after folding")


class FilteredList(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        STACK.psql("""
            INSERT INTO orgs (slug, name)
                SELECT 'list-' || lpad(g::text, 3, '0'), 'l' FROM generate_series(1, 120) g;
            INSERT INTO integrations (org_id, status, last_checked_at)
                SELECT id, CASE WHEN substr(slug, 6)::int % 3 = 0 THEN 'invalid'
                    ELSE 'disconnected' END,
                    CASE WHEN substr(slug, 6)::int % 3 = 0
                        THEN now() + interval '1 day' END
                FROM orgs WHERE slug LIKE 'list-%';""")
        # (Checked "tomorrow": no check of the other tests claims them.)

    def pages(self, query, limit):
        slugs, cursor, pages = [], "", 0
        while True:
            page = f"&cursor={cursor}" if cursor else ""
            st, _, body = STACK.request("GET", f"{LIST}?{query}limit={limit}{page}",
                                        key=STACK.operator_key)
            self.assertEqual(st, 200, body)
            slugs += [i["org"] for i in body["integrations"]]
            pages += 1
            self.assertLessEqual(len(body["integrations"]), limit)
            if body["next_cursor"] is None:
                return slugs, pages
            cursor = body["next_cursor"]
            self.assertLess(pages, 1000)

    def expected(self, status=None):
        where = f"WHERE i.status = '{status}'" if status else ""
        return [r[0] for r in STACK.psql(
            "SELECT o.slug FROM integrations i JOIN orgs o ON o.id = i.org_id "
            f"{where} ORDER BY o.slug")]

    def test_status_pages_each_org_once(self):
        slugs, pages = self.pages("status=invalid&", 7)
        self.assertEqual(slugs, self.expected("invalid"))
        self.assertGreaterEqual(len([s for s in slugs if s.startswith("list-")]), 40)
        self.assertGreater(pages, 5)

    def test_unfiltered_pages_each_org_once(self):
        slugs, _ = self.pages("", 11)
        self.assertEqual(slugs, self.expected())


if __name__ == "__main__":
    unittest.main()
