#!/usr/bin/python3
"""Check-job throughput against the Salesforce simulator's own capacity
(issue 13, step 5).

    bench/check_jobs.py [--orgs 2000] [--concurrency 32] [--workers 2] [--capacity-s 10]

Starts the test stack (tests/integration/harness.py), connects N orgs through
the full OAuth flow (about 55 ms each), then
1. drives the simulator's token endpoint alone: refresh grants of the N
   grants' refresh tokens from `concurrency` threads, each with its own
   keep-alive HTTPS connection, for capacity-s seconds (refreshes/s);
2. checks all N orgs as a job (POST .../integrations/check with
   Prefer: respond-async, then GET the job until finished), run by the
   daemon's background checker with check_concurrency = concurrency
   (orgs/s from the job's own elapsed_ms).
Prints both rates and their ratio (the bar: >= 0.70), and checks that the
job counted N and the simulator saw N refreshes. Loopback only.
"""

import argparse
import http.client
import os
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import Stack, _ResolvingHTTPSConnection  # noqa: E402


def capacity(stack, grants, threads, seconds):
    """Refresh grants per second the simulator answers, driven alone."""
    cfg = stack.fakesf("GET", "config")
    done = [0] * threads
    errors = [0] * threads
    stop = time.monotonic() + seconds

    def run(i):
        mine = grants[i::threads]
        conns = {}
        k = 0
        while time.monotonic() < stop:
            g = mine[k % len(mine)]
            k += 1
            host = urllib.parse.urlsplit(g["login_host"]).hostname   # a URL
            conn = conns.get(host)
            if conn is None:
                conn = conns[host] = _ResolvingHTTPSConnection(
                    host, stack.fakesf_port, timeout=30, context=stack._fakesf_context())
            body = urllib.parse.urlencode({
                "grant_type": "refresh_token", "refresh_token": g["refresh_token"],
                "client_id": cfg["client_id"], "client_secret": cfg["client_secret"]})
            try:
                conn.request("POST", "/services/oauth2/token", body=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    done[i] += 1
                else:
                    errors[i] += 1
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conns.pop(host, None)

    t0 = time.monotonic()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - t0
    return sum(done) / took, sum(errors)


def run_job(stack, n):
    op = stack.operator_key
    before = stack.fakesf("GET", "counts")["token_refresh"]
    st, hdrs, body = stack.request("POST", "/api/v1/admin/integrations/check", key=op,
                                   body={"older_than_s": 0},
                                   headers={"Prefer": "respond-async"})
    if st != 202:
        raise SystemExit(f"check: {st} {body}")
    loc = hdrs["location"]
    while True:
        st, _, job = stack.request("GET", loc, key=op)
        if st != 200:
            raise SystemExit(f"GET {loc}: {st} {job}")
        if job["state"] == "finished":
            break
        time.sleep(0.5)
    refreshed = stack.fakesf("GET", "counts")["token_refresh"] - before
    if job["checked"] != n or job["total"] != n or refreshed != n:
        print(f"check_jobs: warning: {job} ({refreshed} refreshes)", flush=True)
    return job, refreshed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orgs", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--capacity-s", type=float, default=10)
    args = ap.parse_args(argv)
    stack = Stack(workers=args.workers, config={
        "check_interval_s": 86400, "check_concurrency": args.concurrency})
    print(f"check_jobs: starting the stack ({args.workers} workers)...", flush=True)
    stack.start()
    try:
        op = stack.operator_key
        t0 = time.monotonic()
        for i in range(args.orgs):
            slug = f"bench-{i:06d}"
            st, _, body = stack.request("POST", "/api/v1/admin/orgs", key=op,
                                        body={"slug": slug, "name": slug})
            if st != 201:
                raise SystemExit(f"org create {slug}: {st} {body}")
            # A Salesforce org and user of its own: past approval_limit (5)
            # grants per user the simulator revokes the oldest.
            stack.fakesf("POST", "config", {"org_id": "new", "user_id": "new"})
            st, _, body = stack.connect_org(slug, op, accept_json=True)
            if st != 200 or body.get("status") != "connected":
                raise SystemExit(f"connect {slug}: {st} {body}")
        print(f"check_jobs: connected {args.orgs} orgs in "
              f"{time.monotonic() - t0:.1f}s", flush=True)
        grants = [g for g in stack.fakesf("GET", "grants") if not g["revoked"]]
        cap, errors = capacity(stack, grants, args.concurrency, args.capacity_s)
        print(f"check_jobs: simulator alone: {cap:.1f} refreshes/s "
              f"({args.concurrency} keep-alive connections, {errors} errors)", flush=True)
        job, refreshed = run_job(stack, args.orgs)
        rate = job["checked"] / max(job["elapsed_ms"], 1) * 1000
        print(f"check_jobs: job {job['id']}: {job['checked']}/{job['total']} checked, "
              f"{job['connected']} connected, {refreshed} refreshes, "
              f"{job['elapsed_ms']} ms", flush=True)
    finally:
        stack.stop(check=False)
    print(f"\n{args.orgs} orgs, concurrency {args.concurrency}: job {rate:.1f} orgs/s, "
          f"simulator alone {cap:.1f}/s, ratio {rate / cap if cap else 0:.2f} (bar 0.70)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
