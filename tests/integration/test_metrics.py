"""/metrics: the Prometheus text exposition format (0.0.4), read by a strict
parser of our own (and by `promtool check metrics` when it is installed),
and counters that add up across the workers of one sfconnectd."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

STACK = None
WORKERS = 3
SF = "/api/v1/orgs/{}/integrations/salesforce"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def setUpModule():
    global STACK
    STACK = Stack(workers=WORKERS)
    STACK.start()


def tearDownModule():
    if STACK is not None:
        STACK.stop()


# ---------------------------------------------------------------- the parser

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE_RE = re.compile(r"[+-]?(Inf|NaN|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class FormatError(AssertionError):
    pass


def _value(text, where):
    if not VALUE_RE.fullmatch(text):
        raise FormatError(f"{where}: bad value {text!r}")
    return float(text.replace("Inf", "inf"))


def _labels(text, where):
    """Parses 'a="x",b="y"' (the inside of the braces) into a dict."""
    labels, i = {}, 0
    while i < len(text):
        m = re.compile(LABEL + '="').match(text, i)
        if not m:
            raise FormatError(f"{where}: bad label at {text[i:]!r}")
        name = m.group(0)[:-2]
        i = m.end()
        value = []
        while True:
            if i >= len(text):
                raise FormatError(f"{where}: unterminated label value")
            ch = text[i]
            if ch == "\\":
                esc = text[i + 1:i + 2]
                if esc not in ("\\", '"', "n"):
                    raise FormatError(f"{where}: bad escape \\{esc}")
                value.append("\n" if esc == "n" else esc)
                i += 2
            elif ch == '"':
                i += 1
                break
            elif ch == "\n":
                raise FormatError(f"{where}: raw newline in a label value")
            else:
                value.append(ch)
                i += 1
        if name in labels:
            raise FormatError(f"{where}: label {name} twice")
        if name.startswith("__"):
            raise FormatError(f"{where}: reserved label name {name}")
        labels[name] = "".join(value)
        if i < len(text):
            if text[i] != ",":
                raise FormatError(f"{where}: expected ',' at {text[i:]!r}")
            i += 1
    return labels


def _family_of(name, types):
    """The family a sample name belongs to (histogram suffixes stripped)."""
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    raise FormatError(f"sample {name} has no # TYPE line before it")


def parse(text):
    """Parses an exposition strictly. Answers {family: {"type", "help",
    "samples": [(name, labels, value)]}}. Raises FormatError on any
    deviation: a missing final newline, blank lines, HELP or TYPE after the
    family's samples or twice, interleaved families, duplicate series,
    bad names, escapes or values, timestamps (we never send them),
    inconsistent histograms, negative counters."""
    if not text.endswith("\n"):
        raise FormatError("the exposition must end with a newline")
    families, types, order, seen = {}, {}, [], set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}"
        if line == "":
            raise FormatError(f"{where}: blank line")
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (" + NAME + r") (.*)", line)
            if not m:
                if re.match(r"# (HELP|TYPE)\b", line):
                    raise FormatError(f"{where}: malformed {line!r}")
                continue   # a plain comment
            kind, name, rest = m.groups()
            fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
            if fam["samples"]:
                raise FormatError(f"{where}: {kind} of {name} after its samples")
            if kind == "TYPE":
                if fam["type"] is not None:
                    raise FormatError(f"{where}: second TYPE for {name}")
                if rest not in TYPES:
                    raise FormatError(f"{where}: unknown type {rest!r}")
                fam["type"] = types[name] = rest
            else:
                if fam["help"] is not None:
                    raise FormatError(f"{where}: second HELP for {name}")
                if re.sub(r"\\[\\n]", "", rest).count("\\"):
                    raise FormatError(f"{where}: bad escape in HELP")
                fam["help"] = rest
            continue
        m = re.fullmatch(r"(" + NAME + r")(\{(.*)\})? (\S+)( (\S+))?", line)
        if not m:
            raise FormatError(f"{where}: not a sample: {line!r}")
        name, _, labeltext, value, _, ts = m.groups()
        if ts is not None:
            raise FormatError(f"{where}: unexpected timestamp")
        labels = _labels(labeltext or "", where)
        family = _family_of(name, types)
        if family != current:
            if family in order:
                raise FormatError(f"{where}: samples of {family} are not together")
            order.append(family)
            current = family
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise FormatError(f"{where}: duplicate series {key}")
        seen.add(key)
        v = _value(value, where)
        ftype = types[family]
        if ftype == "counter" and not (v >= 0):
            raise FormatError(f"{where}: counter {name} is {v}")
        if ftype == "histogram" and name == family:
            raise FormatError(f"{where}: bare sample of histogram {family}")
        if name.endswith("_bucket") and ftype == "histogram" and "le" not in labels:
            raise FormatError(f"{where}: bucket without le")
        families[family]["samples"].append((name, labels, v))
    for name, fam in families.items():
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def check_histogram(name, samples):
    """Buckets ascending and cumulative, a +Inf bucket equal to _count, _sum >= 0,
    for each label set."""
    groups = {}
    for sname, labels, v in samples:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname == name + "_bucket":
            g["buckets"].append((_value(labels["le"], f"{name} le"), v))
        elif sname == name + "_sum":
            g["sum"] = v
        elif sname == name + "_count":
            g["count"] = v
    for rest, g in groups.items():
        where = f"{name}{dict(rest)}"
        bounds = [b for b, _ in g["buckets"]]
        if not bounds or bounds[-1] != math.inf:
            raise FormatError(f"{where}: no +Inf bucket last")
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise FormatError(f"{where}: buckets not strictly ascending: {bounds}")
        counts = [c for _, c in g["buckets"]]
        if counts != sorted(counts):
            raise FormatError(f"{where}: buckets not cumulative: {counts}")
        if g["count"] is None or g["sum"] is None:
            raise FormatError(f"{where}: _sum or _count missing")
        if g["count"] != counts[-1]:
            raise FormatError(f"{where}: _count {g['count']} != +Inf bucket {counts[-1]}")
        if g["sum"] < 0:
            raise FormatError(f"{where}: _sum {g['sum']} < 0")


def scrape():
    st, headers, body = STACK.request("GET", "/metrics")
    if st != 200:
        raise AssertionError(f"/metrics answered {st}: {body}")
    if not headers.get("content-type", "").startswith("text/plain; version=0.0.4"):
        raise AssertionError(f"content type {headers.get('content-type')}")
    return body, parse(body)


def value(families, family, name=None, **labels):
    """The value of the one sample of family named name (default: the family)
    whose labels include labels; 0 when there is none (a counter not yet moved)."""
    name = name or family
    found = [v for n, ls, v in families.get(family, {}).get("samples", [])
             if n == name and all(ls.get(k) == x for k, x in labels.items())]
    if len(found) > 1:
        raise AssertionError(f"{name}{labels} matches {len(found)} samples")
    return found[0] if found else 0


def promtool():
    return shutil.which("promtool")


def crowd(n, fn, threads=10):
    out, lock = [], threading.Lock()
    it = iter(range(n))

    def run():
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            r = fn(i)
            with lock:
                out.append(r)
    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def request_pids(log_text, since_ts, what):
    """PIDs of the daemon's request log lines for `what` ("GET /healthz -> 200")
    at or after since_ts (an ISO timestamp string)."""
    pids = set()
    for line in log_text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "request" and rec.get("msg") == what and rec["ts"] >= since_ts:
            pids.add(rec["pid"])
    return pids


def utc_now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int(t % 1 * 1000)


def connect(slug):
    STACK.create_org(slug)
    admin = STACK.create_key(slug, "admin")
    service = STACK.create_key(slug, "service")
    STACK.fakesf("POST", "config", {"org_id": "new", "user_id": "new"})
    st, headers, body = STACK.connect_org(slug, admin)
    assert st == 303 and "salesforce=connected" in headers.get("location", ""), (st, headers, body)
    return admin, service


# ---------------------------------------------------------------- tests

class ParserTest(unittest.TestCase):
    """The parser itself refuses what it must refuse."""

    GOOD = ('# HELP a_total A.\n# TYPE a_total counter\na_total{x="q\\"\\\\\\n"} 1\n'
            '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\n'
            'h_sum 0.5\nh_count 2\n')

    def test_accepts_good(self):
        fams = parse(self.GOOD)
        self.assertEqual(fams["a_total"]["samples"][0][1], {"x": 'q"\\\n'})

    def test_refuses_bad(self):
        bad = {
            "no final newline": self.GOOD[:-1],
            "blank line": self.GOOD.replace("a_total{", "\na_total{"),
            "no type": "x 1\n",
            "bad escape": '# TYPE a gauge\na{x="\\t"} 1\n',
            "count != inf": self.GOOD.replace("h_count 2", "h_count 3"),
            "not cumulative": self.GOOD.replace('le="1"} 1', 'le="1"} 3'),
            "no inf": self.GOOD.replace('h_bucket{le="+Inf"} 2\n', ""),
            "negative sum": self.GOOD.replace("h_sum 0.5", "h_sum -1"),
            "duplicate": self.GOOD.replace("h_sum", 'a_total{x="q\\"\\\\\\n"} 1\nh_sum'),
            "type after sample": self.GOOD + "# TYPE a_total counter\n",
            "interleaved": self.GOOD + 'a_total{x="z"} 1\n',
            "bad value": "# TYPE a gauge\na 1,5\n",
            "negative counter": "# TYPE a_total counter\na_total -1\n",
            "timestamp": "# TYPE a gauge\na 1 1700000000\n",
        }
        for what, text in bad.items():
            with self.subTest(what):
                with self.assertRaises(FormatError):
                    parse(text)


class MetricsTest(unittest.TestCase):
    def test_exposition_is_strict_and_complete(self):
        text, fams = scrape()
        for name in ("sfconnect_build_info", "sfconnect_http_requests_total",
                     "sfconnect_http_request_duration_seconds",
                     "sfconnect_salesforce_calls_total",
                     "sfconnect_salesforce_call_duration_seconds",
                     "sfconnect_refreshes_total", "sfconnect_db_errors_total",
                     "sfconnect_db_reconnects_total", "sfconnect_worker_restarts_total",
                     "sfconnect_read_cache_total",
                     "sfconnect_integrations", "sfconnect_check_lag_seconds",
                     "sfconnect_database_up", "sfconnect_webhook_outbox",
                     "sfconnect_webhook_deliveries_total"):
            with self.subTest(name):
                self.assertIn(name, fams)
                self.assertTrue(fams[name]["help"], f"{name} has no HELP")
                self.assertTrue(name.startswith("sfconnect_"))
                if fams[name]["type"] == "counter":
                    self.assertTrue(name.endswith("_total"), name)
        with open(os.path.join(REPO, "configure.ac")) as f:
            version = re.search(r"AC_INIT\(\[sfconnect\], \[([^]]+)\]", f.read()).group(1)
        self.assertEqual(value(fams, "sfconnect_build_info", version=version), 1)
        self.assertEqual(value(fams, "sfconnect_database_up"), 1)
        self.assertGreaterEqual(value(fams, "sfconnect_check_lag_seconds"), 0)
        routes = {ls["route"] for n, ls, _ in
                  fams["sfconnect_http_request_duration_seconds"]["samples"]}
        self.assertIn("/healthz", routes)
        self.assertIn("unmatched", routes)
        self.assertIn("/api/v1/orgs/{org}/integrations/salesforce/token", routes)

    @unittest.skipUnless(promtool(), "promtool is not installed (scripts/deps.sh)")
    def test_promtool_accepts_it(self):
        text, _ = scrape()
        p = subprocess.run([promtool(), "check", "metrics"], input=text, text=True,
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    @unittest.skipUnless(promtool(), "promtool is not installed (scripts/deps.sh)")
    def test_alert_rules_are_valid(self):
        rules = os.path.join(REPO, "docs", "prometheus-alerts.yml")
        p = subprocess.run([promtool(), "check", "rules", rules], text=True,
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_requests_add_up_across_workers(self):
        _, before = scrape()
        since = utc_now()
        results = crowd(50, lambda i: STACK.request("GET", "/healthz"))
        self.assertEqual([r[0] for r in results], [200] * 50)
        nf = STACK.request("GET", "/no/such/endpoint")[0]
        self.assertEqual(nf, 404)
        _, after = scrape()
        labels = {"method": "GET", "route": "/healthz"}
        self.assertEqual(value(after, "sfconnect_http_requests_total", code="200", **labels)
                         - value(before, "sfconnect_http_requests_total", code="200",
                                 **labels), 50)
        h = "sfconnect_http_request_duration_seconds"
        self.assertEqual(value(after, h, h + "_count", **labels)
                         - value(before, h, h + "_count", **labels), 50)
        self.assertGreater(value(after, h, h + "_sum", **labels),
                           value(before, h, h + "_sum", **labels))
        self.assertEqual(value(after, "sfconnect_http_requests_total", route="unmatched",
                               code="404")
                         - value(before, "sfconnect_http_requests_total", route="unmatched",
                                 code="404"), 1)
        # The scrape before this one is counted under its own route.
        self.assertGreaterEqual(value(after, "sfconnect_http_requests_total",
                                      route="/metrics", code="200"), 1)
        pids = request_pids(STACK._read(STACK.daemon.log_path), since, "GET /healthz -> 200")
        self.assertGreater(len(pids), 1, f"one worker served all 50: {pids}; the sum "
                           "would not show the aggregation")

    @staticmethod
    def force(service):
        """A forced refresh of metrics-sf's current token generation."""
        path = SF.format("metrics-sf") + "/token"
        st, _, body = STACK.request("GET", path, key=service)
        assert st == 200, body
        return STACK.request("GET", path + "?force_refresh=1&generation="
                             f"{body['token_generation']}", key=service)

    def test_read_cache_counted(self):
        # A fresh key: each worker misses once at most, then hits.
        STACK.create_org("m-cache", "Cache")
        viewer = STACK.create_key("m-cache", "viewer")
        _, before = scrape()
        n = 30
        for _ in range(n):
            self.assertEqual(STACK.request("GET", SF.format("m-cache"), key=viewer)[0], 200)
        _, after = scrape()
        hits = value(after, "sfconnect_read_cache_total", result="hit") - \
            value(before, "sfconnect_read_cache_total", result="hit")
        misses = value(after, "sfconnect_read_cache_total", result="miss") - \
            value(before, "sfconnect_read_cache_total", result="miss")
        self.assertEqual(hits + misses, n)
        self.assertLessEqual(misses, WORKERS)

    def test_salesforce_fault_counted(self):
        _, service = connect("metrics-sf")
        _, before = scrape()
        calls = "sfconnect_salesforce_calls_total"
        self.assertGreaterEqual(value(before, calls, endpoint="token_authorization_code",
                                      outcome="ok"), 1)
        self.assertGreaterEqual(value(before, calls, endpoint="identity", outcome="ok"), 1)
        st, _, body = self.force(service)
        self.assertEqual(st, 200, body)
        _, mid = scrape()
        self.assertEqual(value(mid, calls, endpoint="token_refresh", outcome="ok")
                         - value(before, calls, endpoint="token_refresh", outcome="ok"), 1)
        self.assertEqual(value(mid, "sfconnect_refreshes_total", outcome="ok")
                         - value(before, "sfconnect_refreshes_total", outcome="ok"), 1)
        STACK.fakesf("POST", "fault", {"endpoint": "token_refresh", "kind": "status500",
                                       "count": 1})
        try:
            st, _, body = self.force(service)
        finally:
            STACK.fakesf("POST", "fault/clear")
        self.assertEqual(st, 502, body)
        _, after = scrape()
        d = lambda fam, **ls: value(after, fam, **ls) - value(mid, fam, **ls)  # noqa: E731
        self.assertEqual(d(calls, endpoint="token_refresh", outcome="transient"), 1)
        self.assertEqual(d(calls, endpoint="token_refresh", outcome="ok"), 0)
        self.assertEqual(d("sfconnect_refreshes_total", outcome="transient"), 1)
        h = "sfconnect_salesforce_call_duration_seconds"
        self.assertEqual(d(h, name=h + "_count", endpoint="token_refresh"), 1)
        self.assertEqual(d("sfconnect_http_requests_total", method="GET",
                           route=SF.format("{org}") + "/token",
                           code="502"), 1)

    def test_check_lag_follows_the_oldest_check(self):
        connect("metrics-lag")
        STACK.psql("UPDATE integrations SET last_checked_at = now() - interval '1 hour' "
                   "WHERE org_id = (SELECT id FROM orgs WHERE slug = 'metrics-lag')")
        try:
            _, fams = scrape()
            lag = value(fams, "sfconnect_check_lag_seconds")
            self.assertGreaterEqual(lag, 3600)
            self.assertLess(lag, 3600 * 2)
        finally:
            STACK.psql("UPDATE integrations SET last_checked_at = now() "
                       "WHERE org_id = (SELECT id FROM orgs WHERE slug = 'metrics-lag')")

    def test_z_killed_worker_counted(self):
        _, before = scrape()
        pids = STACK.daemon.settle()
        self.assertGreaterEqual(len(pids), WORKERS)
        os.kill(pids[0], signal.SIGKILL)    # a child of the daemon we started
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = STACK.daemon.worker_pids()
            if len(now) >= len(pids) and pids[0] not in now:
                break
            time.sleep(0.1)
        _, after = scrape()
        self.assertEqual(value(after, "sfconnect_worker_restarts_total")
                         - value(before, "sfconnect_worker_restarts_total"), 1)
        # The counters outlive the worker that counted them.
        self.assertGreaterEqual(value(after, "sfconnect_http_requests_total",
                                      route="/metrics", code="200"),
                                value(before, "sfconnect_http_requests_total",
                                      route="/metrics", code="200"))

    def test_zz_database_outage_counted(self):
        _, before = scrape()
        STACK.stop_postgres()
        try:
            for _ in range(WORKERS + 1):
                STACK.request("GET", "/api/v1/admin/integrations", key=STACK.operator_key)
            text, down = scrape()     # answered without the database
        finally:
            STACK.start_postgres()
        self.assertEqual(value(down, "sfconnect_database_up"), 0)
        self.assertNotIn("sfconnect_integrations", down)
        self.assertGreater(value(down, "sfconnect_db_errors_total", kind="unavailable"),
                           value(before, "sfconnect_db_errors_total", kind="unavailable"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if STACK.request("GET", "/api/v1/admin/integrations",
                             key=STACK.operator_key)[0] == 200:
                break
            time.sleep(0.2)
        _, after = scrape()
        self.assertEqual(value(after, "sfconnect_database_up"), 1)
        self.assertGreater(value(after, "sfconnect_db_reconnects_total"),
                           value(before, "sfconnect_db_reconnects_total"))


if __name__ == "__main__":
    unittest.main()
