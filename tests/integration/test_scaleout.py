"""Scale out (issue 14, item 7): two sfconnectd instances, each on its own
socket, behind one nginx `upstream` (max_fails/fail_timeout, as in
nginx/sfconnect.conf) on one PostgreSQL.

- a crowd of token requests spread over both still makes one refresh per
  org (refreshes counted at the simulator);
- `kill -9` of one instance under load fails only requests it had in
  flight (nginx's upstream log says which instance had each request), and
  everything after goes on through the other;
- the background check splits the orgs between the two checkers, each org
  once per round.

One stack for the module; the tests run in their numbered order (the last
one restarts both instances with a short check_interval_s)."""

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO, Stack  # noqa: E402

STACK = None
SF = "/api/v1/orgs/{}/integrations/salesforce"
WORKERS = 3
BG_INTERVAL_S = 6


def setUpModule():
    global STACK
    STACK = Stack(workers=WORKERS, config={"check_interval_s": 86400,
                                           "http_timeout_ms": 3000,
                                           "access_token_max_age_s": 3600})
    STACK.start()
    STACK.start_upstream()


def tearDownModule():
    if STACK is not None:
        STACK.stop()


# ---------------------------------------------------------------- helpers

def socks():
    return STACK.daemon.socket_path, STACK.daemon2.socket_path


def req(method, path, key, test_id="", timeout=60):
    return STACK.request(method, path, key=key, timeout=timeout,
                         headers={"X-Sfc-Test": test_id} if test_id else None)


def connect_orgs(prefix, n):
    """n new orgs, each connected (through the upstream) to its own
    Salesforce OrgID. Answers {slug: (service key, OrgID)}."""
    op = STACK.operator_key
    out = {}
    for i in range(n):
        slug = f"{prefix}-{i:02d}"
        STACK.create_org(slug)
        cfg = STACK.fakesf("POST", "config", {"org_id": "new", "user_id": "new"})
        st, _, body = STACK.connect_org(slug, op, accept_json=True)
        if st != 200 or body.get("salesforce_org_id") != cfg["org_id"]:
            raise AssertionError(f"connect {slug}: {st} {body}")
        out[slug] = (STACK.create_key(slug, "service", f"{slug}-service"), cfg["org_id"])
    return out


def grant_tokens(orgs):
    """{current refresh token at the simulator: slug} for orgs."""
    slug_of = {sf_id: slug for slug, (_, sf_id) in orgs.items()}
    return {g["refresh_token"]: slug_of[g["org_id"]]
            for g in STACK.fakesf("GET", "grants") if g["org_id"] in slug_of}


def refreshes_by_org(tokens, since):
    """{slug: [times]} of the refreshes the simulator saw since `since`
    presenting one of tokens ({refresh token: slug})."""
    out = {}
    for r in STACK.fakesf("GET", "requests?endpoint=token_refresh"):
        slug = tokens.get((r.get("form") or {}).get("refresh_token"))
        if slug is not None and r["at"] >= since:
            out.setdefault(slug, []).append(r["at"])
    return out


def not_due(slugs_like="%"):
    """Nothing of these orgs is due for the background check for an hour."""
    STACK.psql("UPDATE integrations SET last_checked_at = now() + interval '1 hour' "
               f"WHERE org_id IN (SELECT id FROM orgs WHERE slug LIKE '{slugs_like}')")


def crowd(n, fn):
    """fn(i) for i < n in n threads released together; answers the results."""
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait(30)
        return fn(i)
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


def logged(test_prefix):
    """nginx's upstream log entries of requests whose X-Sfc-Test starts with
    test_prefix, by that header."""
    return {e["test"]: e for e in STACK.upstream_log() if e["test"].startswith(test_prefix)}


class ScaleOutTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        STACK.fakesf("POST", "fault/clear")
        STACK.fakesf("POST", "config", {"rotation": False})
        for d in (STACK.daemon, STACK.daemon2):
            self.assertTrue(d.alive(), f"{d.name} is not running")

    def tearDown(self):
        STACK.fakesf("POST", "fault/clear")

    # ------------------------------------------------------------ the production snippet

    def test_0_production_snippet_has_the_tested_upstream(self):
        """nginx/sfconnect.conf passes every location to one upstream whose
        servers carry the parameters this module runs with, and nginx -t
        accepts it (with a throwaway certificate)."""
        with open(os.path.join(REPO, "nginx", "sfconnect.conf")) as f:
            text = f.read()
        m = re.search(r"^upstream (\w+) \{\n(.*?)^\}", text, re.M | re.S)
        self.assertIsNotNone(m, "no upstream block")
        name, body = m[1], m[2]
        servers = re.findall(r"^\s*server\s+(\S+)\s+([^;#]*);", body, re.M)
        self.assertTrue(servers, body)
        for addr, opts in servers:
            self.assertEqual(opts.strip(), Stack.UPSTREAM_SERVER_OPTS, addr)
        passes = re.findall(r"^\s*fastcgi_pass\s+([^;]+);", text, re.M)
        self.assertGreaterEqual(len(passes), 3)
        self.assertEqual(set(passes), {name}, "a location bypasses the upstream")
        self.assertIsNone(re.search(r"^\s*fastcgi_next_upstream\s", text, re.M),
                          "the kill test relies on nginx's default fastcgi_next_upstream")
        d = STACK.path("nginx-prod")
        os.makedirs(d)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=api.example.com", "-days", "1",
                        "-keyout", f"{d}/privkey.pem", "-out", f"{d}/fullchain.pem"],
                       check=True, capture_output=True, timeout=60)
        shutil.copy("/etc/nginx/fastcgi_params", d)    # `include fastcgi_params`
        temps = "".join(f"    {t}_temp_path {d}/{t};\n"
                        for t in ("client_body", "fastcgi", "proxy", "uwsgi", "scgi"))
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(f"pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n"
                    f"http {{\n    access_log off;\n{temps}"
                    + text.replace("/etc/ssl/sfconnect", d) + "}\n")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        p = subprocess.run([nginx, "-t", "-p", d + "/", "-c", f"{d}/nginx.conf",
                            "-e", f"{d}/error.log"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    # ------------------------------------------------------------ single flight

    def test_1_crowd_over_both_instances_refreshes_once_per_org(self):
        orgs = connect_orgs("so-crowd", 4)
        not_due()
        callers = 12                      # per org
        gens, tokens = {}, grant_tokens(orgs)
        for slug, (key, sf_id) in orgs.items():
            st, _, body = req("GET", SF.format(slug) + "/token", key)
            self.assertEqual(st, 200, body)
            gens[slug] = body["token_generation"]
            STACK.fakesf("POST", "expire_access", {"org_id": sf_id})
        slugs = sorted(orgs)
        # Slow refreshes, so that every caller of an org overlaps its one refresh.
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "delay",
                                       "delay_ms": 400, "count": len(slugs)})
        since = time.time()

        def call(i):
            slug = slugs[i % len(slugs)]
            q = f"?force_refresh=1&generation={gens[slug]}"
            return slug, req("GET", SF.format(slug) + "/token" + q, orgs[slug][0],
                             test_id=f"crowd-{i}")
        results = crowd(callers * len(slugs), call)
        bad = [(slug, r[0], r[2]) for slug, r in results if r[0] != 200]
        self.assertEqual(bad, [], "not every caller got a token")
        handed = {}
        for slug, (_, _, body) in results:
            handed.setdefault(slug, set()).add(body["access_token"])
            self.assertEqual(body["token_generation"], gens[slug] + 1, body)
        self.assertEqual({s: len(t) for s, t in handed.items()}, {s: 1 for s in slugs},
                         "callers of one org got different tokens")
        counts = {s: len(v) for s, v in refreshes_by_org(tokens, since).items()}
        self.assertEqual(counts, {s: 1 for s in slugs},
                         "refreshes per org at the simulator")
        # The crowd of each org really was spread over both instances.
        entries = logged("crowd-")
        self.assertEqual(len(entries), len(results))
        for slug in slugs:
            served = {e["addrs"][-1] for t, e in entries.items()
                      if slugs[int(t.split("-")[1]) % len(slugs)] == slug}
            self.assertEqual(served, set(socks()), f"{slug}'s callers were served by")

    # ------------------------------------------------------------ kill -9

    def _load(self, orgs, stop, results, lock, n):
        """Thread n until stop: even threads GET a token (nginx may retry
        them on the other instance), odd ones POST a check (never retried
        once sent). Each result: (id, start, end, method, status, body)."""
        slugs = sorted(orgs)
        i = 0
        while not stop.is_set():
            slug = slugs[(n + i) % len(slugs)]
            method, path = ("GET", "/token") if n % 2 == 0 else ("POST", "/check")
            test_id = f"kill-{n}-{i}"
            t0 = time.time()
            try:
                key = orgs[slug][0] if method == "GET" else STACK.operator_key
                st, _, body = req(method, SF.format(slug) + path, key, test_id)
            except OSError as e:
                st, body = 0, repr(e)
            with lock:
                results.append((test_id, t0, time.time(), method, st, body))
            i += 1
            time.sleep(0.005)             # load, not a benchmark: leave the cores some air

    def test_2_kill9_fails_only_the_requests_in_flight_there(self):
        orgs = connect_orgs("so-kill", 6)
        not_due()
        # Checks take a while at Salesforce: the killed instance has some in flight.
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "delay",
                                       "delay_ms": 300, "count": 100000})
        STACK.allow_nginx_log(r"sfconnectd2\.sock")
        stop, lock, results = threading.Event(), threading.Lock(), []
        threads = [threading.Thread(target=self._load, args=(orgs, stop, results, lock, n))
                   for n in range(6)]
        for t in threads:
            t.start()
        try:
            time.sleep(2.0)
            kill_at = time.time()
            killed = STACK.daemon2.kill9()
            killed_at = time.time()
            time.sleep(3.0)
        finally:
            stop.set()
            for t in threads:
                t.join(90)
        STACK.fakesf("POST", "fault/clear")
        entries = logged("kill-")
        sock1, sock2 = socks()
        before = [r for r in results if r[2] < kill_at]
        after = [r for r in results if r[1] > killed_at]
        failed = [r for r in results if r[4] != 200]
        in_flight = [r for r in results if r[1] <= killed_at and r[2] >= kill_at]
        retried = [e for e in entries.values() if e["addrs"][:1] == [sock2] and
                   len(e["addrs"]) > 1 and e["at"] >= kill_at]
        print(f"\n  killed {len(killed)} processes of sfconnectd2; {len(results)} requests: "
              f"{len(before)} before, {len(in_flight)} in flight, {len(after)} after; "
              f"{len(failed)} failed, {len(retried)} retried by nginx on sfconnectd",
              file=sys.stderr, flush=True)
        # Both instances served before the kill.
        self.assertEqual({entries[r[0]]["addrs"][-1] for r in before if r[4] == 200},
                         {sock1, sock2})
        # Only requests in flight at the kill failed, each one that nginx
        # had passed to the killed instance, with nginx's JSON 503; and only
        # POSTs: nginx passes a GET whose upstream broke on to the other one
        # (fastcgi_next_upstream error), not a POST it had sent.
        self.assertLessEqual(len(failed), len(threads))
        for test_id, t0, t1, method, st, body in failed:
            self.assertIn(test_id, [r[0] for r in in_flight], f"{method} {st} {body}")
            self.assertEqual(method, "POST", f"a {method} in flight failed: {st} {body}")
            self.assertEqual(entries[test_id]["addrs"], [sock2], entries[test_id])
            self.assertEqual(st, 503, body)
            self.assertEqual(body["error"]["code"], "service_unavailable", body)
        # Everything after the kill went on, through the other instance.
        self.assertEqual([r for r in after if r[4] != 200], [])
        self.assertGreaterEqual(len(after), 12, "the load did not go on after the kill")
        self.assertEqual({entries[r[0]]["addrs"][-1] for r in after}, {sock1})
        # The dead instance's row locks went with its connections: each org
        # refreshes now, its grant is the stored one, nothing was marked.
        for slug, (key, _) in orgs.items():
            st, _, body = req("GET", SF.format(slug) + "/token?force_refresh=1", key,
                              timeout=30)
            self.assertEqual(st, 200, f"{slug}: {body}")
        STACK.assert_grant_invariant()
        bad = STACK.psql("SELECT o.slug, i.status FROM integrations i JOIN orgs o "
                         "ON o.id = i.org_id WHERE o.slug LIKE 'so-kill-%' "
                         "AND i.status <> 'connected'")
        self.assertEqual(bad, [])
        # The instance comes back and takes its share again once nginx
        # tries it (fail_timeout after its max_fails).
        STACK.daemon2.start()
        key = orgs[min(orgs)][0]
        deadline, n, served = time.monotonic() + 30, 0, set()
        while sock2 not in served and time.monotonic() < deadline:
            st, _, body = req("GET", SF.format(min(orgs)), key, test_id=f"back-{n}")
            self.assertEqual(st, 200, body)
            served = {e["addrs"][-1] for e in logged("back-").values()}
            n += 1
            time.sleep(0.1)
        self.assertIn(sock2, served, "nginx never went back to sfconnectd2")

    # ------------------------------------------------------------ background check

    def test_3_background_check_splits_the_orgs(self):
        n_orgs = 32
        orgs = connect_orgs("so-bg", n_orgs)
        tokens = grant_tokens(orgs)
        not_due()
        STACK.restart_daemon(config={"check_interval_s": BG_INTERVAL_S})
        STACK.daemon2.stop()
        STACK.start_second_daemon()       # the same overrides: the short interval
        logs = [len(STACK.daemon_log(1)), len(STACK.daemon_log(2))]
        try:
            # Batches of check_concurrency (8) that take a while: the checker
            # that comes first is still busy when the other one looks.
            STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "delay",
                                           "delay_ms": 600, "count": 2 * n_orgs})
            since = time.time()
            STACK.psql("UPDATE integrations SET last_checked_at = now() - interval '1 hour' "
                       "WHERE org_id IN (SELECT id FROM orgs WHERE slug LIKE 'so-bg-%')")
            deadline = time.monotonic() + 60
            while len(refreshes_by_org(tokens, since)) < n_orgs and \
                    time.monotonic() < deadline:
                time.sleep(0.2)
            round_end = time.time()
            time.sleep(1.0)               # a second checker's duplicate would show now
            seen = refreshes_by_org(tokens, since)
            texts = [STACK.daemon_log(1)[logs[0]:], STACK.daemon_log(2)[logs[1]:]]
        finally:
            STACK.fakesf("POST", "fault/clear")
            not_due()
        self.assertEqual(len(seen), n_orgs, "orgs checked within 60 s")
        in_round = {s: len([t for t in v if t <= round_end + 1.0]) for s, v in seen.items()}
        self.assertEqual(in_round, {s: 1 for s in orgs}, "checks per org in one round")
        checked = [sum(int(m) for m in re.findall(r'"msg":"(\d+) checked', t)) for t in texts]
        print(f"\n  background round of {n_orgs} orgs: sfconnectd checked {checked[0]}, "
              f"sfconnectd2 {checked[1]} ({round_end - since:.1f}s)",
              file=sys.stderr, flush=True)
        self.assertEqual(sum(checked), n_orgs)
        self.assertGreater(checked[0], 0, "sfconnectd checked nothing")
        self.assertGreater(checked[1], 0, "sfconnectd2 checked nothing")


if __name__ == "__main__":
    unittest.main(verbosity=2)
