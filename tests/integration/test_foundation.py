"""Foundation: auth and roles, the status API, admin over HTTP and the CLI,
the request layer (ids, 405/413/415/400/404, CORS), health, PostgreSQL going
away under the running daemon, worker respawn. One stack for the module."""

import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CORS_ORIGIN, Stack  # noqa: E402

STACK = None
SF = "/api/v1/orgs/{}/integrations/salesforce"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
STATUS_FIELDS = ("org", "provider", "status", "salesforce_org_id", "salesforce_user",
                 "instance_url", "environment", "login_host", "connected_at", "connected_by",
                 "last_refreshed_at", "last_checked_at", "last_error",
                 "previous_salesforce_org_id", "banner")
KEYS = {}       # (org, role) -> key, made once in setUpModule


def setUpModule():
    global STACK
    STACK = Stack(workers=2)
    STACK.start()
    for org in ("acme", "globex"):
        STACK.create_org(org, org.title())
        for role in ("viewer", "admin", "service"):
            KEYS[(org, role)] = STACK.create_key(org, role, f"{org}-{role}")
    KEYS["operator"] = STACK.operator_key


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def req(*args, **kwargs):
    return STACK.request(*args, **kwargs)


class ApiCase(unittest.TestCase):
    maxDiff = None

    def assertError(self, response, status, code=None):
        """The DESIGN.md error shape, with the status and (if given) the code."""
        st, headers, body = response
        self.assertEqual(st, status, f"expected {status}, got {st}: {body!r}")
        self.assertIn("application/json", headers.get("content-type", ""),
                      f"error without a JSON content type: {headers}")
        self.assertIsInstance(body, dict, f"error body is not JSON: {body!r}")
        self.assertIn("error", body)
        self.assertIsInstance(body["error"].get("code"), str)
        self.assertIsInstance(body["error"].get("message"), str)
        self.assertTrue(body["error"]["message"])
        self.assertRegex(body["error"]["code"], r"^[a-z][a-z0-9_]*$")
        if code is not None:
            self.assertEqual(body["error"]["code"], code, body)
        self.assertEqual(body.get("request_id"), headers.get("x-request-id"),
                         "request_id in the body differs from X-Request-Id")

    def assertOk(self, response, status=200):
        st, _, body = response
        self.assertEqual(st, status, f"expected {status}, got {st}: {body!r}")
        return body


# ---------------------------------------------------------------- auth and roles

class AuthTest(ApiCase):
    def test_no_header_is_401_with_bearer_challenge(self):
        r = req("GET", SF.format("acme"))
        self.assertError(r, 401, "unauthorized")
        self.assertTrue(r[1].get("www-authenticate", "").startswith("Bearer"), r[1])

    def test_garbage_key_is_401(self):
        for value in ("Bearer nope", "Bearer " + "x" * 300, "Basic YWRtaW46YWRtaW4=",
                      "Bearer", "bearer", KEYS[("acme", "viewer")]):
            with self.subTest(authorization=value[:40]):
                r = req("GET", SF.format("acme"), headers={"Authorization": value})
                self.assertError(r, 401, "unauthorized")
                self.assertTrue(r[1].get("www-authenticate", "").startswith("Bearer"))

    def test_key_with_one_char_changed_is_401(self):
        key = KEYS[("acme", "viewer")]
        bad = key[:-1] + ("A" if key[-1] != "A" else "B")
        self.assertError(req("GET", SF.format("acme"), key=bad), 401, "unauthorized")

    def test_revoked_key_is_401(self):
        key = STACK.create_key("acme", "viewer", "to-revoke-cli")
        self.assertOk(req("GET", SF.format("acme"), key=key))
        keys = self.assertOk(req("GET", "/api/v1/admin/keys?org=acme", key=KEYS["operator"]))
        ids = [k["id"] for k in keys["keys"] if k.get("label") == "to-revoke-cli"]
        self.assertEqual(len(ids), 1, keys)
        STACK.admin("key", "revoke", str(ids[0]))
        self.assertError(req("GET", SF.format("acme"), key=key), 401, "unauthorized")

    def test_viewer_of_other_org_is_403(self):
        self.assertError(req("GET", SF.format("globex"), key=KEYS[("acme", "viewer")]),
                         403, "forbidden")
        self.assertError(req("GET", f"/api/v1/orgs/globex/banners",
                             key=KEYS[("acme", "admin")]), 403, "forbidden")
        self.assertError(req("GET", f"/api/v1/orgs/globex/audit",
                             key=KEYS[("acme", "admin")]), 403, "forbidden")

    def test_unknown_org_is_404_for_operator_403_for_others(self):
        self.assertError(req("GET", SF.format("no-such-org"), key=KEYS["operator"]),
                         404, "not_found")
        for role in ("viewer", "admin", "service"):
            with self.subTest(role=role):
                self.assertError(req("GET", SF.format("no-such-org"),
                                     key=KEYS[("acme", role)]), 403, "forbidden")

    def test_admin_only_endpoint_refuses_viewer_and_service(self):
        for role in ("viewer", "service"):
            with self.subTest(role=role):
                self.assertError(req("GET", "/api/v1/orgs/acme/audit",
                                     key=KEYS[("acme", role)]), 403, "forbidden")
        self.assertOk(req("GET", "/api/v1/orgs/acme/audit", key=KEYS[("acme", "admin")]))
        self.assertOk(req("GET", "/api/v1/orgs/acme/audit", key=KEYS["operator"]))

    def test_every_org_role_can_read_status(self):
        for role in ("viewer", "admin", "service"):
            with self.subTest(role=role):
                body = self.assertOk(req("GET", SF.format("acme"), key=KEYS[("acme", role)]))
                self.assertEqual(body["org"], "acme")
        self.assertOk(req("GET", SF.format("acme"), key=KEYS["operator"]))

    def test_operator_endpoints_refuse_org_keys(self):
        for role in ("viewer", "admin", "service"):
            for method, path, body in (
                    ("GET", "/api/v1/admin/integrations", None),
                    ("GET", "/api/v1/admin/orgs", None),
                    ("POST", "/api/v1/admin/orgs", {"slug": "sneaky", "name": "x"}),
                    ("GET", "/api/v1/admin/keys?org=acme", None),
                    ("POST", "/api/v1/admin/orgs/acme/keys", {"role": "admin"})):
                with self.subTest(role=role, path=path, method=method):
                    self.assertError(req(method, path, key=KEYS[("acme", role)], body=body),
                                     403, "forbidden")
        st, _, _ = req("GET", SF.format("sneaky"), key=KEYS["operator"])
        self.assertEqual(st, 404, "a refused org create created the org")


# ---------------------------------------------------------------- status, banners, audit

class StatusTest(ApiCase):
    def test_new_org_is_disconnected_with_every_field(self):
        STACK.create_org("fresh-org")
        key = STACK.create_key("fresh-org", "viewer", "fresh")
        st, headers, body = req("GET", SF.format("fresh-org"), key=key)
        self.assertEqual(st, 200, body)
        self.assertIn("application/json", headers.get("content-type", ""))
        self.assertIsInstance(body, dict)
        for field in STATUS_FIELDS:
            self.assertIn(field, body, f"status object lacks {field}")
        self.assertEqual(body["org"], "fresh-org")
        self.assertEqual(body["provider"], "salesforce")
        self.assertEqual(body["status"], "disconnected")
        for field in STATUS_FIELDS[3:]:
            self.assertIsNone(body[field], f"{field} of a new org should be null")

    def test_banners_empty(self):
        body = self.assertOk(req("GET", "/api/v1/orgs/acme/banners",
                                 key=KEYS[("acme", "viewer")]))
        self.assertEqual(body, {"banners": []})

    def test_audit_shape(self):
        # Mint and revoke a key over HTTP so that there is likely something to list.
        r = req("POST", "/api/v1/admin/orgs/acme/keys", key=KEYS["operator"],
                body={"role": "viewer", "label": "audit-probe"})
        self.assertEqual(r[0], 201, r[2])
        body = self.assertOk(req("GET", "/api/v1/orgs/acme/audit?limit=50",
                                 key=KEYS[("acme", "admin")]))
        self.assertIsInstance(body.get("events"), list, body)
        ats = []
        for ev in body["events"]:
            for field in ("at", "actor", "action", "detail"):
                self.assertIn(field, ev, ev)
            self.assertRegex(ev["at"], RFC3339)
            self.assertIsInstance(ev["action"], str)
            ats.append(ev["at"])
        self.assertEqual(ats, sorted(ats, reverse=True), "audit is not newest first")
        one = self.assertOk(req("GET", "/api/v1/orgs/acme/audit?limit=1",
                                key=KEYS[("acme", "admin")]))
        self.assertLessEqual(len(one["events"]), 1)

    def test_audit_bad_limit_is_400(self):
        for q in ("limit=abc", "limit=-1", "limit=5x"):
            with self.subTest(q=q):
                self.assertError(req("GET", f"/api/v1/orgs/acme/audit?{q}",
                                     key=KEYS[("acme", "admin")]), 400, "bad_request")

    def test_status_has_no_cache_leak_of_other_org(self):
        a = self.assertOk(req("GET", SF.format("acme"), key=KEYS[("acme", "viewer")]))
        g = self.assertOk(req("GET", SF.format("globex"), key=KEYS[("globex", "viewer")]))
        self.assertEqual((a["org"], g["org"]), ("acme", "globex"))

    def test_concurrent_status_requests(self):
        def one(i):
            org = "acme" if i % 2 else "globex"
            return req("GET", SF.format(org), key=KEYS[(org, "viewer")])[0]
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            codes = list(ex.map(one, range(64)))
        self.assertEqual(codes, [200] * 64)


# ---------------------------------------------------------------- operator API

class AdminIntegrationsTest(ApiCase):
    def test_pagination_sees_every_org_once(self):
        slugs = [f"page-{i}" for i in range(5)]
        for s in slugs:
            STACK.create_org(s)
        seen, cursor, pages = [], None, 0
        while True:
            path = "/api/v1/admin/integrations?limit=2"
            if cursor:
                path += "&cursor=" + cursor
            body = self.assertOk(req("GET", path, key=KEYS["operator"]))
            self.assertIn("integrations", body)
            self.assertIn("next_cursor", body)
            self.assertLessEqual(len(body["integrations"]), 2)
            for item in body["integrations"]:
                for field in STATUS_FIELDS:
                    self.assertIn(field, item)
            seen += [i["org"] for i in body["integrations"]]
            cursor = body["next_cursor"]
            pages += 1
            self.assertLess(pages, 100, "pagination does not end")
            if cursor is None:
                break
            self.assertIsInstance(cursor, str)
            self.assertNotIn(" ", cursor)
        self.assertEqual(len(seen), len(set(seen)), f"an org was listed twice: {seen}")
        for s in slugs + ["acme", "globex"]:
            self.assertIn(s, seen)

    def test_status_filter(self):
        body = self.assertOk(req("GET", "/api/v1/admin/integrations?status=disconnected&limit=500",
                                 key=KEYS["operator"]))
        self.assertTrue(all(i["status"] == "disconnected" for i in body["integrations"]))
        self.assertIn("acme", [i["org"] for i in body["integrations"]])
        body = self.assertOk(req("GET", "/api/v1/admin/integrations?status=invalid",
                                 key=KEYS["operator"]))
        self.assertNotIn("acme", [i["org"] for i in body["integrations"]])

    def test_bad_query_is_400(self):
        for q in ("status=bogus", "limit=x", "limit=-3", "cursor=%ZZ"):
            with self.subTest(q=q):
                self.assertError(req("GET", "/api/v1/admin/integrations?" + q,
                                     key=KEYS["operator"]), 400)


class AdminHttpTest(ApiCase):
    def test_org_create_conflict_and_bad_slug(self):
        op = KEYS["operator"]
        st, _, body = req("POST", "/api/v1/admin/orgs", key=op,
                          body={"slug": "http-org", "name": "HTTP Org"})
        self.assertEqual(st, 201, body)
        self.assertEqual(body.get("slug"), "http-org", body)
        self.assertError(req("POST", "/api/v1/admin/orgs", key=op,
                             body={"slug": "http-org", "name": "Again"}), 409, "conflict")
        for bad in ("Bad_Slug", "has space", "", "x" * 64, "ünï", "a/b"):
            with self.subTest(slug=bad):
                self.assertError(req("POST", "/api/v1/admin/orgs", key=op,
                                     body={"slug": bad, "name": "x"}), 400, "bad_request")
        for bad_body in ({}, {"name": "no slug"}, {"slug": 42}, ["slug"]):
            with self.subTest(body=bad_body):
                self.assertError(req("POST", "/api/v1/admin/orgs", key=op, body=bad_body),
                                 400, "bad_request")
        # The new org is usable and listed.
        self.assertOk(req("GET", SF.format("http-org"), key=op))
        slugs, cursor = [], None
        for _ in range(100):
            path = "/api/v1/admin/orgs?limit=50" + ("&cursor=" + cursor if cursor else "")
            page = self.assertOk(req("GET", path, key=op))
            slugs += [o["slug"] for o in page["orgs"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        self.assertIn("http-org", slugs)
        self.assertEqual(len(slugs), len(set(slugs)))

    def test_keys_over_http(self):
        op = KEYS["operator"]
        STACK.create_org("key-org")
        st, _, made = req("POST", "/api/v1/admin/orgs/key-org/keys", key=op,
                          body={"role": "admin", "label": "made over http"})
        self.assertEqual(st, 201, made)
        for field in ("id", "key", "role", "org", "label", "created_at"):
            self.assertIn(field, made)
        self.assertEqual((made["role"], made["org"], made["label"]),
                         ("admin", "key-org", "made over http"))
        self.assertRegex(made["created_at"], RFC3339)
        key = made["key"]
        self.assertGreaterEqual(len(key), 20)
        # The key works, with the admin role on its own org only.
        self.assertOk(req("GET", "/api/v1/orgs/key-org/audit", key=key))
        self.assertError(req("GET", SF.format("acme"), key=key), 403, "forbidden")
        # Listing shows no key material.
        st, _, listing = req("GET", "/api/v1/admin/keys?org=key-org", key=op)
        self.assertEqual(st, 200, listing)
        self.assertNotIn(key, json.dumps(listing))
        self.assertNotIn(key[-16:], json.dumps(listing))
        ids = [k["id"] for k in listing["keys"]]
        self.assertIn(made["id"], ids)
        for k in listing["keys"]:
            self.assertNotIn("key", k)
        # Revoke, twice (idempotent); the key stops working at once.
        st1, _, b1 = req("DELETE", f"/api/v1/admin/keys/{made['id']}", key=op)
        self.assertIn(st1, (200, 204), b1)
        self.assertError(req("GET", "/api/v1/orgs/key-org/audit", key=key), 401, "unauthorized")
        st2, _, b2 = req("DELETE", f"/api/v1/admin/keys/{made['id']}", key=op)
        self.assertEqual(st2, st1, b2)

    def test_key_create_validation(self):
        op = KEYS["operator"]
        self.assertError(req("POST", "/api/v1/admin/orgs/acme/keys", key=op,
                             body={"role": "superuser"}), 400, "bad_request")
        r = req("POST", "/api/v1/admin/orgs/no-such-org/keys", key=op,
                body={"role": "viewer"})
        self.assertError(r, 404, "not_found")

    def test_key_list_all_orgs_has_no_key_material(self):
        body = self.assertOk(req("GET", "/api/v1/admin/keys", key=KEYS["operator"]))
        text = json.dumps(body)
        for k in KEYS.values():
            self.assertNotIn(k, text)


# ---------------------------------------------------------------- request layer

class RequestLayerTest(ApiCase):
    def test_healthz(self):
        st, headers, body = req("GET", "/healthz")
        self.assertEqual(st, 200, body)
        self.assertEqual(body, {"status": "ok", "database": "ok"})
        self.assertTrue(headers.get("x-request-id"))

    def test_request_id_echoed_when_sane(self):
        for rid in ("abc-123_XYZ.def", "a", "req:42", "x" * 64):
            with self.subTest(rid=rid):
                st, headers, _ = req("GET", "/healthz", headers={"X-Request-Id": rid})
                self.assertEqual(headers.get("x-request-id"), rid)
        st, headers, body = req("GET", SF.format("acme"), headers={"X-Request-Id": "trace-77"})
        self.assertEqual(headers.get("x-request-id"), "trace-77")
        self.assertEqual(body.get("request_id"), "trace-77")

    def test_request_id_generated_when_absent_or_insane(self):
        ids = set()
        for rid in (None, "has space", "x" * 200, "semi;colon", "quote\"", "<script>", "é"):
            with self.subTest(rid=rid):
                headers = {"X-Request-Id": rid} if rid is not None else None
                st, h, _ = req("GET", "/healthz", headers=headers)
                got = h.get("x-request-id")
                self.assertTrue(got, "no X-Request-Id")
                self.assertNotEqual(got, rid)
                self.assertRegex(got, r"^[A-Za-z0-9._:-]{1,64}$")
                ids.add(got)
        self.assertEqual(len(ids), 7, "generated request ids repeat")

    def test_405_with_allow(self):
        key = KEYS["operator"]
        for method, path, expect in (("PUT", SF.format("acme"), {"GET", "DELETE"}),
                                     ("PATCH", "/api/v1/admin/orgs", {"GET", "POST"}),
                                     ("POST", "/healthz", {"GET"}),
                                     ("DELETE", "/api/v1/orgs/acme/banners", {"GET"})):
            with self.subTest(method=method, path=path):
                r = req(method, path, key=key, body={} if method != "DELETE" else None)
                self.assertError(r, 405, "method_not_allowed")
                allow = {m.strip() for m in r[1].get("allow", "").split(",") if m.strip()}
                self.assertTrue(expect <= allow, f"Allow: {r[1].get('allow')!r}")
                self.assertNotIn(method, allow)

    def test_413_over_64k_from_the_daemon(self):
        body = json.dumps({"slug": "too-big", "name": "x" * 66000})
        self.assertGreater(len(body), 65536)
        r = req("POST", "/api/v1/admin/orgs", key=KEYS["operator"], raw_body=body,
                headers={"Content-Type": "application/json"})
        self.assertError(r, 413, "payload_too_large")
        self.assertEqual(req("GET", SF.format("too-big"), key=KEYS["operator"])[0], 404)

    def test_413_far_over_the_limit(self):
        r = req("POST", "/api/v1/admin/orgs", key=KEYS["operator"], raw_body=b"{" * 300000,
                headers={"Content-Type": "application/json"})
        self.assertEqual(r[0], 413, r[2])
        self.assertTrue(r[1].get("x-request-id"))

    def test_exactly_64k_passes_the_size_check(self):
        # 65536 bytes of valid JSON: past the size check; what follows is the
        # handler's business (the name is surely too long), but not 413.
        head = '{"slug":"exact-64k","name":"'
        body = head + "n" * (65536 - len(head) - 2) + '"}'
        self.assertEqual(len(body), 65536)
        st, _, answer = req("POST", "/api/v1/admin/orgs", key=KEYS["operator"],
                            raw_body=body, headers={"Content-Type": "application/json"})
        self.assertNotEqual(st, 413, answer)
        self.assertLess(st, 500, answer)

    def test_415_without_json_content_type(self):
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            with self.subTest(ctype=ctype):
                headers = {"Content-Type": ctype} if ctype else {}
                r = req("POST", "/api/v1/admin/orgs", key=KEYS["operator"],
                        raw_body='{"slug":"ctype-org"}', headers=headers)
                self.assertError(r, 415, "unsupported_media_type")
        r = req("POST", "/api/v1/admin/orgs", key=KEYS["operator"],
                raw_body='{"slug":"ctype-ok","name":"C"}',
                headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(r[0], 201, r[2])

    def test_400_malformed_json(self):
        for raw in ('{"slug":', "not json", '{"slug":"a"} trailing', "\xff\xfe",
                    '{"slug":"a","slug":"b"'):
            with self.subTest(raw=raw):
                r = req("POST", "/api/v1/admin/orgs", key=KEYS["operator"],
                        raw_body=raw.encode("latin-1"),
                        headers={"Content-Type": "application/json"})
                self.assertError(r, 400, "bad_request")

    def test_400_bad_slug_in_path(self):
        for slug in ("BAD_SLUG", "x" * 64, "a%20b", "a.b", "a_b"):
            with self.subTest(slug=slug):
                self.assertError(req("GET", SF.format(slug), key=KEYS["operator"]),
                                 400, "bad_request")
        # nginx resolves "/orgs/%2e%2e/..." itself: whatever path arrives, no 5xx.
        st, _, body = req("GET", SF.format("%2e%2e"), key=KEYS["operator"])
        self.assertIn(st, (400, 404), body)

    def test_404_json_for_unknown_paths(self):
        for path in ("/api/v1/nope", "/api/v2/orgs/acme/integrations/salesforce",
                     "/api/v1/orgs/acme/integrations/hubspot", "/nothing-here",
                     "/api/v1/orgs/acme/integrations/salesforce/extra/bits"):
            with self.subTest(path=path):
                self.assertError(req("GET", path, key=KEYS["operator"]), 404, "not_found")

    def test_long_path_and_query_do_not_break(self):
        for path in ("/api/v1/" + "a" * 3000, "/healthz?" + "q=" + "b" * 5000):
            with self.subTest(length=len(path)):
                st, _, body = req("GET", path, key=KEYS["operator"])
                self.assertIn(st, (200, 400, 404, 414), body)
        self.assertOk(req("GET", "/healthz"))

    def test_metrics_only_from_localhost(self):
        st, _, _ = req("GET", "/metrics")
        self.assertNotEqual(st, 403, "127.0.0.1 must reach /metrics")
        st, _, _ = req("GET", "/metrics", source_address=("127.0.0.2", 0))
        self.assertEqual(st, 403, "nginx must refuse /metrics to other addresses")


class CorsTest(ApiCase):
    def test_allowed_origin(self):
        st, h, _ = req("GET", SF.format("acme"), key=KEYS[("acme", "viewer")],
                       headers={"Origin": CORS_ORIGIN})
        self.assertEqual(st, 200)
        self.assertEqual(h.get("access-control-allow-origin"), CORS_ORIGIN)
        self.assertIn("origin", h.get("vary", "").lower())
        # Errors carry CORS too, or the front end cannot read them.
        st, h, _ = req("GET", SF.format("acme"), headers={"Origin": CORS_ORIGIN})
        self.assertEqual(st, 401)
        self.assertEqual(h.get("access-control-allow-origin"), CORS_ORIGIN)

    def test_preflight(self):
        st, h, body = req("OPTIONS", SF.format("acme"), headers={
            "Origin": CORS_ORIGIN, "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization, content-type"})
        self.assertEqual(st, 204, body)
        self.assertEqual(h.get("access-control-allow-origin"), CORS_ORIGIN)
        methods = h.get("access-control-allow-methods", "").upper()
        for m in ("GET", "DELETE"):   # the methods of this path
            self.assertIn(m, methods)
        allowed = h.get("access-control-allow-headers", "").lower()
        self.assertIn("authorization", allowed)
        self.assertIn("content-type", allowed)
        # A POST-only path announces POST.
        st, h, body = req("OPTIONS", "/api/v1/admin/orgs", headers={
            "Origin": CORS_ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        self.assertEqual(st, 204, body)
        self.assertEqual(h.get("access-control-allow-origin"), CORS_ORIGIN)
        self.assertIn("POST", h.get("access-control-allow-methods", "").upper())

    def test_other_origin_gets_nothing(self):
        for origin in ("https://evil.example", "https://app.example.test.evil.example",
                       "null", CORS_ORIGIN + ":8443"):
            with self.subTest(origin=origin):
                st, h, _ = req("GET", SF.format("acme"), key=KEYS[("acme", "viewer")],
                               headers={"Origin": origin})
                self.assertEqual(st, 200)
                self.assertNotIn("access-control-allow-origin", h)
                st, h, _ = req("OPTIONS", SF.format("acme"), headers={
                    "Origin": origin, "Access-Control-Request-Method": "GET"})
                self.assertNotIn("access-control-allow-origin", h)
                self.assertNotIn("access-control-allow-credentials", h)


# ---------------------------------------------------------------- admin CLI

class AdminCliTest(ApiCase):
    def test_key_create_prints_key_last(self):
        STACK.create_org("cli-org", "CLI Org")
        p = STACK.admin_run("key", "create", "--org", "cli-org", "--role", "viewer",
                            "--label", "cli key")
        self.assertEqual(p.returncode, 0, p.stderr)
        key = p.stdout.split()[-1]
        self.assertOk(req("GET", SF.format("cli-org"), key=key))
        self.assertError(req("GET", "/api/v1/orgs/cli-org/audit", key=key), 403, "forbidden")

    def test_operator_key(self):
        key = STACK.create_key(None, "operator", "cli operator")
        self.assertOk(req("GET", "/api/v1/admin/integrations", key=key))

    def test_bad_role_fails_on_stderr(self):
        p = STACK.admin_run("key", "create", "--org", "acme", "--role", "superuser")
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(p.stderr.strip(), "no message on stderr")
        self.assertEqual(p.stdout.strip(), "")

    def test_errors_exit_non_zero(self):
        for args in (("key", "create", "--org", "no-such-org", "--role", "viewer"),
                     ("key", "create", "--role", "viewer"),          # org role without org
                     ("org", "create", "acme"),                      # exists
                     ("org", "create", "Bad_Slug"),
                     ("no-such-command",)):
            with self.subTest(args=args):
                p = STACK.admin_run(*args)
                self.assertNotEqual(p.returncode, 0, p.stdout)
                self.assertTrue(p.stderr.strip(), "no message on stderr")

    def test_migrate_twice(self):
        STACK.admin("migrate")
        STACK.admin("migrate")
        self.assertOk(req("GET", "/healthz"))

    def test_migrate_refuses_a_newer_database(self):
        STACK.psql("INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")
        try:
            p = STACK.admin_run("migrate")
            self.assertNotEqual(p.returncode, 0, p.stdout)
            self.assertIn("newer", p.stderr)
            p = STACK.admin_run("org", "list")
            self.assertNotEqual(p.returncode, 0, "ran on a schema it does not know")
        finally:
            STACK.psql("DELETE FROM schema_migrations WHERE version = 9999")
        STACK.admin("migrate")

    def test_bad_config_stops_startup_naming_the_key(self):
        with open(STACK.daemon.config_path) as f:
            lines = f.read().splitlines()
        cases = {
            "database_url": [l for l in lines if not l.startswith("database_url")],
            "workers": lines + ["workers = many"],
            "public_base_url": [l for l in lines if not l.startswith("public_base_url")]
            + ["public_base_url = ftp://example.com"],
            "frobnicate": lines + ["frobnicate = 1"],
        }
        for key, content in cases.items():
            with self.subTest(key=key):
                path = STACK.path(f"bad-{key}.conf")
                with open(path, "w") as f:
                    f.write("\n".join(content) + "\n")
                for prog in ("sfconnectd", "sfconnect-admin"):
                    argv = [STACK.bin(prog), "-c", path] + (["org", "list"] if prog == "sfconnect-admin" else [])
                    p = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                                       stdin=subprocess.DEVNULL)
                    self.assertNotEqual(p.returncode, 0)
                    err = p.stderr.strip().splitlines()
                    self.assertEqual(len(err), 1, p.stderr)
                    self.assertIn(key, err[0])

    def test_lists(self):
        self.assertIn("acme", STACK.admin("org", "list"))
        listing = STACK.admin("key", "list")
        self.assertIn("acme-viewer", listing)
        for k in KEYS.values():
            self.assertNotIn(k, listing)


# ---------------------------------------------------------------- logs

class LogTest(ApiCase):
    def test_no_key_in_the_log_and_json_lines(self):
        req("GET", SF.format("acme"), key=KEYS[("acme", "viewer")])
        req("GET", SF.format("acme"), headers={"Authorization": "Bearer not-a-real-key-xyz"})
        time.sleep(0.2)
        log = STACK.daemon_log()
        for k in KEYS.values():
            self.assertNotIn(k, log)
        self.assertNotIn("not-a-real-key-xyz", log)
        if os.environ.get("SFC_WRAPPER"):
            return   # valgrind writes its own lines
        bad = []
        for line in log.splitlines():
            if not line.strip() or line.startswith("==") or "Sanitizer" in line:
                continue
            try:
                if not isinstance(json.loads(line), dict):
                    bad.append(line)
            except ValueError:
                bad.append(line)
        self.assertEqual(bad[:5], [], "log lines that are not JSON objects")

    def test_requests_are_logged_with_their_id(self):
        rid = "log-probe-" + os.urandom(6).hex()
        req("GET", SF.format("acme"), key=KEYS[("acme", "viewer")],
            headers={"X-Request-Id": rid})
        deadline = time.monotonic() + 5
        found = []
        while time.monotonic() < deadline and not found:
            for line in STACK.daemon_log().splitlines():
                if rid in line:
                    try:
                        found.append(json.loads(line))
                    except ValueError:
                        self.fail(f"not a JSON line: {line}")
            time.sleep(0.1)
        self.assertTrue(found, "no log line carries the request id")
        self.assertTrue(any(f.get("request_id") == rid for f in found), found)


# ---------------------------------------------------------------- processes
# Named Z* so that they run after the others (unittest sorts by name).

class ZProcessTest(ApiCase):
    def test_worker_killed_is_respawned(self):
        before = STACK.daemon.settle()
        self.assertGreaterEqual(len(before), STACK.workers, f"too few children: {before}")
        os.kill(before[0], signal.SIGKILL)   # a child of the daemon we started
        deadline = time.monotonic() + 10
        after = []
        while time.monotonic() < deadline:
            after = STACK.daemon.worker_pids()
            if len(after) >= len(before) and before[0] not in after:
                break
            time.sleep(0.1)
        self.assertNotIn(before[0], after)
        self.assertEqual(len(after), len(before), f"workers {before} -> {after}")
        self.assertTrue(STACK.daemon.alive())
        for _ in range(10):
            self.assertOk(req("GET", SF.format("acme"), key=KEYS[("acme", "viewer")]))

    def test_second_daemon_shares_the_database(self):
        port2 = STACK.start_second_daemon()
        try:
            STACK.create_org("two-hosts")
            key = STACK.create_key("two-hosts", "viewer", "two")
            for port in (STACK.port, port2):
                body = self.assertOk(req("GET", SF.format("two-hosts"), key=key, port=port))
                self.assertEqual(body["status"], "disconnected")
            st, _, made = req("POST", "/api/v1/admin/orgs", key=KEYS["operator"], port=port2,
                              body={"slug": "via-two", "name": "Via two"})
            self.assertEqual(st, 201, made)
            self.assertOk(req("GET", SF.format("via-two"), key=KEYS["operator"]))
        finally:
            self.assertIn(STACK.stop_second_daemon(), (0, -signal.SIGTERM))

    def test_sigterm_lets_in_flight_requests_finish(self):
        if not STACK.fakesf_info:
            self.skipTest("needs the Salesforce simulator")
        STACK.create_org("graceful")
        admin = STACK.create_key("graceful", "admin", "graceful-admin")
        service = STACK.create_key("graceful", "service", "graceful-service")
        st, _, _ = STACK.connect_org("graceful", admin)
        self.assertEqual(st, 303)
        token = self.assertOk(req("GET", SF.format("graceful") + "/token", key=service))
        gen = token["token_generation"]
        # The next refresh takes 2 s at "Salesforce"; SIGTERM arrives meanwhile.
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "delay",
                                       "delay_ms": 2000, "count": 1})
        out = {}

        def slow():
            out["r"] = req("GET", SF.format("graceful") + f"/token?force_refresh=1&generation={gen}",
                           key=service)
        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.7)
        code = STACK.daemon.stop()
        t.join(30)
        try:
            self.assertIn(code, (0, -signal.SIGTERM))
            st, _, body = out["r"]
            self.assertEqual(st, 200, f"in-flight request cut by SIGTERM: {body}")
            self.assertEqual(body["token_generation"], gen + 1)
        finally:
            STACK.daemon.start()
            STACK.wait_healthy()
        self.assertOk(req("GET", SF.format("graceful"), key=service))

    def test_restart_is_graceful(self):
        code = STACK.restart_daemon()
        self.assertIn(code, (0, -signal.SIGTERM))
        self.assertOk(req("GET", SF.format("acme"), key=KEYS[("acme", "viewer")]))


class ZZDatabaseOutageTest(ApiCase):
    def test_postgres_stopped_then_started(self):
        key = KEYS[("acme", "viewer")]
        self.assertOk(req("GET", SF.format("acme"), key=key))
        supervisor = STACK.daemon.pid
        STACK.stop_postgres()
        try:
            for _ in range(4):   # each worker meets the dead connection
                self.assertError(req("GET", SF.format("acme"), key=key),
                                 503, "service_unavailable")
            st, _, body = req("GET", "/healthz")
            self.assertEqual(st, 503, body)
            self.assertIsInstance(body, dict)
            self.assertNotEqual(body.get("database"), "ok")
            # Auth needs the database too: an unknown key must not become 401.
            self.assertError(req("GET", SF.format("acme"), key="bogus"),
                             503, "service_unavailable")
        finally:
            STACK.start_postgres()
        deadline = time.monotonic() + 10
        got = None
        while time.monotonic() < deadline:
            got = req("GET", SF.format("acme"), key=key)
            if got[0] == 200:
                break
            time.sleep(0.2)
        self.assertEqual(got[0], 200, f"not back 10 s after PostgreSQL: {got}")
        for _ in range(8):   # every worker has reconnected
            self.assertOk(req("GET", SF.format("acme"), key=key))
        self.assertOk(req("GET", "/healthz"))
        self.assertTrue(STACK.daemon.alive())
        self.assertEqual(STACK.daemon.pid, supervisor)


if __name__ == "__main__":
    unittest.main(verbosity=2)
