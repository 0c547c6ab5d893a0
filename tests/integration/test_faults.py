"""Never lose a grant: faults of the processes, the database and Salesforce.

Each test here names the fault it injects and what must hold afterwards.
One stack for the module; tests that restart the daemon put it back."""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

STACK = None
SF = "/api/v1/orgs/{}/integrations/salesforce"


def setUpModule():
    global STACK
    STACK = Stack(workers=2)
    STACK.start()


def tearDownModule():
    if STACK is not None:
        STACK.stop()


def req(*args, **kwargs):
    return STACK.request(*args, **kwargs)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


class ClockSkewTest(unittest.TestCase):
    """The daemon's host clock runs 10 minutes ahead of the database's: the
    age of a token must be measured on one clock (the database's)."""

    def test_token_age_uses_the_database_clock(self):
        if not os.path.exists(FAKETIME_LIB):
            self.fail("faketime is not installed (scripts/deps.sh installs it)")
        stack = Stack(workers=1, config={"access_token_max_age_s": 300},
                      daemon_env={"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "+10m",
                                  "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
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
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st, _, _ = req("GET", SF.format("dbdown"), key=viewer)
            if st == 200:
                break
            time.sleep(0.1)
        self.assertEqual(st, 200)


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
