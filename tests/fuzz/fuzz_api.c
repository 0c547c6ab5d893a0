/*
 * libFuzzer target: the request layer of src/api.c (router, method and
 * path checks, body limits, CORS, preflight, error JSON) through
 * api_handle(), with the request built by the real edge parser
 * (http_request_parse, src/http_parse.c) from the fields below.
 *
 * Input: newline-separated fields, the body being everything after the
 * ninth newline (missing fields are absent):
 *   METHOD \n URI \n QUERY_STRING \n CONTENT_TYPE \n ORIGIN \n
 *   CONTENT_LENGTH \n X_REQUEST_ID \n ACCEPT \n AUTHORIZATION \n BODY
 * The fields are the FastCGI parameters REQUEST_METHOD, REQUEST_URI,
 * QUERY_STRING, CONTENT_TYPE, HTTP_ORIGIN, CONTENT_LENGTH,
 * HTTP_X_REQUEST_ID, HTTP_ACCEPT and HTTP_AUTHORIZATION; an empty
 * CONTENT_LENGTH is given as the body's length when there is a body, and
 * a length above the body is a short read.
 *
 * The app has no database (db = NULL). This target is linked with
 * -Wl,--wrap=db_ensure: db_ensure(NULL) answers DB_UNAVAILABLE, as a
 * database that is down would. So every request that passes the router's
 * checks (route found, method allowed, path parameters valid, body size
 * and type fine) ends in 503 before authentication, and /healthz answers
 * 503: authentication, org resolution and the handlers behind them are
 * NOT fuzzed here (they need PostgreSQL: the integration suite's job).
 *
 * Checked on every answer: a known status, well-formed header lines,
 * X-Request-Id present and equal to the request id, CORS headers only for
 * a configured origin, a JSON body (an error object with the caller's
 * request id for a 4xx/5xx of the router), an empty body for 204, Allow on
 * 405 and on a preflight.
 */
/* fuzz.sh ldflags: -Wl,--wrap=db_ensure */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "db.h"
#include "http_parse.h"
#include "fuzz_common.h"
#include "log.h"


#define ORIGIN_A	"https://app.example.com"
#define ORIGIN_B	"http://localhost:8080"

enum { F_METHOD, F_URI, F_QUERY, F_CTYPE, F_ORIGIN, F_CLEN, F_REQID,
    F_ACCEPT, F_AUTH, F_BODY, F__MAX };

/* The FastCGI parameter each field is. */
static const char *const param_names[F_BODY] = {
	"REQUEST_METHOD", "REQUEST_URI", "QUERY_STRING", "CONTENT_TYPE",
	"HTTP_ORIGIN", "CONTENT_LENGTH", "HTTP_X_REQUEST_ID", "HTTP_ACCEPT",
	"HTTP_AUTHORIZATION",
};

/* One input as a request: its fields and what is left of its body. */
struct input {
	char		*f[F__MAX];
	char		 clen[32];	/* CONTENT_LENGTH when the field is empty */
	const uint8_t	*body;
	size_t		 bodylen;
};

static bool	 db_reached;	/* reset for every input */

enum db_rc	 __real_db_ensure(struct db *db);
enum db_rc	 __wrap_db_ensure(struct db *db);

enum db_rc
__wrap_db_ensure(struct db *db)
{
	if (db == NULL) {
		db_reached = true;
		return DB_UNAVAILABLE;
	}
	return __real_db_ensure(db);
}

static const struct cfg cfg = {
	.database_url = "",
	.listen = "",
	.workers = 1,
	.public_base_url = "",
	.salesforce_client_id = "",
	.salesforce_client_secret_file = "",
	.salesforce_login_url = "",
	.salesforce_sandbox_login_url = "",
	.salesforce_allowed_hosts = "",
	.salesforce_scope = "",
	.tls_ca_file = "",
	.token_key_file = "",
	.token_previous_key_files = "",
	.http_timeout_ms = 10000,
	.access_token_max_age_s = 3600,
	.check_interval_s = 86400,
	.check_concurrency = 8,
	.refresh_lock_timeout_ms = 25000,
	.allowed_return_origins = "",
	.webhook_url = "",
	.webhook_secret_file = "",
	.cors_allowed_origins = ORIGIN_A " " ORIGIN_B,
	.log_level = "error",
};

/* http_param_fn: the field named, NULL for any other parameter. */
static const char *
input_param(const char *name, void *arg)
{
	struct input	*in = arg;
	size_t		 i;

	for (i = 0; i < F_BODY; i++)
		if (strcmp(name, param_names[i]) == 0)
			break;
	if (i == F_BODY)
		return NULL;
	if (i == F_CLEN && in->f[i][0] == '\0' && in->bodylen > 0)
		return in->clen;
	return in->f[i];
}

/* http_read_fn: the body as the client sent it, then 0. */
static long
input_read(char *dst, size_t n, void *arg)
{
	struct input	*in = arg;

	if (n > in->bodylen)
		n = in->bodylen;
	memcpy(dst, in->body, n);
	in->body += n;
	in->bodylen -= n;
	return (long)n;
}

/* The value of header name in the "Name: value\r\n" lines, or NULL. */
static const char *
find_header(const char *headers, const char *name, char *out, size_t outlen)
{
	size_t	 nlen = strlen(name);

	for (const char *p = headers; p != NULL && *p != '\0';) {
		const char *eol = strstr(p, "\r\n");

		if (eol == NULL)
			return NULL;
		if (strncmp(p, name, nlen) == 0 && p[nlen] == ':' &&
		    p[nlen + 1] == ' ') {
			snprintf(out, outlen, "%.*s",
			    (int)(eol - p - nlen - 2), p + nlen + 2);
			return out;
		}
		p = eol + 2;
	}
	return NULL;
}

static void
check_headers(const struct buf *h)
{
	const char	*p = h->data, *end = h->data + h->len;

	if (h->len == 0)
		return;
	CHECK(strlen(h->data) == h->len);
	while (p < end) {
		const char *eol = strstr(p, "\r\n"), *colon;

		CHECK(eol != NULL);
		colon = memchr(p, ':', (size_t)(eol - p));
		CHECK(colon != NULL && colon > p && colon[1] == ' ');
		for (const char *q = p; q < eol; q++)
			CHECK(*q != '\r' && *q != '\n');
		for (const char *q = p; q < colon; q++)
			CHECK(*q > 0x20 && *q < 0x7f);
		p = eol + 2;
	}
}

static void
check_response(const struct http_request *req, const struct http_response *res)
{
	char		 v[1024];
	const char	*acao;
	bool		 allowed;
	cJSON		*root;

	CHECK(strcmp(http_status_text(res->status), "Unknown") != 0);
	check_headers(&res->headers);
	CHECK(find_header(res->headers.data, "X-Request-Id", v, sizeof(v)) &&
	    strcmp(v, req->request_id) == 0);

	allowed = strcmp(req->origin, ORIGIN_A) == 0 ||
	    strcmp(req->origin, ORIGIN_B) == 0;
	acao = find_header(res->headers.data, "Access-Control-Allow-Origin",
	    v, sizeof(v));
	CHECK(allowed == (acao != NULL));
	if (acao != NULL)
		CHECK(strcmp(acao, req->origin) == 0);
	if (!allowed)
		CHECK(find_header(res->headers.data,
		    "Access-Control-Allow-Methods", v, sizeof(v)) == NULL);

	if (res->status == 405 || (res->status == 204 &&
	    strcmp(req->method, "OPTIONS") == 0))
		CHECK(find_header(res->headers.data, "Allow", v, sizeof(v)));
	if (res->status == 204) {
		CHECK(res->body.len == 0);
		return;
	}

	CHECK(res->body.len > 0 && strlen(res->body.data) == res->body.len);
	CHECK(strcmp(res->content_type, "application/json") == 0);
	root = cJSON_ParseWithLength(res->body.data, res->body.len);
	CHECK(cJSON_IsObject(root));
	if (res->status >= 400 && (!db_reached ||
	    cJSON_GetObjectItemCaseSensitive(root, "error") != NULL)) {
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(root,
		    "request_id");

		CHECK(cJSON_IsObject(err));
		CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err,
		    "code")));
		CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err,
		    "message")));
		CHECK(cJSON_IsString(id) &&
		    strcmp(id->valuestring, req->request_id) == 0);
	}
	cJSON_Delete(root);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct app		 app;
	struct http_request	 req;
	struct http_response	 res;
	struct input		 in;
	const uint8_t		*p = data, *end = data + size;
	size_t			 i, len;

	db_reached = false;
	memset(&in, 0, sizeof(in));
	/* The first nine fields are C strings, cut at a NUL as a FastCGI param is. */
	for (i = 0; i < F_BODY; i++) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));

		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if ((in.f[i] = strndup((const char *)p, len)) == NULL)
			goto out;
		p = nl != NULL ? nl + 1 : end;
	}
	in.body = p;
	in.bodylen = (size_t)(end - p);
	snprintf(in.clen, sizeof(in.clen), "%zu", in.bodylen);

	http_request_init(&req);
	http_response_init(&res);
	(void)http_request_parse(&req, input_param, input_read, &in);

	memset(&app, 0, sizeof(app));
	app.cfg = &cfg;
	app.db = NULL;
	api_handle(&app, &req, &res);
	check_response(&req, &res);

	http_response_free(&res);
	http_request_free(&req);
out:
	for (i = 0; i < F__MAX; i++)
		free(in.f[i]);
	return 0;
}
