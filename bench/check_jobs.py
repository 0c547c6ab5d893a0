#!/usr/bin/python3
"""Check-job throughput against the Salesforce simulator's own capacity
(issue 13, step 5).

    bench/check_jobs.py [--orgs 2000] [--concurrency 32] [--workers 2] [--capacity-s 10]
                        [--passes 3] [--mint] [--wrk] [--tls-front]

Starts the test stack (tests/integration/harness.py), connects N orgs through
the full OAuth flow (about 55 ms each), then
1. drives the simulator's token endpoint alone: refresh grants of the N
   grants' refresh tokens from `concurrency` threads, each with its own
   keep-alive HTTPS connection, for capacity-s seconds (refreshes/s);
2. checks all N orgs as a job (POST .../integrations/check with
   Prefer: respond-async, then GET the job until finished), run by the
   daemon's background checker with check_concurrency = concurrency
   (orgs/s from the job's own elapsed_ms).
1 and 2 alternate --passes times (every org is due again for each job),
side by side on the shared machine: it prints each pass's rates and
ratio, then the median ratio (the bar: >= 0.70), and checks that each job
counted N and the simulator saw N refreshes (and how many of them opened
a connection). Loopback only.

--mint seeds in bulk instead (for 10,000 or 100,000 orgs): one org connected
through the full flow, then N - 1 grants like its own minted by the
simulator (POST /__control/grants/mint), their refresh tokens sealed with
the stack's token key by bench/seal.c (the product's keyring code), and N - 1
connected orgs written in SQL. --wrk drives the token endpoint alone with
wrk (-t1, `concurrency` keep-alive connections, one grant after another)
instead of Python threads, so that the driver is not the limit.
--tls-front puts the simulator's login hosts behind nginx terminating TLS
(kept-alive plain HTTP to fakesf --plain-port): a TLS handshake in the
Python simulator costs ten kept-alive requests, so the front measured
sfconnectd when it opened a connection per refresh; it now reuses them
(sf_xfer.c, body_read(): libcurl cannot re-send a refresh token). Both
rates are then measured through the front.
"""

import argparse
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
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


WRK_LUA = """
local bodies, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", "/services/oauth2/token", {
    ["Host"] = args_host,
    ["Content-Type"] = "application/x-www-form-urlencoded"}, bodies[i])
end
"""


def capacity_wrk(stack, grants, conns, seconds, fresh=False):
    """Refresh grants per second the simulator answers, driven alone by wrk;
    with fresh, a new connection for each (as sfconnectd's refreshes)."""
    cfg = stack.fakesf("GET", "config")
    host = urllib.parse.urlsplit(grants[0]["login_host"]).netloc
    d = tempfile.mkdtemp(prefix="sfc-cap-")
    bodies, script = os.path.join(d, "bodies"), os.path.join(d, "refresh.lua")
    with open(bodies, "w") as f:
        for g in grants:
            f.write(urllib.parse.urlencode({
                "grant_type": "refresh_token", "refresh_token": g["refresh_token"],
                "client_id": cfg["client_id"], "client_secret": cfg["client_secret"]}) + "\n")
    with open(script, "w") as f:
        lua = WRK_LUA.replace("args_host", repr(host).replace("'", '"'))
        if fresh:
            lua = lua.replace('["Content-Type"]', '["Connection"] = "close", ["Content-Type"]')
        f.write(lua)
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{int(seconds)}s", "-s", script,
                          f"https://127.0.0.1:{urllib.parse.urlsplit(grants[0]['login_host']).port}/",
                          "--", bodies],
                         capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))
    took = re.search(r"requests in ([\d.]+)(ms|s|m)", out)
    secs = float(took.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[took.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    return (total - errors) / secs, errors


def build_seal():
    repo = os.path.dirname(HERE)
    out = os.path.join(tempfile.gettempdir(), f"sfc-seal-{os.getpid()}")
    subprocess.run(["cc", "-I", os.path.join(repo, "src"), "-o", out,
                    os.path.join(HERE, "seal.c"), os.path.join(repo, "libsfc.a"),
                    "-lfcgi", "-lcurl", "-lcjson", "-lpq", "-lcrypto"], check=True)
    return out


def connect_one(stack, slug):
    op = stack.operator_key
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
    return body


def seed_minted(stack, n):
    """One org connected through the full flow and n - 1 like it in bulk
    (the module docstring); answers the grants of all n."""
    template = connect_one(stack, "bench-template")
    tmpl = [g for g in stack.fakesf("GET", "grants") if not g["revoked"]][-1]
    minted = stack.fakesf("POST", "grants/mint", {"n": n - 1, "like": tmpl["refresh_token"]})
    minted = minted["grants"]
    stack.psql(f"""
        INSERT INTO orgs (slug, name)
            SELECT 'bench-' || lpad(g::text, 6, '0'), 'Bench ' || g
            FROM generate_series(0, {n - 2}) g;
        INSERT INTO integrations (org_id)
            SELECT id FROM orgs WHERE slug ~ '^bench-[0-9]+$';""")
    ids = [int(r[0]) for r in stack.psql(
        "SELECT id FROM orgs WHERE slug ~ '^bench-[0-9]+$' ORDER BY slug")]
    seal = build_seal()
    try:
        sealed = subprocess.run(
            [seal, stack.config_values(stack.daemon.socket_path)["token_key_file"]],
            input="".join(f"{i}\t{g['refresh_token']}\n" for i, g in zip(ids, minted)),
            capture_output=True, text=True, check=True).stdout.splitlines()
    finally:
        os.unlink(seal)
    rows = os.path.join(stack.dir, "minted.tsv")
    with open(rows, "w") as f:
        for line, g in zip(sealed, minted):
            org_id, enc, fp = line.split("\t")
            f.write(f"{org_id}\t{g['org_id']}\t{g['user_id']}\t{enc}\t{fp}\n")
    script = f"""\\set ON_ERROR_STOP 1
        CREATE TEMP TABLE m (org_id bigint, sf_org_id text, sf_user_id text,
                             enc text, fp text);
        \\copy m FROM '{rows}'
        UPDATE integrations i SET status = 'connected', sf_org_id = m.sf_org_id,
            sf_user_id = m.sf_user_id, sf_username = t.sf_username,
            sf_display_name = t.sf_display_name, instance_url = t.instance_url,
            environment = t.environment, login_host = t.login_host,
            refresh_token_enc = m.enc, refresh_token_fp = m.fp, scope = t.scope,
            token_generation = 1, issued_at = now(), connected_at = now(),
            connected_by = 'bench', last_refreshed_at = now(), last_checked_at = now()
        FROM m, integrations t JOIN orgs o ON o.id = t.org_id AND o.slug = 'bench-template'
        WHERE i.org_id = m.org_id;
        ANALYZE;
        """
    subprocess.run([stack._pg("psql"), "-X", "-q", "-h", stack.pg_dir, "-U", "app", "-d",
                    "app"], input=script, check=True, capture_output=True, text=True)
    got = stack.psql("SELECT count(*) FROM integrations WHERE status = 'connected'")[0][0]
    if int(got) != n:
        raise SystemExit(f"seed: {got} connected orgs, not {n}")
    del template
    return [{"login_host": tmpl["login_host"], "refresh_token": tmpl["refresh_token"]}] + [
        {"login_host": tmpl["login_host"], "refresh_token": g["refresh_token"]}
        for g in minted]


FRONT_CONF = """
{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    upstream fakesf {{ server 127.0.0.1:{plain}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache shared:fakesf:4m;
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://fakesf;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


def start_front(stack):
    """nginx terminating TLS for the simulator on a port of its own, with
    kept-alive plain HTTP connections to it (fakesf --plain-port): the TLS
    handshake of each of sfconnectd's fresh connections costs nginx, not
    Python. Answers (its Popen, its port)."""
    from harness import free_port   # noqa: E402
    d = os.path.join(stack.dir, "front")
    os.makedirs(os.path.join(d, "tmp"))
    fake = os.path.join(stack.dir, "fakesf")
    port = free_port()
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(FRONT_CONF.format(
            user="user root;" if os.geteuid() == 0 else "", d=d, port=port,
            plain=stack.fakesf_info["plain_port"], cert=os.path.join(fake, "server.pem"),
            key=os.path.join(fake, "server.key")))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-p", d + "/", "-c", os.path.join(d, "nginx.conf"),
                             "-e", os.path.join(d, "error.log")],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the TLS front did not start")


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
    seen = stack.fakesf("GET", f"requests?endpoint=token_refresh&limit={min(n, 10000)}")
    fresh = sum(1 for r in seen if r.get("conn_seq") == 1)
    print(f"check_jobs: of the job's last {len(seen)} refreshes, {fresh} opened a "
          f"connection at the simulator", flush=True)
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
    ap.add_argument("--passes", type=int, default=3,
                    help="simulator alone, then the job, this many times (median)")
    ap.add_argument("--mint", action="store_true", help="seed in bulk (module docstring)")
    ap.add_argument("--wrk", action="store_true", help="drive the simulator alone with wrk")
    ap.add_argument("--tls-front", action="store_true",
                    help="the simulator's login hosts behind nginx terminating TLS")
    args = ap.parse_args(argv)
    if args.tls_front:
        os.environ["FAKESF_PLAIN_PORT"] = "0"
    stack = Stack(workers=args.workers, config={
        "check_interval_s": 86400, "check_concurrency": args.concurrency,
        "log_level": "warn"})
    print(f"check_jobs: starting the stack ({args.workers} workers)...", flush=True)
    stack.start()
    front = None
    try:
        if args.tls_front:
            front, port = start_front(stack)
            stack.restart_daemon(config={
                "salesforce_login_url": f"https://login.localhost:{port}",
                "salesforce_sandbox_login_url": f"https://test.localhost:{port}"})
            print(f"check_jobs: the login hosts are behind a TLS front (nginx) "
                  f"on port {port}", flush=True)
        t0 = time.monotonic()
        if args.mint:
            grants = seed_minted(stack, args.orgs)
        else:
            for i in range(args.orgs):
                connect_one(stack, f"bench-{i:06d}")
            grants = [g for g in stack.fakesf("GET", "grants") if not g["revoked"]]
        print(f"check_jobs: connected {args.orgs} orgs in "
              f"{time.monotonic() - t0:.1f}s", flush=True)
        drive = capacity_wrk if args.wrk else capacity
        fresh = None
        if args.wrk:
            # What sfconnectd had before it reused connections for refreshes
            # (a new connection per refresh): the same, driven alone.
            fresh, errors = capacity_wrk(stack, grants, args.concurrency,
                                         args.capacity_s, fresh=True)
            print(f"check_jobs: simulator alone, a new connection per refresh: "
                  f"{fresh:.1f} refreshes/s ({errors} errors)", flush=True)
        passes = []
        for k in range(args.passes):
            cap, errors = drive(stack, grants, args.concurrency, args.capacity_s)
            print(f"check_jobs: pass {k + 1}: simulator alone: {cap:.1f} refreshes/s "
                  f"({args.concurrency} keep-alive connections, "
                  f"{'wrk' if args.wrk else 'Python threads'}, {errors} errors)", flush=True)
            job, refreshed = run_job(stack, args.orgs)
            rate = job["checked"] / max(job["elapsed_ms"], 1) * 1000
            print(f"check_jobs: pass {k + 1}: job {job['id']}: {job['checked']}/"
                  f"{job['total']} checked, {job['connected']} connected, "
                  f"{refreshed} refreshes, {job['elapsed_ms']} ms: {rate:.1f} orgs/s, "
                  f"ratio {rate / cap if cap else 0:.2f}", flush=True)
            passes.append((rate / cap if cap else 0, rate, cap))
    finally:
        if front is not None:
            front.terminate()
            front.wait()
        stack.stop(check=False)
    ratio, rate, cap = sorted(passes)[len(passes) // 2]
    print(f"\n{args.orgs} orgs, concurrency {args.concurrency}, {len(passes)} passes: "
          f"median ratio {ratio:.2f} (bar 0.70): job {rate:.1f} orgs/s, simulator alone "
          f"{cap:.1f}/s in that pass; all: "
          + ", ".join(f"{r:.2f}" for r, _, _ in passes))
    if fresh:
        print(f"  against the simulator alone with a new connection per refresh "
              f"({fresh:.1f}/s): ratio {rate / fresh:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
