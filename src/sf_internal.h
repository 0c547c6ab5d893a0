/*
 * The parts of sf.c that need no network, exposed for the unit tests
 * (tests/unit/test_sf.c). Nothing else includes this header.
 */
#ifndef SFC_SF_INTERNAL_H
#define SFC_SF_INTERNAL_H

#include "sf.h"

/* Largest Salesforce response body accepted (bytes). */
#define SF_RESPONSE_MAX	(1024 * 1024)

/*
 * Classifies a non-200 answer of the token or revoke endpoint: body is the
 * response body (NULL or anything). Fills every field of *err, http_status
 * included.
 */
void	sf_classify_error(long status, const char *body, struct sf_error *err);

/*
 * Classifies a libcurl failure (curl_code is a CURLcode other than
 * CURLE_OK) for a request to host; detail is libcurl's error buffer text or
 * NULL. Fills every field of *err (http_status 0).
 */
void	sf_classify_transport(int curl_code, const char *host,
	    const char *detail, struct sf_error *err);

/*
 * Parses a 200 answer of the token endpoint and checks its signature with
 * secret. 0 with *out filled (owned by the caller: sf_token_clear), or -1
 * with *err (http_status 0) and *out empty.
 */
int	sf_parse_token_response(const char *body, const char *secret,
	    struct sf_token *out, struct sf_error *err);

/*
 * Parses a 200 answer of the identity URL and checks that it names the
 * token's org and user. 0 with *out filled, or -1 with *err (http_status 0)
 * and *out zeroed.
 */
int	sf_parse_identity_response(const char *body,
	    const struct sf_token *token, struct sf_identity *out,
	    struct sf_error *err);

#endif
