#!/usr/bin/python3
"""Request throughput of the read paths, measured with wrk through nginx.

    bench/http_wrk.py [--workers 4] [--duration 10] [--connections 32]

Starts the test stack (tests/integration/harness.py), connects one org to the
Salesforce simulator, then runs wrk (127.0.0.1 only) against:
  - GET /healthz                                  (no key, one SQL round trip)
  - GET .../integrations/salesforce               (key lookup + status read)
  - GET .../integrations/salesforce/token         (key lookup + row read + AES-GCM open)
and prints requests/second and latency for each. Needs `wrk` and the
binaries built (make). Stops everything by itself.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import Stack  # noqa: E402


def run_wrk(url, key, args):
    argv = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    if key:
        argv += ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, p99, int(non2xx.group(1)) if non2xx else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("http_wrk: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    stack = Stack(workers=args.workers, config={"log_level": "warn"})
    stack.start()
    try:
        stack.create_org("bench", "Bench")
        admin = stack.create_key("bench", "admin", "bench admin")
        service = stack.create_key("bench", "service", "bench sync")
        status, _, body = stack.connect_org("bench", admin, accept_json=True)
        assert status == 200, body
        base = f"http://127.0.0.1:{stack.port}"
        sf = f"{base}/api/v1/orgs/bench/integrations/salesforce"
        print(f"wrk -t2 -c{args.connections} -d{args.duration}s, sfconnectd with "
              f"{args.workers} workers, through nginx, on this machine ({os.cpu_count()} cores)")
        print(f"{'endpoint':<34} {'req/s':>9} {'p50':>9} {'p99':>9} {'non-2xx':>8}")
        for name, url, key in (("GET /healthz", f"{base}/healthz", None),
                               ("GET .../integrations/salesforce", sf, admin),
                               ("GET .../salesforce/token", f"{sf}/token", service)):
            rps, p50, p99, bad = run_wrk(url, key, args)
            print(f"{name:<34} {rps:9.0f} {p50:>9} {p99:>9} {bad:8d}")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
