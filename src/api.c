#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "api.h"
#include "crypto.h"
#include "db.h"
#include "http_parse.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

enum route_flags {
	ROUTE_NO_DB = 1 << 0,	/* the handler copes with the database down */
	/*
	 * A read handler of one org: its integration row comes with the key
	 * (c->integ), in the same round trip. Never for a handler that writes
	 * before it reads.
	 */
	ROUTE_INTEG = 1 << 1,
	/*
	 * A ROUTE_INTEG read that may be answered from the worker's cache
	 * (db_auth_lookup_cached): its integration comes with the sealed
	 * access token only, and a few milliseconds old at most. The token
	 * handler serves it only when no refresh is due; a refresh locks and
	 * reads the row anew.
	 */
	ROUTE_CACHED = 1 << 2,
};

struct route {
	const char	*method;
	const char	*pattern;
	enum role	 role;		/* ROLE_NONE: no authentication */
	void		(*handler)(struct ctx *);
	unsigned	 flags;
};

#define ORG_API	"/api/v1/orgs/{org}"
#define SF	ORG_API "/integrations/salesforce"

static const struct route routes[] = {
	{ "GET", "/healthz", ROLE_NONE, h_healthz, ROUTE_NO_DB },
	{ "GET", "/metrics", ROLE_NONE, h_metrics, ROUTE_NO_DB },
	{ "GET", SF, ROLE_VIEWER, h_status_get, ROUTE_INTEG | ROUTE_CACHED },
	{ "DELETE", SF, ROLE_ADMIN, h_disconnect, 0 },
	{ "POST", SF "/connect", ROLE_ADMIN, h_connect, 0 },
	{ "POST", SF "/check", ROLE_ADMIN, h_check, 0 },
	{ "GET", SF "/token", ROLE_SERVICE, h_token, ROUTE_INTEG | ROUTE_CACHED },
	{ "POST", "/api/v1/admin/integrations/check", ROLE_OPERATOR, h_admin_check, 0 },
	{ "GET", "/api/v1/oauth/salesforce/callback", ROLE_NONE, h_callback, 0 },
	{ "GET", "/api/v1/oauth/salesforce/start", ROLE_NONE, h_oauth_start, 0 },
	{ "GET", ORG_API "/banners", ROLE_VIEWER, h_banners, ROUTE_INTEG | ROUTE_CACHED },
	{ "GET", ORG_API "/audit", ROLE_ADMIN, h_audit, 0 },
	{ "GET", "/api/v1/admin/integrations", ROLE_OPERATOR, h_admin_integrations, 0 },
	{ "POST", "/api/v1/admin/orgs", ROLE_OPERATOR, h_admin_org_create, 0 },
	{ "GET", "/api/v1/admin/orgs", ROLE_OPERATOR, h_admin_org_list, 0 },
	{ "POST", "/api/v1/admin/orgs/{org}/keys", ROLE_OPERATOR, h_admin_key_create, 0 },
	{ "GET", "/api/v1/admin/keys", ROLE_OPERATOR, h_admin_key_list, 0 },
	{ "DELETE", "/api/v1/admin/keys/{id}", ROLE_OPERATOR, h_admin_key_revoke, 0 },
	{ "GET", "/api/v1/admin/webhook-deliveries", ROLE_OPERATOR, h_admin_webhook_deliveries, 0 },
	{ "GET", "/api/v1/admin/check-jobs/{id}", ROLE_OPERATOR, h_admin_check_job, 0 },
};
#define NROUTES	ARRAY_LEN(routes)
_Static_assert(NROUTES < METRICS_ROUTES_MAX, "raise METRICS_ROUTES_MAX");

enum bad_param { PARAM_OK, PARAM_BAD_ORG, PARAM_BAD_ID };

struct match {
	char		 org[64];	/* {org}, when has_org */
	char		 id[64];	/* {id}, when has_id */
	int		 has_org, has_id;
	enum bad_param	 bad;
};

static int
id_ok(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++, n++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '_'))
			return 0;
	return n >= 1 && n <= 40;
}

/* 1 when path matches pattern (filling m), else 0. */
static int
route_match(const char *pattern, const char *path, struct match *m)
{
	memset(m, 0, sizeof(*m));
	while (*pattern == '/' && *path == '/') {
		size_t plen, slen;

		pattern++;
		path++;
		plen = strcspn(pattern, "/");
		slen = strcspn(path, "/");
		if (plen > 2 && pattern[0] == '{') {
			int is_org = strncmp(pattern, "{org}", 5) == 0;
			char *dst = is_org ? m->org : m->id;

			if (slen == 0)
				return 0;
			if (is_org)
				m->has_org = 1;
			else
				m->has_id = 1;
			if (slen >= sizeof(m->org))
				m->bad = is_org ? PARAM_BAD_ORG : PARAM_BAD_ID;
			else {
				memcpy(dst, path, slen);
				dst[slen] = '\0';
			}
		} else if (plen != slen || strncmp(pattern, path, plen) != 0)
			return 0;
		pattern += plen;
		path += slen;
	}
	if (*pattern != '\0' || *path != '\0')
		return 0;
	if (m->bad == PARAM_OK && m->has_org && !slug_ok(m->org))
		m->bad = PARAM_BAD_ORG;
	if (m->bad == PARAM_OK && m->has_id && !id_ok(m->id))
		m->bad = PARAM_BAD_ID;
	return 1;
}

#define API_JSON_FIRST	4096	/* the first try of print_body: most answers */

/*
 * Prints body into out with cJSON_PrintPreallocated: cJSON's own print
 * buffer (grown by realloc, then freed as it is) would leave copies of a
 * token or a new API key in freed memory. out is presized (buf_presize:
 * wiped whenever it moves or goes); a print that does not fit is wiped and
 * tried again in a buffer four times larger, up to out's maximum. 0 or -1.
 */
static int
print_body(struct buf *out, cJSON *body)
{
	size_t	 size = API_JSON_FIRST;

	for (;;) {
		buf_cleanse_free(out);
		if (size > out->max)
			size = out->max;
		if (buf_presize(out, size) == -1 || out->cap > INT_MAX)
			return -1;
		if (cJSON_PrintPreallocated(body, out->data, (int)out->cap, 0)) {
			out->len = strlen(out->data);
			return 0;
		}
		if (size == out->max)
			return -1;
		size *= 4;
	}
}

void
api_json(struct ctx *c, int status, cJSON *body)
{
	if (body == NULL || print_body(&c->res->body, body) == -1) {
		buf_reset(&c->res->body);
		c->res->status = 500;
		buf_printf(&c->res->body, "{\"error\":{\"code\":\"internal\","
		    "\"message\":\"response could not be built\"},"
		    "\"request_id\":\"%s\"}", c->req->request_id);
	} else
		c->res->status = status;
	c->res->content_type = "application/json";
	cJSON_Delete(body);
}

void
api_error(struct ctx *c, int status, const char *code, const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;
	cJSON	*root, *err;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (status == 401)
		http_add_header(c->res, "WWW-Authenticate",
		    "Bearer realm=\"sfconnect\"");
	root = cJSON_CreateObject();
	err = cJSON_AddObjectToObject(root, "error");
	cJSON_AddStringToObject(err, "code", code);
	cJSON_AddStringToObject(err, "message", msg);
	cJSON_AddStringToObject(root, "request_id", c->req->request_id);
	if (status >= 500)
		log_warn("request_error", "%d %s: %s", status, code, msg);
	api_json(c, status, root);
}

int
api_query_cursor_as(struct ctx *c, int (*ok)(const char *), char *cursor,
    size_t cursorlen)
{
	int	 found = http_query_param(c->req->query, "cursor", cursor,
		    cursorlen);

	if (found == 1 && !ok(cursor))
		return -1;
	return found;
}

int
api_query_cursor(struct ctx *c, char *cursor, size_t cursorlen)
{
	return api_query_cursor_as(c, slug_ok, cursor, cursorlen);
}

void
api_page_reply(struct ctx *c, int rc, cJSON *root, const cJSON *list,
    long limit, const char *member)
{
	int	 n = cJSON_GetArraySize(list);
	cJSON	*last;

	if (rc != DB_OK) {
		cJSON_Delete(root);
		api_db_error(c, rc);
		return;
	}
	if (n == limit && (last = cJSON_GetArrayItem(list, n - 1)) != NULL &&
	    cJSON_IsString(cJSON_GetObjectItem(last, member)))
		cJSON_AddStringToObject(root, "next_cursor",
		    cJSON_GetObjectItem(last, member)->valuestring);
	else
		cJSON_AddNullToObject(root, "next_cursor");
	api_json(c, 200, root);
}

void
api_db_error(struct ctx *c, int rc)
{
	if (rc == DB_UNAVAILABLE || rc == DB_LOCK_TIMEOUT) {
		http_add_header(c->res, "Retry-After", "2");
		api_error(c, 503, "service_unavailable",
		    "the database is unavailable; retry shortly");
		return;
	}
	api_error(c, 500, "internal", "internal error");
}

/* 0 when every member of root is one of fields, else -1 after a 400. */
static int
body_members_known(struct ctx *c, const cJSON *root,
    const struct api_field *fields)
{
	for (const cJSON *m = root->child; m != NULL; m = m->next) {
		size_t i;

		for (i = 0; fields[i].name != NULL; i++)
			if (strcmp(m->string, fields[i].name) == 0)
				break;
		if (fields[i].name == NULL) {
			api_error(c, 400, "bad_request", "unknown field \"%.64s\"",
			    m->string);
			return -1;
		}
	}
	return 0;
}

/* Reads the string members of fields from root: 0, or -1 after a 400. */
static int
body_strings(struct ctx *c, const cJSON *root, const struct api_field *fields)
{
	for (size_t i = 0; fields[i].name != NULL; i++)
		if (fields[i].str != NULL && api_str(c, root, fields[i].name,
		    fields[i].maxlen, fields[i].str) == -1)
			return -1;
	return 0;
}

int
api_body(struct ctx *c, const struct api_field *fields, cJSON **out)
{
	const char	*data = c->req->body.data, *end = NULL;
	size_t		 len = c->req->body.len;
	cJSON		*root;

	*out = NULL;
	for (size_t i = 0; fields[i].name != NULL; i++)
		if (fields[i].str != NULL)
			*fields[i].str = NULL;
	if (len == 0)
		return 0;
	root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
	while (root != NULL && end < data + len && (*end == ' ' ||
	    *end == '\t' || *end == '\r' || *end == '\n'))
		end++;
	if (root == NULL || !cJSON_IsObject(root) || end != data + len) {
		cJSON_Delete(root);
		api_error(c, 400, "bad_request", "the body must be a JSON object");
		return -1;
	}
	if (body_members_known(c, root, fields) == -1 ||
	    body_strings(c, root, fields) == -1) {
		cJSON_Delete(root);
		return -1;
	}
	*out = root;
	return 0;
}

int
api_str(struct ctx *c, const cJSON *obj, const char *name, size_t maxlen,
    const char **out)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(obj, name);

	*out = NULL;
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || strlen(v->valuestring) > maxlen) {
		api_error(c, 400, "bad_request",
		    "%s must be a string of at most %zu characters", name, maxlen);
		return -1;
	}
	*out = v->valuestring;
	return 0;
}

int
api_bool(struct ctx *c, const cJSON *obj, const char *name, bool *out)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v)) {
		api_error(c, 400, "bad_request", "%s must be true or false", name);
		return -1;
	}
	*out = cJSON_IsTrue(v);
	return 0;
}

int
api_query_long(struct ctx *c, const char *name, long min, long max, long def,
    long *out)
{
	char	 value[32], *end;
	long	 n;
	int	 rc;

	*out = def;
	rc = http_query_param(c->req->query, name, value, sizeof(value));
	if (rc == 0)
		return 0;
	if (rc == 1 && (isdigit((unsigned char)value[0]) ||
	    (value[0] == '-' && isdigit((unsigned char)value[1])))) {
		errno = 0;
		n = strtol(value, &end, 10);
		if (errno == 0 && *end == '\0' && n >= min && n <= max) {
			*out = n;
			return 0;
		}
	}
	api_error(c, 400, "bad_request", "%s must be an integer from %ld to %ld",
	    name, min, max);
	return -1;
}

const char *
api_actor(const struct ctx *c, char *out, size_t outlen)
{
	if (c->who.label[0] != '\0')
		snprintf(out, outlen, "%s", c->who.label);
	else
		snprintf(out, outlen, "key:%s", c->who.key_id);
	return out;
}

void
api_add_str_or_null(cJSON *obj, const char *name, const char *s)
{
	if (s == NULL || *s == '\0')
		cJSON_AddNullToObject(obj, name);
	else
		cJSON_AddStringToObject(obj, name, s);
}

void
api_add_time_or_null(cJSON *obj, const char *name, time_t t)
{
	char	 ts[21];

	if (t == 0) {
		cJSON_AddNullToObject(obj, name);
		return;
	}
	time_rfc3339(t, ts);
	cJSON_AddStringToObject(obj, name, ts);
}

static void
add_cors(struct ctx *c)
{
	const char	*origin = c->req->origin;

	if (*origin == '\0' ||
	    !cfg_word_in_list(c->app->cfg->cors_allowed_origins, origin))
		return;
	http_add_header(c->res, "Access-Control-Allow-Origin", origin);
	http_add_header(c->res, "Vary", "Origin");
	http_add_header(c->res, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
}

static void
preflight(struct ctx *c, const char *allow)
{
	c->res->status = 204;
	http_add_header(c->res, "Allow", allow);
	if (c->req->origin[0] != '\0' &&
	    cfg_word_in_list(c->app->cfg->cors_allowed_origins, c->req->origin)) {
		http_add_header(c->res, "Access-Control-Allow-Methods", allow);
		http_add_header(c->res, "Access-Control-Allow-Headers",
		    "Authorization, Content-Type, X-Request-Id");
		http_add_header(c->res, "Access-Control-Max-Age", "600");
	}
}

static int
role_allows(enum role have, enum role need)
{
	switch (need) {
	case ROLE_NONE:
	case ROLE_VIEWER:
		return have != ROLE_NONE;
	case ROLE_ADMIN:
	case ROLE_SERVICE:
		return have == need || have == ROLE_OPERATOR;
	case ROLE_OPERATOR:
		return have == ROLE_OPERATOR;
	}
	return 0;
}

int
api_found(struct ctx *c, int rc, int status, const char *code,
    const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;

	if (rc == DB_OK)
		return 0;
	if (rc == DB_NOTFOUND) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		api_error(c, status, code, "%s", msg);
	} else
		api_db_error(c, rc);
	return -1;
}

/*
 * Returns 0 when the caller is known (c->who set), else -1 after answering.
 * The same round trip reads the org slug names (NULL: none) and, as the
 * route's flags ask, its integration into *a (caller clears), maybe from
 * the cache.
 */
static int
authenticate(struct ctx *c, const char *slug, unsigned flags,
    struct db_auth *a)
{
	const char	*key = http_bearer_key(c->req->authorization);
	char		 hash[65];
	int		 rc;

	if (key == NULL) {
		api_error(c, 401, "unauthorized", "an API key is required "
		    "(Authorization: Bearer <key>)");
		return -1;
	}
	crypto_sha256_hex(key, strlen(key), hash);
	if ((flags & ROUTE_CACHED) && slug != NULL)
		rc = db_auth_lookup_cached(c->app->db, hash, slug, a);
	else
		rc = db_auth_lookup(c->app->db, hash, slug,
		    (flags & ROUTE_INTEG) != 0, a);
	if (rc == DB_OK)
		c->who = a->who;
	return api_found(c, rc, 401, "unauthorized", "the API key is not "
	    "valid");
}

/*
 * Checks that the caller may see org slug (403 before saying whether it
 * exists); sets c->org from a. 0, or -1 after answering.
 */
static int
resolve_org(struct ctx *c, const char *slug, const struct db_auth *a)
{
	if (c->who.role != ROLE_OPERATOR && strcmp(c->who.org_slug, slug) != 0) {
		api_error(c, 403, "forbidden", "this key may not access org %s",
		    slug);
		return -1;
	}
	if (!a->has_org) {
		api_error(c, 404, "not_found", "no org %s", slug);
		return -1;
	}
	c->org = a->org;
	return 0;
}

static int
content_type_is_json(const char *ct)
{
	size_t	 n = strlen("application/json");

	return strncasecmp(ct, "application/json", n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Finds the route for the request; fills allow with the methods of the path. */
static const struct route *
find_route(const struct http_request *req, struct match *m, char *allow,
    size_t allowlen)
{
	const struct route	*found = NULL;
	struct match		 tmp;

	allow[0] = '\0';
	for (size_t i = 0; i < NROUTES; i++) {
		if (!route_match(routes[i].pattern, req->path, &tmp))
			continue;
		snprintf(allow + strlen(allow), allowlen - strlen(allow),
		    "%s%s", allow[0] != '\0' ? ", " : "", routes[i].method);
		if (found == NULL && strcmp(routes[i].method, req->method) == 0) {
			found = &routes[i];
			*m = tmp;
		}
	}
	if (allow[0] != '\0')
		snprintf(allow + strlen(allow), allowlen - strlen(allow),
		    ", OPTIONS");
	return found;
}

/* Authenticates (one round trip), checks role and org, runs the handler. */
static void
run_route(struct ctx *c, const struct route *route, const struct match *m)
{
	struct db_auth	 auth = { .has_org = false };

	if (route->role != ROLE_NONE) {
		if (authenticate(c, m->has_org ? m->org : NULL, route->flags,
		    &auth) == -1)
			goto out;
		if (!role_allows(c->who.role, route->role)) {
			api_error(c, 403, "forbidden",
			    "this endpoint needs the %s role", role_name(route->role));
			goto out;
		}
	}
	if (m->has_org && resolve_org(c, m->org, &auth) == -1)
		goto out;
	if (auth.has_integ) {
		c->integ = auth.integ;
		c->has_integ = true;
		auth.has_integ = false;
	}
	if (m->has_id)
		snprintf(c->param_id, sizeof(c->param_id), "%s", m->id);
	route->handler(c);
out:
	if (c->has_integ)
		db_integration_clear(&c->integ);
	c->has_integ = false;
	db_auth_clear(&auth);
}

static void
dispatch(struct ctx *c)
{
	const struct http_request	*req = c->req;
	const struct route		*route;
	struct match			 m;
	char				 allow[128];
	int				 rc;

	if (req->too_long || req->bad_length) {
		api_error(c, 400, "bad_request", "request line or headers too long, "
		    "or bad Content-Length");
		return;
	}
	route = find_route(req, &m, allow, sizeof(allow));
	c->route = route != NULL ? (int)(route - routes) + 1 : 0;
	if (allow[0] == '\0') {
		api_error(c, 404, "not_found", "no such endpoint");
		return;
	}
	if (strcmp(req->method, "OPTIONS") == 0) {
		preflight(c, allow);
		return;
	}
	if (route == NULL) {
		http_add_header(c->res, "Allow", allow);
		api_error(c, 405, "method_not_allowed",
		    "method %s not allowed here", req->method);
		return;
	}
	if (m.bad != PARAM_OK) {
		api_error(c, 400, "bad_request", "%s", m.bad == PARAM_BAD_ORG ?
		    "an org slug is 1 to 63 of a-z, 0-9 and -" : "bad id in path");
		return;
	}
	if (req->body_too_large) {
		api_error(c, 413, "payload_too_large",
		    "the body must be at most %d bytes", HTTP_MAX_BODY);
		return;
	}
	if (req->content_length > 0 && !content_type_is_json(req->content_type)) {
		api_error(c, 415, "unsupported_media_type",
		    "the body must be application/json");
		return;
	}
	if (!(route->flags & ROUTE_NO_DB) &&
	    (rc = db_ensure(c->app->db)) != DB_OK) {
		api_db_error(c, rc);
		return;
	}
	run_route(c, route, &m);
}

void
api_handle(struct app *app, const struct http_request *req,
    struct http_response *res)
{
	struct ctx	 c;
	double		 t0 = metrics_now();

	memset(&c, 0, sizeof(c));
	c.app = app;
	c.req = req;
	c.res = res;
	http_add_header(res, "X-Request-Id", req->request_id);
	add_cors(&c);
	dispatch(&c);
	if (app->db != NULL)
		(void)db_end_request(app->db);
	log_info("request", "%s %s -> %d", req->method, req->path, res->status);
	metrics_request(c.route, res->status, metrics_now() - t0);
}

int
api_idle_fd(struct app *app)
{
	return app->db != NULL ? db_notify_fd(app->db) : -1;
}

void
api_idle(struct app *app)
{
	if (app->db != NULL)
		db_idle(app->db);
}

int
api_route_label(int slot, const char **method, const char **pattern)
{
	if (slot < 0 || (size_t)slot > NROUTES)
		return -1;
	*method = slot == 0 ? "other" : routes[slot - 1].method;
	*pattern = slot == 0 ? "unmatched" : routes[slot - 1].pattern;
	return 0;
}
