"""The OAuth state is bound to the browser that started the connect (RFC 6749
section 10.12, RFC 9700 section 4.7), through nginx, against the Salesforce
simulator.

POST .../connect answers start_url on sfconnect's own origin; opening it sets
a short-lived HttpOnly, SameSite=Lax, path-scoped cookie holding a nonce (its
SHA-256 is stored with the state) and 303s to the state's authorize URL. The
callback refuses a state whose browser lacks that cookie (another browser, a
wrong nonce): reason browser_mismatch, the code is not exchanged, the stored
row stays as it was, the state is consumed. The cookie is cleared on every
outcome. start_url works once, only while its state is unexpired and unused,
and only ever redirects to the state's own authorize URL.
connect_bind_browser = false (a second daemon here) keeps the API-only flow
that follows authorize_url itself working."""

import hashlib
import itertools
import os
import secrets
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import OAUTH_PREFIX, Browser, Stack, url_state  # noqa: E402

STACK = None
SF = "/api/v1/orgs/{}/integrations/salesforce"
CALLBACK_PATH = OAUTH_PREFIX + "callback"
START_PATH = OAUTH_PREFIX + "start"
COOKIE_PREFIX = "sfc_oauth_"
_SEQ = itertools.count(1)


def setUpModule():
    global STACK
    STACK = Stack(workers=2)
    STACK.start()
    if not STACK.fakesf_info:
        raise unittest.SkipTest("the Salesforce simulator is not available")


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def path_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


def set_cookies(headers):
    """The Set-Cookie lines of a response (request() joins them with ", ";
    ours carry no Expires, so no comma of their own)."""
    raw = headers.get("set-cookie")
    return [c.strip() for c in raw.split(", ")] if raw else []


def cookie_name(state):
    """The binding cookie of a state: its name carries 16 hex digits of the
    state's SHA-256, so flows in parallel tabs do not clash."""
    return COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]


def query(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


class BindingCase(unittest.TestCase):
    def setUp(self):
        STACK.fakesf("POST", "reset")

    def make_org(self, prefix):
        slug = f"{prefix}-{next(_SEQ)}"
        STACK.create_org(slug)
        return slug, STACK.create_key(slug, "admin")

    def connect(self, org, key, port=None):
        st, headers, answer = STACK.request("POST", SF.format(org) + "/connect", key=key,
                                            body={}, port=port)
        self.assertEqual(st, 200, answer)
        self.assertIn("authorize_url", answer)
        self.assertIn("start_url", answer)
        return answer

    def start(self, answer, browser, port=None):
        """Opens start_url in browser: answers request()'s triple."""
        return STACK.request("GET", path_of(answer["start_url"]), browser=browser, port=port)

    def sign_in(self, authorize_url):
        """The simulator's authorize page: answers the callback URL."""
        return STACK.authorize(authorize_url, browser=None)

    def callback(self, cb, browser, accept_json=False, port=None):
        return STACK.request("GET", path_of(cb), browser=browser, port=port,
                             headers={"Accept": "application/json"} if accept_json else None)

    def row(self, org):
        rows = STACK.psql("SELECT * FROM integrations WHERE org_id = "
                          f"(SELECT id FROM orgs WHERE slug = '{org}')")
        self.assertEqual(len(rows), 1, rows)
        return rows[0]

    def states(self, org):
        return int(STACK.psql("SELECT count(*) FROM oauth_states WHERE org_id = "
                              f"(SELECT id FROM orgs WHERE slug = '{org}')")[0][0])

    def token_codes(self):
        return STACK.fakesf("GET", "counts")["token_code"]

    def audit(self, org, key):
        st, _, body = STACK.request("GET", f"/api/v1/orgs/{org}/audit?limit=20", key=key)
        self.assertEqual(st, 200, body)
        return body["events"]

    def assertCleared(self, headers, state):
        """The response clears state's binding cookie (Max-Age=0)."""
        name = cookie_name(state)
        mine = [Browser.parse(c) for c in set_cookies(headers)]
        mine = [(n, v, a) for n, v, a in mine if n == name]
        self.assertEqual(len(mine), 1, headers.get("set-cookie"))
        _, value, attrs = mine[0]
        self.assertEqual(value, "")
        self.assertEqual(attrs.get("max-age"), "0")
        self.assertEqual(attrs.get("path"), OAUTH_PREFIX)

    def assertRedirect(self, response, salesforce, reason=None):
        st, headers, body = response
        self.assertEqual(st, 303, body)
        q = query(headers["location"])
        self.assertEqual(q.get("salesforce"), salesforce, headers["location"])
        if reason is not None:
            self.assertEqual(q.get("reason"), reason, headers["location"])

    def assertInvalidStart(self, response):
        st, headers, body = response
        self.assertEqual(st, 400, body)
        self.assertEqual(body["error"]["code"], "invalid_state", body)
        self.assertNotIn("location", headers)
        self.assertNotIn("set-cookie", headers)


class StartUrlTest(BindingCase):
    def test_happy_path_with_the_cookie(self):
        org, key = self.make_org("bind-ok")
        answer = self.connect(org, key)
        state = url_state(answer["authorize_url"])
        start = urllib.parse.urlsplit(answer["start_url"])
        self.assertEqual(f"{start.scheme}://{start.netloc}", STACK.base_url)
        self.assertEqual(start.path, START_PATH)
        self.assertNotIn(state, answer["start_url"], "the raw state is in start_url")
        browser = Browser()
        st, headers, body = self.start(answer, browser)
        self.assertEqual(st, 303, body)
        self.assertEqual(headers["location"], answer["authorize_url"])
        self.assertEqual(headers.get("cache-control"), "no-store")
        self.assertIn(cookie_name(state), browser.cookies)
        cb = self.sign_in(headers["location"])
        codes = self.token_codes()
        st, headers, body = self.callback(cb, browser)
        self.assertRedirect((st, headers, body), "connected")
        self.assertEqual(self.token_codes(), codes + 1)
        self.assertCleared(headers, state)
        self.assertEqual(browser.cookies, {}, "the cookie outlived the callback")

    def test_cookie_attributes(self):
        org, key = self.make_org("bind-attr")
        answer = self.connect(org, key)
        st, headers, body = self.start(answer, Browser())
        self.assertEqual(st, 303, body)
        lines = set_cookies(headers)
        self.assertEqual(len(lines), 1, lines)
        name, value, attrs = Browser.parse(lines[0])
        self.assertEqual(name, cookie_name(url_state(answer["authorize_url"])))
        self.assertGreaterEqual(len(value), 43)
        self.assertIs(attrs.get("httponly"), True, lines[0])
        self.assertEqual(attrs.get("samesite"), "Lax", lines[0])
        self.assertEqual(attrs.get("path"), OAUTH_PREFIX, lines[0])
        self.assertTrue(590 <= int(attrs.get("max-age", "0")) <= 600, lines[0])
        self.assertNotIn("domain", attrs, lines[0])
        # public_base_url is plain http on 127.0.0.1: Secure would make a
        # browser drop the cookie (unit test test_bind covers the rule).
        self.assertNotIn("secure", attrs, lines[0])
        # Only the hash of the nonce is stored with the state.
        stored = STACK.psql("SELECT nonce_hash FROM oauth_states WHERE state_hash = '"
                            + hashlib.sha256(url_state(answer["authorize_url"]).encode())
                            .hexdigest() + "'")
        self.assertEqual(stored, [[hashlib.sha256(value.encode()).hexdigest()]])
        self.assertNotIn(value, str(STACK.psql("SELECT * FROM oauth_states")))

    def test_start_url_for_a_used_or_expired_state(self):
        org, key = self.make_org("bind-used")
        # Opened once already.
        answer = self.connect(org, key)
        self.assertEqual(self.start(answer, Browser())[0], 303)
        self.assertInvalidStart(self.start(answer, Browser()))
        # Expired.
        answer = self.connect(org, key)
        STACK.psql("UPDATE oauth_states SET expires_at = now() - interval '1 second' "
                   "WHERE state_hash = '" + hashlib.sha256(
                       url_state(answer["authorize_url"]).encode()).hexdigest() + "'")
        self.assertInvalidStart(self.start(answer, Browser()))
        # Its state consumed by a callback (API-only: no start before).
        answer = self.connect(org, key)
        st, _, _ = self.callback(self.sign_in(answer["authorize_url"]), Browser())
        self.assertEqual(st, 303)
        self.assertInvalidStart(self.start(answer, Browser()))
        # Unknown or malformed ids, and no id at all.
        for q in ("?id=" + secrets.token_urlsafe(32), "?id=abc", "?id=" + "A" * 200,
                  "?id=%00", "", "?state=" + url_state(answer["authorize_url"])):
            with self.subTest(q=q[:40]):
                self.assertInvalidStart(STACK.request("GET", START_PATH + q,
                                                      browser=Browser()))

    def test_start_url_redirects_only_to_its_own_authorize_url(self):
        """The sealed authorize URL is bound to its state: copied onto another
        state's row it does not open, so nothing is redirected."""
        org, key = self.make_org("bind-seal")
        a = self.connect(org, key)
        b = self.connect(org, key)
        hb = hashlib.sha256(url_state(b["authorize_url"]).encode()).hexdigest()
        ha = hashlib.sha256(url_state(a["authorize_url"]).encode()).hexdigest()
        STACK.psql("UPDATE oauth_states SET authorize_url_enc = (SELECT authorize_url_enc "
                   f"FROM oauth_states WHERE state_hash = '{ha}') WHERE state_hash = '{hb}'")
        st, headers, body = self.start(b, Browser())
        self.assertEqual(st, 500, body)
        self.assertNotIn("location", headers)
        self.assertNotIn("set-cookie", headers)
        st, headers, _ = self.start(a, Browser())
        self.assertEqual((st, headers["location"]), (303, a["authorize_url"]))

    def test_start_url_needs_no_key(self):
        org, key = self.make_org("bind-nokey")
        answer = self.connect(org, key)
        st, headers, body = STACK.request("GET", path_of(answer["start_url"]),
                                          browser=Browser(),
                                          headers={"Authorization": "Bearer nonsense"})
        self.assertEqual(st, 303, body)


class CallbackTest(BindingCase):
    def connected_org(self, prefix):
        org, key = self.make_org(prefix)
        self.assertRedirect(STACK.connect_org(org, key), "connected")
        return org, key

    def started(self, org, key):
        """connect → start_url in browser A → sign in: (answer, A, callback URL)."""
        answer = self.connect(org, key)
        browser = Browser()
        st, headers, body = self.start(answer, browser)
        self.assertEqual(st, 303, body)
        return answer, browser, self.sign_in(headers["location"])

    def assertRefused(self, org, key, response, state, before, codes):
        self.assertRedirect(response, "error", "browser_mismatch")
        self.assertCleared(response[1], state)
        self.assertEqual(self.row(org), before, "the stored row changed")
        self.assertEqual(self.token_codes(), codes, "the code was exchanged")
        self.assertEqual(self.states(org), 0, "the state survived")
        events = self.audit(org, key)
        self.assertEqual(events[0]["action"], "connect_failed", events[0])
        self.assertEqual(events[0]["detail"].get("reason"), "browser_mismatch")

    def test_callback_in_another_browser_is_refused(self):
        org, key = self.connected_org("bind-other")
        before = self.row(org)
        answer, _, cb = self.started(org, key)
        codes = self.token_codes()
        self.assertRefused(org, key, self.callback(cb, Browser()),
                           url_state(answer["authorize_url"]), before, codes)
        # The browser that started it cannot finish it either now: consumed.
        st, _, body = self.callback(cb, Browser())
        self.assertEqual((st, body["error"]["code"]), (400, "invalid_state"))

    def test_callback_in_another_browser_json(self):
        org, key = self.connected_org("bind-json")
        before = self.row(org)
        answer, _, cb = self.started(org, key)
        codes = self.token_codes()
        st, headers, body = self.callback(cb, Browser(), accept_json=True)
        self.assertEqual(st, 400, body)
        self.assertEqual(body["error"]["code"], "invalid_state")
        self.assertEqual(body["error"]["reason"], "browser_mismatch")
        self.assertCleared(headers, url_state(answer["authorize_url"]))
        self.assertEqual(self.row(org), before)
        self.assertEqual(self.token_codes(), codes)

    def test_wrong_cookie_is_refused(self):
        org, key = self.connected_org("bind-wrong")
        before = self.row(org)
        answer, browser, cb = self.started(org, key)
        state = url_state(answer["authorize_url"])
        self.assertIn(cookie_name(state), browser.cookies)
        codes = self.token_codes()
        forged = f"{cookie_name(state)}={secrets.token_urlsafe(32)}"
        r = STACK.request("GET", path_of(cb), browser=None, headers={"Cookie": forged})
        self.assertRefused(org, key, r, state, before, codes)

    def test_wrong_cookie_variants(self):
        """Each wrong cookie on its own fresh state: all refused, none exchanged."""
        org, key = self.make_org("bind-variants")
        other = self.connect(org, key)
        thief = Browser()
        self.assertEqual(self.start(other, thief)[0], 303)
        codes = self.token_codes()
        for variant in ("random", "empty", "other-state", "longer", "none"):
            with self.subTest(variant=variant):
                answer, browser, cb = self.started(org, key)
                name = cookie_name(url_state(answer["authorize_url"]))
                cookie = {"random": f"{name}={secrets.token_urlsafe(32)}",
                          "empty": f"{name}=",
                          "other-state": thief.cookie_header(CALLBACK_PATH),
                          "longer": f"{name}={browser.cookies[name]['value']}x",
                          "none": None}[variant]
                st, headers, body = STACK.request(
                    "GET", path_of(cb), browser=None,
                    headers={"Cookie": cookie} if cookie else None)
                self.assertRedirect((st, headers, body), "error", "browser_mismatch")
        self.assertEqual(self.token_codes(), codes)
        self.assertEqual(STACK.request("GET", SF.format(org), key=key)[2]["status"],
                         "disconnected")

    def test_the_right_cookie_among_others_is_accepted(self):
        org, key = self.make_org("bind-among")
        answer, browser, cb = self.started(org, key)
        name = cookie_name(url_state(answer["authorize_url"]))
        cookie = (f"session=abc; {name}=forged; {name}={browser.cookies[name]['value']}; "
                  "theme=dark")
        r = STACK.request("GET", path_of(cb), browser=None, headers={"Cookie": cookie})
        self.assertRedirect(r, "connected")

    def test_cookie_cleared_on_every_outcome(self):
        org, key = self.make_org("bind-clear")
        # Denied at Salesforce, in the right browser.
        STACK.fakesf("POST", "config", {"deny": True})
        answer, browser, cb = self.started(org, key)
        st, headers, body = self.callback(cb, browser)
        self.assertRedirect((st, headers, body), "error", "access_denied")
        self.assertCleared(headers, url_state(answer["authorize_url"]))
        self.assertEqual(browser.cookies, {})
        STACK.fakesf("POST", "config", {"deny": False})
        # A replay: invalid_state, cleared too.
        st, headers, body = self.callback(cb, browser)
        self.assertEqual(st, 400, body)
        self.assertCleared(headers, url_state(answer["authorize_url"]))
        # Connected, and refused: the other tests check both.


class BindOffTest(BindingCase):
    """connect_bind_browser = false: an API-only flow follows authorize_url
    itself and the callback needs no cookie (a second daemon, same database)."""

    @classmethod
    def setUpClass(cls):
        cls.port2 = STACK.start_second_daemon(config={"connect_bind_browser": "false"})

    @classmethod
    def tearDownClass(cls):
        STACK.stop_second_daemon()

    def test_authorize_url_without_start_still_connects(self):
        org, key = self.make_org("bind-off")
        answer = self.connect(org, key, port=self.port2)
        self.assertTrue(answer["start_url"].startswith(STACK.base_url + START_PATH))
        cb = self.sign_in(answer["authorize_url"])
        r = self.callback(cb, None, port=self.port2)
        self.assertRedirect(r, "connected")
        self.assertCleared(r[1], url_state(answer["authorize_url"]))

    def test_start_url_works_too(self):
        org, key = self.make_org("bind-off-start")
        answer = self.connect(org, key, port=self.port2)
        browser = Browser()
        st, headers, _ = self.start(answer, browser, port=self.port2)
        self.assertEqual(st, 303)
        r = self.callback(self.sign_in(headers["location"]), browser, port=self.port2)
        self.assertRedirect(r, "connected")
        self.assertEqual(browser.cookies, {})


if __name__ == "__main__":
    unittest.main()
