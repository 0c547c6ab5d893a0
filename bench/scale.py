"""bench/bench.py --orgs-scale and --million (issue 13, steps 4 and 6).

--orgs-scale: seeds orgs in bulk SQL (generate_series), each with its
integration (97 % connected, 2 % degraded, 0.1 % invalid, the rest
disconnected; last checked within the last hour), 3 keys and 10 audit
events, and prints at each scale (1,000 then 100,000 orgs by default):
  status p50        GET .../integrations/salesforce, wrk -t1 -c1
  list page         GET /api/v1/admin/integrations?limit=50: unfiltered,
                    status=invalid (a rare status), and status=degraded
                    from the middle (cursor org-N/2), wrk -t1 -c1
  /metrics p50      wrk -t1 -c1
  claim             the check claim (db_integration_claim's SQL, printed by
                    bench/stmt_sql from src/db_sql.c) with 8 rows, EXPLAIN
                    ANALYZE's execution time, median of 20 in a rolled-back
                    transaction: all due (every status, cutoff in the
                    future) and none due (the background check's
                    connected+degraded with a cutoff a day ago)
With --base DIR a second stack runs DIR's build, seeded alike, measured in
the same rounds.

--million: 1,000,000 requests (S, N and T in turns of 10 s, wrk -t2 -c16)
after a warm-up of 20,000, then each worker's RSS and private memory
(/proc/PID/smaps_rollup) warm and after.
"""

import os
import re
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SF = "/api/v1/orgs/bench/integrations/salesforce"
ALL_STATUSES = "{connected,degraded,invalid}"
ROUTINE_STATUSES = "{connected,degraded}"


def build_stmt_sql(src_dir):
    """bench/stmt_sql built against src_dir's src/db_sql.c (this checkout's
    or the base's); answers its path."""
    out = os.path.join(tempfile.gettempdir(),
                       f"sfc-stmt-sql-{abs(hash(src_dir)) & 0xffffff:06x}")
    cflags = subprocess.run(["pkg-config", "--cflags", "libpq"], capture_output=True,
                            text=True, check=True).stdout.split()
    subprocess.run(["cc", "-I", os.path.join(src_dir, "src"), *cflags, "-o", out,
                    os.path.join(HERE, "stmt_sql.c"),
                    os.path.join(src_dir, "src", "db_sql.c")], check=True)
    return out


def stmt_sql(binary, name):
    return subprocess.run([binary, name], capture_output=True, text=True,
                          check=True).stdout.strip()


def seed_bench_org(stack):
    """Org `bench`, connected, with a viewer key; answers the key."""
    stack.create_org("bench", "Bench")
    admin = stack.create_key("bench", "admin", "bench admin")
    viewer = stack.create_key("bench", "viewer", "bench viewer")
    status, _, body = stack.connect_org("bench", admin, accept_json=True)
    assert status == 200, body
    return viewer


def seed_orgs(stack, first, last):
    """Orgs org-FIRST..org-LAST (6 digits), as the module docstring says."""
    lo, hi = f"org-{first:06d}", f"org-{last:06d}"
    stack.psql(f"""
        INSERT INTO orgs (slug, name)
            SELECT 'org-' || lpad(g::text, 6, '0'), 'Org ' || g
            FROM generate_series({first}, {last}) g;
        CREATE TEMP TABLE seed AS SELECT id, substr(slug, 5)::int AS g
            FROM orgs WHERE slug BETWEEN '{lo}' AND '{hi}';
        INSERT INTO integrations (org_id, status, last_checked_at, connected_at)
            SELECT id, CASE WHEN g % 1000 = 0 THEN 'invalid'
                            WHEN g % 50 = 1 THEN 'degraded'
                            WHEN g % 100 = 2 THEN 'disconnected'
                            ELSE 'connected' END,
                   CASE WHEN g % 100 <> 2 THEN now() - (g % 3600) * interval '1 s' END,
                   CASE WHEN g % 100 <> 2 THEN now() - interval '2 days' END
            FROM seed;
        INSERT INTO api_keys (id, org_id, role, label, key_hash)
            SELECT 'key_' || lpad(to_hex(s.id * 4 + r), 16, '0'), s.id,
                   (ARRAY['viewer', 'admin', 'service'])[r + 1], 'seed',
                   encode(sha256(convert_to('seed-' || s.id || '-' || r, 'UTF8')), 'hex')
            FROM seed s, generate_series(0, 2) r;
        INSERT INTO audit_events (org_id, actor, action, detail)
            SELECT s.id, 'seed', 'integration.checked', '{{}}'
            FROM seed s, generate_series(1, 10);
        ANALYZE;""")


def wrk_p50(url, key, seconds=3):
    """p50 latency in ms of wrk -t1 -c1 (and the count of non-2xx)."""
    argv = ["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency"]
    if key:
        argv += ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)$", out, re.M)
    value = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return value, int(bad.group(1)) if bad else 0


def claim_ms(stack, sql, statuses, cutoff, reps=20):
    """(median execution time in ms, rows the claim answered, whether a
    sort spilled to disk) of the claim, EXPLAIN ANALYZE'd in rolled-back
    transactions."""
    lines = ["\\set ON_ERROR_STOP 1", f"PREPARE claim AS {sql};"]
    for _ in range(reps):
        lines += ["BEGIN;",
                  f"EXPLAIN (ANALYZE) EXECUTE claim('{statuses}', "
                  f"'{cutoff:.6f}', '8', 't');",
                  "ROLLBACK;"]
    out = subprocess.run([stack._pg("psql"), "-X", "-q", "-h", stack.pg_dir, "-U", "app",
                          "-d", "app", "-At"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, check=True).stdout
    times = [float(t) for t in re.findall(r"Execution Time: ([\d.]+) ms", out)]
    rows = re.search(r"\(actual [^)]*rows=(\d+)", out)
    return (statistics.median(times), rows.group(1) if rows else "?",
            "external merge" in out)


def db_now(stack):
    return float(stack.psql("SELECT extract(epoch from clock_timestamp())")[0][0])


def measure(stack, key, binary, n):
    url = f"http://127.0.0.1:{stack.port}"
    op = stack.operator_key
    out = {}
    out["status p50"] = wrk_p50(url + SF, key)
    out["list page (all)"] = wrk_p50(url + "/api/v1/admin/integrations?limit=50", op)
    out["list page (status=invalid)"] = wrk_p50(
        url + "/api/v1/admin/integrations?status=invalid&limit=50", op)
    out["list page (degraded, mid)"] = wrk_p50(
        url + "/api/v1/admin/integrations?status=degraded&limit=50"
        f"&cursor=org-{n // 2:06d}", op)
    out["/metrics p50"] = wrk_p50(url + "/metrics", None)
    sql = stmt_sql(binary, "claim")
    now = db_now(stack)
    out["claim, all due"] = claim_ms(stack, sql, ALL_STATUSES, now + 3600)
    out["claim, none due"] = claim_ms(stack, sql, ROUTINE_STATUSES, now - 86400)
    return out


def print_scale(n, results):
    print(f"\n{n:,} orgs (3 keys and 10 audit events each):")
    names = list(results[0][1].keys())
    print(f"  {'':<30}" + "".join(f"{label:>22}" for label, _ in results))
    for name in names:
        cells = []
        for _, r in results:
            v = r[name]
            if name.startswith("claim"):
                cells.append(f"{v[0]:8.3f} ms ({v[1]} rows{', disk sort' if v[2] else ''})")
            else:
                cells.append(f"{v[0]:8.3f} ms" + (f" ({v[1]} bad)" if v[1] else ""))
        print(f"  {name:<30}" + "".join(f"{c:>22}" for c in cells))


def bars(results):
    r = results[0][1]
    checks = [("claim, all due", r["claim, all due"][0], 1.0),
              ("claim, none due", r["claim, none due"][0], 1.0),
              ("list page (status=invalid)", r["list page (status=invalid)"][0], 5.0),
              ("list page (degraded, mid)", r["list page (degraded, mid)"][0], 5.0),
              ("list page (all)", r["list page (all)"][0], 5.0),
              ("/metrics", r["/metrics p50"][0], 5.0)]
    for name, value, bar in checks:
        print(f"  bar {name:<28} {value:8.3f} ms <= {bar} ms: "
              f"{'met' if value <= bar else 'NOT MET'}")


def orgs_scale(args, Stack):
    scales = sorted(int(x) for x in args.scales.split(","))
    config = {"log_level": "warn", "check_interval_s": 86400,
              "invalid_recheck_interval_s": 0}
    stacks = [("new", Stack(workers=args.workers, config=config), REPO_DIR)]
    if args.base:
        stacks.append(("base", Stack(workers=args.workers, config=config,
                                     build_dir=args.base), args.base))
    try:
        prepared = []
        for name, st, src in stacks:
            st.start()
            prepared.append((name, st, seed_bench_org(st), build_stmt_sql(src)))
        seeded = 0
        for n in scales:
            t0 = time.monotonic()
            for _, st, _, _ in prepared:
                seed_orgs(st, seeded + 1, n)
            print(f"seeded orgs {seeded + 1}..{n} in {time.monotonic() - t0:.1f}s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
            seeded = n
            results = [(name, measure(st, key, binary, n))
                       for name, st, key, binary in prepared]
            print_scale(n, results)
        print(f"\nbars at {scales[-1]:,} orgs (new):")
        bars(results)
    finally:
        for _, st, _ in stacks:
            if st.dir is not None:
                st.stop(check=False)
    return 0


REPO_DIR = os.path.dirname(HERE)


def wrk_count(url, key, seconds):
    """Requests wrk -t2 -c16 made in seconds (and the non-2xx)."""
    argv = ["wrk", "-t2", "-c16", f"-d{seconds}s", "-H", f"Authorization: Bearer {key}", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(re.search(r"(\d+) requests in", out).group(1)), int(bad.group(1)) if bad else 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def million(args, Stack, seed, memory):
    stack = Stack(workers=args.workers, config={"log_level": "warn"})
    try:
        stack.start()
        viewer, service = seed(stack, args.orgs)
        url = f"http://127.0.0.1:{stack.port}"
        scen = [(url + SF, viewer), (url + "/api/v1/orgs/bench/banners", viewer),
                (url + SF + "/token", service)]
        warm = 0
        while warm < 20000:
            for u, k in scen:
                warm += wrk_count(u, k, 2)[0]
        before = {pid: (rss, priv) for pid, rss, priv in memory(stack)}
        ticks = {pid: cpu_ticks(pid) for pid in before}
        print(f"million: warm after {warm:,} requests; {args.requests:,} more "
              f"(S, N, T in turns of 10 s, wrk -t2 -c16), {args.workers} workers, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        done = bad = turn = 0
        t0 = time.monotonic()
        while done < args.requests:
            u, k = scen[turn % len(scen)]
            n, b = wrk_count(u, k, 10)
            done, bad, turn = done + n, bad + b, turn + 1
        took = time.monotonic() - t0
        after = {pid: (rss, priv) for pid, rss, priv in memory(stack)}
        print(f"million: {done:,} requests in {took:.0f} s ({done / took:,.0f}/s), "
              f"{bad} non-2xx, load {os.getloadavg()[0]:.2f}")
        print(f"  {'pid':>8} {'role':<8} {'RSS warm':>9} {'RSS after':>9} {'delta':>8} "
              f"{'private warm':>12} {'private after':>13}  (KiB)")
        ok = True
        for pid, (rss, priv) in sorted(before.items()):
            if pid not in after:
                print(f"  {pid:>8} gone (restarted during the run)")
                ok = False
                continue
            rss2, priv2 = after[pid]
            # The workers are the children that served: the checker idles.
            role = "worker" if cpu_ticks(pid) - ticks[pid] > 100 else "other"
            print(f"  {pid:>8} {role:<8} {rss:>9} {rss2:>9} {rss2 - rss:>+8} "
                  f"{priv:>12} {priv2:>13}")
            if role == "worker":
                ok = ok and priv2 <= 4096 and rss2 - rss <= 1024
        print(f"  bars (worker private <= 4 MiB, RSS within 1 MiB of warm): "
              f"{'met' if ok else 'NOT MET'}")
    finally:
        if stack.dir is not None:
            stack.stop(check=False)
    return 0
