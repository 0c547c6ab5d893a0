/*
 * Unit tests for src/http.c, src/http_parse.c and src/buf.c (cmocka):
 * query parameters, percent-decoding, request ids, response headers, the
 * edge parser (fields, path, CONTENT_LENGTH, body reads), bounded buffers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "http.h"
#include "http_parse.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- http_query_param ---- */

static void
test_query_param_found(void **state)
{
	static const struct {
		const char *query, *name, *value;
	} t[] = {
		{ "limit=50&status=invalid&cursor=acme", "limit", "50" },
		{ "limit=50&status=invalid&cursor=acme", "status", "invalid" },
		{ "limit=50&status=invalid&cursor=acme", "cursor", "acme" },
		{ "a=1", "a", "1" },
		{ "a=", "a", "" },			/* empty value */
		{ "x=1&a=&b=2", "a", "" },
		{ "a", "a", "" },			/* no '=' at all */
		{ "x=1&a&b=2", "a", "" },
		{ "a=1&a=2", "a", "1" },		/* first one wins */
		{ "&&a=1&", "a", "1" },
		{ "limit=5&lim=3", "lim", "3" },	/* prefix of another name */
		{ "lim=3&limit=5", "limit", "5" },
		{ "q=a%20b", "q", "a b" },		/* percent-decoding */
		{ "q=a+b", "q", "a+b" },		/* '+' stays '+' */
		{ "q=%2F%2f%3D%26", "q", "//=&" },
		{ "q=%C3%A9", "q", "\xc3\xa9" },
		{ "return_to=%2Fadmin%3Fx%3D1", "return_to", "/admin?x=1" },
		{ "q=a=b", "q", "a=b" },
	};
	char	 out[64];
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		memset(out, 'x', sizeof(out));
		if (http_query_param(t[i].query, t[i].name, out, sizeof(out)) != 1)
			fail_msg("%s in \"%s\" not found", t[i].name, t[i].query);
		assert_string_equal(out, t[i].value);
	}
}

static void
test_query_param_absent(void **state)
{
	static const struct {
		const char *query, *name;
	} t[] = {
		{ "", "limit" },
		{ "limit=5", "lim" },
		{ "lim=5", "limit" },
		{ "xlimit=5", "limit" },
		{ "a=1&b=2", "c" },
		{ "a=limit", "limit" },
		{ "LIMIT=5", "limit" },
	};
	char	 out[64];
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (http_query_param(t[i].query, t[i].name, out, sizeof(out)) != 0)
			fail_msg("%s found in \"%s\"", t[i].name, t[i].query);
}

static void
test_query_param_bad(void **state)
{
	static const char *const t[] = {
		"q=%00",
		"q=a%00b",
		"q=%G1",
		"q=%1G",
		"q=%4",
		"q=%",
		"q=abc%",
		"q=%%41",
		"q=%4&x=1",			/* escape cut by the next param */
		"x=1&q=%zz",
	};
	char	 out[64];
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (http_query_param(t[i], "q", out, sizeof(out)) != -1)
			fail_msg("\"%s\" not rejected", t[i]);
}

static void
test_query_param_overflow(void **state)
{
	char	 out[8];

	(void)state;
	/* 7 bytes and the NUL fit; 8 do not */
	assert_int_equal(http_query_param("q=1234567", "q", out, sizeof(out)), 1);
	assert_string_equal(out, "1234567");
	assert_int_equal(http_query_param("q=12345678", "q", out, sizeof(out)), -1);
	/* decoded length counts, not encoded length */
	assert_int_equal(http_query_param("q=%41%41%41%41%41%41%41", "q", out,
	    sizeof(out)), 1);
	assert_string_equal(out, "AAAAAAA");
	assert_int_equal(http_query_param("q=%41%41%41%41%41%41%41%41", "q", out,
	    sizeof(out)), -1);
}

/* ---- http_percent_decode ---- */

static void
test_percent_decode(void **state)
{
	char	 out[16];

	(void)state;
	assert_int_equal(http_percent_decode("a%2Fb", 5, out, sizeof(out)), 0);
	assert_string_equal(out, "a/b");
	/* only inlen bytes are read */
	assert_int_equal(http_percent_decode("abc%41", 3, out, sizeof(out)), 0);
	assert_string_equal(out, "abc");
	assert_int_equal(http_percent_decode("%41", 2, out, sizeof(out)), -1);
	assert_int_equal(http_percent_decode("", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(http_percent_decode("%7e%7E", 6, out, sizeof(out)), 0);
	assert_string_equal(out, "~~");
	assert_int_equal(http_percent_decode("%00", 3, out, sizeof(out)), -1);
	assert_int_equal(http_percent_decode("abcd", 4, out, 4), -1);
	assert_int_equal(http_percent_decode("abc", 3, out, 4), 0);
}

/* ---- http_request_id_ok ---- */

static void
test_request_id(void **state)
{
	static const struct {
		const char	*id;
		bool		 ok;
	} t[] = {
		{ "a", true },
		{ "0123456789abcdef0123456789abcdef", true },
		{ "req-1.2_3:4", true },
		{ "ABC-def", true },
		{ "", false },
		{ "has space", false },
		{ " lead", false },
		{ "quote\"", false },
		{ "single'", false },
		{ "back\\slash", false },
		{ "new\nline", false },
		{ "cr\r", false },
		{ "tab\t", false },
		{ "del\x7f", false },
		{ "esc\x1b[31m", false },
		{ "caf\xc3\xa9", false },
		{ "a/b", false },
		{ "a<b>", false },
		{ "a;b", false },
		{ "a%20b", false },
	};
	char	 id[80];
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (http_request_id_ok(t[i].id) != t[i].ok)
			fail_msg("http_request_id_ok(\"%s\") != %d", t[i].id,
			    t[i].ok);
	memset(id, 'a', sizeof(id));
	id[64] = '\0';
	assert_true(http_request_id_ok(id));
	id[64] = 'a';
	id[65] = '\0';
	assert_false(http_request_id_ok(id));
}

/* ---- http_add_header, http_status_text ---- */

static void
test_add_header(void **state)
{
	struct http_response	 res;

	(void)state;
	http_response_init(&res);
	assert_int_equal(res.status, 200);
	assert_int_equal(http_add_header(&res, "X-Request-Id", "abc"), 0);
	assert_int_equal(http_add_header(&res, "Cache-Control", "no-store"), 0);
	assert_string_equal(res.headers.data,
	    "X-Request-Id: abc\r\nCache-Control: no-store\r\n");
	http_response_free(&res);
}

static void
test_add_header_injection(void **state)
{
	static const struct {
		const char *name, *value;
	} t[] = {
		{ "X-A", "a\r\nSet-Cookie: x=1" },
		{ "X-A", "a\nSet-Cookie: x=1" },
		{ "X-A", "a\r" },
		{ "X-A", "\n" },
		{ "X-A\r\nSet-Cookie", "x" },
		{ "X-A\n", "x" },
		{ "X-A: b", "x" },
		{ "X A", "x" },
		{ "X:", "x" },
	};
	struct http_response	 res;
	size_t			 i;

	(void)state;
	http_response_init(&res);
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (http_add_header(&res, t[i].name, t[i].value) != -1)
			fail_msg("header #%zu accepted", i);
	assert_int_equal(res.headers.len, 0);
	http_response_free(&res);
}

static void
test_add_header_full(void **state)
{
	struct http_response	 res;
	char			 big[1024];
	int			 i, rc = 0;

	(void)state;
	http_response_init(&res);
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (i = 0; i < 64 && rc == 0; i++)
		rc = http_add_header(&res, "X-Big", big);
	assert_int_equal(rc, -1);
	assert_true(res.headers.len <= res.headers.max);
	http_response_free(&res);
}

static void
test_status_text(void **state)
{
	static const struct {
		int		 status;
		const char	*text;
	} t[] = {
		{ 200, "OK" }, { 201, "Created" }, { 204, "No Content" },
		{ 303, "See Other" }, { 400, "Bad Request" },
		{ 401, "Unauthorized" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" },
		{ 409, "Conflict" }, { 413, "Payload Too Large" },
		{ 415, "Unsupported Media Type" },
		{ 500, "Internal Server Error" }, { 502, "Bad Gateway" },
		{ 503, "Service Unavailable" }, { 299, "Unknown" },
		{ 0, "Unknown" }, { -1, "Unknown" },
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		assert_string_equal(http_status_text(t[i].status), t[i].text);
}

static void
test_request_init(void **state)
{
	struct http_request	 req;

	(void)state;
	memset(&req, 0x55, sizeof(req));
	http_request_init(&req);
	assert_string_equal(req.method, "");
	assert_false(req.too_long);
	assert_int_equal(req.content_length, 0);
	assert_int_equal(req.body.max, HTTP_MAX_BODY);
	assert_int_equal(buf_puts(&req.body, "{}"), 0);
	http_request_free(&req);
	http_request_free(&req);	/* twice is harmless */
}

/* ---- http_request_parse ---- */

/* A request as the edge would hand it over. */
struct fake {
	const char *const	*params;	/* name, value, ..., NULL */
	const char		*body;		/* what the client sent */
	size_t			 bodylen;
	size_t			 piece;		/* most bytes a read gives */
	long			 fail;		/* returned by every read */
	size_t			 reads;
};

static const char *
fake_param(const char *name, void *arg)
{
	const struct fake	*f = arg;
	const char *const	*p;

	for (p = f->params; p != NULL && *p != NULL; p += 2)
		if (strcmp(p[0], name) == 0)
			return p[1];
	return NULL;
}

static long
fake_read(char *dst, size_t n, void *arg)
{
	struct fake	*f = arg;

	f->reads++;
	if (f->fail != 0)
		return f->fail;
	if (f->piece > 0 && n > f->piece)
		n = f->piece;
	if (n > f->bodylen)
		n = f->bodylen;
	memcpy(dst, f->body, n);
	f->body += n;
	f->bodylen -= n;
	return (long)n;
}

/* Parses f into req (initialised here; the caller frees it). */
static int
parse_fake(struct fake *f, struct http_request *req)
{
	http_request_init(req);
	return http_request_parse(req, fake_param, fake_read, f);
}

static bool
is_generated_id(const char *id)
{
	return strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32;
}

static void
test_parse_fields(void **state)
{
	static const char *const params[] = {
		"REQUEST_METHOD", "POST",
		"REQUEST_URI", "/v1/orgs/acme/connect?x=1?y",
		"SCRIPT_NAME", "/ignored",
		"QUERY_STRING", "x=1?y",
		"CONTENT_TYPE", "application/json",
		"HTTP_AUTHORIZATION", "Bearer k",
		"HTTP_ACCEPT", "*/*",
		"HTTP_ORIGIN", "https://app.example.com",
		"HTTP_X_REQUEST_ID", "req-1.a:b_c",
		"CONTENT_LENGTH", "2",
		NULL,
	};
	struct fake		 f = { .params = params, .body = "{}",
				    .bodylen = 2 };
	struct http_request	 req;

	(void)state;
	assert_int_equal(parse_fake(&f, &req), 0);
	assert_string_equal(req.method, "POST");
	assert_string_equal(req.path, "/v1/orgs/acme/connect");
	assert_string_equal(req.query, "x=1?y");
	assert_string_equal(req.content_type, "application/json");
	assert_string_equal(req.authorization, "Bearer k");
	assert_string_equal(req.accept, "*/*");
	assert_string_equal(req.origin, "https://app.example.com");
	assert_string_equal(req.request_id, "req-1.a:b_c");
	assert_int_equal(req.content_length, 2);
	assert_int_equal(req.body.len, 2);
	assert_string_equal(req.body.data, "{}");
	assert_false(req.too_long || req.bad_length || req.body_too_large);
	http_request_free(&req);
}

static void
test_parse_path_fallback(void **state)
{
	static const char *const script[] = { "SCRIPT_NAME", "/healthz", NULL };
	struct fake		 f = { .params = script };
	struct http_request	 req;

	(void)state;
	assert_int_equal(parse_fake(&f, &req), 0);
	assert_string_equal(req.path, "/healthz");
	assert_string_equal(req.method, "");
	http_request_free(&req);

	f.params = NULL;
	assert_int_equal(parse_fake(&f, &req), 0);
	assert_string_equal(req.path, "/");
	assert_string_equal(req.query, "");
	http_request_free(&req);
}

static void
test_parse_too_long(void **state)
{
	struct http_request	 req;
	char			 path[sizeof(req.path) + 1];
	const char		*params[] = {
		"REQUEST_METHOD", "0123456789abcdef",	/* 16: no room for NUL */
		"HTTP_ORIGIN", "https://a",
		NULL, NULL,
		NULL,
	};
	struct fake		 f = { .params = params };

	(void)state;
	assert_int_equal(parse_fake(&f, &req), -1);
	assert_true(req.too_long);
	assert_string_equal(req.method, "");
	assert_string_equal(req.origin, "https://a");	/* the rest is read */
	http_request_free(&req);

	/* 1024 bytes before the '?' do not fit; the query does not count. */
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	params[0] = "REQUEST_URI";
	params[1] = path;
	assert_int_equal(parse_fake(&f, &req), -1);
	assert_true(req.too_long);
	assert_string_equal(req.path, "");
	http_request_free(&req);

	path[sizeof(path) - 2] = '?';
	assert_int_equal(parse_fake(&f, &req), 0);
	assert_int_equal(strlen(req.path), sizeof(path) - 2);
	http_request_free(&req);
}

static void
test_parse_request_id(void **state)
{
	const char		*params[] = {
		"HTTP_X_REQUEST_ID", "bad id", NULL,
	};
	struct fake		 f = { .params = params };
	struct http_request	 req;
	char			 first[sizeof(req.request_id)];

	(void)state;
	assert_int_equal(parse_fake(&f, &req), 0);
	assert_true(is_generated_id(req.request_id));
	snprintf(first, sizeof(first), "%s", req.request_id);
	http_request_free(&req);

	params[0] = NULL;		/* absent */
	assert_int_equal(parse_fake(&f, &req), 0);
	assert_true(is_generated_id(req.request_id));
	assert_string_not_equal(req.request_id, first);
	http_request_free(&req);
}

/* Ids come in batches: a forked child must not hand out its parent's. */
static void
test_parse_request_id_fork(void **state)
{
	struct fake		 f = { .params = NULL };
	struct http_request	 req;
	char			 child[sizeof(req.request_id)] = "";
	char			 parent[sizeof(req.request_id)];
	int			 fds[2], status;
	pid_t			 pid;

	(void)state;
	assert_int_equal(parse_fake(&f, &req), 0);	/* a batch is drawn */
	http_request_free(&req);
	assert_int_equal(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		parse_fake(&f, &req);
		_exit(write(fds[1], req.request_id, 32) == 32 ? 0 : 1);
	}
	assert_true(pid > 0);
	close(fds[1]);
	assert_int_equal(read(fds[0], child, 32), 32);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(parse_fake(&f, &req), 0);
	snprintf(parent, sizeof(parent), "%s", req.request_id);
	http_request_free(&req);
	assert_true(is_generated_id(child));
	assert_true(is_generated_id(parent));
	assert_string_not_equal(child, parent);
}

/*
 * CONTENT_LENGTH: digits only. Before http_parse.c, fcgi.c used strtoull,
 * which skips leading white space: " 5" was read as 5 and " -1" as
 * 2^64 - 1 (413). Both are now bad_length (400).
 */
static void
test_parse_content_length(void **state)
{
	enum { OK, BAD, LARGE };
	static const struct {
		const char	*cl;
		int		 want;
		size_t		 len;	/* content_length when OK */
	} t[] = {
		{ NULL, OK, 0 },		/* absent: no body */
		{ "", OK, 0 },			/* empty: no body */
		{ "0", OK, 0 },
		{ "5", OK, 5 },
		{ "005", OK, 5 },
		{ "+1", BAD, 0 },
		{ "-1", BAD, 0 },
		{ "-0", BAD, 0 },
		{ " 5", BAD, 0 },
		{ " -1", BAD, 0 },
		{ "\t5", BAD, 0 },
		{ "5 ", BAD, 0 },
		{ "5\n", BAD, 0 },
		{ "0x5", BAD, 0 },
		{ "1e3", BAD, 0 },
		{ "5.0", BAD, 0 },
		{ "five", BAD, 0 },
		{ "18446744073709551616", BAD, 0 },	/* 2^64 */
		{ "99999999999999999999999", BAD, 0 },
		{ "18446744073709551615", LARGE, 0 },	/* 2^64 - 1 */
		{ "65537", LARGE, 0 },			/* HTTP_MAX_BODY + 1 */
	};
	const char		*params[] = { "CONTENT_LENGTH", NULL, NULL };
	struct fake		 f = { .params = params };
	struct http_request	 req;
	size_t			 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		params[0] = t[i].cl != NULL ? "CONTENT_LENGTH" : NULL;
		params[1] = t[i].cl;
		f.body = "hello, world";
		f.bodylen = strlen(f.body);
		f.reads = 0;
		if (parse_fake(&f, &req) != (t[i].want == OK ? 0 : -1) ||
		    req.bad_length != (t[i].want == BAD) ||
		    req.body_too_large != (t[i].want == LARGE))
			fail_msg("CONTENT_LENGTH \"%s\": bad_length %d, "
			    "body_too_large %d", t[i].cl ? t[i].cl : "(absent)",
			    req.bad_length, req.body_too_large);
		if (t[i].want == LARGE)
			assert_int_equal(req.content_length, HTTP_MAX_BODY + 1);
		else
			assert_int_equal(req.content_length, t[i].len);
		assert_int_equal(req.body.len, t[i].len);
		if (t[i].want != OK || t[i].len == 0)
			assert_int_equal(f.reads, 0);	/* nothing read */
		http_request_free(&req);
	}
}

/* A body of exactly HTTP_MAX_BODY is read whole, in pieces. */
static void
test_parse_body_at_cap(void **state)
{
	static char		 body[HTTP_MAX_BODY + 1];
	char			 cl[16];
	const char		*params[] = { "CONTENT_LENGTH", cl, NULL };
	struct fake		 f = { .params = params, .body = body,
				    .bodylen = sizeof(body), .piece = 1000 };
	struct http_request	 req;

	(void)state;
	memset(body, 'x', sizeof(body));
	snprintf(cl, sizeof(cl), "%d", HTTP_MAX_BODY);
	assert_int_equal(parse_fake(&f, &req), 0);
	assert_int_equal(req.content_length, HTTP_MAX_BODY);
	assert_int_equal(req.body.len, HTTP_MAX_BODY);
	assert_int_equal(f.bodylen, 1);		/* the byte past the length stays */
	assert_int_equal(f.reads, (HTTP_MAX_BODY + 999) / 1000);
	http_request_free(&req);
}

static void
test_parse_short_read(void **state)
{
	const char		*params[] = { "CONTENT_LENGTH", "10", NULL };
	struct fake		 f = { .params = params };
	struct http_request	 req;

	(void)state;
	/* Fewer bytes than promised, then 0 (the client went away). */
	f.body = "hello";
	f.bodylen = 5;
	f.piece = 2;
	assert_int_equal(parse_fake(&f, &req), -1);
	assert_true(req.bad_length);
	assert_false(req.body_too_large);
	assert_int_equal(req.content_length, 10);
	assert_int_equal(f.reads, 4);		/* 2, 2, 1, then 0 */
	assert_int_equal(req.body.len, 5);
	http_request_free(&req);

	/* The same promise kept in small pieces. */
	f.body = "0123456789";
	f.bodylen = 10;
	f.piece = 3;
	f.reads = 0;
	assert_int_equal(parse_fake(&f, &req), 0);
	assert_string_equal(req.body.data, "0123456789");
	assert_int_equal(f.reads, 4);
	http_request_free(&req);

	/* A read error, and a reader claiming more than it was asked for. */
	f.fail = -1;
	assert_int_equal(parse_fake(&f, &req), -1);
	assert_true(req.bad_length);
	http_request_free(&req);
	f.fail = 11;
	assert_int_equal(parse_fake(&f, &req), -1);
	assert_true(req.bad_length);
	assert_int_equal(req.body.len, 0);
	http_request_free(&req);
}

/* ---- buf ---- */

static void
test_buf_append_bounded(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "12345", 5), 0);
	assert_int_equal(buf_append(&b, "6789", 4), -1);	/* 9 > 8 */
	assert_int_equal(b.len, 5);
	assert_string_equal(b.data, "12345");
	assert_int_equal(buf_append(&b, "678", 3), 0);		/* exactly 8 */
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "12345678");
	assert_int_equal(buf_append(&b, "9", 1), -1);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_string_equal(b.data, "12345678");
	assert_true(b.cap <= b.max + 1);
	buf_free(&b);
	assert_null(b.data);
	buf_free(&b);
}

static void
test_buf_huge_append(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 16);
	assert_int_equal(buf_puts(&b, "ab"), 0);
	/* a length that would wrap size_t arithmetic */
	assert_int_equal(buf_append(&b, "x", SIZE_MAX), -1);
	assert_int_equal(buf_append(&b, "x", SIZE_MAX - 1), -1);
	assert_string_equal(b.data, "ab");
	buf_free(&b);
}

static void
test_buf_grows(void **state)
{
	struct buf	 b;
	char		 chunk[100];
	int		 i;

	(void)state;
	buf_init(&b, 10000);
	memset(chunk, 'z', sizeof(chunk));
	for (i = 0; i < 100; i++)
		assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 10000);
	assert_int_equal(strlen(b.data), 10000);
	assert_int_equal(buf_append(&b, chunk, 1), -1);
	buf_free(&b);
}

static void
test_buf_empty(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(buf_append(&b, "a", 1), -1);
	assert_int_equal(b.len, 0);
	assert_null(buf_steal(&b));
	buf_free(&b);
}

static void
test_buf_printf(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 16);
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "abc"), 0);
	assert_string_equal(b.data, "42-abc");
	assert_int_equal(buf_printf(&b, "%s", "+more"), 0);
	assert_string_equal(b.data, "42-abc+more");
	assert_int_equal(b.len, 11);
	/* 11 + 6 > 16: refused, nothing written */
	assert_int_equal(buf_printf(&b, "%s", "sixsix"), -1);
	assert_string_equal(b.data, "42-abc+more");
	assert_int_equal(b.len, 11);
	assert_int_equal(buf_printf(&b, "%05d", 7), 0);		/* exactly 16 */
	assert_string_equal(b.data, "42-abc+more00007");
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_free(&b);
}

static void
test_buf_steal(void **state)
{
	struct buf	 b;
	char		*p;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(buf_puts(&b, "hello"), 0);
	p = buf_steal(&b);
	assert_string_equal(p, "hello");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_puts(&b, "again"), 0);	/* still usable */
	assert_string_equal(b.data, "again");
	free(p);
	buf_free(&b);
}

static void
test_buf_urlencoded(void **state)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "a b&c=d/\xc3\xa9", "a%20b%26c%3Dd%2F%C3%A9" },
		{ "AZaz09-._~", "AZaz09-._~" },
		{ "", "" },
		{ "+%?#", "%2B%25%3F%23" },
		{ "\x01\x7f\xff", "%01%7F%FF" },
		{ "https://x.test/cb?a=1",
		  "https%3A%2F%2Fx.test%2Fcb%3Fa%3D1" },
	};
	struct buf	 b;
	size_t		 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		buf_init(&b, 256);
		assert_int_equal(buf_put_urlencoded(&b, t[i].in), 0);
		assert_string_equal(b.len ? b.data : "", t[i].out);
		buf_free(&b);
	}
	buf_init(&b, 4);
	assert_int_equal(buf_put_urlencoded(&b, "a b"), -1);	/* 5 > 4 */
	assert_true(b.len <= 4);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_param_found),
		cmocka_unit_test(test_query_param_absent),
		cmocka_unit_test(test_query_param_bad),
		cmocka_unit_test(test_query_param_overflow),
		cmocka_unit_test(test_percent_decode),
		cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_add_header),
		cmocka_unit_test(test_add_header_injection),
		cmocka_unit_test(test_add_header_full),
		cmocka_unit_test(test_status_text),
		cmocka_unit_test(test_request_init),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_parse_path_fallback),
		cmocka_unit_test(test_parse_too_long),
		cmocka_unit_test(test_parse_request_id),
		cmocka_unit_test(test_parse_request_id_fork),
		cmocka_unit_test(test_parse_content_length),
		cmocka_unit_test(test_parse_body_at_cap),
		cmocka_unit_test(test_parse_short_read),
		cmocka_unit_test(test_buf_append_bounded),
		cmocka_unit_test(test_buf_huge_append),
		cmocka_unit_test(test_buf_grows),
		cmocka_unit_test(test_buf_empty),
		cmocka_unit_test(test_buf_printf),
		cmocka_unit_test(test_buf_steal),
		cmocka_unit_test(test_buf_urlencoded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
