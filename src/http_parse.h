/*
 * The edge parser: turns the FastCGI parameters and body of one request
 * into a struct http_request. It knows nothing of libfcgi: the edge
 * (fcgi.c) hands it a parameter lookup and a body reader, and the tests
 * and the fuzzer hand it their own.
 */
#ifndef SFC_HTTP_PARSE_H
#define SFC_HTTP_PARSE_H

#include <stddef.h>

#include "http.h"

/*
 * The value of the parameter name (e.g. "REQUEST_METHOD"), or NULL when
 * the request has none. The string stays the caller's; it must live until
 * http_request_parse returns.
 */
typedef const char	*http_param_fn(const char *name, void *arg);
/* Reads at most n body bytes into dst: how many, 0 at the end, -1 on error. */
typedef long		 http_read_fn(char *dst, size_t n, void *arg);

/*
 * Fills req (made by http_request_init) from the parameters and the body:
 * method, path (REQUEST_URI, else SCRIPT_NAME, else "/", cut at '?'),
 * query, content type, Authorization, Accept, Origin, the request id (the
 * caller's X-Request-Id when http_request_id_ok, else 32 random hex digits)
 * and the body. CONTENT_LENGTH must be ASCII digits only, at most 2^64 - 1
 * (no sign, no space); absent or empty means no body. A value above
 * HTTP_MAX_BODY is not read: body_too_large is set and content_length is
 * HTTP_MAX_BODY + 1.
 *
 * Returns 0 when everything fitted, -1 when one of req's flags is set:
 * too_long (a field did not fit its slot; it is left empty), bad_length
 * (CONTENT_LENGTH malformed, or the body ended early or failed to read)
 * or body_too_large. req keeps what was read either way; the body is
 * req's (http_request_free).
 */
int	http_request_parse(struct http_request *req, http_param_fn *param_fn,
	    http_read_fn *read_fn, void *arg);

/*
 * The API key of an Authorization header value: the text after the scheme
 * "Bearer" (any case) and the spaces that follow it, to the end (it may be
 * empty). NULL when the value is not of that scheme. The key points into
 * authorization; nothing is copied.
 */
const char	*http_bearer_key(const char *authorization);

#endif
