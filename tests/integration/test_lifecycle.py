"""Token lifecycle (issue 4), through nginx against the Salesforce simulator:
single-flight refresh under a crowd of callers (with and without
`generation`), refresh-token rotation, invalid detection with banners and
reconnect, degraded outcomes (500, timeout, malformed, invalid_client,
rate limit, dropped connection, "already being processed"), a rotated token
whose database write fails, and the background check shared by two daemons.

One stack for the module. Every test connects its own orgs, each to its own
Salesforce OrgID (fakesf config org_id "new"), so simulator-side actions
(expire_access, revoke_refresh) touch that test's grant only. Refreshes are
counted per org from the simulator's recorded requests (its refresh_token
maps to a grant, the grant to an OrgID).
"""

import concurrent.futures
import os
import re
import sys
import subprocess
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

STACK = None
SF = "/api/v1/orgs/{}/integrations/salesforce"
HTTP_TIMEOUT_MS = 2000          # the daemon's timeout towards Salesforce (harness: 5000)
BG_INTERVAL_S = 5               # check_interval_s of the two-daemon test
BG_ORGS = 200


def setUpModule():
    global STACK
    STACK = Stack(workers=8, config={"http_timeout_ms": HTTP_TIMEOUT_MS,
                                     "check_interval_s": 86400,
                                     "access_token_max_age_s": 3600})
    STACK.start()


def tearDownModule():
    if STACK is not None:
        STACK.stop()


# ---------------------------------------------------------------- helpers

def req(*args, **kwargs):
    return STACK.request(*args, **kwargs)


def new_org(slug):
    """Creates org slug with an admin, a viewer and a service key."""
    STACK.create_org(slug)
    return {role: STACK.create_key(slug, role, f"{slug}-{role}")
            for role in ("admin", "viewer", "service")}


def sf_config(**kw):
    return STACK.fakesf("POST", "config", kw)


def connect(slug, key, sf_org_id="new", user_id="new", body=None):
    """Connects slug through the full OAuth flow, as Salesforce org sf_org_id
    ("new": a fresh one). Answers the 18-character OrgID."""
    cfg = sf_config(org_id=sf_org_id, user_id=user_id)
    st, _, status = STACK.connect_org(slug, key, body=body, accept_json=True)
    if st != 200 or not isinstance(status, dict) or status.get("status") != "connected":
        raise AssertionError(f"connect {slug}: callback answered {st}: {status}")
    if status.get("salesforce_org_id") != cfg["org_id"]:
        raise AssertionError(f"connect {slug}: OrgID {status.get('salesforce_org_id')}, "
                             f"simulator approved as {cfg['org_id']}")
    return cfg["org_id"]


def token(slug, key, query="", timeout=30):
    return req("GET", SF.format(slug) + "/token" + query, key=key, timeout=timeout)


def check(slug, key, timeout=30):
    return req("POST", SF.format(slug) + "/check", key=key, timeout=timeout)


def status_of(slug, key):
    st, _, body = req("GET", SF.format(slug), key=key)
    if st != 200:
        raise AssertionError(f"status of {slug}: {st} {body}")
    return body


def banners(slug, key):
    st, _, body = req("GET", f"/api/v1/orgs/{slug}/banners", key=key)
    if st != 200:
        raise AssertionError(f"banners of {slug}: {st} {body}")
    return body


def db_row(slug):
    """The stored integration of slug (raw columns, NULL as None)."""
    rows = STACK.psql(
        "SELECT i.status, i.token_generation, coalesce(i.access_token_enc, '\\N'), "
        "coalesce(i.refresh_token_enc, '\\N'), coalesce(i.last_error_kind, '\\N'), "
        "coalesce(i.instance_url, '\\N') "
        "FROM integrations i JOIN orgs o ON o.id = i.org_id "
        f"WHERE o.slug = '{slug}'")
    if len(rows) != 1:
        raise AssertionError(f"no integration row for {slug}: {rows}")
    r = [None if v == "\\N" else v for v in rows[0]]
    return {"status": r[0], "generation": int(r[1]), "access_token_enc": r[2],
            "refresh_token_enc": r[3], "last_error_kind": r[4], "instance_url": r[5]}


def grants_of(sf_org_id):
    return [g for g in STACK.fakesf("GET", "grants") if g["org_id"] == sf_org_id]


def the_grant(sf_org_id):
    g = grants_of(sf_org_id)
    if len(g) != 1:
        raise AssertionError(f"expected one grant for {sf_org_id} at the simulator: {g}")
    return g[0]


def refresh_requests(since):
    """Refresh requests the simulator received at or after time since."""
    return [r for r in STACK.fakesf("GET", "requests?endpoint=token_refresh")
            if r["at"] >= since]


def refreshes_with(tokens, since):
    """Refresh requests since `since` that presented one of tokens."""
    return [r for r in refresh_requests(since)
            if (r.get("form") or {}).get("refresh_token") in tokens]


def api_call(instance_url, access_token):
    """A Salesforce REST call with the token: 200, or 401 for a dead token."""
    st, _, _ = STACK.sf_get(instance_url.rstrip("/") + "/services/data/v60.0/limits",
                            {"Authorization": f"Bearer {access_token}"})
    return st


def set_last_refreshed(slug, seconds_ago):
    STACK.psql("UPDATE integrations SET last_refreshed_at = now() - "
               f"interval '{int(seconds_ago)} seconds' "
               f"WHERE org_id = (SELECT id FROM orgs WHERE slug = '{slug}')")


def heal_workers(slug, key):
    """After PostgreSQL backends were terminated, each worker answers 503 once
    (its dead connection) and then reconnects: go round the workers until
    they all answer."""
    ok, deadline, seen_503 = 0, time.monotonic() + 15, 0
    while ok < 3 * STACK.workers and time.monotonic() < deadline:
        st, _, body = req("GET", SF.format(slug), key=key)
        if st == 200:
            ok += 1
        else:
            if st != 503:
                raise AssertionError(f"status after terminated backends: {st} {body}")
            ok, seen_503 = 0, seen_503 + 1
    if ok < 3 * STACK.workers:
        raise AssertionError("the workers did not reconnect within 15 s")
    return seen_503


def crowd(n, fn):
    """Runs fn(i) for i < n in n threads released together; answers the results."""
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait(30)
        return fn(i)
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


class LifecycleCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        STACK.fakesf("POST", "fault/clear")
        sf_config(rotation=False)

    def tearDown(self):
        STACK.fakesf("POST", "fault/clear")
        sf_config(rotation=False)

    def assertOk(self, response, status=200):
        st, _, body = response
        self.assertEqual(st, status, f"expected {status}, got {st}: {body!r}")
        return body

    def assertError(self, response, status, code):
        st, _, body = response
        self.assertEqual(st, status, f"expected {status} {code}, got {st}: {body!r}")
        self.assertIsInstance(body, dict, body)
        self.assertEqual(body.get("error", {}).get("code"), code, body)

    def assertTokenBody(self, body, sf_org_id):
        for field in ("access_token", "instance_url", "issued_at", "salesforce_org_id",
                      "token_generation"):
            self.assertIn(field, body, body)
        self.assertEqual(body["salesforce_org_id"], sf_org_id)
        self.assertIsInstance(body["token_generation"], int)
        self.assertRegex(body["issued_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

    def assertConnected(self, status):
        self.assertEqual(status["status"], "connected", status)
        self.assertIsNone(status["last_error"], status)
        self.assertIsNone(status["banner"], status)


# ---------------------------------------------------------------- single flight

class SingleFlightTest(LifecycleCase):
    CALLERS = 50

    def _crowd_after_expiry(self, slug, keys, sf_org_id, query):
        """The access token dies at the simulator; CALLERS callers report it
        at once with query. Answers (old token body, responses, refreshes)."""
        old = self.assertOk(token(slug, keys["service"]))
        self.assertTokenBody(old, sf_org_id)
        self.assertEqual(api_call(old["instance_url"], old["access_token"]), 200)
        rt = the_grant(sf_org_id)["refresh_token"]
        STACK.fakesf("POST", "expire_access", {"org_id": sf_org_id})
        self.assertEqual(api_call(old["instance_url"], old["access_token"]), 401)
        # Slow the refresh down so that the callers overlap it.
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "delay",
                                       "delay_ms": 300, "count": 1})
        since = time.time()
        q = query.format(gen=old["token_generation"])
        results = crowd(self.CALLERS, lambda i: token(slug, keys["service"], q, timeout=60))
        return old, results, refreshes_with({rt}, since)

    def _assert_one_new_token(self, old, results, refreshes, sf_org_id):
        codes = [r[0] for r in results]
        self.assertEqual(codes, [200] * self.CALLERS,
                         f"not every caller got a token: {[r[2] for r in results if r[0] != 200][:3]}")
        for _, headers, _ in results:
            self.assertIn("no-store", headers.get("cache-control", ""))
        self.assertEqual(len(refreshes), 1,
                         f"the simulator saw {len(refreshes)} refreshes of this org")
        tokens = {r[2]["access_token"] for r in results}
        self.assertEqual(len(tokens), 1, f"callers got {len(tokens)} different tokens")
        new = results[0][2]
        self.assertTokenBody(new, sf_org_id)
        self.assertNotEqual(new["access_token"], old["access_token"])
        self.assertEqual({r[2]["token_generation"] for r in results},
                         {old["token_generation"] + 1})
        self.assertEqual(api_call(new["instance_url"], new["access_token"]), 200)
        return new

    def test_crowd_with_generation_refreshes_once(self):
        slug = "sf-crowd-gen"
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        old, results, refreshes = self._crowd_after_expiry(
            slug, keys, sf_org_id, "?force_refresh=1&generation={gen}")
        new = self._assert_one_new_token(old, results, refreshes, sf_org_id)
        # A late caller with the dead generation gets the new token, no refresh.
        since = time.time()
        late = self.assertOk(token(slug, keys["service"],
                                   f"?force_refresh=1&generation={old['token_generation']}"))
        self.assertEqual(late["access_token"], new["access_token"])
        self.assertEqual(refresh_requests(since), [])
        self.assertEqual(db_row(slug)["generation"], new["token_generation"])

    def test_crowd_without_generation_refreshes_once(self):
        slug = "sf-crowd-nogen"
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        # The 5-second rule counts from the last refresh (the connect, here).
        set_last_refreshed(slug, 30)
        old, results, refreshes = self._crowd_after_expiry(
            slug, keys, sf_org_id, "?force_refresh=1")
        new = self._assert_one_new_token(old, results, refreshes, sf_org_id)
        # Within 5 s of that refresh, another forced call does not refresh.
        since = time.time()
        again = self.assertOk(token(slug, keys["service"], "?force_refresh=1"))
        self.assertEqual(again["access_token"], new["access_token"])
        self.assertEqual(refresh_requests(since), [])

    def test_crowd_against_failing_salesforce_makes_one_attempt(self):
        slug = "sf-crowd-fail"
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        old = self.assertOk(token(slug, keys["service"]))
        rt = the_grant(sf_org_id)["refresh_token"]
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "status500",
                                       "count": 20})
        since = time.time()
        q = f"?force_refresh=1&generation={old['token_generation']}"
        results = crowd(8, lambda i: token(slug, keys["service"], q, timeout=60))
        STACK.fakesf("POST", "fault/clear")
        self.assertEqual(len(refreshes_with({rt}, since)), 1,
                         "each caller of a crowd retried the failing refresh")
        for st, _, body in results:
            self.assertEqual(st, 502, body)
            self.assertEqual(body["error"]["code"], "salesforce_unavailable", body)
        self.assertEqual(status_of(slug, keys["viewer"])["status"], "degraded")

    def test_token_not_connected_is_409(self):
        slug = "sf-never"
        keys = new_org(slug)
        self.assertError(token(slug, keys["service"]), 409, "not_connected")
        self.assertError(token(slug, keys["service"], "?force_refresh=1"), 409,
                         "not_connected")
        self.assertError(check(slug, keys["admin"]), 409, "not_connected")


# ---------------------------------------------------------------- rotation

class RotationTest(LifecycleCase):
    def test_five_rotating_refreshes_then_check(self):
        slug = "rot-five"
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        sf_config(rotation=True)
        chain = [the_grant(sf_org_id)["refresh_token"]]
        since = time.time()
        body = self.assertOk(token(slug, keys["service"]))
        gen = body["token_generation"]
        seen = {body["access_token"]}
        for i in range(5):
            body = self.assertOk(token(slug, keys["service"],
                                       f"?force_refresh=1&generation={gen}"))
            self.assertTokenBody(body, sf_org_id)
            self.assertEqual(body["token_generation"], gen + 1, f"refresh {i + 1}")
            gen = body["token_generation"]
            self.assertNotIn(body["access_token"], seen, f"refresh {i + 1}: same token")
            seen.add(body["access_token"])
            grant = the_grant(sf_org_id)
            self.assertFalse(grant["revoked"], f"grant revoked after refresh {i + 1}")
            self.assertNotEqual(grant["refresh_token"], chain[-1],
                                "the simulator did not rotate")
            chain.append(grant["refresh_token"])
        status = self.assertOk(check(slug, keys["admin"]))
        self.assertConnected(status)
        chain.append(the_grant(sf_org_id)["refresh_token"])
        body = self.assertOk(token(slug, keys["service"]))
        self.assertEqual(api_call(body["instance_url"], body["access_token"]), 200)
        grant = the_grant(sf_org_id)
        self.assertFalse(grant["revoked"], grant)
        # Each refresh presented the then-current refresh token, once.
        used = [r["form"]["refresh_token"] for r in refreshes_with(set(chain), since)]
        self.assertEqual(used, chain[:6],
                         "the daemon did not present each rotated token exactly once, "
                         "in order")
        self.assertEqual(db_row(slug)["status"], "connected")


# ---------------------------------------------------------------- invalid

class InvalidTest(LifecycleCase):
    def assertInvalid(self, slug, keys, code):
        status = status_of(slug, keys["viewer"])
        self.assertEqual(status["status"], "invalid", status)
        self.assertEqual(status["last_error"]["kind"], "invalid", status)
        self.assertEqual(status["last_error"]["code"], code, status)
        banner = status["banner"]
        self.assertIsInstance(banner, dict, status)
        for role in ("viewer", "admin", "service"):
            body = banners(slug, keys[role])
            self.assertEqual(len(body["banners"]), 1, f"{role}: {body}")
            b = body["banners"][0]
            for field in ("level", "code", "message", "hint", "action"):
                self.assertIn(field, b, b)
            self.assertEqual(b["level"], "error")
            self.assertEqual(b["code"], "salesforce_token_invalid")
            # The hint fits the cause (test_fidelity checks each one).
            self.assertTrue(b["hint"] and b.get("hint_code"), b)
            if b["hint_code"] == "refresh_token_policy":
                self.assertIn("Refresh Token Policy", b["hint"])
            self.assertIsInstance(b["action"], dict)
            self.assertTrue(b["action"].get("label"))
            self.assertTrue(b["action"].get("href"))
            self.assertEqual(b, banner)
        self.assertError(token(slug, keys["service"]), 409, "integration_invalid")
        self.assertError(token(slug, keys["service"], "?force_refresh=1"), 409,
                         "integration_invalid")

    def test_admin_cli_check(self):
        slug = "inv-cli"
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        refreshes = len(STACK.fakesf("GET", "requests?endpoint=token_refresh"))
        out = STACK.admin("check", "--org", slug)
        self.assertRegex(out, rf"^{slug}\tconnected\t{sf_org_id}\t-$")
        self.assertEqual(len(STACK.fakesf("GET", "requests?endpoint=token_refresh")),
                         refreshes + 1, "the CLI check did not refresh")
        STACK.fakesf("POST", "revoke_refresh", {"org_id": sf_org_id})
        p = STACK.admin_run("check", "--org", slug)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertRegex(p.stdout, rf"^{slug}\tinvalid\t{sf_org_id}\tinvalid_grant$")
        self.assertInvalid(slug, keys, "invalid_grant")
        p = STACK.admin_run("check", "--org", "no-such-org")
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(p.stderr.strip())
        p = STACK.admin_run("check", "--all")
        self.assertRegex(p.stdout, r"^all: \d+ checked: \d+ connected, \d+ degraded, "
                         r"\d+ invalid$")

    def test_revoked_at_salesforce_then_reconnect(self):
        slug = "inv-revoked"
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        self.assertEqual(STACK.fakesf("POST", "revoke_refresh", {"org_id": sf_org_id}),
                         {"revoked": 1})
        status = self.assertOk(check(slug, keys["admin"]))
        self.assertEqual(status["status"], "invalid", status)
        self.assertEqual(status["last_error"]["kind"], "invalid")
        self.assertEqual(status["last_error"]["code"], "invalid_grant")
        self.assertIsNotNone(status["banner"])
        self.assertInvalid(slug, keys, "invalid_grant")
        # Reconnect straight from invalid, to the same Salesforce org.
        connect(slug, keys["admin"], sf_org_id=sf_org_id)
        status = status_of(slug, keys["viewer"])
        self.assertConnected(status)
        self.assertEqual(banners(slug, keys["viewer"]), {"banners": []})
        body = self.assertOk(token(slug, keys["service"]))
        self.assertEqual(api_call(body["instance_url"], body["access_token"]), 200)
        self.assertConnected(self.assertOk(check(slug, keys["admin"])))

    def test_inactive_user_is_invalid(self):
        slug = "inv-user"
        keys = new_org(slug)
        connect(slug, keys["admin"])
        user = STACK.fakesf("GET", "config")["user_id"]
        sf_config(user_id=user, user_active=False)
        try:
            status = self.assertOk(check(slug, keys["admin"]))
            self.assertEqual(status["status"], "invalid", status)
            self.assertInvalid(slug, keys, "invalid_grant")
        finally:
            sf_config(user_id=user, user_active=True)

    def test_inactive_org_is_invalid(self):
        slug = "inv-org"
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        sf_config(org_id=sf_org_id, org_active=False)
        try:
            status = self.assertOk(check(slug, keys["admin"]))
            self.assertEqual(status["status"], "invalid", status)
            self.assertInvalid(slug, keys, "inactive_org")
        finally:
            sf_config(org_id=sf_org_id, org_active=True)
        connect(slug, keys["admin"], sf_org_id=sf_org_id)
        self.assertConnected(status_of(slug, keys["viewer"]))
        self.assertEqual(banners(slug, keys["viewer"]), {"banners": []})


# ---------------------------------------------------------------- degraded

class DegradedTest(LifecycleCase):
    def _degraded(self, slug, fault, kind, forced_code, wait_s=0.0):
        """fault (a fakesf fault body) on the next refresh: a check leaves the
        integration degraded with last_error.kind == kind, no banner, every
        stored token as it was; the old token is still served; a forced
        refresh under the same fault answers 502 forced_code (None: skip);
        then a good check brings it back to connected."""
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        old = self.assertOk(token(slug, keys["service"]))
        before = db_row(slug)
        STACK.fakesf("POST", "fault", fault)
        t0 = time.monotonic()
        status = self.assertOk(check(slug, keys["admin"]))
        STACK.fakesf("POST", "fault/clear")     # a fault the check did not use up
        self.assertEqual(status["status"], "degraded", status)
        self.assertIsInstance(status["last_error"], dict, status)
        self.assertEqual(status["last_error"]["kind"], kind, status)
        self.assertTrue(status["last_error"].get("code"), status)
        self.assertIsNone(status["banner"], status)
        self.assertEqual(banners(slug, keys["viewer"]), {"banners": []})
        self.assertEqual(status_of(slug, keys["viewer"])["status"], "degraded")
        after = db_row(slug)
        self.assertEqual(after["status"], "degraded")
        self.assertEqual(after["last_error_kind"], kind)
        for col in ("access_token_enc", "refresh_token_enc", "generation", "instance_url"):
            self.assertEqual(after[col], before[col], f"{col} changed by a failed refresh")
        self.assertIsNotNone(after["refresh_token_enc"])
        self.assertFalse(the_grant(sf_org_id)["revoked"])
        # The stored token is still served (it is younger than max age).
        served = self.assertOk(token(slug, keys["service"]))
        self.assertEqual(served["access_token"], old["access_token"])
        if forced_code is not None:
            STACK.fakesf("POST", "fault", fault)
            self.assertError(token(slug, keys["service"],
                                   f"?force_refresh=1&generation={old['token_generation']}"),
                             502, forced_code)
            STACK.fakesf("POST", "fault/clear")
            self.assertEqual(db_row(slug)["refresh_token_enc"], before["refresh_token_enc"])
        # A slowed refresh is "in progress" at the simulator until its delay ends.
        left = wait_s - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)
        status = self.assertOk(check(slug, keys["admin"]))
        self.assertConnected(status)
        self.assertEqual(banners(slug, keys["viewer"]), {"banners": []})
        self.assertGreater(db_row(slug)["generation"], before["generation"])
        body = self.assertOk(token(slug, keys["service"]))
        self.assertEqual(api_call(body["instance_url"], body["access_token"]), 200)
        return status

    def test_status_500(self):
        self._degraded("deg-500", {"endpoint": "token_refresh", "kind": "status500"},
                       "transient", "salesforce_unavailable")

    def test_timeout(self):
        delay = HTTP_TIMEOUT_MS + 1000
        t0 = time.monotonic()
        self._degraded("deg-timeout", {"endpoint": "token_refresh", "kind": "delay",
                                       "delay_ms": delay},
                       "transient", None, wait_s=delay / 1000 + 0.3)
        self.assertLess(time.monotonic() - t0, 30)

    def test_malformed_json(self):
        self._degraded("deg-malformed", {"endpoint": "token_refresh", "kind": "malformed"},
                       "transient", "salesforce_unavailable")

    def test_dropped_connection(self):
        # Two drops, so that the test holds whichever the connection: libcurl
        # would re-send once by itself when a reused connection dies before
        # any answer; sf_xfer.c refuses that re-send for a refresh (the first
        # drop is then refresh_outcome_unknown, transient as well).
        self._degraded("deg-drop", {"endpoint": "token_refresh", "kind": "drop",
                                    "count": 2},
                       "transient", "salesforce_unavailable")

    def test_rate_limit(self):
        self._degraded("deg-ratelimit", {"endpoint": "token_refresh", "kind": "rate_limit"},
                       "transient", "salesforce_unavailable")

    def test_invalid_client_is_config(self):
        self._degraded("deg-client", {"endpoint": "token_refresh", "kind": "invalid_client"},
                       "config", "salesforce_error")

    def test_already_processing_twice_is_transient(self):
        # The daemon re-reads and retries once: two answers in a row degrade it.
        self._degraded("deg-busy", {"endpoint": "token_refresh",
                                    "kind": "already_processing", "count": 2},
                       "transient", "salesforce_unavailable")

    def test_already_processing_once_is_retried(self):
        slug = "deg-busy-once"
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        rt = the_grant(sf_org_id)["refresh_token"]
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh",
                                       "kind": "already_processing", "count": 1})
        since = time.time()
        self.assertConnected(self.assertOk(check(slug, keys["admin"])))
        self.assertEqual(len(refreshes_with({rt}, since)), 2)
        self.assertFalse(the_grant(sf_org_id)["revoked"])


# ---------------------------------------------------------------- rotated token, failed write

class BulkCheckTest(LifecycleCase):
    def bulk(self, body, key=None):
        return req("POST", "/api/v1/admin/integrations/check",
                   key=key or STACK.operator_key, body=body, timeout=120)

    def test_bulk_check_counts_and_marks(self):
        keys_a, keys_b = new_org("bulk-a"), new_org("bulk-b")
        connect("bulk-a", keys_a["admin"])
        sf_b = connect("bulk-b", keys_b["admin"])
        STACK.fakesf("POST", "revoke_refresh", {"org_id": sf_b})
        before_a = status_of("bulk-a", keys_a["viewer"])["last_checked_at"]
        time.sleep(1.1)     # last_checked_at has a one-second resolution
        counts = self.assertOk(self.bulk({"status": "connected", "older_than_s": 0}))
        for k in ("checked", "connected", "degraded", "invalid", "duration_ms"):
            self.assertIsInstance(counts.get(k), int, counts)
        self.assertEqual(counts["checked"],
                         counts["connected"] + counts["degraded"] + counts["invalid"])
        self.assertGreaterEqual(counts["checked"], 2, counts)
        self.assertGreaterEqual(counts["invalid"], 1, counts)
        self.assertEqual(status_of("bulk-b", keys_b["viewer"])["status"], "invalid")
        after_a = status_of("bulk-a", keys_a["viewer"])
        self.assertEqual(after_a["status"], "connected")
        self.assertGreater(after_a["last_checked_at"], before_a)
        # Everything connected was checked just now: nothing is older than an hour.
        again = self.assertOk(self.bulk({"status": "connected", "older_than_s": 3600}))
        self.assertEqual(again["checked"], 0, again)
        # The invalid one can be re-checked on purpose.
        inv = self.assertOk(self.bulk({"status": "invalid"}))
        self.assertGreaterEqual(inv["invalid"], 1, inv)

    def test_bulk_check_validation_and_roles(self):
        keys = new_org("bulk-roles")
        for body in ({"status": "disconnected"}, {"status": "bogus"},
                     {"older_than_s": -1}, {"older_than_s": "10"}, {"unknown": 1}):
            with self.subTest(body=body):
                self.assertError(self.bulk(body), 400, "bad_request")
        for role in ("admin", "viewer", "service"):
            self.assertError(self.bulk({}, key=keys[role]), 403, "forbidden")


class RowLockTest(LifecycleCase):
    def test_lock_timeout_answers_503_and_leaves_workers_healthy(self):
        slug = "lock-held"
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        old = self.assertOk(token(slug, keys["service"]))
        # Another session holds the org's row until both calls have given up.
        locker = subprocess.Popen(
            [STACK._pg("psql"), "-X", "-q", "-h", STACK.pg_dir, "-U", "app", "-d", "app",
             "-c", "BEGIN; SELECT 1 FROM integrations WHERE org_id = (SELECT id FROM orgs "
                   f"WHERE slug = '{slug}') FOR UPDATE; SELECT pg_sleep(120); COMMIT;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, PGAPPNAME="sfc-test-locker"))
        try:
            time.sleep(0.5)
            sf_config(org_id=sf_org_id)
            st, _, answer = req("POST", SF.format(slug) + "/connect", key=keys["admin"],
                                body={})
            self.assertEqual(st, 200, answer)
            callback = STACK.authorize(answer["authorize_url"])
            q = f"?force_refresh=1&generation={old['token_generation']}"
            results = crowd(2, lambda i: token(slug, keys["service"], q, timeout=60)
                            if i == 0 else STACK.follow_callback(callback, accept_json=True))
        finally:
            STACK.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name = 'sfc-test-locker'")
            locker.wait(60)
        self.assertError(results[0], 503, "service_unavailable")
        self.assertError(results[1], 503, "service_unavailable")
        self.assertEqual(results[1][1].get("retry-after"), "2", results[1][1])  # as every 503
        # Every worker is still fine: no transaction was left open.
        for _ in range(4 * STACK.workers):
            st, _, body = req("GET", SF.format(slug), key=keys["viewer"])
            self.assertEqual(st, 200, body)
        self.assertOk(token(slug, keys["service"], q))

    def test_concurrent_removes_revoke_and_audit_once(self):
        slug = "lock-remove"
        keys = new_org(slug)
        connect(slug, keys["admin"])
        results = crowd(5, lambda i: req("DELETE", SF.format(slug), key=keys["admin"]))
        for st, _, body in results:
            self.assertEqual(st, 200, body)
            self.assertEqual(body["status"], "disconnected", body)
        self.assertEqual(sum(1 for r in results if r[2]["revoked"]), 1, results)
        st, _, audit = req("GET", f"/api/v1/orgs/{slug}/audit", key=keys["admin"])
        self.assertEqual(st, 200, audit)
        self.assertEqual(sum(1 for e in audit["events"] if e["action"] == "disconnected"), 1)


class RotatedWriteFailureTest(LifecycleCase):
    def test_rotated_token_survives_terminated_backends(self):
        slug = "rot-dbfail"
        keys = new_org(slug)
        sf_org_id = connect(slug, keys["admin"])
        old = self.assertOk(token(slug, keys["service"]))
        gen0 = old["token_generation"]
        sf_config(rotation=True)
        r0 = the_grant(sf_org_id)["refresh_token"]
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "delay",
                                       "delay_ms": 1500, "count": 1})
        log_before = len(STACK.daemon_log())
        since = time.time()
        result = {}

        def call():
            try:
                result["r"] = token(slug, keys["service"],
                                    f"?force_refresh=1&generation={gen0}", timeout=60)
            except Exception as e:  # reported below
                result["e"] = e
        t = threading.Thread(target=call)
        t.start()
        try:
            deadline = time.monotonic() + 10
            while not refreshes_with({r0}, since) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(refreshes_with({r0}, since), "the refresh never reached fakesf")
            time.sleep(0.3)          # well inside the 1.5 s delay
            killed = STACK.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'sfconnect'")
            self.assertTrue(killed, "no sfconnect backend to terminate")
        finally:
            t.join(60)
        self.assertNotIn("e", result, result.get("e"))
        st, _, body = result["r"]
        self.assertIn(st, (200, 503), body)
        grant = the_grant(sf_org_id)
        self.assertFalse(grant["revoked"], "the grant was revoked: a rotated token was lost")
        self.assertNotEqual(grant["refresh_token"], r0, "the simulator did not rotate")
        row = db_row(slug)
        self.assertEqual(row["generation"], gen0 + 1,
                         "the rotated token's write was not retried")
        self.assertEqual(row["status"], "connected", row)
        if st == 200:
            self.assertEqual(body["token_generation"], gen0 + 1)
        log = STACK.daemon_log()[log_before:]
        self.assertIn("rotated_token_saved", log)
        self.assertNotIn("rotated_token_lost", log)
        heal_workers(slug, keys["viewer"])
        # The next refresh uses the stored rotated token and works.
        r1 = grant["refresh_token"]
        body = self.assertOk(token(slug, keys["service"],
                                   f"?force_refresh=1&generation={gen0 + 1}"))
        self.assertEqual(body["token_generation"], gen0 + 2)
        self.assertEqual(api_call(body["instance_url"], body["access_token"]), 200)
        grant = the_grant(sf_org_id)
        self.assertFalse(grant["revoked"], grant)
        r2 = grant["refresh_token"]
        self.assertConnected(self.assertOk(check(slug, keys["admin"])))
        used = [r["form"]["refresh_token"]
                for r in refreshes_with({r0, r1, r2, the_grant(sf_org_id)["refresh_token"]},
                                        since)]
        self.assertEqual(used, [r0, r1, r2], "a superseded refresh token was presented")


# ---------------------------------------------------------------- background check, two daemons

class ZBackgroundCheckTest(LifecycleCase):
    """Last: it restarts the daemon with a short check_interval_s (and puts the
    long one back afterwards)."""

    def test_two_daemons_check_each_org_once_per_round(self):
        op = STACK.operator_key
        slugs = [f"bg-{i:03d}" for i in range(BG_ORGS)]
        t0 = time.monotonic()
        sf_ids = {}
        for s in slugs:
            self.assertOk(req("POST", "/api/v1/admin/orgs", key=op,
                              body={"slug": s, "name": s}), 201)
            sf_ids[connect(s, op)] = s
        connect_s = time.monotonic() - t0
        print(f"\n  connected {BG_ORGS} orgs in {connect_s:.1f}s "
              f"({1000 * connect_s / BG_ORGS:.0f} ms each)", file=sys.stderr, flush=True)
        slug_of_token = {g["refresh_token"]: sf_ids[g["org_id"]]
                         for g in STACK.fakesf("GET", "grants") if g["org_id"] in sf_ids}
        self.assertEqual(len(slug_of_token), BG_ORGS)
        log1, log2 = len(STACK.daemon_log(1)), 0
        # Nothing is due until the test says so, however long the connects took.
        STACK.psql("UPDATE integrations SET last_checked_at = now() + interval '1 hour' "
                   "WHERE org_id IN (SELECT id FROM orgs WHERE slug LIKE 'bg-%')")
        try:
            STACK.restart_daemon(config={"check_interval_s": BG_INTERVAL_S})
            STACK.start_second_daemon(config={"check_interval_s": BG_INTERVAL_S})
            # Make every org due at once, now that both checkers run. The
            # first refreshes are slowed down so that whichever checker comes
            # first is still busy when the other one looks.
            since = time.time()
            STACK.fakesf("POST", "counts/reset")
            STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "delay",
                                           "delay_ms": 800, "count": 16})
            STACK.psql("UPDATE integrations SET last_checked_at = now() - interval '1 hour' "
                       "WHERE org_id IN (SELECT id FROM orgs WHERE slug LIKE 'bg-%')")
            deadline = time.monotonic() + 60
            while True:
                reqs = [r for r in refresh_requests(since)
                        if r["form"].get("refresh_token") in slug_of_token]
                seen = {slug_of_token[r["form"]["refresh_token"]] for r in reqs}
                if len(seen) == BG_ORGS or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            round_end = time.time()
            time.sleep(0.5)          # a duplicate of this round would show up now
            reqs = [r for r in refresh_requests(since)
                    if r["form"].get("refresh_token") in slug_of_token]
        finally:
            STACK.stop_second_daemon()
            log2_text = STACK.daemon_log(2)
            STACK.restart_daemon(config={"check_interval_s": 86400})
        self.assertEqual(len(seen), BG_ORGS,
                         f"only {len(seen)} of {BG_ORGS} orgs were checked within 60 s")
        times = {}
        for r in reqs:
            times.setdefault(slug_of_token[r["form"]["refresh_token"]], []).append(r["at"])
        first = min(min(v) for v in times.values())
        last_first = max(min(v) for v in times.values())
        round_s = last_first - first
        print(f"  background round over {BG_ORGS} orgs took {round_s:.2f}s "
              f"(interval {BG_INTERVAL_S}s)", file=sys.stderr, flush=True)
        # Within one interval after an org's check, nobody checks it again.
        twice = {s: sorted(v) for s, v in times.items()
                 if any(b - a < BG_INTERVAL_S - 0.25 for a, b in zip(sorted(v), sorted(v)[1:]))}
        self.assertEqual(twice, {}, f"{len(twice)} orgs were checked twice in a round")
        if round_s < BG_INTERVAL_S - 1:
            in_round = {s: len([t for t in v if t <= round_end]) for s, v in times.items()}
            self.assertEqual(set(in_round.values()), {1}, in_round)
        # Both daemons took part.
        d1 = STACK.daemon_log(1)[log1:]
        n1 = sum(int(m) for m in re.findall(r'"msg":"(\d+) checked', d1))
        n2 = sum(int(m) for m in re.findall(r'"msg":"(\d+) checked', log2_text[log2:]))
        print(f"  checked by daemon 1: {n1}, by daemon 2: {n2}", file=sys.stderr, flush=True)
        self.assertGreaterEqual(n1 + n2, BG_ORGS)
        self.assertGreater(n1, 0, "the first daemon checked nothing")
        self.assertGreater(n2, 0, "the second daemon checked nothing")
        bad = STACK.psql("SELECT o.slug, i.status FROM integrations i JOIN orgs o "
                         "ON o.id = i.org_id WHERE o.slug LIKE 'bg-%' "
                         "AND i.status <> 'connected'")
        self.assertEqual(bad, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
