"""Never lose a grant: faults of the processes, the database and Salesforce.

Each test here names the fault it injects and what must hold afterwards.
One stack for the module; tests that restart the daemon put it back."""

import base64
import os
import signal
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, process_running as pid_alive  # noqa: E402

STACK = None
SF = "/api/v1/orgs/{}/integrations/salesforce"


def setUpModule():
    global STACK
    STACK = Stack(workers=2, pg_proxy=True)
    STACK.start()


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def req(*args, **kwargs):
    return STACK.request(*args, **kwargs)


def new_connected_org(slug, rotation=True):
    """An org connected to its own Salesforce org and user (so Salesforce's
    approval limit per user never touches the other tests' grants).
    Answers (admin key, service key, OrgID)."""
    STACK.create_org(slug)
    admin = STACK.create_key(slug, "admin")
    service = STACK.create_key(slug, "service")
    sf = STACK.fakesf("POST", "config", {"org_id": "new", "user_id": "new",
                                         "rotation": rotation})["org_id"]
    st, headers, body = STACK.connect_org(slug, admin)
    assert st == 303 and "salesforce=connected" in headers.get("location", ""), (st, headers)
    return admin, service, sf


def row(slug):
    """The stored integration of slug: (status, generation, fingerprint, error code)."""
    return tuple(STACK.psql(
        "SELECT i.status, i.token_generation, coalesce(i.refresh_token_fp, ''), "
        "coalesce(i.last_error_code, '') FROM integrations i "
        f"JOIN orgs o ON o.id = i.org_id WHERE o.slug = '{slug}'")[0])


class AmbiguousCommitTest(unittest.TestCase):
    """A proxy between sfconnectd and PostgreSQL forwards a COMMIT and drops
    the server's reply: the write landed, the daemon cannot know it."""

    def tearDown(self):
        STACK.pg_proxy.clear()
        STACK.fakesf("POST", "config", {"rotation": False})

    def test_refresh_commit_lost_keeps_the_rotated_token(self):
        _, service, sf = new_connected_org("amb-refresh")
        gen = row("amb-refresh")[1]
        fault = STACK.pg_proxy.drop_after_commit(after="coalesce($3, refresh_token_enc)")
        st, _, body = req("GET", SF.format("amb-refresh") +
                          f"/token?force_refresh=1&generation={gen}", key=service)
        self.assertTrue(fault.fired, "the commit was not dropped")
        self.assertIn(st, (200, 503), body)
        STACK.assert_grant_invariant(sf_org_id=sf)
        # The next refresh presents the stored (rotated) token: it works.
        gen = row("amb-refresh")[1]
        st, _, body = req("GET", SF.format("amb-refresh") +
                          f"/token?force_refresh=1&generation={gen}", key=service)
        self.assertEqual(st, 200, body)
        self.assertEqual(row("amb-refresh")[0], "connected")
        STACK.assert_grant_invariant(sf_org_id=sf)

    def test_callback_commit_lost_is_connected_and_nothing_orphaned(self):
        admin, service, sf = new_connected_org("amb-callback")
        # Reconnect (same Salesforce org and user) with the commit's reply lost.
        fault = STACK.pg_proxy.drop_after_commit(after="previous_sf_org_id = CASE")
        st, headers, body = STACK.connect_org("amb-callback", admin)
        self.assertTrue(fault.fired, "the commit was not dropped")
        self.assertEqual(st, 303, body)
        self.assertIn("salesforce=connected", headers.get("location", ""), headers)
        STACK.assert_grant_invariant(sf_org_id=sf)   # the old grant revoked, the new stored
        st, _, body = req("GET", SF.format("amb-callback") + "/token?force_refresh=1",
                          key=service)
        self.assertIn(st, (200,), body)

    def test_disconnect_commit_lost_still_disconnects(self):
        admin, _, sf = new_connected_org("amb-remove")
        fault = STACK.pg_proxy.drop_after_commit(after="SET status = 'disconnected'")
        st, _, body = req("DELETE", SF.format("amb-remove"), key=admin)
        self.assertTrue(fault.fired, "the commit was not dropped")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["status"], "disconnected")
        self.assertTrue(body["revoked"])
        STACK.assert_grant_invariant(sf_org_id=sf)

    def test_background_check_commit_lost_keeps_rotated_tokens(self):
        orgs = [new_connected_org(f"amb-batch-{i}") for i in range(3)]
        fault = STACK.pg_proxy.drop_after_commit(after="SKIP LOCKED")
        st, _, body = req("POST", "/api/v1/admin/integrations/check",
                          key=STACK.operator_key, body={"status": "connected"})
        self.assertTrue(fault.fired, "the commit was not dropped")
        self.assertIn(st, (200, 503), body)
        for i, (_, service, sf) in enumerate(orgs):
            STACK.assert_grant_invariant(sf_org_id=sf)
            gen = row(f"amb-batch-{i}")[1]
            st, _, body = req("GET", SF.format(f"amb-batch-{i}") +
                              f"/token?force_refresh=1&generation={gen}", key=service)
            self.assertEqual(st, 200, body)


class PipelinedJobFaultTest(unittest.TestCase):
    """The checker writes a batch on one connection while the next batch,
    claimed on its second, refreshes at Salesforce. The first commit's
    reply is lost: the batch in flight meanwhile was refreshed (rotated)
    all the same and must still be written."""

    def tearDown(self):
        STACK.pg_proxy.clear()
        STACK.fakesf("POST", "config", {"rotation": False})

    def test_job_commit_lost_keeps_the_batch_in_flight(self):
        n = 20      # check_concurrency 8: three batches
        orgs = [new_connected_org(f"pipe-{i}") for i in range(n)]
        fault = STACK.pg_proxy.drop_after_commit(after="SKIP LOCKED")
        before = STACK.fakesf("GET", "counts")["token_refresh"]
        st, headers, body = req("POST", "/api/v1/admin/integrations/check",
                                key=STACK.operator_key,
                                body={"status": "connected", "older_than_s": 0},
                                headers={"Prefer": "respond-async"})
        self.assertEqual(st, 202, body)
        deadline = time.monotonic() + 60
        while True:
            st, _, job = req("GET", headers["location"], key=STACK.operator_key)
            self.assertEqual(st, 200, job)
            if job["state"] == "finished":
                break
            self.assertLess(time.monotonic(), deadline, job)
            time.sleep(0.2)
        self.assertTrue(fault.fired, "the commit was not dropped")
        self.assertGreaterEqual(STACK.fakesf("GET", "counts")["token_refresh"] - before, n)
        for i, (_, service, sf) in enumerate(orgs):
            STACK.assert_grant_invariant(sf_org_id=sf)
            gen = row(f"pipe-{i}")[1]
            st, _, body = req("GET", SF.format(f"pipe-{i}") +
                              f"/token?force_refresh=1&generation={gen}", key=service)
            self.assertEqual(st, 200, body)


class BatchWriteRefusedTest(unittest.TestCase):
    """A check batch writes its refreshed rows in one statement. When that
    statement fails (here a trigger refuses it), it is undone and the rows
    are written one by one: none is left unchecked, no rotated token lost."""

    def tearDown(self):
        STACK.psql("DROP TRIGGER IF EXISTS test_refuse_many ON integrations; "
                   "DROP FUNCTION IF EXISTS test_refuse_many()")
        STACK.fakesf("POST", "config", {"rotation": False})

    def test_batch_statement_refused_writes_one_by_one(self):
        orgs = [new_connected_org(f"many-{i}") for i in range(3)]    # rotation on
        gens = [int(row(f"many-{i}")[1]) for i in range(3)]
        STACK.psql("""CREATE FUNCTION test_refuse_many() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN
                IF current_query() LIKE '%unnest($1::bigint[]%' THEN
                    RAISE EXCEPTION 'refused by the test';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_refuse_many BEFORE UPDATE ON integrations
                FOR EACH ROW EXECUTE FUNCTION test_refuse_many()""")
        st, _, body = req("POST", "/api/v1/admin/integrations/check",
                          key=STACK.operator_key,
                          body={"status": "connected", "older_than_s": 0})
        self.assertEqual(st, 200, body)
        self.assertGreaterEqual(body["connected"], 3, body)
        self.assertIn('"check_write_many_failed"', STACK.daemon_log())
        for i, (_, _, sf) in enumerate(orgs):
            status, gen, _, _ = row(f"many-{i}")
            self.assertEqual((status, int(gen)), ("connected", gens[i] + 1))
            STACK.assert_grant_invariant(sf_org_id=sf)


class TerminatedBackendsTest(unittest.TestCase):
    def test_first_write_after_backends_are_terminated_works(self):
        """Every backend is terminated (a failover, an operator's
        pg_terminate_backend): the workers' next requests, whose first
        statement is a write (a connect's BEGIN, the start link's UPDATE,
        the callback's DELETE), find out before sending and reconnect."""
        STACK.create_org("terminated")
        admin = STACK.create_key("terminated", "admin")
        for attempt in range(3):
            STACK.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
            time.sleep(0.3)
            st, headers, body = STACK.connect_org("terminated", admin)
            self.assertEqual(st, 303, f"attempt {attempt}: {body}")
            self.assertIn("salesforce=connected", headers.get("location", ""))


class RotatedRefusedTest(unittest.TestCase):
    """Salesforce rotates the refresh token, but sfconnect refuses the rest of
    the answer: the new refresh token must be kept all the same."""

    def tearDown(self):
        STACK.fakesf("POST", "config", {"rotation": False})

    def check_refused(self, slug, kind, code):
        admin, _, sf = new_connected_org(slug)
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": kind, "count": 1})
        st, _, body = req("POST", SF.format(slug) + "/check", key=admin)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["status"], "degraded", body)
        self.assertEqual(body["last_error"]["code"], code)
        self.assertIsNone(body["banner"])
        STACK.assert_grant_invariant(sf_org_id=sf)
        st, _, body = req("POST", SF.format(slug) + "/check", key=admin)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["status"], "connected",
                         f"the next check presented a superseded token: {body}")

    def test_bad_signature(self):
        self.check_refused("rot-badsig", "bad_signature", "bad_signature")

    def test_foreign_instance_url(self):
        self.check_refused("rot-foreign", "foreign_instance", "host_not_allowed")


class ReusedConnectionDiesTest(unittest.TestCase):
    """Refreshes reuse kept-alive connections. One dies after Salesforce read
    (and used) the refresh token, before any byte of the answer: libcurl
    would send the request again by itself on a new connection, and with
    rotation on a used refresh token presented again revokes the grant.
    It must not be sent again (sf_xfer.c, body_read())."""

    def tearDown(self):
        STACK.fakesf("POST", "fault/clear")
        STACK.fakesf("POST", "config", {"rotation": False})

    def test_answer_lost_on_a_reused_connection_is_not_resent(self):
        reused = False
        for attempt in range(6):
            # A new org each time: the lost answer rotated its token. Warm
            # every worker's connection to the login host, then fault the
            # next refresh; only one on a reused connection proves anything.
            slug = f"reuse-lost-{attempt}"
            admin, _, sf = new_connected_org(slug, rotation=True)
            for _ in range(3):
                st, _, body = req("POST", SF.format(slug) + "/check", key=admin)
                self.assertEqual((st, body["status"]), (200, "connected"), body)
            token = [g for g in STACK.fakesf("GET", "grants")
                     if g["org_id"] == sf][0]["refresh_token"]
            STACK.fakesf("POST", "fault", {"endpoint": "token_refresh",
                                           "kind": "drop_after", "count": 1})
            st, _, body = req("POST", SF.format(slug) + "/check", key=admin)
            sent = [r for r in STACK.fakesf("GET", "requests?endpoint=token_refresh")
                    if (r.get("form") or {}).get("refresh_token") == token]
            self.assertEqual(len(sent), 1, f"the refresh token was sent {len(sent)} times")
            self.assertEqual(st, 200, body)
            self.assertEqual(body["status"], "degraded", body)
            self.assertEqual(body["last_error"]["code"], "refresh_outcome_unknown", body)
            grant = [g for g in STACK.fakesf("GET", "grants") if g["org_id"] == sf][0]
            self.assertFalse(grant["revoked"], grant)
            if sent[0]["conn_seq"] > 1:
                reused = True
                break
        self.assertTrue(reused, "no faulted refresh ran on a reused connection")
        self.assertIn('"refresh_not_resent"', STACK.daemon_log())


class ReusedConnectionDiesCodeTest(unittest.TestCase):
    """The same for the callback's code exchange: Salesforce used the
    authorization code, then the reused connection died before any byte of
    the answer. A code presented twice is refused (RFC 6749 4.1.2, and the
    server may revoke what it issued from it), so libcurl must not send it
    again; the callback answers as for any lost answer of the token
    endpoint, and the connect may simply be started again."""

    def tearDown(self):
        STACK.fakesf("POST", "fault/clear")

    def reconnect_callback(self, slug, admin):
        """A reconnect's callback URL, the code in it not yet exchanged."""
        st, _, answer = req("POST", SF.format(slug) + "/connect", key=admin, body={})
        self.assertEqual(st, 200, answer)
        return STACK.authorize(answer["start_url"])

    def test_answer_lost_on_a_reused_connection_is_not_resent(self):
        reused = False
        for attempt in range(6):
            # Warm every worker's connection to the login host (refreshes
            # go there too), then fault the next code exchange; only one on
            # a reused connection proves anything.
            slug = f"reuse-code-{attempt}"
            admin, _, _ = new_connected_org(slug, rotation=False)
            for _ in range(3):
                st, _, body = req("POST", SF.format(slug) + "/check", key=admin)
                self.assertEqual((st, body["status"]), (200, "connected"), body)
            before = row(slug)
            callback = self.reconnect_callback(slug, admin)
            code = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["code"][0]
            STACK.fakesf("POST", "fault", {"endpoint": "token_code",
                                           "kind": "drop_after", "count": 1})
            st, _, body = STACK.follow_callback(callback, accept_json=True)
            sent = [r for r in STACK.fakesf("GET", "requests?endpoint=token_code")
                    if (r.get("form") or {}).get("code") == code]
            self.assertEqual(len(sent), 1, f"the code was sent {len(sent)} times")
            # As for an answer lost on a new connection: nothing changed.
            self.assertEqual(st, 502, body)
            self.assertEqual((body["error"]["code"], body["error"]["reason"]),
                             ("salesforce_unavailable", "connect"), body)
            self.assertEqual(row(slug), before)
            STACK.fakesf("POST", "fault/clear")
            # Retryable: a new connect gets a new code and succeeds.
            st, headers, _ = STACK.follow_callback(self.reconnect_callback(slug, admin))
            self.assertEqual(st, 303)
            self.assertIn("salesforce=connected", headers.get("location", ""))
            if sent[0]["conn_seq"] > 1:
                reused = True
                break
        self.assertTrue(reused, "no faulted code exchange ran on a reused connection")
        self.assertIn('"code_not_resent"', STACK.daemon_log())


class BadOrgDoesNotStopChecksTest(unittest.TestCase):
    def test_invalid_utf8_from_salesforce_spares_the_batch(self):
        """One org's Salesforce error carries invalid UTF-8 (a surrogate, an
        overlong form): every other org of the batch is still checked."""
        for i in range(3):
            new_connected_org(f"utf8-{i}", rotation=False)
        before = dict(STACK.psql("SELECT o.slug, coalesce(i.last_checked_at::text, '') "
                                 "FROM integrations i JOIN orgs o ON o.id = i.org_id "
                                 "WHERE i.status = 'connected'"))
        raw = (b'{"error":"invalid_grant","error_description":"bad \xed\xa0\x80 '
               b'\xe0\x80\xaf text"}')
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "error",
                                       "status": 400, "content_type": "application/json",
                                       "body_b64": base64.b64encode(raw).decode()})
        st, _, body = req("POST", "/api/v1/admin/integrations/check",
                          key=STACK.operator_key, body={"status": "connected"})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["checked"], len(before), body)
        after = dict(STACK.psql("SELECT o.slug, coalesce(i.last_checked_at::text, '') "
                                "FROM integrations i JOIN orgs o ON o.id = i.org_id"))
        unchecked = [s for s in before if after[s] == before[s]]
        self.assertEqual(unchecked, [], "orgs left unchecked")


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


class ClockSkewTest(unittest.TestCase):
    """The daemon's host clock runs 10 minutes ahead of the database's: the
    age of a token must be measured on one clock (the database's)."""

    def test_token_age_uses_the_database_clock(self):
        if not os.path.exists(FAKETIME_LIB):
            self.fail("faketime is not installed (scripts/deps.sh installs it)")
        stack = Stack(workers=1, config={"access_token_max_age_s": 300},
                      daemon_env={"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "+10m",
                                  "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                                  # an ASan build wants its runtime first
                                  "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "")
                                  + ":verify_asan_link_order=0"})
        stack.start()
        try:
            stack.create_org("skew")
            admin = stack.create_key("skew", "admin")
            service = stack.create_key("skew", "service")
            st, _, body = stack.connect_org("skew", admin)
            self.assertEqual(st, 303, body)
            path = SF.format("skew") + "/token"
            first = stack.request("GET", path, key=service)
            self.assertEqual(first[0], 200, first[2])
            second = stack.request("GET", path, key=service)
            self.assertEqual(second[0], 200, second[2])
            self.assertEqual(second[2]["token_generation"], first[2]["token_generation"],
                             "a token refreshed seconds ago was refreshed again: "
                             "its age was taken from the host's clock")
        finally:
            stack.stop()


class RetryAfterTest(unittest.TestCase):
    def test_salesforce_outage_answers_retry_after_and_heals(self):
        """A forced refresh during a Salesforce outage: 502 with Retry-After
        (1 to 10 s), also for the crowd that follows; a caller that waits
        Retry-After once the outage is over gets a token."""
        STACK.create_org("outage")
        admin = STACK.create_key("outage", "admin")
        service = STACK.create_key("outage", "service")
        st, _, body = STACK.connect_org("outage", admin)
        self.assertEqual(st, 303, body)
        st, _, tok = req("GET", SF.format("outage") + "/token", key=service)
        self.assertEqual(st, 200, tok)
        path = SF.format("outage") + f"/token?force_refresh=1&generation={tok['token_generation']}"
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "status500",
                                       "count": 1})
        for attempt in ("first", "crowd"):
            st, headers, body = req("GET", path, key=service)
            self.assertEqual(st, 502, body)
            self.assertEqual(body["error"]["code"], "salesforce_unavailable")
            self.assertIn("retry-after", headers, f"{attempt}: no Retry-After")
            wait = int(headers["retry-after"])
            self.assertTrue(1 <= wait <= 10, wait)
        time.sleep(wait)
        st, _, body = req("GET", path, key=service)
        self.assertEqual(st, 200, f"after waiting Retry-After ({wait}s): {body}")

    def test_database_outage_answers_retry_after(self):
        STACK.create_org("dbdown")
        viewer = STACK.create_key("dbdown", "viewer")
        STACK.stop_postgres()
        try:
            st, headers, body = req("GET", SF.format("dbdown"), key=viewer)
        finally:
            STACK.start_postgres()
        self.assertEqual(st, 503, body)
        self.assertEqual(headers.get("retry-after"), "2", headers)
        # Until every worker has met the restart on a read (which it retries
        # on a new connection): a write on a dead idle connection is a 503.
        deadline, ok = time.monotonic() + 10, 0
        while time.monotonic() < deadline and ok < 20:
            st, _, _ = req("GET", SF.format("dbdown"), key=viewer)
            ok = ok + 1 if st == 200 else 0
            if st != 200:
                time.sleep(0.1)
        self.assertEqual(ok, 20, "no 20 answers in a row after PostgreSQL returned")


class LockHoldTest(unittest.TestCase):
    """A check batch holds its rows' locks until it commits: the "already
    being processed" retries of a batch must run together (one pause), not
    one org after another, or token requests for those orgs wait past the
    lock wait limit and get 503."""

    ORGS = 40               # the batch: check_concurrency
    LOCK_WAIT_MS = 4000     # one pause (500 ms) fits, ORGS / 2 pauses do not

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(workers=2, config={"check_concurrency": cls.ORGS,
                                             "refresh_lock_timeout_ms": cls.LOCK_WAIT_MS})
        cls.stack.start()

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def connect(self, slug):
        s = self.stack
        s.create_org(slug)
        admin = s.create_key(slug, "admin")
        s.fakesf("POST", "config", {"org_id": "new", "user_id": "new"})
        st, headers, body = s.connect_org(slug, admin)
        self.assertEqual(st, 303, body)
        self.assertIn("salesforce=connected", headers.get("location", ""), headers)

    def refreshes(self):
        return self.stack.fakesf("GET", "counts")["token_refresh"]

    def test_token_request_during_processing_retries_is_answered(self):
        s, n = self.stack, self.ORGS
        for i in range(n):
            self.connect(f"hold-{i}")
        service = s.create_key("hold-0", "service")
        # hold-0's access token is due, so its token request takes the row lock.
        s.psql("UPDATE integrations SET last_refreshed_at = now() - interval '2 hours' "
               "WHERE org_id = (SELECT id FROM orgs WHERE slug = 'hold-0')")
        base = self.refreshes()
        # Every refresh of the batch and every first retry: "already being
        # processed". One retry per org after one pause ends the batch; a
        # second answer sends an org retried one by one into its 500 ms pause.
        s.fakesf("POST", "fault", {"endpoint": "token_refresh",
                                   "kind": "already_processing", "count": 2 * n})
        check = {}
        worker = threading.Thread(target=lambda: check.update(answer=s.request(
            "POST", "/api/v1/admin/integrations/check", key=s.operator_key,
            body={"status": "connected"}, timeout=120)))
        worker.start()
        try:
            deadline = time.monotonic() + 60    # a safety net, not the measure
            while self.refreshes() < base + n and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertGreaterEqual(self.refreshes(), base + n, "the batch never ran")
            # The batch has claimed (locked) its rows and met the first answers.
            st, _, body = s.request("GET", SF.format("hold-0") + "/token", key=service,
                                    timeout=60)
            self.assertEqual(st, 200, f"the token request waited out the batch's "
                             f"lock: {body}")
        finally:
            worker.join(120)
            s.fakesf("POST", "fault/clear")
        st, _, body = check["answer"]
        self.assertEqual(st, 200, body)
        self.assertEqual(body["checked"], n, body)
        self.assertEqual(self.refreshes() - base, 2 * n,
                         "each org retried once, together")
        s.assert_grant_invariant()


class StopGraceTest(unittest.TestCase):
    """SIGTERM while a refresh is in flight: the worker must be given the
    whole refresh path (refresh_timeout_ms, not http_timeout_ms, plus the
    lock waits and the save budget) before SIGKILL, or a rotated refresh
    token Salesforce has already issued is lost with the worker."""

    SLOW_MS = 34000     # past a 30 s grace, within refresh_timeout_ms

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(workers=2, config={"http_timeout_ms": 1000,
                                             "refresh_lock_timeout_ms": 1000,
                                             "refresh_timeout_ms": 45000})
        cls.stack.start()

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def test_sigterm_during_a_slow_rotating_refresh_keeps_the_grant(self):
        s = self.stack
        s.create_org("grace")
        admin = s.create_key("grace", "admin")
        service = s.create_key("grace", "service")
        s.fakesf("POST", "config", {"org_id": "new", "user_id": "new", "rotation": True})
        st, headers, body = s.connect_org("grace", admin)
        self.assertEqual(st, 303, body)
        s.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "delay",
                                   "delay_ms": self.SLOW_MS})
        answer = {}
        client = threading.Thread(target=lambda: answer.update(r=s.request(
            "GET", SF.format("grace") + "/token?force_refresh=1&generation=1", key=service,
            timeout=90)))
        client.start()
        deadline = time.monotonic() + 20
        while (s.fakesf("GET", "counts")["token_refresh"] == 0
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertEqual(s.fakesf("GET", "counts")["token_refresh"], 1,
                         "the forced refresh never reached the simulator")
        daemon = s.daemon.proc
        daemon.send_signal(signal.SIGTERM)      # the supervisor we started
        try:
            code = daemon.wait(150)
        finally:
            client.join(100)
        st, _, body = answer["r"]
        self.assertEqual(st, 200, f"the refresh in flight was cut short: {body}")
        self.assertEqual(code, 0)
        s.daemon.stop()
        s.daemon.start()
        s.wait_healthy()
        s.assert_grant_invariant()
        generation = answer["r"][2]["token_generation"]
        st, _, body = s.request("GET", SF.format("grace") +
                                f"/token?force_refresh=1&generation={generation}",
                                key=service)
        self.assertEqual(st, 200, f"the stored refresh token was superseded: {body}")
        self.assertEqual(s.fakesf("GET", "counts")["token_refresh"], 2)


class ZProcessFaultTest(unittest.TestCase):
    def test_supervisor_kill9_leaves_no_orphans(self):
        """kill -9 of the supervisor: its workers and checker are gone within
        1 s, instead of serving and checking beside the next sfconnectd."""
        children = STACK.daemon.settle()
        self.assertGreaterEqual(len(children), STACK.workers + 1, children)
        os.kill(STACK.daemon.pid, signal.SIGKILL)    # the supervisor we started
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any(pid_alive(p) for p in children):
            time.sleep(0.05)
        left = [p for p in children if pid_alive(p)]
        STACK.daemon.stop()         # reaps; kills what is left of the session
        STACK.daemon.start()
        STACK.wait_healthy()
        self.assertEqual(left, [], "children still running 1 s after the supervisor died")


if __name__ == "__main__":
    unittest.main()
