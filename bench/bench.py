#!/usr/bin/python3
"""The read path against the stack under it, side by side in one interleaved run.

    bench/bench.py [--quick] [--passes 4] [--duration 10] [--workers 4]
                   [--orgs 10000] [--base DIR] [--no-build]
    bench/bench.py --orgs-scale [--scales 1000,100000] [--base DIR]
    bench/bench.py --million [--requests 1000000]

Builds (make, and bench/baseline.c with cc), starts the test stack
(tests/integration/harness.py) with bulk-seeded orgs (each with its
integration row and two keys), and runs wrk (127.0.0.1 only, -t2) at 16 and
64 connections, every scenario once per pass, passes interleaved:

  A  nginx `return 200`                       (the same nginx as the product)
  B  bench/baseline: a bare libfcgi responder, ~200 B of JSON
  C  the same + one prepared point SELECT over libpq
  H  GET /healthz
  S  GET /api/v1/orgs/bench/integrations/salesforce   (viewer key)
  N  GET /api/v1/orgs/bench/banners                    (viewer key)
  T  GET .../salesforce/token, a fresh token           (service key)

With --base DIR (a built checkout, e.g. `git worktree add DIR main`), a
second stack runs DIR's binaries, seeded alike, and S, N, T run against it
too, in the same passes (S@base ...). Then it times forced refreshes against
the simulator (one at a time, each with the generation the previous one
answered) on each stack. It prints the median over passes of req/s, p50 and
p99 per scenario, the ratios S/C, N/C, T/C, S/B, and each worker's RSS and
private memory (/proc/PID/smaps_rollup) before and after. --quick is one
pass of 3 s. Not part of the test command; stops everything by itself.

--orgs-scale (cost in the number of orgs) and --million (worker memory)
are described in bench/scale.py.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from harness import Stack  # noqa: E402
import scale  # noqa: E402

CONNECTIONS = (16, 64)
SF = "/api/v1/orgs/bench/integrations/salesforce"


def fastcgi_params():
    """The fastcgi_param lines nginx sends the product (its first location)."""
    with open(os.path.join(REPO, "nginx", "sfconnect-dev.conf.in")) as f:
        text = f.read()
    block = text[text.index("location / {"):]
    block = block[:block.index("}")]
    return "\n".join(line for line in block.splitlines()
                     if line.strip().startswith("fastcgi_param"))


def nginx_locations():
    """The baselines, served by the product's nginx (the sockets are in the
    stack's directory, the parent of nginx's prefix)."""
    params = fastcgi_params()
    out = ["        location = /bench/a {",
           "            default_type application/json;",
           "            return 200 '{\"ok\":true}\\n';",
           "        }"]
    for name in ("b", "c"):
        out += [f"        location = /bench/{name} {{",
                f"            fastcgi_pass unix:@PREFIX@/../bench-{name}.sock;",
                "            fastcgi_keep_conn off;",
                params,
                "        }"]
    return "\n".join(line for line in out if line)


def build(args):
    if not args.no_build:
        subprocess.run(["make", "-j2"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        if args.base and os.path.exists(os.path.join(args.base, "Makefile")):
            subprocess.run(["make", "-j2"], cwd=args.base, check=True,
                           stdout=subprocess.DEVNULL)
    out = os.path.join(REPO, "bench", "baseline")
    src = os.path.join(REPO, "bench", "baseline.c")
    if args.no_build and os.path.exists(out) and \
            os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    pq = subprocess.run(["pkg-config", "--cflags", "--libs", "libpq", "fcgi"],
                        capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, src] + pq,
                   check=True)
    return out


def seed(stack, n):
    """Org `bench`, connected, with viewer and service keys; n more orgs in
    bulk, each with its integration row and a viewer and a service key."""
    stack.create_org("bench", "Bench")
    admin = stack.create_key("bench", "admin", "bench admin")
    viewer = stack.create_key("bench", "viewer", "bench viewer")
    service = stack.create_key("bench", "service", "bench sync")
    status, _, body = stack.connect_org("bench", admin, accept_json=True)
    assert status == 200, body
    stack.psql(f"""
        INSERT INTO orgs (slug, name)
            SELECT 'org-' || g, 'Org ' || g FROM generate_series(1, {int(n)}) g;
        INSERT INTO integrations (org_id)
            SELECT id FROM orgs WHERE slug LIKE 'org-%';
        INSERT INTO api_keys (id, org_id, role, label, key_hash)
            SELECT 'key_' || substr(md5(r || o.id), 1, 16), o.id, r, 'bench',
                   encode(sha256(convert_to('bench-' || r || o.id, 'UTF8')), 'hex')
            FROM orgs o, unnest(ARRAY['viewer', 'service']) r
            WHERE o.slug LIKE 'org-%';
        ANALYZE;""")
    return viewer, service


def memory(stack):
    """[(pid, rss KiB, private KiB)] of the stack's workers."""
    out = []
    for pid in stack.daemon.worker_pids():
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                text = f.read()
        except OSError:
            continue
        kb = {m.group(1): int(m.group(2))
              for m in re.finditer(r"^(\w+):\s+(\d+) kB", text, re.M)}
        out.append((pid, kb.get("Rss", 0),
                    kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)))
    return out


def ms(text):
    """wrk's latency text (e.g. 812.00us, 1.20ms, 1.01s) in ms."""
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "us" else value * 1000 if m.group(2) == "s" else value


def wrk(url, key, conns, duration):
    argv = ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency"]
    if key:
        argv += ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return rps, p50, p99, int(bad.group(1)) if bad else 0, errors.group(1) if errors else ""


def forced_refreshes(stack, key, n):
    """n forced refreshes one after another (each with the generation the
    previous answer gave, so each reaches the simulator): (per s, p50 ms,
    p99 ms, failures)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    headers = {"Authorization": f"Bearer {key}"}
    conn.request("GET", SF + "/token", headers=headers)
    gen = json.loads(conn.getresponse().read())["token_generation"]
    times, failed = [], 0
    t0 = time.monotonic()
    for _ in range(n):
        t = time.monotonic()
        conn.request("GET", f"{SF}/token?force_refresh=1&generation={gen}",
                     headers=headers)
        resp = conn.getresponse()
        body = json.loads(resp.read())
        times.append((time.monotonic() - t) * 1000)
        if resp.status != 200 or body["token_generation"] != gen + 1:
            failed += 1
        gen = body.get("token_generation", gen)
    total = time.monotonic() - t0
    conn.close()
    times.sort()
    return n / total, times[len(times) // 2], times[min(len(times) - 1,
                                                         int(len(times) * 0.99))], failed


def start_baselines(stack, binary, workers):
    procs = []
    for name, extra in (("b", []), ("c", [stack.direct_database_url, "bench"])):
        sock = stack.path(f"bench-{name}.sock")
        procs.append(subprocess.Popen([binary, sock, str(workers)] + extra,
                                      start_new_session=True))
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
    return procs


def print_memory(label, stacks):
    for name, stack in stacks:
        rows = memory(stack)
        text = ", ".join(f"{rss / 1024:.1f}/{priv / 1024:.1f}" for _, rss, priv in rows)
        print(f"  {label:<7} {name:<5} children (workers, checker) RSS/private MiB: {text}")


def report(results, order):
    print(f"\n{'scenario':<40} " + " ".join(
        f"{'c=' + str(c) + ' req/s':>12} {'p50 ms':>7} {'p99 ms':>7}" for c in CONNECTIONS)
        + f" {'non-2xx':>8}")
    for name, label in order:
        cells, bad = [], 0
        for c in CONNECTIONS:
            runs = results.get((name, c), [])
            if not runs:
                cells.append(f"{'-':>12} {'-':>7} {'-':>7}")
                continue
            cells.append(f"{statistics.median(r[0] for r in runs):12.0f} "
                         f"{statistics.median(r[1] for r in runs):7.2f} "
                         f"{statistics.median(r[2] for r in runs):7.2f}")
            bad += sum(r[3] for r in runs)
        print(f"{name + ' ' + label:<40} " + " ".join(cells) + f" {bad:8d}")


def ratios(results, suffix=""):
    """Each ratio per pass (both sides ran minutes apart at most), then the
    median over passes."""
    def per_pass(num, den, col):
        a, b = results.get((num, c)), results.get((den, c))
        if not a or not b:
            return None
        return statistics.median(x[col] / y[col] for x, y in zip(a, b))

    for c in CONNECTIONS:
        parts = []
        for num, den in (("S", "C"), ("N", "C"), ("T", "C"), ("S", "B")):
            r = per_pass(num + suffix, den, 0)
            if r is not None:
                parts.append(f"{num}/{den} = {r:.2f}")
        r = per_pass("S" + suffix, "C", 2)
        if r is not None:
            parts.append(f"p99(S)/p99(C) = {r:.2f}")
        print(f"  c={c:<3} {suffix.lstrip('@') + ': ' if suffix else 'new: '}" + ", ".join(parts))
    if suffix:
        for c in CONNECTIONS:
            parts = []
            for name in ("S", "N", "T"):
                r = per_pass(name, name + suffix, 0)
                if r is not None:
                    parts.append(f"{name}/{name}{suffix} = {r:.2f}")
            print(f"  c={c:<3} new vs {suffix.lstrip('@')}: " + ", ".join(parts))


# Issue 13's bars on the read path: (numerator, denominator, column, the
# concurrencies, op, bar). Column 0 is req/s, 2 is p99.
BARS = (("S", "C", 0, CONNECTIONS, ">=", 0.9, "step 2"),
        ("N", "C", 0, CONNECTIONS, ">=", 0.9, "step 2"),
        ("T", "C", 0, CONNECTIONS, ">=", 0.85, "step 2"),
        ("S", "C", 2, (64,), "<=", 1.5, "step 2, p99"),
        ("S", "B", 0, CONNECTIONS, ">=", 0.8, "step 3"),
        ("S", "C", 0, CONNECTIONS, ">=", 1.2, "step 3"))


def bars(results):
    """Each bar, met or not, from the per-pass medians of the ratios."""
    unmet = 0
    for num, den, col, conns, op, bar, step in BARS:
        for c in conns:
            a, b = results.get((num, c)), results.get((den, c))
            if not a or not b:
                continue
            r = statistics.median(x[col] / y[col] for x, y in zip(a, b))
            met = r >= bar if op == ">=" else r <= bar
            unmet += not met
            what = f"{'p99' if col == 2 else ''}({num})/{'p99' if col == 2 else ''}({den})"
            print(f"  bar {step:<12} c={c:<3} {what:<16} = {r:5.2f} {op} {bar}: "
                  f"{'met' if met else 'NOT MET'}")
    return unmet


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 pass of 3 s")
    ap.add_argument("--passes", type=int, default=4)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--orgs", type=int, default=10000)
    ap.add_argument("--refreshes", type=int, default=100)
    ap.add_argument("--base", help="a built checkout to bench side by side (S, N, T)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--orgs-scale", action="store_true",
                    help="issue 13 step 4 instead: costs at --scales orgs (bench/scale.py)")
    ap.add_argument("--scales", default="1000,100000")
    ap.add_argument("--million", action="store_true",
                    help="issue 13 step 6 instead: worker memory over 1,000,000 requests")
    ap.add_argument("--requests", type=int, default=1000000)
    args = ap.parse_args()
    if args.quick:
        args.passes, args.duration, args.refreshes = 1, 3, 20
    if not shutil.which("wrk"):
        print("bench: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    binary = build(args)
    if args.orgs_scale:
        return scale.orgs_scale(args, Stack)
    if args.million:
        return scale.million(args, Stack, seed, memory)
    config = {"log_level": "warn"}
    stack = Stack(workers=args.workers, config=config, nginx_extra=nginx_locations())
    base = Stack(workers=args.workers, config=config, build_dir=args.base) \
        if args.base else None
    procs = []
    try:
        stack.start()
        procs = start_baselines(stack, binary, args.workers)
        viewer, service = seed(stack, args.orgs)
        bviewer = bservice = None
        if base is not None:
            base.start()
            bviewer, bservice = seed(base, args.orgs)
        stacks = [("new", stack)] + ([("base", base)] if base else [])
        url = f"http://127.0.0.1:{stack.port}"
        scen = [("A", "nginx return 200", f"{url}/bench/a", None),
                ("B", "bare libfcgi responder", f"{url}/bench/b", None),
                ("C", "B + one prepared SELECT", f"{url}/bench/c", None),
                ("H", "GET /healthz", f"{url}/healthz", None),
                ("S", "GET .../integrations/salesforce", url + SF, viewer),
                ("N", "GET .../banners", f"{url}/api/v1/orgs/bench/banners", viewer),
                ("T", "GET .../token (fresh)", f"{url}{SF}/token", service)]
        if base is not None:    # each next to its counterpart
            burl = f"http://127.0.0.1:{base.port}"
            scen[5:5] = [("S@base", "(base) status", burl + SF, bviewer)]
            scen[7:7] = [("N@base", "(base) banners",
                          f"{burl}/api/v1/orgs/bench/banners", bviewer)]
            scen += [("T@base", "(base) token (fresh)", f"{burl}{SF}/token", bservice)]
        for _, _, u, k in scen:      # warm every path once
            wrk(u, k, 4, 1)
        print(f"bench: {args.passes} pass(es) of wrk -t2 -d{args.duration}s at "
              f"c={'/'.join(map(str, CONNECTIONS))}, {args.workers} workers, "
              f"{args.orgs} orgs, {os.cpu_count()} cores, load "
              f"{os.getloadavg()[0]:.2f} at start")
        print("memory before:")
        print_memory("before", stacks)
        results = {}
        for p in range(args.passes):
            for c in CONNECTIONS:
                for name, _, u, k in scen:
                    results.setdefault((name, c), []).append(wrk(u, k, c, args.duration))
            print(f"  pass {p + 1}/{args.passes} done (load {os.getloadavg()[0]:.2f})",
                  flush=True)
        report(results, [(s[0], s[1]) for s in scen])
        print("ratios (req/s unless marked; per pass, median over passes):")
        ratios(results)
        if base is not None:
            ratios(results, "@base")
        print("bars (new):")
        bars(results)
        print(f"forced refreshes against the simulator, {args.refreshes} one at a time:")
        for name, st, key in [("new", stack, service)] + (
                [("base", base, bservice)] if base else []):
            rate, p50, p99, failed = forced_refreshes(st, key, args.refreshes)
            print(f"  {name:<5} {rate:7.1f}/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
                  f"failed {failed}")
        print("memory after:")
        print_memory("after", stacks)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        for st in (base, stack):
            if st is not None and st.dir is not None:
                st.stop(check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
