#!/usr/bin/python3
"""Bulk-check throughput: POST /api/v1/admin/integrations/check against the
Salesforce simulator, for several values of check_concurrency.

    bench/bulk_check.py [--orgs 200] [--concurrency 1,8,32] [--repeat 3] [--workers 2]

Starts the test stack (tests/integration/harness.py: PostgreSQL, fakesf,
nginx, sfconnectd), connects N orgs through the full OAuth flow, then for
each concurrency restarts sfconnectd with that check_concurrency and times
the bulk check of every connected org (older_than_s 0), `repeat` times.
Prints orgs/second from the daemon's duration_ms (and from the wall clock
of the HTTP call). Needs the binaries built (make). Everything runs on
loopback and stops by itself.
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import Stack  # noqa: E402


def listen_overflows():
    """The kernel's count of connections dropped because a listen queue was
    full: a rate limited by drops is the simulator's, not sfconnectd's."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orgs", type=int, default=200, help="orgs to connect (default 200)")
    ap.add_argument("--concurrency", default="1,8,32",
                    help="comma-separated check_concurrency values (default 1,8,32)")
    ap.add_argument("--repeat", type=int, default=3, help="bulk checks per value (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="sfconnectd workers (default 2)")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if args.orgs < 1 or args.repeat < 1 or not levels or min(levels) < 1:
        ap.error("orgs, repeat and every concurrency must be >= 1")

    stack = Stack(workers=args.workers, config={"check_interval_s": 86400})
    print(f"bulk_check: starting the stack ({args.workers} workers)...", flush=True)
    stack.start()
    rows = []
    try:
        op = stack.operator_key
        t0 = time.monotonic()
        for i in range(args.orgs):
            slug = f"bench-{i:04d}"
            st, _, body = stack.request("POST", "/api/v1/admin/orgs", key=op,
                                        body={"slug": slug, "name": slug})
            if st != 201:
                raise SystemExit(f"org create {slug}: {st} {body}")
            st, _, body = stack.connect_org(slug, op, accept_json=True)
            if st != 200 or body.get("status") != "connected":
                raise SystemExit(f"connect {slug}: {st} {body}")
        took = time.monotonic() - t0
        print(f"bulk_check: connected {args.orgs} orgs in {took:.1f}s "
              f"({1000 * took / args.orgs:.1f} ms each)", flush=True)

        for level in levels:
            stack.restart_daemon(config={"check_concurrency": level})
            daemon_rates, wall_rates = [], []
            overflows0 = listen_overflows()
            for _ in range(args.repeat):
                before = stack.fakesf("GET", "counts")["token_refresh"]
                w0 = time.monotonic()
                st, _, body = stack.request("POST", "/api/v1/admin/integrations/check",
                                            key=op, body={"status": "connected",
                                                          "older_than_s": 0},
                                            timeout=300)
                wall = time.monotonic() - w0
                if st != 200:
                    raise SystemExit(f"bulk check (concurrency {level}): {st} {body}")
                refreshes = stack.fakesf("GET", "counts")["token_refresh"] - before
                if body["checked"] != args.orgs or body["connected"] != args.orgs:
                    print(f"bulk_check: warning: {body} ({refreshes} refreshes)",
                          flush=True)
                daemon_s = max(body["duration_ms"], 1) / 1000
                daemon_rates.append(body["checked"] / daemon_s)
                wall_rates.append(body["checked"] / wall)
            overflows = None
            if overflows0 is not None and listen_overflows() is not None:
                overflows = listen_overflows() - overflows0
            rows.append((level, statistics.median(daemon_rates), max(daemon_rates),
                         statistics.median(wall_rates), overflows))
            print(f"bulk_check: concurrency {level:3d}: "
                  f"{statistics.median(daemon_rates):7.1f} orgs/s (median of {args.repeat}, "
                  f"best {max(daemon_rates):.1f}; wall clock {statistics.median(wall_rates):.1f}; "
                  f"listen-queue overflows {overflows})", flush=True)
    finally:
        stack.stop(check=False)

    print(f"\nbulk check of {args.orgs} orgs against the simulator "
          f"(orgs/second, daemon duration_ms, median of {args.repeat}):")
    print("concurrency  orgs/s  best    wall-clock  listen-overflows")
    for level, med, best, wall, overflows in rows:
        print(f"{level:11d}  {med:6.1f}  {best:6.1f}  {wall:10.1f}  "
              f"{'-' if overflows is None else overflows:>16}")
    print("(listen-overflows: connections the kernel dropped because a listen queue was "
          "full, machine-wide; each drop costs a 1 s SYN retransmit, so a run with drops "
          "measures the simulator)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
