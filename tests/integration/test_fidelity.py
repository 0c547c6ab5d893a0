"""Salesforce as it really behaves (issue 10, "sfconnect handles each of
them"): one test per bullet, through nginx, against the simulator's
Refresh Token Policy, clock, error zoo, faults and authorize errors.

- test_1_*: a refresh whose answer is lost is refresh_outcome_unknown, not
  re-sent; refresh_timeout_ms of its own.
- test_2_*: every token-endpoint error classified from a table (case-
  insensitive, OAUTH_*), unknown codes transient and logged; a warning
  banner after degraded_alert_after_s.
- test_3_*: invalid re-checked on a slow schedule when it may heal; a token
  reported revoked or expired is not re-presented.
- test_4_*: hints that fit the cause, with a stable hint_code.
- test_5_*: a refresh naming another OrgID is refused.
- test_6_*: prompt on every authorize URL (connect_prompt).
- test_7_*: readable callback reasons; the granted scope stored, shown and
  checked (insufficient_scope).

New configuration keys are passed as SFCONNECT_* variables, which a build
without them ignores: on such a build every test here starts and fails on
its own assertion.
"""

import http.server
import json
import os
import sys
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fakesf"))
import fakesf  # noqa: E402
from harness import CLIENT_SECRET, Stack  # noqa: E402

STACK = None
HOOKS = None
SF = "/api/v1/orgs/{}/integrations/salesforce"
HTTP_TIMEOUT_MS = 1500
REFRESH_TIMEOUT_MS = 4000
FAST_CHECKER = {"SFCONNECT_CHECK_INTERVAL_S": "2",
                "SFCONNECT_INVALID_RECHECK_INTERVAL_S": "3"}


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_):
        pass


class _Lazy:
    def __init__(self, fn):
        self.fn = fn

    def __str__(self):
        return self.fn()


def setUpModule():
    global STACK, HOOKS
    HOOKS = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=HOOKS.serve_forever, daemon=True).start()
    STACK = Stack(workers=2,
                  config={"http_timeout_ms": HTTP_TIMEOUT_MS, "refresh_timeout_ms": None,
                          "check_interval_s": 86400, "refresh_lock_timeout_ms": 8000,
                          "webhook_url": f"http://127.0.0.1:{HOOKS.server_address[1]}/hook",
                          "webhook_secret_file": _Lazy(lambda: STACK.path("webhook_secret"))},
                  daemon_env={"SFCONNECT_REFRESH_TIMEOUT_MS": str(REFRESH_TIMEOUT_MS),
                              "SFCONNECT_INVALID_RECHECK_INTERVAL_S": "86400"})
    STACK.start()


def tearDownModule():
    if STACK is not None:
        STACK.stop()
    if HOOKS is not None:
        HOOKS.shutdown()


# ---------------------------------------------------------------- helpers

def req(*args, **kwargs):
    return STACK.request(*args, **kwargs)


N = [0]


def new_org(prefix):
    N[0] += 1
    slug = f"{prefix}-{N[0]:02d}"
    STACK.create_org(slug)
    return slug, {role: STACK.create_key(slug, role, f"{slug}-{role}")
                  for role in ("admin", "viewer", "service")}


def connect(slug, keys, **sf):
    """Connects slug as a new Salesforce org and user (so that no user runs
    into the five-approval limit); answers the status object."""
    cfg = STACK.fakesf("POST", "config", dict({"org_id": "new", "user_id": "new"}, **sf))
    st, _, status = STACK.connect_org(slug, keys["admin"], accept_json=True)
    if st != 200 or status.get("status") != "connected":
        raise AssertionError(f"connect {slug}: {st} {status}")
    status["_sf"] = cfg
    return status


def check(slug, keys):
    st, _, status = req("POST", SF.format(slug) + "/check", key=keys["admin"])
    if st != 200:
        raise AssertionError(f"check {slug}: {st} {status}")
    return status


def status_of(slug, keys):
    st, _, status = req("GET", SF.format(slug), key=keys["viewer"])
    if st != 200:
        raise AssertionError(f"status {slug}: {st} {status}")
    return status


def banners(slug, keys):
    st, _, body = req("GET", f"/api/v1/orgs/{slug}/banners", key=keys["viewer"])
    if st != 200:
        raise AssertionError(f"banners {slug}: {st} {body}")
    return body["banners"]


def fault(**f):
    STACK.fakesf("POST", "fault", f)


def grant_of(sf_org_id):
    g = [g for g in STACK.fakesf("GET", "grants") if g["org_id"] == sf_org_id]
    if len(g) != 1:
        raise AssertionError(f"expected one grant of {sf_org_id}: {g}")
    return g[0]


def refreshes_with(token):
    return [r for r in STACK.fakesf("GET", "requests?endpoint=token_refresh")
            if (r.get("form") or {}).get("refresh_token") == token]


def db(slug, *cols):
    rows = STACK.psql(f"SELECT {', '.join(cols)} FROM integrations i JOIN orgs o "
                      f"ON o.id = i.org_id WHERE o.slug = '{slug}'")
    return dict(zip(cols, rows[0]))


def age_last_refresh(slug, seconds):
    STACK.psql(f"UPDATE integrations SET last_refreshed_at = now() - "
               f"make_interval(secs => {seconds}) WHERE org_id = "
               f"(SELECT id FROM orgs WHERE slug = '{slug}')")


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def signed_answer(sf_org_id, sf_user_id, refresh_token):
    """A correctly signed 200 refresh answer whose id names sf_org_id."""
    port = STACK.fakesf_port
    ident = f"https://login.localhost:{port}/id/{sf_org_id}/{sf_user_id}"
    issued = str(int(time.time() * 1000))
    sig = fakesf.sign(ident, issued, CLIENT_SECRET)
    return {"access_token": "00Dforeign!AQ" + "x" * 40, "refresh_token": refresh_token,
            "instance_url": f"https://acme.my.localhost:{port}", "id": ident,
            "issued_at": issued, "signature": sig, "token_type": "Bearer",
            "scope": "api refresh_token id"}


class FidelityCase(unittest.TestCase):
    def setUp(self):
        STACK.fakesf("POST", "fault/clear")
        STACK.fakesf("POST", "config", {"rotation": False, "ip_restricted": False,
                                        "withhold_scopes": [], "authorize_error": None,
                                        "refresh_policy": "valid_until_revoked"})

    tearDown = setUp

    def assertBanner(self, slug, keys, level, hint_code, *texts):
        status = status_of(slug, keys)
        b = status["banner"]
        self.assertIsInstance(b, dict, status)
        self.assertEqual(b["level"], level, b)
        self.assertEqual(b.get("hint_code"), hint_code, b)
        self.assertEqual(b["action"]["label"], "Reconnect", b)
        for t in texts:
            self.assertIn(t, b["hint"] + " " + b["message"], b)
        self.assertEqual(banners(slug, keys), [b])
        return b


# ---------------------------------------------------------------- 1

class RefreshOutcomeTest(FidelityCase):
    def test_1_refresh_timeout_is_its_own(self):
        """A refresh may take longer than http_timeout_ms: refresh_timeout_ms."""
        slug, keys = new_org("rto")
        connect(slug, keys)
        fault(endpoint="token_refresh", kind="delay", delay_ms=HTTP_TIMEOUT_MS + 1000)
        status = check(slug, keys)
        self.assertEqual(status["status"], "connected", status)

    def test_1_lost_answer_is_outcome_unknown_and_not_resent(self):
        slug, keys = new_org("lost")
        s = connect(slug, keys)
        token = grant_of(s["salesforce_org_id"])["refresh_token"]
        for kind, extra in (("drop_after", {}),
                            ("delay_after", {"delay_ms": REFRESH_TIMEOUT_MS + 800})):
            with self.subTest(kind=kind):
                before = len(refreshes_with(token))
                fault(endpoint="token_refresh", kind=kind, **extra)
                status = check(slug, keys)
                self.assertEqual(status["status"], "degraded", status)
                self.assertEqual(status["last_error"]["code"], "refresh_outcome_unknown", status)
                self.assertEqual(status["last_error"]["kind"], "transient", status)
                self.assertIsNone(status["banner"], status)
                self.assertEqual(len(refreshes_with(token)) - before, 1,
                                 "the refresh was sent again in the same call")
                time.sleep(extra.get("delay_ms", 0) / 1000)
                # The next try presents the stored token (no rotation: it lives).
                self.assertEqual(check(slug, keys)["status"], "connected")
        self.assertIn('"refresh_outcome_unknown"', STACK.daemon_log())


# ---------------------------------------------------------------- 2

ZOO = [
    # fault kind (or an error body), status, last_error.kind
    ({"kind": "expired_token"}, "invalid", "invalid"),
    ({"kind": "authentication_failure"}, "invalid", "invalid"),
    ({"kind": "not_approved"}, "invalid", "invalid"),
    ({"kind": "ip_restricted"}, "invalid", "invalid"),
    ({"kind": "token_validity_expired"}, "invalid", "invalid"),
    ({"kind": "inactive_user"}, "invalid", "invalid"),
    ({"kind": "inactive_org"}, "invalid", "invalid"),
    ({"kind": "app_blocked"}, "invalid", "invalid"),
    ({"kind": "ec_app_not_found"}, "degraded", "config"),
    ({"kind": "html_400"}, "degraded", "transient"),
    ({"kind": "text_400"}, "degraded", "transient"),
    ({"kind": "error", "error": "INVALID_GRANT",
      "error_description": "Expired Access/Refresh Token"}, "invalid", "invalid"),
    ({"kind": "error", "error": "oauth_app_access_denied"}, "invalid", "invalid"),
    ({"kind": "error", "error": "brand_new_code",
      "error_description": "something Salesforce never said before"}, "degraded", "transient"),
]


class ClassificationTest(FidelityCase):
    def test_2_every_token_error_is_classified(self):
        for f, status_want, kind_want in ZOO:
            with self.subTest(fault=f):
                slug, keys = new_org("zoo")
                connect(slug, keys)
                fault(endpoint="token_refresh", **f)
                status = check(slug, keys)
                self.assertEqual((status["status"], status["last_error"]["kind"]),
                                 (status_want, kind_want), status)
                if status_want == "invalid":
                    self.assertTrue(status["banner"].get("hint_code"), status)
        log = STACK.daemon_log()
        self.assertIn("sf_unknown_error", log)
        self.assertIn("brand_new_code (something Salesforce never said before)", log)

    def test_2_degraded_too_long_shows_a_warning(self):
        slug, keys = new_org("alert")
        connect(slug, keys)
        fault(endpoint="token_refresh", kind="status500")
        self.assertEqual(check(slug, keys)["status"], "degraded")
        age_last_refresh(slug, 5 * 3600)
        self.assertIsNone(status_of(slug, keys)["banner"])
        self.assertEqual(banners(slug, keys), [])
        age_last_refresh(slug, 6 * 3600 + 60)   # degraded_alert_after_s: 6 h by default
        b = self.assertBanner(slug, keys, "warning", "salesforce_unavailable")
        self.assertEqual(b["code"], "salesforce_degraded")
        self.assertIn("6 hours", b["message"])
        # Any cause: an unknown code too.
        fault(endpoint="token_refresh", kind="error", error="brand_new_code")
        self.assertEqual(check(slug, keys)["status"], "degraded")
        self.assertBanner(slug, keys, "warning", "unknown_error")


# ---------------------------------------------------------------- 3, and the policies on the clock

class BackgroundTest(FidelityCase):
    """The background checker, fast: check_interval_s 2, re-checks every 3 s."""

    @classmethod
    def setUpClass(cls):
        STACK.restart_daemon(daemon_env=FAST_CHECKER)

    @classmethod
    def tearDownClass(cls):
        STACK.restart_daemon(daemon_env={"SFCONNECT_CHECK_INTERVAL_S": "86400",
                                         "SFCONNECT_INVALID_RECHECK_INTERVAL_S": "86400"})

    def test_3_ip_restriction_that_clears_recovers_by_itself(self):
        slug, keys = new_org("heal")
        connect(slug, keys)
        STACK.fakesf("POST", "config", {"ip_restricted": True})
        status = check(slug, keys)
        self.assertEqual(status["status"], "invalid", status)
        self.assertEqual(status["banner"].get("hint_code"), "ip_or_hours_restricted", status)
        time.sleep(4)   # a re-check while still restricted: still invalid
        self.assertEqual(status_of(slug, keys)["status"], "invalid")
        STACK.fakesf("POST", "config", {"ip_restricted": False})
        wait_for(lambda: status_of(slug, keys)["status"] == "connected", 15,
                 "the re-check to reconnect")
        self.assertIsNone(status_of(slug, keys)["banner"])
        st, _, audit = req("GET", f"/api/v1/orgs/{slug}/audit", key=keys["admin"])
        self.assertIn("integration.recovered", [e["action"] for e in audit["events"]], audit)
        types = [r[0] for r in STACK.psql(
            "SELECT type FROM webhook_outbox w JOIN orgs o ON o.id = w.org_id "
            f"WHERE o.slug = '{slug}' ORDER BY w.id")]
        self.assertEqual(types[-1], "integration.recovered", types)

    def test_3_revoked_or_expired_is_not_represented(self):
        slug, keys = new_org("dead")
        s = connect(slug, keys)
        token = grant_of(s["salesforce_org_id"])["refresh_token"]
        STACK.fakesf("POST", "revoke_refresh", {"org_id": s["salesforce_org_id"]})
        self.assertEqual(check(slug, keys)["status"], "invalid")
        n = len(refreshes_with(token))
        time.sleep(7)   # two re-check periods
        self.assertEqual(len(refreshes_with(token)), n, "a revoked token was presented again")
        self.assertEqual(status_of(slug, keys)["status"], "invalid")

    def test_policy_expire_if_unused_is_kept_alive(self):
        """Refresh Token Policy "expire if not used for 1 h": the background
        keep-alive refreshes well inside it, over 2 h of the simulator's clock."""
        STACK.fakesf("POST", "config", {"refresh_policy": "expire_if_unused",
                                        "refresh_policy_s": 3600})
        slug, keys = new_org("unused")
        s = connect(slug, keys)
        for _ in range(3):
            STACK.fakesf("POST", "clock", {"advance_s": 2400})
            before = status_of(slug, keys)["last_refreshed_at"]
            wait_for(lambda: status_of(slug, keys)["last_refreshed_at"] != before, 15,
                     "a background refresh")
            self.assertEqual(status_of(slug, keys)["status"], "connected")
        self.assertIsNone(grant_of(s["salesforce_org_id"])["expired"])

    def test_policy_expire_after_ends_invalid_with_its_hint(self):
        STACK.fakesf("POST", "config", {"refresh_policy": "expire_after",
                                        "refresh_policy_s": 3600})
        slug, keys = new_org("after")
        s = connect(slug, keys)
        STACK.fakesf("POST", "clock", {"advance_s": 3700})
        wait_for(lambda: status_of(slug, keys)["status"] == "invalid", 15,
                 "the background check to find the expired token")
        self.assertEqual(grant_of(s["salesforce_org_id"])["expired"], "expire_after")
        self.assertBanner(slug, keys, "error", "refresh_token_policy",
                          "Refresh token is valid until revoked")


# ---------------------------------------------------------------- 4

class HintTest(FidelityCase):
    CASES = [
        ({"kind": "inactive_user"}, "user_inactive", ["{user} was deactivated",
                                                     "reconnect as an active user"]),
        ({"kind": "authentication_failure"}, "user_inactive", ["reconnect as an active user"]),
        ({"kind": "expired_token"}, "refresh_token_policy",
         ["Refresh token is valid until revoked", "revoked"]),
        ({"kind": "app_blocked"}, "app_blocked", ["unblock"]),
        ({"kind": "error", "error": "OAUTH_APP_ACCESS_DENIED"}, "app_access_denied",
         ["removed the app's access"]),
        ({"kind": "ip_restricted"}, "ip_or_hours_restricted",
         ["IP restrictions or login hours", "integration user"]),
        ({"kind": "not_approved"}, "app_not_approved", ["profile or permission set"]),
        ({"kind": "inactive_org"}, "org_inactive", ["reactivated"]),
    ]

    def test_4_hints_fit_the_cause(self):
        for f, hint_code, texts in self.CASES:
            with self.subTest(fault=f):
                slug, keys = new_org("hint")
                s = connect(slug, keys, username=f"integration@{slug}.example")
                fault(endpoint="token_refresh", **f)
                self.assertEqual(check(slug, keys)["status"], "invalid")
                user = f"the Salesforce user {s['_sf']['username']}"
                self.assertBanner(slug, keys, "error", hint_code,
                                  *[t.replace("{user}", user) for t in texts])

    def test_4_new_orgid_hint(self):
        """A sandbox refresh makes a new OrgID: the hint says so (once the
        refused refreshes have lasted degraded_alert_after_s)."""
        slug, keys = new_org("newid")
        s = connect(slug, keys)
        fault(endpoint="token_refresh", kind="error", status=200,
              content_type="application/json",
              body=json.dumps(signed_answer(fakesf.random_id("00D"), s["salesforce_user"]["id"],
                                            "5Aep_kept_" + "k" * 30)))
        self.assertEqual(check(slug, keys)["status"], "degraded")
        age_last_refresh(slug, 7 * 3600)
        self.assertBanner(slug, keys, "warning", "org_changed", "new OrgID")


# ---------------------------------------------------------------- 5

class OrgIdTest(FidelityCase):
    def test_5_refresh_naming_another_orgid_is_refused(self):
        slug, keys = new_org("orgid")
        s = connect(slug, keys)
        before = db(slug, "token_generation", "refresh_token_fp", "access_token_enc")
        fault(endpoint="token_refresh", kind="error", status=200,
              content_type="application/json",
              body=json.dumps(signed_answer(fakesf.random_id("00D"), s["salesforce_user"]["id"],
                                            "5Aep_rotated_" + "r" * 30)))
        status = check(slug, keys)
        self.assertEqual(status["status"], "degraded", status)
        self.assertEqual(status["last_error"]["code"], "org_mismatch", status)
        self.assertEqual(status["salesforce_org_id"], s["salesforce_org_id"])
        after = db(slug, "token_generation", "refresh_token_fp", "access_token_enc")
        self.assertEqual(after["access_token_enc"], before["access_token_enc"])
        self.assertEqual(after["token_generation"], before["token_generation"])
        # The rotated refresh token of the refused answer is kept.
        self.assertNotEqual(after["refresh_token_fp"], before["refresh_token_fp"])


# ---------------------------------------------------------------- 6

class PromptTest(FidelityCase):
    def authorize_query(self, slug, keys):
        st, _, answer = req("POST", SF.format(slug) + "/connect", key=keys["admin"], body={})
        self.assertEqual(st, 200, answer)
        return urllib.parse.parse_qs(urllib.parse.urlsplit(answer["authorize_url"]).query,
                                     keep_blank_values=True)

    def test_6_every_authorize_url_carries_prompt(self):
        slug, keys = new_org("prompt")
        self.assertEqual(self.authorize_query(slug, keys).get("prompt"), ["login"])
        try:
            for value, want in (("login consent", ["login consent"]),
                                ("select_account", ["select_account"]), ("", None)):
                with self.subTest(connect_prompt=value):
                    STACK.restart_daemon(daemon_env={"SFCONNECT_CONNECT_PROMPT": value})
                    self.assertEqual(self.authorize_query(slug, keys).get("prompt"), want)
        finally:
            STACK.restart_daemon(daemon_env={"SFCONNECT_CONNECT_PROMPT": "login"})


# ---------------------------------------------------------------- 7

class CallbackTest(FidelityCase):
    def callback_reason(self, slug, keys):
        st, headers, _ = STACK.connect_org(slug, keys["admin"])
        self.assertEqual(st, 303)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(headers["location"]).query)
        self.assertEqual(q["salesforce"], ["error"], headers["location"])
        return q["reason"][0]

    def test_7_reason_keeps_salesforce_code(self):
        slug, keys = new_org("reason")
        for error, want in (("OAUTH_APP_ACCESS_DENIED", "OAUTH_APP_ACCESS_DENIED"),
                            ("OAUTH_APP_BLOCKED", "OAUTH_APP_BLOCKED"),
                            ("access_denied", "access_denied"),
                            ("Bad<Code>&x=1", "BadCodex1"),
                            ("A" * 60, "A" * 48)):
            with self.subTest(error=error):
                STACK.fakesf("POST", "config", {"authorize_error": error})
                self.assertEqual(self.callback_reason(slug, keys), want)
        self.assertEqual(status_of(slug, keys)["status"], "disconnected")

    def test_7_granted_scope_is_stored_and_checked(self):
        slug, keys = new_org("scope")
        s = connect(slug, keys)
        self.assertEqual(sorted(s.get("scope", "").split()), ["api", "id", "refresh_token"], s)
        self.assertEqual(status_of(slug, keys).get("scope"), s["scope"])
        # A reconnect granted less than salesforce_scope: refused, tokens revoked.
        before = db(slug, "refresh_token_fp", "token_generation")
        STACK.fakesf("POST", "config", {"org_id": s["salesforce_org_id"],
                                        "user_id": s["salesforce_user"]["id"],
                                        "withhold_scopes": ["api"]})
        self.assertEqual(self.callback_reason(slug, keys), "insufficient_scope")
        self.assertEqual(db(slug, "refresh_token_fp", "token_generation"), before)
        narrow = [g for g in STACK.fakesf("GET", "grants")
                  if g["org_id"] == s["salesforce_org_id"] and "api" not in g["scope"].split()]
        self.assertEqual(len(narrow), 1, narrow)
        self.assertTrue(narrow[0]["revoked"], narrow)
        self.assertEqual(status_of(slug, keys)["status"], "connected")


# ---------------------------------------------------------------- identity on the login host

class IdentityHostTest(FidelityCase):
    def test_identity_is_fetched_from_the_login_host(self):
        port = STACK.fakesf_port
        for body, id_host in (({"my_domain": f"acme.my.localhost:{port}"},
                               f"login.localhost:{port}"),
                              ({"environment": "sandbox",
                                "my_domain": f"acme--uat.sandbox.my.localhost:{port}"},
                               f"test.localhost:{port}")):
            with self.subTest(body=body):
                slug, keys = new_org("idhost")
                cfg = STACK.fakesf("POST", "config", {"org_id": "new", "user_id": "new"})
                st, _, status = STACK.connect_org(slug, keys["admin"], body=body,
                                                  accept_json=True)
                self.assertEqual((st, status.get("status")), (200, "connected"), status)
                seen = [r["host"] for r in STACK.fakesf("GET", "requests?endpoint=identity")
                        if cfg["org_id"] in r["path"]]
                self.assertEqual(seen, [id_host])


if __name__ == "__main__":
    unittest.main()
