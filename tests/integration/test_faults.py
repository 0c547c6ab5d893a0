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
