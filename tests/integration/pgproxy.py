#!/usr/bin/python3
"""A PostgreSQL fault proxy for the integration tests (Python 3 stdlib only).

It listens on a unix socket (libpq `host=DIR port=N` connects to
DIR/.s.PGSQL.N), forwards every connection to the real server's unix socket,
and reads the v3 wire protocol on the way: the startup packet, then the
frontend's typed messages ('Q' simple query; 'P' parse, 'B' bind, 'E' execute,
'S' sync; 'X' terminate) and the backend's replies (one 'Z' ReadyForQuery
per 'Q' or 'S', carrying the transaction status). It runs in threads of the
test process; faults are armed with methods of the PgProxy object.

    from pgproxy import PgProxy
    proxy = PgProxy("/tmp/sfcX/pg", listen_dir="/tmp/sfcX/pgproxy").start()
    proxy.dsn("app", "app")      # "host=/tmp/sfcX/pgproxy port=5432 user=app dbname=app"
    fault = proxy.drop_after_commit(after="refresh_token_enc")
    ...                          # make the daemon store a token
    assert fault.wait(10)        # it fired: the COMMIT happened, its reply was lost
    proxy.stats()["commits"]
    proxy.clear(); proxy.stop()

Words used below:
- a *request* is one statement execution: a 'Q' message, or an 'E' message
  (its SQL is that of the prepared statement bound to the portal). A
  prepare-only round trip (PQprepare: 'P' + 'S') is not a request.
- a *commit* is a request whose SQL is COMMIT or END (for a 'Q' holding
  several statements separated by ';', any of them). The proxy does not parse
  SQL beyond that naive split.
- the *transaction* of a request is the list of requests on its connection
  since the server last reported the idle status ('Z' 'I'); a request sent
  while idle starts a new one (so an autocommit statement is a transaction
  of one request).
- `match` (and `after`) is a substring of the SQL (case-insensitive), or a
  callable taking a Statement (.sql, .params: the Bind's text parameters,
  str or None) and answering a bool.

Faults (each answers a Fault handle; `times=None` means "until clear()"):
- drop_after_commit(times=1, after=None, skip=0): forwards a commit (of a
  transaction with a request matching `after`, if given), waits until the
  server has processed it (its 'Z'), withholds every reply of it, then closes
  the client connection and the server connection: the ambiguous commit.
  `skip` lets that many matching commits through first.
- drop_reply(match, times=1, skip=0): the same for any request matching
  `match` (e.g. an autocommit UPDATE).
- drop_in_transaction(after_statements=0, match=None, times=1): when a
  request is about to be sent inside a transaction block (status 'T'/'E')
  after at least `after_statements` requests of that block (BEGIN not
  counted) and, with `match`, when the block so far or this request matches:
  the request is not forwarded and both connections close (the server rolls
  back). With after_statements large enough, a COMMIT is the one dropped.
- stall(seconds, match=None, times=1): the replies of matching requests are
  held for `seconds` (the server has processed the request already).
- refuse(times=None): new connections are closed at once.
- pause() / resume(): hold / release every backend message on every
  connection.
- delay_notifications(seconds): until clear(), each NotificationResponse
  ('A') sent by another session's NOTIFY reaches the client `seconds` late
  (in order; the rest of the stream goes on meanwhile). A session's own
  notifications, which come with its statement's or COMMIT's reply, pass
  in place: what a slow NOTIFY looks like to the listeners.
- drop_connections(): closes every open connection now (both sides).
"""

import os
import queue
import socket
import struct
import threading
import time

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
COMMIT_WORDS = {"COMMIT", "END", "COMMIT WORK", "COMMIT TRANSACTION", "END WORK",
                "END TRANSACTION"}


class Statement:
    """What a match callable sees: the SQL text and the bound parameters."""

    __slots__ = ("sql", "params")

    def __init__(self, sql, params=()):
        self.sql, self.params = sql, list(params)

    def __repr__(self):
        return f"Statement({self.sql!r}, {self.params!r})"


def is_commit(sql):
    """True when sql is COMMIT/END (or a ';'-separated list holding one)."""
    for part in sql.split(";"):
        words = " ".join(part.split()).upper()
        if words in COMMIT_WORDS:
            return True
    return False


def _matches(match, stmt):
    if match is None:
        return True
    if callable(match):
        return bool(match(stmt))
    return match.lower() in stmt.sql.lower()


class Fault:
    """One armed fault. `fired` counts firings; wait() blocks until the
    first; cancel() disarms it. `remaining` is None for unlimited."""

    def __init__(self, proxy, kind, times, **params):
        self.proxy, self.kind, self.remaining = proxy, kind, times
        self.params = params
        self.skip = params.pop("skip", 0) or 0
        self.fired = 0
        self._event = threading.Event()

    def __repr__(self):
        return f"Fault({self.kind}, fired={self.fired}, remaining={self.remaining}, {self.params})"

    @property
    def armed(self):
        return self.remaining is None or self.remaining > 0

    def wait(self, timeout=10.0):
        """True once the fault has fired at least once (within timeout)."""
        return self._event.wait(timeout)

    def cancel(self):
        self.proxy._disarm(self)

    def _take(self):
        """Called under the proxy lock when the fault's condition holds:
        True if it fires now (consumes one of `times`, after `skip`)."""
        if not self.armed:
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.fired += 1
        self._event.set()
        return True


class _Reader:
    """Buffered exact reads from a socket; None at EOF or error."""

    def __init__(self, sock):
        self.sock, self.buf = sock, bytearray()

    def read(self, n):
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def message(self):
        """One typed message: (type byte, body) or None."""
        head = self.read(5)
        if head is None:
            return None
        length = struct.unpack("!I", head[1:5])[0]
        if length < 4:
            return None
        body = self.read(length - 4)
        if body is None:
            return None
        return head[:1], body


def _cstr(data, pos):
    end = data.index(b"\0", pos)
    return data[pos:end].decode("utf-8", "replace"), end + 1


def _bind_params(body):
    """(portal, statement, text parameters) of a Bind message body."""
    portal, pos = _cstr(body, 0)
    stmt, pos = _cstr(body, pos)
    try:
        nfmt = struct.unpack_from("!H", body, pos)[0]
        fmts = struct.unpack_from(f"!{nfmt}H", body, pos + 2)
        pos += 2 + 2 * nfmt
        nparams = struct.unpack_from("!H", body, pos)[0]
        pos += 2
        params = []
        for i in range(nparams):
            n = struct.unpack_from("!i", body, pos)[0]
            pos += 4
            if n < 0:
                params.append(None)
                continue
            raw = body[pos:pos + n]
            pos += n
            fmt = fmts[0] if nfmt == 1 else (fmts[i] if i < nfmt else 0)
            params.append(raw.decode("utf-8", "replace") if fmt == 0 else raw)
    except (struct.error, IndexError):
        params = []
    return portal, stmt, params


class _Conn:
    """One proxied connection: a frontend thread (client -> server) and a
    backend thread (server -> client)."""

    def __init__(self, proxy, cid, client):
        self.proxy, self.id, self.client = proxy, cid, client
        self.server = None
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.statements = {}         # prepared statement name -> SQL
        self.portals = {}            # portal name -> Statement
        self.units_sent = 0          # sync units forwarded (startup, each Q/S/F)
        self.z_seen = 0              # ReadyForQuery messages received
        self.status = "I"            # transaction status of the last 'Z'
        self.tx = []                 # Statements of the current transaction
        self.tx_block = 0            # requests sent inside the block (BEGIN excluded)
        self.withhold = {}           # unit -> (Fault, Statement): drop after its 'Z'
        self.stalls = {}             # unit -> seconds
        self.unit_has_request = False
        self.backend_pid = None      # from BackendKeyData ('K')
        self.send_lock = threading.Lock()   # whole messages to the client
        self.late = None             # queue of (due, frame): delayed notifications

    # -- life

    def run(self):
        try:
            self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.server.connect(self.proxy.upstream)
        except OSError as e:
            self.proxy._event(self.id, "upstream_error", str(e))
            self.close()
            return
        threading.Thread(target=self._backend, name=f"pgproxy-b{self.id}", daemon=True).start()
        self._frontend()

    def close(self, terminate=False):
        with self.lock:
            if self.closed.is_set():
                return
            self.closed.set()
        if terminate and self.server is not None:
            try:
                self.server.sendall(b"X\0\0\0\4")
            except OSError:
                pass
        for s in (self.client, self.server):
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self.proxy._forget(self)

    def _send(self, sock, data):
        try:
            sock.sendall(data)
            return True
        except OSError:
            self.close()
            return False

    # -- client -> server

    def _startup(self, reader):
        """Forwards the startup packet (answering SSL/GSS requests 'N'
        ourselves). False when the connection is over."""
        while True:
            head = reader.read(4)
            if head is None:
                return False
            length = struct.unpack("!I", head)[0]
            if length < 8 or length > 10000:
                return False
            body = reader.read(length - 4)
            if body is None:
                return False
            code = struct.unpack("!I", body[:4])[0]
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                if not self._send(self.client, b"N"):
                    return False
                continue
            if not self._send(self.server, head + body):
                return False
            if code == CANCEL_REQUEST:
                self.proxy._count("cancel_requests")
                return False
            self.units_sent = 1
            return True

    def _frontend(self):
        reader = _Reader(self.client)
        try:
            if not self._startup(reader):
                return
            while not self.closed.is_set():
                msg = reader.message()
                if msg is None:
                    return
                kind, body = msg
                if not self._frontend_message(kind, body):
                    return
        finally:
            if not self.closed.is_set() and not self.withhold:
                self.close()

    def _frontend_message(self, kind, body):
        """Handles one frontend message; False when the connection is over."""
        stmt = None
        if kind == b"P":
            name, pos = _cstr(body, 0)
            sql, _ = _cstr(body, pos)
            self.statements[name] = sql
        elif kind == b"B":
            portal, name, params = _bind_params(body)
            self.portals[portal] = Statement(self.statements.get(name, ""), params)
        elif kind == b"E":
            portal, _ = _cstr(body, 0)
            stmt = self.portals.get(portal, Statement(""))
        elif kind == b"Q":
            stmt = Statement(_cstr(body, 0)[0])
        elif kind == b"X":
            self._send(self.server, kind + struct.pack("!I", len(body) + 4) + body)
            self.close()
            return False
        if stmt is not None and not self._request(stmt):
            return False
        if not self._send(self.server, kind + struct.pack("!I", len(body) + 4) + body):
            return False
        if kind in (b"Q", b"S", b"F"):
            self.units_sent += 1
            self.unit_has_request = False
        return True

    def _request(self, stmt):
        """A request is about to be forwarded in unit self.units_sent.
        Applies the faults; False when the connection was dropped."""
        proxy = self.proxy
        unit = self.units_sent
        with self.lock:
            in_block = self.status in ("T", "E")
            if not in_block and not self.unit_has_request:
                self.tx = []
                self.tx_block = 0
            self.tx.append(stmt)
            self.unit_has_request = True
            tx = list(self.tx)
            done_in_block = self.tx_block
            if in_block:
                self.tx_block += 1
        commit = is_commit(stmt.sql)
        dropped = False
        with proxy.lock:
            proxy.counters["requests"] += 1
            if commit:
                proxy.counters["commits"] += 1
            if in_block:
                for f in proxy._faults("drop_in_transaction"):
                    m = f.params["match"]
                    if done_in_block >= f.params["after_statements"] and \
                            (m is None or any(_matches(m, s) for s in tx)) and f._take():
                        proxy._fired(f, self.id, stmt)
                        dropped = True
                        break
            if not dropped:
                self._arm_reply_faults(unit, stmt, tx, commit)
        if dropped:
            self.close(terminate=True)
            return False
        return True

    def _arm_reply_faults(self, unit, stmt, tx, commit):
        """Under the proxy lock: the faults acting on the replies of unit."""
        proxy = self.proxy
        chosen = None
        if commit:
            for f in proxy._faults("drop_after_commit"):
                a = f.params["after"]
                if (a is None or any(_matches(a, s) for s in tx)) and f._take():
                    chosen = f
                    break
        if chosen is None:
            for f in proxy._faults("drop_reply"):
                if _matches(f.params["match"], stmt) and f._take():
                    chosen = f
                    break
        if chosen is not None:
            proxy._fired(chosen, self.id, stmt)
            with self.lock:
                self.withhold[unit] = (chosen, stmt)
        for f in proxy._faults("stall"):
            if _matches(f.params["match"], stmt) and f._take():
                proxy._fired(f, self.id, stmt)
                with self.lock:
                    self.stalls[unit] = self.stalls.get(unit, 0) + f.params["seconds"]
                break

    # -- server -> client

    def _backend(self):
        reader = _Reader(self.server)
        try:
            while not self.closed.is_set():
                msg = reader.message()
                if msg is None:
                    return
                kind, body = msg
                unit = self.z_seen
                with self.lock:
                    held = self.withhold.get(unit)
                    stall = self.stalls.pop(unit, 0)
                if stall:
                    if self.closed.wait(stall):
                        return
                if kind == b"Z":
                    with self.lock:
                        self.z_seen += 1
                        self.status = body[:1].decode("ascii", "replace")
                if held is not None:
                    if kind == b"C":
                        tag = _cstr(body, 0)[0]
                        self.proxy._event(self.id, "withheld_tag", tag)
                        if tag in ("COMMIT", "ROLLBACK"):
                            with self.proxy.lock:
                                self.proxy.counters["commit_tags_withheld"].append(tag)
                    if kind == b"Z":
                        self.proxy._event(self.id, "dropped_after_reply", held[1].sql[:80])
                        self.close(terminate=True)
                        return
                    continue
                if not self.proxy._gate.is_set():
                    while not self.proxy._gate.wait(0.1):
                        if self.closed.is_set():
                            return
                if kind == b"C" and is_commit(_cstr(body, 0)[0]):
                    self.proxy._count("commits_ok")
                frame = kind + struct.pack("!I", len(body) + 4) + body
                if kind == b"K" and len(body) >= 4:
                    self.backend_pid = struct.unpack("!I", body[:4])[0]
                delay = self.proxy.notify_delay
                if kind == b"A" and delay and len(body) >= 4 and \
                        struct.unpack("!I", body[:4])[0] != self.backend_pid:
                    self._send_late(time.monotonic() + delay, frame)
                    continue
                with self.send_lock:
                    if not self._send(self.client, frame):
                        return
        finally:
            self.close()

    def _send_late(self, due, frame):
        if self.late is None:
            self.late = queue.Queue()
            threading.Thread(target=self._late_sender, name=f"pgproxy-n{self.id}",
                             daemon=True).start()
        self.late.put((due, frame))

    def _late_sender(self):
        while not self.closed.is_set():
            try:
                due, frame = self.late.get(timeout=0.2)
            except queue.Empty:
                continue
            if self.closed.wait(max(0.0, due - time.monotonic())):
                return
            with self.send_lock:
                if not self._send(self.client, frame):
                    return


class PgProxy:
    """The proxy. See the module docstring for the faults."""

    def __init__(self, upstream, listen_dir, port=5432, upstream_port=5432):
        """upstream: the server's socket directory (its .s.PGSQL.upstream_port)
        or the socket path itself. listen_dir is created (0700) if needed."""
        if os.path.isdir(upstream):
            upstream = os.path.join(upstream, f".s.PGSQL.{upstream_port}")
        self.upstream = upstream
        self.host = os.path.abspath(listen_dir)
        self.port = port
        self.socket_path = os.path.join(self.host, f".s.PGSQL.{port}")
        self.lock = threading.Lock()
        self._gate = threading.Event()
        self._gate.set()
        self._faults_armed = []
        self._conns = {}
        self._next_id = 0
        self._listener = None
        self._thread = None
        self._stopping = threading.Event()
        self.events = []             # (monotonic time, connection id, event, detail)
        self.notify_delay = None     # seconds (delay_notifications)
        self.counters = self._new_counters()

    @staticmethod
    def _new_counters():
        return {"connections": 0, "refused": 0, "requests": 0, "commits": 0,
                "commits_ok": 0, "cancel_requests": 0, "faults_fired": 0,
                "fired": {}, "commit_tags_withheld": []}

    # -- life

    def start(self):
        os.makedirs(self.host, mode=0o700, exist_ok=True)
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.socket_path)
        s.listen(128)
        s.settimeout(0.2)
        self._listener = s
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, name="pgproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._gate.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.drop_connections()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *_):
        self.stop()

    def dsn(self, user="app", dbname="app"):
        """A libpq connection string that goes through the proxy."""
        return f"host={self.host} port={self.port} user={user} dbname={dbname}"

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            client.settimeout(None)
            with self.lock:
                self._next_id += 1
                cid = self._next_id
                self.counters["connections"] += 1
                refuse = next((f for f in self._faults("refuse") if f._take()), None)
                if refuse is not None:
                    self.counters["refused"] += 1
                    self._fired(refuse, cid, None)
            if refuse is not None:
                try:
                    client.close()
                except OSError:
                    pass
                continue
            conn = _Conn(self, cid, client)
            with self.lock:
                self._conns[cid] = conn
            self._event(cid, "connect", "")
            threading.Thread(target=conn.run, name=f"pgproxy-f{cid}", daemon=True).start()

    def _forget(self, conn):
        with self.lock:
            self._conns.pop(conn.id, None)
        self._event(conn.id, "close", "")

    # -- bookkeeping (callers of _faults/_fired hold self.lock)

    def _faults(self, kind):
        return [f for f in self._faults_armed if f.kind == kind and f.armed]

    def _fired(self, fault, cid, stmt):
        self.counters["faults_fired"] += 1
        self.counters["fired"][fault.kind] = self.counters["fired"].get(fault.kind, 0) + 1
        self.events.append((time.monotonic(), cid, "fault:" + fault.kind,
                            stmt.sql[:80] if stmt is not None else ""))

    def _count(self, name):
        with self.lock:
            self.counters[name] += 1

    def _event(self, cid, what, detail):
        with self.lock:
            self.events.append((time.monotonic(), cid, what, detail))
            if len(self.events) > 5000:
                del self.events[:1000]

    def _arm(self, kind, times, **params):
        f = Fault(self, kind, times, **params)
        with self.lock:
            self._faults_armed.append(f)
        return f

    def _disarm(self, fault):
        with self.lock:
            if fault in self._faults_armed:
                self._faults_armed.remove(fault)

    # -- faults (see the module docstring)

    def drop_after_commit(self, times=1, after=None, skip=0):
        return self._arm("drop_after_commit", times, after=after, skip=skip)

    def drop_reply(self, match, times=1, skip=0):
        return self._arm("drop_reply", times, match=match, skip=skip)

    def drop_in_transaction(self, after_statements=0, match=None, times=1, skip=0):
        return self._arm("drop_in_transaction", times, after_statements=after_statements,
                         match=match, skip=skip)

    def stall(self, seconds, match=None, times=1, skip=0):
        return self._arm("stall", times, seconds=float(seconds), match=match, skip=skip)

    def refuse(self, times=None):
        return self._arm("refuse", times)

    def pause(self):
        """Holds every backend message until resume()."""
        self._gate.clear()

    def resume(self):
        self._gate.set()

    def clear(self):
        """Disarms every fault and resumes; counters are kept."""
        with self.lock:
            self._faults_armed = []
        self.notify_delay = None
        self._gate.set()

    def delay_notifications(self, seconds):
        """Other sessions' notifications reach every client seconds late,
        until clear()."""
        self.notify_delay = seconds

    def drop_connections(self):
        """Closes every open connection (both sides) now; answers how many."""
        with self.lock:
            conns = list(self._conns.values())
        for c in conns:
            c.close(terminate=True)
        return len(conns)

    # -- inspection

    def stats(self):
        """A snapshot of the counters: connections (accepted), open, refused,
        requests, commits (commit requests seen), commits_ok (COMMIT tags
        forwarded to clients), cancel_requests, faults_fired, fired (per
        kind), commit_tags_withheld (the tags the server answered to the
        commits whose reply was dropped: "COMMIT" or "ROLLBACK")."""
        with self.lock:
            out = dict(self.counters)
            out["fired"] = dict(self.counters["fired"])
            out["commit_tags_withheld"] = list(self.counters["commit_tags_withheld"])
            out["open"] = len(self._conns)
        return out

    def reset_counters(self):
        with self.lock:
            self.counters = self._new_counters()
            self.events = []

    def wait_for(self, name, at_least, timeout=10.0):
        """Waits until stats()[name] >= at_least; answers the last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.stats()[name]
            if value >= at_least or time.monotonic() >= deadline:
                return value
            time.sleep(0.02)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="run the proxy until Ctrl-C (no faults)")
    ap.add_argument("upstream", help="the server's socket directory or socket path")
    ap.add_argument("listen_dir")
    ap.add_argument("--port", type=int, default=5432)
    a = ap.parse_args()
    p = PgProxy(a.upstream, a.listen_dir, a.port).start()
    print(f"pgproxy: {p.dsn()}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        p.stop()
