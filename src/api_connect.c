/*
 * Connecting and disconnecting: POST .../connect makes a one-time state,
 * the callback exchanges the code and stores the tokens, DELETE removes.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api.h"
#include "lifecycle.h"
#include "crypto.h"
#include "db.h"
#include "keyring.h"
#include "log.h"
#include "secret.h"
#include "sf.h"
#include "status.h"
#include "util.h"

#define STATE_TTL_S		600
#define DEFAULT_RETURN_TO	"/admin/integrations"
#define MAX_RETURN_TO		512
/* The browser-binding cookie's path, below public_base_url's own path. */
#define OAUTH_PATH		"/api/v1/oauth/salesforce/"
#define START_PATH		OAUTH_PATH "start?id="
#define BIND_COOKIE		"sfc_oauth_"	/* + 16 hex digits of the state hash */
#define START_ID_BYTES		32		/* 43 base64url characters */
#define REASON_MAX		48	/* characters of a callback's reason */

/*
 * true when return_to is a local path ("/x", never "//x" or "/\x") or a URL
 * on an origin of allowed_return_origins.
 */
static bool
return_to_ok(const char *return_to, const char *allowed_origins)
{
	const char	*p, *slash;
	char		 origin[512];
	size_t		 n;

	for (p = return_to; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p) || *p == '\\' || *p == ' ')
			return false;
	if (return_to[0] == '/')
		return return_to[1] != '/';
	if (strncmp(return_to, "https://", 8) != 0 &&
	    strncmp(return_to, "http://", 7) != 0)
		return false;
	p = strstr(return_to, "://") + 3;
	slash = p + strcspn(p, "/?#");
	n = (size_t)(slash - return_to);
	if (n >= sizeof(origin) || strchr(p, '@') != NULL)
		return false;
	memcpy(origin, return_to, n);
	origin[n] = '\0';
	return cfg_word_in_list(allowed_origins, origin);
}

static int
connect_body(struct ctx *c, const char **environment, const char **my_domain,
    const char **return_to, bool *allow_change, cJSON **body)
{
	const struct api_field fields[] = { { "environment", 16, environment },
		{ "my_domain", 260, my_domain },
		{ "return_to", MAX_RETURN_TO, return_to },
		{ "allow_org_change", 0, NULL }, { NULL, 0, NULL } };

	if (api_body(c, fields, body) == -1 ||
	    api_bool(c, *body, "allow_org_change", allow_change) == -1)
		return -1;
	if (*environment == NULL)
		*environment = "production";
	if (strcmp(*environment, "production") != 0 &&
	    strcmp(*environment, "sandbox") != 0) {
		api_error(c, 400, "bad_request",
		    "environment must be production or sandbox");
		return -1;
	}
	if (*return_to == NULL)
		*return_to = DEFAULT_RETURN_TO;
	if (!return_to_ok(*return_to, c->app->cfg->allowed_return_origins)) {
		api_error(c, 400, "bad_request", "return_to must be a path on "
		    "this site (\"/...\") or a URL on an allowed origin");
		return -1;
	}
	return 0;
}

/* The part of public_base_url after its host, without trailing '/': "" or "/x". */
static void
base_path(const char *base, const char **path, size_t *len)
{
	const char	*p = strstr(base, "://");

	p = p != NULL ? p + 3 : base;
	p += strcspn(p, "/?#");
	*path = p;
	*len = strcspn(p, "?#");
	while (*len > 0 && p[*len - 1] == '/')
		(*len)--;
}

/* public_base_url without its trailing '/' into b. 0, or -1 when full. */
static int
base_url_append(struct buf *b, const char *base)
{
	size_t	 n = strcspn(base, "?#");

	while (n > 0 && base[n - 1] == '/')
		n--;
	return buf_append(b, base, n);
}

bool
api_connect_cookie_secure(const char *public_base_url)
{
	const char	*host;
	char		 h[256];
	size_t		 n;

	if (strncmp(public_base_url, "http://", 7) != 0)
		return true;
	host = public_base_url + 7;
	if (host[0] == '[')
		n = strcspn(host, "]") + 1;	/* an IPv6 literal, brackets kept */
	else
		n = strcspn(host, ":/?#");
	if (n == 0 || n >= sizeof(h))
		return true;
	memcpy(h, host, n);
	h[n] = '\0';
	for (char *q = h; *q != '\0'; q++)
		*q = (char)tolower((unsigned char)*q);
	if (strcmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0 ||
	    (n > 10 && strcmp(h + n - 10, ".localhost") == 0))
		return false;
	/* 127.0.0.0/8, written as a dotted quad. */
	return !(strncmp(h, "127.", 4) == 0 && strspn(h, "0123456789.") == n);
}

/* Sets (max_age > 0) or clears the binding cookie of state_hash. */
static void
bind_cookie(struct ctx *c, const char *state_hash, const char *nonce,
    long long max_age)
{
	const char	*path;
	size_t		 pathlen;
	struct buf	 b;

	base_path(c->app->cfg->public_base_url, &path, &pathlen);
	buf_init(&b, 1024);
	buf_printf(&b, BIND_COOKIE "%.16s=%s; Max-Age=%lld; Path=%.*s" OAUTH_PATH
	    "; HttpOnly; SameSite=Lax%s", state_hash, max_age > 0 ? nonce : "",
	    max_age > 0 ? max_age : 0, (int)pathlen, path,
	    api_connect_cookie_secure(c->app->cfg->public_base_url) ?
	    "; Secure" : "");
	if (b.data == NULL || http_add_header(c->res, "Set-Cookie", b.data) == -1)
		log_warn("cookie_failed", "could not set the binding cookie");
	if (b.data != NULL)
		OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
}

/*
 * true when the Cookie header holds state_hash's binding cookie with the
 * nonce whose SHA-256 is nonce_hash ("" never matches). Every cookie of
 * that name is tried: a cookie tossed in from a sibling domain can only
 * add a wrong one.
 */
static bool
bind_cookie_ok(const char *cookies, const char *state_hash,
    const char *nonce_hash)
{
	char		 name[sizeof(BIND_COOKIE) + 16], hash[65];
	const char	*p = cookies, *v;
	size_t		 namelen, len;
	bool		 ok = false;

	if (nonce_hash[0] == '\0')
		return false;
	namelen = (size_t)snprintf(name, sizeof(name), BIND_COOKIE "%.16s",
	    state_hash);
	while (*p != '\0') {
		p += strspn(p, " \t;");
		len = strcspn(p, ";");
		if (len > namelen && strncmp(p, name, namelen) == 0 &&
		    p[namelen] == '=') {
			v = p + namelen + 1;
			crypto_sha256_hex(v, len - namelen - 1, hash);
			ok |= crypto_ct_streq(hash, nonce_hash);
		}
		p += len;
	}
	return ok;
}

/* true when id looks like a start id (base64url of START_ID_BYTES). */
static bool
start_id_ok(const char *id)
{
	return strlen(id) == (START_ID_BYTES * 4 + 2) / 3 &&
	    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") == strlen(id);
}

/*
 * The start link on our own origin: public_base_url + START_PATH + id
 * (the id is opaque: the raw state never appears on our origin before the
 * callback). NULL on OOM.
 */
static char *
start_url(const struct ctx *c, const char *id)
{
	struct buf	 b;

	buf_init(&b, 2048);
	if (base_url_append(&b, c->app->cfg->public_base_url) == -1 ||
	    buf_puts(&b, START_PATH) == -1 || buf_puts(&b, id) == -1) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

void
h_connect(struct ctx *c)
{
	const char	*environment, *my_domain, *return_to;
	bool		 allow_change = false;
	cJSON		*body = NULL, *o;
	char		 login_base[256], err[300], state_hash[65], actor[160];
	char		 aad[128], *state = NULL, *verifier = NULL;
	char		*challenge = NULL, *verifier_enc = NULL, *url = NULL;
	char		*start_id = NULL, *url_enc = NULL, *start = NULL;
	char		 detail[512], start_hash[65];
	time_t		 expires_at;
	int		 rc;

	if (connect_body(c, &environment, &my_domain, &return_to,
	    &allow_change, &body) == -1)
		goto out;
	if (sf_login_base(c->app->cfg, environment, my_domain, login_base,
	    sizeof(login_base), err, sizeof(err)) == -1) {
		api_error(c, 400, "bad_request", "%s", err);
		goto out;
	}
	if ((state = crypto_random_token(32)) == NULL ||
	    (start_id = crypto_random_token(START_ID_BYTES)) == NULL ||
	    (verifier = crypto_random_token(48)) == NULL ||
	    (challenge = crypto_pkce_challenge(verifier)) == NULL) {
		api_error(c, 500, "internal", "could not make a state");
		goto out;
	}
	crypto_sha256_hex(state, strlen(state), state_hash);
	snprintf(aad, sizeof(aad), "state:%s:verifier", state_hash);
	if ((verifier_enc = keyring_seal(c->app->keyring, aad, verifier)) == NULL ||
	    (url = sf_authorize_url(c->app->sf, login_base, state,
	    challenge)) == NULL) {
		api_error(c, 500, "internal", "could not seal the verifier");
		goto out;
	}
	/* The start link redirects to url, which holds the raw state: sealed. */
	crypto_sha256_hex(start_id, strlen(start_id), start_hash);
	snprintf(aad, sizeof(aad), "state:%s:authorize_url", state_hash);
	if ((url_enc = keyring_seal(c->app->keyring, aad, url)) == NULL ||
	    (start = start_url(c, start_id)) == NULL) {
		api_error(c, 500, "internal", "could not seal the start link");
		goto out;
	}
	api_actor(c, actor, sizeof(actor));
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "environment", environment);
	cJSON_AddStringToObject(o, "login_host", login_base);
	cJSON_AddBoolToObject(o, "allow_org_change", allow_change);
	rc = cJSON_PrintPreallocated(o, detail, sizeof(detail), 0) ? DB_OK :
	    DB_ERROR;
	cJSON_Delete(o);
	if (rc != DB_OK || (rc = db_begin(c->app->db)) != DB_OK ||
	    (rc = db_state_create(c->app->db, state_hash, c->org.id,
	    verifier_enc, environment, login_base, return_to, allow_change,
	    actor, STATE_TTL_S, start_hash, url_enc, &expires_at)) != DB_OK ||
	    (rc = db_audit_add(c->app->db, c->org.id, actor, "connect_started",
	    detail)) != DB_OK || (rc = db_commit(c->app->db)) != DB_OK) {
		db_rollback(c->app->db);
		api_db_error(c, rc);
		goto out;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "authorize_url", url);
	cJSON_AddStringToObject(o, "start_url", start);
	api_add_time_or_null(o, "expires_at", expires_at);
	http_add_header(c->res, "Cache-Control", "no-store");
	api_json(c, 200, o);
out:
	cJSON_Delete(body);
	secret_free(state);
	secret_free(start_id);
	secret_free(verifier);
	free(challenge);
	free(verifier_enc);
	free(url_enc);
	secret_free(url);
	secret_free(start);
}

void
h_oauth_start(struct ctx *c)
{
	char		 id[64], start_hash[65], nonce_hash[65], state_hash[65];
	char		 aad[128], *nonce = NULL, *url_enc = NULL, *url = NULL;
	long long	 ttl_s;
	int		 rc;

	if (http_query_param(c->req->query, "id", id, sizeof(id)) != 1 ||
	    !start_id_ok(id)) {
		api_error(c, 400, "invalid_state", "the start link is missing "
		    "or malformed");
		return;
	}
	crypto_sha256_hex(id, strlen(id), start_hash);
	if ((nonce = crypto_random_token(32)) == NULL) {
		api_error(c, 500, "internal", "could not make a nonce");
		goto out;
	}
	crypto_sha256_hex(nonce, strlen(nonce), nonce_hash);
	rc = db_state_start(c->app->db, start_hash, nonce_hash, state_hash,
	    &url_enc, &ttl_s);
	if (api_found(c, rc, 400, "invalid_state", "the start link is "
	    "unknown, expired or already used: start the connection again") == -1)
		goto out;
	snprintf(aad, sizeof(aad), "state:%s:authorize_url", state_hash);
	if ((url = keyring_open(c->app->keyring, aad, url_enc)) == NULL) {
		api_error(c, 500, "internal", "the start link could not be opened");
		goto out;
	}
	/* Only ever to the state's own authorize URL: never an open redirect. */
	bind_cookie(c, state_hash, nonce, ttl_s);
	c->res->status = 303;
	http_add_header(c->res, "Location", url);
	http_add_header(c->res, "Cache-Control", "no-store");
	http_add_header(c->res, "Referrer-Policy", "no-referrer");
out:
	secret_free(nonce);
	free(url_enc);
	secret_free(url);
}

/* The outcome of a callback, for the redirect or the JSON answer. */
struct outcome {
	bool		 ok;
	char		 reason[REASON_MAX + 1];	/* [A-Za-z0-9_], when !ok: for return_to */
	char		 message[256];
	int		 json_status;	/* when !ok */
	const char	*json_code;	/* when !ok: an error code of docs/API.md */
	char		 org_id[19];	/* when ok */
};

static void
fail(struct outcome *out, int json_status, const char *json_code,
    const char *reason, const char *message)
{
	size_t	 n = 0;

	out->ok = false;
	out->json_status = json_status;
	out->json_code = json_code;
	/*
	 * reason goes into a URL: keep only [A-Za-z0-9_], so Salesforce's
	 * codes stay readable (OAUTH_APP_ACCESS_DENIED), at most
	 * REASON_MAX characters.
	 */
	for (const char *p = reason; *p != '\0' && n < REASON_MAX; p++)
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_')
			out->reason[n++] = *p;
	out->reason[n] = '\0';
	if (n == 0)
		snprintf(out->reason, sizeof(out->reason), "error");
	snprintf(out->message, sizeof(out->message), "%s", message);
}

/* A failed Salesforce call: 502, unavailable when transient. */
static void
fail_sf(struct outcome *out, const struct sf_error *err)
{
	fail(out, 502, err->kind == SF_TRANSIENT ? "salesforce_unavailable" :
	    "salesforce_error", err->code, err->message);
}

static bool
wants_json(const struct ctx *c)
{
	return strstr(c->req->accept, "application/json") != NULL;
}

/* The error JSON of docs/API.md, plus error.reason: the return_to reason. */
static void
callback_error(struct ctx *c, const struct outcome *out)
{
	cJSON	*root = cJSON_CreateObject(), *err;

	if (out->json_status == 503)	/* as every 503 of docs/API.md */
		http_add_header(c->res, "Retry-After", "2");
	err = cJSON_AddObjectToObject(root, "error");
	cJSON_AddStringToObject(err, "code", out->json_code);
	cJSON_AddStringToObject(err, "message", out->message);
	cJSON_AddStringToObject(err, "reason", out->reason);
	cJSON_AddStringToObject(root, "request_id", c->req->request_id);
	api_json(c, out->json_status, root);
}

/* Answers the callback: a 303 to return_to, or JSON. */
static void
answer_callback(struct ctx *c, const struct oauth_state *st,
    const struct outcome *out)
{
	struct integration	 integ;
	struct buf		 loc;
	size_t			 before_fragment;
	int			 rc;

	if (wants_json(c)) {
		if (!out->ok) {
			callback_error(c, out);
			return;
		}
		if ((rc = db_integration_get(c->app->db, st->org_id, &integ)) != DB_OK) {
			api_db_error(c, rc);
			return;
		}
		api_json(c, 200, status_object(&integ));
		db_integration_clear(&integ);
		return;
	}
	/* The outcome goes into the query, before any fragment. */
	before_fragment = strcspn(st->return_to, "#");
	buf_init(&loc, 2048);
	buf_append(&loc, st->return_to, before_fragment);
	buf_puts(&loc, memchr(st->return_to, '?', before_fragment) ? "&" : "?");
	if (out->ok)
		buf_printf(&loc, "salesforce=connected&org_id=%s", out->org_id);
	else
		buf_printf(&loc, "salesforce=error&reason=%s", out->reason);
	buf_puts(&loc, st->return_to + before_fragment);
	c->res->status = 303;
	buf_reset(&c->res->body);
	http_add_header(c->res, "Location", loc.data ? loc.data : "/");
	http_add_header(c->res, "Cache-Control", "no-store");
	buf_free(&loc);
}

/* How each failed lc_connect answers (LCC_SALESFORCE: the error's own). */
static const struct connect_failure {
	enum lc_connect_rc	 rc;
	int			 status;
	const char		*code, *reason, *message;
} connect_failures[] = {
	{ LCC_NO_REFRESH_TOKEN, 502, "salesforce_error", "no_refresh_token",
	  "Salesforce issued no refresh token: the app's OAuth scopes must "
	  "include refresh_token (offline_access)" },
	{ LCC_INSUFFICIENT_SCOPE, 502, "salesforce_error", "insufficient_scope",
	  "Salesforce granted fewer OAuth scopes than salesforce_scope asks "
	  "for: the app's OAuth scopes (or the user's access) must allow them "
	  "all" },
	{ LCC_INACTIVE_USER, 502, "salesforce_error", "inactive_user",
	  "the Salesforce user is not active" },
	{ LCC_ORG_MISMATCH, 409, "conflict", "org_mismatch", "this Salesforce "
	  "org is not the connected one; connect again with allow_org_change "
	  "to switch orgs, or remove the integration first" },
	{ LCC_DB_UNAVAILABLE, 503, "service_unavailable", "service_unavailable",
	  "the database is unavailable" },
	{ LCC_STATE_UNREADABLE, 500, "internal", "internal",
	  "the state could not be opened" },
};

/* Fills out from a failed lc_connect. */
static void
connect_failed(struct outcome *out, enum lc_connect_rc lrc,
    const struct sf_error *err)
{
	const struct connect_failure	*f;

	if (lrc == LCC_SALESFORCE) {
		fail_sf(out, err);
		return;
	}
	for (size_t i = 0; i < ARRAY_LEN(connect_failures); i++) {
		f = &connect_failures[i];
		if (f->rc == lrc) {
			fail(out, f->status, f->code, f->reason, f->message);
			return;
		}
	}
	fail(out, 500, "internal", "internal", "could not seal the tokens");
}

void
h_callback(struct ctx *c)
{
	char			 state[128], code[512], error[64], desc[256];
	char			 state_hash[65];
	struct oauth_state	 st;
	struct outcome		 out = { .ok = false };
	struct sf_error		 err;
	enum lc_connect_rc	 lrc;
	int			 rc, has_state, has_code, has_error;

	has_state = http_query_param(c->req->query, "state", state, sizeof(state));
	has_code = http_query_param(c->req->query, "code", code, sizeof(code));
	has_error = http_query_param(c->req->query, "error", error, sizeof(error));
	if (http_query_param(c->req->query, "error_description", desc,
	    sizeof(desc)) != 1)
		desc[0] = '\0';
	if (has_state != 1 || state[0] == '\0') {
		api_error(c, 400, "invalid_state",
		    "the state is missing or unknown");
		return;
	}
	crypto_sha256_hex(state, strlen(state), state_hash);
	bind_cookie(c, state_hash, NULL, 0);	/* cleared, whatever the outcome */
	rc = db_state_consume(c->app->db, state_hash, &st);
	if (api_found(c, rc, 400, "invalid_state", "the state is unknown, "
	    "expired or already used: start the connection again") == -1)
		return;
	snprintf(st.state_hash, sizeof(st.state_hash), "%s", state_hash);
	if (c->app->cfg->connect_bind_browser &&
	    !bind_cookie_ok(c->req->cookie, state_hash, st.nonce_hash)) {
		/* Consumed all the same: a state seen in another browser leaked. */
		fail(&out, 400, "invalid_state", "browser_mismatch", "this "
		    "browser did not open the connection's start_url: start the "
		    "connection again in one browser");
		lc_audit_connect(c->app, &st, "connect_failed", out.reason, NULL,
		    NULL);
	} else if (has_error == 1 || has_code != 1 || code[0] == '\0') {
		fail(&out, 400, "bad_request",
		    has_error == 1 ? error : "invalid_request",
		    desc[0] ? desc : "Salesforce did not authorize the connection");
		lc_audit_connect(c->app, &st, strcmp(out.reason,
		    "access_denied") == 0 ? "connect_denied" : "connect_failed",
		    out.reason, NULL, NULL);
	} else if ((lrc = lc_connect(c->app, &st, code, out.org_id,
	    &err)) != LCC_OK) {
		connect_failed(&out, lrc, &err);
		lc_audit_connect(c->app, &st, "connect_failed", out.reason, NULL,
		    NULL);
	} else
		out.ok = true;
	answer_callback(c, &st, &out);
	db_state_clear(&st);
}

void
h_disconnect(struct ctx *c)
{
	struct integration	 integ;
	char			 actor[160];
	bool			 revoked;
	enum lc_rc		 lrc;
	cJSON			*o;
	int			 rc;

	lrc = lc_disconnect(c->app, c->org.id, api_actor(c, actor,
	    sizeof(actor)), &revoked);
	if (lrc != LC_OK) {
		api_db_error(c, lrc == LC_DB_UNAVAILABLE ? DB_UNAVAILABLE :
		    DB_ERROR);
		return;
	}
	if ((rc = db_integration_get(c->app->db, c->org.id, &integ)) != DB_OK) {
		api_db_error(c, rc);
		return;
	}
	o = status_object(&integ);
	cJSON_AddBoolToObject(o, "revoked", revoked);
	db_integration_clear(&integ);
	api_json(c, 200, o);
}
