/*
 * libFuzzer target: the identity URL's answer, judged whole the way
 * sf_identity() does after the transfer: sf_identity_answer (src/sf_parse.c),
 * which calls sf_parse_identity_response on a 200.
 *
 * Input: one byte that picks the HTTP status (fuzz_answers.h), then the
 * body (NUL bytes included). The token is fixed (OrgID 00Dx0000000BV7zEAG,
 * user 005x00000012Q9PAAU).
 *
 * Checked: an accepted answer is a 200 naming the token's org and user with
 * displayable username and display name; a refused one has a bounded code
 * and a displayable message, leaves *out zeroed, and a 401/403 (and only a
 * 4xx) means the token is dead (SF_INVALID).
 */
#include "fuzz_answers.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct sf_identity	 zero;
	struct sf_token		 tok;
	struct sf_identity	 ident;
	struct sf_error		 err;
	struct buf		 resp;
	long			 status = answer_split(data, size, &resp);
	int			 rc;

	memset(&tok, 0, sizeof(tok));
	strcpy(tok.org_id, "00Dx0000000BV7zEAG");
	strcpy(tok.user_id, "005x00000012Q9PAAU");
	memset(&ident, 0, sizeof(ident));
	sf_err_clear(&err);
	rc = sf_identity_answer(status, &resp, &tok, &ident, &err);
	if (rc == 0) {
		CHECK(status == 200 && err.kind == SF_OK);
		CHECK(strcmp(ident.org_id, tok.org_id) == 0);
		CHECK(strcmp(ident.user_id, tok.user_id) == 0);
		CHECK(fuzz_text_ok(ident.username, sizeof(ident.username)));
		CHECK(fuzz_text_ok(ident.display_name,
		    sizeof(ident.display_name)));
	} else {
		CHECK(rc == -1);
		answer_check_error(&err, status);
		CHECK(memcmp(&ident, &zero, sizeof(ident)) == 0);
		if (status == 401 || status == 403)
			CHECK(err.kind == SF_INVALID);
	}
	buf_free(&resp);
	return 0;
}
