"""Installation and operations: the installed binaries run against the test
PostgreSQL; `sfconnectd --check-config`; sd_notify (Type=notify); SIGHUP
reloads the configuration and replaces the workers.

The binaries come from SFC_INSTALLED_ROOT (a root made by `dpkg -x` of the
package, see scripts/package-test.sh) or, without it, from
`make install DESTDIR=<tmp>` of the configured source tree. One stack."""

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO, Stack  # noqa: E402

STACK = None
ROOT = None          # the install root
SBIN = None          # where the installed sfconnectd is
MADE_ROOT = False
NOTIFY = None        # the datagram socket standing in for systemd's
NOTIFY_NAME = f"@sfc-notify-{os.getpid()}"


def _install_root():
    """(root, sbin, made): the packaged root, or a fresh `make install`."""
    given = os.environ.get("SFC_INSTALLED_ROOT")
    if given:
        return given, os.path.join(given, "usr", "sbin"), False
    root = tempfile.mkdtemp(prefix="sfc-inst", dir="/tmp")
    prefix = "/opt/sfconnect"
    p = subprocess.run(["make", "-C", REPO, "install", f"DESTDIR={root}",
                        f"prefix={prefix}", f"sysconfdir={prefix}/etc"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError("make install failed:\n" + p.stdout[-2000:] + p.stderr[-2000:])
    return root, os.path.join(root + prefix, "sbin"), True


def setUpModule():
    global STACK, ROOT, SBIN, MADE_ROOT, NOTIFY
    ROOT, SBIN, MADE_ROOT = _install_root()
    NOTIFY = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    NOTIFY.bind("\0" + NOTIFY_NAME[1:])
    NOTIFY.settimeout(0.2)
    STACK = Stack(workers=2, build_dir=SBIN, daemon_env={"NOTIFY_SOCKET": NOTIFY_NAME})
    STACK.start()


def tearDownModule():
    if STACK is not None:
        STACK.stop()
    if NOTIFY is not None:
        NOTIFY.close()
    if MADE_ROOT:
        shutil.rmtree(ROOT, ignore_errors=True)


def notifications(timeout=5.0, until=None):
    """The datagrams received so far (waiting for `until` up to timeout)."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(NOTIFY.recv(4096).decode())
        except socket.timeout:
            if until is None or until in got:
                break
    return got


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class InstalledLayout(unittest.TestCase):
    def test_files_in_place(self):
        found = {os.path.relpath(os.path.join(d, f), ROOT)
                 for d, _, files in os.walk(ROOT) for f in files}
        for suffix in ("sbin/sfconnectd", "sbin/sfconnect-admin",
                       "sfconnect/sfconnect.conf.example",
                       "systemd/system/sfconnectd.service",
                       "systemd/system/sfconnectd.socket",
                       "man/man8/sfconnectd.8", "man/man8/sfconnect-admin.8",
                       "man/man5/sfconnect.conf.5",
                       "share/sfconnect/nginx/sfconnect.conf",
                       "share/sfconnect/web/index.html",
                       "share/sfconnect/001_init.sql"):
            hits = [f for f in found if f.endswith(suffix) or f.endswith(suffix + ".gz")]
            self.assertTrue(hits, f"nothing installed ending in {suffix}: {sorted(found)}")

    def test_stack_runs_the_installed_daemon(self):
        exe = os.path.realpath(f"/proc/{STACK.daemon.pid}/exe")
        self.assertEqual(exe, os.path.realpath(os.path.join(SBIN, "sfconnectd")))
        st, _, _ = STACK.request("GET", "/healthz")
        self.assertEqual(st, 200)


class CheckConfig(unittest.TestCase):
    def run_check(self, overrides, *extra):
        path = STACK.path("check.conf")
        values = STACK.config_values(STACK.daemon.socket_path)
        for k, v in overrides.items():
            if v is None:
                values.pop(k, None)
            else:
                values[k] = v
        with open(path, "w") as f:
            f.write("".join(f"{k} = {v}\n" for k, v in values.items()))
        return subprocess.run([os.path.join(SBIN, "sfconnectd"), "--check-config", *extra,
                               "-c", path], capture_output=True, text=True, timeout=30)

    def test_good_config(self):
        p = self.run_check({})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("configuration OK", p.stdout)
        self.assertEqual(p.stderr, "")

    def test_good_config_and_database(self):
        p = self.run_check({}, "--check-database")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("database reachable", p.stdout)

    def test_unreachable_database(self):
        p = self.run_check({"database_url": "host=/nonexistent dbname=x"}, "--check-database")
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"^sfconnectd: database_url: ")

    def test_unknown_key(self):
        path = STACK.path("check-bad.conf")
        shutil.copy(STACK.daemon.config_path, path)
        with open(path, "a") as f:
            f.write("no_such_key = 1\n")
        p = subprocess.run([os.path.join(SBIN, "sfconnectd"), "--check-config", "-c", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown key no_such_key", p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)

    def test_bad_value(self):
        p = self.run_check({"workers": "0"})
        self.assertEqual(p.returncode, 1)
        self.assertIn("workers", p.stderr)

    def test_key_files_of_wrong_length_name_their_setting(self):
        short = STACK._write_secret("short.key",
                                    base64.b64encode(os.urandom(16)).decode() + "\n")
        for setting in ("token_key_file", "token_previous_key_files"):
            with self.subTest(setting=setting):
                p = self.run_check({setting: short})
                self.assertEqual(p.returncode, 1)
                self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
                self.assertRegex(p.stderr, rf"^sfconnectd: {setting}: .*{short}")
                self.assertIn("32 bytes", p.stderr)

    def test_every_problem_on_its_own_line(self):
        loose = STACK._write_secret("loose_secret", "x\n")
        os.chmod(loose, 0o644)
        p = self.run_check({"salesforce_client_secret_file": loose,
                            "token_key_file": STACK.path("missing.key"),
                            "tls_ca_file": STACK.path("missing-ca.pem"),
                            "webhook_url": "https://hooks.example.com/x"})
        self.assertEqual(p.returncode, 1)
        lines = p.stderr.splitlines()
        for setting in ("token_key_file", "salesforce_client_secret_file", "tls_ca_file",
                        "webhook_secret_file"):
            self.assertTrue([x for x in lines if x.startswith(f"sfconnectd: {setting}: ")],
                            f"no line for {setting}: {lines}")
        self.assertTrue([x for x in lines if "mode 0644" in x], lines)

    def test_start_up_names_the_key(self):
        """Start-up itself (not only the check) names the setting."""
        short = STACK._write_secret("short2.key",
                                    base64.b64encode(os.urandom(31)).decode() + "\n")
        path = STACK.path("start-bad.conf")
        values = STACK.config_values(STACK.path("unused.sock"))
        values["token_key_file"] = short
        with open(path, "w") as f:
            f.write("".join(f"{k} = {v}\n" for k, v in values.items()))
        p = subprocess.run([os.path.join(SBIN, "sfconnectd"), "-c", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("token_key_file: key file", p.stderr)


class Notify(unittest.TestCase):
    def test_ready_sent(self):
        # The stack started before this test: READY=1 is already queued.
        got = notifications(timeout=5, until="READY=1")
        self.assertIn("READY=1", got)


class Reload(unittest.TestCase):
    def test_reload_replaces_workers(self):
        notifications(timeout=0.3)
        old = set(STACK.daemon.worker_pids())
        STACK.config_overrides["workers"] = "3"
        STACK.write_config(STACK.daemon.config_path, STACK.daemon.socket_path)
        try:
            os.kill(STACK.daemon.pid, signal.SIGHUP)
            wait_for(lambda: "configuration reloaded: 3 workers" in STACK.daemon_log(),
                     what="the reload log line")
            wait_for(lambda: not (old & set(STACK.daemon.worker_pids())),
                     what="the old workers to exit")
            wait_for(lambda: len(STACK.daemon.worker_pids()) >= 4,
                     what="3 workers and the checker")
            got = notifications(timeout=5, until="READY=1")
            self.assertIn("RELOADING=1", got)
            self.assertIn("READY=1", got)
            for _ in range(20):
                st, _, _ = STACK.request("GET", "/healthz")
                self.assertEqual(st, 200)
            self.assertTrue(STACK.daemon.alive())
        finally:
            STACK.config_overrides.pop("workers", None)
            STACK.write_config(STACK.daemon.config_path, STACK.daemon.socket_path)

    def test_bad_reload_keeps_running_config(self):
        short = STACK._write_secret("short3.key",
                                    base64.b64encode(os.urandom(16)).decode() + "\n")
        before = set(STACK.daemon.worker_pids())
        STACK.config_overrides["token_key_file"] = short
        STACK.write_config(STACK.daemon.config_path, STACK.daemon.socket_path)
        try:
            os.kill(STACK.daemon.pid, signal.SIGHUP)
            wait_for(lambda: "keeping the running configuration" in STACK.daemon_log(),
                     what="the refused reload")
            log = STACK.daemon_log()
            line = [x for x in log.splitlines() if "keeping the running" in x][-1]
            self.assertIn("token_key_file", line)
            self.assertEqual(set(STACK.daemon.worker_pids()), before)
            st, _, _ = STACK.request("GET", "/healthz")
            self.assertEqual(st, 200)
        finally:
            STACK.config_overrides.pop("token_key_file", None)
            STACK.write_config(STACK.daemon.config_path, STACK.daemon.socket_path)


if __name__ == "__main__":
    unittest.main()
