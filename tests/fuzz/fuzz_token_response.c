/*
 * libFuzzer target: the Salesforce answer parsers of src/sf.c
 * (sf_internal.h): sf_parse_token_response, sf_parse_identity_response
 * and sf_classify_error.
 *
 * Input: a response body (JSON, or not). It is given, as a C string cut at
 * its first NUL like the callers do, to:
 *  - sf_classify_error with several HTTP statuses (and once with NULL);
 *  - sf_parse_token_response as is, and again "re-signed": when the input
 *    is a JSON object with string "id" and "issued_at", its "signature" is
 *    replaced by the right HMAC for the fixed client secret, so that the
 *    checks after the signature (tokens, id URL, instance URL, issued_at,
 *    scope) are reached too;
 *  - sf_parse_identity_response against the token just parsed, or against
 *    a fixed token (OrgID 00Dx0000000BV7zEAG, user 005x00000012Q9PAAU).
 *
 * Checked: error codes and messages are bounded, non-empty display text
 * (valid UTF-8, no control characters); only a 400/401/403 may mean
 * "invalid" (a customer banner); a parsed token has 18-character 00D/005
 * ids and an https instance URL; a failed parse leaves nothing behind.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "fuzz_common.h"
#include "log.h"
#include "sf.h"
#include "sf_internal.h"


#define SECRET	"EXAMPLE_CONSUMER_SECRET"

static const long statuses[] = { 400, 401, 403, 404, 429, 500, 503 };

static void
check_error(const struct sf_error *err)
{
	CHECK(err->kind != SF_OK);
	CHECK(err->code[0] != '\0' &&
	    strnlen(err->code, sizeof(err->code)) < sizeof(err->code));
	CHECK(fuzz_text_ok(err->message, sizeof(err->message)));
}

static void
check_token(int rc, const struct sf_token *t, const struct sf_error *err)
{
	if (rc != 0) {
		CHECK(rc == -1);
		check_error(err);
		/* A refused answer keeps only its (rotated) refresh token. */
		CHECK(t->access_token == NULL && t->org_id[0] == '\0' &&
		    t->instance_url[0] == '\0');
		CHECK(t->refresh_token == NULL || t->refresh_token[0] != '\0');
		return;
	}
	CHECK(err->kind == SF_OK);
	CHECK(t->access_token != NULL && t->access_token[0] != '\0');
	CHECK(t->refresh_token == NULL || t->refresh_token[0] != '\0');
	CHECK(strlen(t->org_id) == 18 && strncmp(t->org_id, "00D", 3) == 0);
	CHECK(strlen(t->user_id) == 18 && strncmp(t->user_id, "005", 3) == 0);
	/*
	 * Only "https:" as libcurl reads it: it also takes "https:/host" and
	 * "HTTPS://host", which the parser keeps as given (sf_identity and
	 * instance_allowed check the parsed host again).
	 */
	CHECK(strncasecmp(t->instance_url, "https:", 6) == 0);
	CHECK(strncasecmp(t->id_url, "https:", 6) == 0);
	CHECK(t->issued_at_ms >= 0);
	CHECK(fuzz_text_ok(t->scope, sizeof(t->scope)));
}

/* The input with its "signature" made right for SECRET; NULL when it cannot be. */
static char *
resign(const char *body)
{
	cJSON		*root = cJSON_Parse(body);
	const cJSON	*id, *issued;
	unsigned char	 mac[32];
	char		*msg = NULL, *sig = NULL, *out = NULL;
	size_t		 idlen, ilen;

	if (!cJSON_IsObject(root))
		goto done;
	id = cJSON_GetObjectItemCaseSensitive(root, "id");
	issued = cJSON_GetObjectItemCaseSensitive(root, "issued_at");
	if (!cJSON_IsString(id) || !cJSON_IsString(issued))
		goto done;
	idlen = strlen(id->valuestring);
	ilen = strlen(issued->valuestring);
	if ((msg = malloc(idlen + ilen + 1)) == NULL)
		goto done;
	memcpy(msg, id->valuestring, idlen);
	memcpy(msg + idlen, issued->valuestring, ilen + 1);
	if (crypto_hmac_sha256(SECRET, strlen(SECRET), msg, idlen + ilen,
	    mac) != 0 || (sig = crypto_base64(mac, sizeof(mac))) == NULL)
		goto done;
	cJSON_DeleteItemFromObjectCaseSensitive(root, "signature");
	if (cJSON_AddStringToObject(root, "signature", sig) == NULL)
		goto done;
	out = cJSON_PrintUnformatted(root);
done:
	free(msg);
	free(sig);
	cJSON_Delete(root);
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sf_token		 tok, fixed;
	struct sf_identity	 ident;
	struct sf_error		 err;
	char			*body, *signed_body = NULL;
	int			 rc, have_tok = 0;

	if ((body = strndup((const char *)data, size)) == NULL)
		return 0;

	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		sf_classify_error(statuses[i], body, &err);
		check_error(&err);
		CHECK(err.http_status == statuses[i]);
		if (err.kind == SF_INVALID)
			CHECK(statuses[i] == 400 || statuses[i] == 401 ||
			    statuses[i] == 403);
	}
	sf_classify_error(400, NULL, &err);
	check_error(&err);

	rc = sf_parse_token_response(body, SECRET, &tok, &err);
	check_token(rc, &tok, &err);
	have_tok = rc == 0;
	if (!have_tok)
		sf_token_clear(&tok);
	if (!have_tok && (signed_body = resign(body)) != NULL) {
		rc = sf_parse_token_response(signed_body, SECRET, &tok, &err);
		check_token(rc, &tok, &err);
		if (rc != 0)
			sf_token_clear(&tok);
		if (rc == 0) {
			have_tok = 1;
			/* The same answer under another secret must fail. */
			sf_token_clear(&tok);
			rc = sf_parse_token_response(signed_body, "another secret",
			    &tok, &err);
			CHECK(rc == -1 && strcmp(err.code, "bad_signature") == 0);
			sf_token_clear(&tok);
			rc = sf_parse_token_response(signed_body, SECRET, &tok,
			    &err);
			CHECK(rc == 0);
		}
	}

	memset(&fixed, 0, sizeof(fixed));
	strcpy(fixed.org_id, "00Dx0000000BV7zEAG");
	strcpy(fixed.user_id, "005x00000012Q9PAAU");
	rc = sf_parse_identity_response(body, have_tok ? &tok : &fixed, &ident,
	    &err);
	if (rc == 0) {
		CHECK(err.kind == SF_OK);
		CHECK(strcmp(ident.org_id, (have_tok ? &tok : &fixed)->org_id) == 0);
		CHECK(strcmp(ident.user_id, (have_tok ? &tok : &fixed)->user_id) == 0);
		CHECK(fuzz_text_ok(ident.username, sizeof(ident.username)));
		CHECK(fuzz_text_ok(ident.display_name,
		    sizeof(ident.display_name)));
	} else {
		CHECK(rc == -1);
		check_error(&err);
		CHECK(ident.org_id[0] == '\0' && ident.username[0] == '\0' &&
		    !ident.active);
	}

	if (have_tok)
		sf_token_clear(&tok);
	free(signed_body);
	free(body);
	return 0;
}
