"""Connect, the OAuth callback and disconnect, through nginx, against the
Salesforce simulator (tests/fakesf) over HTTPS. One stack for the module;
each test makes its own orgs (unique slugs) and resets the simulator first.

Covers issue 3, section 6: the full loop; the authorize URL's parameters;
denial; unknown, expired and replayed states; a state made for one org cannot
connect another; bad signature, malformed token JSON, identity URL on a
foreign host, an untrusted TLS certificate and a timeout each end in a clear
error with the stored row unchanged; the simulator's tokens never appear in a
pg_dump nor in the daemon's log; disconnect revokes and is idempotent; revoke
failing still disconnects with "revoked": false; return_to is never an open
redirect; reconnect to the same org revokes the old refresh token; reconnect
to another org is refused without allow_org_change and accepted with it;
sandbox and My Domain connects use their own login host for every later call;
a *.lightning.force.com My Domain is refused with a helpful message. Also
measures the callback time end to end (printed as one line)."""

import base64
import concurrent.futures
import datetime
import hashlib
import itertools
import json
import os
import re
import secrets
import statistics
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CLIENT_ID, RETURN_ORIGIN, Stack  # noqa: E402

STACK = None
SF = "/api/v1/orgs/{}/integrations/salesforce"
CALLBACK_PATH = "/api/v1/oauth/salesforce/callback"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ORG_ID_RE = re.compile(r"^00D[A-Za-z0-9]{15}$")
STATUS_FIELDS = ("org", "provider", "status", "salesforce_org_id", "salesforce_user",
                 "instance_url", "environment", "login_host", "connected_at", "connected_by",
                 "last_refreshed_at", "last_checked_at", "last_error",
                 "previous_salesforce_org_id", "banner")
DEFAULT_SF_ORG = "00D5g000004XyZaEAK"        # fakesf's default org (README)
DEFAULT_SF_USER = "0055g00000AdaAdAAJ"
OTHER_SF_ORG = "00D5g00000OtHer"            # 15 chars: fakesf stores the 18-char form
ALL_TOKENS = set()                           # every token the simulator issued so far
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


def req(*args, **kwargs):
    return STACK.request(*args, **kwargs)


def sf_id18(id15):
    """The 18-character form of a 15-character Salesforce id (DESIGN.md)."""
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix += chars[bits]
    return id15 + suffix


def login_base(kind="production"):
    port = STACK.fakesf_port
    return {"production": f"https://login.localhost:{port}",
            "sandbox": f"https://test.localhost:{port}"}[kind]


def host_of(url):
    return urllib.parse.urlsplit(url).netloc


def split_location(location):
    """(the part before '?', {param: value}) of a redirect Location."""
    base, _, query = location.partition("?")
    return base, dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


def parse_time(text):
    return datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)


def collect_tokens():
    """Remembers every token the simulator has issued (before a reset drops them)."""
    toks = STACK.fakesf("GET", "tokens")
    ALL_TOKENS.update(toks.get("access_tokens", []))
    ALL_TOKENS.update(toks.get("refresh_tokens", []))
    return toks


class OAuthCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        collect_tokens()
        STACK.fakesf("POST", "reset")

    # ------------------------------------------------------------ fixtures

    def make_org(self, prefix, roles=("admin",)):
        """A new org with one key per role; answers (slug, {role: key}).
        The admin key's label is f"{slug}-admin"."""
        slug = f"{prefix}-{next(_SEQ)}-{secrets.token_hex(2)}"
        st, _, body = req("POST", "/api/v1/admin/orgs", key=STACK.operator_key,
                          body={"slug": slug, "name": prefix.title()})
        self.assertEqual(st, 201, body)
        keys = {}
        for role in roles:
            st, _, body = req("POST", f"/api/v1/admin/orgs/{slug}/keys",
                              key=STACK.operator_key,
                              body={"role": role, "label": f"{slug}-{role}"})
            self.assertEqual(st, 201, body)
            keys[role] = body["key"]
        return slug, keys

    # ------------------------------------------------------------ helpers

    def start(self, org, key, body=None):
        """POST .../connect; answers the authorize_url."""
        st, headers, answer = req("POST", SF.format(org) + "/connect", key=key,
                                  body=body if body is not None else {})
        self.assertEqual(st, 200, answer)
        self.assertIsInstance(answer.get("authorize_url"), str, answer)
        return answer["authorize_url"]

    def connect(self, org, key, body=None, accept_json=False):
        """connect → authorize at the simulator → callback; request()'s triple."""
        return self.follow(STACK.authorize(self.start(org, key, body)), accept_json)

    def follow(self, callback_url, accept_json=False, headers=None):
        u = urllib.parse.urlsplit(callback_url)
        self.assertEqual(u.path, CALLBACK_PATH, callback_url)
        hdrs = dict(headers or {})
        if accept_json:
            hdrs["Accept"] = "application/json"
        return req("GET", u.path + ("?" + u.query if u.query else ""), headers=hdrs)

    def assertConnectedRedirect(self, response, return_to="/admin/integrations",
                                sf_org=DEFAULT_SF_ORG):
        st, headers, body = response
        self.assertEqual(st, 303, f"callback answered {st}: {body!r}")
        sep = "&" if "?" in return_to else "?"
        self.assertEqual(headers.get("location"),
                         f"{return_to}{sep}salesforce=connected&org_id={sf_org}")

    def assertErrorRedirect(self, response, reason, return_to="/admin/integrations"):
        st, headers, body = response
        self.assertEqual(st, 303, f"callback answered {st}: {body!r}")
        loc = headers.get("location", "")
        base, params = split_location(loc)
        self.assertEqual(base, return_to.partition("?")[0], loc)
        self.assertEqual(params.get("salesforce"), "error", loc)
        self.assertEqual(params.get("reason"), reason, loc)
        self.assertNotIn("org_id", params, loc)

    def assertError(self, response, status, code=None):
        st, headers, body = response
        self.assertEqual(st, status, f"expected {status}, got {st}: {body!r}")
        self.assertIn("application/json", headers.get("content-type", ""), headers)
        self.assertIsInstance(body, dict, body)
        self.assertIsInstance(body.get("error"), dict, body)
        self.assertTrue(body["error"].get("message"), body)
        if code is not None:
            self.assertEqual(body["error"].get("code"), code, body)
        return body

    def assertInvalidState(self, response):
        self.assertError(response, 400, "invalid_state")
        self.assertNotIn("location", response[1], "an invalid state must not redirect")

    def status(self, org, key):
        st, _, body = req("GET", SF.format(org), key=key)
        self.assertEqual(st, 200, body)
        for f in STATUS_FIELDS:
            self.assertIn(f, body, f"status object without {f}")
        return body

    def row(self, org):
        """The org's integrations row, every column, as text."""
        rows = STACK.psql("SELECT * FROM integrations WHERE org_id = "
                          f"(SELECT id FROM orgs WHERE slug = '{org}')")
        self.assertEqual(len(rows), 1, rows)
        return rows[0]

    def tokens_row(self, org):
        rows = STACK.psql("SELECT coalesce(access_token_enc, '<null>'), "
                          "coalesce(refresh_token_enc, '<null>') FROM integrations WHERE "
                          f"org_id = (SELECT id FROM orgs WHERE slug = '{org}')")
        return tuple(rows[0])

    def audit(self, org, key):
        st, _, body = req("GET", f"/api/v1/orgs/{org}/audit?limit=100", key=key)
        self.assertEqual(st, 200, body)
        return body["events"]

    def actions(self, org, key):
        return [e["action"] for e in self.audit(org, key)]

    def grants(self, sf_org=None):
        return [g for g in STACK.fakesf("GET", "grants")
                if sf_org is None or g["org_id"] == sf_org]

    def sf_requests(self, endpoint):
        return STACK.fakesf("GET", f"requests?endpoint={endpoint}")

    def counts(self):
        return STACK.fakesf("GET", "counts")

    def fault(self, endpoint, kind, count=1, delay_ms=0):
        STACK.fakesf("POST", "fault", {"endpoint": endpoint, "kind": kind, "count": count,
                                       "delay_ms": delay_ms})

    def states_of(self, org):
        return int(STACK.psql("SELECT count(*) FROM oauth_states WHERE org_id = "
                              f"(SELECT id FROM orgs WHERE slug = '{org}')")[0][0])


# ---------------------------------------------------------------- connect and its loop

class ConnectTest(OAuthCase):
    def test_full_loop_connect_status_token_disconnect(self):
        org, keys = self.make_org("loop", ("admin", "viewer", "service"))
        before = self.status(org, keys["viewer"])
        self.assertEqual(before["status"], "disconnected")
        self.assertIsNone(before["salesforce_org_id"])

        t0 = time.monotonic()
        r = self.connect(org, keys["admin"], {"return_to": "/admin/integrations"})
        self.assertConnectedRedirect(r)
        self.assertIn("no-store", r[1].get("cache-control", ""))
        self.assertTrue(r[1].get("x-request-id"), r[1])
        self.assertLess(time.monotonic() - t0, 5)

        s = self.status(org, keys["viewer"])
        self.assertEqual(s["org"], org)
        self.assertEqual(s["provider"], "salesforce")
        self.assertEqual(s["status"], "connected")
        self.assertEqual(s["salesforce_org_id"], DEFAULT_SF_ORG)
        self.assertRegex(s["salesforce_org_id"], ORG_ID_RE)
        self.assertEqual(s["salesforce_user"]["id"], DEFAULT_SF_USER)
        self.assertEqual(s["salesforce_user"]["username"], "admin@acme.example")
        self.assertEqual(s["salesforce_user"]["display_name"], "Ada Admin")
        self.assertEqual(s["instance_url"], f"https://acme.my.localhost:{STACK.fakesf_port}")
        self.assertEqual(s["environment"], "production")
        self.assertEqual(s["login_host"], login_base())
        self.assertRegex(s["connected_at"], RFC3339)
        self.assertEqual(s["connected_by"], f"{org}-admin")
        self.assertIsNone(s["last_error"])
        self.assertIsNone(s["banner"])
        self.assertIsNone(s["previous_salesforce_org_id"])

        # The tokens are stored encrypted: neither column holds the issued token.
        grant = self.grants(DEFAULT_SF_ORG)
        self.assertEqual(len(grant), 1, grant)
        access_enc, refresh_enc = self.tokens_row(org)
        self.assertNotIn(grant[0]["refresh_token"], refresh_enc)
        self.assertNotEqual(access_enc, "<null>")
        self.assertNotEqual(refresh_enc, "<null>")

        # The product's workers get a token that works at the simulator.
        st, headers, tok = req("GET", SF.format(org) + "/token", key=keys["service"])
        self.assertEqual(st, 200, tok)
        self.assertIn(tok["access_token"], STACK.fakesf("GET", "tokens")["access_tokens"])
        self.assertNotIn(tok["access_token"], access_enc)
        self.assertEqual(tok["salesforce_org_id"], DEFAULT_SF_ORG)

        # Audit: connect_started then connected, with the OrgID and no token.
        events = self.audit(org, keys["admin"])
        acts = [e["action"] for e in events]
        self.assertIn("connect_started", acts)
        self.assertIn("connected", acts)
        self.assertLess(acts.index("connected"), acts.index("connect_started"),
                        "audit is not newest first")
        connected = events[acts.index("connected")]
        self.assertEqual(connected["detail"].get("salesforce_org_id"), DEFAULT_SF_ORG)
        self.assertEqual(connected["actor"], f"{org}-admin")
        dumped = json.dumps(events)
        for t in (tok["access_token"], grant[0]["refresh_token"]):
            self.assertNotIn(t, dumped)

        # Remove: revoked at the login host, tokens gone, status disconnected.
        st, _, d = req("DELETE", SF.format(org), key=keys["admin"])
        self.assertEqual(st, 200, d)
        self.assertEqual(d["status"], "disconnected")
        self.assertIs(d["revoked"], True)
        for f in STATUS_FIELDS:
            self.assertIn(f, d)
        self.assertIsNone(d["salesforce_org_id"])
        self.assertEqual(self.tokens_row(org), ("<null>", "<null>"))
        revokes = self.sf_requests("revoke")
        self.assertEqual(len(revokes), 1, revokes)
        self.assertEqual(revokes[0]["form"].get("token"), grant[0]["refresh_token"])
        self.assertEqual(revokes[0]["host"], host_of(login_base()))
        self.assertTrue(self.grants(DEFAULT_SF_ORG)[0]["revoked"])
        self.assertEqual(self.status(org, keys["viewer"])["status"], "disconnected")
        self.assertError(req("GET", SF.format(org) + "/token", key=keys["service"]),
                         409, "not_connected")
        self.assertIn("disconnected", self.actions(org, keys["admin"]))

    def test_callback_json_mode_answers_the_status_object(self):
        org, keys = self.make_org("jsonmode")
        st, headers, body = self.connect(org, keys["admin"], accept_json=True)
        self.assertEqual(st, 200, body)
        self.assertNotIn("location", headers)
        self.assertIn("application/json", headers.get("content-type", ""))
        for f in STATUS_FIELDS:
            self.assertIn(f, body)
        self.assertEqual(body["org"], org)
        self.assertEqual(body["status"], "connected")
        self.assertEqual(body["salesforce_org_id"], DEFAULT_SF_ORG)

    def test_15_char_org_is_shown_in_18_char_form(self):
        org, keys = self.make_org("id18")
        STACK.fakesf("POST", "config", {"org_id": OTHER_SF_ORG})
        expected = sf_id18(OTHER_SF_ORG)
        self.assertConnectedRedirect(self.connect(org, keys["admin"]), sf_org=expected)
        self.assertEqual(self.status(org, keys["admin"])["salesforce_org_id"], expected)

    def test_authorize_url_parameters(self):
        org, keys = self.make_org("authz")
        st, headers, answer = req("POST", SF.format(org) + "/connect", key=keys["admin"],
                                  body={"return_to": "/admin/integrations"})
        self.assertEqual(st, 200, answer)
        self.assertIn("no-store", headers.get("cache-control", ""))
        self.assertRegex(answer["expires_at"], RFC3339)
        left = (parse_time(answer["expires_at"]) -
                datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        self.assertTrue(540 <= left <= 660, f"the state expires in {left:.0f}s, not 10 min")

        u = urllib.parse.urlsplit(answer["authorize_url"])
        self.assertEqual(u.scheme, "https")
        self.assertEqual(u.netloc, host_of(login_base()))
        self.assertEqual(u.path, "/services/oauth2/authorize")
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        for name, values in q.items():
            self.assertEqual(len(values), 1, f"{name} given {len(values)} times")
        q = {k: v[0] for k, v in q.items()}
        self.assertEqual(q.get("response_type"), "code")
        self.assertEqual(q.get("client_id"), CLIENT_ID)
        self.assertEqual(q.get("redirect_uri"), STACK.base_url + CALLBACK_PATH)
        scopes = q.get("scope", "").split()
        self.assertTrue({"refresh_token", "offline_access"} & set(scopes), scopes)
        self.assertEqual(q.get("code_challenge_method"), "S256")
        self.assertRegex(q.get("code_challenge", ""), r"^[A-Za-z0-9_-]{43}$",
                         "S256 challenge: base64url of 32 bytes, no padding")
        state = q.get("state", "")
        self.assertGreaterEqual(len(state), 22, "the state needs at least 128 bits")
        self.assertRegex(state, r"^[A-Za-z0-9_~.-]+$")

        # Only a hash of the state is stored.
        dump = STACK.pg_dump()
        self.assertNotIn(state, dump)
        self.assertEqual(self.states_of(org), 1)

        # A second connect makes another state and another challenge.
        q2 = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
            self.start(org, keys["admin"])).query))
        self.assertNotEqual(q2["state"], state)
        self.assertNotEqual(q2["code_challenge"], q["code_challenge"])

        # The code exchange sends the verifier of that challenge, to the same host.
        self.assertConnectedRedirect(self.follow(STACK.authorize(answer["authorize_url"])))
        ex = self.sf_requests("token_code")
        self.assertEqual(len(ex), 1, ex)
        form = ex[0]["form"]
        self.assertEqual(ex[0]["host"], host_of(login_base()))
        self.assertEqual(form.get("grant_type"), "authorization_code")
        self.assertEqual(form.get("redirect_uri"), q["redirect_uri"])
        verifier = form.get("code_verifier", "")
        self.assertRegex(verifier, r"^[A-Za-z0-9._~-]{43,128}$")
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        self.assertEqual(challenge, q["code_challenge"])
        self.assertNotIn(verifier, STACK.pg_dump(), "the PKCE verifier is stored in clear")

    def test_default_return_to_is_a_local_path(self):
        org, keys = self.make_org("defret")
        # The body is optional: no body at all, then an empty object.
        st, _, answer = req("POST", SF.format(org) + "/connect", key=keys["admin"])
        self.assertEqual(st, 200, answer)
        for cb in (STACK.authorize(answer["authorize_url"]),
                   STACK.authorize(self.start(org, keys["admin"], {}))):
            st, headers, body = self.follow(cb)
            self.assertEqual(st, 303, body)
            loc = headers["location"]
            self.assertTrue(loc.startswith("/") and not loc.startswith("//"), loc)
            self.assertEqual(split_location(loc)[1].get("salesforce"), "connected", loc)

    def test_denial_changes_nothing_and_is_audited(self):
        org, keys = self.make_org("deny")
        STACK.fakesf("POST", "config", {"deny": True})
        cb = STACK.authorize(self.start(org, keys["admin"], {"return_to": "/settings/sf"}))
        self.assertIn("error=access_denied", cb)
        self.assertErrorRedirect(self.follow(cb), "access_denied", return_to="/settings/sf")
        self.assertEqual(self.status(org, keys["admin"])["status"], "disconnected")
        self.assertEqual(self.counts()["token_code"], 0)
        self.assertIn("connect_denied", self.actions(org, keys["admin"]))

        # Over an existing connection: the row stays exactly as it was.
        STACK.fakesf("POST", "config", {"deny": False})
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        row = self.row(org)
        STACK.fakesf("POST", "config", {"deny": True})
        self.assertErrorRedirect(self.connect(org, keys["admin"]), "access_denied")
        self.assertEqual(self.row(org), row)
        self.assertEqual(self.status(org, keys["admin"])["status"], "connected")

        # JSON mode: the error, not a redirect.
        r = self.connect(org, keys["admin"], accept_json=True)
        self.assertGreaterEqual(r[0], 400)
        self.assertLess(r[0], 500)
        body = self.assertError(r, 400, "bad_request")
        self.assertEqual(body["error"].get("reason"), "access_denied", body)
        self.assertNotIn("location", r[1])
        self.assertEqual(self.row(org), row)
        events = self.audit(org, keys["admin"])
        denied = [e for e in events if e["action"] == "connect_denied"]
        self.assertEqual(len(denied), 3, [e["action"] for e in events])
        self.assertEqual(denied[0]["detail"].get("reason"), "access_denied")

    def test_other_callback_error_is_audited_as_failed(self):
        org, keys = self.make_org("cberr")
        cb = STACK.authorize(self.start(org, keys["admin"]))
        state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(cb).query))["state"]
        r = req("GET", CALLBACK_PATH + "?" + urllib.parse.urlencode(
            {"error": "server_error", "error_description": "oops", "state": state}))
        self.assertErrorRedirect(r, "server_error")
        self.assertEqual(self.status(org, keys["admin"])["status"], "disconnected")
        self.assertIn("connect_failed", self.actions(org, keys["admin"]))


# ---------------------------------------------------------------- return_to

class ReturnToTest(OAuthCase):
    def test_allowed_return_to(self):
        org, keys = self.make_org("retok")
        for return_to in ("/admin/integrations", "/a/b?tab=salesforce",
                          f"{RETURN_ORIGIN}/admin/integrations", f"{RETURN_ORIGIN}/"):
            with self.subTest(return_to=return_to):
                self.assertConnectedRedirect(
                    self.connect(org, keys["admin"], {"return_to": return_to}),
                    return_to=return_to)

    def test_return_to_with_a_fragment(self):
        """The outcome goes into the query, not into the fragment (or the
        fragment is refused up front)."""
        org, keys = self.make_org("retfrag")
        for return_to in ("/admin/integrations#salesforce",
                          f"{RETURN_ORIGIN}/admin?tab=1#salesforce"):
            with self.subTest(return_to=return_to):
                st, _, answer = req("POST", SF.format(org) + "/connect", key=keys["admin"],
                                    body={"return_to": return_to})
                if st == 400:
                    continue
                self.assertEqual(st, 200, answer)
                st, headers, body = self.follow(STACK.authorize(answer["authorize_url"]))
                self.assertEqual(st, 303, body)
                u = urllib.parse.urlsplit(headers["location"])
                want = urllib.parse.urlsplit(return_to)
                q = dict(urllib.parse.parse_qsl(u.query))
                self.assertEqual((u.scheme, u.netloc, u.path, u.fragment),
                                 (want.scheme, want.netloc, want.path, want.fragment),
                                 headers["location"])
                self.assertEqual(q.get("salesforce"), "connected", headers["location"])
                self.assertEqual(q.get("org_id"), DEFAULT_SF_ORG, headers["location"])

    def test_return_to_cannot_name_another_site(self):
        org, keys = self.make_org("retbad")
        for return_to in ("//evil.example/x", "///evil.example", "/\\evil.example",
                          "\\\\evil.example", "https://evil.example/",
                          "http://app.example.test/admin",          # not the allowed scheme
                          "https://app.example.test.evil.example/",
                          "https://app.example.test@evil.example/",
                          "https://evil.example@app.example.test/",
                          "https://evil.example/?x=https://app.example.test",
                          "https:evil.example", "https:/evil.example", "HTTPS://evil.example",
                          "javascript:alert(1)", "data:text/html,hi", "evil.example",
                          "/x\r\nLocation: https://evil.example", "/x\ny", "\t//evil.example",
                          " /admin", ""):
            with self.subTest(return_to=return_to):
                self.assertError(req("POST", SF.format(org) + "/connect", key=keys["admin"],
                                     body={"return_to": return_to}), 400, "bad_request")
        self.assertEqual(self.states_of(org), 0, "a refused connect made a state")

    def test_every_callback_outcome_stays_on_our_site(self):
        """Whatever happens at the callback, the Location is return_to."""
        org, keys = self.make_org("retall")
        STACK.fakesf("POST", "config", {"deny": True})
        r = self.connect(org, keys["admin"], {"return_to": f"{RETURN_ORIGIN}/p"})
        self.assertErrorRedirect(r, "access_denied", return_to=f"{RETURN_ORIGIN}/p")
        STACK.fakesf("POST", "config", {"deny": False})
        self.fault("token_code", "malformed")
        r = self.connect(org, keys["admin"], {"return_to": "/p"})
        self.assertErrorRedirect(r, "malformed", return_to="/p")


# ---------------------------------------------------------------- the state

class CallbackStateTest(OAuthCase):
    def test_missing_state(self):
        for query in ("", "?code=abc", "?state=&code=abc", "?error=access_denied",
                      "?code=abc&State=x"):
            with self.subTest(query=query):
                self.assertInvalidState(req("GET", CALLBACK_PATH + query))
                self.assertInvalidState(req("GET", CALLBACK_PATH + query,
                                            headers={"Accept": "application/json"}))

    def test_unknown_state(self):
        org, keys = self.make_org("unknown")
        self.start(org, keys["admin"])
        for state in (secrets.token_urlsafe(32), "x" * 1000, "%00",
                      urllib.parse.quote("'; DROP TABLE orgs; --"), "a%20b", "%ZZ"):
            with self.subTest(state=state[:30]):
                self.assertInvalidState(req("GET", f"{CALLBACK_PATH}?code=abc&state={state}"))
                self.assertInvalidState(req(
                    "GET", f"{CALLBACK_PATH}?error=access_denied&state={state}"))
        self.assertEqual(self.counts()["token_code"], 0)
        self.assertEqual(self.states_of(org), 1, "an unknown state consumed a real one")
        self.assertEqual(self.status(org, keys["admin"])["status"], "disconnected")

    def test_expired_state(self):
        org, keys = self.make_org("expired")
        cb = STACK.authorize(self.start(org, keys["admin"]))
        STACK.psql("UPDATE oauth_states SET expires_at = now() - interval '1 minute' "
                   f"WHERE org_id = (SELECT id FROM orgs WHERE slug = '{org}')")
        self.assertInvalidState(self.follow(cb))
        self.assertInvalidState(self.follow(cb, accept_json=True))
        self.assertEqual(self.counts()["token_code"], 0, "an expired state exchanged its code")
        self.assertEqual(self.status(org, keys["admin"])["status"], "disconnected")
        self.assertNotIn("connected", self.actions(org, keys["admin"]))

    def test_replayed_state(self):
        org, keys = self.make_org("replay")
        cb = STACK.authorize(self.start(org, keys["admin"]))
        self.assertConnectedRedirect(self.follow(cb))
        row = self.row(org)
        self.assertInvalidState(self.follow(cb))
        self.assertInvalidState(self.follow(cb, accept_json=True))
        self.assertEqual(self.row(org), row)
        self.assertEqual(self.counts()["token_code"], 1)

        # A denied callback consumes its state too.
        STACK.fakesf("POST", "config", {"deny": True})
        cb = STACK.authorize(self.start(org, keys["admin"]))
        self.assertErrorRedirect(self.follow(cb), "access_denied")
        self.assertInvalidState(self.follow(cb))

    def test_concurrent_replays_consume_the_state_once(self):
        org, keys = self.make_org("race")
        cb = STACK.authorize(self.start(org, keys["admin"]))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: self.follow(cb), range(8)))
        ok = [r for r in results if r[0] == 303]
        self.assertEqual(len(ok), 1, [(r[0], r[2]) for r in results])
        self.assertConnectedRedirect(ok[0])
        for r in results:
            if r[0] != 303:
                self.assertInvalidState(r)
        self.assertEqual(self.counts()["token_code"], 1)

    def test_state_of_one_org_cannot_connect_another(self):
        org_a, keys_a = self.make_org("owner")
        org_b, keys_b = self.make_org("intruder")
        # A's state with B's key and an org parameter still connects A only.
        cb_a = STACK.authorize(self.start(org_a, keys_a["admin"]))
        r = self.follow(cb_a + f"&org={org_b}",
                        headers={"Authorization": f"Bearer {keys_b['admin']}"})
        self.assertConnectedRedirect(r)
        self.assertEqual(self.status(org_a, keys_a["admin"])["status"], "connected")
        self.assertEqual(self.status(org_a, keys_a["admin"])["connected_by"], f"{org_a}-admin")
        self.assertEqual(self.status(org_b, keys_b["admin"])["status"], "disconnected")
        self.assertNotIn("connected", self.actions(org_b, keys_b["admin"]))

        # B's code under A's state: the exchange runs with A's verifier and fails
        # (PKCE); neither org changes.
        row_a = self.row(org_a)
        cb_b = STACK.authorize(self.start(org_b, keys_b["admin"]))
        cb_a = STACK.authorize(self.start(org_a, keys_a["admin"]))
        code_b = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(cb_b).query))["code"]
        state_a = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(cb_a).query))["state"]
        r = req("GET", CALLBACK_PATH + "?" + urllib.parse.urlencode(
            {"code": code_b, "state": state_a}))
        self.assertEqual(r[0], 303, r)
        self.assertEqual(split_location(r[1]["location"])[1].get("salesforce"), "error", r[1])
        self.assertEqual(self.row(org_a), row_a)
        self.assertEqual(self.status(org_b, keys_b["admin"])["status"], "disconnected")


# ---------------------------------------------------------------- failures

class FailureTest(OAuthCase):
    """Each failure ends in a clear error and leaves the stored row as it was."""

    def failing_reconnect(self, prefix, reason, body=None, fault=None, before=None):
        org, keys = self.make_org(prefix)
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        row = self.row(org)
        status = self.status(org, keys["admin"])
        if before:
            before()
        if fault:
            self.fault(*fault)
        t0 = time.monotonic()
        r = self.connect(org, keys["admin"], body)
        elapsed = time.monotonic() - t0
        self.assertErrorRedirect(r, reason)
        self.assertEqual(self.row(org), row, "a failed reconnect changed the stored row")
        after = self.status(org, keys["admin"])
        self.assertEqual(after, status)
        events = self.audit(org, keys["admin"])
        self.assertEqual(events[0]["action"], "connect_failed", events[:2])
        self.assertEqual(events[0]["detail"].get("reason"), reason, events[0])
        return org, keys, elapsed

    def test_bad_signature(self):
        self.failing_reconnect("badsig", "bad_signature",
                               fault=("token_code", "bad_signature"))
        self.assertEqual(self.counts()["identity"], 1, "identity fetched after a bad signature")

    def test_bad_signature_json_mode(self):
        org, keys = self.make_org("badsigjson")
        self.fault("token_code", "bad_signature")
        r = self.connect(org, keys["admin"], accept_json=True)
        self.assertGreaterEqual(r[0], 400)
        body = self.assertError(r, 502, "salesforce_unavailable")
        self.assertEqual(body["error"].get("reason"), "bad_signature", body)
        self.assertEqual(self.row(org)[1], "disconnected")

    def test_malformed_token_json(self):
        self.failing_reconnect("malformed", "malformed", fault=("token_code", "malformed"))
        # Over nothing: still disconnected.
        org, keys = self.make_org("malformed0")
        self.fault("token_code", "malformed")
        self.assertErrorRedirect(self.connect(org, keys["admin"]), "malformed")
        self.assertEqual(self.status(org, keys["admin"])["status"], "disconnected")
        self.assertEqual(self.tokens_row(org), ("<null>", "<null>"))

    def test_identity_url_on_foreign_host(self):
        self.failing_reconnect("foreign", "host_not_allowed",
                               fault=("token_code", "foreign_id"))
        hosts = [r["host"] for r in self.sf_requests("identity")]
        self.assertFalse([h for h in hosts if h.startswith("evil.")],
                         f"the daemon fetched an identity URL on a foreign host: {hosts}")

    def test_instance_url_on_foreign_host(self):
        # The signature does not cover instance_url, and sync workers send
        # the access token there: a foreign host must not be accepted.
        evil = f"https://evil.localhost:{STACK.fakesf_port}"
        org, keys, _ = self.failing_reconnect(
            "foreigninst", "host_not_allowed",
            before=lambda: STACK.fakesf("POST", "config", {"instance_url": evil}))
        self.assertEqual(self.counts()["identity"], 1, "identity fetched for a foreign instance")
        # A refresh naming a foreign instance leaves the stored one alone.
        st, _, body = req("POST", SF.format(org) + "/check", key=keys["admin"])
        self.assertEqual(st, 200, body)
        self.assertEqual(body["status"], "degraded", body)
        self.assertEqual(body["last_error"]["code"], "host_not_allowed", body)
        self.assertNotEqual(body["instance_url"], evil)

    def test_expired_authorization_code(self):
        org, keys = self.make_org("oldcode")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        row = self.row(org)
        cb = STACK.authorize(self.start(org, keys["admin"]))
        STACK.fakesf("POST", "expire_codes")
        self.assertErrorRedirect(self.follow(cb), "invalid_grant")
        self.assertEqual(self.row(org), row)

    def test_token_endpoint_500(self):
        org, keys = self.make_org("sf500")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        row = self.row(org)
        self.fault("token_code", "status500")
        st, headers, body = self.connect(org, keys["admin"])
        self.assertEqual(st, 303, body)
        _, params = split_location(headers["location"])
        self.assertEqual(params.get("salesforce"), "error", headers["location"])
        self.assertRegex(params.get("reason", ""), r"^[a-z][a-z0-9_]*$")
        self.assertEqual(self.row(org), row)

    def test_untrusted_tls_certificate(self):
        bad_port = STACK.fakesf_info["untrusted_port"]
        self.assertTrue(bad_port)
        body = {"my_domain": f"acme.my.localhost:{bad_port}"}
        org, keys = self.make_org("tls")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        row = self.row(org)
        url = self.start(org, keys["admin"], body)
        self.assertEqual(host_of(url), f"acme.my.localhost:{bad_port}")
        # The "browser" signs in on the trusted port; the daemon then exchanges
        # the code at the login host of the state, whose certificate is untrusted.
        trusted = url.replace(f":{bad_port}/", f":{STACK.fakesf_port}/", 1)
        codes_before = self.counts()["token_code"]
        r = self.follow(STACK.authorize(trusted))
        self.assertErrorRedirect(r, "tls")
        self.assertEqual(self.counts()["token_code"], codes_before,
                         "a request went through despite the untrusted certificate")
        self.assertEqual(self.row(org), row)
        events = self.audit(org, keys["admin"])
        self.assertEqual(events[0]["action"], "connect_failed")
        self.assertEqual(events[0]["detail"].get("reason"), "tls")

    def test_timeout(self):
        _, _, elapsed = self.failing_reconnect(
            "timeout", "timeout", fault=("token_code", "delay", 1, 7000))
        self.assertLess(elapsed, 6.9, "the daemon waited past http_timeout_ms (5000)")
        self.assertGreater(elapsed, 4.0)


# ---------------------------------------------------------------- disconnect

class DisconnectTest(OAuthCase):
    def test_disconnect_revokes_and_is_idempotent(self):
        org, keys = self.make_org("disc")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        refresh = self.grants(DEFAULT_SF_ORG)[0]["refresh_token"]
        st, _, d = req("DELETE", SF.format(org), key=keys["admin"])
        self.assertEqual(st, 200, d)
        self.assertEqual((d["status"], d["revoked"]), ("disconnected", True))
        revokes = self.sf_requests("revoke")
        self.assertEqual([r["form"].get("token") for r in revokes], [refresh])
        self.assertTrue(self.grants(DEFAULT_SF_ORG)[0]["revoked"])
        for _ in range(2):
            st, _, d = req("DELETE", SF.format(org), key=keys["admin"])
            self.assertEqual(st, 200, d)
            self.assertEqual(d["status"], "disconnected")
            self.assertIn("revoked", d)
            self.assertIsInstance(d["revoked"], bool)
        self.assertEqual(len(self.sf_requests("revoke")), 1, "nothing left to revoke")
        self.assertEqual(self.tokens_row(org), ("<null>", "<null>"))

    def test_disconnect_never_connected(self):
        org, keys = self.make_org("neverconn")
        st, _, d = req("DELETE", SF.format(org), key=keys["admin"])
        self.assertEqual(st, 200, d)
        self.assertEqual(d["status"], "disconnected")
        self.assertIs(d["revoked"], False)
        self.assertEqual(self.counts()["revoke"], 0)

    def test_disconnect_needs_admin(self):
        org, keys = self.make_org("discrole", ("admin", "viewer", "service"))
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        for role in ("viewer", "service"):
            with self.subTest(role=role):
                self.assertError(req("DELETE", SF.format(org), key=keys[role]), 403,
                                 "forbidden")
                self.assertError(req("POST", SF.format(org) + "/connect", key=keys[role],
                                     body={}), 403, "forbidden")
        self.assertEqual(self.status(org, keys["admin"])["status"], "connected")

    def test_revoke_failing_still_disconnects(self):
        org, keys = self.make_org("revfail")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        self.fault("revoke", "status500")
        st, _, d = req("DELETE", SF.format(org), key=keys["admin"])
        self.assertEqual(st, 200, d)
        self.assertEqual(d["status"], "disconnected")
        self.assertIs(d["revoked"], False)
        self.assertEqual(self.tokens_row(org), ("<null>", "<null>"))
        self.assertEqual(self.status(org, keys["admin"])["status"], "disconnected")
        events = self.audit(org, keys["admin"])
        self.assertEqual(events[0]["action"], "disconnected")

    def test_revoke_unreachable_still_disconnects(self):
        org, keys = self.make_org("revdrop")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        # curl may retry once on a dropped kept-alive connection: drop a few.
        self.fault("revoke", "drop", count=3)
        st, _, d = req("DELETE", SF.format(org), key=keys["admin"])
        self.assertEqual(st, 200, d)
        self.assertEqual(d["status"], "disconnected")
        self.assertEqual(self.tokens_row(org), ("<null>", "<null>"))
        alive = not self.grants(DEFAULT_SF_ORG)[0]["revoked"]
        self.assertIs(d["revoked"], not alive,
                      f"revoked says {d['revoked']} but the grant is "
                      f"{'alive' if alive else 'revoked'} at the simulator "
                      f"({len(self.sf_requests('revoke'))} revoke calls)")
        self.assertIs(d["revoked"], False)

    def test_after_remove_any_org_may_connect(self):
        org, keys = self.make_org("anyorg")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        self.assertEqual(req("DELETE", SF.format(org), key=keys["admin"])[0], 200)
        new = STACK.fakesf("POST", "config", {"org_id": "new"})["org_id"]
        self.assertConnectedRedirect(self.connect(org, keys["admin"]), sf_org=new)
        status = self.status(org, keys["admin"])
        self.assertEqual(status["salesforce_org_id"], new)
        self.assertEqual(status["previous_salesforce_org_id"], DEFAULT_SF_ORG)

    def test_remove_then_same_org_has_no_previous(self):
        org, keys = self.make_org("sameagain")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        self.assertEqual(req("DELETE", SF.format(org), key=keys["admin"])[0], 200)
        self.assertEqual(self.status(org, keys["admin"])["previous_salesforce_org_id"],
                         DEFAULT_SF_ORG)
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        status = self.status(org, keys["admin"])
        self.assertEqual(status["salesforce_org_id"], DEFAULT_SF_ORG)
        self.assertIsNone(status["previous_salesforce_org_id"], status)


# ---------------------------------------------------------------- reconnect

class ReconnectTest(OAuthCase):
    def test_reconnect_same_org_revokes_the_old_refresh_token(self):
        org, keys = self.make_org("same")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        first = self.status(org, keys["admin"])
        old = self.grants(DEFAULT_SF_ORG)[0]["refresh_token"]
        time.sleep(1.1)    # connected_at has a one-second resolution
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        grants = {g["refresh_token"]: g for g in self.grants(DEFAULT_SF_ORG)}
        self.assertEqual(len(grants), 2)
        self.assertTrue(grants[old]["revoked"], "the superseded refresh token is alive")
        new = [t for t in grants if t != old][0]
        self.assertFalse(grants[new]["revoked"])
        revokes = self.sf_requests("revoke")
        self.assertEqual([r["form"].get("token") for r in revokes], [old])
        self.assertEqual(revokes[0]["host"], host_of(login_base()))
        s = self.status(org, keys["admin"])
        self.assertEqual(s["status"], "connected")
        self.assertGreater(s["connected_at"], first["connected_at"])
        self.assertIsNone(s["previous_salesforce_org_id"])
        # The stored refresh token is the new one.
        st, _, c = req("POST", SF.format(org) + "/check", key=keys["admin"])
        self.assertEqual(st, 200, c)
        self.assertEqual(c["status"], "connected", c)
        refreshes = self.sf_requests("token_refresh")
        self.assertTrue(refreshes)
        self.assertEqual(refreshes[-1]["form"].get("refresh_token"), new)

    def test_reconnect_to_another_org_is_refused_without_allow_org_change(self):
        org, keys = self.make_org("mismatch")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        row = self.row(org)
        status = self.status(org, keys["admin"])
        new = STACK.fakesf("POST", "config", {"org_id": "new"})["org_id"]
        for accept_json in (False, True):
            with self.subTest(accept_json=accept_json):
                r = self.connect(org, keys["admin"], {"allow_org_change": False},
                                 accept_json=accept_json)
                if accept_json:
                    body = self.assertError(r, 409, "conflict")
                    self.assertEqual(body["error"].get("reason"), "org_mismatch", body)
                else:
                    self.assertErrorRedirect(r, "org_mismatch")
                self.assertEqual(self.row(org), row)
                self.assertEqual(self.status(org, keys["admin"]), status)
        # The new org's tokens were revoked at once; the old grant lives.
        new_grants = self.grants(new)
        self.assertEqual(len(new_grants), 2)
        self.assertTrue(all(g["revoked"] for g in new_grants), new_grants)
        self.assertFalse(self.grants(DEFAULT_SF_ORG)[0]["revoked"])
        events = self.audit(org, keys["admin"])
        self.assertEqual(events[0]["action"], "connect_failed")
        self.assertEqual(events[0]["detail"].get("reason"), "org_mismatch")

    def test_reconnect_to_another_org_with_allow_org_change(self):
        org, keys = self.make_org("switch")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        old_refresh = self.grants(DEFAULT_SF_ORG)[0]["refresh_token"]
        STACK.fakesf("POST", "config", {"org_id": OTHER_SF_ORG})
        new = sf_id18(OTHER_SF_ORG)
        self.assertConnectedRedirect(
            self.connect(org, keys["admin"], {"allow_org_change": True}), sf_org=new)
        s = self.status(org, keys["admin"])
        self.assertEqual(s["status"], "connected")
        self.assertEqual(s["salesforce_org_id"], new)
        self.assertEqual(s["previous_salesforce_org_id"], DEFAULT_SF_ORG)
        self.assertTrue(self.grants(DEFAULT_SF_ORG)[0]["revoked"],
                        "the replaced org's refresh token was not revoked")
        self.assertFalse(self.grants(new)[0]["revoked"])
        self.assertIn(old_refresh, [r["form"].get("token") for r in self.sf_requests("revoke")])
        events = self.audit(org, keys["admin"])
        self.assertEqual(events[0]["action"], "connected")
        self.assertEqual(events[0]["detail"].get("salesforce_org_id"), new)

    def test_reconnect_from_invalid(self):
        org, keys = self.make_org("invalid")
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        STACK.fakesf("POST", "revoke_refresh", {"org_id": DEFAULT_SF_ORG})
        st, _, s = req("POST", SF.format(org) + "/check", key=keys["admin"])
        self.assertEqual(st, 200, s)
        self.assertEqual(s["status"], "invalid")
        self.assertIsNotNone(s["banner"])
        row = self.row(org)

        # Another org, without allow_org_change: refused, still invalid.
        STACK.fakesf("POST", "config", {"org_id": OTHER_SF_ORG})
        self.assertErrorRedirect(self.connect(org, keys["admin"]), "org_mismatch")
        self.assertEqual(self.row(org), row)

        # The same org, without a remove first: connected again, banner gone.
        STACK.fakesf("POST", "config", {"org_id": DEFAULT_SF_ORG})
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        s = self.status(org, keys["admin"])
        self.assertEqual(s["status"], "connected")
        self.assertIsNone(s["banner"])
        self.assertIsNone(s["last_error"])
        st, _, b = req("GET", f"/api/v1/orgs/{org}/banners", key=keys["admin"])
        self.assertEqual((st, b), (200, {"banners": []}))


# ---------------------------------------------------------------- login hosts

class LoginHostTest(OAuthCase):
    def assert_hosts(self, org, key, body, host, environment, login_host, id_host=None):
        """Every call of a connect, check and remove goes to host, but the
        identity, which goes to id_host: Salesforce's id URLs are on the
        login host (login. / test.), also for a My Domain login."""
        r = self.connect(org, key, body, accept_json=True)
        self.assertEqual(r[0], 200, r[2])
        s = r[2]
        self.assertEqual(s["environment"], environment)
        self.assertEqual(s["login_host"], login_host)
        st, _, c = req("POST", SF.format(org) + "/check", key=key)
        self.assertEqual(st, 200, c)
        self.assertEqual(c["status"], "connected", c)
        st, _, d = req("DELETE", SF.format(org), key=key)
        self.assertEqual(st, 200, d)
        self.assertIs(d["revoked"], True, d)
        for endpoint in ("authorize", "token_code", "identity", "token_refresh", "revoke"):
            with self.subTest(endpoint=endpoint):
                seen = [x["host"] for x in self.sf_requests(endpoint)]
                self.assertTrue(seen, f"no {endpoint} call")
                want = id_host or host if endpoint == "identity" else host
                self.assertEqual(set(seen), {want}, f"{endpoint} went to {seen}")

    def test_sandbox_uses_its_login_host(self):
        org, keys = self.make_org("sandbox")
        url = self.start(org, keys["admin"], {"environment": "sandbox"})
        self.assertEqual(host_of(url), host_of(login_base("sandbox")))
        STACK.fakesf("POST", "reset")
        self.assert_hosts(org, keys["admin"], {"environment": "sandbox"},
                          host_of(login_base("sandbox")), "sandbox", login_base("sandbox"))

    def test_my_domain_uses_its_login_host(self):
        port = STACK.fakesf_port
        for i, (body, host, env) in enumerate((
                ({"my_domain": f"acme.my.localhost:{port}"},
                 f"acme.my.localhost:{port}", "production"),
                ({"my_domain": f"https://Globex.my.localhost:{port}/"},
                 f"globex.my.localhost:{port}", "production"),
                ({"environment": "sandbox", "my_domain": f"acme--uat.sandbox.my.localhost:{port}"},
                 f"acme--uat.sandbox.my.localhost:{port}", "sandbox"))):
            with self.subTest(my_domain=body["my_domain"]):
                STACK.fakesf("POST", "reset")
                org, keys = self.make_org(f"mydomain{i}")
                id_host = f"{'test' if env == 'sandbox' else 'login'}.localhost:{port}"
                self.assert_hosts(org, keys["admin"], body, host, env, f"https://{host}",
                                  id_host=id_host)

    def test_lightning_and_foreign_domains_are_refused(self):
        org, keys = self.make_org("lightning")
        port = STACK.fakesf_port
        for my_domain in ("acme.lightning.force.com", "https://acme.lightning.force.com/",
                          "ACME.Lightning.Force.com"):
            with self.subTest(my_domain=my_domain):
                body = self.assertError(req("POST", SF.format(org) + "/connect",
                                            key=keys["admin"], body={"my_domain": my_domain}),
                                        400, "bad_request")
                self.assertIn("My Domain", body["error"]["message"])
        for my_domain in (f"evil.localhost:{port}", "acme.my.salesforce.com.evil.example",
                          f"acme.my.localhost:{port}/path", f"http://acme.my.localhost:{port}",
                          "acme.my.localhost@evil.localhost", "my.localhost",
                          f"user@acme.my.localhost:{port}"):
            with self.subTest(my_domain=my_domain):
                self.assertError(req("POST", SF.format(org) + "/connect", key=keys["admin"],
                                     body={"my_domain": my_domain}), 400, "bad_request")
        self.assertError(req("POST", SF.format(org) + "/connect", key=keys["admin"],
                             body={"environment": "staging"}), 400, "bad_request")
        self.assertEqual(self.states_of(org), 0)


# ---------------------------------------------------------------- timing

class TimingTest(OAuthCase):
    def test_callback_time_end_to_end(self):
        first, again = [], []
        for i in range(20):
            org, keys = self.make_org("timing")
            cb = STACK.authorize(self.start(org, keys["admin"]))
            t0 = time.monotonic()
            r = self.follow(cb)
            first.append((time.monotonic() - t0) * 1000)
            self.assertConnectedRedirect(r)
            if i < 10:     # a reconnect also revokes the superseded refresh token
                cb = STACK.authorize(self.start(org, keys["admin"]))
                t0 = time.monotonic()
                r = self.follow(cb)
                again.append((time.monotonic() - t0) * 1000)
                self.assertConnectedRedirect(r)
        p90 = sorted(first)[int(len(first) * 0.9) - 1]
        print(f"\ncallback median {statistics.median(first):.1f} ms (first connect, "
              f"n={len(first)}, p90 {p90:.1f} ms, max {max(first):.1f} ms); "
              f"reconnect median {statistics.median(again):.1f} ms (n={len(again)})",
              flush=True)
        self.assertLess(statistics.median(first), 1000)


# ---------------------------------------------------------------- key rotation

class ZyKeyRotationTest(OAuthCase):
    """A new token key with the old one as previous: tokens stay readable,
    rotate-keys re-seals them, and then the old key is no longer needed."""

    def kid_of(self, slug):
        rows = STACK.psql("SELECT split_part(access_token_enc, ':', 2), "
                          "split_part(refresh_token_enc, ':', 2) FROM integrations i "
                          f"JOIN orgs o ON o.id = i.org_id WHERE o.slug = '{slug}'")
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0][0], rows[0][1], rows)
        return rows[0][0]

    def token(self, slug, key):
        st, _, body = req("GET", SF.format(slug) + "/token", key=key)
        self.assertEqual(st, 200, body)
        return body["access_token"]

    def test_rotation(self):
        slug, keys = self.make_org("rot", roles=("admin", "service"))
        self.assertConnectedRedirect(self.connect(slug, keys["admin"]))
        old_kid = self.kid_of(slug)
        before = self.token(slug, keys["service"])
        old_key = STACK.config_values(STACK.daemon.socket_path)["token_key_file"]
        new_key = STACK.new_token_key("token2.key")
        STACK.restart_daemon(config={"token_key_file": new_key,
                                     "token_previous_key_files": old_key})
        self.assertEqual(self.token(slug, keys["service"]), before)
        out = STACK.admin("rotate-keys")
        self.assertRegex(out, r"^re-sealed the tokens of [1-9]\d* of \d+ orgs with key "
                         r"[0-9a-f]{8}; 0 failed$")
        new_kid = self.kid_of(slug)
        self.assertNotEqual(new_kid, old_kid)
        self.assertIn(new_kid, out)
        self.assertEqual(self.token(slug, keys["service"]), before)
        # Nothing is sealed with the old key any more.
        rows = STACK.psql("SELECT count(*) FROM integrations WHERE "
                          f"access_token_enc LIKE 'v1:{old_kid}:%' OR "
                          f"refresh_token_enc LIKE 'v1:{old_kid}:%'")
        self.assertEqual(str(rows[0][0]), "0", rows)
        self.assertRegex(STACK.admin("rotate-keys"), r"^re-sealed the tokens of 0 of ")
        st, _, body = req("POST", SF.format(slug) + "/check", key=keys["admin"])
        self.assertEqual(st, 200, body)
        self.assertEqual(body["status"], "connected", body)


# ---------------------------------------------------------------- secrets (runs last)

class ZzSecretsTest(OAuthCase):
    """Named to run after the other classes (unittest sorts them), so that it
    also checks every token those tests made the simulator issue."""

    def test_tokens_never_in_pg_dump_nor_daemon_log(self):
        org, keys = self.make_org("secrets", ("admin", "service"))
        STACK.fakesf("POST", "config", {"rotation": True})
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))
        self.assertConnectedRedirect(self.connect(org, keys["admin"]))     # revokes one
        self.assertEqual(req("POST", SF.format(org) + "/check", key=keys["admin"])[0], 200)
        self.assertEqual(req("GET", SF.format(org) + "/token?force_refresh=1",
                             key=keys["service"])[0], 200)
        self.fault("token_code", "bad_signature")
        self.assertErrorRedirect(self.connect(org, keys["admin"]), "bad_signature")
        STACK.fakesf("POST", "config", {"org_id": "new"})
        self.assertErrorRedirect(self.connect(org, keys["admin"]), "org_mismatch")
        self.assertEqual(req("DELETE", SF.format(org), key=keys["admin"])[0], 200)
        collect_tokens()
        self.assertGreater(len(ALL_TOKENS), 8, "too few tokens to make this test meaningful")
        dump = STACK.pg_dump()
        log = STACK.daemon_log()
        self.assertIn("integrations", dump)
        self.assertTrue(log.strip(), "the daemon log is empty")
        in_dump = sorted(t[:12] + "..." for t in ALL_TOKENS if t in dump)
        in_log = sorted(t[:12] + "..." for t in ALL_TOKENS if t in log)
        self.assertEqual(in_dump, [], "tokens in the pg_dump")
        self.assertEqual(in_log, [], "tokens in the daemon log")
        # Nor the random part of an access token without its OrgID prefix.
        for t in ALL_TOKENS:
            if "!" in t:
                secret_part = t.split("!", 1)[1]
                self.assertNotIn(secret_part, dump)
                self.assertNotIn(secret_part, log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
