/*
 * libFuzzer target: the Authorization header as the daemon reads it: the
 * edge parser (http_request_parse, src/http_parse.c) copies
 * HTTP_AUTHORIZATION into the request, and http_bearer_key extracts the
 * API key that authenticate (src/api.c) hashes and looks up.
 *
 * Input: the header value (cut at its first NUL, like a FastCGI parameter).
 *
 * Checked against a plain reference: a key is found only after "Bearer "
 * in any case, it is a suffix of the value without leading spaces, and a
 * value too long for the request's slot leaves it empty (too_long).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "http_parse.h"
#include "fuzz_common.h"
#include "log.h"


static const char *
param(const char *name, void *arg)
{
	if (strcmp(name, "HTTP_AUTHORIZATION") == 0)
		return arg;
	if (strcmp(name, "REQUEST_METHOD") == 0)
		return "GET";
	return NULL;
}

static long
no_body(char *dst, size_t n, void *arg)
{
	(void)dst;
	(void)n;
	(void)arg;
	return 0;
}

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* The key as the contract says, the simple way: an offset into s, or -1. */
static long
ref_key(const char *s)
{
	static const char	 scheme[] = "bearer ";
	size_t			 i;

	for (i = 0; i < sizeof(scheme) - 1; i++)
		if (lower((unsigned char)s[i]) != scheme[i])
			return -1;
	while (s[i] == ' ')
		i++;
	return (long)i;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request	 req;
	const char		*key;
	char			*value;
	long			 want;

	if ((value = strndup((const char *)data, size)) == NULL)
		return 0;
	want = ref_key(value);
	key = http_bearer_key(value);
	if (want < 0)
		CHECK(key == NULL);
	else
		CHECK(key == value + want && key[0] != ' ');

	http_request_init(&req);
	(void)http_request_parse(&req, param, no_body, value);
	if (strlen(value) >= sizeof(req.authorization)) {
		CHECK(req.too_long && req.authorization[0] == '\0');
		CHECK(http_bearer_key(req.authorization) == NULL);
	} else {
		CHECK(strcmp(req.authorization, value) == 0);
		key = http_bearer_key(req.authorization);
		CHECK((key == NULL) == (want < 0));
		if (key != NULL)
			CHECK(strcmp(key, value + want) == 0);
	}
	http_request_free(&req);
	free(value);
	return 0;
}
