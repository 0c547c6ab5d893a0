#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "http_parse.h"

#define READ_CHUNK	8192
/* A generated request id: this many random bytes, in hex. */
#define ID_BYTES	16
/* Ids drawn from libcrypto at once (each RAND_bytes costs a getpid). */
#define ID_BATCH	64

static unsigned char	 id_pool[ID_BYTES * ID_BATCH];
static size_t		 id_left;	/* ids of id_pool not handed out */
static bool		 id_pool_forked;	/* the fork handler is set */

/* Copies parameter name into dst; sets req->too_long when it does not fit. */
static void
parse_field(struct http_request *req, http_param_fn *param_fn, void *arg,
    const char *name, char *dst, size_t dstlen)
{
	const char	*v = param_fn(name, arg);
	size_t		 len;

	dst[0] = '\0';
	if (v == NULL)
		return;
	len = strlen(v);
	if (len >= dstlen) {
		req->too_long = true;
		return;
	}
	memcpy(dst, v, len + 1);
}

/* Prefer is advisory (RFC 7240): one too long is ignored, not refused. */
static void
parse_prefer(struct http_request *req, http_param_fn *param_fn, void *arg)
{
	const char	*v = param_fn("HTTP_PREFER", arg);

	req->prefer[0] = '\0';
	if (v != NULL && strlen(v) < sizeof(req->prefer))
		memcpy(req->prefer, v, strlen(v) + 1);
}

static void
parse_path(struct http_request *req, http_param_fn *param_fn,
    void *arg)
{
	const char	*uri = param_fn("REQUEST_URI", arg);
	size_t		 len;

	if (uri == NULL)
		uri = param_fn("SCRIPT_NAME", arg);
	if (uri == NULL)
		uri = "/";
	len = strcspn(uri, "?");
	if (len >= sizeof(req->path)) {
		req->too_long = true;
		len = 0;
	}
	memcpy(req->path, uri, len);
	req->path[len] = '\0';
}

/* In a child of fork: the parent's ids are its own. */
static void
id_pool_forget(void)
{
	memset(id_pool, 0, sizeof(id_pool));
	id_left = 0;
}

/* The random bytes of a new request id. 0, or -1 (out zeroed). */
static int
random_id(unsigned char out[ID_BYTES])
{
	if (!id_pool_forked) {
		if (pthread_atfork(NULL, NULL, id_pool_forget) != 0)
			goto fail;
		id_pool_forked = true;
	}
	if (id_left == 0) {
		if (crypto_random(id_pool, sizeof(id_pool)) == -1)
			goto fail;
		id_left = ID_BATCH;
	}
	id_left--;
	memcpy(out, id_pool + id_left * ID_BYTES, ID_BYTES);
	memset(id_pool + id_left * ID_BYTES, 0, ID_BYTES);
	return 0;
fail:
	memset(out, 0, ID_BYTES);
	return -1;
}

/* An insane caller id is replaced, not an error. */
static void
parse_request_id(struct http_request *req, http_param_fn *param_fn,
    void *arg)
{
	const char	*given = param_fn("HTTP_X_REQUEST_ID", arg);
	unsigned char	 raw[ID_BYTES];

	if (given != NULL && http_request_id_ok(given)) {
		snprintf(req->request_id, sizeof(req->request_id), "%s", given);
		return;
	}
	(void)random_id(raw);
	crypto_hex(raw, sizeof(raw), req->request_id);
}

/*
 * Parses a CONTENT_LENGTH: one or more ASCII digits and nothing else (no
 * sign, no white space), at most ULLONG_MAX. 0 and *n set, or -1.
 */
static int
parse_length(const char *s, unsigned long long *n)
{
	unsigned long long	 v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned int d = (unsigned char)*s - '0';

		if (d > 9 || v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*n = v;
	return 0;
}

/* Reads the body, bounded by HTTP_MAX_BODY. */
static void
parse_body(struct http_request *req, http_param_fn *param_fn,
    http_read_fn *read_fn, void *arg)
{
	const char		*cl = param_fn("CONTENT_LENGTH", arg);
	char			 chunk[READ_CHUNK];
	unsigned long long	 n;
	size_t			 left;

	if (cl == NULL || *cl == '\0')
		return;
	if (parse_length(cl, &n) == -1) {
		req->bad_length = true;
		return;
	}
	if (n > HTTP_MAX_BODY) {
		req->body_too_large = true;
		req->content_length = HTTP_MAX_BODY + 1;
		return;
	}
	req->content_length = (size_t)n;
	for (left = (size_t)n; left > 0;) {
		size_t	 want = left < READ_CHUNK ? left : READ_CHUNK;
		long	 got = read_fn(chunk, want, arg);

		if (got <= 0 || (size_t)got > want ||
		    buf_append(&req->body, chunk, (size_t)got) == -1) {
			req->bad_length = true;
			return;
		}
		left -= (size_t)got;
	}
}

int
http_request_parse(struct http_request *req, http_param_fn *param_fn,
    http_read_fn *read_fn, void *arg)
{
	parse_field(req, param_fn, arg, "REQUEST_METHOD", req->method,
	    sizeof(req->method));
	parse_path(req, param_fn, arg);
	parse_field(req, param_fn, arg, "QUERY_STRING", req->query,
	    sizeof(req->query));
	parse_field(req, param_fn, arg, "CONTENT_TYPE", req->content_type,
	    sizeof(req->content_type));
	parse_field(req, param_fn, arg, "HTTP_AUTHORIZATION",
	    req->authorization, sizeof(req->authorization));
	parse_field(req, param_fn, arg, "HTTP_ACCEPT", req->accept,
	    sizeof(req->accept));
	parse_field(req, param_fn, arg, "HTTP_ORIGIN", req->origin,
	    sizeof(req->origin));
	parse_field(req, param_fn, arg, "HTTP_COOKIE", req->cookie, sizeof(req->cookie));
	parse_prefer(req, param_fn, arg);
	parse_request_id(req, param_fn, arg);
	parse_body(req, param_fn, read_fn, arg);
	return req->too_long || req->bad_length || req->body_too_large ? -1 : 0;
}

const char *
http_bearer_key(const char *authorization)
{
	const char	*key;

	if (authorization == NULL ||
	    strncasecmp(authorization, "Bearer ", 7) != 0)
		return NULL;
	key = authorization + 7;
	while (*key == ' ')
		key++;
	return key;
}
