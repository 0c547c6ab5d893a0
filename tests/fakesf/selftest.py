#!/usr/bin/python3
"""Self-test of the Salesforce simulator: /usr/bin/python3 tests/fakesf/selftest.py"""

import base64
import http.client
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import fakesf  # noqa: E402

REDIRECT = "https://app.example/api/v1/oauth/salesforce/callback"


class LoopbackHTTPS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 while verifying and sending the given host name
    (Python does not resolve *.localhost to loopback the way curl does)."""

    def __init__(self, host, port, context, timeout=10):
        super().__init__(host, port, context=context, timeout=timeout)
        self.ctx = context

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self.ctx.wrap_socket(sock, server_hostname=self.host)


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class FakeSFTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="fakesf-")
        cls.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "fakesf.py"), "--dir", cls.dir,
             "--port", "0", "--untrusted-port", "0"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(cls.dir, "stderr.log"), "w"),
            text=True)
        line = cls.proc.stdout.readline()
        if not line.startswith("fakesf ready port="):
            cls.proc.kill()
            raise RuntimeError(f"fakesf did not start: {line!r}")
        with open(os.path.join(cls.dir, "fakesf.json")) as f:
            cls.info = json.load(f)
        cls.port = cls.info["port"]
        assert line.strip() == f"fakesf ready port={cls.port}"
        cls.ctx = ssl.create_default_context(cafile=cls.info["ca"])

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        rc = cls.proc.wait(10)
        cls.proc.stdout.close()
        with open(os.path.join(cls.dir, "stderr.log")) as f:
            cls.log = f.read()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert rc == 0, f"fakesf exited with {rc}"

    def setUp(self):
        self.ctl("POST", "reset")

    # -- helpers

    def request(self, method, path, host="login.localhost", form=None, body=None,
                headers=None, port=None):
        conn = LoopbackHTTPS(host, port or self.port, self.ctx)
        headers = dict(headers or {})
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def ctl(self, method, name, body=None, query=""):
        data = json.dumps(body) if body is not None else None
        resp = self.request(method, "/__control/" + name + query, host="localhost", body=data)
        self.assertEqual(resp.status, 200, resp.body)
        return resp.json()

    def login(self):
        return f"https://login.localhost:{self.port}"

    def authorize(self, scope="api refresh_token id", host="login.localhost", **over):
        verifier = secrets.token_urlsafe(48)
        params = {"response_type": "code", "client_id": "test-client-id",
                  "redirect_uri": REDIRECT, "scope": scope, "state": "st4te",
                  "code_challenge": fakesf.pkce_challenge(verifier),
                  "code_challenge_method": "S256", **over}
        resp = self.request("GET", "/services/oauth2/authorize?" + urllib.parse.urlencode(params),
                            host=host)
        return resp, verifier

    def get_code(self, **kw):
        resp, verifier = self.authorize(**kw)
        self.assertEqual(resp.status, 302, resp.body)
        loc = urllib.parse.urlsplit(resp.headers["Location"])
        query = dict(urllib.parse.parse_qsl(loc.query))
        self.assertEqual(query["state"], "st4te")
        return query["code"], verifier

    def token(self, form, host="login.localhost", auth=None):
        full = {"client_id": "test-client-id", "client_secret": "test-client-secret", **form}
        full = {k: v for k, v in full.items() if v is not None}
        headers = {"Authorization": auth} if auth else {}
        return self.request("POST", "/services/oauth2/token", host=host, form=full,
                            headers=headers)

    def exchange(self, code, verifier, **kw):
        return self.token({"grant_type": "authorization_code", "code": code,
                           "redirect_uri": REDIRECT, "code_verifier": verifier}, **kw)

    def connect(self, **kw):
        code, verifier = self.get_code(**kw)
        resp = self.exchange(code, verifier, host=kw.get("host", "login.localhost"))
        self.assertEqual(resp.status, 200, resp.body)
        return resp.json()

    def refresh(self, rt, **kw):
        return self.token({"grant_type": "refresh_token", "refresh_token": rt}, **kw)

    def assert_error(self, resp, error, description=None, status=400):
        self.assertEqual(resp.status, status, resp.body)
        self.assertTrue(resp.headers["Content-Type"].startswith("application/json"))
        body = resp.json()
        self.assertEqual(body["error"], error, body)
        if description is not None:
            self.assertEqual(body["error_description"], description)

    def limits(self, access_token):
        return self.request("GET", "/services/data/v60.0/limits", host="acme.my.localhost",
                            headers={"Authorization": "Bearer " + access_token})

    def identity(self, tok):
        path = urllib.parse.urlsplit(tok["id"]).path
        return self.request("GET", path, headers={"Authorization": "Bearer " + tok["access_token"]})

    def assert_signed(self, tok):
        self.assertEqual(tok["signature"],
                         fakesf.sign(tok["id"], tok["issued_at"], "test-client-secret"))

    # -- pure functions

    def test_signature_vector(self):
        self.assertEqual(
            fakesf.sign("https://login.salesforce.com/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU",
                        "1278448384422", "EXAMPLE_CONSUMER_SECRET"),
            "u8FtmH6UcfueugI0YLNP3RkZX8oqm9NS9f3wnL0JY+k=")

    def test_id_checksum(self):
        self.assertEqual(fakesf.sf_id18("00Dx0000000BV7z"), "00Dx0000000BV7zEAG")
        self.assertEqual(fakesf.sf_id18("005x00000012Q9P"), "005x00000012Q9PAAU")
        self.assertEqual(fakesf.normalize_id("00D5g000004XyZa", "00D"), "00D5g000004XyZaEAK")
        self.assertRaises(ValueError, fakesf.normalize_id, "00D5g000004XyZaAAA", "00D")
        rid = fakesf.random_id("00D")
        self.assertEqual(fakesf.normalize_id(rid[:15], "00D"), rid)
        cfg = self.ctl("GET", "config")
        for key in ("org_id", "user_id"):
            self.assertEqual(fakesf.sf_id18(cfg[key][:15]), cfg[key])

    def test_pkce(self):   # RFC 7636 appendix B
        self.assertEqual(fakesf.pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                         "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")

    # -- the main flow

    def test_full_flow(self):
        code, verifier = self.get_code()
        tok = self.exchange(code, verifier)
        self.assertEqual(tok.status, 200, tok.body)
        self.assertEqual(tok.headers["Content-Type"], "application/json;charset=UTF-8")
        tok = tok.json()
        cfg = self.ctl("GET", "config")
        org, user = cfg["org_id"], cfg["user_id"]
        self.assertNotIn("expires_in", tok)
        self.assertEqual(tok["token_type"], "Bearer")
        self.assertEqual(tok["id"], f"{self.login()}/id/{org}/{user}")
        self.assertEqual(tok["instance_url"], f"https://acme.my.localhost:{self.port}")
        self.assertEqual(tok["scope"], "api refresh_token id")
        self.assertTrue(tok["access_token"].startswith(org[:15] + "!"))
        self.assertTrue(tok["refresh_token"].startswith("5Aep861"))
        self.assertGreaterEqual(len(tok["refresh_token"]), 40)
        self.assertTrue(abs(int(tok["issued_at"]) - time.time() * 1000) < 60000)
        self.assert_signed(tok)

        rec = self.ctl("GET", "requests", query="?endpoint=token_code&limit=1")
        self.assertEqual(rec[0]["form"]["code_verifier"], verifier)
        self.assertEqual(rec[0]["host"], f"login.localhost:{self.port}")

        ident = self.identity(tok)
        self.assertEqual(ident.status, 200, ident.body)
        ident = ident.json()
        self.assertEqual((ident["organization_id"], ident["user_id"]), (org, user))
        self.assertEqual(ident["username"], "admin@acme.example")
        self.assertEqual(ident["display_name"], "Ada Admin")
        self.assertIs(ident["active"], True)
        self.assertEqual(ident["user_type"], "STANDARD")
        self.assertEqual(ident["urls"]["rest"],
                         tok["instance_url"] + "/services/data/v{version}/")
        info = self.request("GET", "/services/oauth2/userinfo",
                            headers={"Authorization": "Bearer " + tok["access_token"]}).json()
        self.assertEqual(info["sub"], tok["id"])
        self.assertEqual(self.limits(tok["access_token"]).status, 200)
        intro = self.request("POST", "/services/oauth2/introspect",
                             form={"token": tok["access_token"], "client_id": "test-client-id",
                                   "client_secret": "test-client-secret"}).json()
        self.assertIs(intro["active"], True)

        ref = self.refresh(tok["refresh_token"])
        self.assertEqual(ref.status, 200, ref.body)
        ref = ref.json()
        self.assertNotIn("refresh_token", ref)
        self.assertNotEqual(ref["access_token"], tok["access_token"])
        self.assert_signed(ref)
        self.assertEqual(self.limits(tok["access_token"]).status, 200)   # old one still valid

        rev = self.request("POST", "/services/oauth2/revoke", form={"token": tok["refresh_token"]})
        self.assertEqual((rev.status, rev.body), (200, b""))
        self.assert_error(self.refresh(tok["refresh_token"]), *fakesf.EXPIRED_TOKEN)
        self.assertEqual(self.limits(ref["access_token"]).status, 401)
        self.assert_error(self.request("POST", "/services/oauth2/revoke",
                                       form={"token": tok["refresh_token"]}),
                          "invalid_token", "invalid token")
        counts = self.ctl("GET", "counts")
        self.assertEqual((counts["authorize"], counts["token_code"], counts["token_refresh"],
                          counts["revoke"], counts["identity"]), (1, 1, 2, 2, 1))
        tokens = self.ctl("GET", "tokens")
        self.assertEqual(len(tokens["access_tokens"]), 2)
        self.assertEqual(tokens["refresh_tokens"], [tok["refresh_token"]])
        grants = self.ctl("GET", "grants")
        self.assertEqual(len(grants), 1)
        self.assertIs(grants[0]["revoked"], True)
        self.assertEqual(grants[0]["login_host"], self.login())

    def test_basic_auth_and_client_errors(self):
        code, verifier = self.get_code()
        basic = "Basic " + base64.b64encode(b"test-client-id:test-client-secret").decode()
        resp = self.request("POST", "/services/oauth2/token", headers={"Authorization": basic},
                            form={"grant_type": "authorization_code", "code": code,
                                  "redirect_uri": REDIRECT, "code_verifier": verifier})
        self.assertEqual(resp.status, 200, resp.body)
        rt = resp.json()["refresh_token"]
        self.assert_error(self.token({"grant_type": "refresh_token", "refresh_token": rt,
                                      "client_id": "nope"}),
                          "invalid_client_id", "client identifier invalid")
        self.assert_error(self.token({"grant_type": "refresh_token", "refresh_token": rt,
                                      "client_secret": "nope"}),
                          "invalid_client", "invalid client credentials")
        self.assert_error(self.token({"grant_type": "password"}), "unsupported_grant_type")

    def test_code_reuse_and_pkce_errors(self):
        code, verifier = self.get_code()
        self.assertEqual(self.exchange(code, verifier).status, 200)
        self.assert_error(self.exchange(code, verifier), *fakesf.EXPIRED_CODE)
        code, verifier = self.get_code()
        self.assert_error(self.exchange(code, verifier + "x"), "invalid_request",
                          "invalid code verifier")
        code, _ = self.get_code()
        self.assert_error(self.exchange(code, None), "invalid_grant")
        code, verifier = self.get_code()
        self.assert_error(self.token({"grant_type": "authorization_code", "code": code,
                                      "redirect_uri": REDIRECT + "x", "code_verifier": verifier}),
                          "invalid_grant", "redirect_uri mismatch")
        code, verifier = self.get_code()        # the code is bound to its login host
        self.assert_error(self.exchange(code, verifier, host="test.localhost"),
                          *fakesf.EXPIRED_CODE)
        code, verifier = self.get_code()
        self.ctl("POST", "expire_codes", {})
        self.assert_error(self.exchange(code, verifier), *fakesf.EXPIRED_CODE)

    def redirect_query(self, resp):
        self.assertEqual(resp.status, 302, resp.body)
        loc = urllib.parse.urlsplit(resp.headers["Location"])
        self.assertEqual(loc._replace(query="").geturl(), REDIRECT)
        return dict(urllib.parse.parse_qsl(loc.query))

    def assert_error_page(self, resp, error):
        self.assertEqual(resp.status, 400, resp.body)
        self.assertTrue(resp.headers["Content-Type"].startswith("text/html"))
        self.assertIsNone(resp.headers.get("Location"))
        self.assertIn(f"error={error}".encode(), resp.body)

    def test_authorize_validation_and_denial(self):
        # parameter errors after the redirect_uri is known go back to it
        for bad, error in (({"response_type": "token"}, "unsupported_response_type"),
                           ({"code_challenge_method": "plain"}, "invalid_request"),
                           ({"code_challenge": ""}, "invalid_request")):
            resp, _ = self.authorize(**bad)
            q = self.redirect_query(resp)
            self.assertEqual((q["error"], q["state"]), (error, "st4te"), bad)
        self.assert_error_page(self.authorize(client_id="other")[0], "invalid_client_id")
        self.ctl("POST", "config", {"deny": True})
        resp, _ = self.authorize()
        self.assertEqual(resp.status, 302)
        self.assertEqual(resp.headers["Location"], REDIRECT +
                         "?error=access_denied&error_description=end-user+denied+authorization"
                         "&state=st4te")

    def test_scope_without_refresh_token(self):
        tok = self.connect(scope="api id")
        self.assertNotIn("refresh_token", tok)
        self.assertEqual(tok["scope"], "api id")
        self.assertIn("refresh_token", self.connect(scope="api offline_access"))

    def test_config_identity_and_sandbox_host(self):
        cfg = self.ctl("POST", "config", {"org_id": "00D000000000001", "user_id": "new",
                                          "username": "bob@sb.example", "display_name": "Bob B",
                                          "instance_url": f"https://acme--dev.sandbox.my.localhost:{self.port}"})
        self.assertEqual(cfg["org_id"], fakesf.sf_id18("00D000000000001"))
        tok = self.connect(host="acme--dev.sandbox.my.localhost")
        # id_on_login_host (the default): a sandbox My Domain's id is on test.
        self.assertEqual(tok["id"], f"https://test.localhost:{self.port}"
                                    f"/id/{cfg['org_id']}/{cfg['user_id']}")
        self.assertEqual(tok["instance_url"], cfg["instance_url"])
        self.assertEqual(self.identity(tok).json()["username"], "bob@sb.example")
        # strict_host: the refresh must go to the host the org was authorized on
        self.assert_error(self.refresh(tok["refresh_token"]), *fakesf.EXPIRED_TOKEN)
        self.assertEqual(self.refresh(tok["refresh_token"],
                                      host="acme--dev.sandbox.my.localhost").status, 200)
        resp = self.request("POST", "/__control/config", host="localhost",
                            body=json.dumps({"org_id": "00D5g000004XyZaAAA"}))
        self.assertEqual(resp.status, 400)

    def test_inactive_user_and_org(self):
        tok = self.connect()
        self.ctl("POST", "config", {"user_active": False})
        self.assert_error(self.refresh(tok["refresh_token"]), "invalid_grant",
                          "authentication failure")
        self.assertIs(self.identity(tok).json()["active"], False)
        self.ctl("POST", "config", {"user_active": True, "org_active": False})
        self.assert_error(self.refresh(tok["refresh_token"]), "inactive_org")
        self.ctl("POST", "config", {"org_active": True})
        self.assertEqual(self.refresh(tok["refresh_token"]).status, 200)

    def test_rotation_reuse_revokes_grant(self):
        self.ctl("POST", "config", {"rotation": True})
        tok = self.connect()
        first = self.refresh(tok["refresh_token"]).json()
        self.assertIn("refresh_token", first)
        self.assertNotEqual(first["refresh_token"], tok["refresh_token"])
        second = self.refresh(first["refresh_token"]).json()
        self.assertEqual(self.limits(second["access_token"]).status, 200)
        # presenting the superseded token again kills the whole grant
        self.assert_error(self.refresh(tok["refresh_token"]), *fakesf.EXPIRED_TOKEN)
        self.assert_error(self.refresh(second["refresh_token"]), *fakesf.EXPIRED_TOKEN)
        self.assertEqual(self.limits(second["access_token"]).status, 401)
        self.assertEqual(self.identity(tok).body, b"Bad_OAuth_Token")

    def test_grants_mint(self):
        tok = self.connect()
        minted = self.ctl("POST", "grants/mint", {"n": 3, "like": tok["refresh_token"]})
        minted = minted["grants"]
        self.assertEqual(len({g["org_id"] for g in minted}), 3)
        for g in minted:
            ref = self.refresh(g["refresh_token"])
            self.assertEqual(ref.status, 200, ref.body)
            self.assertEqual(ref.json()["id"], f"{self.login()}/id/{g['org_id']}/{g['user_id']}")
        grants = self.ctl("GET", "grants")
        self.assertEqual([g["refresh_token"] for g in grants[1:]],
                         [g["refresh_token"] for g in minted])
        self.assertEqual({g["login_host"] for g in grants}, {self.login()})
        for bad in ({"n": 0, "like": tok["refresh_token"]}, {"n": 1, "like": "nope"}):
            resp = self.request("POST", "/__control/grants/mint", host="localhost",
                                body=json.dumps(bad))
            self.assertEqual(resp.status, 400, bad)

    def test_concurrent_refresh(self):
        tok = self.connect()
        self.ctl("POST", "fault", {"endpoint": "token_refresh", "kind": "delay", "delay_ms": 600})
        results = []
        slow = threading.Thread(target=lambda: results.append(self.refresh(tok["refresh_token"])))
        slow.start()
        time.sleep(0.25)
        fast = self.refresh(tok["refresh_token"])
        slow.join()
        self.assert_error(fast, *fakesf.ALREADY_PROCESSING)
        self.assertEqual(results[0].status, 200, results[0].body)
        self.assertEqual(self.refresh(tok["refresh_token"]).status, 200)

    def test_expire_access_and_revoke_refresh(self):
        tok = self.connect()
        self.assertEqual(self.ctl("POST", "expire_access", {}), {"expired": 1})
        resp = self.limits(tok["access_token"])
        self.assertEqual(resp.status, 401)
        self.assertEqual(resp.json(), [{"message": "Session expired or invalid",
                                        "errorCode": "INVALID_SESSION_ID"}])
        ident = self.identity(tok)
        self.assertEqual((ident.status, ident.body), (403, b"Bad_OAuth_Token"))
        ref = self.refresh(tok["refresh_token"]).json()
        self.assertEqual(self.limits(ref["access_token"]).status, 200)
        other = self.ctl("POST", "config", {"org_id": "new"})["org_id"]
        self.connect()
        self.assertEqual(self.ctl("POST", "revoke_refresh", {"org_id": other}), {"revoked": 1})
        self.assertEqual(self.refresh(tok["refresh_token"]).status, 200)
        self.assertEqual(self.ctl("POST", "revoke_refresh", {}), {"revoked": 1})
        self.assert_error(self.refresh(tok["refresh_token"]), *fakesf.EXPIRED_TOKEN)

    def test_revoke_access_token_only(self):
        tok = self.connect()
        resp = self.request("GET", "/services/oauth2/revoke?token=" + tok["access_token"])
        self.assertEqual(resp.status, 200)
        self.assertEqual(self.limits(tok["access_token"]).status, 401)
        self.assertEqual(self.refresh(tok["refresh_token"]).status, 200)

    def test_redirect_uri_mismatch_is_an_html_page(self):
        self.ctl("POST", "config", {"redirect_uris": [REDIRECT]})
        self.assert_error_page(self.authorize(redirect_uri=REDIRECT + "x")[0],
                               "redirect_uri_mismatch")
        self.assert_error_page(self.authorize(redirect_uri="")[0], "redirect_uri_mismatch")
        self.assertEqual(self.authorize()[0].status, 302)

    def test_authorize_error_codes(self):
        self.ctl("POST", "config", {"authorize_error": "OAUTH_APP_ACCESS_DENIED"})
        q = self.redirect_query(self.authorize()[0])
        self.assertEqual(q, {"error": "OAUTH_APP_ACCESS_DENIED", "state": "st4te",
                             "error_description": "user is not admin approved to access this app"})
        self.ctl("POST", "config", {"authorize_error": "OAUTH_EC_APP_NOT_FOUND",
                                    "authorize_error_description": "not here"})
        q = self.redirect_query(self.authorize()[0])
        self.assertEqual((q["error"], q["error_description"]), ("OAUTH_EC_APP_NOT_FOUND", "not here"))
        self.ctl("POST", "config", {"authorize_error": None})
        tok = self.connect()
        # blocking the app ends every session and refuses new ones
        self.ctl("POST", "config", {"app_blocked": True})
        self.assertEqual(self.redirect_query(self.authorize()[0])["error"], "OAUTH_APP_BLOCKED")
        self.assert_error(self.refresh(tok["refresh_token"]), *fakesf.EXPIRED_TOKEN)
        self.assertEqual(self.limits(tok["access_token"]).status, 401)
        self.ctl("POST", "config", {"app_blocked": False})
        self.connect()
        # an unapproved or IP-restricted user is refused at authorize too
        for key in ({"user_approved": False}, {"ip_restricted": True}):
            self.ctl("POST", "reset")
            self.ctl("POST", "config", key)
            self.assertEqual(self.redirect_query(self.authorize()[0])["error"],
                             "OAUTH_APP_ACCESS_DENIED", key)

    def test_withhold_scopes(self):
        self.ctl("POST", "config", {"withhold_scopes": ["refresh_token", "offline_access"]})
        tok = self.connect(scope="api refresh_token offline_access id")
        self.assertNotIn("refresh_token", tok)
        self.assertEqual(tok["scope"], "api id")
        self.assertEqual(self.ctl("GET", "grants")[0]["scope"], "api id")

    def test_id_on_login_host(self):
        cfg = self.ctl("GET", "config")
        path = f"/id/{cfg['org_id']}/{cfg['user_id']}"
        self.ctl("POST", "config", {"id_on_login_host": False})
        tok = self.connect(host="acme.my.localhost")      # off: the request's host
        self.assertEqual(tok["id"], f"https://acme.my.localhost:{self.port}{path}")
        self.ctl("POST", "config", {"id_on_login_host": True})  # the default
        for host, login in (("acme.my.localhost", "login.localhost"),
                            ("acme--dev.sandbox.my.localhost", "test.localhost"),
                            ("test.localhost", "test.localhost"),
                            ("login.localhost", "login.localhost")):
            tok = self.connect(host=host)
            self.assertEqual(tok["id"], f"https://{login}:{self.port}{path}", host)
            self.assert_signed(tok)
            ref = self.refresh(tok["refresh_token"], host=host).json()
            self.assertEqual(ref["id"], tok["id"])
            ident = self.request("GET", path, host=login,
                                 headers={"Authorization": "Bearer " + tok["access_token"]})
            self.assertEqual(ident.status, 200, ident.body)
            self.assertEqual(ident.json()["id"], tok["id"])
        # an identity that is not the token's: 404
        other = fakesf.random_id("005")
        resp = self.request("GET", f"/id/{cfg['org_id']}/{other}",
                            headers={"Authorization": "Bearer " + tok["access_token"]})
        self.assertEqual(resp.status, 404)

    # -- the clock and expiry

    def advance(self, seconds):
        return self.ctl("POST", "clock", {"advance_s": seconds})

    def test_clock(self):
        clock = self.ctl("GET", "clock")
        self.assertEqual(clock["offset_s"], 0)
        self.assertLess(abs(clock["now"] - time.time()), 5)
        self.assertEqual(self.advance(90)["offset_s"], 90)
        self.assertEqual(self.advance(10)["offset_s"], 100)
        for bad in ({"advance_s": -1}, {"advance_s": "x"}, {"later": 1}):
            resp = self.request("POST", "/__control/clock", host="localhost", body=json.dumps(bad))
            self.assertEqual(resp.status, 400, bad)
        code, verifier = self.get_code()      # codes last 15 minutes of the clock
        self.advance(15 * 60 + 1)
        self.assert_error(self.exchange(code, verifier), *fakesf.EXPIRED_CODE)
        self.ctl("POST", "reset")
        self.assertEqual(self.ctl("GET", "clock")["offset_s"], 0)

    def test_session_timeout(self):
        tok = self.connect()
        self.ctl("POST", "config", {"session_timeout_s": 7200})
        self.advance(7199)
        self.assertEqual(self.limits(tok["access_token"]).status, 200)
        self.advance(2)
        self.assertEqual(self.limits(tok["access_token"]).status, 401)
        self.assertEqual(self.refresh(tok["refresh_token"]).status, 200)

    def grant_expired(self):
        return [g["expired"] for g in self.ctl("GET", "grants")]

    def test_policy_expire_after(self):
        self.ctl("POST", "config", {"refresh_policy": "expire_after", "refresh_policy_s": 3600})
        tok = self.connect()
        self.advance(3000)
        self.assertEqual(self.refresh(tok["refresh_token"]).status, 200)
        self.advance(601)                      # counted from the approval, not the last use
        self.assert_error(self.refresh(tok["refresh_token"]), *fakesf.EXPIRED_TOKEN)
        self.assertEqual(self.grant_expired(), ["expire_after"])
        self.assertEqual(self.limits(tok["access_token"]).status, 200)   # the session lives on

    def test_policy_expire_if_unused(self):
        self.ctl("POST", "config", {"refresh_policy": "expire_if_unused", "refresh_policy_s": 3600})
        tok = self.connect()
        for _ in range(3):                     # a keep-alive inside N keeps it alive
            self.advance(3000)
            self.assertEqual(self.refresh(tok["refresh_token"]).status, 200)
        self.advance(3600)
        self.assert_error(self.refresh(tok["refresh_token"]), *fakesf.EXPIRED_TOKEN)
        self.assertEqual(self.grant_expired(), ["expire_if_unused"])

    def test_policy_immediately(self):
        self.ctl("POST", "config", {"refresh_policy": "immediately"})
        tok = self.connect()
        self.assertIn("refresh_token", tok)
        self.assertEqual(self.limits(tok["access_token"]).status, 200)
        self.assert_error(self.refresh(tok["refresh_token"]), *fakesf.EXPIRED_TOKEN)
        self.ctl("POST", "config", {"refresh_policy": "valid_until_revoked"})
        self.assert_error(self.refresh(tok["refresh_token"]), *fakesf.EXPIRED_TOKEN)
        self.assertEqual(self.grant_expired(), ["immediately"])
        bad = self.request("POST", "/__control/config", host="localhost",
                           body=json.dumps({"refresh_policy": "sometimes"}))
        self.assertEqual(bad.status, 400)

    def test_idle_limit(self):
        day = 86400
        tok = self.connect()                   # no rotation: no idle limit by default
        self.advance(40 * day)
        self.assertEqual(self.refresh(tok["refresh_token"]).status, 200)
        self.ctl("POST", "config", {"rotation": True})
        rt = self.refresh(tok["refresh_token"]).json()["refresh_token"]
        self.advance(30 * day - 1)
        rt = self.refresh(rt).json()["refresh_token"]
        self.advance(30 * day)
        self.assert_error(self.refresh(rt), *fakesf.EXPIRED_TOKEN)
        self.assertEqual(self.grant_expired(), ["idle_limit"])
        # configurable, and it can apply without rotation
        self.ctl("POST", "reset")
        self.ctl("POST", "config", {"idle_limit_s": 100, "idle_limit_applies": "always"})
        tok = self.connect()
        self.advance(99)
        self.assertEqual(self.refresh(tok["refresh_token"]).status, 200)
        self.advance(100)
        self.assert_error(self.refresh(tok["refresh_token"]), *fakesf.EXPIRED_TOKEN)

    def test_approval_limit(self):
        toks = [self.connect() for _ in range(6)]
        self.assert_error(self.refresh(toks[0]["refresh_token"]), *fakesf.EXPIRED_TOKEN)
        self.assertEqual(self.limits(toks[0]["access_token"]).status, 401)
        for tok in toks[1:]:
            self.assertEqual(self.refresh(tok["refresh_token"]).status, 200)
        self.assertEqual([g["revoked"] for g in self.ctl("GET", "grants")],
                         [True] + [False] * 5)
        # grants without a refresh token and other users do not count
        self.connect(scope="api id")
        self.ctl("POST", "config", {"user_id": "new"})
        self.connect()
        self.assertEqual(self.refresh(toks[1]["refresh_token"]).status, 200)
        self.ctl("POST", "reset")
        self.ctl("POST", "config", {"approval_limit": 0})
        toks = [self.connect() for _ in range(7)]
        self.assertEqual(self.refresh(toks[0]["refresh_token"]).status, 200)

    # -- faults

    def fault(self, endpoint, kind, **kw):
        self.ctl("POST", "fault", {"endpoint": endpoint, "kind": kind, **kw})

    def test_faults(self):
        tok = self.connect()
        rt = tok["refresh_token"]
        self.fault("token_refresh", "status500", count=2)
        for _ in range(2):
            resp = self.refresh(rt)
            self.assertEqual(resp.status, 500)
            self.assertIn(b"<html>", resp.body)
        self.assertEqual(self.refresh(rt).status, 200)

        self.fault("token_refresh", "malformed")
        resp = self.refresh(rt)
        self.assertEqual(resp.status, 200)
        self.assertRaises(ValueError, resp.json)

        self.fault("token_refresh", "bad_signature")
        body = self.refresh(rt).json()
        self.assertNotEqual(body["signature"],
                            fakesf.sign(body["id"], body["issued_at"], "test-client-secret"))

        self.fault("token_refresh", "foreign_id")
        body = self.refresh(rt).json()
        self.assertTrue(body["id"].startswith(f"https://evil.localhost:{self.port}/id/"))
        self.assert_signed(body)

        self.fault("token_refresh", "drop")
        self.assertRaises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError),
                          self.refresh, rt)

        self.fault("token_refresh", "invalid_client")
        self.assert_error(self.refresh(rt), "invalid_client")
        self.fault("token_refresh", "rate_limit")
        self.assert_error(self.refresh(rt), "rate_limit_exceeded")
        self.fault("token_refresh", "already_processing")
        self.assert_error(self.refresh(rt), *fakesf.ALREADY_PROCESSING)

        self.fault("identity", "delay", delay_ms=300)
        start = time.monotonic()
        self.assertEqual(self.identity(tok).status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.3)

        # FIFO per endpoint, "any" applies to every endpoint, faults are counted
        self.fault("revoke", "status500")
        self.fault("revoke", "rate_limit")
        self.assertEqual(self.request("POST", "/services/oauth2/revoke",
                                      form={"token": rt}).status, 500)
        self.assert_error(self.request("POST", "/services/oauth2/revoke", form={"token": rt}),
                          "rate_limit_exceeded")
        self.fault("any", "status500")
        self.assertEqual(self.authorize()[0].status, 500)
        self.fault("token_code", "drop")
        self.ctl("POST", "fault/clear", {})
        self.assertEqual(self.refresh(rt).status, 200)
        self.assertEqual(self.ctl("GET", "counts")["token_refresh"], 11)
        self.ctl("POST", "counts/reset", {})
        self.assertEqual(set(self.ctl("GET", "counts").values()), {0})

    def current_refresh(self):
        return self.ctl("GET", "grants")[0]["refresh_token"]

    def test_rotation_lost_answer(self):
        self.ctl("POST", "config", {"rotation": True})
        tok = self.connect()
        rt = tok["refresh_token"]
        self.fault("token_refresh", "drop_after")
        self.assertRaises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError),
                          self.refresh, rt)
        rotated = self.current_refresh()
        self.assertNotEqual(rotated, rt)       # processed: the answer was lost
        # presenting the superseded token kills the grant, the new token included
        self.assert_error(self.refresh(rt), *fakesf.EXPIRED_TOKEN)
        self.assert_error(self.refresh(rotated), *fakesf.EXPIRED_TOKEN)
        self.assertIs(self.ctl("GET", "grants")[0]["revoked"], True)

        self.ctl("POST", "reset")
        self.ctl("POST", "config", {"rotation": True})
        rt = self.connect()["refresh_token"]
        self.fault("token_refresh", "delay_after", delay_ms=1500)
        conn = LoopbackHTTPS("login.localhost", self.port, self.ctx, timeout=0.5)
        form = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": rt,
                                       "client_id": "test-client-id",
                                       "client_secret": "test-client-secret"})
        conn.request("POST", "/services/oauth2/token", body=form,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertRaises((socket.timeout, TimeoutError), conn.getresponse)
        conn.close()
        rotated = self.current_refresh()
        self.assertNotEqual(rotated, rt)
        self.assertEqual(self.refresh(rotated).status, 200)

    def test_rotation_with_bad_answers(self):
        self.ctl("POST", "config", {"rotation": True})
        rt = self.connect()["refresh_token"]
        for kind in ("bad_signature", "foreign_id", "foreign_instance"):
            self.fault("token_refresh", kind)
            body = self.refresh(rt).json()
            self.assertNotEqual(body["refresh_token"], rt, kind)
            self.assertEqual(self.current_refresh(), body["refresh_token"])
            if kind == "bad_signature":
                self.assertNotEqual(body["signature"], fakesf.sign(
                    body["id"], body["issued_at"], "test-client-secret"))
            else:
                self.assert_signed(body)
            field = "id" if kind == "foreign_id" else "instance_url"
            if kind != "bad_signature":
                self.assertTrue(body[field].startswith(f"https://evil.localhost:{self.port}"))
            rt = body["refresh_token"]

    def test_error_zoo(self):
        rt = self.connect()["refresh_token"]
        for kind, (error, description) in (
                ("expired_token", fakesf.EXPIRED_TOKEN),
                ("authentication_failure", ("invalid_grant", "authentication failure")),
                ("not_approved", ("invalid_grant", "user hasn't approved this consumer")),
                ("ip_restricted", ("invalid_grant", "IP restricted or invalid login hours")),
                ("token_validity_expired", ("invalid_grant", "token validity expired")),
                ("inactive_user", ("inactive_user", "user is inactive")),
                ("inactive_org", ("inactive_org", None)),
                ("app_blocked", ("OAUTH_APP_BLOCKED", None)),
                ("ec_app_not_found", ("OAUTH_EC_APP_NOT_FOUND", None)),
                ("rate_limit", ("rate_limit_exceeded", None))):
            self.fault("token_refresh", kind, count=2)
            for _ in range(2):
                self.assert_error(self.refresh(rt), error, description)
            self.assertEqual(self.refresh(rt).status, 200, kind)
        for kind, ctype in (("html_400", "text/html"), ("text_400", "text/plain")):
            self.fault("token_refresh", kind)
            resp = self.refresh(rt)
            self.assertEqual(resp.status, 400)
            self.assertTrue(resp.headers["Content-Type"].startswith(ctype), kind)
            self.assertRaises(ValueError, resp.json)
        self.fault("token_refresh", "error", status=403, content_type="text/plain", body="nope")
        resp = self.refresh(rt)
        self.assertEqual((resp.status, resp.headers["Content-Type"], resp.body),
                         (403, "text/plain", b"nope"))
        self.fault("token_refresh", "error", error="OAUTH_EC_SOMETHING", error_description="x")
        self.assert_error(self.refresh(rt), "OAUTH_EC_SOMETHING", "x")
        self.fault("token_refresh", "error", status=429, body={"error": "rate_limit_exceeded"})
        self.assert_error(self.refresh(rt), "rate_limit_exceeded", status=429)
        self.assertEqual(self.refresh(rt).status, 200)

    def test_restrictions_clear(self):
        rt = self.connect()["refresh_token"]
        for key, description in (("ip_restricted", "IP restricted or invalid login hours"),
                                 ("user_approved", "user hasn't approved this consumer")):
            on = key == "ip_restricted"
            self.assertIs(self.ctl("POST", "config", {key: on})[key], on)
            for _ in range(2):
                self.assert_error(self.refresh(rt), "invalid_grant", description)
            self.ctl("POST", "config", {key: not on})   # lifted: the same token works
            self.assertEqual(self.refresh(rt).status, 200, key)

    # -- TLS

    def test_untrusted_port_fails_verification(self):
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.request("GET", "/__control/health", host="localhost",
                         port=self.info["untrusted_port"])
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        conn = LoopbackHTTPS("localhost", self.info["untrusted_port"], insecure)
        conn.request("GET", "/__control/health")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()

    def test_certificate_names(self):
        for host in ("localhost", "login.localhost", "test.localhost", "acme.my.localhost",
                     "x--y.sandbox.my.localhost", "evil.localhost"):
            self.assertEqual(self.request("GET", "/__control/health", host=host).status, 200)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.request("GET", "/__control/health", host="login.salesforce.com")

    def test_keep_alive(self):
        conn = LoopbackHTTPS("localhost", self.port, self.ctx)
        for _ in range(3):
            conn.request("GET", "/__control/health")
            resp = conn.getresponse()
            self.assertEqual(json.loads(resp.read()), {"ok": True})
        conn.close()

    def test_log_has_no_tokens(self):
        tok = self.connect()
        self.refresh(tok["refresh_token"])
        self.request("GET", "/services/oauth2/revoke?token=" + tok["access_token"])
        self.ctl("GET", "health")
        with open(os.path.join(self.dir, "stderr.log")) as f:
            log = f.read()
        self.assertIn("POST /services/oauth2/token 200", log)
        for token in (tok["access_token"], tok["refresh_token"]):
            self.assertNotIn(token[10:30], log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
