/*
 * Shared by the fuzz targets of whole Salesforce answers (fuzz_identity,
 * fuzz_revoke): the input's first byte picks the HTTP status, the rest is
 * the body, NUL bytes included, held in a struct buf the way the response
 * sink of src/sf_xfer.c fills it.
 */
#ifndef SFC_FUZZ_ANSWERS_H
#define SFC_FUZZ_ANSWERS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_common.h"
#include "sf.h"
#include "sf_internal.h"

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

/* A refusal: bounded code, displayable message, the answer's status. */
static inline void
answer_check_error(const struct sf_error *err, long status)
{
	CHECK(err->kind != SF_OK);
	CHECK(err->code[0] != '\0' &&
	    strnlen(err->code, sizeof(err->code)) < sizeof(err->code));
	CHECK(fuzz_text_ok(err->message, sizeof(err->message)));
	CHECK(err->http_status == status);
	/* Only a 4xx may tell the customer to reconnect. */
	if (err->kind == SF_INVALID)
		CHECK(status == 400 || status == 401 || status == 403);
}

#endif
