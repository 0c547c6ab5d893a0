/*
 * Unit tests for the Salesforce client, src/sf_*.c (cmocka): everything
 * that needs no network: the login base, the authorize URL, error
 * classification, the token, identity and revoke answers, and the host
 * checks made before any request.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "cfg.h"
#include "crypto.h"
#include "sf.h"
#include "sf_internal.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define SECRET		"test-client-secret"
#define ORG15		"00D5g000004XyZa"
#define ORG18		"00D5g000004XyZaEAK"
#define USER15		"0055g00000AdaAd"
#define USER18		"0055g00000AdaAdAAJ"

static struct cfg	 tcfg;

static void
cfg_setup(void)
{
	memset(&tcfg, 0, sizeof(tcfg));
	tcfg.public_base_url = (char *)"https://app.example.com/";
	tcfg.salesforce_client_id = (char *)"3MVG9 client+id/=";
	tcfg.salesforce_login_url = (char *)"https://login.salesforce.com/";
	tcfg.salesforce_sandbox_login_url = (char *)"https://test.salesforce.com";
	tcfg.salesforce_allowed_hosts = (char *)"login.salesforce.com "
	    "test.salesforce.com *.my.salesforce.com *.salesforce.com "
	    "login.localhost *.my.localhost";
	tcfg.salesforce_scope = (char *)"api refresh_token id";
	tcfg.tls_ca_file = (char *)"";
	tcfg.http_timeout_ms = 2000;
}

/* ---------------------------------------------------------------- login base */

static void
test_login_base_environments(void **state)
{
	char	 out[300], err[300];

	(void)state;
	assert_int_equal(sf_login_base(&tcfg, "production", NULL, out,
	    sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "https://login.salesforce.com");
	assert_int_equal(sf_login_base(&tcfg, "sandbox", NULL, out,
	    sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "https://test.salesforce.com");
	assert_int_equal(sf_login_base(&tcfg, NULL, "", out, sizeof(out), err,
	    sizeof(err)), 0);
	assert_string_equal(out, "https://login.salesforce.com");
	assert_int_equal(sf_login_base(&tcfg, "sandbox", "  ", out,
	    sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "https://test.salesforce.com");

	assert_int_equal(sf_login_base(&tcfg, "staging", NULL, out,
	    sizeof(out), err, sizeof(err)), -1);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "sandbox"));

	/* A configured login URL on a host that is not allowed. */
	tcfg.salesforce_login_url = (char *)"https://login.example.com";
	assert_int_equal(sf_login_base(&tcfg, "production", NULL, out,
	    sizeof(out), err, sizeof(err)), -1);
	assert_string_equal(out, "");
	cfg_setup();

	/* Output too small. */
	assert_int_equal(sf_login_base(&tcfg, "production", NULL, out, 10,
	    err, sizeof(err)), -1);
}

static void
test_login_base_my_domain(void **state)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "acme.my.salesforce.com", "https://acme.my.salesforce.com" },
		{ "https://acme.my.salesforce.com", "https://acme.my.salesforce.com" },
		{ "https://acme.my.salesforce.com/", "https://acme.my.salesforce.com" },
		{ "HTTPS://Acme.My.SalesForce.com", "https://acme.my.salesforce.com" },
		{ "  acme.my.salesforce.com\n", "https://acme.my.salesforce.com" },
		{ "acme--dev.sandbox.my.salesforce.com",
		  "https://acme--dev.sandbox.my.salesforce.com" },
		{ "acme.my.localhost:8443", "https://acme.my.localhost:8443" },
		{ "https://acme.my.localhost:8443/", "https://acme.my.localhost:8443" },
		{ "acme.my.salesforce.com:443", "https://acme.my.salesforce.com:443" },
	};
	char	 out[300], err[300];
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		err[0] = '\0';
		if (sf_login_base(&tcfg, "sandbox", t[i].in, out, sizeof(out),
		    err, sizeof(err)) != 0)
			fail_msg("refused #%zu %s: %s", i, t[i].in, err);
		assert_string_equal(out, t[i].out);
	}
}

static void
test_login_base_lightning_refused(void **state)
{
	static const char *const lightning[] = {
		"acme.lightning.force.com",
		"https://acme.lightning.force.com",
		"https://acme.lightning.force.com/lightning/page/home",
		"https://ACME.Lightning.Force.com/lightning/o/Account/list?x=1",
		"acme--dev.sandbox.lightning.force.com",
	};
	static const char *const force[] = {
		"acme.my.site.force.com",
		"https://acme--c.vf.force.com/apex/Page",
		"acme--c.visualforce.com",
		"force.com",
	};
	char	 out[300], err[300];
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(lightning); i++) {
		assert_int_equal(sf_login_base(&tcfg, "production",
		    lightning[i], out, sizeof(out), err, sizeof(err)), -1);
		assert_string_equal(out, "");
		assert_string_equal(err, "use your My Domain URL "
		    "(NAME.my.salesforce.com), not the Lightning URL "
		    "(*.lightning.force.com)");
	}
	for (i = 0; i < ARRAY_LEN(force); i++) {
		assert_int_equal(sf_login_base(&tcfg, "production", force[i],
		    out, sizeof(out), err, sizeof(err)), -1);
		assert_non_null(strstr(err, "My Domain"));
	}
}

static void
test_login_base_foreign_and_bad(void **state)
{
	static const char *const bad[] = {
		"acme_x.my.salesforce.com",
		"a b.my.salesforce.com",
		"acme.my.salesforce.com/path",
		"https://acme.my.salesforce.com/services/oauth2/token",
		"acme.my.salesforce.com?x=1",
		"acme.my.salesforce.com#x",
		"http://acme.my.salesforce.com",
		"ftp://acme.my.salesforce.com",
		"javascript://acme.my.salesforce.com",
		"acme.my.salesforce.com:",
		"acme.my.salesforce.com:99999",
		"acme.my.salesforce.com:0",
		"acme.my.salesforce.com:123456",
		"acme.my.salesforce.com:8a",
		":443",
		".my.salesforce.com",
		"acme..my.salesforce.com",
		"acme.my.salesforce.com.",
		"-acme.my.salesforce.com",
		"user@acme.my.salesforce.com",
		"https://user:pw@acme.my.salesforce.com",
		"[::1]",
		"acme.my.salesforce.com\\x",
		"acme.my.salesforce.com/\n/",
		"acm\xc3\xa9.my.salesforce.com",
		"https://",
	};
	char	 out[300], err[300], longhost[400];
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		strcpy(out, "unchanged");
		if (sf_login_base(&tcfg, "production", bad[i], out,
		    sizeof(out), err, sizeof(err)) != -1)
			fail_msg("accepted #%zu %s as %s", i, bad[i], out);
		assert_string_equal(out, "");
		assert_true(err[0] != '\0');
	}

	/* A well-formed host that is not allowed is named in the error. */
	assert_int_equal(sf_login_base(&tcfg, "production",
	    "https://evil.example.com/", out, sizeof(out), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "evil.example.com"));
	assert_non_null(strstr(err, "not"));

	/* 254 characters: too long for a host name. */
	memset(longhost, 'a', sizeof(longhost));
	memcpy(longhost, "x.", 2);
	strcpy(longhost + 254 - strlen(".my.salesforce.com"),
	    ".my.salesforce.com");
	for (i = 2; i < 254 - 18; i += 50)
		longhost[i] = '.';
	assert_int_equal(strlen(longhost), 254);
	assert_int_equal(sf_login_base(&tcfg, "production", longhost, out,
	    sizeof(out), err, sizeof(err)), -1);
}

/* ---------------------------------------------------------------- authorize URL */

/* The decoded value of query parameter name in url (malloc'd), NULL if absent or repeated. */
static char *
query_param(const char *url, const char *name)
{
	CURLU	*h = curl_url();
	char	*query = NULL, *p, *save = NULL, *val = NULL, *dup;
	size_t	 nl = strlen(name);
	int	 seen = 0;

	assert_non_null(h);
	assert_int_equal(curl_url_set(h, CURLUPART_URL, url, 0), CURLUE_OK);
	assert_int_equal(curl_url_get(h, CURLUPART_QUERY, &query, 0), CURLUE_OK);
	dup = strdup(query);
	for (p = strtok_r(dup, "&", &save); p != NULL;
	    p = strtok_r(NULL, "&", &save)) {
		if (strncmp(p, name, nl) != 0 || p[nl] != '=')
			continue;
		if (seen++) {
			free(val);
			val = NULL;
			break;
		}
		/* '+' must not be used for a space; curl_easy_unescape keeps it. */
		val = curl_easy_unescape(NULL, p + nl + 1, 0, NULL);
	}
	free(dup);
	curl_free(query);
	curl_url_cleanup(h);
	return val;
}

static void
test_authorize_url(void **state)
{
	static const char *const want[][2] = {
		{ "response_type", "code" },
		{ "client_id", "3MVG9 client+id/=" },
		{ "redirect_uri",
		  "https://app.example.com/api/v1/oauth/salesforce/callback" },
		{ "scope", "api refresh_token id" },
		{ "state", "st a/te+&=x" },
		{ "code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" },
		{ "code_challenge_method", "S256" },
	};
	struct sf	*sf;
	char		*url, *v;
	const char	*prefix = "https://acme.my.salesforce.com/services/"
	    "oauth2/authorize?";
	size_t		 i;

	(void)state;
	assert_non_null(sf = sf_new(&tcfg, SECRET));
	url = sf_authorize_url(sf, "https://acme.my.salesforce.com",
	    "st a/te+&=x", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
	assert_non_null(url);
	assert_memory_equal(url, prefix, strlen(prefix));
	for (i = 0; i < ARRAY_LEN(want); i++) {
		v = query_param(url, want[i][0]);
		if (v == NULL)
			fail_msg("no single %s in %s", want[i][0], url);
		assert_string_equal(v, want[i][1]);
		curl_free(v);
	}
	assert_non_null(strstr(url, "scope=api%20refresh_token%20id&"));
	assert_null(strchr(url, '+'));
	assert_null(strchr(url, ' '));
	assert_null(strstr(url, SECRET));
	free(url);
	sf_free(sf);
}

/* ---------------------------------------------------------------- classification */

static void
test_classify_error(void **state)
{
	static const struct {
		long		 status;
		const char	*body;
		enum sf_kind	 kind;
		const char	*code, *message;
	} t[] = {
		{ 400, "{\"error\":\"invalid_grant\",\"error_description\":"
		    "\"expired access/refresh token\"}", SF_INVALID,
		    "invalid_grant", "expired access/refresh token" },
		{ 400, "{\"error\":\"invalid_grant\",\"error_description\":"
		    "\"authentication failure\"}", SF_INVALID, "invalid_grant",
		    "authentication failure" },
		{ 400, "{\"error\":\"invalid_grant\",\"error_description\":"
		    "\"expired authorization code\"}", SF_INVALID,
		    "invalid_grant", "expired authorization code" },
		{ 400, "{\"error\":\"invalid_grant\"}", SF_INVALID,
		    "invalid_grant", NULL },
		{ 400, "{\"error\":\"invalid_grant\",\"error_description\":"
		    "\"token request is already being processed\"}",
		    SF_TRANSIENT, "invalid_grant",
		    "token request is already being processed" },
		{ 400, "{\"error\":\"invalid_client\",\"error_description\":"
		    "\"invalid client credentials\"}", SF_CONFIG,
		    "invalid_client", "invalid client credentials" },
		{ 400, "{\"error\":\"invalid_client_id\",\"error_description\":"
		    "\"client identifier invalid\"}", SF_CONFIG,
		    "invalid_client_id", NULL },
		{ 400, "{\"error\":\"redirect_uri_mismatch\"}", SF_CONFIG,
		    "redirect_uri_mismatch", NULL },
		{ 400, "{\"error\":\"unsupported_grant_type\"}", SF_CONFIG,
		    "unsupported_grant_type", NULL },
		{ 400, "{\"error\":\"invalid_scope\"}", SF_CONFIG,
		    "invalid_scope", NULL },
		{ 400, "{\"error\":\"invalid_request\",\"error_description\":"
		    "\"invalid code verifier\"}", SF_CONFIG, "invalid_request",
		    NULL },
		{ 400, "{\"error\":\"inactive_org\",\"error_description\":"
		    "\"organization is inactive\"}", SF_INVALID, "inactive_org",
		    NULL },
		{ 401, "{\"error\":\"inactive_user\"}", SF_INVALID,
		    "inactive_user", NULL },
		{ 400, "{\"error\":\"rate_limit_exceeded\",\"error_description\":"
		    "\"rate limit exceeded\"}", SF_TRANSIENT,
		    "rate_limit_exceeded", NULL },
		{ 403, "{\"error\":\"something_new\"}", SF_TRANSIENT,
		    "something_new", NULL },
		/* The table is for 400/401/403 only. */
		{ 404, "{\"error\":\"invalid_grant\"}", SF_TRANSIENT,
		    "invalid_grant", NULL },
		{ 500, "<html>boom</html>", SF_TRANSIENT, "http_500", NULL },
		{ 503, "{\"error\":\"invalid_grant\"}", SF_TRANSIENT,
		    "http_503", NULL },
		{ 302, "", SF_TRANSIENT, "http_302", NULL },
		{ 400, "not json", SF_TRANSIENT, "http_400", NULL },
		{ 400, NULL, SF_TRANSIENT, "http_400", NULL },
		{ 400, "[\"invalid_grant\"]", SF_TRANSIENT, "http_400", NULL },
		{ 400, "{\"error\":42}", SF_TRANSIENT, "http_400", NULL },
		{ 400, "{\"error\":\"bad code\\n\"}", SF_TRANSIENT, "http_400",
		    NULL },
		{ 400, "{\"error\":\"invalid_grant\",\"error_description\":"
		    "\"line1\\nline2\\u0007\"}", SF_INVALID, "invalid_grant",
		    "line1 line2 " },
		/* Case-insensitive; the upper-case OAUTH_* family. */
		{ 400, "{\"error\":\"INVALID_GRANT\",\"error_description\":"
		    "\"Token Request Is Already Being Processed\"}", SF_TRANSIENT,
		    "INVALID_GRANT", NULL },
		{ 400, "{\"error\":\"OAUTH_APP_BLOCKED\"}", SF_INVALID,
		    "OAUTH_APP_BLOCKED", NULL },
		{ 400, "{\"error\":\"OAUTH_EC_APP_NOT_FOUND\"}", SF_CONFIG,
		    "OAUTH_EC_APP_NOT_FOUND", NULL },
	};
	struct sf_error	 err;
	size_t		 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		memset(&err, 'x', sizeof(err));
		sf_classify_error(t[i].status, t[i].body, &err);
		if (err.kind != t[i].kind || strcmp(err.code, t[i].code) != 0)
			fail_msg("#%zu: kind %d code %s", i, err.kind, err.code);
		assert_int_equal(err.http_status, t[i].status);
		assert_true(err.message[0] != '\0');
		if (t[i].message != NULL)
			assert_string_equal(err.message, t[i].message);
	}
}

static void
test_hint_codes(void **state)
{
	static const struct {
		const char	*code, *message, *hint;
		bool		 heals;
	} t[] = {
		{ "invalid_grant", "expired access/refresh token", "refresh_token_policy", false },
		{ "INVALID_GRANT", "IP Restricted or Invalid Login Hours", "ip_or_hours_restricted", true },
		{ "invalid_grant", "authentication failure", "user_inactive", false },
		{ "inactive_user", "user is inactive", "user_inactive", false },
		{ "invalid_grant", "user hasn't approved this consumer", "app_not_approved", false },
		{ "invalid_grant", "something else", "refresh_token_policy", false },
		{ "oauth_app_blocked", "", "app_blocked", false },
		{ "org_mismatch", "x", "org_changed", false },
		{ "refresh_outcome_unknown", "x", "refresh_outcome_unknown", false },
		{ "http_400", "x", "salesforce_unavailable", false },
		{ "brand_new", "x", "unknown_error", false },
		{ "", "", "none", false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		assert_string_equal(sf_hint_code(t[i].code, t[i].message), t[i].hint);
		assert_int_equal(sf_error_may_heal(t[i].code, t[i].message), t[i].heals);
	}
}

static void
test_classify_long_description(void **state)
{
	char		 body[2048], *p;
	struct sf_error	 err;
	size_t		 i;

	(void)state;
	p = body + sprintf(body, "{\"error\":\"invalid_grant\","
	    "\"error_description\":\"");
	for (i = 0; i < 300; i++)
		p += sprintf(p, "\xc3\xa9");	/* two bytes each */
	strcpy(p, "\"}");
	sf_classify_error(400, body, &err);
	assert_int_equal(err.kind, SF_INVALID);
	assert_true(strlen(err.message) < sizeof(err.message));
	assert_int_equal(strlen(err.message) % 2, 0);	/* no split character */
}

static void
test_classify_transport(void **state)
{
	static const struct {
		int		 rc;
		const char	*code;
	} t[] = {
		{ CURLE_OPERATION_TIMEDOUT, "timeout" },
		{ CURLE_PEER_FAILED_VERIFICATION, "tls" },
		{ CURLE_SSL_CONNECT_ERROR, "tls" },
		{ CURLE_SSL_CACERT_BADFILE, "tls" },
		{ CURLE_COULDNT_CONNECT, "connect" },
		{ CURLE_COULDNT_RESOLVE_HOST, "connect" },
		{ CURLE_GOT_NOTHING, "connect" },
		{ CURLE_RECV_ERROR, "connect" },
	};
	struct sf_error	 err;
	size_t		 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		sf_classify_transport(t[i].rc, "login.localhost", NULL, &err);
		assert_int_equal(err.kind, SF_TRANSIENT);
		assert_string_equal(err.code, t[i].code);
		assert_int_equal(err.http_status, 0);
		assert_non_null(strstr(err.message, "login.localhost"));
	}
	sf_classify_transport(CURLE_PEER_FAILED_VERIFICATION, "login.localhost",
	    "SSL certificate problem: unable to get local issuer certificate",
	    &err);
	assert_non_null(strstr(err.message, "certificate"));
	assert_non_null(strstr(err.message, "could not be verified"));
}

/* ---------------------------------------------------------------- token responses */

/* base64(HMAC-SHA256(secret, id || issued_at)), malloc'd. */
static char *
sign(const char *secret, const char *id, const char *issued_at)
{
	unsigned char	 mac[32];
	char		 data[1024];
	char		*b64;

	snprintf(data, sizeof(data), "%s%s", id, issued_at);
	assert_int_equal(crypto_hmac_sha256(secret, strlen(secret), data,
	    strlen(data), mac), 0);
	assert_non_null(b64 = crypto_base64(mac, sizeof(mac)));
	return b64;
}

/*
 * A token response: signed over id and issued_at with secret; omit names
 * one field to leave out (or NULL). Caller frees the string.
 */
static char *
token_body(const char *id, const char *issued_at, const char *instance,
    const char *refresh, const char *omit)
{
	cJSON	*o = cJSON_CreateObject();
	char	*sig = sign(SECRET, id, issued_at), *s;

	assert_non_null(o);
	cJSON_AddStringToObject(o, "access_token", "00D5g000004XyZa!AQ4AQ.abc");
	if (refresh != NULL)
		cJSON_AddStringToObject(o, "refresh_token", refresh);
	cJSON_AddStringToObject(o, "signature", sig);
	cJSON_AddStringToObject(o, "scope", "refresh_token id api");
	cJSON_AddStringToObject(o, "instance_url", instance);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "token_type", "Bearer");
	cJSON_AddStringToObject(o, "issued_at", issued_at);
	if (omit != NULL)
		cJSON_DeleteItemFromObjectCaseSensitive(o, omit);
	s = cJSON_PrintUnformatted(o);
	assert_non_null(s);
	cJSON_Delete(o);
	free(sig);
	return s;
}

static void
test_token_response_good(void **state)
{
	const char	*id = "https://login.salesforce.com/id/" ORG15 "/" USER15;
	struct sf_token	 tok;
	struct sf_error	 err;
	char		*body;

	(void)state;
	body = token_body(id, "1278448384422", "https://acme.my.salesforce.com",
	    "5Aep861.refresh", NULL);
	assert_int_equal(sf_parse_token_response(body, SECRET, &tok, &err), 0);
	assert_int_equal(err.kind, SF_OK);
	assert_string_equal(tok.access_token, "00D5g000004XyZa!AQ4AQ.abc");
	assert_string_equal(tok.refresh_token, "5Aep861.refresh");
	assert_string_equal(tok.instance_url, "https://acme.my.salesforce.com");
	assert_string_equal(tok.id_url, id);
	assert_string_equal(tok.org_id, ORG18);
	assert_string_equal(tok.user_id, USER18);
	assert_true(tok.issued_at_ms == 1278448384422LL);
	assert_string_equal(tok.scope, "refresh_token id api");
	sf_token_clear(&tok);
	assert_null(tok.access_token);
	assert_string_equal(tok.org_id, "");
	free(body);

	/* Refresh without rotation: no refresh token. */
	body = token_body(id, "1", "https://acme.my.localhost:8443", NULL, NULL);
	assert_int_equal(sf_parse_token_response(body, SECRET, &tok, &err), 0);
	assert_null(tok.refresh_token);
	assert_string_equal(tok.instance_url, "https://acme.my.localhost:8443");
	sf_token_clear(&tok);
	free(body);
	sf_token_clear(NULL);
}

/*
 * Salesforce's documented example of a token response and its signature
 * (consumer secret EXAMPLE_CONSUMER_SECRET).
 */
static void
test_token_response_vector(void **state)
{
	const char	*body = "{\"id\":\"https://login.salesforce.com/id/"
	    "00Dx0000000BV7zEAG/005x00000012Q9PAAU\",\"issued_at\":"
	    "\"1278448384422\",\"instance_url\":\"https://na1.salesforce.com\","
	    "\"signature\":\"u8FtmH6UcfueugI0YLNP3RkZX8oqm9NS9f3wnL0JY+k=\","
	    "\"access_token\":\"00Dx0000000BV7z!AR8AQ\",\"token_type\":"
	    "\"Bearer\"}";
	struct sf_token	 tok;
	struct sf_error	 err;

	(void)state;
	assert_int_equal(sf_parse_token_response(body,
	    "EXAMPLE_CONSUMER_SECRET", &tok, &err), 0);
	assert_string_equal(tok.org_id, "00Dx0000000BV7zEAG");
	assert_string_equal(tok.user_id, "005x00000012Q9PAAU");
	assert_string_equal(tok.scope, "");
	sf_token_clear(&tok);

	assert_int_equal(sf_parse_token_response(body, SECRET, &tok, &err), -1);
	assert_int_equal(err.kind, SF_TRANSIENT);
	assert_string_equal(err.code, "bad_signature");
	assert_string_equal(err.message,
	    "the token response signature did not verify");
	assert_null(tok.access_token);
}

static void
expect_token_failure(const char *body, const char *secret, const char *code,
    const char *what)
{
	struct sf_token	 tok;
	struct sf_error	 err;

	memset(&tok, 'x', sizeof(tok));
	if (sf_parse_token_response(body, secret, &tok, &err) != -1)
		fail_msg("accepted %s", what);
	if (err.kind != SF_TRANSIENT || strcmp(err.code, code) != 0)
		fail_msg("%s: kind %d code %s", what, err.kind, err.code);
	assert_true(err.message[0] != '\0');
	assert_null(strstr(err.message, "AQ4AQ"));
	assert_null(tok.access_token);
	/* A rotated refresh token in a refused answer is kept, alone. */
	if (body != NULL && strstr(body, "\"refresh_token\":\"r\"") != NULL) {
		assert_non_null(tok.refresh_token);
		assert_string_equal(tok.refresh_token, "r");
		free(tok.refresh_token);
	} else
		assert_null(tok.refresh_token);
	assert_string_equal(tok.org_id, "");
}

static void
test_text_copy_refuses_invalid_utf8(void **state)
{
	static const struct {
		const char	*in, *out;
	} cases[] = {
		{ "caf\xc3\xa9", "caf\xc3\xa9" },		/* U+00E9 */
		{ "\xe2\x82\xac", "\xe2\x82\xac" },	/* U+20AC */
		{ "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80" },	/* U+1F600 */
		{ "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf" },	/* U+10FFFF */
		{ "a\xc0\xaf" "b", "a??b" },		/* overlong '/' */
		{ "a\xe0\x80\xaf" "b", "a???b" },	/* overlong, 3 bytes */
		{ "a\xed\xa0\x80" "b", "a???b" },	/* surrogate U+D800 */
		{ "a\xf0\x80\x80\xaf" "b", "a????b" },	/* overlong, 4 bytes */
		{ "a\xf4\x90\x80\x80" "b", "a????b" },	/* U+110000 */
		{ "a\xff" "b", "a?b" },
	};
	char	 out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sf_text_copy(out, sizeof(out), cases[i].in);
		assert_string_equal(out, cases[i].out);
	}
}

static void
test_token_response_bad(void **state)
{
	static const char *const fields[] = {
		"access_token", "instance_url", "id", "issued_at", "signature",
	};
	const char	*id = "https://login.salesforce.com/id/" ORG18 "/" USER18;
	const char	*inst = "https://acme.my.salesforce.com";
	char		*body, longurl[600];
	size_t		 i;

	(void)state;
	expect_token_failure("{\"access_token\": \"abc\", ", SECRET,
	    "malformed", "truncated JSON");
	expect_token_failure("", SECRET, "malformed", "empty");
	expect_token_failure("[]", SECRET, "malformed", "array");
	expect_token_failure("{} x", SECRET, "malformed", "trailing garbage");
	expect_token_failure(NULL, SECRET, "malformed", "NULL");

	for (i = 0; i < ARRAY_LEN(fields); i++) {
		body = token_body(id, "1700000000000", inst, "r", fields[i]);
		expect_token_failure(body, SECRET, "malformed", fields[i]);
		free(body);
	}

	body = token_body(id, "1700000000000", inst, "r", NULL);
	expect_token_failure(body, "another-secret", "bad_signature",
	    "wrong secret");
	free(body);

	body = token_body(id, "17000000000x", inst, "r", NULL);
	expect_token_failure(body, SECRET, "malformed", "issued_at not digits");
	free(body);
	body = token_body(id, "1234567890123456789", inst, "r", NULL);
	expect_token_failure(body, SECRET, "malformed", "issued_at too long");
	free(body);

	body = token_body(id, "1700000000000", "http://acme.my.salesforce.com",
	    "r", NULL);
	expect_token_failure(body, SECRET, "malformed", "http instance_url");
	free(body);
	body = token_body(id, "1700000000000",
	    "https://acme.my.salesforce.com/x?y", "r", NULL);
	expect_token_failure(body, SECRET, "malformed", "instance_url path");
	free(body);
	/* libcurl would take these; we store the text, so it must be canonical. */
	body = token_body(id, "1700000000000", "https:/acme.my.salesforce.com",
	    "r", NULL);
	expect_token_failure(body, SECRET, "malformed", "https:/ instance_url");
	free(body);
	body = token_body(id, "1700000000000", "HTTPS://acme.my.salesforce.com",
	    "r", NULL);
	expect_token_failure(body, SECRET, "malformed", "HTTPS:// instance_url");
	free(body);
	snprintf(longurl, sizeof(longurl), "https://%0300d.my.salesforce.com", 0);
	body = token_body(id, "1700000000000", longurl, "r", NULL);
	expect_token_failure(body, SECRET, "malformed", "long instance_url");
	free(body);

	/* ids that are not /id/<00D>/<005>, though correctly signed */
	{
		static const char *const ids[] = {
			"https://login.salesforce.com/id/" USER18 "/" ORG18,
			"https://login.salesforce.com/id/" ORG18,
			"https://login.salesforce.com/id/" ORG18 "/" USER18 "/",
			"https://login.salesforce.com/id/" ORG18 "/" USER18 "?x=1",
			"https://login.salesforce.com/id/" ORG18 "/" USER18 "#f",
			"https://login.salesforce.com/x/../id/" ORG18 "/" USER18,
			"http://login.salesforce.com/id/" ORG18 "/" USER18,
			"/id/" ORG18 "/" USER18,
			"https://login.salesforce.com/id/00D5g000004XyZaEAX/" USER18,
		};

		for (i = 0; i < ARRAY_LEN(ids); i++) {
			body = token_body(ids[i], "1700000000000", inst, "r",
			    NULL);
			expect_token_failure(body, SECRET, "malformed", ids[i]);
			free(body);
		}
	}
	snprintf(longurl, sizeof(longurl), "https://%0500d.my.salesforce.com"
	    "/id/" ORG18 "/" USER18, 0);
	body = token_body(longurl, "1700000000000", inst, "r", NULL);
	expect_token_failure(body, SECRET, "malformed", "long id");
	free(body);

	/* A token with a control character could break our own headers. */
	body = token_body(id, "1700000000000", inst, "bad\r\ntoken", NULL);
	expect_token_failure(body, SECRET, "malformed", "CRLF in refresh token");
	free(body);
}

/* ---------------------------------------------------------------- identity */

static void
test_identity_response(void **state)
{
	struct sf_token		 tok;
	struct sf_identity	 id;
	struct sf_error		 err;

	(void)state;
	memset(&tok, 0, sizeof(tok));
	strcpy(tok.org_id, ORG18);
	strcpy(tok.user_id, USER18);

	assert_int_equal(sf_parse_identity_response("{\"organization_id\":\""
	    ORG18 "\",\"user_id\":\"" USER18 "\",\"username\":"
	    "\"admin@acme.example\",\"display_name\":\"Ada\\nAdmin\","
	    "\"active\":true,\"urls\":{\"rest\":\"x\"}}", &tok, &id, &err), 0);
	assert_string_equal(id.org_id, ORG18);
	assert_string_equal(id.user_id, USER18);
	assert_string_equal(id.username, "admin@acme.example");
	assert_string_equal(id.display_name, "Ada Admin");
	assert_true(id.active);

	/* 15-character ids; active missing is false. */
	assert_int_equal(sf_parse_identity_response("{\"organization_id\":\""
	    ORG15 "\",\"user_id\":\"" USER15 "\"}", &tok, &id, &err), 0);
	assert_string_equal(id.org_id, ORG18);
	assert_false(id.active);
	assert_string_equal(id.username, "");

	assert_int_equal(sf_parse_identity_response("{\"organization_id\":\""
	    "00Dx0000000BV7zEAG\",\"user_id\":\"" USER18 "\",\"active\":true}",
	    &tok, &id, &err), -1);
	assert_string_equal(err.code, "identity_mismatch");
	assert_int_equal(err.kind, SF_TRANSIENT);
	assert_false(id.active);

	assert_int_equal(sf_parse_identity_response("{\"organization_id\":\""
	    ORG18 "\",\"user_id\":\"005x00000012Q9PAAU\"}", &tok, &id, &err), -1);
	assert_string_equal(err.code, "identity_mismatch");

	assert_int_equal(sf_parse_identity_response("{\"user_id\":\"" USER18
	    "\"}", &tok, &id, &err), -1);
	assert_string_equal(err.code, "malformed");
	assert_int_equal(sf_parse_identity_response("<html>", &tok, &id, &err),
	    -1);
	assert_string_equal(err.code, "malformed");
}

/* ---------------------------------------------------------------- whole answers */

/* b holds body (len bytes, may hold a NUL), at most SF_RESPONSE_MAX. */
static void
answer_set(struct buf *b, const char *body, size_t len)
{
	buf_init(b, SF_RESPONSE_MAX);
	assert_int_equal(buf_append(b, body, len), 0);
}

static void
test_answers(void **state)
{
	const char	*id = "https://login.salesforce.com/id/" ORG15 "/" USER15;
	const char	*ident = "{\"organization_id\":\"" ORG18 "\","
	    "\"user_id\":\"" USER18 "\"}";
	struct sf_token		 tok;
	struct sf_identity	 who;
	struct sf_error		 err;
	struct buf		 b;
	char			*body;

	(void)state;
	/* Token: a 200 with a good body, a NUL inside, an OAuth error. */
	body = token_body(id, "1", "https://acme.my.salesforce.com", NULL, NULL);
	answer_set(&b, body, strlen(body));
	memset(&err, 0, sizeof(err));
	assert_int_equal(sf_token_answer(200, &b, SECRET, &tok, &err), 0);
	assert_int_equal(err.http_status, 200);
	assert_string_equal(tok.org_id, ORG18);
	sf_token_clear(&tok);
	buf_free(&b);
	free(body);
	answer_set(&b, "{}\0{}", 5);
	memset(&err, 0, sizeof(err));
	memset(&tok, 0, sizeof(tok));
	assert_int_equal(sf_token_answer(200, &b, SECRET, &tok, &err), -1);
	assert_string_equal(err.code, "malformed");
	assert_int_equal(err.http_status, 200);
	assert_null(tok.access_token);
	buf_free(&b);
	answer_set(&b, "{\"error\":\"invalid_grant\"}", 25);
	assert_int_equal(sf_token_answer(400, &b, SECRET, &tok, &err), -1);
	assert_int_equal(err.kind, SF_INVALID);
	assert_int_equal(err.http_status, 400);
	buf_free(&b);

	/* Identity: 200, 401 (dead token), 500, no body. */
	memset(&tok, 0, sizeof(tok));
	strcpy(tok.org_id, ORG18);
	strcpy(tok.user_id, USER18);
	answer_set(&b, ident, strlen(ident));
	memset(&err, 0, sizeof(err));
	assert_int_equal(sf_identity_answer(200, &b, &tok, &who, &err), 0);
	assert_string_equal(who.user_id, USER18);
	assert_int_equal(err.http_status, 200);
	assert_int_equal(sf_identity_answer(401, &b, &tok, &who, &err), -1);
	assert_int_equal(err.kind, SF_INVALID);
	assert_string_equal(err.code, "bad_oauth_token");
	assert_int_equal(sf_identity_answer(500, &b, &tok, &who, &err), -1);
	assert_int_equal(err.kind, SF_TRANSIENT);
	assert_string_equal(err.code, "identity_http_500");
	assert_int_equal(err.http_status, 500);
	buf_free(&b);
	buf_init(&b, SF_RESPONSE_MAX);
	assert_int_equal(sf_identity_answer(200, &b, &tok, &who, &err), -1);
	assert_string_equal(err.code, "malformed");

	/* Revoke: 200 and an already dead token are success, the rest not. */
	assert_int_equal(sf_revoke_answer(200, &b, &err), 0);
	assert_int_equal(err.kind, SF_OK);
	buf_free(&b);
	answer_set(&b, "{\"error\":\"invalid_token\"}", 25);
	assert_int_equal(sf_revoke_answer(400, &b, &err), 0);
	assert_int_equal(err.kind, SF_OK);
	assert_string_equal(err.code, "");
	assert_int_equal(sf_revoke_answer(503, &b, &err), -1);
	assert_string_equal(err.code, "http_503");
	buf_free(&b);
	answer_set(&b, "{\"error\":\"invalid_client\"}", 26);
	assert_int_equal(sf_revoke_answer(400, &b, &err), -1);
	assert_int_equal(err.kind, SF_CONFIG);
	buf_free(&b);
}

/* ---------------------------------------------------------------- host checks (no network) */

static void
test_hosts_refused_before_request(void **state)
{
	struct sf		*sf;
	struct sf_token		 tok;
	struct sf_identity	 id;
	struct sf_error		 err;

	(void)state;
	assert_null(sf_new(&tcfg, NULL));
	sf_free(NULL);
	assert_non_null(sf = sf_new(&tcfg, SECRET));

	assert_int_equal(sf_refresh(sf, "https://evil.example.com", "rt", &tok,
	    &err), -1);
	assert_int_equal(err.kind, SF_CONFIG);
	assert_string_equal(err.code, "host_not_allowed");
	assert_non_null(strstr(err.message, "evil.example.com"));
	assert_int_equal(err.http_status, 0);
	assert_null(tok.access_token);

	assert_int_equal(sf_exchange_code(sf, "http://login.salesforce.com",
	    "code", "verifier", &tok, &err), -1);
	assert_int_equal(err.kind, SF_CONFIG);

	assert_int_equal(sf_revoke(sf, "https://login.salesforce.com.evil.example",
	    "rt", &err), -1);
	assert_int_equal(err.kind, SF_CONFIG);
	assert_string_equal(err.code, "host_not_allowed");

	/* An id URL on a foreign host: a bad answer, not our configuration. */
	memset(&tok, 0, sizeof(tok));
	tok.access_token = (char *)"00D!at";
	strcpy(tok.id_url, "https://evil.localhost:8443/id/" ORG18 "/" USER18);
	strcpy(tok.org_id, ORG18);
	strcpy(tok.user_id, USER18);
	assert_int_equal(sf_identity(sf, &tok, &id, &err), -1);
	assert_int_equal(err.kind, SF_TRANSIENT);
	assert_string_equal(err.code, "host_not_allowed");
	assert_non_null(strstr(err.message, "evil.localhost"));
	sf_free(sf);
}

/* Jobs on hosts that are not allowed fail like sf_refresh; a NULL refresh token is left alone. */
static void
test_refresh_many_hosts_refused(void **state)
{
	static const char *const bases[] = {
		"https://evil.example.com",
		"https://login.salesforce.com.evil.example",
		"http://login.salesforce.com",
		"https://evil.localhost:8443",
	};
	struct sf_refresh_job	 jobs[ARRAY_LEN(bases) + 1];
	struct sf		*sf;
	size_t			 i, keep = 2;	/* the skipped job sits in the middle */
	int			 par;

	(void)state;
	assert_non_null(sf = sf_new(&tcfg, SECRET));
	for (par = 0; par <= 3; par++) {
		size_t	 b = 0;

		memset(jobs, 0, sizeof(jobs));
		for (i = 0; i < ARRAY_LEN(jobs); i++) {
			jobs[i].rc = 1;		/* must be overwritten */
			strcpy(jobs[i].err.code, "stale");
			if (i == keep)
				continue;
			jobs[i].login_base = bases[b++];
			jobs[i].refresh_token = "rt";
		}
		jobs[keep].login_base = "https://login.salesforce.com";
		jobs[keep].refresh_token = NULL;
		jobs[keep].rc = -1;
		jobs[keep].err.kind = SF_INVALID;
		strcpy(jobs[keep].err.code, "keep");
		strcpy(jobs[keep].err.message, "left alone");
		jobs[keep].err.http_status = 418;

		sf_refresh_many(sf, jobs, ARRAY_LEN(jobs), par);

		for (i = 0; i < ARRAY_LEN(jobs); i++) {
			if (i == keep)
				continue;
			assert_int_equal(jobs[i].rc, -1);
			assert_int_equal(jobs[i].err.kind, SF_CONFIG);
			assert_int_equal(jobs[i].err.http_status, 0);
			assert_null(jobs[i].token.access_token);
			assert_null(jobs[i].token.refresh_token);
		}
		/* The same codes as sf_refresh. */
		assert_string_equal(jobs[0].err.code, "host_not_allowed");
		assert_non_null(strstr(jobs[0].err.message, "evil.example.com"));
		assert_string_equal(jobs[1].err.code, "host_not_allowed");
		assert_string_equal(jobs[3].err.code, "bad_url");
		assert_string_equal(jobs[4].err.code, "host_not_allowed");
		assert_non_null(strstr(jobs[4].err.message, "evil.localhost"));

		assert_int_equal(jobs[keep].rc, -1);
		assert_int_equal(jobs[keep].err.kind, SF_INVALID);
		assert_string_equal(jobs[keep].err.code, "keep");
		assert_string_equal(jobs[keep].err.message, "left alone");
		assert_int_equal(jobs[keep].err.http_status, 418);
		assert_null(jobs[keep].token.access_token);
		for (i = 0; i < ARRAY_LEN(jobs); i++)
			sf_token_clear(&jobs[i].token);
	}

	/* Nothing to do: an empty batch, or only skipped jobs. */
	sf_refresh_many(sf, NULL, 0, 4);
	memset(jobs, 0, sizeof(jobs));
	jobs[0].rc = -1;
	strcpy(jobs[0].err.code, "keep");
	sf_refresh_many(sf, jobs, 1, 4);
	assert_int_equal(jobs[0].rc, -1);
	assert_string_equal(jobs[0].err.code, "keep");
	sf_free(sf);
}

static int
group_setup(void **state)
{
	(void)state;
	cfg_setup();
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	curl_global_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_base_environments),
		cmocka_unit_test(test_login_base_my_domain),
		cmocka_unit_test(test_login_base_lightning_refused),
		cmocka_unit_test(test_login_base_foreign_and_bad),
		cmocka_unit_test(test_authorize_url),
		cmocka_unit_test(test_classify_error),
		cmocka_unit_test(test_classify_long_description),
		cmocka_unit_test(test_hint_codes),
		cmocka_unit_test(test_classify_transport),
		cmocka_unit_test(test_token_response_good),
		cmocka_unit_test(test_token_response_vector),
		cmocka_unit_test(test_text_copy_refuses_invalid_utf8),
		cmocka_unit_test(test_token_response_bad),
		cmocka_unit_test(test_identity_response),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_hosts_refused_before_request),
		cmocka_unit_test(test_refresh_many_hosts_refused),
	};

	return cmocka_run_group_tests_name("sf", tests, group_setup,
	    group_teardown);
}
