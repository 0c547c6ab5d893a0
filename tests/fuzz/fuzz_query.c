/*
 * libFuzzer target: the query string and request id parsers of src/http.c.
 *
 * Input: "<name>\n<query>" (the query runs to the end of the input or to
 * its first NUL, like QUERY_STRING). http_query_param() is checked against
 * a plain reference with output buffers of several exact sizes (heap
 * allocations of exactly outlen bytes, so ASan sees a write one past the
 * end); http_percent_decode() gets the raw input bytes, NULs included;
 * http_request_id_ok() gets the query.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static const size_t outlens[] = { 0, 1, 2, 3, 32, 256, 2049 };

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The contract of http_percent_decode, written the simple way. */
static int
ref_decode(const unsigned char *in, size_t inlen, char *out, size_t outlen)
{
	size_t	 o = 0;

	for (size_t i = 0; i < inlen; i++) {
		int c = in[i];

		if (c == '%') {
			if (inlen - i < 3 || hexval(in[i + 1]) < 0 ||
			    hexval(in[i + 2]) < 0)
				return -1;
			c = hexval(in[i + 1]) * 16 + hexval(in[i + 2]);
			i += 2;
		}
		if (c == 0)
			return -1;
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

/* The contract of http_query_param: the first "name" or "name=value" segment. */
static int
ref_param(const char *query, const char *name, char *out, size_t outlen)
{
	size_t	 nlen = strlen(name), start = 0, qlen = strlen(query);

	while (start < qlen) {
		size_t end = start;

		while (end < qlen && query[end] != '&')
			end++;
		if (end - start == nlen && memcmp(query + start, name, nlen) == 0) {
			if (outlen == 0)
				return -1;
			out[0] = '\0';
			return 1;
		}
		if (end - start > nlen && memcmp(query + start, name, nlen) == 0 &&
		    query[start + nlen] == '=')
			return ref_decode((const unsigned char *)query + start +
			    nlen + 1, end - start - nlen - 1, out, outlen) == 0 ?
			    1 : -1;
		start = end + 1;
	}
	return 0;
}

static bool
ref_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._:-") == n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t	*nl = memchr(data, '\n', size);
	size_t		 namelen = nl != NULL ? (size_t)(nl - data) : 0;
	const uint8_t	*q = nl != NULL ? nl + 1 : data;
	size_t		 qlen = size - (size_t)(q - data);
	char		*name, *query, *ref;

	name = strndup((const char *)data, namelen);
	query = strndup((const char *)q, qlen);
	ref = malloc(size + 2050);	/* larger than any outlens[] entry */
	if (name == NULL || query == NULL || ref == NULL)
		goto out;

	for (size_t i = 0; i < sizeof(outlens) / sizeof(outlens[0]); i++) {
		size_t	 n = outlens[i];
		char	*out = malloc(n);
		int	 rc, want;

		if (out == NULL)
			break;
		rc = http_query_param(query, name, out, n);
		want = ref_param(query, name, ref, n);
		CHECK(rc == want);
		if (rc == 1)
			CHECK(strlen(out) < n && strcmp(out, ref) == 0);
		free(out);

		out = malloc(n);
		if (out == NULL)
			break;
		rc = http_percent_decode((const char *)data, size, out, n);
		want = ref_decode(data, size, ref, n);
		CHECK(rc == want);
		if (rc == 0)
			CHECK(strlen(out) <= size && strlen(out) < n &&
			    strcmp(out, ref) == 0);
		free(out);
	}

	CHECK(http_request_id_ok(query) == ref_id_ok(query));
out:
	free(name);
	free(query);
	free(ref);
	return 0;
}
