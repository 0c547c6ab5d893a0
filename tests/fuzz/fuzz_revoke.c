/*
 * libFuzzer target: the revoke endpoint's answer, judged whole the way
 * sf_revoke() does after the transfer: sf_revoke_answer (src/sf_parse.c),
 * which runs sf_classify_error on anything but a 200.
 *
 * Input: one byte that picks the HTTP status (fuzz_answers.h), then the
 * body (NUL bytes included; an empty body is a buffer without data).
 *
 * Checked: "revoked" is a 200, or a 400 whose error is invalid_token or
 * unsupported_token_type (then *err is empty); a refusal has a bounded
 * code, a displayable message and the answer's status.
 */
#include "fuzz_answers.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sf_error	 err, cls;
	struct buf	 resp;
	long		 status = answer_split(data, size, &resp);
	int		 rc;

	sf_err_clear(&err);
	rc = sf_revoke_answer(status, &resp, &err);
	if (rc == 0) {
		CHECK(err.kind == SF_OK && err.code[0] == '\0');
		if (status != 200) {
			CHECK(status == 400);
			sf_classify_error(status, resp.data, &cls);
			CHECK(strcmp(cls.code, "invalid_token") == 0 ||
			    strcmp(cls.code, "unsupported_token_type") == 0);
		}
	} else {
		CHECK(rc == -1 && status != 200);
		answer_check_error(&err, status);
	}
	buf_free(&resp);
	return 0;
}
