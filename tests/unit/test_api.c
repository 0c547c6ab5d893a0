/*
 * Unit tests for the request layer (cmocka): routing, method checks, path
 * validation, body limits, CORS and the error JSON of src/api.c, the
 * status object of src/status.c and the helpers of src/util.c.
 *
 * The app has no database (db = NULL): only answers given before the
 * database is touched are tested here; the rest is the integration suite's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "db.h"
#include "log.h"
#include "status.h"
#include "util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define ALLOWED_ORIGIN	"https://app.example.com"
#define REQUEST_ID	"test-req-0001"

/* A 64-character slug: one more than allowed. */
#define SLUG64 \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static struct cfg	 cfg;
static struct app	 app;

static int
setup_app(void **state)
{
	(void)state;
	log_set_level(LOGL_ERROR);
	memset(&cfg, 0, sizeof(cfg));
	cfg.database_url = "";
	cfg.listen = "unix:/tmp/none.sock";
	cfg.workers = 1;
	cfg.public_base_url = "https://connect.example.com";
	cfg.salesforce_client_id = "";
	cfg.salesforce_client_secret_file = "";
	cfg.salesforce_login_url = "https://login.salesforce.com";
	cfg.salesforce_sandbox_login_url = "https://test.salesforce.com";
	cfg.salesforce_allowed_hosts = "login.salesforce.com *.my.salesforce.com";
	cfg.salesforce_scope = "api refresh_token id";
	cfg.tls_ca_file = "";
	cfg.token_key_file = "";
	cfg.token_previous_key_files = "";
	cfg.http_timeout_ms = 10000;
	cfg.access_token_max_age_s = 3600;
	cfg.check_interval_s = 86400;
	cfg.check_concurrency = 8;
	cfg.refresh_lock_timeout_ms = 15000;
	cfg.allowed_return_origins = "";
	cfg.webhook_url = "";
	cfg.webhook_secret_file = "";
	cfg.cors_allowed_origins = ALLOWED_ORIGIN;
	cfg.log_level = "error";
	memset(&app, 0, sizeof(app));
	app.cfg = &cfg;
	app.db = NULL;
	return 0;
}

static void
make_req(struct http_request *req, const char *method, const char *path)
{
	http_request_init(req);
	snprintf(req->method, sizeof(req->method), "%s", method);
	snprintf(req->path, sizeof(req->path), "%s", path);
	snprintf(req->request_id, sizeof(req->request_id), "%s", REQUEST_ID);
}

/*
 * The value of header name in res (exact, case-sensitive name) into out.
 * Returns 1 when present.
 */
static int
header(const struct http_response *res, const char *name, char *out,
    size_t outlen)
{
	const char	*p = res->headers.data;
	size_t		 nlen = strlen(name);

	out[0] = '\0';
	while (p != NULL && *p != '\0') {
		const char *eol = strstr(p, "\r\n");
		size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);

		if (len > nlen + 1 && strncmp(p, name, nlen) == 0 &&
		    p[nlen] == ':' && p[nlen + 1] == ' ') {
			snprintf(out, outlen, "%.*s", (int)(len - nlen - 2),
			    p + nlen + 2);
			return 1;
		}
		p += len;
		if (*p != '\0')
			p += 2;
	}
	return 0;
}

/* true when the comma-separated list holds token. */
static int
list_has(const char *list, const char *token)
{
	size_t	 tlen = strlen(token);

	while (*list != '\0') {
		size_t len;

		while (*list == ' ' || *list == ',')
			list++;
		len = strcspn(list, ",");
		while (len > 0 && list[len - 1] == ' ')
			len--;
		if (len == tlen && strncmp(list, token, tlen) == 0)
			return 1;
		list += len;
		while (*list != '\0' && *list != ',')
			list++;
	}
	return 0;
}

/* Every response carries the request id. */
static void
assert_request_id_header(const struct http_response *res)
{
	char	 v[128];

	assert_true(header(res, "X-Request-Id", v, sizeof(v)));
	assert_string_equal(v, REQUEST_ID);
}

/* res is an error of status and code, in the JSON shape of DESIGN.md. */
static void
assert_error(const struct http_response *res, int status, const char *code)
{
	cJSON		*root;
	const cJSON	*err, *c, *msg, *rid;

	if (res->status != status)
		fail_msg("status %d, expected %d; body %s", res->status, status,
		    res->body.data != NULL ? res->body.data : "(none)");
	assert_request_id_header(res);
	assert_string_equal(res->content_type, "application/json");
	assert_non_null(res->body.data);
	root = cJSON_Parse(res->body.data);
	if (root == NULL)
		fail_msg("body is not JSON: %s", res->body.data);
	err = cJSON_GetObjectItemCaseSensitive(root, "error");
	assert_true(cJSON_IsObject(err));
	c = cJSON_GetObjectItemCaseSensitive(err, "code");
	msg = cJSON_GetObjectItemCaseSensitive(err, "message");
	rid = cJSON_GetObjectItemCaseSensitive(root, "request_id");
	assert_true(cJSON_IsString(c));
	assert_string_equal(c->valuestring, code);
	assert_true(cJSON_IsString(msg));
	assert_true(strlen(msg->valuestring) > 0);
	assert_true(cJSON_IsString(rid));
	assert_string_equal(rid->valuestring, REQUEST_ID);
	cJSON_Delete(root);
}

/* Runs one request; the caller frees res. */
static void
run(struct http_request *req, struct http_response *res)
{
	http_response_init(res);
	api_handle(&app, req, res);
}

/* method path → status code, with no body and no flags. */
static void
expect(const char *method, const char *path, int status, const char *code)
{
	struct http_request	 req;
	struct http_response	 res;

	make_req(&req, method, path);
	run(&req, &res);
	assert_error(&res, status, code);
	http_response_free(&res);
	http_request_free(&req);
}

/* ---- routing ---- */

static void
test_unknown_path(void **state)
{
	static const char *const paths[] = {
		"/",
		"",
		"/nope",
		"/api",
		"/api/v1",
		"/api/v1/orgs",
		"/api/v1/orgs/acme",
		"/api/v1/orgs/acme/integrations",
		"/api/v1/orgs/acme/integrations/salesforce/",
		"/api/v1/orgs/acme/integrations/hubspot",
		"/api/v1/orgs//integrations/salesforce",
		"/api/v2/orgs/acme/integrations/salesforce",
		"/API/V1/admin/orgs",
		"/api/v1/admin/orgs/",
		"/api/v1/admin/orgs/acme",
		"/api/v1/admin/keys/",
		"/healthz/",
		"//healthz",
		"/healthz/x",
		"/healthzz",
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(paths); i++)
		expect("GET", paths[i], 404, "not_found");
	expect("OPTIONS", "/nope", 404, "not_found");
	expect("POST", "/api/v1/nope", 404, "not_found");
}

static void
test_method_not_allowed(void **state)
{
	static const struct {
		const char *method, *path;
		const char *allowed[3];
	} t[] = {
		{ "PUT", "/api/v1/admin/orgs", { "GET", "POST", NULL } },
		{ "DELETE", "/api/v1/admin/orgs", { "GET", "POST", NULL } },
		{ "get", "/api/v1/admin/orgs", { "GET", "POST", NULL } },
		{ "POST", "/healthz", { "GET", NULL, NULL } },
		{ "PATCH", "/api/v1/orgs/acme/integrations/salesforce",
		  { "GET", NULL, NULL } },
		{ "PUT", "/api/v1/orgs/acme/banners", { "GET", NULL, NULL } },
		{ "GET", "/api/v1/admin/keys/k_1", { "DELETE", NULL, NULL } },
	};
	struct http_request	 req;
	struct http_response	 res;
	char			 allow[256];
	size_t			 i, j;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		make_req(&req, t[i].method, t[i].path);
		run(&req, &res);
		assert_error(&res, 405, "method_not_allowed");
		if (!header(&res, "Allow", allow, sizeof(allow)))
			fail_msg("%s %s: no Allow header", t[i].method, t[i].path);
		for (j = 0; j < 3 && t[i].allowed[j] != NULL; j++)
			if (!list_has(allow, t[i].allowed[j]))
				fail_msg("%s %s: Allow \"%s\" lacks %s", t[i].method,
				    t[i].path, allow, t[i].allowed[j]);
		assert_true(list_has(allow, "OPTIONS"));
		assert_false(list_has(allow, t[i].method));
		http_response_free(&res);
		http_request_free(&req);
	}
}

static void
test_bad_path_params(void **state)
{
	static const struct {
		const char *method, *path;
	} t[] = {
		{ "GET", "/api/v1/orgs/BAD_SLUG/integrations/salesforce" },
		{ "GET", "/api/v1/orgs/Acme/integrations/salesforce" },
		{ "GET", "/api/v1/orgs/acme.corp/integrations/salesforce" },
		{ "GET", "/api/v1/orgs/a%20b/integrations/salesforce" },
		{ "GET", "/api/v1/orgs/acme%2F..%2Fx/integrations/salesforce" },
		{ "GET", "/api/v1/orgs/" SLUG64 "/integrations/salesforce" },
		{ "GET", "/api/v1/orgs/" SLUG64 SLUG64 "/banners" },
		{ "GET", "/api/v1/orgs/acme_corp/audit" },
		{ "POST", "/api/v1/admin/orgs/ACME/keys" },
		{ "DELETE", "/api/v1/admin/keys/Key1" },
		{ "DELETE", "/api/v1/admin/keys/k-1" },
		{ "DELETE", "/api/v1/admin/keys/"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },	/* 41 */
		{ "DELETE", "/api/v1/admin/keys/" SLUG64 },
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		expect(t[i].method, t[i].path, 400, "bad_request");
}

/* ---- request flags and bodies ---- */

static void
test_too_long_and_bad_length(void **state)
{
	struct http_request	 req;
	struct http_response	 res;

	(void)state;
	make_req(&req, "GET", "/healthz");
	req.too_long = true;
	run(&req, &res);
	assert_error(&res, 400, "bad_request");
	http_response_free(&res);
	http_request_free(&req);

	/* before routing: even an unknown path gets the 400 */
	make_req(&req, "GET", "/nope");
	req.too_long = true;
	run(&req, &res);
	assert_error(&res, 400, "bad_request");
	http_response_free(&res);
	http_request_free(&req);

	make_req(&req, "POST", "/api/v1/admin/orgs");
	req.bad_length = true;
	run(&req, &res);
	assert_error(&res, 400, "bad_request");
	http_response_free(&res);
	http_request_free(&req);
}

static void
test_body_too_large(void **state)
{
	struct http_request	 req;
	struct http_response	 res;

	(void)state;
	make_req(&req, "POST", "/api/v1/admin/orgs");
	snprintf(req.content_type, sizeof(req.content_type), "application/json");
	req.content_length = HTTP_MAX_BODY + 1;
	req.body_too_large = true;
	run(&req, &res);
	assert_error(&res, 413, "payload_too_large");
	http_response_free(&res);
	http_request_free(&req);
}

static void
test_unsupported_media_type(void **state)
{
	static const char *const types[] = {
		"text/plain",
		"",
		"application/x-www-form-urlencoded",
		"multipart/form-data; boundary=x",
		"application/jsonp",
		"application/json-patch+json",
		"text/json",
	};
	struct http_request	 req;
	struct http_response	 res;
	size_t			 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(types); i++) {
		make_req(&req, "POST", "/api/v1/admin/orgs");
		snprintf(req.content_type, sizeof(req.content_type), "%s",
		    types[i]);
		assert_int_equal(buf_puts(&req.body, "{\"slug\":\"x\"}"), 0);
		req.content_length = req.body.len;
		run(&req, &res);
		assert_error(&res, 415, "unsupported_media_type");
		http_response_free(&res);
		http_request_free(&req);
	}
}

/* ---- CORS ---- */

static void
test_preflight_allowed_origin(void **state)
{
	struct http_request	 req;
	struct http_response	 res;
	char			 v[256];

	(void)state;
	make_req(&req, "OPTIONS", "/api/v1/admin/orgs");
	snprintf(req.origin, sizeof(req.origin), ALLOWED_ORIGIN);
	run(&req, &res);
	assert_int_equal(res.status, 204);
	assert_int_equal(res.body.len, 0);
	assert_request_id_header(&res);
	assert_true(header(&res, "Access-Control-Allow-Origin", v, sizeof(v)));
	assert_string_equal(v, ALLOWED_ORIGIN);
	assert_true(header(&res, "Access-Control-Allow-Methods", v, sizeof(v)));
	assert_true(list_has(v, "GET"));
	assert_true(list_has(v, "POST"));
	assert_true(list_has(v, "OPTIONS"));
	assert_true(header(&res, "Access-Control-Allow-Headers", v, sizeof(v)));
	assert_true(list_has(v, "Authorization"));
	assert_true(list_has(v, "Content-Type"));
	assert_true(header(&res, "Vary", v, sizeof(v)));
	assert_true(list_has(v, "Origin"));
	assert_true(header(&res, "Allow", v, sizeof(v)));
	assert_true(list_has(v, "POST"));
	http_response_free(&res);
	http_request_free(&req);
}

static void
test_preflight_other_origins(void **state)
{
	static const char *const origins[] = {
		"",
		"https://evil.example.com",
		"http://app.example.com",
		"https://app.example.com.evil.com",
		"https://app.example.co",
		"https://APP.example.com",
		"https://app.example.com/",
		"null",
	};
	struct http_request	 req;
	struct http_response	 res;
	size_t			 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(origins); i++) {
		make_req(&req, "OPTIONS", "/api/v1/orgs/acme/integrations/salesforce");
		snprintf(req.origin, sizeof(req.origin), "%s", origins[i]);
		run(&req, &res);
		assert_int_equal(res.status, 204);
		assert_request_id_header(&res);
		if (strstr(res.headers.data, "Access-Control-") != NULL)
			fail_msg("origin \"%s\" got CORS headers:\n%s", origins[i],
			    res.headers.data);
		http_response_free(&res);
		http_request_free(&req);
	}
}

static void
test_cors_on_errors(void **state)
{
	struct http_request	 req;
	struct http_response	 res;
	char			 v[256];

	(void)state;
	/* an allowed front end can read an error and its request id */
	make_req(&req, "GET", "/nope");
	snprintf(req.origin, sizeof(req.origin), ALLOWED_ORIGIN);
	run(&req, &res);
	assert_error(&res, 404, "not_found");
	assert_true(header(&res, "Access-Control-Allow-Origin", v, sizeof(v)));
	assert_string_equal(v, ALLOWED_ORIGIN);
	assert_true(header(&res, "Access-Control-Expose-Headers", v, sizeof(v)));
	assert_true(list_has(v, "X-Request-Id"));
	http_response_free(&res);
	http_request_free(&req);

	/* another origin gets the error but no CORS header */
	make_req(&req, "PUT", "/api/v1/admin/orgs");
	snprintf(req.origin, sizeof(req.origin), "https://evil.example.com");
	run(&req, &res);
	assert_error(&res, 405, "method_not_allowed");
	assert_null(strstr(res.headers.data, "Access-Control-"));
	http_response_free(&res);
	http_request_free(&req);
}

static void
test_request_id_on_every_response(void **state)
{
	struct http_request	 req;
	struct http_response	 res;
	char			 v[128];

	(void)state;
	make_req(&req, "OPTIONS", "/healthz");
	run(&req, &res);
	assert_int_equal(res.status, 204);
	assert_request_id_header(&res);
	http_response_free(&res);
	http_request_free(&req);

	/* a 64-character id is carried whole */
	make_req(&req, "GET", "/nope");
	memset(req.request_id, 'r', 64);
	req.request_id[64] = '\0';
	run(&req, &res);
	assert_int_equal(res.status, 404);
	assert_true(header(&res, "X-Request-Id", v, sizeof(v)));
	assert_string_equal(v, req.request_id);
	assert_non_null(strstr(res.body.data, req.request_id));
	http_response_free(&res);
	http_request_free(&req);
}

/* ---- api helpers on a hand-made ctx ---- */

static void
make_ctx(struct ctx *c, struct http_request *req, struct http_response *res,
    const char *query)
{
	make_req(req, "GET", "/x");
	snprintf(req->query, sizeof(req->query), "%s", query);
	http_response_init(res);
	memset(c, 0, sizeof(*c));
	c->app = &app;
	c->req = req;
	c->res = res;
}

static void
test_api_error_401_challenge(void **state)
{
	struct http_request	 req;
	struct http_response	 res;
	struct ctx		 c;
	char			 v[128];

	(void)state;
	make_ctx(&c, &req, &res, "");
	http_add_header(&res, "X-Request-Id", REQUEST_ID);
	api_error(&c, 401, "unauthorized", "key %s", "missing");
	assert_error(&res, 401, "unauthorized");
	assert_true(header(&res, "WWW-Authenticate", v, sizeof(v)));
	assert_true(strncmp(v, "Bearer", 6) == 0);
	http_response_free(&res);
	http_request_free(&req);
}

static void
test_api_db_error(void **state)
{
	static const struct {
		int		 rc, status;
		const char	*code;
	} t[] = {
		{ DB_UNAVAILABLE, 503, "service_unavailable" },
		{ DB_LOCK_TIMEOUT, 503, "service_unavailable" },
		{ DB_ERROR, 500, "internal" },
	};
	struct http_request	 req;
	struct http_response	 res;
	struct ctx		 c;
	size_t			 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		make_ctx(&c, &req, &res, "");
		http_add_header(&res, "X-Request-Id", REQUEST_ID);
		api_db_error(&c, t[i].rc);
		assert_error(&res, t[i].status, t[i].code);
		http_response_free(&res);
		http_request_free(&req);
	}
}

static void
test_api_json_null_is_500(void **state)
{
	struct http_request	 req;
	struct http_response	 res;
	struct ctx		 c;

	(void)state;
	make_ctx(&c, &req, &res, "");
	http_add_header(&res, "X-Request-Id", REQUEST_ID);
	api_json(&c, 200, NULL);
	assert_error(&res, 500, "internal");
	http_response_free(&res);
	http_request_free(&req);
}

static void
test_api_query_long(void **state)
{
	static const struct {
		const char	*query;
		int		 rc;
		long		 value;
	} t[] = {
		{ "", 0, 50 },
		{ "other=1", 0, 50 },
		{ "limit=1", 0, 1 },
		{ "limit=500", 0, 500 },
		{ "lim=7&limit=9", 0, 9 },
		{ "limit=0", -1, 0 },
		{ "limit=501", -1, 0 },
		{ "limit=-5", -1, 0 },
		{ "limit=", -1, 0 },
		{ "limit", -1, 0 },
		{ "limit=ten", -1, 0 },
		{ "limit=5x", -1, 0 },
		{ "limit=%00", -1, 0 },
		{ "limit=99999999999999999999999999", -1, 0 },
		{ "limit=1000000000000000000000000000000000000000", -1, 0 },
	};
	struct http_request	 req;
	struct http_response	 res;
	struct ctx		 c;
	size_t			 i;
	long			 n;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		make_ctx(&c, &req, &res, t[i].query);
		n = -42;
		if (api_query_long(&c, "limit", 1, 500, 50, &n) != t[i].rc)
			fail_msg("query \"%s\": wrong result", t[i].query);
		if (t[i].rc == 0) {
			assert_int_equal(n, t[i].value);
			assert_int_equal(res.body.len, 0);
		} else {
			assert_int_equal(res.status, 400);
			assert_non_null(strstr(res.body.data, "bad_request"));
		}
		http_response_free(&res);
		http_request_free(&req);
	}
}

static void
test_api_body(void **state)
{
	static const struct {
		const char	*body;
		int		 rc;
		const char	*slug;
	} t[] = {
		{ "", 0, NULL },
		{ "{}", 0, NULL },
		{ "{\"slug\":\"acme\",\"name\":\"Acme\"}", 0, "acme" },
		{ "{\"slug\":null,\"n\":1}", 0, NULL },
		{ "{\"slug\":\"acme\",\"extra\":1}", -1, NULL },
		{ "{\"slug\":7}", -1, NULL },
		{ "{\"slug\":\"abcdefghi\"}", -1, NULL },	/* over 8 */
		{ "{\"slug\":\"abcdefgh\"}", 0, "abcdefgh" },
		{ "[]", -1, NULL },
		{ "\"acme\"", -1, NULL },
		{ "null", -1, NULL },
		{ "{\"slug\":", -1, NULL },
		{ "not json", -1, NULL },
	};
	struct http_request	 req;
	struct http_response	 res;
	struct ctx		 c;
	cJSON			*obj;
	const char		*slug;
	const struct api_field	 fields[] = { { "slug", 8, &slug },
		{ "name", 0, NULL }, { "n", 0, NULL }, { NULL, 0, NULL } };
	size_t			 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		make_ctx(&c, &req, &res, "");
		assert_int_equal(buf_puts(&req.body, t[i].body), 0);
		obj = (cJSON *)1;
		slug = "unset";
		if (api_body(&c, fields, &obj) != t[i].rc)
			fail_msg("body \"%s\": wrong result", t[i].body);
		if (t[i].rc == -1) {
			assert_null(obj);
			assert_int_equal(res.status, 400);
		} else {
			assert_int_equal(obj == NULL, t[i].body[0] == '\0');
			if (t[i].slug == NULL)
				assert_null(slug);
			else
				assert_string_equal(slug, t[i].slug);
		}
		cJSON_Delete(obj);
		http_response_free(&res);
		http_request_free(&req);
	}
}

static void
test_api_str_and_bool(void **state)
{
	struct http_request	 req;
	struct http_response	 res;
	struct ctx		 c;
	cJSON			*obj;
	const char		*s;
	bool			 b = false;

	(void)state;
	obj = cJSON_Parse("{\"s\":\"abc\",\"n\":null,\"num\":5,\"t\":true,"
	    "\"f\":false,\"str\":\"true\"}");
	assert_non_null(obj);
	make_ctx(&c, &req, &res, "");
	assert_int_equal(api_str(&c, obj, "s", 3, &s), 0);
	assert_string_equal(s, "abc");
	assert_int_equal(api_str(&c, obj, "n", 3, &s), 0);
	assert_null(s);
	assert_int_equal(api_str(&c, obj, "absent", 3, &s), 0);
	assert_null(s);
	assert_int_equal(api_bool(&c, obj, "t", &b), 0);
	assert_true(b);
	assert_int_equal(api_bool(&c, obj, "f", &b), 0);
	assert_false(b);
	assert_int_equal(api_bool(&c, obj, "absent", &b), 0);
	assert_false(b);
	assert_int_equal(res.body.len, 0);
	assert_int_equal(api_str(&c, obj, "s", 2, &s), -1);	/* too long */
	assert_int_equal(res.status, 400);
	assert_int_equal(api_str(&c, obj, "num", 10, &s), -1);
	assert_int_equal(api_bool(&c, obj, "str", &b), -1);
	assert_int_equal(api_bool(&c, obj, "num", &b), -1);
	assert_int_equal(res.status, 400);
	cJSON_Delete(obj);
	http_response_free(&res);
	http_request_free(&req);
}

/* ---- status object ---- */

static const char *const status_members[] = {
	"org", "provider", "status", "salesforce_org_id", "salesforce_user",
	"instance_url", "environment", "login_host", "connected_at",
	"connected_by", "last_refreshed_at", "last_checked_at", "last_error",
	"previous_salesforce_org_id", "banner",
};

static const cJSON *
member(const cJSON *obj, const char *name)
{
	const cJSON	*m = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (m == NULL)
		fail_msg("member %s missing", name);
	return m;
}

static void
assert_member_string(const cJSON *obj, const char *name, const char *value)
{
	const cJSON	*m = member(obj, name);

	if (!cJSON_IsString(m))
		fail_msg("member %s is not a string", name);
	assert_string_equal(m->valuestring, value);
}

static void
test_status_disconnected(void **state)
{
	struct integration	 integ;
	cJSON			*o;
	size_t			 i;

	(void)state;
	memset(&integ, 0, sizeof(integ));
	snprintf(integ.org_slug, sizeof(integ.org_slug), "acme");
	integ.status = INTEG_DISCONNECTED;
	o = status_object(&integ);
	assert_non_null(o);
	for (i = 0; i < ARRAY_LEN(status_members); i++)
		(void)member(o, status_members[i]);
	assert_member_string(o, "org", "acme");
	assert_member_string(o, "provider", "salesforce");
	assert_member_string(o, "status", "disconnected");
	for (i = 3; i < ARRAY_LEN(status_members); i++)
		if (!cJSON_IsNull(member(o, status_members[i])))
			fail_msg("member %s is not null", status_members[i]);
	assert_null(status_banner(&integ));
	cJSON_Delete(o);
}

static void
test_status_invalid(void **state)
{
	struct integration	 integ;
	cJSON			*o;
	const cJSON		*banner, *action, *err;

	(void)state;
	memset(&integ, 0, sizeof(integ));
	snprintf(integ.org_slug, sizeof(integ.org_slug), "acme");
	integ.status = INTEG_INVALID;
	snprintf(integ.last_error_kind, sizeof(integ.last_error_kind), "invalid");
	snprintf(integ.last_error_code, sizeof(integ.last_error_code),
	    "invalid_grant");
	snprintf(integ.last_error_message, sizeof(integ.last_error_message),
	    "expired access/refresh token");
	integ.last_error_at = 1780000000;
	o = status_object(&integ);
	assert_non_null(o);

	err = member(o, "last_error");
	assert_true(cJSON_IsObject(err));
	assert_member_string(err, "kind", "invalid");
	assert_member_string(err, "code", "invalid_grant");
	assert_member_string(err, "message", "expired access/refresh token");
	assert_member_string(err, "at", "2026-05-28T20:26:40Z");

	banner = member(o, "banner");
	assert_true(cJSON_IsObject(banner));
	assert_member_string(banner, "level", "error");
	assert_member_string(banner, "code", "salesforce_token_invalid");
	assert_true(cJSON_IsString(member(banner, "message")));
	assert_true(strlen(member(banner, "message")->valuestring) > 0);
	assert_true(cJSON_IsString(member(banner, "hint")));
	assert_non_null(strstr(member(banner, "hint")->valuestring,
	    "Refresh token is valid until revoked"));
	action = member(banner, "action");
	assert_true(cJSON_IsObject(action));
	assert_member_string(action, "label", "Reconnect");
	assert_true(cJSON_IsString(member(action, "href")));
	assert_true(member(action, "href")->valuestring[0] == '/');
	cJSON_Delete(o);
}

static void
test_status_connected(void **state)
{
	struct integration	 integ;
	cJSON			*o;
	const cJSON		*user;

	(void)state;
	memset(&integ, 0, sizeof(integ));
	snprintf(integ.org_slug, sizeof(integ.org_slug), "acme");
	integ.status = INTEG_CONNECTED;
	snprintf(integ.sf_org_id, sizeof(integ.sf_org_id), "00Dx0000000BV7zEAG");
	snprintf(integ.sf_user_id, sizeof(integ.sf_user_id), "005x00000012Q9PAAU");
	snprintf(integ.sf_username, sizeof(integ.sf_username), "ada@acme.test");
	snprintf(integ.instance_url, sizeof(integ.instance_url),
	    "https://acme.my.salesforce.com");
	snprintf(integ.environment, sizeof(integ.environment), "production");
	snprintf(integ.login_host, sizeof(integ.login_host),
	    "https://login.salesforce.com");
	snprintf(integ.connected_by, sizeof(integ.connected_by), "admin key");
	integ.connected_at = 951782400;
	integ.last_refreshed_at = 1767225599;
	o = status_object(&integ);
	assert_non_null(o);
	assert_member_string(o, "salesforce_org_id", "00Dx0000000BV7zEAG");
	user = member(o, "salesforce_user");
	assert_true(cJSON_IsObject(user));
	assert_member_string(user, "id", "005x00000012Q9PAAU");
	assert_member_string(user, "username", "ada@acme.test");
	assert_true(cJSON_IsNull(member(user, "display_name")));
	assert_member_string(o, "instance_url", "https://acme.my.salesforce.com");
	assert_member_string(o, "environment", "production");
	assert_member_string(o, "login_host", "https://login.salesforce.com");
	assert_member_string(o, "connected_by", "admin key");
	assert_member_string(o, "connected_at", "2000-02-29T00:00:00Z");
	assert_member_string(o, "last_refreshed_at", "2025-12-31T23:59:59Z");
	assert_true(cJSON_IsNull(member(o, "last_checked_at")));
	assert_true(cJSON_IsNull(member(o, "last_error")));
	assert_true(cJSON_IsNull(member(o, "banner")));
	cJSON_Delete(o);
}

/*
 * The exact bytes of a status object with every member set, a banner and
 * characters that JSON escapes (as printed before its keys were constants).
 */
static void
test_status_bytes(void **state)
{
	static const char	*want[] = {
		/* connected */
		"{\"org\":\"acme\",\"provider\":\"salesforce\",\"status\":\"c"
		    "onnected\",\"salesforce_org_id\":\"00D5g000004XyZaEAK\",\"sa"
		    "lesforce_user\":{\"id\":\"0055g00000AdaAdAAJ\",\"username\":"
		    "\"ada@acme.example\",\"display_name\":\"Ada \\\"the\\\" Admi"
		    "n\\\\\\t\xc3""\xa9""\"},\"instance_url\":\"https://acme.my.s"
		    "alesforce.com\",\"environment\":\"production\",\"login_host"
		    "\":\"https://login.salesforce.com\",\"connected_at\":\"2026-"
		    "05-28T20:26:40Z\",\"connected_by\":\"admin key\",\"last_refr"
		    "eshed_at\":\"2026-05-28T20:28:20Z\",\"last_checked_at\":\"20"
		    "26-05-28T20:30:00Z\",\"last_error\":null,\"previous_salesfor"
		    "ce_org_id\":\"00D5g000004XyZbEAK\",\"scope\":\"api refresh_t"
		    "oken\",\"banner\":null}",
		/* invalid: last_error and a banner */
		"{\"org\":\"acme\",\"provider\":\"salesforce\",\"status\":\"i"
		    "nvalid\",\"salesforce_org_id\":\"00D5g000004XyZaEAK\",\"sale"
		    "sforce_user\":{\"id\":\"0055g00000AdaAdAAJ\",\"username\":\""
		    "ada@acme.example\",\"display_name\":\"Ada \\\"the\\\" Admin"
		    "\\\\\\t\xc3""\xa9""\"},\"instance_url\":\"https://acme.my.sa"
		    "lesforce.com\",\"environment\":\"production\",\"login_host\""
		    ":\"https://login.salesforce.com\",\"connected_at\":\"2026-05"
		    "-28T20:26:40Z\",\"connected_by\":\"admin key\",\"last_refres"
		    "hed_at\":\"2026-05-28T20:28:20Z\",\"last_checked_at\":\"2026"
		    "-05-28T20:30:00Z\",\"last_error\":{\"kind\":\"invalid\",\"co"
		    "de\":\"invalid_grant\",\"message\":\"expired access/refresh "
		    "token\\n\",\"at\":\"2026-05-28T20:30:50Z\"},\"previous_sales"
		    "force_org_id\":\"00D5g000004XyZbEAK\",\"scope\":\"api refres"
		    "h_token\",\"banner\":{\"level\":\"error\",\"code\":\"salesfo"
		    "rce_token_invalid\",\"message\":\"Salesforce is disconnected"
		    ": the connection's refresh token was revoked or expired. An "
		    "admin must reconnect Salesforce.\",\"hint\":\"The likely cau"
		    "ses, in order: the app's Refresh Token Policy ended it (in S"
		    "alesforce Setup, set the Refresh Token Policy of the app (co"
		    "nnected app or external client app) to \\\"Refresh token is "
		    "valid until revoked\\\"); a user or an admin revoked the app"
		    "'s access; it was not used for 30 days; a sixth approval by "
		    "the same user replaced it. Then reconnect.\",\"hint_code\":"
		    "\"refresh_token_policy\",\"action\":{\"label\":\"Reconnect\""
		    ",\"href\":\"/admin/integrations\"}}}",
	};
	struct integration	 integ;
	cJSON			*o;
	char			*text;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		memset(&integ, 0, sizeof(integ));
		snprintf(integ.org_slug, sizeof(integ.org_slug), "acme");
		integ.status = i == 0 ? INTEG_CONNECTED : INTEG_INVALID;
		snprintf(integ.sf_org_id, sizeof(integ.sf_org_id),
		    "00D5g000004XyZaEAK");
		snprintf(integ.sf_user_id, sizeof(integ.sf_user_id),
		    "0055g00000AdaAdAAJ");
		snprintf(integ.sf_username, sizeof(integ.sf_username),
		    "ada@acme.example");
		snprintf(integ.sf_display_name, sizeof(integ.sf_display_name),
		    "Ada \"the\" Admin\\\t\xc3\xa9");
		snprintf(integ.instance_url, sizeof(integ.instance_url),
		    "https://acme.my.salesforce.com");
		snprintf(integ.environment, sizeof(integ.environment),
		    "production");
		snprintf(integ.login_host, sizeof(integ.login_host),
		    "https://login.salesforce.com");
		snprintf(integ.connected_by, sizeof(integ.connected_by),
		    "admin key");
		snprintf(integ.previous_sf_org_id,
		    sizeof(integ.previous_sf_org_id), "00D5g000004XyZbEAK");
		snprintf(integ.scope, sizeof(integ.scope), "api refresh_token");
		integ.connected_at = 1780000000;
		integ.last_refreshed_at = 1780000100;
		integ.last_checked_at = 1780000200;
		integ.db_now = 1780000300;
		if (i == 1) {
			snprintf(integ.last_error_kind,
			    sizeof(integ.last_error_kind), "invalid");
			snprintf(integ.last_error_code,
			    sizeof(integ.last_error_code), "invalid_grant");
			snprintf(integ.last_error_message,
			    sizeof(integ.last_error_message),
			    "expired access/refresh token\n");
			integ.last_error_at = 1780000250;
		}
		o = status_object(&integ);
		assert_non_null(o);
		text = cJSON_PrintUnformatted(o);
		assert_non_null(text);
		assert_string_equal(text, want[i]);
		cJSON_free(text);
		cJSON_Delete(o);
	}
}

static void
test_status_banner_only_when_invalid(void **state)
{
	/* "" of the old text column has no counterpart: the type excludes it. */
	static const enum integ_status statuses[] = {
		INTEG_DISCONNECTED, INTEG_CONNECTED, INTEG_DEGRADED,
	};
	struct integration	 integ;
	cJSON			*b;
	size_t			 i;

	(void)state;
	memset(&integ, 0, sizeof(integ));
	/* a degraded integration has a last error but no customer banner */
	snprintf(integ.last_error_kind, sizeof(integ.last_error_kind), "transient");
	for (i = 0; i < ARRAY_LEN(statuses); i++) {
		integ.status = statuses[i];
		assert_null(status_banner(&integ));
	}
	integ.status = INTEG_INVALID;
	b = status_banner(&integ);
	assert_non_null(b);
	cJSON_Delete(b);
}

/* ---- util.c ---- */

static void
test_time_rfc3339(void **state)
{
	static const struct {
		time_t		 t;
		const char	*s;
	} t[] = {
		{ 0, "1970-01-01T00:00:00Z" },
		{ 1780000000, "2026-05-28T20:26:40Z" },
		{ 951782400, "2000-02-29T00:00:00Z" },
		{ 1767225599, "2025-12-31T23:59:59Z" },
		{ 4102444800, "2100-01-01T00:00:00Z" },
		{ 253402300799, "9999-12-31T23:59:59Z" },
		/* year 10000 and far beyond: clamped, never unterminated */
		{ 253402300800, "9999-12-31T23:59:59Z" },
		{ 253402300800 + 86400 * 400, "9999-12-31T23:59:59Z" },
		{ (time_t)LLONG_MAX, "9999-12-31T23:59:59Z" },
		{ -62167219200, "0000-01-01T00:00:00Z" },
		{ -62167219201, "0000-01-01T00:00:00Z" },
		{ (time_t)LLONG_MIN, "0000-01-01T00:00:00Z" },
		{ -1, "1969-12-31T23:59:59Z" },
	};
	char	 out[21];
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		memset(out, 'x', sizeof(out));
		time_rfc3339(t[i].t, out);
		assert_non_null(memchr(out, '\0', sizeof(out)));
		assert_string_equal(out, t[i].s);
	}
}

static void
test_slug_ok(void **state)
{
	static const struct {
		const char	*slug;
		int		 ok;
	} t[] = {
		{ "acme", 1 }, { "a", 1 }, { "acme-corp-2", 1 }, { "0", 1 },
		{ "-", 1 },
		{ "", 0 }, { "Acme", 0 }, { "acme_corp", 0 }, { "acme.corp", 0 },
		{ "acme corp", 0 }, { "acme/x", 0 }, { "caf\xc3\xa9", 0 },
		{ "acme\n", 0 }, { "%61", 0 },
	};
	char	 s[80];
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (slug_ok(t[i].slug) != t[i].ok)
			fail_msg("slug_ok(\"%s\") != %d", t[i].slug, t[i].ok);
	memset(s, 'a', sizeof(s));
	s[63] = '\0';
	assert_true(slug_ok(s));
	s[63] = 'a';
	s[64] = '\0';
	assert_false(slug_ok(s));
}

static void
test_integ_status_names(void **state)
{
	enum integ_status	 st;

	(void)state;
	for (int i = 0; i < INTEG__MAX; i++) {
		assert_int_equal(integ_status_parse(
		    integ_status_name((enum integ_status)i), &st), 0);
		assert_int_equal(st, i);
	}
	assert_string_equal(integ_status_name(INTEG_DEGRADED), "degraded");
	assert_int_equal(integ_status_parse("Connected", &st), -1);
	assert_int_equal(integ_status_parse("", &st), -1);
	assert_string_equal(integ_status_name(INTEG__MAX), "unknown");
}

static void
test_roles(void **state)
{
	static const struct {
		const char	*name;
		enum role	 role;
	} t[] = {
		{ "viewer", ROLE_VIEWER }, { "service", ROLE_SERVICE },
		{ "admin", ROLE_ADMIN }, { "operator", ROLE_OPERATOR },
	};
	static const char *const bad[] = {
		"", "none", "Admin", "ADMIN", "admin ", "root", "viewers",
	};
	enum role	 r;
	size_t		 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		r = ROLE_NONE;
		assert_int_equal(role_parse(t[i].name, &r), 0);
		assert_int_equal(r, t[i].role);
		assert_string_equal(role_name(t[i].role), t[i].name);
	}
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		r = ROLE_VIEWER;
		if (role_parse(bad[i], &r) != -1)
			fail_msg("role_parse(\"%s\") accepted", bad[i]);
		assert_int_equal(r, ROLE_VIEWER);
	}
}

/* RFC 7240 Prefer: respond-async alone, in a list, with parameters; nothing else. */
static void
test_prefer_async(void **state)
{
	(void)state;
	assert_true(api_prefer_async("respond-async"));
	assert_true(api_prefer_async("Respond-Async"));
	assert_true(api_prefer_async("wait=5, respond-async"));
	assert_true(api_prefer_async(" respond-async ; foo=1"));
	assert_true(api_prefer_async("handling=lenient,respond-async"));
	assert_false(api_prefer_async(""));
	assert_false(api_prefer_async("respond-async=yes"));
	assert_false(api_prefer_async("respond-asyncx"));
	assert_false(api_prefer_async("x-respond-async"));
	assert_false(api_prefer_async("wait=respond-async"));
	assert_false(api_prefer_async(";;,,"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_path),
		cmocka_unit_test(test_method_not_allowed),
		cmocka_unit_test(test_bad_path_params),
		cmocka_unit_test(test_too_long_and_bad_length),
		cmocka_unit_test(test_body_too_large),
		cmocka_unit_test(test_unsupported_media_type),
		cmocka_unit_test(test_preflight_allowed_origin),
		cmocka_unit_test(test_preflight_other_origins),
		cmocka_unit_test(test_cors_on_errors),
		cmocka_unit_test(test_request_id_on_every_response),
		cmocka_unit_test(test_api_error_401_challenge),
		cmocka_unit_test(test_api_db_error),
		cmocka_unit_test(test_api_json_null_is_500),
		cmocka_unit_test(test_api_query_long),
		cmocka_unit_test(test_api_body),
		cmocka_unit_test(test_api_str_and_bool),
		cmocka_unit_test(test_status_disconnected),
		cmocka_unit_test(test_status_invalid),
		cmocka_unit_test(test_status_connected),
		cmocka_unit_test(test_status_banner_only_when_invalid),
		cmocka_unit_test(test_status_bytes),
		cmocka_unit_test(test_time_rfc3339),
		cmocka_unit_test(test_slug_ok),
		cmocka_unit_test(test_integ_status_names),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_prefer_async),
	};

	return cmocka_run_group_tests(tests, setup_app, NULL);
}
