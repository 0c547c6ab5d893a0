#!/usr/bin/python3
"""The sfconnect test stack: throwaway PostgreSQL, the Salesforce simulator,
sfconnectd and nginx, all in one short temporary directory.

    from harness import Stack
    stack = Stack()              # nothing runs yet
    stack.start()                # PostgreSQL, fakesf, nginx, migrate, sfconnectd
    key = stack.create_key("acme", "admin", "ci")
    status, headers, body = stack.request("GET",
        "/api/v1/orgs/acme/integrations/salesforce", key=key)
    stack.stop()                 # raises AssertionError if something went wrong

Python 3 standard library only. Environment knobs:
  SFC_BUILD_DIR   where sfconnectd and sfconnect-admin are (default: repo root)
  SFC_WRAPPER     a command prefix for sfconnectd, e.g.
                  "valgrind --error-exitcode=99 --leak-check=full"
  SFC_KEEP / KEEP keep the temporary directory after stop()
  SFC_VERBOSE     print what the harness does on stderr

Stack(nginx_extra=TEXT) adds TEXT (e.g. locations; placeholders such as
@PREFIX@ are rendered) to the server block of nginx (bench/ uses it).

Stack(pg_proxy=True) puts tests/integration/pgproxy.py between sfconnectd and
PostgreSQL (stack.pg_proxy arms its faults); psql() and sfconnect-admin still
go direct. assert_grant_invariant() checks that every grant alive at the
simulator is the one stored.

`python3 harness.py --serve [--port 8080]` runs the stack until Ctrl-C (this
is what scripts/run-local.sh uses).
"""

import argparse
import atexit
import base64
import glob
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
CORS_ORIGIN = "https://app.example.test"
RETURN_ORIGIN = "https://app.example.test"
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
IS_ROOT = os.geteuid() == 0


# ---------------------------------------------------------------- OpenAPI recording
# With SFC_OPENAPI_RECORD=FILE, request() appends each response it receives
# to FILE as one JSON line (method, raw path, request body, status, headers,
# body text); tests/openapi/validate.mjs checks them against docs/openapi.yaml.
_RECORD_LOCK = threading.Lock()


def _record_response(method, path, data, status, headers, text):
    target = os.environ.get("SFC_OPENAPI_RECORD")
    if not target:
        return
    line = json.dumps({"method": method, "path": path,
                       "request_body": (data or b"").decode("utf-8", "replace"),
                       "status": status, "headers": headers, "body": text}) + "\n"
    with _RECORD_LOCK:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _verbose(msg):
    if os.environ.get("SFC_VERBOSE"):
        print(f"harness: {msg}", file=sys.stderr, flush=True)


def _pg_bindir():
    """The PostgreSQL server binaries (initdb, pg_ctl, psql...)."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found (run scripts/deps.sh)")
    return os.path.dirname(found[-1])


def free_port(host="127.0.0.1"):
    """A TCP port that nothing listens on right now (others share loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return f"({path} unreadable)"


_LIVE = []          # stacks started and not yet stopped
_CLEANUP_INSTALLED = False


def _cleanup_live(*_):
    for stack in list(_LIVE):
        try:
            stack.stop(check=False)
        except Exception as e:  # best effort on the way out
            print(f"harness: cleanup: {e}", file=sys.stderr)


def _install_cleanup():
    """Stop every live stack at exit and on SIGTERM/SIGHUP (e.g. `timeout`),
    so that no PostgreSQL, nginx or sfconnectd outlives the test run."""
    global _CLEANUP_INSTALLED
    if _CLEANUP_INSTALLED:
        return
    _CLEANUP_INSTALLED = True
    atexit.register(_cleanup_live)
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, _frame):
            _cleanup_live()
            os._exit(128 + signum)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, on_signal)


class CommandError(AssertionError):
    """A command of the stack (sfconnect-admin, psql...) failed."""

    def __init__(self, argv, returncode, stdout, stderr):
        self.argv, self.returncode, self.stdout, self.stderr = argv, returncode, stdout, stderr
        super().__init__(f"{' '.join(argv)} exited {returncode}: {stderr.strip() or stdout.strip()}")


class _ResolvingHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 for any *.localhost name (as curl and the daemon do),
    with SNI and certificate checks against the real name."""

    def connect(self):
        host = self.host
        target = "127.0.0.1" if host == "localhost" or host.endswith(".localhost") else host
        sock = socket.create_connection((target, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=host)


OAUTH_PREFIX = "/api/v1/oauth/salesforce/"
BROWSER = object()     # request()'s default: the stack's own browser on OAuth paths


def url_state(url):
    """The state query parameter of an authorize or callback URL (or None)."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)).get("state")


class Browser:
    """The cookie jar of one browser on sfconnect's origin: it keeps what
    Set-Cookie gives (Max-Age honoured, Max-Age=0 deletes) and sends back
    the cookies whose Path prefixes a request's path."""

    def __init__(self):
        self._lock = threading.Lock()
        self.cookies = {}      # name -> {"value", "path", "expires", "attrs"}

    def cookie_header(self, path):
        now = time.monotonic()
        with self._lock:
            pairs = [f"{n}={c['value']}" for n, c in self.cookies.items()
                     if path.startswith(c["path"]) and c["expires"] > now]
        return "; ".join(pairs) or None

    @staticmethod
    def parse(line):
        """One Set-Cookie line: (name, value, attrs with lower-case names;
        a flag attribute maps to True)."""
        parts = [p.strip() for p in line.split(";")]
        name, _, value = parts[0].partition("=")
        attrs = {}
        for a in parts[1:]:
            k, eq, v = a.partition("=")
            attrs[k.strip().lower()] = v.strip() if eq else True
        return name.strip(), value.strip(), attrs

    def store(self, lines):
        now = time.monotonic()
        for line in lines:
            name, value, attrs = self.parse(line)
            with self._lock:
                if "max-age" in attrs and int(attrs["max-age"]) <= 0:
                    self.cookies.pop(name, None)
                    continue
                expires = now + int(attrs["max-age"]) if "max-age" in attrs else float("inf")
                self.cookies[name] = {"value": value, "path": attrs.get("path", "/"),
                                      "expires": expires, "attrs": attrs}


class Daemon:
    """One sfconnectd process (the supervisor) that the harness started."""

    def __init__(self, stack, name, socket_path, config_path, log_path):
        self.stack, self.name = stack, name
        self.socket_path, self.config_path, self.log_path = socket_path, config_path, log_path
        self.proc = None
        self.exit_codes = []

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=None):
        argv = shlex.split(os.environ.get("SFC_WRAPPER", "")) + [
            self.stack.bin("sfconnectd"), "-c", self.config_path]
        if timeout is None:
            timeout = 120 if os.environ.get("SFC_WRAPPER") else 30
        if self.socket_path.startswith("/"):
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
        log = open(self.log_path, "ab")
        env = dict(os.environ, **self.stack.daemon_env)
        _verbose(f"starting {self.name}: {' '.join(argv)}")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env=env, start_new_session=True, cwd=self.stack.dir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode} at start-up:\n"
                                   + _tail(self.log_path))
            if self._socket_answers():
                self.settle(max(1, deadline - time.monotonic()))
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no socket {self.socket_path} after {timeout}s:\n"
                           + _tail(self.log_path))

    def _socket_answers(self):
        if not self.socket_path.startswith("/"):     # "host:port" (fastcgi_tcp)
            host, _, port = self.socket_path.rpartition(":")
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    return True
            except OSError:
                return False
        if not os.path.exists(self.socket_path):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(self.socket_path)
                return True
            except OSError:
                return False

    def worker_pids(self):
        """PIDs of the supervisor's direct children (its workers)."""
        pids = []
        if not self.alive():
            return pids
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat) as f:
                    data = f.read()
            except OSError:
                continue
            fields = data[data.rfind(")") + 2:].split()
            if len(fields) > 1 and int(fields[1]) == self.proc.pid:
                pids.append(int(stat.split("/")[2]))
        return sorted(pids)

    def settle(self, timeout=10.0):
        """Waits until the supervisor has forked its workers: at least
        `workers` children, unchanged for 0.3 s. Answers their PIDs."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if pids != last:
                last, since = pids, time.monotonic()
            elif len(pids) >= self.stack.workers and time.monotonic() - since >= 0.3:
                break
            time.sleep(0.05)
        return last or []

    def stop(self, timeout=None):
        """SIGTERM, wait, then SIGKILL. Returns the exit code (None if not running)."""
        if self.proc is None:
            return None
        if timeout is None:
            timeout = 60 if os.environ.get("SFC_WRAPPER") else 15
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.stack.problems.append(f"{self.name} did not stop {timeout}s after SIGTERM")
                proc.kill()
                proc.wait()
        # Workers left behind by a dead supervisor: they are in the session we made.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.exit_codes.append(proc.returncode)
        return proc.returncode

    # -------------------------------------------- scale out (issue 14, item 7)

    def kill9(self):
        """SIGKILL to the supervisor and all its processes at once, as when
        its host dies: no stop grace. The socket file stays behind, as it
        would. Answers the PIDs that were killed."""
        if not self.alive():
            raise RuntimeError(f"{self.name} is not running")
        pids = [self.proc.pid] + self.worker_pids()
        proc, self.proc = self.proc, None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.exit_codes.append(proc.returncode)
        # A killed process closes its files only after its memory is gone
        # (slow for an ASan build): until then its listening socket still
        # takes connections. Dead means all of them gone.
        deadline = time.monotonic() + 10
        while any(process_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        return pids


def process_running(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class Stack:
    """The whole stack in one temporary directory. See the module docstring."""

    def __init__(self, workers=2, config=None, daemon_env=None, port=None,
                 fakesf=True, build_dir=None, keep=None, pg_proxy=False,
                 nginx_extra=None, fastcgi_tcp=False):
        self.workers = workers
        self.nginx_extra = nginx_extra  # text added to nginx's server block
        # sfconnectd listens on 127.0.0.1:PORT (nginx too talks TCP to it)
        # instead of a unix socket; the port is in self.fastcgi_addr.
        self.fastcgi_tcp = fastcgi_tcp
        self.fastcgi_addr = None
        self.want_pg_proxy = pg_proxy
        self.pg_proxy = None       # a pgproxy.PgProxy when pg_proxy
        self.config_overrides = dict(config or {})
        self.daemon_env = dict(daemon_env or {})
        self.want_port = port
        self.want_fakesf = fakesf
        self.build_dir = os.path.abspath(build_dir or os.environ.get("SFC_BUILD_DIR") or REPO)
        self.keep = keep if keep is not None else bool(
            os.environ.get("SFC_KEEP") or os.environ.get("KEEP"))
        self.dir = None
        self.problems = []
        self.allowed_nginx_log = []
        self.pg_bindir = None
        self.pg_running = False
        self.fakesf_proc = None
        self.fakesf_info = None
        self.nginx = []            # [(proc, prefix, port)]
        self.port = None
        self.port2 = None
        self.daemon = None
        self.daemon2 = None
        self.operator_key = None
        self.started = False
        self._lock = threading.Lock()
        self.browser = Browser()   # the browser of authorize() and the callbacks
        self._starts = {}          # state -> start_url of each connect answered

    # ------------------------------------------------------------ paths

    def bin(self, name):
        return os.path.join(self.build_dir, name)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def pg_dir(self):
        return self.path("pg")

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca_file(self):
        return self.fakesf_info["ca"] if self.fakesf_info else None

    @property
    def fakesf_port(self):
        return self.fakesf_info["port"] if self.fakesf_info else None

    @property
    def database_url(self):
        """The daemons' database_url: through the proxy with pg_proxy."""
        if self.pg_proxy is not None:
            return self.pg_proxy.dsn("app", "app")
        return self.direct_database_url

    @property
    def direct_database_url(self):
        return f"host={self.pg_dir} user=app dbname=app"

    @property
    def admin_config_path(self):
        """sfconnect-admin's config: the daemon's, but with the direct
        database_url when the proxy is on."""
        if self.pg_proxy is not None:
            return self.path("sfconnect-admin.conf")
        return self.daemon.config_path

    # ------------------------------------------------------------ start / stop

    def start(self):
        for name in ("sfconnectd", "sfconnect-admin"):
            if not os.access(self.bin(name), os.X_OK):
                raise RuntimeError(f"{self.bin(name)} is missing: build first "
                                   "(./autogen.sh && ./configure && make)")
        _install_cleanup()
        self.dir = tempfile.mkdtemp(prefix="sfc", dir="/tmp")
        _LIVE.append(self)
        os.chmod(self.dir, 0o711)   # postgres must reach DIR/pg
        _verbose(f"directory {self.dir}")
        try:
            self.start_postgres(initdb=True)
            if self.want_pg_proxy:
                self._start_pg_proxy()
            if self.want_fakesf:
                self._start_fakesf()
            self._write_secrets()
            sock = self.path("sfconnectd.sock")
            if self.fastcgi_tcp:
                sock = self.fastcgi_addr = f"127.0.0.1:{free_port()}"
            self.port = self._start_nginx("nginx", sock, self.want_port)
            self.daemon = Daemon(self, "sfconnectd", sock,
                                 self.path("sfconnectd.conf"), self.path("sfconnectd.log"))
            self.write_config(self.daemon.config_path, self.daemon.socket_path)
            self.admin("migrate")
            self.daemon.start()
            self.wait_healthy()
            self.operator_key = self.create_key(None, "operator", "harness-operator")
            self.started = True
        except BaseException:
            try:
                self.stop(check=False)
            except Exception as e:  # keep the original error
                print(f"harness: cleanup after failed start: {e}", file=sys.stderr)
            raise
        return self

    def stop(self, check=True):
        """Stops everything the harness started. With check, raises AssertionError
        when a daemon crashed, nginx logged [alert]/[crit], or a sanitizer or
        valgrind complained."""
        if self.dir is None:
            return
        if self in _LIVE:
            _LIVE.remove(self)
        for d in (self.daemon2, self.daemon):
            if d is not None:
                if d.proc is not None and d.proc.poll() is not None:
                    self.problems.append(f"{d.name} had exited with {d.proc.returncode} "
                                         "before stop()")
                code = d.stop()
                if code not in (None, 0, -signal.SIGTERM):
                    self.problems.append(f"{d.name} exited {code} after SIGTERM")
        for proc, prefix, _ in self.nginx:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.fakesf_proc is not None and self.fakesf_proc.poll() is None:
            self.fakesf_proc.terminate()
            try:
                self.fakesf_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.fakesf_proc.kill()
                self.fakesf_proc.wait()
        if self.pg_proxy is not None:
            try:
                self.pg_proxy.stop()
            except Exception as e:
                self.problems.append(f"pgproxy stop: {e}")
            self.pg_proxy = None
        if self.pg_running:
            try:
                self.stop_postgres()
            except Exception as e:
                self.problems.append(f"pg_ctl stop: {e}")
        self._scan_logs()
        problems, self.problems = self.problems, []
        message = ""
        if problems:
            message = "stack problems:\n  " + "\n  ".join(problems)
            if self.daemon is not None:
                message += "\n--- end of sfconnectd.log ---\n" + _tail(self.daemon.log_path, 30)
        directory = self.dir
        if self.keep:
            print(f"harness: kept {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
        self.dir = None
        self.started = False
        if problems and check:
            raise AssertionError(message)

    def _scan_logs(self):
        for _, prefix, _ in self.nginx:
            log = os.path.join(prefix, "error.log")
            try:
                with open(log, errors="replace") as f:
                    for line in f:
                        if ("[alert]" in line or "[crit]" in line or "[emerg]" in line) and \
                                not any(re.search(p, line) for p in self.allowed_nginx_log):
                            self.problems.append(f"nginx {log}: {line.strip()}")
            except FileNotFoundError:
                pass
        for d in (self.daemon, self.daemon2):
            if d is None:
                continue
            text = self._read(d.log_path)
            for pat in (r"ERROR: AddressSanitizer.*", r"ERROR: LeakSanitizer.*",
                        r"runtime error: .*", r"ERROR SUMMARY: [1-9]\d* errors.*",
                        r"definitely lost: [1-9][\d,]* bytes.*"):
                for m in re.finditer(pat, text):
                    self.problems.append(f"{d.name} log: {m.group(0).strip()[:200]}")

    def allow_nginx_log(self, regex):
        """Do not fail stop() for nginx [crit]/[alert] lines matching regex
        (e.g. a test that stopped sfconnectd on purpose)."""
        self.allowed_nginx_log.append(regex)

    # ------------------------------------------------------------ PostgreSQL

    def _as_postgres(self, argv):
        return ["runuser", "-u", "postgres", "--"] + argv if IS_ROOT else argv

    def _pg(self, tool):
        if self.pg_bindir is None:
            self.pg_bindir = _pg_bindir()
        return os.path.join(self.pg_bindir, tool)

    def start_postgres(self, initdb=False):
        data = os.path.join(self.pg_dir, "data")
        if initdb:
            os.mkdir(self.pg_dir, 0o700)
            if IS_ROOT:
                shutil.chown(self.pg_dir, "postgres", "postgres")
            self._run(self._as_postgres([self._pg("initdb"), "--nosync", "-A", "trust",
                                         "-U", "app", "-E", "UTF8", "--locale=C.UTF-8",
                                         "-D", data]), cwd="/")
        opts = (f"-c listen_addresses='' -c unix_socket_directories='{self.pg_dir}' "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(self._as_postgres([self._pg("pg_ctl"), "-w", "-t", "60", "-D", data,
                                     "-l", os.path.join(self.pg_dir, "pg.log"),
                                     "-o", opts, "start"]), cwd="/")
        self.pg_running = True
        if initdb:
            self._run([self._pg("createdb"), "-h", self.pg_dir, "-U", "app", "app"])

    def stop_postgres(self):
        data = os.path.join(self.pg_dir, "data")
        self._run(self._as_postgres([self._pg("pg_ctl"), "-w", "-D", data, "-m", "fast",
                                     "stop"]), cwd="/")
        self.pg_running = False

    def _start_pg_proxy(self):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from pgproxy import PgProxy
        self.pg_proxy = PgProxy(self.pg_dir, self.path("pgproxy")).start()
        _verbose(f"pgproxy on {self.pg_proxy.socket_path}")

    def psql(self, sql, via_proxy=False):
        """Runs sql (direct, or through the proxy with via_proxy); answers
        the rows as lists of strings (NULL is '')."""
        host = ["-h", self.pg_dir]
        if via_proxy:
            host = ["-h", self.pg_proxy.host, "-p", str(self.pg_proxy.port)]
        out = self._run([self._pg("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                         *host, "-U", "app", "-d", "app", "-At",
                         "-F", "\x1f", "-R", "\x1e", "-c", sql])
        out = out.rstrip("\n")
        if not out:
            return []
        return [row.split("\x1f") for row in out.split("\x1e")]

    def pg_dump(self):
        """The whole database as SQL text (for "no secret in the dump" checks)."""
        return self._run([self._pg("pg_dump"), "-h", self.pg_dir, "-U", "app", "app"])

    # ------------------------------------------------------------ fakesf

    def _start_fakesf(self):
        script = os.path.join(REPO, "tests", "fakesf", "fakesf.py")
        if not os.path.exists(script):
            _verbose("tests/fakesf/fakesf.py missing: no simulator")
            return
        d = self.path("fakesf")
        os.mkdir(d, 0o700)
        log = open(self.path("fakesf.log"), "ab")
        self.fakesf_proc = subprocess.Popen(
            [PYTHON, script, "--dir", d, "--port", "0", "--untrusted-port", "0"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        info = os.path.join(d, "fakesf.json")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.fakesf_proc.poll() is not None:
                raise RuntimeError("fakesf exited at start-up:\n" + _tail(self.path("fakesf.log")))
            if os.path.exists(info):
                with open(info) as f:
                    self.fakesf_info = json.load(f)
                return
            time.sleep(0.05)
        raise RuntimeError("fakesf did not start:\n" + _tail(self.path("fakesf.log")))

    def _fakesf_context(self):
        ctx = ssl.create_default_context(cafile=self.ca_file)
        return ctx

    def fakesf(self, method, path, body=None, check=True):
        """Calls the simulator's control API ("reset" means /__control/reset;
        an absolute path is used as it is). Answers the parsed JSON; raises
        on an HTTP error when check."""
        if not self.fakesf_info:
            import unittest
            raise unittest.SkipTest("the Salesforce simulator is not available")
        if not path.startswith("/"):
            path = "/__control/" + path
        conn = http.client.HTTPSConnection("127.0.0.1", self.fakesf_port, timeout=30,
                                           context=self._fakesf_context())
        try:
            data = None
            headers = {}
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        if check and resp.status >= 400:
            raise AssertionError(f"fakesf {method} {path} -> {resp.status}: {parsed}")
        return parsed

    def sf_get(self, url, headers=None):
        """GET an https URL on the simulator (any *.localhost name), without
        following redirects: (status, headers lower-cased, body text)."""
        u = urllib.parse.urlsplit(url)
        conn = _ResolvingHTTPSConnection(u.hostname, u.port or 443, timeout=30,
                                         context=self._fakesf_context())
        try:
            conn.request("GET", u.path + ("?" + u.query if u.query else ""),
                         headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, \
                raw.decode(errors="replace")
        finally:
            conn.close()

    def open_start(self, start_url, browser=BROWSER):
        """Opens a connect's start_url in browser (through nginx, without
        following the redirect); answers request()'s triple."""
        u = urllib.parse.urlsplit(start_url)
        return self.request("GET", u.path + ("?" + u.query if u.query else ""),
                            browser=self.browser if browser is BROWSER else browser)

    def authorize(self, url, browser=BROWSER):
        """Plays the browser: opens the connect's start_url first (it sets the
        cookie that binds the state to browser, the stack's own by default;
        None skips it, as an API-only flow does), then the simulator's
        authorize page; answers the URL it redirects to (our callback with
        code/state or error/state). url is a start_url or an authorize_url
        (its start_url is known from the connect's answer)."""
        browser = self.browser if browser is BROWSER else browser
        if url.startswith(self.base_url + "/"):
            status, headers, body = self.open_start(url, browser)
            if status != 303:
                raise AssertionError(f"start_url answered {status}: {body}")
            url = headers["location"]
        else:
            with self._lock:
                start = self._starts.pop(url_state(url), None)
            if start is not None and browser is not None:
                status, _, body = self.open_start(start, browser)
                if status != 303:
                    raise AssertionError(f"start_url answered {status}: {body}")
        status, headers, body = self.sf_get(url)
        if status not in (301, 302, 303) or "location" not in headers:
            raise AssertionError(f"authorize answered {status}: {body[:500]}")
        return headers["location"]

    def follow_callback(self, callback_url, accept_json=False, browser=BROWSER):
        """Requests the callback URL (through nginx) in browser; answers
        request()'s triple."""
        u = urllib.parse.urlsplit(callback_url)
        path = u.path + ("?" + u.query if u.query else "")
        headers = {"Accept": "application/json"} if accept_json else None
        return self.request("GET", path, headers=headers, browser=browser)

    def connect_org(self, org, key, body=None, accept_json=False):
        """connect → start_url → authorize at the simulator → callback, in the
        stack's browser. Answers the callback's (status, headers, body)."""
        status, _, answer = self.request(
            "POST", f"/api/v1/orgs/{org}/integrations/salesforce/connect", key=key,
            body=body if body is not None else {})
        if status != 200:
            raise AssertionError(f"connect answered {status}: {answer}")
        return self.follow_callback(self.authorize(answer["start_url"]), accept_json)

    # ------------------------------------------------------------ grant invariant

    def _has_column(self, table, column):
        return bool(self.psql(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
            f"AND table_name = '{table}' AND column_name = '{column}'"))

    @staticmethod
    def _fp_hex(value):
        """A stored fingerprint as lower-case hex: bytea (\\x...), hex text,
        or base64/base64url text. None when it is none of these."""
        v = (value or "").strip()
        if v.startswith("\\x"):
            v = v[2:]
        if v and re.fullmatch(r"[0-9A-Fa-f]+", v) and len(v) % 2 == 0:
            return v.lower()
        try:
            raw = base64.urlsafe_b64decode(v.replace("+", "-").replace("/", "_")
                                           + "=" * (-len(v) % 4))
        except (ValueError, TypeError):
            return None
        return raw.hex() if raw else None

    def grant_invariant_problems(self, sf_org_id=None, min_fp_hex=8):
        """Checks "every grant alive at the simulator is the stored one":
        each live grant's current refresh token (fakesf GET grants: not
        revoked, with a refresh_token) is stored in exactly one integrations
        row, and each row holding a refresh token holds a live grant's current
        one. Rows are matched by refresh_token_fp (a prefix of the SHA-256 of
        the refresh token, at least min_fp_hex hex digits). Answers a list of
        problems ([] when it holds), or None when it cannot be checked (no
        refresh_token_fp column, or no simulator). sf_org_id limits both
        sides to one Salesforce OrgID."""
        if not self.fakesf_info or not self._has_column("integrations", "refresh_token_fp"):
            return None
        grants = self.fakesf("GET", "grants")
        issued = set(self.fakesf("GET", "tokens").get("refresh_tokens", []))
        live = {}
        for g in grants:
            if g.get("revoked") or not g.get("refresh_token"):
                continue
            if sf_org_id and g.get("org_id") != sf_org_id:
                continue
            live[g["refresh_token"]] = g
        current = {g.get("refresh_token") for g in grants if g.get("refresh_token")}
        revoked = {g.get("refresh_token") for g in grants
                   if g.get("revoked") and g.get("refresh_token")}
        where = "i.refresh_token_enc IS NOT NULL"
        if sf_org_id:
            where += f" AND i.sf_org_id = '{sf_org_id}'"
        rows = self.psql("SELECT o.slug, i.status, coalesce(i.sf_org_id, ''), "
                         "coalesce(i.refresh_token_fp::text, '') FROM integrations i "
                         f"JOIN orgs o ON o.id = i.org_id WHERE {where} ORDER BY o.slug")
        digests = {t: hashlib.sha256(t.encode()).hexdigest() for t in issued | set(live)}
        problems = []
        stored = {}          # live refresh token -> [slugs]
        for slug, status, org_id, fp in rows:
            fp_hex = self._fp_hex(fp)
            where_row = f"org {slug} ({status}, {org_id or 'no OrgID'})"
            if fp_hex is None or len(fp_hex) < min_fp_hex:
                problems.append(f"{where_row}: refresh_token_fp {fp!r} is not a fingerprint")
                continue
            hits = [t for t, d in digests.items() if d.startswith(fp_hex)]
            alive = [t for t in hits if t in live]
            if alive:
                stored.setdefault(alive[0], []).append(slug)
            elif not hits:
                problems.append(f"{where_row}: stored refresh token was never issued "
                                "by the simulator")
            elif any(t in revoked for t in hits):
                problems.append(f"{where_row}: stored refresh token's grant is revoked")
            elif not any(t in current for t in hits):
                problems.append(f"{where_row}: stored refresh token was superseded "
                                "(rotated away): the grant is lost")
            else:
                problems.append(f"{where_row}: stored refresh token is not alive")
        for token, g in live.items():
            slugs = stored.get(token, [])
            if not slugs:
                problems.append(f"grant {g.get('org_id')}/{g.get('user_id')} is alive at "
                                "the simulator but no row stores its refresh token")
            elif len(slugs) > 1:
                problems.append(f"grant {g.get('org_id')}: its refresh token is stored "
                                f"by {len(slugs)} rows ({', '.join(slugs)})")
        return problems

    def assert_grant_invariant(self, sf_org_id=None):
        """grant_invariant_problems() as an assertion; raises unittest.SkipTest
        when it cannot be checked (no refresh_token_fp column yet)."""
        problems = self.grant_invariant_problems(sf_org_id)
        if problems is None:
            import unittest
            raise unittest.SkipTest("grant invariant: no integrations.refresh_token_fp "
                                    "column (or no simulator)")
        if problems:
            raise AssertionError("grant invariant broken:\n  " + "\n  ".join(problems))

    # ------------------------------------------------------------ secrets and config

    def _write_secret(self, name, content):
        p = self.path(name)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(p, 0o600)
        return p

    def _write_secrets(self):
        self._write_secret("token.key", base64.b64encode(os.urandom(32)).decode() + "\n")
        self._write_secret("client_secret", CLIENT_SECRET + "\n")
        self._write_secret("webhook_secret", "test-webhook-secret\n")

    def new_token_key(self, name):
        """Writes another token key file (for rotation tests); answers its path."""
        return self._write_secret(name, base64.b64encode(os.urandom(32)).decode() + "\n")

    def config_values(self, socket_path):
        fport = self.fakesf_port or 9
        values = {
            "database_url": self.database_url,
            "listen": f"unix:{socket_path}" if socket_path.startswith("/") else socket_path,
            "workers": str(self.workers),
            "public_base_url": self.base_url,
            "salesforce_client_id": CLIENT_ID,
            "salesforce_client_secret_file": self.path("client_secret"),
            "salesforce_login_url": f"https://login.localhost:{fport}",
            "salesforce_sandbox_login_url": f"https://test.localhost:{fport}",
            "salesforce_allowed_hosts": "login.localhost test.localhost *.my.localhost",
            "token_key_file": self.path("token.key"),
            "http_timeout_ms": "5000",
            "refresh_lock_timeout_ms": "10000",
            "allowed_return_origins": RETURN_ORIGIN,
            "cors_allowed_origins": CORS_ORIGIN,
            "log_level": "info",
        }
        if self.ca_file:
            values["tls_ca_file"] = self.ca_file
        for k, v in self.config_overrides.items():
            if v is None:
                values.pop(k, None)
            else:
                values[k] = str(v)
        # A refresh's own timeout (30 s by default) follows http_timeout_ms
        # here, so that the suites' timeouts stay short; a test may set it.
        if "refresh_timeout_ms" not in self.config_overrides:
            values["refresh_timeout_ms"] = values["http_timeout_ms"]
        return values

    def write_config(self, path, socket_path):
        values = self.config_values(socket_path)
        self._write_config_file(path, values)
        if self.pg_proxy is not None and self.daemon is not None and \
                path == self.daemon.config_path:
            if "database_url" not in self.config_overrides:
                values["database_url"] = self.direct_database_url
            self._write_config_file(self.admin_config_path, values)

    @staticmethod
    def _write_config_file(path, values):
        lines = ["# written by tests/integration/harness.py"]
        lines += [f"{k} = {v}" for k, v in values.items()]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o600)

    # ------------------------------------------------------------ nginx

    def _render_nginx(self, prefix, listen, socket_path):
        with open(os.path.join(REPO, "nginx", "sfconnect-dev.conf.in")) as f:
            text = f.read()
        webroot = os.path.join(REPO, "web")
        has_web = os.path.exists(os.path.join(webroot, "index.html"))
        out = []
        for line in text.splitlines():
            if line.startswith("#web#"):
                if not has_web:
                    continue
                line = line[len("#web#"):]
            out.append(line)
            if self.nginx_extra and line.strip() == "server_name localhost;":
                out.append(self.nginx_extra)
        text = "\n".join(out) + "\n"
        if not socket_path.startswith("/"):          # fastcgi_tcp: "host:port"
            text = text.replace("unix:@SOCKET@", socket_path)
        for k, v in (("@PREFIX@", prefix), ("@LISTEN@", listen), ("@SOCKET@", socket_path),
                     ("@WEBROOT@", webroot), ("@USER_LINE@", "user root;" if IS_ROOT else "")):
            text = text.replace(k, v)
        left = re.findall(r"@[A-Z_]+@", text)
        if left:
            raise RuntimeError(f"nginx template: unknown placeholders {left}")
        with open(os.path.join(prefix, "nginx.conf"), "w") as f:
            f.write(text)

    def _start_nginx(self, name, socket_path, port=None):
        prefix = self.path(name)
        os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
        for attempt in range(8):
            p = port or free_port()
            self._render_nginx(prefix, f"127.0.0.1:{p}", socket_path)
            err = os.path.join(prefix, "error.log")
            argv = ["nginx", "-p", prefix + "/", "-c", os.path.join(prefix, "nginx.conf"),
                    "-e", err]
            if shutil.which("nginx") is None and os.path.exists("/usr/sbin/nginx"):
                argv[0] = "/usr/sbin/nginx"
            log = open(os.path.join(prefix, "stderr.log"), "ab")
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
            log.close()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                try:
                    with socket.create_connection(("127.0.0.1", p), timeout=1):
                        pass
                    # The port answers; make sure it is ours (it is if nginx still runs).
                    time.sleep(0.05)
                    if proc.poll() is None:
                        self.nginx.append((proc, prefix, p))
                        return p
                except OSError:
                    time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            text = _tail(err) + _tail(os.path.join(prefix, "stderr.log"))
            if "Address already in use" in text and port is None:
                # Someone took the probed port: truncate the log, try another.
                open(err, "w").close()
                continue
            raise RuntimeError(f"nginx did not start on 127.0.0.1:{p}:\n{text}")
        raise RuntimeError("nginx: no free port found")

    # ------------------------------------------------------------ daemon(s)

    def wait_healthy(self, timeout=None, port=None):
        if timeout is None:
            timeout = 120 if os.environ.get("SFC_WRAPPER") else 30
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for d in (self.daemon, self.daemon2):
                if d is not None and d.proc is not None and d.proc.poll() is not None:
                    raise RuntimeError(f"{d.name} exited {d.proc.returncode}:\n"
                                       + _tail(d.log_path))
            try:
                last = self.request("GET", "/healthz", port=port, timeout=10)
                if last[0] == 200:
                    return last
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"/healthz not 200 after {timeout}s: {last}\n"
                           + _tail(self.daemon.log_path))

    def restart_daemon(self, config=None, daemon_env=None):
        """Stops sfconnectd (SIGTERM) and starts it again, optionally with more
        config overrides or environment. Answers the stop's exit code."""
        if config:
            self.config_overrides.update(config)
        if daemon_env:
            self.daemon_env.update(daemon_env)
        code = self.daemon.stop()
        if code not in (None, 0, -signal.SIGTERM):
            self.problems.append(f"sfconnectd exited {code} after SIGTERM (restart)")
        self.write_config(self.daemon.config_path, self.daemon.socket_path)
        self.daemon.start()
        self.wait_healthy()
        return code

    def start_second_daemon(self, config=None):
        """A second sfconnectd on its own socket and its own nginx (port2),
        sharing the database: a second "host". request(..., port=stack.port2)."""
        if self.daemon2 is None:
            sock = self.path("sfconnectd2.sock")
            self.daemon2 = Daemon(self, "sfconnectd2", sock, self.path("sfconnectd2.conf"),
                                  self.path("sfconnectd2.log"))
            self.port2 = self._start_nginx("nginx2", sock)
        saved = dict(self.config_overrides)
        self.config_overrides.update(config or {})
        try:
            self.write_config(self.daemon2.config_path, self.daemon2.socket_path)
        finally:
            self.config_overrides = saved
        if not self.daemon2.alive():
            self.daemon2.start()
        self.wait_healthy(port=self.port2)
        return self.port2

    def stop_second_daemon(self):
        if self.daemon2 is not None:
            code = self.daemon2.stop()
            if code not in (None, 0, -signal.SIGTERM):
                self.problems.append(f"sfconnectd2 exited {code} after SIGTERM")
            return code
        return None

    def daemon_log(self, which=1):
        d = self.daemon if which == 1 else self.daemon2
        return self._read(d.log_path) if d else ""

    def checker_pid(self):
        """The background checker's PID, from its last checker_started log
        line (None before one)."""
        pid = None
        for line in self.daemon_log().splitlines():
            if '"checker_started"' in line:
                try:
                    pid = int(json.loads(line)["pid"])
                except (ValueError, KeyError):
                    pass
        return pid

    def nginx_error_log(self):
        return "".join(self._read(os.path.join(prefix, "error.log"))
                       for _, prefix, _ in self.nginx)

    @staticmethod
    def _read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # ------------------------------------------------------------ admin CLI

    def _run(self, argv, cwd=None, env=None, timeout=120):
        _verbose("run " + " ".join(shlex.quote(a) for a in argv))
        p = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env,
                           stdin=subprocess.DEVNULL, timeout=timeout)
        if p.returncode != 0:
            raise CommandError(argv, p.returncode, p.stdout, p.stderr)
        return p.stdout

    def admin_run(self, *args, env=None):
        """Runs sfconnect-admin; answers the CompletedProcess whatever its status."""
        argv = [self.bin("sfconnect-admin"), "-c", self.admin_config_path, *args]
        _verbose("run " + " ".join(shlex.quote(a) for a in argv))
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, **(env or {})), timeout=120)

    def admin(self, *args):
        """Runs sfconnect-admin; answers its stdout, raises CommandError on failure."""
        p = self.admin_run(*args)
        if p.returncode != 0:
            raise CommandError(["sfconnect-admin", *args], p.returncode, p.stdout, p.stderr)
        return p.stdout

    def create_org(self, slug, name=None):
        args = ["org", "create", slug]
        if name:
            args += ["--name", name]
        return self.admin(*args)

    def create_key(self, org, role, label=None):
        """A new API key (org None for an operator key); answers the key."""
        args = ["key", "create"]
        if org is not None:
            args += ["--org", org]
        args += ["--role", role]
        if label:
            args += ["--label", label]
        out = self.admin(*args).split()
        if not out:
            raise AssertionError("sfconnect-admin key create printed nothing")
        return out[-1]

    # ------------------------------------------------------------ HTTP

    def request(self, method, path, key=None, body=None, headers=None, raw_body=None,
                port=None, timeout=30, source_address=None, browser=BROWSER):
        """One HTTP request through nginx. body is sent as JSON (with its
        Content-Type); raw_body (bytes or str) as it is. Answers (status,
        headers with lower-case names, parsed JSON or text). browser (a
        Browser, or None for none) sends and keeps cookies; by default the
        stack's own does on the OAuth paths. A connect's start_url is noted
        for authorize()."""
        if browser is BROWSER:
            browser = self.browser if path.startswith(OAUTH_PREFIX) else None
        hdrs = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif raw_body is not None:
            data = raw_body.encode() if isinstance(raw_body, str) else raw_body
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        if browser is not None and browser.cookie_header(path.split("?")[0]):
            hdrs["Cookie"] = browser.cookie_header(path.split("?")[0])
        hdrs.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout,
                                          source_address=source_address)
        try:
            try:
                conn.request(method, path, body=data, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                pass   # the server answered early (e.g. 413): read what it said
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        out_headers = {}
        for k, v in resp.getheaders():
            k = k.lower()
            out_headers[k] = f"{out_headers[k]}, {v}" if k in out_headers else v
        text = raw.decode("utf-8", errors="replace")
        _record_response(method, path, data, resp.status, out_headers, text)
        parsed = text
        if "json" in out_headers.get("content-type", "") or text[:1] in ("{", "["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
        if browser is not None:
            browser.store(resp.msg.get_all("Set-Cookie") or [])
        if method == "POST" and resp.status == 200 and isinstance(parsed, dict) and \
                path.split("?")[0].endswith("/integrations/salesforce/connect") and \
                "start_url" in parsed and url_state(parsed.get("authorize_url", "")):
            with self._lock:
                self._starts[url_state(parsed["authorize_url"])] = parsed["start_url"]
        return resp.status, out_headers, parsed


    # ------------------------------------------------------------ scale out (issue 14, item 7)

    # The upstream's server parameters, as in nginx/sfconnect.conf.
    UPSTREAM_SERVER_OPTS = "max_fails=3 fail_timeout=10s"

    @property
    def upstream_log_path(self):
        """nginx's log of each request's upstream (after start_upstream())."""
        return self.path("nginx", "upstream.log")

    def start_upstream(self, config=None, timeout=30):
        """A second sfconnectd (daemon2: its own socket, the same database)
        and, in the stack's nginx, one `upstream sfconnect` over both
        sockets: requests to stack.port are spread over two "hosts". nginx
        reloads (SIGHUP) and logs each request's upstream to
        upstream_log_path (see upstream_log())."""
        if self.daemon2 is None:
            self.daemon2 = Daemon(self, "sfconnectd2", self.path("sfconnectd2.sock"),
                                  self.path("sfconnectd2.conf"), self.path("sfconnectd2.log"))
        self.start_second_daemon(config)      # daemon2 exists: no second nginx
        socks = (self.daemon.socket_path, self.daemon2.socket_path)
        if not socks[0].startswith("/"):
            raise RuntimeError("start_upstream() needs unix sockets (no fastcgi_tcp)")
        proc, prefix, _ = self.nginx[0]
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf) as f:
            text = f.read()
        servers = "".join(f"        server unix:{s} {self.UPSTREAM_SERVER_OPTS};\n"
                          for s in socks)
        head = ("    log_format sfc_upstream '$msec $request_time $status $request_method "
                "$uri \"$http_x_sfc_test\" \"$upstream_addr\" \"$upstream_status\"';\n"
                f"    access_log {self.upstream_log_path} sfc_upstream;\n"
                f"    upstream sfconnect {{\n{servers}    }}\n\n")
        text = text.replace(f"fastcgi_pass unix:{socks[0]};", "fastcgi_pass sfconnect;")
        text = text.replace("    server {\n", head + "    server {\n", 1)
        with open(conf, "w") as f:
            f.write(text)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.request("GET", "/healthz", timeout=10)
            if any(socks[1] in a for e in self.upstream_log() for a in e["addrs"]):
                return
            time.sleep(0.1)
        raise RuntimeError(f"nginx did not take the upstream within {timeout}s:\n"
                           + _tail(os.path.join(prefix, "error.log")))

    def upstream_log(self):
        """nginx's upstream log: one dict per request (at: epoch seconds it
        ended, seconds, status, method, uri, test: its X-Sfc-Test header,
        addrs: the upstream sockets tried in order, statuses: their
        answers)."""
        entries = []
        line_re = re.compile(r'(\S+) (\S+) (\d+) (\S+) (\S+) "([^"]*)" "([^"]*)" "([^"]*)"')
        for line in self._read(self.upstream_log_path).splitlines():
            m = line_re.fullmatch(line)
            if not m:
                continue
            split = lambda v: [] if v == "-" else [x.strip() for x in v.split(",")]  # noqa: E731
            entries.append({"at": float(m[1]), "seconds": float(m[2]), "status": int(m[3]),
                            "method": m[4], "uri": m[5], "test": m[6],
                            "addrs": [a.removeprefix("unix:") for a in split(m[7])],
                            "statuses": split(m[8])})
        return entries


# ---------------------------------------------------------------- --serve

def _serve(args):
    stack = Stack(workers=args.workers, port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if not port_is_free(args.port):
        print(f"run-local: 127.0.0.1:{args.port} is in use (set SFC_PORT to another port)",
              file=sys.stderr)
        return 1
    print("run-local: starting PostgreSQL, the Salesforce simulator, nginx and sfconnectd...",
          flush=True)
    try:
        stack.start()
    except Exception as e:
        print(f"run-local: start-up failed: {e}", file=sys.stderr)
        return 1
    try:
        stack.create_org("demo", "Demo Inc")
        keys = {role: stack.create_key("demo", role, f"demo-{role}")
                for role in ("admin", "viewer", "service")}
        keys["operator"] = stack.operator_key
        base = stack.base_url
        api = f"{base}/api/v1/orgs/demo/integrations/salesforce"
        ca = stack.ca_file or "(no simulator)"
        web = os.path.exists(os.path.join(REPO, "web", "index.html"))
        print(f"""
sfconnect is running at {base} (everything lives in {stack.dir}).

API keys for org "demo":
  ADMIN={keys['admin']}
  VIEWER={keys['viewer']}
  SERVICE={keys['service']}
  OPERATOR={keys['operator']}

Paste these into another shell:
  export ADMIN={keys['admin']} VIEWER={keys['viewer']} SERVICE={keys['service']} OPERATOR={keys['operator']}

  # status of the demo org (disconnected at first)
  curl -s -H "Authorization: Bearer $VIEWER" {api}

  # connect: sfconnect answers the Salesforce authorize_url and a start_url on
  # its own origin, which a browser opens (the callback needs its cookie)
  START=$(curl -s -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \\
      -d '{{"return_to":"/admin/"}}' {api}/connect | python3 -c 'import sys,json; print(json.load(sys.stdin)["start_url"])')

  # play the browser with a cookie jar: start_url sets the cookie and 303s to the
  # simulator's sign-in, which approves and redirects to our callback (the cookie
  # goes along), which exchanges the code and redirects to return_to with the OrgID
  curl -s --cacert {ca} -c jar -b jar -L -o /dev/null -w '%{{url_effective}}\\n' "$START"

  # status again: connected, with the 18-character salesforce_org_id
  curl -s -H "Authorization: Bearer $VIEWER" {api}

  # a fresh access token for the product's sync workers
  curl -s -H "Authorization: Bearer $SERVICE" {api}/token

  # disconnect (revokes the token at Salesforce)
  curl -s -X DELETE -H "Authorization: Bearer $ADMIN" {api}

  # operator views
  curl -s -H "Authorization: Bearer $OPERATOR" {base}/api/v1/admin/integrations
  curl -s {base}/healthz
""", flush=True)
        if web:
            print(f"Admin page, signed in as the demo admin (the key is in the fragment, never sent):\n"
                  f"  {base}/admin/#key={keys['admin']}&org=demo\n", flush=True)
        print("Logs: " + stack.daemon.log_path + "   Press Ctrl-C to stop.", flush=True)
        while not stop.wait(1):
            if not stack.daemon.alive():
                print("run-local: sfconnectd exited:\n" + _tail(stack.daemon.log_path),
                      file=sys.stderr)
                break
    finally:
        print("\nrun-local: stopping...", flush=True)
        try:
            stack.stop()
        except AssertionError as e:
            print(f"run-local: {e}", file=sys.stderr)
            return 1
    print("run-local: stopped.")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="sfconnect test stack")
    ap.add_argument("--serve", action="store_true", help="run the stack until Ctrl-C")
    ap.add_argument("--port", type=int, default=int(os.environ.get("SFC_PORT", "8080")))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.serve:
        ap.print_help()
        return 2
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
