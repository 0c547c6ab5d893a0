#!/usr/bin/python3
"""fakesf: a Salesforce OAuth 2.0 simulator for sfconnect's tests.

It serves, over HTTPS with a test CA made at start-up, the Salesforce OAuth
endpoints (authorize, token, revoke, identity, userinfo, introspect) and one
REST resource (/services/data/vNN.N/limits), plus a control API under
/__control/ that tests use to configure it, inspect it and inject faults.
Python 3 standard library only. See README.md next to this file.
"""

import argparse
import base64
import dataclasses
import hashlib
import hmac
import html
import http.server
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

JSON_TYPE = "application/json;charset=UTF-8"
CODE_TTL_S = 15 * 60
MAX_RECORDED = 10000
ID_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SAN = ("DNS:localhost,DNS:login.localhost,DNS:test.localhost,"
       "DNS:*.my.localhost,DNS:*.sandbox.my.localhost,DNS:evil.localhost,"
       "IP:127.0.0.1")

COUNT_NAMES = ("authorize", "token_code", "token_refresh", "revoke",
               "identity", "userinfo", "introspect", "limits")
FAULT_ENDPOINTS = COUNT_NAMES + ("token_other", "token", "any")
# Token endpoint errors seen from Salesforce (see README.md for the sources):
# fault kind -> (status, content type, body).
ERROR_PRESETS = {
    "expired_token": (400, None, ("invalid_grant", "expired access/refresh token")),
    "authentication_failure": (400, None, ("invalid_grant", "authentication failure")),
    "not_approved": (400, None, ("invalid_grant", "user hasn't approved this consumer")),
    "ip_restricted": (400, None, ("invalid_grant", "IP restricted or invalid login hours")),
    "token_validity_expired": (400, None, ("invalid_grant", "token validity expired")),
    "inactive_user": (400, None, ("inactive_user", "user is inactive")),
    "inactive_org": (400, None, ("inactive_org", "organization is locked, closed, or suspended")),
    "app_blocked": (400, None, ("OAUTH_APP_BLOCKED", "this app is blocked by admin")),
    "ec_app_not_found": (400, None, ("OAUTH_EC_APP_NOT_FOUND",
                                     "External client app is not installed in this org")),
    "html_400": (400, "text/html;charset=UTF-8",
                 "<html><head><title>Error</title></head><body><h1>Bad Request</h1>"
                 "<p>Your request could not be processed.</p></body></html>"),
    "text_400": (400, "text/plain;charset=UTF-8", "Bad Request"),
}
# Kinds that change the normal answer instead of replacing it.
MODIFYING_KINDS = ("delay", "bad_signature", "foreign_id", "foreign_instance",
                   "drop_after", "delay_after")
FAULT_KINDS = ("status500", "malformed", "drop", "invalid_client", "rate_limit",
               "already_processing", "error") + MODIFYING_KINDS + tuple(ERROR_PRESETS)
REFRESH_POLICIES = ("valid_until_revoked", "expire_after", "expire_if_unused", "immediately")
IDLE_LIMIT_S = 30 * 86400
APPROVAL_LIMIT = 5
AUTHORIZE_ERRORS = {      # error code -> description, for a redirect back with an error
    "access_denied": "end-user denied authorization",
    "OAUTH_APP_ACCESS_DENIED": "user is not admin approved to access this app",
    "OAUTH_APP_BLOCKED": "this app is blocked by admin",
    "OAUTH_EC_APP_NOT_FOUND": "External client app is not installed in this org",
}

# Salesforce error answers used in several places.
EXPIRED_TOKEN = ("invalid_grant", "expired access/refresh token")
EXPIRED_CODE = ("invalid_grant", "expired authorization code")
ALREADY_PROCESSING = ("invalid_grant", "token request is already being processed")
INVALID_SESSION = [{"message": "Session expired or invalid",
                    "errorCode": "INVALID_SESSION_ID"}]


# ---------------------------------------------------------------- helpers

def sf_id18(id15):
    """The 18-character form of a 15-character Salesforce id."""
    if len(id15) != 15 or any(c not in ALNUM for c in id15):
        raise ValueError("a Salesforce id has 15 or 18 letters and digits")
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, c in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= c <= "Z":
                bits |= 1 << i
        suffix += ID_CHECKSUM_CHARS[bits]
    return id15 + suffix


def normalize_id(value, prefix):
    """Validate a 15- or 18-char id with the given key prefix; answer 18 chars.

    "new" makes a fresh random id."""
    if value == "new":
        return random_id(prefix)
    if not isinstance(value, str) or not value.startswith(prefix):
        raise ValueError(f"id must begin with {prefix}")
    if len(value) not in (15, 18):
        raise ValueError("id must have 15 or 18 characters")
    full = sf_id18(value[:15])
    if len(value) == 18 and full != value:
        raise ValueError(f"bad checksum in {value} (expected {full})")
    return full


def random_id(prefix):
    body = "".join(secrets.choice(ALNUM) for _ in range(8))
    return sf_id18(prefix + "0000" + body)     # prefix is a 3-char key prefix


def sign(id_url, issued_at, secret):
    """Salesforce's token response signature: base64(HMAC-SHA256(secret, id + issued_at))."""
    mac = hmac.new(secret.encode(), (id_url + issued_at).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def pkce_challenge(verifier):
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def now_ms_string():
    """issued_at: the wall clock (the simulated clock moves only expiry decisions)."""
    return str(int(time.time() * 1000))


def id_host_of(login_host):
    """The login host that Salesforce names in identity URLs for a request to
    login_host: test. for sandboxes (test.* and *.sandbox.my.*), login. otherwise."""
    url = urllib.parse.urlsplit(login_host)
    port = f":{url.port}" if url.port else ""
    name = (url.hostname or "").lower()
    sandbox = name.startswith("test.") or ".sandbox.my." in name
    return f"https://{'test' if sandbox else 'login'}.localhost{port}"


def new_access_token(org_id):
    return org_id[:15] + "!AQ" + secrets.token_urlsafe(72)


def new_refresh_token():
    return "5Aep861" + secrets.token_urlsafe(60) + "." + secrets.token_urlsafe(6)


def new_code():
    return "aPrx" + secrets.token_urlsafe(48)


def add_query(url, params):
    sep = "&" if "?" in url else "?"
    return url + sep + urllib.parse.urlencode(params)


class OAuthError(Exception):
    """An answer `{"error","error_description"}` with an HTTP status (400)."""

    def __init__(self, error, description, status=400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    @classmethod
    def of(cls, pair, status=400):
        return cls(pair[0], pair[1], status)

    def body(self):
        return {"error": self.error, "error_description": self.description}


class ControlError(Exception):
    pass


class AuthorizePageError(Exception):
    """The authorize endpoint's own HTML error page (no redirect)."""

    def __init__(self, error, description):
        super().__init__(description)
        self.error, self.description = error, description


# ---------------------------------------------------------------- state

@dataclass
class Config:
    client_id: str = "test-client-id"
    client_secret: str = "test-client-secret"
    org_id: str = "00D5g000004XyZaEAK"
    user_id: str = "0055g00000AdaAdAAJ"
    username: str = "admin@acme.example"
    display_name: str = "Ada Admin"
    email: str = "admin@acme.example"
    deny: bool = False
    rotation: bool = False
    strict_host: bool = True      # token/revoke must go to the grant's login host
    redirect_uris: list = field(default_factory=list)   # empty: any is allowed
    refresh_policy: str = "valid_until_revoked"         # see REFRESH_POLICIES
    refresh_policy_s: int = 0           # N for expire_after / expire_if_unused
    idle_limit_s: int = IDLE_LIMIT_S    # refresh tokens unused this long die (0: never)
    idle_limit_applies: str = "rotation"    # "rotation" (only with rotation on), "always", "never"
    approval_limit: int = APPROVAL_LIMIT    # live grants per user per app (0: no limit)
    session_timeout_s: int = 0          # access tokens die this long after issue (0: never)
    id_on_login_host: bool = True       # id URLs on login./test. (as Salesforce); off: the request's host
    withhold_scopes: list = field(default_factory=list)  # scopes never granted
    authorize_error: str = None         # authorize redirects with this error code
    authorize_error_description: str = None
    app_blocked: bool = False


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    challenge: str
    org_id: str
    user_id: str
    login_host: str
    scope: str
    expires_at: float


@dataclass
class Grant:
    org_id: str
    user_id: str
    login_host: str
    scope: str
    refresh_token: str = None           # the current one (None: no offline scope)
    revoked: bool = False
    access_tokens: list = field(default_factory=list)
    client_id: str = None
    created_at: float = 0.0             # simulated clock: the approval
    last_used: float = 0.0              # simulated clock: the approval or the last refresh
    expired: str = None                 # why the refresh token expired by policy


@dataclass
class AccessToken:
    token: str
    grant: Grant
    issued_at: str
    born: float = 0.0                   # simulated clock
    alive: bool = True

    def valid(self):
        return self.alive and not self.grant.revoked


@dataclass
class Fault:
    kind: str
    count: int
    delay_ms: int
    status: int = 400                   # kind "error" (and the presets)
    content_type: str = JSON_TYPE
    body: bytes = b""


class State:
    """Everything the simulator knows. Callers hold self.lock around every call."""

    def __init__(self):
        self.lock = threading.Lock()
        self.port = 0
        self.reset()

    def reset(self):
        self.config = Config()
        self.clock_offset = 0.0
        self.instance_urls = {}        # org_id -> instance URL (else the default)
        self.users = {}                # user_id -> {username, display_name, email}
        self.inactive_users = set()
        self.inactive_orgs = set()
        self.ip_restricted = set()     # user ids
        self.unapproved = set()        # user ids
        self.codes = {}
        self.grants = []
        self.refresh_tokens = {}       # token -> (grant, "current"|"superseded")
        self.access_tokens = {}        # token -> AccessToken
        self.issued_access, self.issued_refresh = [], []
        self.in_progress = set()       # refresh tokens being refreshed right now
        self.faults = {}               # endpoint -> [Fault]
        self.requests = []
        self.counts = dict.fromkeys(COUNT_NAMES + ("token_other",), 0)
        self.remember_user()

    # -- the clock

    def now(self):
        return time.time() + self.clock_offset

    def clock_view(self):
        return {"now": self.now(), "offset_s": self.clock_offset}

    # -- configuration

    def default_instance_url(self):
        return f"https://acme.my.localhost:{self.port}"

    def instance_url(self, org_id):
        return self.instance_urls.get(org_id) or self.default_instance_url()

    def remember_user(self):
        c = self.config
        self.users[c.user_id] = {"username": c.username, "email": c.email,
                                 "display_name": c.display_name}

    def config_view(self):
        c = self.config
        view = dataclasses.asdict(c)
        view.update(instance_url=self.instance_url(c.org_id),
                    user_active=c.user_id not in self.inactive_users,
                    org_active=c.org_id not in self.inactive_orgs,
                    ip_restricted=c.user_id in self.ip_restricted,
                    user_approved=c.user_id not in self.unapproved)
        return view

    PER_USER = ("instance_url", "user_active", "org_active", "ip_restricted", "user_approved")

    def apply_config(self, body):
        known = set(Config.__dataclass_fields__) | set(self.PER_USER)
        unknown = set(body) - known
        if unknown:
            raise ControlError(f"unknown config keys: {sorted(unknown)}")
        c = self.config
        try:
            org_id = normalize_id(body.get("org_id", c.org_id), "00D")
            user_id = normalize_id(body.get("user_id", c.user_id), "005")
        except ValueError as e:
            raise ControlError(str(e)) from None
        self.apply_policy_config(body)
        for key in ("client_id", "client_secret", "username", "display_name", "email"):
            if key in body:
                setattr(c, key, str(body[key]))
        for key in ("deny", "rotation", "strict_host", "id_on_login_host"):
            if key in body:
                setattr(c, key, bool(body[key]))
        for key in ("redirect_uris", "withhold_scopes"):
            if key in body:
                values = body[key] or []
                if not isinstance(values, list):
                    raise ControlError(f"{key} must be a list")
                setattr(c, key, [str(u) for u in values])
        for key in ("authorize_error", "authorize_error_description"):
            if key in body:
                setattr(c, key, str(body[key]) if body[key] else None)
        c.org_id, c.user_id = org_id, user_id
        if "instance_url" in body:
            self.instance_urls[org_id] = (body["instance_url"] or "").rstrip("/")
        self.toggle(self.inactive_users, user_id, body.get("user_active"))
        self.toggle(self.inactive_orgs, org_id, body.get("org_active"))
        self.toggle(self.unapproved, user_id, body.get("user_approved"))
        self.toggle(self.ip_restricted, user_id,
                    None if body.get("ip_restricted") is None else not body["ip_restricted"])
        if "app_blocked" in body:
            c.app_blocked = bool(body["app_blocked"])
            if c.app_blocked:          # every session of the app ends
                for grant in self.grants:
                    if grant.client_id == c.client_id:
                        self.revoke_grant(grant)
                self.codes.clear()
        self.remember_user()
        return self.config_view()

    def apply_policy_config(self, body):
        c = self.config
        if "refresh_policy" in body:
            if body["refresh_policy"] not in REFRESH_POLICIES:
                raise ControlError(f"refresh_policy must be one of {', '.join(REFRESH_POLICIES)}")
            c.refresh_policy = body["refresh_policy"]
        if "idle_limit_applies" in body:
            if body["idle_limit_applies"] not in ("rotation", "always", "never"):
                raise ControlError("idle_limit_applies must be rotation, always or never")
            c.idle_limit_applies = body["idle_limit_applies"]
        for key in ("refresh_policy_s", "idle_limit_s", "approval_limit", "session_timeout_s"):
            if key in body:
                value = body[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ControlError(f"{key} must be a number >= 0")
                setattr(c, key, int(value))

    @staticmethod
    def toggle(inactive, key, active):
        if active is True:
            inactive.discard(key)
        elif active is False:
            inactive.add(key)

    def check_client(self, client_id, client_secret):
        c = self.config
        if client_id != c.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if client_secret is None or not hmac.compare_digest(client_secret, c.client_secret):
            raise OAuthError("invalid_client", "invalid client credentials")

    # -- faults, counts, recording

    def push_fault(self, endpoint, fault):
        self.faults.setdefault(endpoint, []).append(fault)

    def pop_fault(self, endpoint):
        names = [endpoint, "any"]
        if endpoint.startswith("token_"):
            names.insert(1, "token")
        for name in names:
            queue = self.faults.get(name)
            if queue:
                fault = queue[0]
                fault.count -= 1
                if fault.count <= 0:
                    queue.pop(0)
                return fault
        return None

    def record(self, entry):
        self.counts[entry["endpoint"]] = self.counts.get(entry["endpoint"], 0) + 1
        self.requests.append(entry)
        del self.requests[:-MAX_RECORDED]

    # -- tokens

    def issue_access(self, grant):
        token = new_access_token(grant.org_id)
        at = AccessToken(token, grant, now_ms_string(), self.now())
        self.access_tokens[token] = at
        grant.access_tokens.append(at)
        self.issued_access.append(token)
        return at

    def issue_refresh(self, grant):
        token = new_refresh_token()
        if grant.refresh_token:
            old_grant, _ = self.refresh_tokens[grant.refresh_token]
            self.refresh_tokens[grant.refresh_token] = (old_grant, "superseded")
        grant.refresh_token = token
        self.refresh_tokens[token] = (grant, "current")
        self.issued_refresh.append(token)
        return token

    def revoke_grant(self, grant):
        was = not grant.revoked
        grant.revoked = True
        for at in grant.access_tokens:
            at.alive = False
        return was

    def valid_access(self, token):
        at = self.access_tokens.get(token or "")
        timeout = self.config.session_timeout_s
        if at and timeout and self.now() - at.born >= timeout:
            at.alive = False
        return at if at and at.valid() else None

    def id_url(self, grant):
        base = grant.login_host
        if self.config.id_on_login_host:
            base = id_host_of(base)
        return f"{base}/id/{grant.org_id}/{grant.user_id}"

    def token_response(self, grant, at, refresh_token, fault, server_port):
        id_url = self.id_url(grant)
        instance_url = self.instance_url(grant.org_id)
        if fault and fault.kind == "foreign_id":
            id_url = f"https://evil.localhost:{server_port}/id/{grant.org_id}/{grant.user_id}"
        if fault and fault.kind == "foreign_instance":
            instance_url = f"https://evil.localhost:{server_port}"
        secret = self.config.client_secret
        if fault and fault.kind == "bad_signature":
            secret = "not-the-" + secret
        body = {"access_token": at.token}
        if refresh_token:
            body["refresh_token"] = refresh_token
        body.update(signature=sign(id_url, at.issued_at, secret), scope=grant.scope,
                    instance_url=instance_url, id=id_url,
                    token_type="Bearer", issued_at=at.issued_at)
        return body

    # -- OAuth flows (each called with the lock held)

    def authorize_refusal(self):
        """The error code the authorize page redirects with, or None to approve."""
        c = self.config
        if c.authorize_error:
            return c.authorize_error
        if c.app_blocked:
            return "OAUTH_APP_BLOCKED"
        if c.user_id in self.unapproved or c.user_id in self.ip_restricted:
            return "OAUTH_APP_ACCESS_DENIED"
        if c.deny or c.user_id in self.inactive_users or c.org_id in self.inactive_orgs:
            return "access_denied"
        return None

    def authorize(self, q, login_host):
        """Answer the Location of the redirect (a code or an error).

        A bad client_id or redirect_uri raises AuthorizePageError: Salesforce
        shows its own error page then, since it cannot trust the redirect_uri."""
        c = self.config
        if q.get("client_id") != c.client_id:
            raise AuthorizePageError("invalid_client_id", "client identifier invalid")
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_uri or (c.redirect_uris and redirect_uri not in c.redirect_uris):
            raise AuthorizePageError("redirect_uri_mismatch", "redirect_uri must match configuration")
        state = {"state": q["state"]} if "state" in q else {}
        if q.get("response_type") != "code":
            return add_query(redirect_uri, {"error": "unsupported_response_type",
                                            "error_description": "response type not supported",
                                            **state})
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return add_query(redirect_uri, {
                "error": "invalid_request",
                "error_description": "code_challenge with code_challenge_method=S256 is required",
                **state})
        refusal = self.authorize_refusal()
        if refusal:
            description = (c.authorize_error_description if c.authorize_error else None) \
                or AUTHORIZE_ERRORS.get(refusal, "authorization failed")
            return add_query(redirect_uri, {"error": refusal, "error_description": description,
                                            **state})
        asked = (q.get("scope") or "api id refresh_token").split()
        granted = " ".join(s for s in asked if s not in c.withhold_scopes)
        code = Code(new_code(), c.client_id, redirect_uri, q["code_challenge"], c.org_id,
                    c.user_id, login_host, granted, self.now() + CODE_TTL_S)
        self.codes[code.code] = code
        return add_query(redirect_uri, {"code": code.code, **state})

    def enforce_approval_limit(self, grant):
        """A sixth approval by a user for an app silently revokes the oldest."""
        limit = self.config.approval_limit
        if not limit:
            return
        live = [g for g in self.grants
                if (g.org_id, g.user_id, g.client_id) == (grant.org_id, grant.user_id,
                                                          grant.client_id)
                and g.refresh_token and not g.revoked and not g.expired]
        for old in live[:max(0, len(live) - limit)]:
            self.revoke_grant(old)

    def exchange_code(self, form, client, login_host, fault, server_port):
        self.check_client(*client)
        code = self.codes.pop(form.get("code", ""), None)   # single use, whatever happens
        if (code is None or code.expires_at < self.now() or code.client_id != client[0]
                or (self.config.strict_host and code.login_host != login_host)):
            raise OAuthError.of(EXPIRED_CODE)
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri mismatch")
        verifier = form.get("code_verifier")
        if not verifier:
            raise OAuthError("invalid_grant", "invalid code verifier")
        if not hmac.compare_digest(pkce_challenge(verifier), code.challenge):
            raise OAuthError("invalid_request", "invalid code verifier")
        now = self.now()
        grant = Grant(code.org_id, code.user_id, code.login_host, code.scope,
                      client_id=code.client_id, created_at=now, last_used=now)
        self.grants.append(grant)
        scopes = code.scope.split()
        refresh = None
        if "refresh_token" in scopes or "offline_access" in scopes:
            refresh = self.issue_refresh(grant)
            self.enforce_approval_limit(grant)
        at = self.issue_access(grant)
        return self.token_response(grant, at, refresh, fault, server_port)

    def begin_refresh(self, form, client):
        """Checks done before the (possibly delayed) refresh; marks it in progress."""
        self.check_client(*client)
        token = form.get("refresh_token", "")
        if token in self.in_progress:
            raise OAuthError.of(ALREADY_PROCESSING)
        self.in_progress.add(token)
        return token

    def finish_refresh(self, token, login_host, fault, server_port):
        grant, status = self.refresh_tokens.get(token, (None, None))
        if grant is None or grant.revoked:
            raise OAuthError.of(EXPIRED_TOKEN)
        if self.config.strict_host and grant.login_host != login_host:
            raise OAuthError.of(EXPIRED_TOKEN)
        if status == "superseded":          # reuse of a rotated token: kill the grant
            self.revoke_grant(grant)
            raise OAuthError.of(EXPIRED_TOKEN)
        now = self.now()
        if not grant.expired:
            grant.expired = self.policy_expiry(grant, now)
        if grant.expired:
            raise OAuthError.of(EXPIRED_TOKEN)
        if grant.org_id in self.inactive_orgs:
            raise OAuthError("inactive_org", "organization is locked, closed, or suspended")
        if grant.user_id in self.inactive_users:
            raise OAuthError("invalid_grant", "authentication failure")
        if grant.user_id in self.unapproved:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        if grant.user_id in self.ip_restricted:
            raise OAuthError("invalid_grant", "IP restricted or invalid login hours")
        grant.last_used = now
        rotated = self.issue_refresh(grant) if self.config.rotation else None
        at = self.issue_access(grant)
        return self.token_response(grant, at, rotated, fault, server_port)

    def policy_expiry(self, grant, now):
        """Why the app's Refresh Token Policy (or the idle limit) has ended the
        grant's refresh token at time now, or None."""
        c = self.config
        policy, n = c.refresh_policy, c.refresh_policy_s
        if policy == "immediately":
            return "immediately"
        if policy == "expire_after" and now - grant.created_at >= n:
            return "expire_after"
        if policy == "expire_if_unused" and now - grant.last_used >= n:
            return "expire_if_unused"
        idle = c.idle_limit_applies == "always" or (c.idle_limit_applies == "rotation"
                                                    and c.rotation)
        if idle and c.idle_limit_s and now - grant.last_used >= c.idle_limit_s:
            return "idle_limit"
        return None

    def revoke(self, token, login_host):
        strict = self.config.strict_host
        entry = self.refresh_tokens.get(token)
        if entry and entry[1] == "current" and not entry[0].revoked and not entry[0].expired:
            if strict and entry[0].login_host != login_host:
                raise OAuthError("invalid_token", "invalid token")
            self.revoke_grant(entry[0])
            return
        at = self.valid_access(token)
        if at and not (strict and at.grant.login_host != login_host):
            at.alive = False
            return
        raise OAuthError("invalid_token", "invalid token")

    def introspect(self, token, client):
        self.check_client(*client)
        at = self.valid_access(token)
        entry = self.refresh_tokens.get(token)
        if at:
            grant, kind, iat = at.grant, "access_token", int(at.issued_at) // 1000
        elif entry and entry[1] == "current" and not entry[0].revoked and not entry[0].expired:
            grant, kind, iat = entry[0], "refresh_token", None
        else:
            return {"active": False}
        user = self.users.get(grant.user_id, {})
        body = {"active": True, "scope": grant.scope, "client_id": self.config.client_id,
                "username": user.get("username"), "token_type": kind,
                "sub": self.id_url(grant)}
        if iat:
            body.update(iat=iat, nbf=iat, exp=iat + 7200)
        return body

    # -- identity

    def identity(self, at, org_id, user_id):
        grant = at.grant
        if (org_id, user_id) != (grant.org_id, grant.user_id):
            return None
        user = self.users.get(user_id, {})
        inst = self.instance_url(org_id)
        org15 = org_id[:15]
        name = user.get("display_name", "")
        first, _, last = name.partition(" ")
        return {
            "id": self.id_url(grant),
            "asserted_user": True, "user_id": user_id, "organization_id": org_id,
            "username": user.get("username"), "nick_name": (user.get("username") or "").split("@")[0],
            "display_name": name, "email": user.get("email"), "email_verified": True,
            "first_name": first, "last_name": last or first, "timezone": "America/Los_Angeles",
            "photos": {"picture": f"{inst}/profilephoto/005/F",
                       "thumbnail": f"{inst}/profilephoto/005/T"},
            "addr_street": None, "addr_city": None, "addr_state": None,
            "addr_country": "US", "addr_zip": None,
            "mobile_phone": None, "mobile_phone_verified": False,
            "is_lightning_login_user": False,
            "status": {"created_date": None, "body": None},
            "urls": {
                "enterprise": f"{inst}/services/Soap/c/{{version}}/{org15}",
                "metadata": f"{inst}/services/Soap/m/{{version}}/{org15}",
                "partner": f"{inst}/services/Soap/u/{{version}}/{org15}",
                "rest": f"{inst}/services/data/v{{version}}/",
                "sobjects": f"{inst}/services/data/v{{version}}/sobjects/",
                "search": f"{inst}/services/data/v{{version}}/search/",
                "query": f"{inst}/services/data/v{{version}}/query/",
                "recent": f"{inst}/services/data/v{{version}}/recent/",
                "tooling_soap": f"{inst}/services/Soap/T/{{version}}/{org15}",
                "tooling_rest": f"{inst}/services/data/v{{version}}/tooling/",
                "profile": f"{inst}/{user_id}",
                "custom_domain": inst,
            },
            "active": user_id not in self.inactive_users,
            "user_type": "STANDARD", "language": "en_US", "locale": "en_US",
            "utcOffset": -28800000, "last_modified_date": "2024-01-15T10:20:30Z",
            "is_app_installed": True,
        }

    def userinfo(self, at):
        ident = self.identity(at, at.grant.org_id, at.grant.user_id)
        return {
            "sub": ident["id"], "user_id": ident["user_id"],
            "organization_id": ident["organization_id"],
            "preferred_username": ident["username"], "nickname": ident["nick_name"],
            "name": ident["display_name"], "given_name": ident["first_name"],
            "family_name": ident["last_name"], "email": ident["email"],
            "email_verified": True, "zoneinfo": ident["timezone"],
            "photos": ident["photos"], "profile": ident["urls"]["profile"],
            "picture": ident["photos"]["picture"], "address": {"country": "US"},
            "is_salesforce_integration_user": False, "urls": ident["urls"],
            "active": ident["active"], "user_type": "STANDARD", "language": "en_US",
            "locale": "en_US", "utcOffset": -28800000,
            "updated_at": ident["last_modified_date"], "is_app_installed": True,
        }

    # -- control views

    def grants_view(self):
        return [{"org_id": g.org_id, "user_id": g.user_id, "refresh_token": g.refresh_token,
                 "revoked": g.revoked, "login_host": g.login_host, "scope": g.scope,
                 "access_tokens_alive": sum(at.valid() for at in g.access_tokens),
                 "client_id": g.client_id, "expired": g.expired,
                 "created_at": g.created_at, "last_used": g.last_used}
                for g in self.grants]

    def expire_access(self, org_id):
        n = 0
        for at in self.access_tokens.values():
            if at.valid() and (org_id is None or at.grant.org_id == org_id):
                at.alive = False
                n += 1
        return n

    def revoke_refresh(self, org_id):
        return sum(self.revoke_grant(g) for g in self.grants
                   if org_id is None or g.org_id == org_id)


# ---------------------------------------------------------------- HTTP

class DropConnection(Exception):
    pass


def authorize_error_page(error, description):
    """The HTML page Salesforce's authorize shows when it cannot redirect back."""
    text = html.escape(f"error={error}&error_description={description}")
    return (f"<!DOCTYPE html><html><head><title>Error</title></head><body>"
            f"<div id=\"content\"><h2>Remote Access Authorization Error</h2>"
            f"<p>There was a problem in setting up your remote access.</p>"
            f"<p>{text}</p></div></body></html>").encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakesf"

    def version_string(self):
        return "fakesf"
    timeout = 60
    disable_nagle_algorithm = True
    state: State = None                     # set by serve()

    # -- plumbing

    def log_message(self, fmt, *args):      # the default one would log the query
        pass

    def log_request(self, code="-", size="-"):
        path = self.path.split("?", 1)[0]
        print(f"fakesf {self.server.server_port} {self.command} {path} {code}",
              file=sys.stderr, flush=True)

    def send(self, status, body=b"", content_type=JSON_TYPE, headers=()):
        after, self.after_fault = self.after_fault, None
        if after and after.kind == "drop_after":
            self.drop()
        if after and after.kind == "delay_after":
            time.sleep(after.delay_ms / 1000)
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        if body or content_type == JSON_TYPE:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, obj, headers=()):
        self.send(status, json.dumps(obj).encode(), JSON_TYPE, headers)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def login_host(self):
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
        return "https://" + host

    def parse(self):
        """Split the request into (path, query dict, form dict, raw body)."""
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        raw = self.read_body()
        form = {}
        ctype = (self.headers.get("Content-Type") or "").lower()
        if ctype.startswith("application/x-www-form-urlencoded"):
            form = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"),
                                               keep_blank_values=True))
        return url.path, query, form, raw

    def bearer(self, query):
        auth = self.headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return query.get("oauth_token")

    def client_credentials(self, form):
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = self.headers.get("Authorization") or ""
        if auth[:6].lower() == "basic ":
            try:
                user, _, pw = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, pw = None, None
            if client_id is None and user is not None:
                client_id = urllib.parse.unquote_plus(user)
            if secret is None and pw is not None:
                secret = urllib.parse.unquote_plus(pw)
        return client_id, secret

    def drop(self):
        print(f"fakesf {self.server.server_port} {self.command} "
              f"{self.path.split('?', 1)[0]} dropped", file=sys.stderr, flush=True)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise DropConnection()

    # -- dispatch

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    after_fault = None                  # a fault that acts once the answer is ready

    conn_seq = 0                        # requests so far on this connection

    def dispatch(self):
        self.after_fault = None
        self.conn_seq += 1
        path, query, form, raw = self.parse()
        try:
            if path.startswith("/__control/"):
                self.control(path, query, raw)
            else:
                self.salesforce(path, query, form)
        except DropConnection:
            pass

    ROUTES = {
        "/services/oauth2/authorize": ("authorize", ("GET", "POST")),
        "/services/oauth2/token": ("token", ("POST",)),
        "/services/oauth2/revoke": ("revoke", ("GET", "POST")),
        "/services/oauth2/userinfo": ("userinfo", ("GET", "POST")),
        "/services/oauth2/introspect": ("introspect", ("POST",)),
    }

    def endpoint_of(self, path, form):
        if path in self.ROUTES:
            name, methods = self.ROUTES[path]
            if name == "token":
                name = {"authorization_code": "token_code",
                        "refresh_token": "token_refresh"}.get(form.get("grant_type"), "token_other")
            return name, methods
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "id":
            return "identity", ("GET", "POST")
        if (len(parts) == 4 and parts[:2] == ["services", "data"]
                and parts[2].startswith("v") and parts[3] == "limits"):
            return "limits", ("GET",)
        return None, ()

    def salesforce(self, path, query, form):
        endpoint, methods = self.endpoint_of(path, form)
        if endpoint is None:
            return self.send_json(404, [{"errorCode": "NOT_FOUND",
                                         "message": "The requested resource does not exist"}])
        st = self.state
        with st.lock:
            st.record({"endpoint": endpoint, "method": self.command, "path": path,
                       "host": self.headers.get("Host"), "form": form, "query": query,
                       "authorization": self.headers.get("Authorization"),
                       "conn_seq": self.conn_seq, "at": time.time()})
        if self.command not in methods:
            return self.send_json(405, [{"errorCode": "METHOD_NOT_ALLOWED",
                                         "message": f"HTTP Method '{self.command}' not allowed"}])
        with st.lock:
            fault = st.pop_fault(endpoint)
        if fault and self.apply_fault(fault, endpoint):
            return
        handler = getattr(self, "ep_" + endpoint)
        try:
            handler(query, form, fault)
        except OAuthError as e:
            self.send_json(e.status, e.body(), headers=[("Cache-Control", "no-store")])
        except AuthorizePageError as e:
            self.send(400, authorize_error_page(e.error, e.description),
                      "text/html;charset=UTF-8", [("Cache-Control", "no-store")])

    def apply_fault(self, fault, endpoint):
        """Answer the fault if it replaces the answer; True when answered."""
        kind = fault.kind
        if kind in MODIFYING_KINDS:
            if kind == "delay" and endpoint != "token_refresh":
                time.sleep(fault.delay_ms / 1000)  # token_refresh sleeps while "in progress"
            if kind in ("drop_after", "delay_after"):
                self.after_fault = fault
            return False
        if kind == "error" or kind in ERROR_PRESETS:
            self.send(fault.status, fault.body, fault.content_type,
                      [("Cache-Control", "no-store")])
        elif kind == "status500":
            self.send(500, b"<html><body><h1>500 Internal Server Error</h1>"
                      b"<p>An unexpected error occurred.</p></body></html>",
                      "text/html;charset=UTF-8")
        elif kind == "malformed":
            self.send(200, b'{"access_token": "abc", ', JSON_TYPE)
        elif kind == "drop":
            self.drop()
        elif kind == "invalid_client":
            self.send_json(400, OAuthError("invalid_client", "invalid client credentials").body())
        elif kind == "rate_limit":
            self.send_json(400, {"error": "rate_limit_exceeded",
                                 "error_description": "too many requests, try again later"})
        else:                                     # already_processing
            self.send_json(400, OAuthError.of(ALREADY_PROCESSING).body())
        return True

    # -- Salesforce endpoints

    def ep_authorize(self, query, form, fault):
        params = {**query, **form}
        with self.state.lock:
            location = self.state.authorize(params, self.login_host())
        self.send(302, b"", headers=[("Location", location), ("Cache-Control", "no-store")],
                  content_type="text/html;charset=UTF-8")

    def token_headers(self):
        return [("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")]

    def ep_token_code(self, query, form, fault):
        st = self.state
        with st.lock:
            body = st.exchange_code(form, self.client_credentials(form), self.login_host(),
                                    fault, self.server.server_port)
        self.send_json(200, body, self.token_headers())

    def ep_token_refresh(self, query, form, fault):
        st = self.state
        with st.lock:
            token = st.begin_refresh(form, self.client_credentials(form))
        try:
            if fault and fault.kind == "delay":
                time.sleep(fault.delay_ms / 1000)
            with st.lock:
                body = st.finish_refresh(token, self.login_host(), fault,
                                         self.server.server_port)
        finally:
            with st.lock:
                st.in_progress.discard(token)
        self.send_json(200, body, self.token_headers())

    def ep_token_other(self, query, form, fault):
        raise OAuthError("unsupported_grant_type", "grant type not supported")

    def ep_revoke(self, query, form, fault):
        token = form.get("token") or query.get("token") or ""
        with self.state.lock:
            self.state.revoke(token, self.login_host())
        self.send(200, b"", content_type="text/plain")

    def ep_introspect(self, query, form, fault):
        with self.state.lock:
            body = self.state.introspect(form.get("token", ""), self.client_credentials(form))
        self.send_json(200, body)

    def bad_oauth_token(self):
        self.send(403, b"Bad_OAuth_Token", "text/plain;charset=UTF-8")

    def ep_identity(self, query, form, fault):
        _, org_id, user_id = self.path.split("?", 1)[0].strip("/").split("/")
        st = self.state
        with st.lock:
            at = st.valid_access(self.bearer(query) or form.get("oauth_token"))
            body = st.identity(at, org_id, user_id) if at else None
        if at and body is None:            # not this token's user: no such identity
            return self.send(404, b"Bad_Id", "text/plain;charset=UTF-8")
        if body is None:
            return self.bad_oauth_token()
        self.send_json(200, body)

    def ep_userinfo(self, query, form, fault):
        st = self.state
        with st.lock:
            at = st.valid_access(self.bearer(query) or form.get("oauth_token"))
            body = st.userinfo(at) if at else None
        if body is None:
            return self.bad_oauth_token()
        self.send_json(200, body)

    def ep_limits(self, query, form, fault):
        with self.state.lock:
            at = self.state.valid_access(self.bearer(query))
        if not at:
            return self.send_json(401, INVALID_SESSION,
                                  [("WWW-Authenticate", 'Token realm="Salesforce"')])
        self.send_json(200, {"DailyApiRequests": {"Max": 15000, "Remaining": 14999},
                             "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
                             "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200}})

    # -- control API

    def control(self, path, query, raw):
        name = path[len("/__control/"):].strip("/").replace("/", "_")
        handler = getattr(self, "ctl_" + name, None)
        if handler is None:
            return self.send_json(404, {"error": f"no control endpoint {path}"})
        try:
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ControlError("the body must be a JSON object")
            with self.state.lock:
                result = handler(self.command, query, body)
        except (ValueError, ControlError) as e:
            return self.send_json(400, {"error": str(e)})
        self.send_json(200, result)

    @staticmethod
    def need(method, *allowed):
        if method not in allowed:
            raise ControlError(f"use {' or '.join(allowed)}")

    def ctl_health(self, method, query, body):
        return {"ok": True}

    def ctl_reset(self, method, query, body):
        self.need(method, "POST")
        self.state.reset()
        return {"ok": True}

    def ctl_config(self, method, query, body):
        if method == "GET":
            return self.state.config_view()
        self.need(method, "POST")
        return self.state.apply_config(body)

    def org_filter(self, body):
        org_id = body.get("org_id")
        try:
            return normalize_id(org_id, "00D") if org_id else None
        except ValueError as e:
            raise ControlError(str(e)) from None

    def ctl_expire_access(self, method, query, body):
        self.need(method, "POST")
        return {"expired": self.state.expire_access(self.org_filter(body))}

    def ctl_revoke_refresh(self, method, query, body):
        self.need(method, "POST")
        return {"revoked": self.state.revoke_refresh(self.org_filter(body))}

    def ctl_expire_codes(self, method, query, body):
        self.need(method, "POST")
        n = len(self.state.codes)
        for code in self.state.codes.values():
            code.expires_at = 0
        return {"expired": n}

    def ctl_counts(self, method, query, body):
        self.need(method, "GET")
        return dict(self.state.counts)

    def ctl_counts_reset(self, method, query, body):
        self.need(method, "POST")
        self.state.counts = dict.fromkeys(self.state.counts, 0)
        return {"ok": True}

    def ctl_requests(self, method, query, body):
        self.need(method, "GET")
        found = [r for r in self.state.requests
                 if query.get("endpoint") in (None, "", r["endpoint"])]
        limit = int(query.get("limit") or 0)
        return found[-limit:] if limit > 0 else found

    def ctl_tokens(self, method, query, body):
        self.need(method, "GET")
        return {"access_tokens": list(self.state.issued_access),
                "refresh_tokens": list(self.state.issued_refresh)}

    def ctl_grants(self, method, query, body):
        self.need(method, "GET")
        return self.state.grants_view()

    def ctl_grants_mint(self, method, query, body):
        """n more grants like the one of refresh token `like` (its login host,
        scope and client), each of a new org and user: what n approvals
        would make, for benches that seed many connected orgs at once."""
        self.need(method, "POST")
        n, like = body.get("n"), body.get("like")
        if not isinstance(n, int) or not 1 <= n <= 1000000:
            raise ControlError("n must be an integer from 1 to 1000000")
        template, _ = self.state.refresh_tokens.get(like or "", (None, None))
        if template is None:
            raise ControlError("like must be a current refresh token")
        now = self.state.now()
        out = []
        for _ in range(n):
            grant = Grant(random_id("00D"), random_id("005"), template.login_host,
                          template.scope, client_id=template.client_id,
                          created_at=now, last_used=now)
            self.state.grants.append(grant)
            out.append({"org_id": grant.org_id, "user_id": grant.user_id,
                        "refresh_token": self.state.issue_refresh(grant)})
        return {"grants": out}

    def ctl_fault(self, method, query, body):
        self.need(method, "POST")
        endpoint, kind = body.get("endpoint"), body.get("kind")
        if endpoint not in FAULT_ENDPOINTS:
            raise ControlError(f"endpoint must be one of {', '.join(FAULT_ENDPOINTS)}")
        if kind not in FAULT_KINDS:
            raise ControlError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        count, delay_ms = int(body.get("count", 1)), int(body.get("delay_ms", 0))
        if count < 1 or delay_ms < 0:
            raise ControlError("count must be >= 1 and delay_ms >= 0")
        fault = Fault(kind, count, delay_ms)
        if kind in ERROR_PRESETS:
            fault.status, ctype, preset = ERROR_PRESETS[kind]
            fault.content_type = ctype or JSON_TYPE
            fault.body = (preset if ctype else json.dumps(
                {"error": preset[0], "error_description": preset[1]})).encode()
        elif kind == "error":
            fault.status = int(body.get("status", 400))
            if not 100 <= fault.status <= 599:
                raise ControlError("status must be an HTTP status")
            raw = body.get("body", "")
            if "error" in body and "body" not in body:
                raw = {"error": str(body["error"]),
                       "error_description": str(body.get("error_description", ""))}
            fault.content_type = str(body.get("content_type") or
                                     (JSON_TYPE if not isinstance(raw, str) else
                                      "text/plain;charset=UTF-8"))
            fault.body = (raw if isinstance(raw, str) else json.dumps(raw)).encode()
            if "body_b64" in body:      # raw bytes, e.g. invalid UTF-8
                fault.body = base64.b64decode(body["body_b64"])
        self.state.push_fault(endpoint, fault)
        return {"ok": True, "pending": {k: sum(f.count for f in q)
                                        for k, q in self.state.faults.items() if q}}

    def ctl_clock(self, method, query, body):
        if method == "POST":
            unknown = set(body) - {"advance_s", "offset_s"}
            if unknown:
                raise ControlError(f"unknown clock keys: {sorted(unknown)}")
            for key in ("advance_s", "offset_s"):
                value = body.get(key)
                if value is not None and (isinstance(value, bool)
                                          or not isinstance(value, (int, float))):
                    raise ControlError(f"{key} must be a number of seconds")
            if (body.get("advance_s") or 0) < 0:
                raise ControlError("the clock does not go back: advance_s must be >= 0")
            if body.get("offset_s") is not None:
                self.state.clock_offset = float(body["offset_s"])
            self.state.clock_offset += float(body.get("advance_s") or 0)
        else:
            self.need(method, "GET", "POST")
        return self.state.clock_view()

    def ctl_fault_clear(self, method, query, body):
        self.need(method, "POST")
        self.state.faults.clear()
        return {"ok": True}


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128    # bulk checks open dozens of connections at once

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        print(f"fakesf {self.server_port} connection error: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)


# ---------------------------------------------------------------- certificates

def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_ca(directory, name, cn):
    key, cert = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={cn}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash")
    return key, cert


def make_server_cert(directory, name, ca_key, ca_cert):
    key = os.path.join(directory, name + ".key")
    csr = os.path.join(directory, name + ".csr")
    cert = os.path.join(directory, name + ".pem")
    ext = os.path.join(directory, name + ".ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={SAN}\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
            "-set_serial", "0x" + secrets.token_hex(16), "-days", "2",
            "-extfile", ext, "-out", cert)
    os.remove(csr)
    return key, cert


def make_certificates(directory):
    """Answer ((cert, key) trusted, (cert, key) untrusted); ca.pem is the trusted CA."""
    ca_key, ca_cert = make_ca(directory, "ca", "fakesf test CA")
    key, cert = make_server_cert(directory, "server", ca_key, ca_cert)
    other = os.path.join(directory, "untrusted")
    os.makedirs(other, exist_ok=True)
    bad_ca_key, bad_ca = make_ca(other, "untrusted-ca", "fakesf throwaway CA")
    bad_key, bad_cert = make_server_cert(other, "server", bad_ca_key, bad_ca)
    for path in (ca_key, key, bad_ca_key, bad_key):
        os.chmod(path, 0o600)
    return (cert, key), (bad_cert, bad_key)


# ---------------------------------------------------------------- main

def serve(host, port, cert, key, state):
    """Serves on host:port, HTTPS with cert and key (plain HTTP without)."""
    Handler.state = state
    server = Server((host, port), Handler)
    if cert is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        # The handshake happens in the handler thread, not in accept().
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_json_atomic(path, obj):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Salesforce OAuth simulator")
    ap.add_argument("--dir", required=True, help="where ca.pem and fakesf.json go")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--untrusted-port", type=int, default=None)
    # For a TLS-terminating front (bench/check_jobs.py --tls-front): the
    # same endpoints over plain HTTP, on the loopback only.
    ap.add_argument("--plain-port", type=int,
                    default=os.environ.get("FAKESF_PLAIN_PORT") or None)
    args = ap.parse_args(argv)

    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    trusted, untrusted = make_certificates(directory)
    state = State()
    servers = [serve(args.host, args.port, *trusted, state)]
    state.port = servers[0].server_port
    untrusted_port = None
    if args.untrusted_port is not None:
        servers.append(serve(args.host, args.untrusted_port, *untrusted, state))
        untrusted_port = servers[-1].server_port
    plain_port = None
    if args.plain_port is not None:
        servers.append(serve("127.0.0.1", int(args.plain_port), None, None, state))
        plain_port = servers[-1].server_port

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    info_path = os.path.join(directory, "fakesf.json")
    write_json_atomic(info_path, {"port": state.port, "untrusted_port": untrusted_port,
                                  "plain_port": plain_port,
                                  "ca": os.path.join(directory, "ca.pem"),
                                  "pid": os.getpid()})
    print(f"fakesf ready port={state.port}", flush=True)
    while not stop.wait(0.5):
        pass
    for server in servers:
        server.shutdown()
        server.server_close()
    try:
        os.remove(info_path)
    except OSError:
        pass
    print("fakesf stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
