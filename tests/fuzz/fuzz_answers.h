/*
 * Shared by the fuzz targets of whole Salesforce answers (fuzz_identity,
 * fuzz_revoke): the input's first byte picks the HTTP status, the rest is
 * the body, NUL bytes included, held in a struct buf the way the response
 * sink of src/sf_xfer.c fills it.
 */
#ifndef SFC_FUZZ_ANSWERS_H
#define SFC_FUZZ_ANSWERS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sf.h"
#include "sf_internal.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static const long answer_statuses[] = {
	200, 200, 200, 200, 400, 401, 403, 404, 429, 500, 502, 503, 302, 204,
	0, 999
};

/* The status the input picks, and its body in b (data NULL when empty). */
static inline long
answer_split(const uint8_t *data, size_t size, struct buf *b)
{
	long	 status = answer_statuses[0];

	buf_init(b, SF_RESPONSE_MAX);
	if (size > 0) {
		status = answer_statuses[data[0] %
		    (sizeof(answer_statuses) / sizeof(answer_statuses[0]))];
		if (size > 1 && buf_append(b, data + 1, size - 1) == -1)
			buf_free(b);
	}
	return status;
}

/* true when s (within n bytes) is NUL-terminated valid UTF-8 without control characters. */
static inline bool
answer_text_ok(const char *s, size_t n)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 len = strnlen(s, n), i = 0;

	if (len == n)
		return false;
	while (i < len) {
		unsigned char	 c = p[i];
		size_t		 more;

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			more = 1;
		else if (c >= 0xe0 && c <= 0xef)
			more = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			more = 3;
		else
			return false;
		if (i + more >= len)
			return false;
		for (size_t k = 1; k <= more; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return false;
		i += more + 1;
	}
	return true;
}

/* A refusal: bounded code, displayable message, the answer's status. */
static inline void
answer_check_error(const struct sf_error *err, long status)
{
	CHECK(err->kind != SF_OK);
	CHECK(err->code[0] != '\0' &&
	    strnlen(err->code, sizeof(err->code)) < sizeof(err->code));
	CHECK(answer_text_ok(err->message, sizeof(err->message)));
	CHECK(err->http_status == status);
	/* Only a 4xx may tell the customer to reconnect. */
	if (err->kind == SF_INVALID)
		CHECK(status == 400 || status == 401 || status == 403);
}

#endif
