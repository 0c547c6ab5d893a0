#include <ctype.h>
#include <string.h>

#include "http.h"

void
http_request_init(struct http_request *req)
{
	memset(req, 0, sizeof(*req));
	buf_init(&req->body, HTTP_MAX_BODY);
}

void
http_request_free(struct http_request *req)
{
	buf_free(&req->body);
}

void
http_response_init(struct http_response *res)
{
	memset(res, 0, sizeof(*res));
	res->status = 200;
	res->content_type = "application/json";
	buf_init(&res->headers, 8192);
	buf_init(&res->body, HTTP_MAX_RESPONSE);
}

/* The body may have held a token or a new API key: wiped before it goes. */
void
http_response_free(struct http_response *res)
{
	buf_free(&res->headers);
	buf_cleanse_free(&res->body);
}

int
http_add_header(struct http_response *res, const char *name, const char *value)
{
	if (strpbrk(value, "\r\n") != NULL || strpbrk(name, "\r\n: ") != NULL)
		return -1;
	return buf_printf(&res->headers, "%s: %s\r\n", name, value);
}

const char *
http_status_text(int status)
{
	static const struct { int code; const char *text; } texts[] = {
		{ 200, "OK" }, { 201, "Created" }, { 204, "No Content" },
		{ 303, "See Other" }, { 400, "Bad Request" },
		{ 401, "Unauthorized" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" },
		{ 409, "Conflict" }, { 413, "Payload Too Large" },
		{ 415, "Unsupported Media Type" },
		{ 500, "Internal Server Error" }, { 502, "Bad Gateway" },
		{ 503, "Service Unavailable" },
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].code == status)
			return texts[i].text;
	return "Unknown";
}

static int
hexval(char c)
{
	static const char	 digits[] = "0123456789abcdef";
	const char		*at;

	if (c == '\0' || (at = strchr(digits, tolower((unsigned char)c))) == NULL)
		return -1;
	return (int)(at - digits);
}

int
http_percent_decode(const char *in, size_t inlen, char *out, size_t outlen)
{
	size_t	 o = 0;

	if (outlen == 0)
		return -1;
	for (size_t i = 0; i < inlen; i++) {
		int c = (unsigned char)in[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= inlen ||
			    (hi = hexval(in[i + 1])) < 0 ||
			    (lo = hexval(in[i + 2])) < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c == 0 || o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

int
http_query_param(const char *query, const char *name, char *out, size_t outlen)
{
	size_t		 nlen = strlen(name);
	const char	*p = query;

	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, "&");

		if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=')
			return http_percent_decode(p + nlen + 1, len - nlen - 1,
			    out, outlen) == 0 ? 1 : -1;
		if (len == nlen && strncmp(p, name, nlen) == 0) {
			if (outlen == 0)
				return -1;
			out[0] = '\0';
			return 1;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	return 0;
}

bool
http_request_id_ok(const char *s)
{
	size_t	 n = 0;

	for (; *s != '\0'; s++, n++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == ':' || c == '-'))
			return false;
	}
	return n >= 1 && n <= 64;
}
