"""The bulk check as a job (docs/API.md, "Check jobs"): 202 + Location with
Prefer: respond-async or over bulk_check_sync_max due orgs, GET progress
until finished, counts matching the simulator's refreshes, a job that
survives a kill -9 of sfconnectd, 404 / 403, bad Prefer values ignored, and
`sfconnect-admin check --all`."""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

STACK = None
N = 12                      # connected orgs
CONCURRENCY = 2
CHECK = "/api/v1/admin/integrations/check"
ALL = {"older_than_s": 0}


def setUpModule():
    global STACK
    STACK = Stack(workers=2, config={"check_concurrency": CONCURRENCY,
                                     "bulk_check_sync_max": 1000})
    STACK.start()
    op = STACK.operator_key
    for i in range(N):
        slug = f"job-{i:02d}"
        st, _, body = STACK.request("POST", "/api/v1/admin/orgs", key=op,
                                    body={"slug": slug, "name": slug})
        assert st == 201, (st, body)
        STACK.fakesf("POST", "config", {"org_id": "new", "user_id": "new"})
        st, _, body = STACK.connect_org(slug, op, accept_json=True)
        assert st == 200 and body.get("status") == "connected", (st, body)


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def refreshes():
    return STACK.fakesf("GET", "counts")["token_refresh"]


def post_check(prefer=None, key=None):
    headers = {"Prefer": prefer} if prefer is not None else None
    return STACK.request("POST", CHECK, key=key or STACK.operator_key, body=ALL,
                         headers=headers, timeout=120)


def wait_finished(location, polls=600):
    """Polls the job (0.1 s apart, at most polls times) until finished;
    answers every body seen."""
    seen = []
    for _ in range(polls):
        st, hdrs, body = STACK.request("GET", location, key=STACK.operator_key)
        if st != 200:
            raise AssertionError(f"GET {location}: {st} {body}")
        seen.append(body)
        if body["state"] == "finished":
            return seen
        time.sleep(0.1)
    raise AssertionError(f"job not finished: {seen[-1]}")


class CheckJobs(unittest.TestCase):

    def setUp(self):
        STACK.fakesf("POST", "counts/reset")

    def assertAccepted(self, st, hdrs, body):
        self.assertEqual(st, 202, body)
        loc = hdrs.get("location", "")
        self.assertRegex(loc, r"^/api/v1/admin/check-jobs/\d+$")
        self.assertEqual(loc.rsplit("/", 1)[1], str(body["id"]))
        self.assertEqual(body["total"], N, body)
        self.assertIn(body["state"], ("running", "finished"))
        return loc

    def assertDone(self, job, refreshed):
        self.assertEqual(job["state"], "finished", job)
        self.assertEqual(job["total"], N, job)
        self.assertEqual(job["checked"], N, job)
        self.assertEqual(job["connected"], N, job)
        self.assertEqual(job["degraded"] + job["invalid"] + job["skipped"], 0, job)
        self.assertEqual(job["estimated_seconds_left"], 0, job)
        self.assertIsNotNone(job["started_at"], job)
        self.assertIsNotNone(job["finished_at"], job)
        self.assertEqual(refreshed, N, "the simulator's refreshes")

    def test_async_by_prefer(self):
        st, hdrs, body = post_check(prefer="respond-async")
        loc = self.assertAccepted(st, hdrs, body)
        self.assertEqual(hdrs.get("preference-applied"), "respond-async")
        seen = wait_finished(loc)
        for job in seen:
            self.assertLessEqual(job["checked"], job["total"], job)
        self.assertDone(seen[-1], refreshes())
        # Finished: the counts stay frozen.
        st, _, again = STACK.request("GET", loc, key=STACK.operator_key)
        self.assertEqual((again["checked"], again["connected"]), (N, N), again)

    def test_async_prefer_in_a_list(self):
        st, hdrs, body = post_check(prefer="wait=5, RESPOND-ASYNC ; x=1")
        self.assertDone(wait_finished(self.assertAccepted(st, hdrs, body))[-1],
                        refreshes())

    def test_async_over_sync_max(self):
        STACK.restart_daemon(config={"bulk_check_sync_max": N - 1})
        try:
            STACK.fakesf("POST", "counts/reset")
            st, hdrs, body = post_check()
            loc = self.assertAccepted(st, hdrs, body)
            self.assertNotIn("preference-applied", hdrs)
            self.assertDone(wait_finished(loc)[-1], refreshes())
        finally:
            STACK.restart_daemon(config={"bulk_check_sync_max": 1000})

    def test_bad_prefer_ignored(self):
        for prefer in ("respond-async=yes", "respond-asyncx", "wait=10", "",
                       "handling=lenient", ";;,,", "x" * 400):
            STACK.fakesf("POST", "counts/reset")
            st, _, body = post_check(prefer=prefer)
            self.assertEqual(st, 200, (prefer, body))
            self.assertEqual((body["checked"], body["connected"]), (N, N),
                             (prefer, body))
            self.assertEqual(refreshes(), N, prefer)

    def test_sync_counts_what_it_checked(self):
        """Small synchronous checks keep today's answer, and it counts every
        due org."""
        st, _, body = post_check()
        self.assertEqual(st, 200, body)
        self.assertEqual(sorted(body), ["checked", "connected", "degraded",
                                        "duration_ms", "invalid"])
        self.assertEqual((body["checked"], body["connected"]), (N, N), body)
        self.assertEqual(refreshes(), N)

    def test_unknown_job_404(self):
        for job_id in ("999999999", "abc", "0", "1_2"):
            st, _, body = STACK.request("GET", f"/api/v1/admin/check-jobs/{job_id}",
                                        key=STACK.operator_key)
            self.assertEqual(st, 404, (job_id, body))
            self.assertEqual(body["error"]["code"], "not_found", body)
            self.assertTrue(body["error"]["message"])
            self.assertIn("request_id", body)

    def test_non_operator_403(self):
        STACK.create_org("job-other")
        admin = STACK.create_key("job-other", "admin", "job-other-admin")
        st, hdrs, body = post_check(prefer="respond-async")
        loc = self.assertAccepted(st, hdrs, body)
        wait_finished(loc)
        for method, path in (("GET", loc), ("POST", CHECK)):
            st, _, body = STACK.request(method, path, key=admin, body=ALL,
                                        headers={"Prefer": "respond-async"})
            self.assertEqual(st, 403, (path, body))
            self.assertEqual(body["error"]["code"], "forbidden", body)

    def test_survives_kill9(self):
        """kill -9 of sfconnectd (supervisor and children) mid-job; started
        again, the job finishes and every org is checked once (an org whose
        refresh was in flight at the kill is refreshed again: at most one
        batch)."""
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "delay",
                                       "count": N, "delay_ms": 300})
        st, hdrs, body = post_check(prefer="respond-async")
        loc = self.assertAccepted(st, hdrs, body)
        created = STACK.psql(f"SELECT created_at FROM check_jobs WHERE id = {body['id']}")
        for _ in range(600):
            st, _, job = STACK.request("GET", loc, key=STACK.operator_key)
            if job["checked"] >= CONCURRENCY:
                break
            time.sleep(0.05)
        self.assertEqual(job["state"], "running", job)
        self.assertLess(job["checked"], N, job)
        os.killpg(STACK.daemon.pid, signal.SIGKILL)    # the session we started
        STACK.daemon.proc.wait()
        STACK.daemon.stop()
        STACK.daemon.start()
        STACK.wait_healthy()
        job = wait_finished(loc)[-1]
        self.assertEqual((job["checked"], job["connected"], job["total"]), (N, N, N), job)
        stale = STACK.psql("SELECT count(*) FROM integrations WHERE status <> 'disconnected' "
                           f"AND last_checked_at < '{created[0][0]}'::timestamptz")
        self.assertEqual(stale, [["0"]])
        self.assertGreaterEqual(refreshes(), N)
        self.assertLessEqual(refreshes(), N + CONCURRENCY)

    def test_zadmin_check_all(self):
        p = STACK.admin_run("check", "--all")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, rf"^all: {N} checked: {N} connected, 0 degraded, "
                         r"0 invalid$")
        self.assertRegex(p.stderr, rf"check: job \d+: {N}/{N} checked \(100%\)")
        self.assertEqual(refreshes(), N)


if __name__ == "__main__":
    unittest.main()
