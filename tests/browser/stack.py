#!/usr/bin/env python3
"""The stack for the browser tests: tests/integration/harness.py's Stack with
the banner action pointing at the page (/admin/), org "demo" (admin and viewer
keys) and org "other" (admin key).

Prints one JSON line {"base","keys":{...},"other_admin"}, then answers one JSON
line per command read from stdin:
  {"fakesf": [method, path, body]}   the simulator's control API
  {"psql": "SQL"}                    rows
  {"nginx_log": true}                nginx's error log
EOF on stdin stops the stack (its log scan included) and exits 0, or 1 when
the scan found a problem (printed on stderr).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402


def main():
    stack = harness.Stack(workers=2, config={"banner_action_url": "/admin/"})
    try:
        stack.start()
        stack.create_org("demo", "Demo Inc")
        stack.create_org("other", "Other Inc")
        keys = {role: stack.create_key("demo", role, f"demo-{role}")
                for role in ("admin", "viewer")}
        other = stack.create_key("other", "admin", "other-admin")
        print(json.dumps({"base": stack.base_url, "keys": keys, "other_admin": other,
                          "dir": stack.dir}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            try:
                if "fakesf" in cmd:
                    method, path, body = cmd["fakesf"]
                    out = {"ok": stack.fakesf(method, path, body)}
                elif "psql" in cmd:
                    out = {"ok": stack.psql(cmd["psql"])}
                elif "nginx_log" in cmd:
                    out = {"ok": stack.nginx_error_log()}
                else:
                    out = {"error": "unknown command"}
            except Exception as e:  # answered to the test, which fails on it
                out = {"error": str(e)}
            print(json.dumps(out), flush=True)
    except Exception as e:
        print(json.dumps({"error": f"stack: {e}"}), flush=True)
        try:
            stack.stop(check=False)
        except Exception:
            pass
        return 1
    try:
        stack.stop()
    except AssertionError as e:
        print(f"stack: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
