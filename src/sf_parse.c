/*
 * The Salesforce client's answers, without any network: the token,
 * identity and revoke answers, the display text taken from them, and what
 * an error means (the OAuth error table, libcurl's failures). Parsed
 * documents and token copies are cleansed before they are freed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "buf.h"
#include "crypto.h"
#include "log.h"
#include "secret.h"
#include "sf.h"
#include "sf_internal.h"
#include "sfid.h"
#include "util.h"


#define SF_TOKEN_MAX		16384		/* longest token accepted (JWT access tokens are long) */

/* ---------------------------------------------------------------- text */

/*
 * Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid:
 * overlong forms, UTF-16 surrogates and code points above U+10FFFF are
 * invalid (PostgreSQL refuses them, and one refused text must not stop a
 * write).
 */
static size_t
utf8_seq_len(const unsigned char *s)
{
	unsigned char	 lo = 0x80, hi = 0xbf;	/* the second byte's range */
	size_t		 n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;		/* overlong below U+0800 */
	else if (s[0] == 0xed)
		hi = 0x9f;		/* surrogates U+D800..DFFF */
	else if (s[0] == 0xf0)
		lo = 0x90;		/* overlong below U+10000 */
	else if (s[0] == 0xf4)
		hi = 0x8f;		/* above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

void
sf_text_copy(char *dst, size_t dstlen, const char *src)
{
	const unsigned char	*s = (const unsigned char *)src;
	size_t			 o = 0, n;

	while (*s != '\0') {
		if ((n = utf8_seq_len(s)) == 0) {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = '?';
			s++;
			continue;
		}
		if (o + n >= dstlen)
			break;
		if (n == 1 && (*s < 0x20 || *s == 0x7f))
			dst[o++] = ' ';
		else {
			memcpy(dst + o, s, n);
			o += n;
		}
		s += n;
	}
	dst[o] = '\0';
}

/* ---------------------------------------------------------------- errors */

void
sf_err_clear(struct sf_error *err)
{
	memset(err, 0, sizeof(*err));
	err->kind = SF_OK;
}

void
sf_err_set(struct sf_error *err, enum sf_kind kind, const char *code,
    const char *fmt, ...)
{
	char	 msg[sizeof(err->message)];
	va_list	 ap;

	err->kind = kind;
	snprintf(err->code, sizeof(err->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sf_text_copy(err->message, sizeof(err->message), msg);
}

/*
 * What an OAuth error of a 400/401/403 answer means (SALESFORCE-ERRORS.md
 * of the team, checked against Salesforce's OAuth documentation): its kind,
 * the hint shown to the org's admins (hint_code, docs/API.md), and whether
 * an integration it made invalid may heal by itself (then it is re-checked
 * on a slow schedule). Codes and descriptions match case-insensitively
 * (Salesforce also sends upper-case OAUTH_APP_* / OAUTH_EC_* codes); the
 * first row whose error (and description, when the row has one) matches
 * wins. A code that is in no row stays transient and is logged.
 */
static const struct oauth_error {
	const char	*error;
	const char	*description;	/* NULL: any */
	enum sf_kind	 kind;
	const char	*hint_code;
	bool		 heals;
} oauth_errors[] = {
	/* A concurrent refresh of the same token: re-read and retry. */
	{ "invalid_grant", "token request is already being processed", SF_TRANSIENT, "salesforce_busy", false },
	/* Revoked, policy expiry, idle limit, a sixth approval, a stale rotated token. */
	{ "invalid_grant", "expired access/refresh token", SF_INVALID, "refresh_token_policy", false },
	{ "invalid_grant", "token validity expired", SF_INVALID, "refresh_token_policy", false },
	{ "invalid_grant", "authentication failure", SF_INVALID, "user_inactive", false },
	{ "invalid_grant", "user hasn't approved this consumer", SF_INVALID, "app_not_approved", false },
	{ "invalid_grant", "IP restricted or invalid login hours", SF_INVALID, "ip_or_hours_restricted", true },
	{ "invalid_grant", "expired authorization code", SF_INVALID, "connect_again", false },
	{ "invalid_grant", NULL, SF_INVALID, "refresh_token_policy", false },
	{ "inactive_user", NULL, SF_INVALID, "user_inactive", false },
	{ "inactive_org", NULL, SF_INVALID, "org_inactive", false },
	{ "OAUTH_APP_BLOCKED", NULL, SF_INVALID, "app_blocked", false },
	{ "OAUTH_APP_ACCESS_DENIED", NULL, SF_INVALID, "app_access_denied", false },
	{ "OAUTH_EC_APP_NOT_FOUND", NULL, SF_CONFIG, "app_not_found", false },
	{ "invalid_client", NULL, SF_CONFIG, "operator_credentials", false },
	{ "invalid_client_id", NULL, SF_CONFIG, "operator_credentials", false },
	{ "invalid_client_credentials", NULL, SF_CONFIG, "operator_credentials", false },
	{ "redirect_uri_mismatch", NULL, SF_CONFIG, "operator_config", false },
	{ "unsupported_grant_type", NULL, SF_CONFIG, "operator_config", false },
	{ "invalid_scope", NULL, SF_CONFIG, "operator_config", false },
	{ "invalid_request", NULL, SF_CONFIG, "operator_config", false },
	{ "rate_limit_exceeded", NULL, SF_TRANSIENT, "rate_limited", false },
	/* The revoke endpoint's answers for a token that is already dead. */
	{ "invalid_token", NULL, SF_INVALID, "refresh_token_policy", false },
	{ "unsupported_token_type", NULL, SF_INVALID, "refresh_token_policy", false },
};

/* The hints of sfconnect's own error codes (those Salesforce never sends). */
static const struct {
	const char	*code;
	const char	*hint_code;
} own_errors[] = {
	{ "refresh_outcome_unknown", "refresh_outcome_unknown" },
	{ "org_mismatch", "org_changed" },
	{ "token_key", "operator_token_key" },
	{ "host_not_allowed", "operator_config" },
	{ "bad_url", "operator_config" },
	{ "timeout", "salesforce_unavailable" },
	{ "connect", "salesforce_unavailable" },
	{ "tls", "salesforce_unavailable" },
	{ "malformed", "salesforce_unavailable" },
	{ "bad_signature", "salesforce_unavailable" },
	{ "response_too_large", "salesforce_unavailable" },
	{ "identity_mismatch", "salesforce_unavailable" },
	{ "internal", "salesforce_unavailable" },
};

/* The row of oauth_errors that code (and description, or NULL) match; NULL: none. */
static const struct oauth_error *
oauth_error_find(const char *code, const char *description)
{
	size_t	 i;

	for (i = 0; i < ARRAY_LEN(oauth_errors); i++) {
		if (strcasecmp(oauth_errors[i].error, code) != 0)
			continue;
		if (oauth_errors[i].description != NULL &&
		    (description == NULL ||
		    strcasecmp(oauth_errors[i].description, description) != 0))
			continue;
		return &oauth_errors[i];
	}
	return NULL;
}

const char *
sf_hint_code(const char *code, const char *message)
{
	const struct oauth_error	*row;
	size_t				 i;

	if (code == NULL || *code == '\0')
		return "none";
	if ((row = oauth_error_find(code, message)) != NULL)
		return row->hint_code;
	for (i = 0; i < ARRAY_LEN(own_errors); i++)
		if (strcmp(own_errors[i].code, code) == 0)
			return own_errors[i].hint_code;
	if (strncmp(code, "http_", 5) == 0 ||
	    strncmp(code, "identity_http_", 14) == 0)
		return "salesforce_unavailable";
	return "unknown_error";
}

bool
sf_error_may_heal(const char *code, const char *message)
{
	const struct oauth_error	*row;

	return code != NULL && (row = oauth_error_find(code, message)) != NULL &&
	    row->heals;
}

/* An error code we pass on: 1..63 characters of [A-Za-z0-9_.-]. */
static int
code_ok(const char *s)
{
	size_t	 n = strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");

	return n > 0 && s[n] == '\0' && n < sizeof(((struct sf_error *)0)->code);
}

/* Finds the string member name of a JSON object; NULL when absent or not a string. */
static const char *
json_str(const cJSON *obj, const char *name)
{
	const cJSON	*item = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Overwrites every string of a parsed document (it may hold tokens), then frees it. */
static void
json_cleanse(cJSON *item)
{
	for (; item != NULL; item = item->next) {
		if (item->valuestring != NULL)
			OPENSSL_cleanse(item->valuestring,
			    strlen(item->valuestring));
		json_cleanse(item->child);
	}
}

static void
json_free(cJSON *root)
{
	json_cleanse(root);
	cJSON_Delete(root);
}

/* Parses a NUL-terminated JSON object; NULL when body is not one. */
static cJSON *
json_parse_object(const char *body)
{
	cJSON	*root;

	if (body == NULL ||
	    (root = cJSON_ParseWithOpts(body, NULL, 1)) == NULL)
		return NULL;
	if (!cJSON_IsObject(root)) {
		json_free(root);
		return NULL;
	}
	return root;
}

/*
 * Starts reading an answer: *out emptied, err cleared. The JSON object of
 * body, or NULL with err set.
 */
static cJSON *
parse_answer(const char *body, void *out, size_t outlen, const char *what,
    struct sf_error *err)
{
	cJSON	*root;

	memset(out, 0, outlen);
	sf_err_clear(err);
	if ((root = json_parse_object(body)) == NULL)
		SF_MALFORMED(err, "the %s response is not a JSON object", what);
	return root;
}

void
sf_classify_error(long status, const char *body, struct sf_error *err)
{
	cJSON		*root = NULL;
	const char	*code = NULL, *desc = NULL;
	char		 clean[sizeof(err->message)] = "";
	const struct oauth_error *row;
	enum sf_kind	 kind = SF_TRANSIENT;

	sf_err_clear(err);
	err->http_status = status;
	if (status >= 400 && status <= 499 &&
	    (root = json_parse_object(body)) != NULL) {
		code = json_str(root, "error");
		desc = json_str(root, "error_description");
	}
	if (code == NULL || !code_ok(code)) {
		char	 httpcode[32];

		snprintf(httpcode, sizeof(httpcode), "http_%ld", status);
		sf_err_set(err, SF_TRANSIENT, httpcode,
		    "Salesforce answered HTTP %ld", status);
		if (status >= 400 && status <= 499)
			log_warn("sf_unknown_error", "Salesforce answered HTTP %ld "
			    "without a JSON OAuth error: kept transient", status);
		goto out;
	}
	if (desc != NULL)
		sf_text_copy(clean, sizeof(clean), desc);
	if (status == 400 || status == 401 || status == 403) {
		if ((row = oauth_error_find(code, clean)) != NULL)
			kind = row->kind;
		else
			log_warn("sf_unknown_error", "Salesforce answered HTTP %ld "
			    "with an unknown error %s (%s): kept transient", status,
			    code, clean[0] != '\0' ? clean : "no description");
	}
	if (clean[0] != '\0')
		sf_err_set(err, kind, code, "%s", clean);
	else
		sf_err_set(err, kind, code, "Salesforce answered %s (HTTP %ld)",
		    code, status);
out:
	json_free(root);
}

/* libcurl failures that mean the TLS handshake or the certificate failed. */
static const CURLcode tls_failures[] = {
	CURLE_PEER_FAILED_VERIFICATION,
	CURLE_SSL_CONNECT_ERROR,
	CURLE_SSL_CERTPROBLEM,
	CURLE_SSL_CIPHER,
	CURLE_SSL_CACERT_BADFILE,
	CURLE_SSL_CRL_BADFILE,
	CURLE_SSL_ISSUER_ERROR,
	CURLE_SSL_PINNEDPUBKEYNOTMATCH,
	CURLE_SSL_INVALIDCERTSTATUS,
	CURLE_SSL_ENGINE_NOTFOUND,
	CURLE_SSL_ENGINE_SETFAILED,
	CURLE_SSL_ENGINE_INITFAILED,
	CURLE_SSL_SHUTDOWN_FAILED,
	CURLE_SSL_CLIENTCERT,
	CURLE_USE_SSL_FAILED,
};

void
sf_classify_transport(int curl_code, const char *host, const char *detail,
    struct sf_error *err)
{
	CURLcode	 rc = (CURLcode)curl_code;
	const char	*why;
	size_t		 i;

	sf_err_clear(err);
	if (host == NULL)
		host = "Salesforce";
	why = detail != NULL && *detail != '\0' ? detail :
	    curl_easy_strerror(rc);
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		sf_err_set(err, SF_TRANSIENT, "timeout",
		    "%s did not answer in time", host);
		return;
	}
	for (i = 0; i < ARRAY_LEN(tls_failures); i++)
		if (rc == tls_failures[i]) {
			sf_err_set(err, SF_TRANSIENT, "tls", "the TLS certificate "
			    "of %s could not be verified (%s)", host, why);
			return;
		}
	if (rc == CURLE_OUT_OF_MEMORY) {
		sf_err_set(err, SF_TRANSIENT, "internal", "out of memory");
		return;
	}
	sf_err_set(err, SF_TRANSIENT, "connect", "could not reach %s (%s)",
	    host, why);
}

/* ---------------------------------------------------------------- URLs in answers */

/*
 * The parts of an https URL that answers are checked for: NULL where the
 * URL has none. url_split is 0 when url is "https://" and libcurl reads
 * it (also "https:/host" and "HTTPS://": the text is stored as given).
 */
struct url_parts {
	CURLU	*h;
	char	*scheme, *user, *path, *query, *frag;
};

/* One optional part: 0 when present or absent (none), -1 on an error. */
static int
url_part(CURLU *h, CURLUPart part, CURLUcode none, char **out)
{
	CURLUcode	 rc = curl_url_get(h, part, out, 0);

	return rc == CURLUE_OK || rc == none ? 0 : -1;
}

static int
url_split(const char *url, unsigned flags, struct url_parts *u)
{
	memset(u, 0, sizeof(*u));
	if (strncmp(url, "https://", 8) != 0 || (u->h = curl_url()) == NULL ||
	    curl_url_set(u->h, CURLUPART_URL, url, flags) != CURLUE_OK ||
	    curl_url_get(u->h, CURLUPART_SCHEME, &u->scheme, 0) != CURLUE_OK ||
	    strcmp(u->scheme, "https") != 0 ||
	    curl_url_get(u->h, CURLUPART_PATH, &u->path, 0) != CURLUE_OK ||
	    url_part(u->h, CURLUPART_USER, CURLUE_NO_USER, &u->user) == -1 ||
	    url_part(u->h, CURLUPART_QUERY, CURLUE_NO_QUERY, &u->query) == -1 ||
	    url_part(u->h, CURLUPART_FRAGMENT, CURLUE_NO_FRAGMENT, &u->frag) == -1)
		return -1;
	return 0;
}

static void
url_parts_free(struct url_parts *u)
{
	curl_free(u->scheme);
	curl_free(u->user);
	curl_free(u->path);
	curl_free(u->query);
	curl_free(u->frag);
	curl_url_cleanup(u->h);
}

/*
 * Parses an identity URL "https://host[:port]/id/<OrgID>/<UserID>" (no
 * query or fragment) into 18-character ids. 0 or -1.
 */
static int
id_url_parse(const char *url, char org[19], char user[19])
{
	struct url_parts	 u;
	int			 rc = -1;

	org[0] = user[0] = '\0';
	if (url_split(url, CURLU_PATH_AS_IS, &u) == 0 && u.query == NULL &&
	    u.frag == NULL && sfid_parse_identity_path(u.path, org, user) == 0)
		rc = 0;
	url_parts_free(&u);
	return rc;
}

/* true when url is "https://host[:port]" with at most a "/" path and nothing else. */
static int
instance_url_ok(const char *url)
{
	struct url_parts	 u;
	int			 ok;

	ok = url_split(url, 0, &u) == 0 && u.user == NULL && u.query == NULL &&
	    strcmp(u.path, "/") == 0 && strchr(url, '#') == NULL;
	url_parts_free(&u);
	return ok;
}

/* ---------------------------------------------------------------- token responses */

/* true when s is 1..max printable ASCII characters without spaces. */
static int
token_ok(const char *s, size_t max)
{
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++)
		if (s[n] < 0x21 || s[n] > 0x7e || n >= max)
			return 0;
	return n > 0;
}

/* Copies a space-separated list into dst, dropping whole words that do not fit. */
static void
words_copy(char *dst, size_t dstlen, const char *src)
{
	size_t	 n;

	/* sf_text_copy keeps byte offsets: dst is a prefix of src. */
	sf_text_copy(dst, dstlen, src);
	n = strlen(dst);
	if (src[n] == '\0' || src[n] == ' ')
		return;
	while (n > 0 && dst[n] != ' ')
		n--;
	dst[n] = '\0';
}

/*
 * A refused token answer may still carry a new refresh token: Salesforce
 * has rotated it, so the one we hold is dead. Keeps it in out (alone).
 */
static void
keep_refresh_token(const cJSON *root, struct sf_token *out)
{
	const char	*refresh;

	if (root == NULL || (refresh = json_str(root, "refresh_token")) == NULL ||
	    !token_ok(refresh, SF_TOKEN_MAX))
		return;
	out->refresh_token = strdup(refresh);
}

int
sf_parse_token_response(const char *body, const char *secret,
    struct sf_token *out, struct sf_error *err)
{
	static const char *const required[] = {
		"access_token", "instance_url", "id", "issued_at", "signature",
	};
	cJSON		*root = NULL;
	const char	*access, *refresh, *instance, *id, *issued, *sig, *scope;
	char		*end;
	size_t		 i;
	int		 ret = -1;

	if ((root = parse_answer(body, out, sizeof(*out), "token", err)) == NULL)
		goto out;
	for (i = 0; i < ARRAY_LEN(required); i++) {
		const char	*v = json_str(root, required[i]);

		if (v == NULL || *v == '\0') {
			SF_MALFORMED(err, "the token response has no %s",
			    required[i]);
			goto out;
		}
	}
	access = json_str(root, "access_token");
	refresh = json_str(root, "refresh_token");
	instance = json_str(root, "instance_url");
	id = json_str(root, "id");
	issued = json_str(root, "issued_at");
	sig = json_str(root, "signature");
	scope = json_str(root, "scope");

	if (strspn(issued, "0123456789") != strlen(issued) ||
	    strlen(issued) > 18) {
		SF_MALFORMED(err, "the token response's issued_at is not a number");
		goto out;
	}
	if (!crypto_sf_signature_ok(secret, id, issued, sig)) {
		sf_err_set(err, SF_TRANSIENT, "bad_signature",
		    "the token response signature did not verify");
		goto out;
	}
	if (!token_ok(access, SF_TOKEN_MAX) ||
	    (refresh != NULL && *refresh != '\0' &&
	    !token_ok(refresh, SF_TOKEN_MAX))) {
		SF_MALFORMED(err, "the token response holds an unusable token");
		goto out;
	}
	if (strlen(id) >= sizeof(out->id_url) ||
	    id_url_parse(id, out->org_id, out->user_id) == -1) {
		SF_MALFORMED(err, "the token response's id is not an identity "
		    "URL https://HOST/id/<OrgID>/<UserID>");
		goto out;
	}
	if (strlen(instance) >= sizeof(out->instance_url) ||
	    !instance_url_ok(instance)) {
		SF_MALFORMED(err, "the token response's instance_url is not an "
		    "https URL");
		goto out;
	}
	errno = 0;
	out->issued_at_ms = strtoll(issued, &end, 10);
	if (errno != 0 || *end != '\0') {
		SF_MALFORMED(err, "the token response's issued_at is not a number");
		goto out;
	}
	snprintf(out->id_url, sizeof(out->id_url), "%s", id);
	snprintf(out->instance_url, sizeof(out->instance_url), "%s", instance);
	if (scope != NULL)
		words_copy(out->scope, sizeof(out->scope), scope);
	if ((out->access_token = strdup(access)) == NULL ||
	    (refresh != NULL && *refresh != '\0' &&
	    (out->refresh_token = strdup(refresh)) == NULL)) {
		sf_err_set(err, SF_TRANSIENT, "internal", "out of memory");
		goto out;
	}
	ret = 0;
out:
	if (ret == -1) {
		sf_token_clear(out);
		keep_refresh_token(root, out);
	}
	json_free(root);
	return ret;
}

int
sf_parse_identity_response(const char *body, const struct sf_token *token,
    struct sf_identity *out, struct sf_error *err)
{
	cJSON		*root = NULL;
	const char	*org, *user, *s;
	int		 ret = -1;

	if ((root = parse_answer(body, out, sizeof(*out), "identity", err)) == NULL)
		goto out;
	if ((org = json_str(root, "organization_id")) == NULL ||
	    (user = json_str(root, "user_id")) == NULL ||
	    sfid_to18(org, out->org_id) == -1 ||
	    sfid_to18(user, out->user_id) == -1) {
		SF_MALFORMED(err, "the identity response has no valid "
		    "organization_id and user_id");
		goto out;
	}
	if (strcmp(out->org_id, token->org_id) != 0 ||
	    strcmp(out->user_id, token->user_id) != 0) {
		sf_err_set(err, SF_TRANSIENT, "identity_mismatch", "the identity "
		    "response names another org or user than the token");
		goto out;
	}
	if ((s = json_str(root, "username")) != NULL)
		sf_text_copy(out->username, sizeof(out->username), s);
	if ((s = json_str(root, "display_name")) != NULL)
		sf_text_copy(out->display_name, sizeof(out->display_name), s);
	out->active = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root,
	    "active"));
	ret = 0;
out:
	if (ret == -1)
		memset(out, 0, sizeof(*out));
	json_free(root);
	return ret;
}

void
sf_token_clear(struct sf_token *t)
{
	if (t == NULL)
		return;
	secret_free(t->access_token);
	secret_free(t->refresh_token);
	memset(t, 0, sizeof(*t));
}

/* ---------------------------------------------------------------- whole answers */

/* true when resp holds a body without a NUL byte in it. */
static int
body_is_text(const struct buf *resp)
{
	return resp->data != NULL && strlen(resp->data) == resp->len;
}

int
sf_token_answer(long status, const struct buf *resp, const char *secret,
    struct sf_token *out, struct sf_error *err)
{
	int	 ret = -1;

	if (status != 200) {
		sf_classify_error(status, resp->data, err);
		return -1;
	}
	if (!body_is_text(resp))
		SF_MALFORMED(err, "the token response is not a JSON object");
	else
		ret = sf_parse_token_response(resp->data, secret, out, err);
	err->http_status = status;
	return ret;
}

int
sf_identity_answer(long status, const struct buf *resp,
    const struct sf_token *token, struct sf_identity *out,
    struct sf_error *err)
{
	char	 code[32];
	int	 ret = -1;

	if (status == 401 || status == 403) {
		sf_err_set(err, SF_INVALID, "bad_oauth_token", "Salesforce "
		    "refused the access token at the identity URL (HTTP %ld)",
		    status);
	} else if (status != 200) {
		snprintf(code, sizeof(code), "identity_http_%ld", status);
		sf_err_set(err, SF_TRANSIENT, code, "the identity URL answered "
		    "HTTP %ld", status);
	} else if (!body_is_text(resp)) {
		SF_MALFORMED(err, "the identity response is not a JSON object");
	} else if (sf_parse_identity_response(resp->data, token, out,
	    err) == 0)
		ret = 0;
	err->http_status = status;
	return ret;
}

int
sf_revoke_answer(long status, const struct buf *resp, struct sf_error *err)
{
	if (status == 200) {
		sf_err_clear(err);
		return 0;
	}
	sf_classify_error(status, resp->data, err);
	/* Already dead: as good as revoked. */
	if (status == 400 && (strcmp(err->code, "invalid_token") == 0 ||
	    strcmp(err->code, "unsupported_token_type") == 0)) {
		sf_err_clear(err);
		return 0;
	}
	return -1;
}
